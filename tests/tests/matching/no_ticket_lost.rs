//! No ticket lost (API.md §5): a busy hour of agents that work, decline, sleep or drop, checked
//! against the event stream.

use std::collections::HashMap;
use std::time::Duration;

use e2e::{spawn_with, AgentClient, Options, TestApp};
use serde_json::json;

use crate::support::{a_moment, status_of, sv, sv_ticket};

/// What a ticket may be: anything else means it was lost.
const STATUSES: [&str; 5] = ["queued", "offered", "assigned", "completed", "cancelled"];

/// How an agent in the busy test behaves.
#[derive(Debug, Clone, Copy)]
enum Habit {
    /// Accepts every offer and completes every ticket.
    Works,
    /// Declines every offer.
    Declines,
    /// Never answers (its offers lapse; it goes away).
    Sleeps,
    /// Accepts one offer, then drops its connection.
    Drops,
}

/// Plays `habit` until `until`, then drops the connection.
async fn play(mut agent: AgentClient, habit: Habit, until: tokio::time::Instant) {
    while tokio::time::Instant::now() < until {
        let frame = match agent.next(Duration::from_millis(100)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(_) => return,
        };
        let offer_id = frame["offer_id"].clone();
        match (frame["type"].as_str(), habit) {
            (Some("offer"), Habit::Works | Habit::Drops) => {
                agent
                    .send(json!({"type": "accept", "offer_id": offer_id}))
                    .await;
            }
            (Some("offer"), Habit::Declines) => {
                agent
                    .send(json!({"type": "decline", "offer_id": offer_id}))
                    .await;
            }
            (Some("assigned"), Habit::Works) => {
                let id = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                agent.complete(&id).await;
            }
            (Some("assigned"), Habit::Drops) => return,
            _ => {}
        }
    }
}

/// Checks from the event stream that no ticket was ever held by two agents, or offered to two
/// agents, at the same time.
async fn assert_one_holder_at_a_time(app: &TestApp) {
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut offer: HashMap<String, String> = HashMap::new();
    for e in app.events().await {
        let get = |k: &str| e.get(k).cloned().unwrap_or_default();
        let (ticket, agent) = (get("ticket"), get("agent"));
        match get("type").as_str() {
            _ if e2e::makes_offer(&e) => {
                let before = offer.insert(ticket.clone(), agent.clone());
                assert!(
                    before.is_none(),
                    "{ticket} offered to {agent} while offered to {before:?}"
                );
            }
            "offer_declined" | "offer_expired" | "offer_withdrawn" => {
                offer.remove(&ticket);
            }
            "ticket_assigned" => {
                offer.remove(&ticket);
                let before = holder.insert(ticket.clone(), agent.clone());
                assert!(
                    before.is_none(),
                    "{ticket} assigned to {agent} while held by {before:?}"
                );
            }
            "ticket_requeued" | "ticket_completed" | "ticket_cancelled" => {
                offer.remove(&ticket);
                holder.remove(&ticket);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn no_ticket_is_lost_in_a_busy_hour() {
    let app = spawn_with(Options {
        offer_timeout_secs: 1,
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let now = tokio::time::Instant::now();
    let mut others = Vec::new();
    for (id, habit) in [
        ("decliner", Habit::Declines),
        ("sleeper", Habit::Sleeps),
        ("dropper", Habit::Drops),
    ] {
        let agent = app.available_agent(id, &sv(json!({}), 2)).await;
        others.push(tokio::spawn(play(
            agent,
            habit,
            now + Duration::from_secs(4),
        )));
        a_moment().await;
    }
    let agent = app.available_agent("worker", &sv(json!({}), 2)).await;
    let worker = tokio::spawn(play(agent, Habit::Works, now + Duration::from_secs(60)));
    let mut tickets = Vec::new();
    for i in 0..16u8 {
        tickets.push(app.new_ticket(&sv_ticket(i % 10)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in tickets.iter().step_by(5) {
        let answer = app.cancel_ticket(id).await;
        assert!(answer.status == 200 || answer.status == 409, "{answer:?}");
    }

    // While agents decline, miss, drop and work: every ticket is somewhere.
    for id in &tickets {
        let status = status_of(&app, id).await;
        assert!(STATUSES.contains(&status.as_str()), "{id} is {status}");
    }
    for other in others {
        other.await.expect("agent task");
    }
    // Once only the worker is left, it ends up with every ticket not cancelled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for id in &tickets {
        loop {
            let status = status_of(&app, id).await;
            if status == "completed" || status == "cancelled" {
                break;
            }
            assert!(STATUSES.contains(&status.as_str()), "{id} is {status}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} is still {status}: {:?}",
                app.get_ticket(id).await.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    worker.abort();
    assert_one_holder_at_a_time(&app).await;
}
