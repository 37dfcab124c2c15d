//! The roster (API.md §3): creating, replacing, reading, listing and deleting agents, and the
//! validation of profiles.

use e2e::{profile, spawn_app, Answer, TestApp};
use serde_json::{json, Value};

use crate::support::{assert_code, assert_invalid, assert_problem, profile_with, raw_json};

/// PUTs `body` for a fresh agent, asserts a 422 naming `field`, and that nothing was stored.
async fn assert_profile_rejected(app: &TestApp, body: &Value, field: &str) {
    let id = format!("a-{}", uuid::Uuid::new_v4().simple());
    let a = app.put_agent(&id, body).await;
    assert_invalid(&a, field);
    assert_eq!(
        app.get_agent(&id).await.status,
        404,
        "a rejected profile is not stored: {body}"
    );
}

fn ids_of(list: &Answer) -> Vec<String> {
    let mut ids: Vec<String> = list.body["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("the list is {{\"agents\": [...]}}: {list:?}"))
        .iter()
        .map(|a| a["agent_id"].as_str().expect("agent_id").to_owned())
        .collect();
    ids.sort();
    ids
}

async fn list_agents(app: &TestApp, query: &str) -> Answer {
    app.send(
        app.http.get(app.dispatcher(&format!("/v1/agents{query}"))),
        "admin",
    )
    .await
}

#[tokio::test]
async fn put_creates_an_agent_with_201_and_returns_the_profile_with_its_id_and_state() {
    let app = spawn_app().await;
    let body = json!({
        "display_name": "Astrid L.",
        "skills": {"refunds": 4, "disputes": 2},
        "languages": ["sv", "en"],
        "max_concurrent": 2,
        "location": {"lat": 63.8258, "lon": 20.2630},
        "timezone": "Europe/Stockholm",
        "hourly_rate_cents": 1650,
        "currency": "EUR"
    });
    let a = app.put_agent("a-17", &body).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k} echoed: {a:?}");
    }
    assert_eq!(a.body["state"]["status"], "offline", "{a:?}");
    assert_eq!(a.body["state"]["connected"], false, "{a:?}");
}

#[tokio::test]
async fn put_on_an_existing_agent_replaces_the_profile_with_200() {
    let app = spawn_app().await;
    let first = profile(&["sv"], json!({"refunds": 2}), 1);
    assert_eq!(app.put_agent("a-17", &first).await.status, 201);
    let second = json!({
        "display_name": "Astrid Lindqvist",
        "skills": {"disputes": 5},
        "languages": ["en", "de"],
        "max_concurrent": 3,
        "timezone": "Europe/Berlin",
        "hourly_rate_cents": 2000,
        "currency": "SEK"
    });
    let a = app.put_agent("a-17", &second).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in second.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k} replaced: {a:?}");
    }
    assert!(a.body["state"].is_object(), "{a:?}");
    let got = app.get_agent("a-17").await;
    assert_eq!(
        got.body["skills"],
        json!({"disputes": 5}),
        "replaced, not merged"
    );
    assert_eq!(got.body["display_name"], "Astrid Lindqvist");
}

#[tokio::test]
async fn get_returns_the_profile_and_an_offline_state_for_a_new_agent() {
    let app = spawn_app().await;
    let body = profile(&["sv", "en"], json!({"refunds": 4}), 2);
    app.put_agent("a-17", &body).await;
    let a = app.get_agent("a-17").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["agent_id"], "a-17");
    for (k, v) in body.as_object().expect("object") {
        assert_eq!(&a.body[k], v, "field {k}: {a:?}");
    }
    let state = &a.body["state"];
    assert_eq!(state["status"], "offline", "{a:?}");
    assert_eq!(state["connected"], false, "{a:?}");
    assert_eq!(state["active_tickets"], json!([]), "{a:?}");
    assert!(state.get("shift_id").is_some_and(Value::is_null), "{a:?}");
    let last_seen = state.get("last_seen_at").expect("state has last_seen_at");
    assert!(
        last_seen.is_null()
            || last_seen
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
        "last_seen_at is null or RFC 3339: {last_seen}"
    );
}

#[tokio::test]
async fn the_list_returns_every_agent_under_agents() {
    let app = spawn_app().await;
    app.put_agent("a-1", &profile(&["sv"], json!({}), 1)).await;
    app.put_agent("a-2", &profile(&["en"], json!({}), 1)).await;
    let a = list_agents(&app, "").await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(ids_of(&a), ["a-1", "a-2"]);
    let first = a.body["agents"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["agent_id"] == "a-1"))
        .expect("a-1 listed");
    assert_eq!(first["languages"], json!(["sv"]));
    assert_eq!(first["state"]["status"], "offline");
}

#[tokio::test]
async fn the_list_filters_by_status() {
    let app = spawn_app().await;
    app.put_agent("a-off", &profile(&["sv"], json!({}), 1))
        .await;
    let _online = app
        .available_agent("a-on", &profile(&["sv"], json!({}), 1))
        .await;
    let off = list_agents(&app, "?status=offline").await;
    assert_eq!(off.status, 200, "{off:?}");
    assert_eq!(ids_of(&off), ["a-off"]);
    let on = list_agents(&app, "?status=available").await;
    assert_eq!(on.status, 200, "{on:?}");
    assert_eq!(ids_of(&on), ["a-on"]);
    assert_eq!(on.body["agents"][0]["state"]["connected"], true);
    let on_break = list_agents(&app, "?status=break").await;
    assert_eq!(on_break.status, 200, "{on_break:?}");
    assert!(ids_of(&on_break).is_empty());
}

#[tokio::test]
async fn the_list_refuses_an_unknown_status_with_400() {
    let app = spawn_app().await;
    let a = list_agents(&app, "?status=bogus").await;
    assert_problem(&a, 400);
}

#[tokio::test]
async fn delete_removes_an_agent_with_204_and_it_is_then_404() {
    let app = spawn_app().await;
    app.put_agent("a-17", &profile(&["sv"], json!({}), 1)).await;
    let a = app.delete_agent("a-17").await;
    assert_eq!(a.status, 204, "{a:?}");
    let a = app.get_agent("a-17").await;
    assert_problem(&a, 404);
    assert!(ids_of(&list_agents(&app, "").await).is_empty());
}

#[tokio::test]
async fn delete_of_an_unknown_agent_is_404() {
    let app = spawn_app().await;
    let a = app.delete_agent("a-nobody").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn get_of_an_unknown_agent_is_404() {
    let app = spawn_app().await;
    let a = app.get_agent("a-nobody").await;
    assert_problem(&a, 404);
}

#[tokio::test]
async fn an_invalid_agent_id_in_the_path_is_422_naming_agent_id() {
    let app = spawn_app().await;
    let body = profile(&["sv"], json!({}), 1);
    for id in [
        "a".repeat(65),
        "a%20b".to_owned(),
        "a%2Fb".to_owned(),
        "%C3%A5".to_owned(),
    ] {
        let a = app.put_agent(&id, &body).await;
        assert_invalid(&a, "agent_id");
        let a = app.get_agent(&id).await;
        assert_invalid(&a, "agent_id");
        let a = app.delete_agent(&id).await;
        assert_invalid(&a, "agent_id");
    }
    let a = app.put_agent(&"a".repeat(64), &body).await;
    assert_eq!(a.status, 201, "64 characters is a valid id: {a:?}");
}

#[tokio::test]
async fn a_display_name_empty_or_over_100_characters_is_422() {
    let app = spawn_app().await;
    for name in [String::new(), "x".repeat(101)] {
        let body = profile_with("display_name", json!(name));
        assert_profile_rejected(&app, &body, "display_name").await;
    }
    let ok = profile_with("display_name", json!("é".repeat(100)));
    assert_eq!(app.put_agent("a-100", &ok).await.status, 201);
}

#[tokio::test]
async fn languages_empty_unknown_or_uppercase_are_422() {
    let app = spawn_app().await;
    for langs in [json!([]), json!(["xx"]), json!(["SV"])] {
        let body = profile_with("languages", langs);
        assert_profile_rejected(&app, &body, "languages").await;
    }
}

#[tokio::test]
async fn max_concurrent_outside_1_to_10_is_422() {
    let app = spawn_app().await;
    for n in [0, 11] {
        let body = profile_with("max_concurrent", json!(n));
        assert_profile_rejected(&app, &body, "max_concurrent").await;
    }
}

#[tokio::test]
async fn a_skill_with_an_invalid_name_or_a_level_outside_1_to_5_is_422() {
    let app = spawn_app().await;
    for skills in [
        json!({"Refunds": 1}),
        json!({"refunds": 6}),
        json!({"refunds": 0}),
    ] {
        let body = profile_with("skills", skills);
        assert_profile_rejected(&app, &body, "skills").await;
    }
}

#[tokio::test]
async fn a_latitude_outside_90_degrees_is_422() {
    let app = spawn_app().await;
    let body = profile_with("location", json!({"lat": 91.0, "lon": 20.0}));
    assert_profile_rejected(&app, &body, "location").await;
    let body = profile_with("location", json!({"lat": 10.0, "lon": -180.5}));
    assert_profile_rejected(&app, &body, "location").await;
}

#[tokio::test]
async fn a_timezone_that_is_not_an_iana_name_is_422() {
    let app = spawn_app().await;
    let body = profile_with("timezone", json!("Mars/Base"));
    assert_profile_rejected(&app, &body, "timezone").await;
}

#[tokio::test]
async fn a_negative_hourly_rate_is_422() {
    let app = spawn_app().await;
    let body = profile_with("hourly_rate_cents", json!(-1));
    assert_profile_rejected(&app, &body, "hourly_rate_cents").await;
}

#[tokio::test]
async fn a_currency_that_is_not_iso_4217_is_422() {
    let app = spawn_app().await;
    for currency in ["eur", "EURO", "XYZ"] {
        let body = profile_with("currency", json!(currency));
        assert_profile_rejected(&app, &body, "currency").await;
    }
}

#[tokio::test]
async fn an_unknown_profile_field_is_422_naming_it() {
    let app = spawn_app().await;
    let body = profile_with("colour", json!("red"));
    assert_profile_rejected(&app, &body, "colour").await;
}

#[tokio::test]
async fn a_profile_field_of_the_wrong_json_type_is_422_naming_it() {
    let app = spawn_app().await;
    let body = profile_with("max_concurrent", json!("two"));
    assert_profile_rejected(&app, &body, "max_concurrent").await;
}

#[tokio::test]
async fn a_profile_with_malformed_json_is_400() {
    let app = spawn_app().await;
    let a = app
        .send(
            raw_json(
                app.http.put(app.dispatcher("/v1/agents/a-1")),
                r#"{"display_name": "x", "languages": ["sv"]"#,
            ),
            "admin",
        )
        .await;
    assert_code(&a, 400, "malformed_json");
    assert_eq!(app.get_agent("a-1").await.status, 404);
}

#[tokio::test]
async fn a_profile_that_is_not_json_is_415() {
    let app = spawn_app().await;
    let body = profile(&["sv"], json!({}), 1).to_string();
    let a = app
        .send(
            app.http
                .put(app.dispatcher("/v1/agents/a-1"))
                .header("content-type", "text/plain")
                .body(body.clone()),
            "admin",
        )
        .await;
    assert_problem(&a, 415);
    let a = app
        .send(
            app.http.put(app.dispatcher("/v1/agents/a-1")).body(body),
            "admin",
        )
        .await;
    assert_problem(&a, 415);
    assert_eq!(app.get_agent("a-1").await.status, 404);
}

#[tokio::test]
async fn a_profile_body_over_128_kib_is_413() {
    let app = spawn_app().await;
    let body = profile_with("display_name", json!("x".repeat(129 * 1024)));
    let a = app.put_agent("a-1", &body).await;
    assert_problem(&a, 413);
}
