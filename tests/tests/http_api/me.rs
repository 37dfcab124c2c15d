//! The gateway's `GET /v1/me` (API.md §7).

use e2e::{profile, spawn_app, token};
use serde_json::json;

use crate::support::assert_problem;

#[tokio::test]
async fn me_returns_the_agents_own_profile_and_state() {
    let app = spawn_app().await;
    let body = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    app.put_agent("a-17", &body).await;
    app.put_agent("a-18", &profile(&["de"], json!({}), 1)).await;
    let a = app.get_me(&token("agent", "a-17")).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k}: {a:?}");
    }
    assert_eq!(a.body["state"]["status"], "offline");
    assert_eq!(a.body["state"]["connected"], false);
    assert_eq!(a.body["state"]["active_tickets"], json!([]));
}

#[tokio::test]
async fn me_with_an_admin_token_is_403() {
    let app = spawn_app().await;
    app.put_agent("a-17", &profile(&["sv"], json!({}), 1)).await;
    for role in ["admin", "escalation", "payroll"] {
        let a = app.get_me(&token(role, "a-17")).await;
        assert!(a.status == 403, "{role}: {a:?}");
        assert_problem(&a, 403);
    }
}

#[tokio::test]
async fn me_for_an_agent_not_on_the_roster_is_404() {
    let app = spawn_app().await;
    let a = app.get_me(&token("agent", "a-ghost")).await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn me_without_a_token_is_401() {
    let app = spawn_app().await;
    let a = app.get_me("").await;
    assert_problem(&a, 401);
}
