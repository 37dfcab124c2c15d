//! Offers and tickets that are not the agent's: unknown, another agent's or expired offers, and
//! tickets not assigned to the agent; and an accept repeated, which changes nothing.
use std::time::Duration;

use e2e::{profile, spawn_app, spawn_with, ticket, Options};
use serde_json::json;

use crate::support::{agent_profile, expect_error, state, welcomed};

#[tokio::test]
async fn accepting_an_unknown_offer_gets_offer_not_found() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    agent
        .send(json!({"type": "accept", "offer_id": "o-doesnotexist", "ref": "x"}))
        .await;
    let e = expect_error(&mut agent, "offer_not_found").await;
    assert_eq!(e["ref"], "x");
    assert_eq!(state(&app, "a-1").await["active_tickets"], json!([]));
}

#[tokio::test]
async fn declining_an_unknown_offer_gets_offer_not_found() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    agent
        .send(json!({"type": "decline", "offer_id": "o-doesnotexist", "reason": "busy"}))
        .await;
    expect_error(&mut agent, "offer_not_found").await;
}

#[tokio::test]
async fn accepting_another_agents_offer_gets_offer_not_found_and_the_owner_can_still_accept() {
    let app = spawn_app().await;
    let mut owner = app
        .available_agent("owner", &profile(&["sv"], json!({"refunds": 4}), 2))
        .await;
    // The thief speaks only German, so it is never offered the Swedish ticket.
    let mut thief = app
        .available_agent("thief", &profile(&["de"], json!({"refunds": 4}), 2))
        .await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = owner.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());

    thief
        .send(json!({"type": "accept", "offer_id": offer["offer_id"], "ref": "steal"}))
        .await;
    let e = expect_error(&mut thief, "offer_not_found").await;
    assert_eq!(e["ref"], "steal");
    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "offered", "nothing changed: {t}");
    assert_eq!(state(&app, "thief").await["active_tickets"], json!([]));

    owner
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    let assigned = owner.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["agent_id"], "owner");
}

#[tokio::test]
async fn declining_another_agents_offer_gets_offer_not_found_and_changes_nothing() {
    let app = spawn_app().await;
    let mut owner = app
        .available_agent("owner", &profile(&["sv"], json!({"refunds": 4}), 2))
        .await;
    let mut other = app
        .available_agent("other", &profile(&["de"], json!({"refunds": 4}), 2))
        .await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = owner.expect("offer").await;

    other
        .send(json!({"type": "decline", "offer_id": offer["offer_id"], "ref": "d"}))
        .await;
    let e = expect_error(&mut other, "offer_not_found").await;
    assert_eq!(e["ref"], "d");
    // The owner's offer was not withdrawn: no revoke, and it can still accept.
    owner.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(app.get_ticket(&id).await.body["status"], "offered");
    owner
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    let assigned = owner.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
}

#[tokio::test]
async fn accepting_an_expired_offer_gets_offer_expired_and_assigns_nothing() {
    let app = spawn_with(Options {
        offer_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = agent.expect("offer").await;
    let revoked = agent.expect("offer_revoked").await;
    assert_eq!(revoked["offer_id"], offer["offer_id"]);
    assert_eq!(revoked["reason"], "expired");

    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"], "ref": "late"}))
        .await;
    let e = agent.expect("error").await;
    assert_eq!(e["ref"], "late");
    // The code keeps an expired offer's record for a while, so it answers offer_expired;
    // offer_not_found would also be within the contract.
    assert!(
        e["code"] == "offer_expired" || e["code"] == "offer_not_found",
        "{e}"
    );
    assert_eq!(
        e["code"], "offer_expired",
        "what this implementation gives: {e}"
    );
    let t = app.get_ticket(&id).await.body;
    assert_ne!(t["status"], "assigned", "{t}");
    assert_eq!(state(&app, "a-1").await["active_tickets"], json!([]));
}

#[tokio::test]
async fn declining_an_expired_offer_gets_offer_expired() {
    let app = spawn_with(Options {
        offer_timeout_secs: 1,
        ..Options::default()
    })
    .await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    app.new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = agent.expect("offer").await;
    agent.expect("offer_revoked").await;
    agent
        .send(json!({"type": "decline", "offer_id": offer["offer_id"]}))
        .await;
    let e = agent.expect("error").await;
    assert!(
        e["code"] == "offer_expired" || e["code"] == "offer_not_found",
        "{e}"
    );
}

#[tokio::test]
async fn completing_a_ticket_assigned_to_another_agent_gets_ticket_not_found_and_changes_nothing() {
    let app = spawn_app().await;
    let mut owner = app
        .available_agent("owner", &profile(&["sv"], json!({"refunds": 4}), 2))
        .await;
    let mut other = app
        .available_agent("other", &profile(&["de"], json!({"refunds": 4}), 2))
        .await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    owner.accept_next().await;

    other
        .send(json!({"type": "complete", "ticket_id": id, "outcome": "resolved", "ref": "c"}))
        .await;
    let e = expect_error(&mut other, "ticket_not_found").await;
    assert_eq!(e["ref"], "c");
    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned", "{t}");
    assert_eq!(t["agent_id"], "owner");
    assert_eq!(state(&app, "owner").await["active_tickets"], json!([id]));

    owner.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
}

#[tokio::test]
async fn completing_an_unknown_or_unassigned_ticket_gets_ticket_not_found() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    // Queued: nobody is available.
    let queued = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    for id in ["t-doesnotexist", queued.as_str()] {
        agent
            .send(json!({"type": "complete", "ticket_id": id, "outcome": "unresolved"}))
            .await;
        expect_error(&mut agent, "ticket_not_found").await;
    }
    assert_eq!(app.get_ticket(&queued).await.body["status"], "queued");
}

#[tokio::test]
async fn accepting_again_an_accepted_offer_answers_assigned_again_and_changes_nothing() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    let offer = agent.expect("offer").await;
    let accept = json!({"type": "accept", "offer_id": offer["offer_id"], "ref": "retry"});
    agent.send(accept.clone()).await;
    let first = agent.expect("assigned").await;
    // The reply was lost, as far as the app knows: it sends the accept again.
    agent.send(accept).await;
    let again = agent.expect("assigned").await;
    assert_eq!(again, first, "the same answer, ref included");
    assert_eq!(state(&app, "a-1").await["active_tickets"], json!([id]));
    let assigned = app
        .events()
        .await
        .into_iter()
        .filter(|e| e.get("type").map(String::as_str) == Some("ticket_assigned"))
        .count();
    assert_eq!(assigned, 1, "assigned once");
    // Once the ticket is done, the old offer is no longer the agent's to accept.
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    expect_error(&mut agent, "offer_not_found").await;
}
