//! Problem documents, and no 500 for bad input.

use e2e::{fetch, profile, spawn_app, ticket, token};
use serde_json::{json, Value};

use crate::support::{is_snake_case, profile_with, raw_json, ticket_with};

#[tokio::test]
async fn no_bad_input_gets_a_500_and_every_error_is_a_problem_document() {
    let app = spawn_app().await;
    let admin = token("admin", "ops");
    let engine = token("escalation", "engine");
    let put = |id: &str| {
        app.http
            .put(app.dispatcher(&format!("/v1/agents/{id}")))
            .bearer_auth(&admin)
    };
    let post = || {
        app.http
            .post(app.dispatcher("/v1/tickets"))
            .bearer_auth(&engine)
    };
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_ticket = r#"{"conversation_id":"c","language":"sv","summary":"s","priority":1e20}"#;
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("ticket body null", raw_json(post(), "null")),
        ("ticket body array", raw_json(post(), "[]")),
        ("ticket body string", raw_json(post(), "\"ticket\"")),
        ("ticket body number out of range", raw_json(post(), "1e999")),
        ("ticket body empty", raw_json(post(), "")),
        ("ticket body deeply nested", raw_json(post(), deep.clone())),
        ("ticket body nested in context", {
            let body = format!(
                r#"{{"conversation_id":"c","language":"sv","summary":"s","context":{{"x":{deep}}}}}"#
            );
            raw_json(post(), body)
        }),
        (
            "ticket body not UTF-8",
            post()
                .header("content-type", "application/json")
                .body(vec![0xff_u8, 0xfe, 0x7b, 0x7d]),
        ),
        ("ticket priority 1e20", raw_json(post(), huge_ticket)),
        (
            "ticket priority -1",
            post().json(&ticket_with("priority", json!(-1))),
        ),
        (
            "ticket priority 1.5",
            post().json(&ticket_with("priority", json!(1.5))),
        ),
        (
            "ticket priority \"5\"",
            post().json(&ticket_with("priority", json!("5"))),
        ),
        (
            "ticket priority null",
            post().json(&ticket_with("priority", Value::Null)),
        ),
        (
            "ticket skills level 0",
            post().json(&ticket_with("skills", json!({"refunds": 0}))),
        ),
        (
            "ticket skills array",
            post().json(&ticket_with("skills", json!(["refunds"]))),
        ),
        (
            "ticket language number",
            post().json(&ticket_with("language", json!(7))),
        ),
        (
            "ticket Idempotency-Key not visible ASCII",
            post()
                .header(
                    "idempotency-key",
                    reqwest::header::HeaderValue::from_bytes(&[0x6b, 0xff, 0x79])
                        .expect("obs-text is a valid header value"),
                )
                .json(&ticket("sv", json!({}), 5)),
        ),
        (
            "ticket content type charset garbage",
            post()
                .header("content-type", "application/json; charset=nonsense")
                .body("{"),
        ),
        (
            "profile max_concurrent 1e3",
            put("a-x").json(&profile_with("max_concurrent", json!(1000))),
        ),
        (
            "profile hourly_rate_cents beyond u32",
            put("a-x").json(&profile_with(
                "hourly_rate_cents",
                json!(99_999_999_999_u64),
            )),
        ),
        (
            "profile hourly_rate_cents u64 max",
            put("a-x").json(&profile_with("hourly_rate_cents", json!(u64::MAX))),
        ),
        (
            "profile lat as string",
            put("a-x").json(&profile_with("location", json!({"lat": "NaN", "lon": 0}))),
        ),
        (
            "profile location without lon",
            put("a-x").json(&profile_with("location", json!({"lat": 10}))),
        ),
        (
            "profile lat 1e400",
            raw_json(
                put("a-x"),
                r#"{"display_name":"x","languages":["sv"],"location":{"lat":1e400,"lon":0}}"#,
            ),
        ),
        (
            "profile languages not an array",
            put("a-x").json(&profile_with("languages", json!("sv"))),
        ),
        (
            "profile display_name whitespace",
            put("a-x").json(&profile_with("display_name", json!("   "))),
        ),
        (
            "profile id 1000 chars",
            put(&"a".repeat(1000)).json(&profile(&["sv"], json!({}), 1)),
        ),
        (
            "profile id percent-encoded invalid UTF-8",
            put("%FF%FE").json(&profile(&["sv"], json!({}), 1)),
        ),
        (
            "get agent id percent-encoded invalid UTF-8",
            app.http
                .get(app.dispatcher("/v1/agents/%FF"))
                .bearer_auth(&admin),
        ),
        (
            "get ticket id percent-encoded invalid UTF-8",
            app.http
                .get(app.dispatcher("/v1/tickets/%C3%28"))
                .bearer_auth(&engine),
        ),
        (
            "list with an empty status",
            app.http
                .get(app.dispatcher("/v1/agents?status="))
                .bearer_auth(&admin),
        ),
        (
            "list with a percent-encoded invalid UTF-8 status",
            app.http
                .get(app.dispatcher("/v1/agents?status=%FF"))
                .bearer_auth(&admin),
        ),
        (
            "authorization header not visible ASCII",
            app.http.get(app.dispatcher("/v1/agents")).header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe")
                    .expect("obs-text is a valid header value"),
            ),
        ),
        (
            "authorization token of 6 KiB",
            app.http
                .get(app.dispatcher("/v1/agents"))
                .bearer_auth("a".repeat(6 * 1024)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, req) in cases {
        let a = fetch(req).await;
        let problem_ok = a.content_type.starts_with("application/problem+json")
            && ["type", "title", "detail", "code"]
                .iter()
                .all(|f| a.body[*f].is_string())
            && a.body["status"] == a.status
            && is_snake_case(a.body["code"].as_str().unwrap_or_default());
        if !(400..500).contains(&a.status) || !problem_ok {
            failures.push(format!("{name}: {a:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "bad inputs must get a 4xx problem document:\n{}",
        failures.join("\n")
    );
}
