//! Matching raced from many tasks and two "dispatchers" (two stores, two matchers): no ticket is
//! offered twice and no agent gets two offers, whether the offer comes from routing a ticket or
//! from a transition serving a free agent.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dispatcher::matcher::Matcher;
use e2e::{drop_namespace, stream_events, REDIS_URL};
use shared::store::Store;

use crate::support::{
    agent_id, available_agents, field, fresh_store, profile_fields, queued_tickets, seed, Event,
    Rng,
};

/// Routes every ticket from `tasks` tasks at once (each in its own order, through one of two
/// matchers on two separate stores), with a profile rewrite of every agent mixed in (which offers
/// a free agent the best waiting ticket); then checks that no ticket got two offers and no agent
/// two.
async fn race_matching(agents: usize, tickets: usize, tasks: usize) {
    let mut rng = Rng::new(seed());
    let (store, namespace) = fresh_store().await;
    let agent_ids = available_agents(&store, agents, &mut rng).await;
    let profile = profile_fields(&["sv"], serde_json::json!({"refunds": 3}), 1);
    let ticket_ids = queued_tickets(&store, tickets, &mut rng).await;
    let other = Store::open(REDIS_URL, &namespace).expect("second store");
    let matchers = [
        Matcher::new(store.clone().with_offer_timeout(Duration::from_secs(60))),
        Matcher::new(other.with_offer_timeout(Duration::from_secs(60))),
    ];
    let go = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut joins = Vec::new();
    for task in 0..tasks {
        let matcher = matchers[task % 2].clone();
        let (go, profile) = (go.clone(), profile.clone());
        let mut order: Vec<(bool, String)> = ticket_ids
            .iter()
            .map(|t| (true, t.clone()))
            .chain(agent_ids.iter().map(|a| (false, a.clone())))
            .collect();
        let mut r = Rng::new(rng.next());
        for i in (1..order.len()).rev() {
            let j = usize::try_from(r.below(u64::try_from(i + 1).unwrap_or(1))).unwrap_or(0);
            order.swap(i, j);
        }
        joins.push(tokio::spawn(async move {
            go.wait().await;
            for (is_ticket, id) in order {
                let result = if is_ticket {
                    matcher.route_ticket(&id).await.map(drop)
                } else {
                    matcher
                        .store()
                        .put_agent(&agent_id(&id), &profile)
                        .await
                        .map(drop)
                };
                if let Err(e) = result {
                    return Err(format!("{id}: {e}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for j in joins {
        j.await.expect("task").expect("matching calls succeed");
    }

    let events = stream_events(&namespace).await;
    let created: Vec<&Event> = events.iter().filter(|e| e2e::makes_offer(e)).collect();
    let mut per_ticket: HashMap<&str, usize> = HashMap::new();
    let mut per_agent: HashMap<&str, usize> = HashMap::new();
    for e in &created {
        *per_ticket.entry(field(e, "ticket")).or_default() += 1;
        *per_agent.entry(field(e, "agent")).or_default() += 1;
    }
    let expected_offers = agents.min(tickets);
    assert_eq!(
        created.len(),
        expected_offers,
        "{agents} free agents and {tickets} queued tickets make {expected_offers} offers: {per_ticket:?} {per_agent:?}"
    );
    for (t, n) in &per_ticket {
        assert_eq!(*n, 1, "ticket {t} was offered {n} times while unanswered");
    }
    for (a, n) in &per_agent {
        assert_eq!(*n, 1, "agent {a} got {n} offers while one was unanswered");
    }
    if tickets <= agents {
        assert_eq!(per_ticket.len(), tickets, "every ticket got its one offer");
    } else {
        assert_eq!(per_agent.len(), agents, "every agent got one offer");
    }
    // The state agrees with the events: each offered ticket names the agent holding its offer.
    let keys = store.keys().clone();
    let mut conn = store.conn();
    for t in &ticket_ids {
        let (status, offer, offer_agent): (String, String, String) = redis::cmd("HMGET")
            .arg(keys.ticket(t))
            .arg(&["status", "offer", "offer_agent"])
            .query_async(&mut conn)
            .await
            .expect("ticket hash");
        let offered = per_ticket.contains_key(t.as_str());
        assert_eq!(status, if offered { "offered" } else { "queued" }, "{t}");
        if offered {
            let agent_offer: String = redis::cmd("HGET")
                .arg(keys.agent(&offer_agent))
                .arg("offer")
                .query_async(&mut conn)
                .await
                .expect("agent offer");
            assert_eq!(
                agent_offer, offer,
                "{t} is offered to {offer_agent} by {offer}"
            );
        }
    }
    drop_namespace(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_matchers_never_offer_one_ticket_twice_more_agents_than_tickets() {
    race_matching(12, 8, 48).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_matchers_never_offer_one_agent_two_tickets_more_tickets_than_agents() {
    race_matching(5, 12, 48).await;
}
