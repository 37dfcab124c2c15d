//! The payroll endpoints' surface (API.md §2, §7): CSV as RFC 4180, windows and filters
//! checked, roles enforced, and an agent seeing only its own shifts.

#[path = "ledger_support.rs"]
mod support;

use e2e::{profile, spawn_app, token, TestApp};
use serde_json::{json, Value};
use support::{at, ms, raw, report, row, shift_rows, Feed};

/// A second, in ms.
const S: i64 = 1000;

const HEADER: &str = "shift_id,agent_id,started_at,ended_at,open,online_secs,break_secs,\
engaged_secs,paid_secs,tickets_completed,hourly_rate_cents,pay_cents,currency";

const FROM: &str = "2026-06-01T00:00:00Z";
const TO: &str = "2026-06-02T00:00:00Z";

/// Parses an RFC 4180 document strictly: CRLF record ends (the last record too), fields quoted
/// only with `"` and `""` inside quotes.
fn parse_csv(doc: &str) -> Vec<Vec<String>> {
    assert!(
        doc.ends_with("\r\n"),
        "the last record ends with CRLF: {doc:?}"
    );
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = doc.chars().peekable();
    let mut quoted = false;
    let mut at_field_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => {
                    quoted = false;
                    assert!(
                        matches!(chars.peek(), Some(',' | '\r')),
                        "a closing quote ends the field: {doc:?}"
                    );
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if at_field_start => {
                quoted = true;
                at_field_start = false;
            }
            '"' => panic!("a bare quote inside an unquoted field: {doc:?}"),
            ',' => {
                record.push(std::mem::take(&mut field));
                at_field_start = true;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR is followed by LF: {doc:?}");
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_field_start = true;
            }
            '\n' => panic!("a bare LF line end: {doc:?}"),
            c => {
                field.push(c);
                at_field_start = false;
            }
        }
    }
    assert!(!quoted, "an unterminated quote: {doc:?}");
    records
}

/// A JSON value as its CSV field.
fn csv_field(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => panic!("unexpected value in a row: {other}"),
    }
}

/// Checks that `doc` is the CSV form of the JSON `rows`.
fn check_csv(doc: &str, rows: &[Value]) {
    let records = parse_csv(doc);
    assert!(
        doc.starts_with(&format!("{HEADER}\r\n")),
        "the exact header: {doc:?}"
    );
    let header: Vec<&str> = HEADER.split(',').collect();
    assert_eq!(records.len(), rows.len() + 1, "{doc:?}");
    for (record, json) in records[1..].iter().zip(rows) {
        assert_eq!(record.len(), header.len(), "{record:?}");
        for (name, value) in header.iter().zip(record) {
            assert_eq!(
                value,
                &csv_field(&json[*name]),
                "column {name} of {record:?} vs {json}"
            );
        }
    }
}

async fn feed_june(app: &TestApp) -> Feed {
    let mut feed = Feed::new(&app.namespace).await;
    let t = ms(at("2026-06-01T08:00:00Z"));
    feed.started("k-1", "s-k1", t, 1650, "Europe/Stockholm")
        .await;
    feed.assigned("k-1", "s-k1", "t-k1", t + 60 * S).await;
    feed.completed("k-1", "s-k1", "t-k1", t + 300 * S).await;
    feed.status("k-1", "s-k1", "break", t + 600 * S).await;
    feed.status("k-1", "s-k1", "available", t + 900 * S).await;
    feed.offline("k-1", "s-k1", t + 3600 * S).await;
    // A shift id that needs quoting (ids come from the stream as they are).
    feed.started_in("k-2", "s,\"q\"", t + 120 * S, 999, "SEK", "UTC")
        .await;
    feed.offline("k-2", "s,\"q\"", t + 1000 * S).await;
    // Open at the end of the window.
    feed.started("k-3", "s-k3", t + 7200 * S, 2000, "UTC").await;
    feed.applied().await;
    feed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_is_rfc_4180_with_the_contract_header() {
    let app = spawn_app().await;
    feed_june(&app).await;
    let rows = shift_rows(&app, FROM, TO).await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(row(&rows, "s-k3")["open"], true);
    assert_eq!(row(&rows, "s,\"q\"")["currency"], "SEK");
    let base = &app.dispatchers[0];

    // format=csv
    let (a, doc) = report(
        base,
        "/v1/payroll/shifts",
        "payroll",
        &[("from", FROM), ("to", TO), ("format", "csv")],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{doc}");
    assert!(a.content_type.starts_with("text/csv"), "{a:?}");
    check_csv(&doc, &rows);
    assert!(
        doc.contains("\r\n\"s,\"\"q\"\"\",k-2,"),
        "a field with a comma and quotes is quoted, quotes doubled: {doc:?}"
    );

    // Accept: text/csv
    let (a, doc2) = report(
        base,
        "/v1/payroll/shifts",
        "payroll",
        &[("from", FROM), ("to", TO)],
        Some("text/csv"),
    )
    .await;
    assert_eq!(a.status, 200, "{doc2}");
    assert!(a.content_type.starts_with("text/csv"), "{a:?}");
    assert_eq!(doc2, doc);
    // Accept with a list and qualities, as browsers and tools send it.
    let (a, doc3) = report(
        base,
        "/v1/payroll/shifts",
        "admin",
        &[("from", FROM), ("to", TO)],
        Some("text/csv;q=1.0, application/json;q=0.5"),
    )
    .await;
    assert_eq!(a.status, 200, "{doc3}");
    assert!(a.content_type.starts_with("text/csv"), "{a:?}");
    assert_eq!(doc3, doc);
    // JSON otherwise.
    let (a, _) = report(
        base,
        "/v1/payroll/shifts",
        "payroll",
        &[("from", FROM), ("to", TO)],
        Some("application/json"),
    )
    .await;
    assert!(a.content_type.starts_with("application/json"), "{a:?}");
    assert_eq!(a.body["shifts"], json!(rows));

    // The agent filter in CSV.
    let (a, doc) = report(
        base,
        "/v1/payroll/shifts",
        "payroll",
        &[
            ("from", FROM),
            ("to", TO),
            ("format", "csv"),
            ("agent_id", "k-1"),
        ],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{doc}");
    check_csv(&doc, &[row(&rows, "s-k1").clone()]);

    // An empty report is just the header.
    let (a, doc) = report(
        base,
        "/v1/payroll/shifts",
        "payroll",
        &[
            ("from", "2026-05-01T00:00:00Z"),
            ("to", "2026-05-02T00:00:00Z"),
            ("format", "csv"),
        ],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{doc}");
    assert_eq!(doc, format!("{HEADER}\r\n"));

    // The agent's own shifts in CSV, on the gateway.
    let (a, doc) = raw(app
        .http
        .get(app.gateway("/v1/me/shifts"))
        .query(&[("from", FROM), ("to", TO), ("format", "csv")])
        .bearer_auth(token("agent", "k-1")))
    .await;
    assert_eq!(a.status, 200, "{doc}");
    assert!(a.content_type.starts_with("text/csv"), "{a:?}");
    check_csv(&doc, &[row(&rows, "s-k1").clone()]);
}

/// Asserts a problem+json error with `status` and `code`.
fn problem(a: &e2e::Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {a:?}");
    assert!(
        a.content_type.starts_with("application/problem+json"),
        "{what}: problem+json: {a:?}"
    );
    assert_eq!(a.body["code"], code, "{what}: {a:?}");
    assert_eq!(a.body["status"], status, "{what}: {a:?}");
    for k in ["type", "title", "detail"] {
        assert!(a.body.get(k).is_some(), "{what}: problem has {k}: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_report_requests_are_refused() {
    let app = spawn_app().await;
    feed_june(&app).await;
    // A roster agent without shifts is known (an empty report, not 404).
    app.add_agent("k-9", &profile(&["sv"], json!({}), 1)).await;
    let base = app.dispatchers[0].clone();
    let shifts = |role: &'static str, q: Vec<(&'static str, &'static str)>| {
        let base = base.clone();
        async move { report(&base, "/v1/payroll/shifts", role, &q, None).await.0 }
    };
    let days = |role: &'static str, q: Vec<(&'static str, &'static str)>| {
        let base = base.clone();
        async move {
            report(&base, "/v1/payroll/workdays", role, &q, None)
                .await
                .0
        }
    };

    // Windows.
    let a = shifts("payroll", vec![("from", "yesterday"), ("to", TO)]).await;
    problem(&a, 400, "malformed_query", "a malformed from");
    let a = shifts("payroll", vec![("from", FROM), ("to", "2026-06-02")]).await;
    problem(&a, 400, "malformed_query", "a date is not an RFC 3339 time");
    let a = shifts("payroll", vec![("to", TO)]).await;
    problem(&a, 400, "malformed_query", "a missing from");
    let a = shifts("payroll", vec![("from", FROM)]).await;
    problem(&a, 400, "malformed_query", "a missing to");
    let a = shifts("payroll", vec![("from", TO), ("to", FROM)]).await;
    problem(&a, 422, "invalid_field", "a reversed window");
    assert!(
        a.body["detail"].as_str().unwrap_or_default().contains("to"),
        "the detail names the field: {a:?}"
    );
    let a = shifts("payroll", vec![("from", FROM), ("to", FROM)]).await;
    problem(&a, 422, "invalid_field", "an empty window (from = to)");
    let a = shifts(
        "payroll",
        vec![
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-04-04T00:00:01Z"),
        ],
    )
    .await;
    problem(&a, 422, "invalid_field", "93 days and a second");
    let a = shifts(
        "payroll",
        vec![
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-04-04T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "exactly 93 days: {a:?}");
    let a = shifts(
        "payroll",
        vec![("from", "2026-06-01T02:00:00+02:00"), ("to", TO)],
    )
    .await;
    assert_eq!(a.status, 200, "an offset is an RFC 3339 time: {a:?}");
    assert_eq!(a.body["from"], FROM, "reported back in UTC: {a:?}");
    let a = shifts(
        "payroll",
        vec![("from", FROM), ("to", TO), ("format", "xml")],
    )
    .await;
    problem(&a, 400, "malformed_query", "an unknown format");
    let a = shifts("payroll", vec![("from", FROM), ("to", TO), ("bogus", "1")]).await;
    problem(&a, 400, "malformed_query", "an unknown parameter");

    // Agent filter.
    let a = shifts(
        "payroll",
        vec![("from", FROM), ("to", TO), ("agent_id", "nobody")],
    )
    .await;
    problem(&a, 404, "agent_not_found", "an unknown agent");
    let a = shifts(
        "payroll",
        vec![("from", FROM), ("to", TO), ("agent_id", "k-9")],
    )
    .await;
    assert_eq!(a.status, 200, "a roster agent without shifts: {a:?}");
    assert_eq!(a.body["shifts"], json!([]));
    let a = shifts(
        "payroll",
        vec![("from", FROM), ("to", TO), ("agent_id", "k-2")],
    )
    .await;
    assert_eq!(a.status, 200, "an agent only the ledger knows: {a:?}");
    assert_eq!(a.body["shifts"].as_array().map(Vec::len), Some(1));
    let a = shifts(
        "payroll",
        vec![("from", FROM), ("to", TO), ("agent_id", "not an id!")],
    )
    .await;
    assert!(
        a.status == 400 || a.status == 422,
        "a malformed agent id: {a:?}"
    );

    // Roles.
    for role in ["agent", "escalation"] {
        let a = shifts(role, vec![("from", FROM), ("to", TO)]).await;
        problem(&a, 403, "forbidden", role);
        let a = days(role, vec![("from", "2026-06-01"), ("to", "2026-06-02")]).await;
        problem(&a, 403, "forbidden", role);
    }
    let a = shifts("", vec![("from", FROM), ("to", TO)]).await;
    assert_eq!(a.status, 401, "no token: {a:?}");
    for role in ["payroll", "admin"] {
        let a = shifts(role, vec![("from", FROM), ("to", TO)]).await;
        assert_eq!(a.status, 200, "{role}: {a:?}");
        let a = days(role, vec![("from", "2026-06-01"), ("to", "2026-06-02")]).await;
        assert_eq!(a.status, 200, "{role}: {a:?}");
    }

    // Workday windows.
    let a = days(
        "payroll",
        vec![("from", "2026-13-01"), ("to", "2026-06-02")],
    )
    .await;
    problem(&a, 400, "malformed_query", "a malformed date");
    let a = days("payroll", vec![("to", "2026-06-02")]).await;
    problem(&a, 400, "malformed_query", "a missing from");
    let a = days(
        "payroll",
        vec![("from", "2026-06-02"), ("to", "2026-06-01")],
    )
    .await;
    problem(&a, 422, "invalid_field", "reversed dates");
    let a = days(
        "payroll",
        vec![("from", "2026-01-01"), ("to", "2026-04-05")],
    )
    .await;
    problem(&a, 422, "invalid_field", "94 days");
    let a = days(
        "payroll",
        vec![("from", "2026-01-01"), ("to", "2026-04-04")],
    )
    .await;
    assert_eq!(a.status, 200, "93 days: {a:?}");
    let a = days(
        "payroll",
        vec![
            ("from", "2026-06-01"),
            ("to", "2026-06-02"),
            ("agent_id", "nobody"),
        ],
    )
    .await;
    problem(&a, 404, "agent_not_found", "an unknown agent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_only_its_own_shifts() {
    let app = spawn_app().await;
    feed_june(&app).await;
    let me = |role: &str, sub: &str, q: Vec<(&'static str, &'static str)>| {
        let req = app
            .http
            .get(app.gateway("/v1/me/shifts"))
            .query(&q)
            .bearer_auth(token(role, sub));
        async move { raw(req).await.0 }
    };
    let window = vec![("from", FROM), ("to", TO)];
    let all = shift_rows(&app, FROM, TO).await;

    let a = me("agent", "k-1", window.clone()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["from"], FROM);
    assert_eq!(a.body["to"], TO);
    assert_eq!(a.body["shifts"], json!([row(&all, "s-k1")]));
    let a = me("agent", "k-3", window.clone()).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["shifts"], json!([row(&all, "s-k3")]));

    // No asking for another agent's shifts.
    let mut other = window.clone();
    other.push(("agent_id", "k-3"));
    let a = me("agent", "k-1", other).await;
    problem(&a, 400, "malformed_query", "agent_id on /v1/me/shifts");

    // Windows as on the payroll endpoint.
    let a = me("agent", "k-1", vec![("from", TO), ("to", FROM)]).await;
    problem(&a, 422, "invalid_field", "a reversed window");
    let a = me("agent", "k-1", vec![("to", TO)]).await;
    problem(&a, 400, "malformed_query", "a missing from");
    let a = me(
        "agent",
        "k-1",
        vec![
            ("from", "2026-01-01T00:00:00Z"),
            ("to", "2026-06-01T00:00:00Z"),
        ],
    )
    .await;
    problem(&a, 422, "invalid_field", "a window over 93 days");

    // Only agents.
    for role in ["admin", "payroll", "escalation"] {
        let a = me(role, "k-1", window.clone()).await;
        problem(&a, 403, "forbidden", role);
    }
    let (a, _) = report(&app.gateways[0], "/v1/me/shifts", "", &window, None).await;
    assert_eq!(a.status, 401, "no token: {a:?}");
}
