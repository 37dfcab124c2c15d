//! Answers to one offer raced: double accepts, a decline and a cancellation at once settle it
//! exactly once (an accept repeated answers the same, but assigns once).
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use dispatcher::matcher::Matcher;
use e2e::{drop_namespace, stream_events, REDIS_URL};
use shared::domain::{DeclineReason, OfferId, TicketId};
use shared::store::{Store, StoreError};

use crate::support::{
    agent_id, available_agents, field, fresh_store, queued_tickets, replay_violations, seed, Rng,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_answers_to_an_offer_settle_it_exactly_once() {
    let mut rng = Rng::new(seed());
    let (store, namespace) = fresh_store().await;
    let n = 10;
    available_agents(&store, n, &mut rng).await;
    let ticket_ids = queued_tickets(&store, n, &mut rng).await;
    let matcher = Matcher::new(store.clone().with_offer_timeout(Duration::from_secs(60)));
    for t in &ticket_ids {
        assert!(
            matcher.route_ticket(t).await.expect("route").is_some(),
            "{t} offered"
        );
    }
    let keys = store.keys().clone();
    let mut conn = store.conn();
    let mut offers = Vec::new();
    for t in &ticket_ids {
        let (offer, agent): (String, String) = redis::cmd("HMGET")
            .arg(keys.ticket(t))
            .arg(&["offer", "offer_agent"])
            .query_async(&mut conn)
            .await
            .expect("ticket hash");
        offers.push((t.clone(), offer, agent));
    }
    assert_eq!(
        offers
            .iter()
            .map(|(_, _, a)| a)
            .collect::<HashSet<_>>()
            .len(),
        n,
        "one offer per agent"
    );

    // Per offer: two accepts, a decline (every other offer) and a cancellation (every third),
    // from four separate connections, all at once.
    let stores: Vec<Store> = (0..4)
        .map(|_| Store::open(REDIS_URL, &namespace).expect("store"))
        .collect();
    let go = Arc::new(tokio::sync::Barrier::new(n));
    let mut joins = Vec::new();
    for (i, (ticket, offer, agent)) in offers.clone().into_iter().enumerate() {
        let stores = stores.clone();
        let go = go.clone();
        joins.push(tokio::spawn(async move {
            let aid = agent_id(&agent);
            let oid = OfferId::try_from(offer.as_str()).expect("offer id");
            let tid = TicketId::try_from(ticket.as_str()).expect("ticket id");
            go.wait().await;
            let (a1, a2, d, c) = tokio::join!(
                stores[0].accept(&aid, &oid),
                stores[1].accept(&aid, &oid),
                async {
                    if i % 2 == 0 {
                        {
                            let reason = DeclineReason::try_from("race").ok();
                            Some(stores[2].decline(&aid, &oid, reason.as_ref()).await)
                        }
                    } else {
                        None
                    }
                },
                async {
                    if i % 3 == 0 {
                        Some(stores[3].cancel_ticket(&tid).await)
                    } else {
                        None
                    }
                },
            );
            (i, a1.map(drop), a2.map(drop), d, c)
        }));
    }
    let mut outcomes = Vec::new();
    for j in joins {
        outcomes.push(j.await.expect("task"));
    }

    let events = stream_events(&namespace).await;
    for (i, a1, a2, d, c) in outcomes {
        let (ticket, _, agent) = &offers[i];
        let ok_accepts = usize::from(a1.is_ok()) + usize::from(a2.is_ok());
        let declined = matches!(d, Some(Ok(())));
        let cancelled = matches!(c, Some(Ok(())));
        let answer = |r: &Result<(), StoreError>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let story = format!(
            "offer {i} ({ticket} to {agent}): accepts {} / {}, decline {:?}, cancel {:?}",
            answer(&a1),
            answer(&a2),
            d.as_ref().map(answer),
            c.as_ref().map(answer)
        );
        // Both accepts may answer ok (API.md §6: accepting again an accepted offer answers
        // `assigned` again and changes nothing), but the ticket is assigned once.
        let accepted = usize::from(ok_accepts > 0);
        assert!(
            accepted + usize::from(declined) <= 1,
            "both accepted and declined: {story}"
        );
        if c.is_some() {
            assert!(
                cancelled,
                "cancelling an unfinished ticket succeeds: {story}"
            );
        }
        let of_ticket = |kind: &str| {
            events
                .iter()
                .filter(|e| field(e, "type") == kind && field(e, "ticket") == ticket)
                .count()
        };
        assert_eq!(of_ticket("ticket_assigned"), accepted, "{story}");
        assert_eq!(
            of_ticket("offer_declined"),
            usize::from(declined),
            "{story}"
        );
        let ticket_view = store
            .ticket(&TicketId::try_from(ticket.as_str()).expect("id"))
            .await
            .expect("ticket")
            .expect("exists");
        let agent_view = store
            .agent(&agent_id(agent))
            .await
            .expect("agent")
            .expect("exists");
        let holds = agent_view
            .state
            .active_tickets
            .iter()
            .any(|t| t.as_str() == ticket);
        let expected = if cancelled {
            "cancelled"
        } else if accepted == 1 {
            "assigned"
        } else if declined {
            "queued"
        } else {
            "offered"
        };
        let status = serde_json::to_value(ticket_view.status).expect("status");
        assert_eq!(status, expected, "{story}");
        assert_eq!(
            holds,
            expected == "assigned",
            "agent holds it iff assigned: {story}"
        );
        if expected == "assigned" {
            assert_eq!(
                ticket_view.agent_id.as_deref(),
                Some(agent.as_str()),
                "{story}"
            );
        }
        let agent_offer: String = redis::cmd("HGET")
            .arg(keys.agent(agent))
            .arg("offer")
            .query_async(&mut conn)
            .await
            .expect("agent offer");
        assert_eq!(
            agent_offer.is_empty(),
            expected != "offered",
            "the agent's pending offer is gone iff the offer was settled: {story}"
        );
    }
    let replay = replay_violations(&events, &HashMap::new());
    assert!(
        replay.is_empty(),
        "the event stream breaks the rules: {replay:#?}"
    );
    drop_namespace(&namespace).await;
}
