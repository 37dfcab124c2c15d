//! Every input has a bound (API.md §3, §4, §7): skills per profile and ticket, region names (in
//! tickets and in the geofence file), the roster's pages, payroll windows at the edge of the
//! calendar. Each bound answers its own error; none is a 500 or a panic.

use e2e::{fetch, geofence_file, profile, settings, spawn_app, ticket, token, Options, TestApp};
use serde_json::{json, Value};

use crate::support::{assert_code, assert_invalid};

/// `n` skills at level 1.
fn skills(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("s{i}"), json!(1))).collect())
}

#[tokio::test]
async fn a_profile_may_name_25_skills_and_not_26() {
    let app = spawn_app().await;
    let a = app
        .put_agent("a-25", &profile(&["sv"], skills(25), 1))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["skills"].as_object().map(|s| s.len()), Some(25));
    let a = app
        .put_agent("a-26", &profile(&["sv"], skills(26), 1))
        .await;
    assert_invalid(&a, "skills");
    assert!(
        a.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("at most 25")),
        "{a:?}"
    );
    assert_eq!(app.get_agent("a-26").await.status, 404);
}

#[tokio::test]
async fn a_ticket_may_name_25_skills_and_not_26() {
    let app = spawn_app().await;
    let a = app.post_ticket(&ticket("sv", skills(25), 5)).await;
    assert_eq!(a.status, 201, "{a:?}");
    let a = app.post_ticket(&ticket("sv", skills(26), 5)).await;
    assert_invalid(&a, "skills");
}

#[tokio::test]
async fn a_ticket_region_must_be_a_region_name() {
    let app = spawn_app().await;
    for bad in [
        json!("North"),
        json!("no rth"),
        json!("x".repeat(65)),
        json!(""),
    ] {
        let mut t = ticket("sv", json!({}), 5);
        t["region"] = bad.clone();
        let a = app.post_ticket(&t).await;
        assert_invalid(&a, "region");
    }
    // Well formed but not in the file: also 422, naming the region.
    let mut t = ticket("sv", json!({}), 5);
    t["region"] = json!("atlantis");
    assert_invalid(&app.post_ticket(&t).await, "region");
    t["region"] = json!("north");
    assert_eq!(app.post_ticket(&t).await.status, 201);
}

#[tokio::test]
async fn a_geofence_file_with_a_bad_region_name_is_refused_at_start() {
    let dir = std::env::temp_dir().join(format!("fences-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let path = dir.join("fences.geojson");
    let good = std::fs::read_to_string(geofence_file()).expect("the fixture");
    std::fs::write(&path, good.replace("\"north\"", "\"North Europe\"")).expect("write");
    let mut s = settings(&Options::default(), &e2e::fresh_namespace());
    s.geofences_file = Some(path.clone());
    let e = dispatcher::Application::build(s)
        .await
        .err()
        .expect("the dispatcher refuses the file");
    let message = e.to_string();
    assert!(
        message.starts_with("GEOFENCES_FILE") && message.contains("North Europe"),
        "one line naming the variable and the name: {message}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn list(app: &TestApp, query: &str) -> e2e::Answer {
    app.send(
        app.http.get(app.dispatcher(&format!("/v1/agents{query}"))),
        "admin",
    )
    .await
}

fn ids(a: &e2e::Answer) -> Vec<String> {
    a.body["agents"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of agents: {a:?}"))
        .iter()
        .map(|v| v["agent_id"].as_str().expect("agent_id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_roster_is_listed_in_pages_of_100_by_default_that_together_hold_every_agent() {
    let app = spawn_app().await;
    let mut want: Vec<String> = (0..230).map(|i| format!("p-{i:03}")).collect();
    let body = profile(&["sv"], json!({}), 1);
    for chunk in want.chunks(23) {
        let puts = chunk.iter().map(|id| app.put_agent(id, &body));
        for a in futures_util::future::join_all(puts).await {
            assert_eq!(a.status, 201, "{a:?}");
        }
    }
    want.sort();
    let first = list(&app, "").await;
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(ids(&first).len(), 100, "the default page");
    let mut seen = ids(&first);
    let mut cursor = first.body["next_cursor"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(c) = cursor {
        let a = list(&app, &format!("?limit=100&cursor={c}")).await;
        assert_eq!(a.status, 200, "{a:?}");
        seen.extend(ids(&a));
        cursor = a.body["next_cursor"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, want, "every agent once, in id order");

    let all = list(&app, "?limit=1000").await;
    assert_eq!(ids(&all), want);
    assert_eq!(all.body["next_cursor"], Value::Null, "{all:?}");
}

#[tokio::test]
async fn a_filtered_page_holds_only_agents_of_that_status_and_goes_on_past_others() {
    let app = spawn_app().await;
    for i in 0..30 {
        app.add_agent(&format!("f-{i:02}"), &profile(&["sv"], json!({}), 1))
            .await;
    }
    let mut agent = app
        .available_agent("f-29", &profile(&["sv"], json!({}), 1))
        .await;
    let a = list(&app, "?status=available&limit=5").await;
    assert_eq!(ids(&a), vec!["f-29"], "found past 29 offline agents: {a:?}");
    assert_eq!(a.body["next_cursor"], Value::Null, "{a:?}");
    let a = list(&app, "?status=offline&limit=10").await;
    assert_eq!(ids(&a).len(), 10);
    assert!(a.body["next_cursor"].is_string(), "{a:?}");
    agent.set_status("offline").await;
}

#[tokio::test]
async fn page_sizes_outside_1_to_1000_and_foreign_cursors_are_422() {
    let app = spawn_app().await;
    for q in ["?limit=0", "?limit=1001"] {
        assert_invalid(&list(&app, q).await, "limit");
    }
    assert_invalid(&list(&app, "?cursor=not%20a%20cursor").await, "cursor");
    assert_code(&list(&app, "?limit=ten").await, 400, "malformed_query");
    assert_code(&list(&app, "?page=2").await, 400, "malformed_query");
}

#[tokio::test]
async fn payroll_windows_beyond_the_calendar_are_422_never_a_panic() {
    let app = spawn_app().await;
    let cases = [
        ("/v1/payroll/workdays", "+262142-12-01", "+262142-12-31"),
        ("/v1/payroll/workdays", "-262143-01-01", "-262143-01-02"),
        ("/v1/payroll/workdays", "0000-01-01", "0000-01-02"),
        (
            "/v1/payroll/shifts",
            "9999-12-31T23:00:00-23:00",
            "9999-12-31T23:30:00-23:00",
        ),
        (
            "/v1/payroll/shifts",
            "0000-01-01T00:00:00Z",
            "0000-01-02T00:00:00Z",
        ),
    ];
    for (path, from, to) in cases {
        let a = app
            .send(
                app.http
                    .get(app.dispatcher(path))
                    .query(&[("from", from), ("to", to)]),
                "payroll",
            )
            .await;
        assert_code(&a, 422, "invalid_field");
    }
    app.add_agent("m-1", &profile(&["sv"], json!({}), 1)).await;
    let a = fetch(
        app.http
            .get(app.gateway("/v1/me/shifts"))
            .query(&[
                ("from", "0000-01-01T00:00:00Z"),
                ("to", "0000-01-02T00:00:00Z"),
            ])
            .bearer_auth(token("agent", "m-1")),
    )
    .await;
    assert_code(&a, 422, "invalid_field");
    // The last days of the calendar are a valid window.
    let a = app
        .send(
            app.http
                .get(app.dispatcher("/v1/payroll/workdays"))
                .query(&[("from", "9999-12-01"), ("to", "9999-12-31")]),
            "payroll",
        )
        .await;
    assert_eq!(a.status, 200, "{a:?}");
}
