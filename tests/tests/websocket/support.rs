//! Helpers shared by the WebSocket tests: tokens, roster set-up, frame and state checks.

use e2e::{profile, spawn_with, AgentClient, Options, TestApp};
use serde_json::{json, Value};

/// A token signed with a secret the services do not know.
pub(crate) fn foreign_token(role: &str, sub: &str) -> String {
    shared::auth::mint_hs256("not-the-test-secret", sub, role, "dispatch", 3600)
}

/// A token that expired an hour ago (far beyond the 30 s leeway).
pub(crate) fn expired_token(role: &str, sub: &str) -> String {
    shared::auth::mint_hs256(e2e::SECRET, sub, role, "dispatch", -3600)
}

/// The services with two gateways, for what crosses from one to the other.
pub(crate) async fn two_gateways() -> TestApp {
    spawn_with(Options {
        gateways: 2,
        ..Options::default()
    })
    .await
}

pub(crate) fn agent_profile() -> Value {
    profile(&["sv", "en"], json!({"refunds": 4}), 2)
}

/// Creates agent `id` on the roster without connecting it.
pub(crate) async fn roster(app: &TestApp, id: &str) {
    app.add_agent(id, &agent_profile()).await;
}

/// Creates agent `id`, connects it over the first gateway and consumes its `welcome`.
pub(crate) async fn welcomed(app: &TestApp, id: &str) -> AgentClient {
    app.welcomed_agent(id, &agent_profile()).await
}

/// The next frame, which must be an `error` with `code`; returns it.
pub(crate) async fn expect_error(agent: &mut AgentClient, code: &str) -> Value {
    let frame = agent.expect("error").await;
    assert_eq!(
        frame["code"], code,
        "{}: unexpected error {frame}",
        agent.id
    );
    assert!(
        frame["message"].as_str().is_some_and(|m| !m.is_empty()),
        "an error carries a message: {frame}"
    );
    frame
}

/// Asserts the connection is still open and usable: a `set_status` gets its reply.
pub(crate) async fn assert_still_open(agent: &mut AgentClient) {
    agent
        .send(json!({"type": "set_status", "status": "offline", "ref": "still-open"}))
        .await;
    let reply = agent.expect("status").await;
    assert_eq!(reply["ref"], "still-open");
}

/// The agent's `state` as the dispatcher shows it.
/// The gateway instance Redis records agent `id` as connected through.
pub(crate) async fn gateway_of(app: &TestApp, id: &str) -> String {
    redis::cmd("HGET")
        .arg(shared::keys::Keys::new(&app.namespace).agent(id))
        .arg("inst")
        .query_async(&mut app.redis().await)
        .await
        .expect("the agent's gateway")
}

pub(crate) async fn state(app: &TestApp, id: &str) -> Value {
    let a = app.get_agent(id).await;
    assert_eq!(a.status, 200, "agent {id} readable: {a:?}");
    a.body["state"].clone()
}
