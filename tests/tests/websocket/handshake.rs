//! The WebSocket handshake: the token in the `Authorization` header, the token in the first
//! frame (`auth`), and the `Origin` check.

use std::time::Duration;

use e2e::{handshake, spawn_app, spawn_with, token, ws_url, AgentClient, Options, Ws, FRAME_WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{agent_profile, expired_token, foreign_token, roster, state};

/// Reads a raw socket until it closes and returns the close code (1006 if it just dropped).
async fn raw_close_code(ws: &mut Ws) -> u16 {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("not closed within {FRAME_WAIT:?}"),
            Ok(Some(Ok(Message::Close(Some(f))))) => return u16::from(f.code),
            Ok(Some(Ok(Message::Close(None)))) => return 1005,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return 1006,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake: the token in the Authorization header
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_valid_agent_token_in_the_header_opens_the_socket_with_a_welcome() {
    let app = spawn_app().await;
    let mut agent = app.agent("a-1", &agent_profile()).await;
    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["agent_id"], "a-1");
}

#[tokio::test]
async fn a_header_token_signed_with_another_secret_is_refused_with_401() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let refused = AgentClient::try_connect(
        &app.gateways[0],
        "a-1",
        &foreign_token("agent", "a-1"),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(401));
}

#[tokio::test]
async fn an_expired_header_token_is_refused_with_401() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let refused = AgentClient::try_connect(
        &app.gateways[0],
        "a-1",
        &expired_token("agent", "a-1"),
        None,
    )
    .await;
    assert_eq!(refused.err(), Some(401));
}

#[tokio::test]
async fn a_header_token_that_is_not_a_jwt_is_refused_with_401() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let refused = AgentClient::try_connect(&app.gateways[0], "a-1", "not-a-jwt", None).await;
    assert_eq!(refused.err(), Some(401));
}

#[tokio::test]
async fn an_authorization_header_that_is_not_bearer_is_refused_with_401() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let refused = handshake(
        &ws_url(&app.gateways[0]),
        &[("authorization", format!("Basic {}", token("agent", "a-1")))],
    )
    .await;
    assert_eq!(refused.err(), Some(401));
}

#[tokio::test]
async fn a_header_token_of_another_role_is_refused_with_403() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    for role in ["admin", "escalation", "payroll"] {
        let refused =
            AgentClient::try_connect(&app.gateways[0], "a-1", &token(role, "a-1"), None).await;
        assert_eq!(refused.err(), Some(403), "role {role}");
    }
}

#[tokio::test]
async fn a_header_token_of_an_agent_not_on_the_roster_is_refused_with_403() {
    let app = spawn_app().await;
    let refused =
        AgentClient::try_connect(&app.gateways[0], "ghost", &token("agent", "ghost"), None).await;
    assert_eq!(refused.err(), Some(403));
}

// ---------------------------------------------------------------------------------------------
// Handshake: the token in the first frame
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_header_an_auth_first_frame_authenticates_and_gets_a_welcome() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    agent
        .send(json!({"type": "auth", "token": token("agent", "a-1")}))
        .await;
    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["agent_id"], "a-1");
    assert_eq!(state(&app, "a-1").await["connected"], true);
}

#[tokio::test]
async fn without_a_header_and_without_an_auth_frame_the_socket_closes_with_4001_after_10_s() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    // Still open (and silent) well into the 10 s.
    assert_eq!(agent.next(Duration::from_secs(8)).await, Ok(None));
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert_eq!(state(&app, "a-1").await["connected"], false);
}

#[tokio::test]
async fn a_bad_token_in_the_auth_frame_closes_with_4001() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    for bad in [
        foreign_token("agent", "a-1"),
        expired_token("agent", "a-1"),
        "garbage".to_owned(),
    ] {
        let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
        agent.send(json!({"type": "auth", "token": bad})).await;
        let closed = agent.expect_close().await;
        assert_eq!(closed.code, 4001, "token {bad}: {closed:?}");
    }
    assert_eq!(state(&app, "a-1").await["connected"], false);
}

#[tokio::test]
async fn an_auth_frame_with_a_token_of_another_role_closes_with_4003() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    agent
        .send(json!({"type": "auth", "token": token("admin", "a-1")}))
        .await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4003, "{closed:?}");
}

#[tokio::test]
async fn an_auth_frame_for_an_agent_not_on_the_roster_closes_with_4003() {
    let app = spawn_app().await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "ghost").await;
    agent
        .send(json!({"type": "auth", "token": token("agent", "ghost")}))
        .await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4003, "{closed:?}");
}

#[tokio::test]
async fn a_first_frame_that_is_not_auth_closes_with_4001() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    agent
        .send(json!({"type": "set_status", "status": "available"}))
        .await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert_eq!(state(&app, "a-1").await["status"], "offline");
}

#[tokio::test]
async fn a_first_frame_that_is_not_json_closes_with_4001() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let mut agent = AgentClient::connect_bare(&app.gateways[0], "a-1").await;
    agent
        .send_raw(Message::Text("hello, let me in".into()))
        .await;
    let closed = agent.expect_close().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
}

#[tokio::test]
async fn a_token_in_the_url_is_ignored() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    let url = format!(
        "{}?token={t}&access_token={t}",
        ws_url(&app.gateways[0]),
        t = token("agent", "a-1")
    );
    let mut ws = handshake(&url, &[])
        .await
        .expect("the handshake itself is not refused");
    ws.send(Message::Text(
        json!({"type": "set_status", "status": "available"})
            .to_string()
            .into(),
    ))
    .await
    .expect("frame sent");
    assert_eq!(raw_close_code(&mut ws).await, 4001);
    assert_eq!(state(&app, "a-1").await["status"], "offline");
}

// ---------------------------------------------------------------------------------------------
// Handshake: Origin
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_handshake_from_a_foreign_origin_is_refused_with_403() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    for origin in [
        "https://evil.example",
        "null",
        "http://127.0.0.1.evil.example",
    ] {
        let refused = AgentClient::try_connect(
            &app.gateways[0],
            "a-1",
            &token("agent", "a-1"),
            Some(origin),
        )
        .await;
        assert_eq!(refused.err(), Some(403), "origin {origin}");
    }
}

#[tokio::test]
async fn a_handshake_from_a_foreign_origin_is_refused_with_403_even_without_a_token() {
    let app = spawn_app().await;
    let refused =
        AgentClient::try_connect(&app.gateways[0], "a-1", "", Some("https://evil.example")).await;
    assert_eq!(refused.err(), Some(403));
}

#[tokio::test]
async fn a_handshake_from_the_services_own_origin_is_accepted() {
    let app = spawn_app().await;
    roster(&app, "a-1").await;
    // The client sends `Host: 127.0.0.1:<port>`, so the service's own origin is the gateway URL.
    let own = app.gateways[0].clone();
    let mut agent =
        AgentClient::try_connect(&app.gateways[0], "a-1", &token("agent", "a-1"), Some(&own))
            .await
            .expect("own origin accepted");
    agent.expect("welcome").await;
}

#[tokio::test]
async fn a_handshake_from_an_origin_listed_in_agent_app_origins_is_accepted() {
    let app = spawn_with(Options {
        origins: "https://agents.example.com,https://app.example.org".into(),
        ..Options::default()
    })
    .await;
    roster(&app, "a-1").await;
    for origin in ["https://agents.example.com", "https://app.example.org"] {
        let mut agent = AgentClient::try_connect(
            &app.gateways[0],
            "a-1",
            &token("agent", "a-1"),
            Some(origin),
        )
        .await
        .unwrap_or_else(|s| panic!("origin {origin} refused with {s}"));
        agent.expect("welcome").await;
        agent.close().await;
    }
    let refused = AgentClient::try_connect(
        &app.gateways[0],
        "a-1",
        &token("agent", "a-1"),
        Some("https://other.example.com"),
    )
    .await;
    assert_eq!(
        refused.err(),
        Some(403),
        "an unlisted origin is still refused"
    );
}
