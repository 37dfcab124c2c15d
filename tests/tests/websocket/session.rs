//! The agent's session: status changes, `welcome` and its restoration after a reconnect, removal
//! from the roster, and `GET /v1/me`.

use std::time::Duration;

use e2e::{spawn_app, ticket, token, AgentClient, TestApp, FRAME_WAIT};
use serde_json::{json, Value};

use crate::support::{
    agent_profile, assert_still_open, expect_error, expired_token, foreign_token, roster, state,
    two_gateways, welcomed,
};

/// Polls until the agent's `state.connected` is `connected`.
async fn wait_connected(app: &TestApp, id: &str, connected: bool) {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let s = state(app, id).await;
        if s["connected"] == connected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent {id} never became connected={connected}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /v1/me` on the first gateway with `token` (none if empty).
async fn get_me(app: &TestApp, token: &str) -> (u16, Value) {
    let a = app.get_me(token).await;
    (a.status, a.body)
}

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn set_status_is_answered_by_a_status_frame_with_reason_requested() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    for status in ["available", "break", "available", "offline"] {
        agent
            .send(json!({"type": "set_status", "status": status, "ref": status}))
            .await;
        let reply = agent.expect("status").await;
        assert_eq!(reply["status"], status, "{reply}");
        assert_eq!(reply["reason"], "requested", "{reply}");
        assert_eq!(reply["ref"], status, "{reply}");
        assert_eq!(state(&app, "a-1").await["status"], status);
    }
}

#[tokio::test]
async fn going_available_from_offline_starts_a_shift_and_offline_ends_it() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent.set_status("available").await;
    let s = state(&app, "a-1").await;
    assert!(s["shift_id"].is_string(), "{s}");
    agent.set_status("offline").await;
    let s = state(&app, "a-1").await;
    assert_eq!(s["shift_id"], Value::Null, "{s}");
}

#[tokio::test]
async fn break_from_offline_is_refused_with_invalid_status_transition() {
    let app = spawn_app().await;
    let mut agent = welcomed(&app, "a-1").await;
    agent
        .send(json!({"type": "set_status", "status": "break", "ref": "b"}))
        .await;
    let e = expect_error(&mut agent, "invalid_status_transition").await;
    assert_eq!(e["ref"], "b");
    let s = state(&app, "a-1").await;
    assert_eq!(s["status"], "offline");
    assert_eq!(s["shift_id"], Value::Null);
    assert_still_open(&mut agent).await;
}

// ---------------------------------------------------------------------------------------------
// welcome
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_welcome_of_a_fresh_agent_has_every_field() {
    let app = spawn_app().await;
    let mut agent = app.agent("a-1", &agent_profile()).await;
    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["agent_id"], "a-1");
    assert_eq!(welcome["status"], "offline");
    assert_eq!(welcome.get("shift_id"), Some(&Value::Null), "{welcome}");
    assert_eq!(welcome["active_tickets"], json!([]));
    assert_eq!(
        welcome.get("pending_offer"),
        Some(&Value::Null),
        "{welcome}"
    );
    let server_time = welcome["server_time"]
        .as_str()
        .expect("server_time is a string");
    let t = chrono::DateTime::parse_from_rfc3339(server_time).expect("server_time is RFC 3339");
    assert_eq!(
        t.offset().local_minus_utc(),
        0,
        "server_time is UTC: {server_time}"
    );
    let skew = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    assert!(skew < 5, "server_time {server_time} is off by {skew}s");
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_restores_status_shift_and_active_tickets_with_context()
{
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let assigned = agent.accept_next().await;
    let shift = state(&app, "a-1").await["shift_id"].clone();
    assert!(shift.is_string());

    agent.close().await;
    wait_connected(&app, "a-1", false).await;

    let mut again = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = again.expect("welcome").await;
    assert_eq!(welcome["status"], "available", "{welcome}");
    assert_eq!(welcome["shift_id"], shift, "the shift goes on: {welcome}");
    let active = welcome["active_tickets"]
        .as_array()
        .expect("active_tickets");
    assert_eq!(active.len(), 1, "{welcome}");
    assert_eq!(active[0]["ticket_id"], id.as_str());
    assert_eq!(active[0]["context"]["customer_tier"], "gold", "{welcome}");
    assert_eq!(active[0]["conversation_id"], assigned["conversation_id"]);
    assert_eq!(active[0]["assigned_at"], assigned["assigned_at"]);
    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["agent_id"], "a-1");

    again.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
}

#[tokio::test]
async fn a_reconnect_within_the_grace_period_over_another_gateway_restores_the_shift() {
    let app = two_gateways().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    agent.accept_next().await;
    let shift = state(&app, "a-1").await["shift_id"].clone();
    agent.close().await;
    wait_connected(&app, "a-1", false).await;

    let mut again = AgentClient::connect(&app.gateways[1], "a-1").await;
    let welcome = again.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(welcome["shift_id"], shift);
    assert_eq!(welcome["active_tickets"][0]["ticket_id"], id.as_str());
}

#[tokio::test]
async fn a_ticket_whose_offer_was_pending_at_the_drop_is_offered_again_on_reconnect() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    agent.expect("offer").await;
    agent.close().await;
    wait_connected(&app, "a-1", false).await;

    let mut again = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = again.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    let offer = if welcome["pending_offer"].is_null() {
        again.expect("offer").await
    } else {
        welcome["pending_offer"].clone()
    };
    assert_eq!(offer["ticket_id"], id.as_str(), "{offer}");
    again
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    let assigned = again.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
}

// ---------------------------------------------------------------------------------------------
// Removal from the roster
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_the_agent_sends_status_offline_removed_and_closes_with_4003() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a-1", &agent_profile()).await;
    assert_eq!(app.delete_agent("a-1").await.status, 204);
    let status = agent.expect("status").await;
    assert_eq!(status["status"], "offline", "{status}");
    assert_eq!(status["reason"], "removed", "{status}");
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4003, "{closed:?}");
    assert_eq!(app.get_agent("a-1").await.status, 404);
}

#[tokio::test]
async fn a_removed_agent_can_no_longer_connect() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    assert_eq!(app.delete_agent("a-1").await.status, 204);
    let refused =
        AgentClient::try_connect(&app.gateways[0], "a-1", &token("agent", "a-1"), None).await;
    assert_eq!(refused.err(), Some(403));
}

// ---------------------------------------------------------------------------------------------
// GET /v1/me
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn get_me_with_the_agent_token_returns_its_own_profile_and_state() {
    let app = spawn_app().await;
    let _agent = app.available_agent("a-1", &agent_profile()).await;
    roster(&app, "a-2").await;
    let (status, me) = get_me(&app, &token("agent", "a-1")).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["agent_id"], "a-1");
    assert_eq!(me["display_name"], "Test Agent");
    assert_eq!(me["languages"], json!(["sv", "en"]));
    assert_eq!(me["hourly_rate_cents"], 1650);
    assert_eq!(me["state"]["status"], "available");
    assert_eq!(me["state"]["connected"], true);
    assert!(me["state"]["shift_id"].is_string(), "{me}");
    assert_eq!(me["state"]["active_tickets"], json!([]));

    let (status, other) = get_me(&app, &token("agent", "a-2")).await;
    assert_eq!(status, 200);
    assert_eq!(other["agent_id"], "a-2");
    assert_eq!(other["state"]["connected"], false);
}

#[tokio::test]
async fn get_me_with_a_token_of_another_role_is_403() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    for role in ["admin", "escalation", "payroll"] {
        let (status, body) = get_me(&app, &token(role, "a-1")).await;
        assert_eq!(status, 403, "role {role}: {body}");
        assert_eq!(body["status"], 403, "a problem document: {body}");
    }
}

#[tokio::test]
async fn get_me_without_a_valid_token_is_401() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    for t in [
        String::new(),
        foreign_token("agent", "a-1"),
        expired_token("agent", "a-1"),
    ] {
        let (status, body) = get_me(&app, &t).await;
        assert_eq!(status, 401, "token {t:?}: {body}");
    }
}
