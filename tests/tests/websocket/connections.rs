//! One live connection per agent, on one gateway and across two: a second connection replaces the
//! first (4009) without making the agent look disconnected or losing its pending offer.

use std::time::Duration;

use agent_app_api::hub::Outbound;
use agent_app_api::push::Delivery;
use e2e::{profile, spawn_app, ticket, AgentClient, TestApp};
use serde_json::json;

use crate::support::{agent_profile, assert_still_open, gateway_of, state, two_gateways, welcomed};

/// Asserts `state.connected` stays true for `wait`.
async fn assert_stays_connected(app: &TestApp, id: &str, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let s = state(app, id).await;
        assert_eq!(s["connected"], true, "agent {id} looks disconnected: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts the namespace's event stream records no drop of the agent's connection and no
/// withdrawal of its offer (what a replaced connection's close must not cause).
async fn assert_never_dropped(app: &TestApp, id: &str) {
    let events = app.events().await;
    let drops: Vec<_> = events
        .iter()
        .filter(|e| {
            e.get("agent").map(String::as_str) == Some(id)
                && matches!(
                    e.get("type").map(String::as_str),
                    Some("agent_disconnected" | "offer_withdrawn")
                )
        })
        .collect();
    assert!(
        drops.is_empty(),
        "agent {id} was dropped by a replacement: {drops:#?}"
    );
}

#[tokio::test]
async fn a_second_connection_on_the_same_gateway_closes_the_first_with_4009_and_is_welcomed() {
    let app = spawn_app().await;
    let mut first = welcomed(&app, "a-1").await;
    let mut second = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(welcome["agent_id"], "a-1");
    let closed = first.expect_close().await;
    assert_eq!(closed.code, 4009, "{closed:?}");
    assert_still_open(&mut second).await;
}

#[tokio::test]
async fn a_second_connection_on_another_gateway_closes_the_first_with_4009_and_is_welcomed() {
    let app = two_gateways().await;
    let mut first = welcomed(&app, "a-1").await;
    let mut second = AgentClient::connect(&app.gateways[1], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(welcome["agent_id"], "a-1");
    let closed = first.expect_close().await;
    assert_eq!(closed.code, 4009, "{closed:?}");
    assert_still_open(&mut second).await;
}

#[tokio::test]
async fn a_replaced_connection_on_the_same_gateway_does_not_make_the_agent_look_disconnected() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a-1", &agent_profile()).await;
    let mut second = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(first.expect_close().await.code, 4009);

    assert_stays_connected(&app, "a-1", Duration::from_millis(1000)).await;
    assert_never_dropped(&app, "a-1").await;
    let s = state(&app, "a-1").await;
    assert_eq!(s["status"], "available", "{s}");

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = second.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
}

#[tokio::test]
async fn a_replaced_connection_on_another_gateway_does_not_make_the_agent_look_disconnected() {
    let app = two_gateways().await;
    let mut first = app.available_agent("a-1", &agent_profile()).await;
    let mut second = AgentClient::connect(&app.gateways[1], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(first.expect_close().await.code, 4009);

    assert_stays_connected(&app, "a-1", Duration::from_millis(1000)).await;
    assert_never_dropped(&app, "a-1").await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = second.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
    second
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    second.expect("assigned").await;
}

#[tokio::test]
async fn the_replacing_connections_welcome_carries_the_pending_offer_which_it_can_accept() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = first.expect("offer").await;
    let shift = state(&app, "a-1").await["shift_id"].clone();

    let mut second = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(first.expect_close().await.code, 4009);
    assert_eq!(welcome["status"], "available", "{welcome}");
    assert_eq!(welcome["shift_id"], shift, "{welcome}");
    let pending = &welcome["pending_offer"];
    assert_eq!(pending["offer_id"], offer["offer_id"], "{welcome}");
    assert_eq!(pending["ticket_id"], id.as_str(), "{welcome}");
    assert!(pending.get("context").is_none(), "{welcome}");

    // The first connection's close did not withdraw the offer.
    second
        .send(json!({"type": "accept", "offer_id": offer["offer_id"], "ref": "a"}))
        .await;
    let assigned = second.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
    assert_eq!(app.get_ticket(&id).await.body["offers_made"], 1);
    assert_never_dropped(&app, "a-1").await;
}

#[tokio::test]
async fn the_replacing_connections_welcome_on_another_gateway_carries_the_pending_offer() {
    let app = two_gateways().await;
    let mut first = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = first.expect("offer").await;

    let mut second = AgentClient::connect(&app.gateways[1], "a-1").await;
    let welcome = second.expect("welcome").await;
    assert_eq!(first.expect_close().await.code, 4009);
    assert_eq!(
        welcome["pending_offer"]["offer_id"], offer["offer_id"],
        "{welcome}"
    );
    second
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    let assigned = second.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
}

/// Replaces each of `agents` connections `rounds` times over `gateways` (round-robin), checking
/// every `welcome` carries the agent's pending offer and every old connection closes with 4009.
async fn replace_repeatedly(app: &TestApp, agents: usize, rounds: usize) {
    let mut clients = Vec::new();
    for i in 0..agents {
        let id = format!("a-{i}");
        let mut client = app
            .available_agent(&id, &profile(&["sv"], json!({}), 1))
            .await;
        app.new_ticket(&ticket("sv", json!({}), 5)).await;
        let offer = client.expect("offer").await;
        clients.push((id, client, offer));
    }
    let mut tasks = Vec::new();
    for (id, mut current, offer) in clients {
        let gateways = app.gateways.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let gateway = &gateways[(round + 1) % gateways.len()];
                let mut next = AgentClient::connect(gateway, &id).await;
                let welcome = next.expect("welcome").await;
                let closed = current.expect_close().await;
                current = next;
                if closed.code != 4009 {
                    let failure = format!("{id} round {round}: old connection closed {closed:?}");
                    return (current, Some(failure));
                }
                if welcome["pending_offer"]["offer_id"] != offer["offer_id"] {
                    let failure = format!("{id} round {round}: offer lost: {welcome}");
                    return (current, Some(failure));
                }
            }
            (current, None)
        }));
    }
    // The live connections are kept open until the checks are done.
    let mut live = Vec::new();
    let mut failures = Vec::new();
    for task in tasks {
        let (client, failure) = task.await.expect("replacement task");
        live.push(client);
        failures.extend(failure);
    }
    assert!(failures.is_empty(), "{failures:#?}");
    for i in 0..agents {
        let id = format!("a-{i}");
        assert_eq!(state(app, &id).await["connected"], true);
        assert_never_dropped(app, &id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_connections_on_one_gateway_never_drops_the_agent_or_its_pending_offer() {
    let app = spawn_app().await;
    replace_repeatedly(&app, 12, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replacing_connections_across_two_gateways_never_drops_the_agent_or_its_pending_offer() {
    let app = two_gateways().await;
    replace_repeatedly(&app, 12, 50).await;
}

#[tokio::test]
async fn pushes_go_on_the_channel_of_the_agents_gateway_only() {
    let app = two_gateways().await;
    let mut one = app.available_agent("a-1", &agent_profile()).await;
    let mut conn = app.redis().await;
    let keys = shared::keys::Keys::new(&app.namespace);
    let (inst, pinst): (String, String) = redis::cmd("HMGET")
        .arg(keys.agent("a-1"))
        .arg(&["inst", "pinst"])
        .query_async(&mut conn)
        .await
        .expect("the agent's gateway");
    assert_eq!(
        pinst,
        format!("{inst} sharded"),
        "a gateway of this build reads frames on a sharded channel of its own"
    );
    let store = shared::store::Store::open(e2e::REDIS_URL, &app.namespace).expect("a store");
    let channels = [keys.push_channel(), keys.push_gateway(&inst)];
    let mut messages = store
        .subscribe(&channels, &channels)
        .await
        .expect("subscribed");

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = one.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
    let msg = tokio::time::timeout(Duration::from_secs(2), messages.next())
        .await
        .expect("a push was published")
        .expect("the subscription is open");
    assert_eq!(
        msg.channel,
        keys.push_gateway(&inst),
        "the offer went on the gateway's channel, not the one every gateway reads"
    );
    assert!(
        msg.sharded,
        "published with SPUBLISH, to stay on a cluster's shard"
    );
    assert!(
        msg.payload.starts_with(b"f1\n"),
        "the push is a frame ready to send"
    );
    let delivery = Delivery::parse(&msg.payload).expect("a readable push");
    let Outbound::Frame { text, offer_id } = delivery.out else {
        panic!("an offer frame was expected: {delivery:?}");
    };
    assert_eq!(e2e::exact_frame(&text), offer);
    assert_eq!(offer_id.as_deref(), offer["offer_id"].as_str());
    let more = tokio::time::timeout(Duration::from_millis(300), messages.next()).await;
    assert!(more.is_err(), "one push, on one channel: {more:?}");
}

/// During a rolling deploy an agent may be recorded as connected through an older gateway: one
/// that reads frames on its own plain (not sharded) channel (`pinst` is `<instance> frames`),
/// one that reads JSON pushes there (`pinst` is its instance), or one older still that reads
/// the channel every gateway reads (`pinst` empty). This build's functions publish for
/// each what it reads, and this build's gateway, which the agent is really connected to, reads
/// both: the agent gets the same frames.
#[tokio::test]
async fn pushes_for_agents_recorded_by_older_gateways_still_arrive() {
    let app = spawn_app().await;
    let mut one = app.available_agent("a-1", &agent_profile()).await;
    let mut conn = app.redis().await;
    let keys = shared::keys::Keys::new(&app.namespace);
    let inst = gateway_of(&app, "a-1").await;
    for pinst in [format!("{inst} frames"), inst.clone(), String::new()] {
        let _: () = redis::cmd("HSET")
            .arg(keys.agent("a-1"))
            .arg("pinst")
            .arg(&pinst)
            .query_async(&mut conn)
            .await
            .expect("an older gateway's record");
        let id = app
            .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
            .await;
        let offer = one.expect("offer").await;
        assert_eq!(offer["ticket_id"], id.as_str(), "pinst {pinst:?}");
        assert_eq!(offer["skills"], json!({"refunds": 3}), "pinst {pinst:?}");
        app.cancel_ticket(&id).await;
        let revoked = one.expect("offer_revoked").await;
        assert_eq!(revoked["reason"], "cancelled", "pinst {pinst:?}");
    }
}

/// A dispatcher that takes a live gateway for dead (as once after a long Redis outage) drops
/// its agents in Redis while their sockets stay open. The gateway's next heartbeat finds its
/// record gone, and each such connection binds itself again, as a reconnect within the grace
/// period would: the shift goes on, and the client gets a fresh `welcome` saying what holds.
#[tokio::test]
async fn a_live_gateway_taken_for_dead_binds_its_connections_again() {
    let app = spawn_app().await;
    let mut one = app.available_agent("a-1", &agent_profile()).await;
    let before = state(&app, "a-1").await;
    let shift = before["shift_id"].clone();
    assert!(shift.is_string(), "on shift: {before}");
    let inst = gateway_of(&app, "a-1").await;

    let store = shared::store::Store::open(e2e::REDIS_URL, &app.namespace).expect("store");
    let dropped = store
        .reap_gateway(&inst, Duration::from_secs(60))
        .await
        .expect("reaped");
    assert_eq!(dropped, 1);
    assert_eq!(state(&app, "a-1").await["connected"], false);

    // The gateway beats every 3 s.
    let welcome = one.expect_within("welcome", Duration::from_secs(5)).await;
    assert_eq!(welcome["status"], "available", "{welcome}");
    assert_eq!(
        welcome["shift_id"], shift,
        "the same shift goes on: {welcome}"
    );
    let after = state(&app, "a-1").await;
    assert_eq!(after["connected"], true, "{after}");
    assert_eq!(after["shift_id"], shift, "{after}");
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = one.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
}

/// An offer pushed to a gateway that holds no connection of its agent (the connection closed,
/// its disconnect not recorded yet) reached no client: the gateway says so, and Redis drops
/// that connection at once, as its disconnect would. The offer is withdrawn, not missed: the
/// agent is not barred from the ticket, and the ticket does not wait out the offer timeout.
#[tokio::test]
async fn an_offer_no_connection_received_is_withdrawn_not_missed() {
    let app = spawn_app().await;
    // A real connection, to learn the gateway's instance.
    let _other = app.welcomed_agent("a-0", &agent_profile()).await;
    let keys = shared::keys::Keys::new(&app.namespace);
    let inst = gateway_of(&app, "a-0").await;
    // Redis records a-1 as connected through that gateway, which holds no such connection.
    app.add_agent("a-1", &agent_profile()).await;
    let store = shared::store::Store::open(e2e::REDIS_URL, &app.namespace).expect("store");
    e2e::direct::connected_through(&store, "a-1", "c-gone", &inst).await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let ticket = app.wait_ticket_status(&id, "queued").await;
    assert_eq!(ticket["offers_made"], 1, "{ticket}");
    let s = state(&app, "a-1").await;
    assert_eq!(
        s["connected"], false,
        "dropped as its disconnect would: {s}"
    );
    let (missed, barred): (Option<String>, bool) = redis::pipe()
        .hget(keys.agent("a-1"), "missed")
        .sismember(keys.declined(&id), "a-1")
        .query_async(&mut app.redis().await)
        .await
        .expect("the agent's record");
    assert!(
        missed.as_deref().is_none_or(|m| m == "0"),
        "not counted as missed: {missed:?}"
    );
    assert!(!barred, "not barred from the ticket");
    let events = app.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.get("type").map(String::as_str) == Some("offer_withdrawn")),
        "withdrawn: {events:?}"
    );
}
