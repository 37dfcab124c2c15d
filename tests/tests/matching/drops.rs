//! Dropped connections (API.md §5, §6): pending offers, the grace period, reconnects and a new
//! connection taking over.

use std::time::Duration;

use e2e::{spawn_app, spawn_with, AgentClient, Options};
use serde_json::{json, Value};

use crate::support::{
    a_moment, accept, offered, state_of, sv, sv_ticket, take, wait_disconnected, AT_ONCE,
};

#[tokio::test]
async fn a_dropped_agents_pending_offer_goes_at_once_to_another_agent() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut second = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut first, &id).await;

    first.close().await;

    let offer = second.expect_within("offer", AT_ONCE).await;
    assert_eq!(offer["ticket_id"], id.as_str());
}

#[tokio::test]
async fn a_dropped_agents_tickets_wait_through_the_grace_period_then_go_to_another_agent() {
    let app = spawn_with(Options {
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let mut dropped = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut dropped, &id).await;
    let mut other = app.available_agent("b", &sv(json!({}), 1)).await;

    dropped.close().await;
    wait_disconnected(&app, "a").await;

    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["agent_id"], "a");
    other.expect_silence(Duration::from_millis(300)).await;
    offered(&mut other, &id).await;
    assert_eq!(state_of(&app, "a").await["active_tickets"], json!([]));
}

#[tokio::test]
async fn an_agent_reconnecting_within_the_grace_period_keeps_its_tickets_and_shift() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 2)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &id).await;
    let shift = state_of(&app, "a").await["shift_id"].clone();
    agent.close().await;
    wait_disconnected(&app, "a").await;

    let mut agent = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(welcome["shift_id"], shift);
    assert_eq!(welcome["active_tickets"][0]["ticket_id"], id.as_str());
    assert_eq!(welcome["active_tickets"].as_array().map(Vec::len), Some(1));
    assert_eq!(welcome["pending_offer"], Value::Null);
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
}

#[tokio::test]
async fn a_new_connection_takes_over_the_active_tickets_and_the_pending_offer() {
    let app = spawn_app().await;
    let mut old = app.available_agent("a", &sv(json!({}), 2)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut old, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut old, &second).await;

    let mut new = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = new.expect("welcome").await;
    assert_eq!(old.expect_close().await.code, 4009);
    assert_eq!(welcome["active_tickets"][0]["ticket_id"], first.as_str());
    assert_eq!(welcome["pending_offer"]["offer_id"], offer.as_str());
    assert_eq!(welcome["pending_offer"]["ticket_id"], second.as_str());
    let assigned = accept(&mut new, &offer).await;
    assert_eq!(assigned["ticket_id"], second.as_str());
}

#[tokio::test]
async fn a_ticket_withdrawn_from_a_dropped_agent_is_offered_to_it_again_when_it_returns() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut agent, &id).await;
    agent.close().await;
    app.wait_ticket_status(&id, "queued").await;

    let mut agent = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = agent.expect("welcome").await;
    let offer = if welcome["pending_offer"].is_null() {
        agent.expect("offer").await
    } else {
        welcome["pending_offer"].clone()
    };
    assert_eq!(offer["ticket_id"], id.as_str());
}
