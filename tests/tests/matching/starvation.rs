//! No ticket starves (API.md §5): a freed agent is offered the best waiting ticket it may take
//! however many tickets wait ahead of it that it cannot take, whether nobody can (skills or a
//! region nobody has) or it already let them lapse.
//!
//! The thousand tickets ahead are made through the store's own functions (the same calls the
//! services make), so that setting up takes seconds, not the minutes 1,000 HTTP requests and
//! rate-limited WebSocket frames would.

use std::time::{Duration, Instant};

use dispatcher::matcher::{Matcher, PAGE};
use e2e::direct::ticket_fields;
use e2e::{spawn_with, ticket, AgentClient, Options, TestApp, REDIS_URL};
use serde_json::{json, Value};
use shared::domain::{AgentId, RequestedStatus, TicketId};
use shared::store::{CreatedTicket, Routed, Store};

use crate::support::{offered, sv, sv_ticket};

/// How many tickets wait ahead.
const AHEAD: usize = 1000;
/// How soon the freed agent must get the ticket it can take.
const WITHIN: Duration = Duration::from_secs(1);

/// The agent holds one ticket (of one), a ticket it can take waits behind `AHEAD` it cannot,
/// it completes, and it must be offered the waiting one within a second.
async fn freed_agent_gets_the_ticket_it_can_take(app: &TestApp, mut agent: AgentClient) {
    let first = app.new_ticket(&sv_ticket(0)).await;
    let offer = offered(&mut agent, &first).await;
    agent
        .send(json!({"type": "accept", "offer_id": offer}))
        .await;
    agent.expect("assigned").await;
    let target = app.new_ticket(&sv_ticket(5)).await;
    assert_eq!(
        app.get_ticket(&target).await.body["status"],
        "queued",
        "the agent is busy: the ticket waits"
    );

    let started = Instant::now();
    agent.complete(&first).await;
    let frame = agent.expect_within("offer", Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert_eq!(frame["ticket_id"], target.as_str(), "{frame}");
    assert!(
        took < WITHIN,
        "offered {took:?} after it completed, behind {AHEAD} tickets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_agent_gets_its_ticket_behind_1000_that_nobody_can_take() {
    let app = spawn_with(Options::default()).await;
    let agent = app
        .available_agent("busy", &sv(json!({"refunds": 3}), 1))
        .await;
    let store = Store::open(REDIS_URL, &app.namespace).expect("store");
    // Priority 9, so all of them come first: skills nobody has at that level, skills nobody
    // has at all, and a region nobody is in.
    for i in 0..AHEAD {
        let mut body = match i % 3 {
            0 => ticket("sv", json!({"refunds": 5}), 9),
            1 => ticket("sv", json!({format!("rare_{}", i % 7): 1}), 9),
            _ => ticket("sv", json!({}), 9),
        };
        if i % 3 == 2 {
            body["region"] = json!("south");
        }
        let created = store
            .create_ticket(&TicketId::generate(), None, &ticket_fields(&body), PAGE)
            .await
            .expect("created");
        assert!(
            matches!(
                &created,
                CreatedTicket::Created {
                    routed: Routed::Parked,
                    ..
                }
            ),
            "nobody can take it: {created:?}"
        );
    }
    freed_agent_gets_the_ticket_it_can_take(&app, agent).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_agent_gets_its_ticket_behind_1000_it_let_lapse() {
    // Lapses must not set the agent away here: it lets a thousand offers lapse on purpose (and
    // takes a break half-way, which starts the count again).
    let app = spawn_with(Options {
        missed_before_away: 1000,
        ..Options::default()
    })
    .await;
    app.add_agent("busy", &sv(json!({}), 1)).await;
    let agent_id = AgentId::try_from("busy").expect("an id");
    // The agent on a connection of a gateway that is not listening (its offers go nowhere),
    // every offer made with a 1 ms timeout: each lapses at once.
    let store = Store::open(REDIS_URL, &app.namespace)
        .expect("store")
        .with_offer_timeout(Duration::from_millis(1));
    store
        .connect(&agent_id, "c-elsewhere", "gw-elsewhere")
        .await
        .expect("connect");
    store
        .set_status(&agent_id, RequestedStatus::Available)
        .await
        .expect("available");
    let matcher = Matcher::new(store.clone());
    for i in 0..AHEAD {
        if i == AHEAD / 2 {
            for status in [RequestedStatus::Break, RequestedStatus::Available] {
                store.set_status(&agent_id, status).await.expect("a break");
            }
        }
        let id = TicketId::generate();
        let created = store
            .create_ticket(&id, None, &ticket_fields(&sv_ticket(9)), PAGE)
            .await
            .expect("created");
        let CreatedTicket::Created { routed, .. } = created else {
            panic!("a new ticket");
        };
        let offered = matcher
            .route_created(id.as_str(), routed)
            .await
            .expect("routed");
        assert_eq!(offered.as_deref(), Some("busy"));
        // Lapsed by this call or by the dispatcher's own timers, whichever comes first.
        loop {
            tokio::time::sleep(Duration::from_millis(2)).await;
            store.expire_offers(10, 1000).await.expect("expire");
            let pending: String = redis::cmd("HGET")
                .arg(store.keys().agent("busy"))
                .arg("offer")
                .query_async(&mut store.conn())
                .await
                .expect("hget");
            if pending.is_empty() {
                break;
            }
        }
    }
    // Every one of them lapsed with the only agent, and waits in the queue (the dispatcher
    // routes each back and parks it; give it a moment for the last ones).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: usize = redis::cmd("ZCARD")
            .arg(store.keys().queue("sv"))
            .query_async(&mut store.conn())
            .await
            .expect("zcard");
        if waiting == AHEAD {
            break;
        }
        assert!(Instant::now() < deadline, "{waiting} of {AHEAD} parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Now its real app connects (replacing the other connection) and takes work.
    let mut agent = AgentClient::connect(&app.gateways[0], "busy").await;
    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(
        welcome["pending_offer"],
        Value::Null,
        "none of the lapsed tickets"
    );
    freed_agent_gets_the_ticket_it_can_take(&app, agent).await;
}
