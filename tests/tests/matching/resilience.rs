//! Routing where the state is not what this build would have left: a queue entry of a ticket
//! that is no longer queued (what an older build sharing the Redis during a rolling deploy
//! leaves when it moves a ticket without recording where it waits), a pending offer that the
//! agent's hash does not describe (made by an older build, or described for another offer), a
//! preferred agent that became free between two calls of one routing, and a due offer whose
//! lapse fails (which must not hold up the others). Driven through the store's calls.

use e2e::direct::{online_agent, ticket_fields};
use e2e::{delete_namespace_keys, fresh_namespace, REDIS_URL};
use serde_json::{json, Value};
use shared::domain::{OfferId, RequestedStatus, TicketId};
use shared::store::{CreatedTicket, NewTicketFields, Routed, Store};

async fn store() -> (Store, String) {
    let namespace = fresh_namespace();
    let store = Store::open(REDIS_URL, &namespace).expect("a Redis URL");
    store.load_library().await.expect("the library loads");
    (store, namespace)
}

fn fields(skills: Value, preferred: Option<&str>) -> NewTicketFields {
    let mut body = e2e::ticket("sv", skills, 5);
    if let Some(p) = preferred {
        body["preferred_agent_id"] = json!(p);
    }
    ticket_fields(&body)
}

fn profile(skills: Value) -> Value {
    e2e::profile(&["sv"], skills, 1)
}

async fn routed(store: &Store, id: &TicketId, f: &NewTicketFields, page: u64) -> Routed {
    match store
        .create_ticket(id, None, f, page)
        .await
        .expect("create")
    {
        CreatedTicket::Created { routed, .. } => routed,
        other => panic!("a new ticket: {other:?}"),
    }
}

#[tokio::test]
async fn a_queue_entry_of_a_ticket_already_offered_is_dropped_not_offered_again() {
    let (store, namespace) = store().await;
    let a = online_agent(&store, "a", &profile(json!({})), true).await;
    let t1 = TicketId::generate();
    let Routed::Offered { agent, .. } = routed(&store, &t1, &fields(json!({}), None), 256).await
    else {
        panic!("the free agent is offered the ticket");
    };
    assert_eq!(agent, "a");
    // What an older build leaves: the offered ticket still in its queues.
    let mut conn = store.conn();
    let keys = store.keys().clone();
    let class = shared::keys::queue_class("", "");
    let _: () = redis::pipe()
        .zadd(keys.queue("sv"), t1.as_str(), 1)
        .zadd(keys.class_queue("sv", &class), t1.as_str(), 1)
        .hset(keys.queue_classes("sv"), &class, "1")
        .sadd(keys.queues(), "sv")
        .query_async(&mut conn)
        .await
        .expect("a stale queue entry");

    let b = online_agent(&store, "b", &profile(json!({})), true).await;
    let offer_b: String = redis::cmd("HGET")
        .arg(keys.agent(b.as_str()))
        .arg("offer")
        .query_async(&mut conn)
        .await
        .expect("b's offer");
    assert_eq!(
        offer_b, "",
        "b is not offered the ticket a holds the offer of"
    );
    let left: i64 = redis::cmd("ZCARD")
        .arg(keys.class_queue("sv", &class))
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    assert_eq!(left, 0, "the stale entry is dropped");
    let (status, offer_agent): (String, String) = redis::cmd("HMGET")
        .arg(keys.ticket(t1.as_str()))
        .arg(&["status", "offer_agent"])
        .query_async(&mut conn)
        .await
        .expect("ticket");
    assert_eq!(
        (status.as_str(), offer_agent.as_str()),
        ("offered", a.as_str())
    );
    delete_namespace_keys(&mut conn, &namespace).await;
}

#[tokio::test]
async fn a_preferred_agent_free_by_the_next_call_of_a_routing_gets_the_ticket() {
    let (store, namespace) = store().await;
    for id in ["x1", "x2", "x3", "x4"] {
        online_agent(&store, id, &profile(json!({"refunds": 1})), true).await;
    }
    let p = online_agent(&store, "p", &profile(json!({"refunds": 5})), false).await;
    let t = TicketId::generate();
    // Nobody eligible among the first two index entries: the routing goes on from there.
    let first = routed(&store, &t, &fields(json!({"refunds": 5}), Some("p")), 2).await;
    assert_eq!(first, Routed::More { next_offset: 2 });
    store
        .set_status(&p, RequestedStatus::Available)
        .await
        .expect("p available");
    let next = store
        .route_ticket(t.as_str(), 2, 2)
        .await
        .expect("route_ticket");
    assert!(
        matches!(&next, Routed::Offered { agent, .. } if agent == "p"),
        "the preferred agent, eligible now, gets it: {next:?}"
    );
    delete_namespace_keys(&mut store.conn(), &namespace).await;
}

#[tokio::test]
async fn an_offer_the_agents_hash_does_not_describe_is_answered_from_its_record() {
    let (store, namespace) = store().await;
    let a = online_agent(&store, "a", &profile(json!({})), true).await;
    let keys = store.keys().clone();
    let mut conn = store.conn();
    // What the agent's hash says of its pending offer: nothing (an older build made it), or
    // another offer (this build's earlier one, left when an older build made this one).
    for pending in [None, Some("o-other|t-other|99999999999999")] {
        let t = TicketId::generate();
        let Routed::Offered { offer, .. } = routed(&store, &t, &fields(json!({}), None), 256).await
        else {
            panic!("the free agent is offered the ticket");
        };
        let offer = OfferId::try_from(offer.as_str()).expect("an offer id");
        let _: () = match pending {
            None => redis::cmd("HDEL")
                .arg(keys.agent("a"))
                .arg("pending")
                .query_async(&mut conn)
                .await
                .expect("HDEL"),
            Some(p) => redis::cmd("HSET")
                .arg(keys.agent("a"))
                .arg("pending")
                .arg(p)
                .query_async(&mut conn)
                .await
                .expect("HSET"),
        };
        let frame = store.accept(&a, &offer).await.expect("accepted");
        assert_eq!(frame.ticket_id, t.as_str(), "pending {pending:?}");
        let again = store
            .accept(&a, &offer)
            .await
            .expect("accepting again answers the same");
        assert_eq!(again.ticket_id, t.as_str());
        store
            .complete(&a, &t, shared::domain::Outcome::Resolved, None)
            .await
            .expect("completed");
    }
    delete_namespace_keys(&mut conn, &namespace).await;
}

#[tokio::test]
async fn an_offer_that_cannot_lapse_holds_up_no_other() {
    let namespace = fresh_namespace();
    let store = Store::open(REDIS_URL, &namespace)
        .expect("a Redis URL")
        .with_offer_timeout(std::time::Duration::from_millis(50));
    store.load_library().await.expect("the library loads");
    let mut offers = Vec::new();
    for id in ["a", "b"] {
        online_agent(&store, id, &profile(json!({})), true).await;
        let t = TicketId::generate();
        let Routed::Offered { agent, offer, .. } =
            routed(&store, &t, &fields(json!({}), None), 256).await
        else {
            panic!("a free agent is offered the ticket");
        };
        offers.push((agent, offer));
    }
    let (ok, bad) = (&offers[0], &offers[1]);
    // Data no build writes: the count of missed offers that the lapse increments.
    let mut conn = store.conn();
    let _: () = redis::cmd("HSET")
        .arg(store.keys().agent(&bad.0))
        .arg("missed")
        .arg("many")
        .query_async(&mut conn)
        .await
        .expect("HSET");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let expired = store
        .expire_offers(100, 3)
        .await
        .expect("the call succeeds");
    assert_eq!(expired.lapsed, 1, "the sound offer lapsed: {expired:?}");
    assert_eq!(expired.failed.len(), 1, "{expired:?}");
    assert_eq!(expired.failed[0].id, bad.1);
    assert!(
        expired.failed[0].error.contains("not an integer"),
        "Redis's error: {expired:?}"
    );
    let offer_status = |oid: &str| {
        let key = store.keys().offer(oid);
        let mut conn = store.conn();
        async move {
            let status: Option<String> = redis::cmd("HGET")
                .arg(key)
                .arg("status")
                .query_async(&mut conn)
                .await
                .expect("HGET");
            status
        }
    };
    assert_eq!(offer_status(&ok.1).await.as_deref(), Some("expired"));
    // The failed one is due again in 5 s, not at once, and not dropped.
    let now = store.now_ms().await.expect("TIME");
    let due: Option<f64> = redis::cmd("ZSCORE")
        .arg(store.keys().deadlines())
        .arg(&bad.1)
        .query_async(&mut conn)
        .await
        .expect("ZSCORE");
    let due = due.expect("the failed offer's deadline is kept");
    assert!(
        (now as f64 + 4_000.0..=now as f64 + 5_000.0).contains(&due),
        "due {due} at {now}"
    );
    delete_namespace_keys(&mut conn, &namespace).await;
}
