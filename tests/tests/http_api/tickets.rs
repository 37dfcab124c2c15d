//! Tickets (API.md §4): posting with its defaults and validation, idempotent retries, reading and
//! cancelling.

use e2e::{fetch, spawn_app, ticket, token, Answer, TestApp};
use serde_json::{json, Value};

use crate::support::{assert_code, assert_invalid, assert_problem, raw_json, ticket_with};

/// `POST /v1/tickets` with a raw body and optional `Idempotency-Key`.
async fn post_raw_ticket(app: &TestApp, body: &str, key: Option<&str>) -> Answer {
    let mut req = raw_json(app.http.post(app.dispatcher("/v1/tickets")), body)
        .bearer_auth(token("escalation", "engine"));
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    fetch(req).await
}

/// Posts `body`, asserting a 422 naming `field`.
async fn assert_ticket_rejected(app: &TestApp, body: &Value, field: &str) {
    let a = app.post_ticket(body).await;
    assert_invalid(&a, field);
}

#[tokio::test]
async fn a_posted_ticket_is_201_queued_with_every_field_of_the_contract() {
    let app = spawn_app().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(5);
    let body = json!({
        "conversation_id": "conv-8812",
        "language": "sv",
        "skills": {"refunds": 3},
        "priority": 7,
        "region": "north",
        "preferred_agent_id": "a-17",
        "summary": "Double charge on order 5521, customer asks for a refund",
        "context": {"transcript_url": "https://example.com/t/1", "customer_tier": "gold"}
    });
    let a = app.post_ticket(&body).await;
    assert_eq!(a.status, 201, "{a:?}");
    let t = &a.body;
    assert!(
        t["ticket_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{t}"
    );
    assert_eq!(t["conversation_id"], "conv-8812");
    assert_eq!(t["status"], "queued");
    assert_eq!(t["priority"], 7);
    assert_eq!(t["language"], "sv");
    assert_eq!(t["skills"], json!({"refunds": 3}));
    assert_eq!(t["region"], "north");
    assert_eq!(t["offers_made"], 0);
    for absent in [
        "agent_id",
        "assigned_at",
        "completed_at",
        "cancelled_at",
        "outcome",
    ] {
        assert!(
            t.get(absent).is_some_and(Value::is_null),
            "{absent} is present and null: {t}"
        );
    }
    let created = t["created_at"].as_str().expect("created_at is a string");
    let created = chrono::DateTime::parse_from_rfc3339(created).expect("created_at is RFC 3339");
    assert_eq!(created.offset().local_minus_utc(), 0, "UTC");
    assert!(created >= before && created <= chrono::Utc::now() + chrono::Duration::seconds(5));
    let id = t["ticket_id"].as_str().expect("ticket_id");
    let got = app.get_ticket(id).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body, t, "GET shows what POST returned");
}

#[tokio::test]
async fn a_ticket_without_a_priority_gets_priority_5() {
    let app = spawn_app().await;
    let a = app
        .post_ticket(&json!({"conversation_id": "c-1", "language": "en", "summary": "help"}))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["priority"], 5);
    assert_eq!(a.body["skills"], json!({}));
    assert!(a.body["region"].is_null());
}

#[tokio::test]
async fn a_ticket_without_a_language_is_422() {
    let app = spawn_app().await;
    let mut body = ticket("sv", json!({}), 5);
    body.as_object_mut().expect("object").remove("language");
    assert_ticket_rejected(&app, &body, "language").await;
}

#[tokio::test]
async fn a_ticket_summary_over_500_characters_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(
        &app,
        &ticket_with("summary", json!("s".repeat(501))),
        "summary",
    )
    .await;
    assert_ticket_rejected(&app, &ticket_with("summary", json!("")), "summary").await;
    let ok = app
        .post_ticket(&ticket_with("summary", json!("ö".repeat(500))))
        .await;
    assert_eq!(ok.status, 201, "500 characters is fine: {ok:?}");
}

#[tokio::test]
async fn a_conversation_id_over_128_characters_is_422() {
    let app = spawn_app().await;
    let body = ticket_with("conversation_id", json!("c".repeat(129)));
    assert_ticket_rejected(&app, &body, "conversation_id").await;
    let ok = app
        .post_ticket(&ticket_with("conversation_id", json!("c".repeat(128))))
        .await;
    assert_eq!(ok.status, 201, "128 characters is fine: {ok:?}");
}

#[tokio::test]
async fn a_priority_outside_0_to_9_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(&app, &ticket_with("priority", json!(10)), "priority").await;
    let ok = app.post_ticket(&ticket_with("priority", json!(0))).await;
    assert_eq!(ok.status, 201, "{ok:?}");
}

#[tokio::test]
async fn an_unknown_region_is_422() {
    let app = spawn_app().await;
    assert_ticket_rejected(&app, &ticket_with("region", json!("atlantis")), "region").await;
}

#[tokio::test]
async fn a_context_that_is_not_an_object_is_422() {
    let app = spawn_app().await;
    for context in [json!([1, 2]), json!("gold"), json!(42)] {
        assert_ticket_rejected(&app, &ticket_with("context", context), "context").await;
    }
}

#[tokio::test]
async fn a_context_over_64_kib_in_a_body_under_128_kib_is_422() {
    let app = spawn_app().await;
    let body = ticket_with("context", json!({"blob": "x".repeat(70 * 1024)}));
    assert!(body.to_string().len() < 128 * 1024);
    assert_ticket_rejected(&app, &body, "context").await;
}

#[tokio::test]
async fn an_invalid_preferred_agent_id_is_422() {
    let app = spawn_app().await;
    for id in [json!("a b"), json!("a".repeat(65)), json!("")] {
        let body = ticket_with("preferred_agent_id", id);
        assert_ticket_rejected(&app, &body, "preferred_agent_id").await;
    }
}

#[tokio::test]
async fn a_ticket_body_over_128_kib_is_413() {
    let app = spawn_app().await;
    let body = ticket_with("context", json!({"blob": "x".repeat(130 * 1024)}));
    let a = app.post_ticket(&body).await;
    assert_problem(&a, 413);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_and_body_returns_the_first_ticket_with_200() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help","skills":{"refunds":2,"disputes":1},"priority":7}"#;
    let a = post_raw_ticket(&app, first, Some("key-1")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let id = a.body["ticket_id"].as_str().expect("ticket_id").to_owned();
    let again = post_raw_ticket(&app, first, Some("key-1")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], id.as_str());
    assert_eq!(again.body["conversation_id"], "conv-idem");
}

#[tokio::test]
async fn an_idempotent_retry_matches_its_body_whatever_the_key_order() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help","skills":{"refunds":2,"disputes":1},"priority":7}"#;
    let reordered = r#"{ "priority": 7, "skills": {"disputes": 1, "refunds": 2}, "summary": "help", "language": "sv", "conversation_id": "conv-idem" }"#;
    let a = post_raw_ticket(&app, first, Some("key-order")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let again = post_raw_ticket(&app, reordered, Some("key-order")).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], a.body["ticket_id"]);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_422_idempotency_key_reused() {
    let app = spawn_app().await;
    let first = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let other = r#"{"conversation_id":"conv-idem","language":"sv","summary":"other help"}"#;
    let a = post_raw_ticket(&app, first, Some("key-2")).await;
    assert_eq!(a.status, 201, "{a:?}");
    let b = post_raw_ticket(&app, other, Some("key-2")).await;
    assert_code(&b, 422, "idempotency_key_reused");
}

#[tokio::test]
async fn another_idempotency_key_creates_another_ticket() {
    let app = spawn_app().await;
    let body = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let a = post_raw_ticket(&app, body, Some("key-a")).await;
    let b = post_raw_ticket(&app, body, Some("key-b")).await;
    let c = post_raw_ticket(&app, body, None).await;
    assert_eq!(
        (a.status, b.status, c.status),
        (201, 201, 201),
        "{a:?} {b:?} {c:?}"
    );
    let ids = [&a, &b, &c].map(|x| x.body["ticket_id"].as_str().expect("id").to_owned());
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);
}

#[tokio::test]
async fn an_idempotency_key_over_255_characters_is_422() {
    let app = spawn_app().await;
    let body = r#"{"conversation_id":"conv-idem","language":"sv","summary":"help"}"#;
    let a = post_raw_ticket(&app, body, Some(&"k".repeat(256))).await;
    assert_invalid(&a, "Idempotency-Key");
    let ok = post_raw_ticket(&app, body, Some(&"k".repeat(255))).await;
    assert_eq!(ok.status, 201, "255 characters is fine: {ok:?}");
}

#[tokio::test]
async fn get_of_an_unknown_ticket_is_404() {
    let app = spawn_app().await;
    let a = app.get_ticket("t-unknown").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn delete_of_an_unknown_ticket_is_404() {
    let app = spawn_app().await;
    let a = app.cancel_ticket("t-unknown").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn an_invalid_ticket_id_in_the_path_is_422_naming_ticket_id() {
    let app = spawn_app().await;
    for id in ["t".repeat(65), "t%20x".to_owned()] {
        assert_invalid(&app.get_ticket(&id).await, "ticket_id");
        assert_invalid(&app.cancel_ticket(&id).await, "ticket_id");
    }
}
