//! Cancelling a ticket in each state (API.md §4), and removing an agent with its connection, offer
//! and tickets (§3).

use std::collections::HashSet;

use e2e::spawn_app;
use serde_json::json;

use crate::support::{accept, gets_no_offer, offered, status_of, sv, sv_ticket, take};

// ---------------------------------------------------------------------------------------------
// Cancelling (§4)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_a_queued_ticket_cancels_it() {
    let app = spawn_app().await;
    let id = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&id).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    assert!(answer.body["cancelled_at"].is_string());
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    gets_no_offer(&mut agent).await;
}

#[tokio::test]
async fn cancelling_an_offered_ticket_revokes_the_offer_and_frees_the_agent() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut agent, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&first).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    let revoked = agent.expect("offer_revoked").await;
    assert_eq!(revoked["reason"], "cancelled");
    assert_eq!(revoked["offer_id"], offer.as_str());
    assert_eq!(revoked["ticket_id"], first.as_str());
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn cancelling_an_assigned_ticket_tells_the_agent_and_gives_back_its_capacity() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&first).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    let cancelled = agent.expect("ticket_cancelled").await;
    assert_eq!(cancelled["ticket_id"], first.as_str());
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn cancelling_a_completed_ticket_is_a_conflict() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &id).await;
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;

    let answer = app.cancel_ticket(&id).await;

    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["code"], "ticket_completed");
    assert_eq!(status_of(&app, &id).await, "completed");
}

#[tokio::test]
async fn cancelling_a_ticket_twice_succeeds_both_times() {
    let app = spawn_app().await;
    let id = app.new_ticket(&sv_ticket(5)).await;

    let first = app.cancel_ticket(&id).await;
    let second = app.cancel_ticket(&id).await;

    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(second.body["status"], "cancelled");
    assert_eq!(second.body["cancelled_at"], first.body["cancelled_at"]);
}

// ---------------------------------------------------------------------------------------------
// Removing an agent (§3)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn removing_an_agent_closes_its_connection_and_re_offers_its_offer_and_tickets() {
    let app = spawn_app().await;
    let mut removed = app.available_agent("a", &sv(json!({}), 2)).await;
    let assigned = app.new_ticket(&sv_ticket(5)).await;
    take(&mut removed, &assigned).await;
    let pending = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut removed, &pending).await;
    let mut other = app.available_agent("b", &sv(json!({}), 2)).await;

    assert_eq!(app.delete_agent("a").await.status, 204);

    removed.expect_close().await;
    assert_eq!(app.get_agent("a").await.status, 404);
    let mut got = HashSet::new();
    for _ in 0..2 {
        let offer = other.expect("offer").await;
        got.insert(offer["ticket_id"].as_str().expect("ticket_id").to_owned());
        accept(&mut other, offer["offer_id"].as_str().expect("offer_id")).await;
    }
    assert_eq!(got, HashSet::from([assigned, pending]));
}
