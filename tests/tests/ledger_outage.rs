//! PostgreSQL away (the issue: "Dispatch never waits on the ledger"): matching and offers go on,
//! the payroll endpoints answer 503 `ledger_unavailable`, and when the database is back the
//! ledger catches up from the stream.
//!
//! The shared PostgreSQL is never stopped: the services reach it through a TCP proxy inside the
//! test, which can drop every connection and refuse new ones.

#[path = "ledger_support.rs"]
mod support;

use std::time::Duration;

use chrono::Utc;
use e2e::{profile, spawn_from, ticket, token, AgentClient, Options};
use serde_json::json;
use support::{eventually, num, payroll_shifts, raw, rfc, row, Proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_catches_up_when_postgres_returns() {
    outage(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_started_while_postgres_is_away_catch_up_when_it_returns() {
    outage(true).await;
}

/// A shift worked while PostgreSQL is away (already at start if `from_start`).
async fn outage(from_start: bool) {
    let proxy = Proxy::start().await;
    if from_start {
        proxy.off();
    }
    let ns = e2e::fresh_namespace();
    let mut settings = e2e::settings(&Options::default(), &ns);
    settings.database_url = format!("postgres://postgres@127.0.0.1:{}/dispatch", proxy.port);
    let app = spawn_from(settings, ns, 1, 1).await;
    let from = rfc(Utc::now() - chrono::Duration::minutes(10));
    let to = rfc(Utc::now() + chrono::Duration::minutes(10));
    let base = app.dispatchers[0].clone();
    if !from_start {
        support::ledger_ready(&base).await;
        proxy.off();
    }
    // A whole shift while the database is away: dispatch goes on.
    app.add_agent("o-1", &profile(&["sv"], json!({}), 1)).await;
    let mut agent = AgentClient::connect_available(&app.gateways[0], "o-1").await;
    let shift = app.get_agent("o-1").await.body["state"]["shift_id"]
        .as_str()
        .expect("on shift")
        .to_owned();
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    agent.expect("assigned").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;

    // The payroll endpoints answer 503 meanwhile; readiness still reports Redis only.
    let a = payroll_shifts(&base, &from, &to, &[]).await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.body["code"], "ledger_unavailable", "{a:?}");
    assert!(
        a.content_type.starts_with("application/problem+json"),
        "{a:?}"
    );
    let (a, _) = support::report(
        &base,
        "/v1/payroll/workdays",
        "payroll",
        &[("from", "2026-01-01"), ("to", "2026-01-02")],
        None,
    )
    .await;
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.body["code"], "ledger_unavailable", "{a:?}");
    let (a, _) = raw(app
        .http
        .get(app.gateway("/v1/me/shifts"))
        .query(&[("from", from.as_str()), ("to", to.as_str())])
        .bearer_auth(token("agent", "o-1")))
    .await;
    assert_eq!(a.status, 503, "the agent's own shifts: {a:?}");
    assert_eq!(a.body["code"], "ledger_unavailable", "{a:?}");
    let ready = e2e::fetch(app.http.get(app.dispatcher("/readyz"))).await;
    assert_eq!(ready.status, 200, "Redis answers: {ready:?}");

    // More dispatch while the database is away: a second ticket, then the shift ends.
    let second = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    agent.complete(&second).await;
    app.wait_ticket_status(&second, "completed").await;
    agent.set_status("offline").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = payroll_shifts(&base, &from, &to, &[]).await;
    assert_eq!(a.status, 503, "still away: {a:?}");

    proxy.on();
    let rows = eventually(
        "the ledger to catch up",
        Duration::from_secs(20),
        || async {
            let a = payroll_shifts(&base, &from, &to, &[]).await;
            let rows = a.body["shifts"].as_array().cloned().unwrap_or_default();
            (a.status == 200 && rows.len() == 1 && rows[0]["open"] == false).then_some(rows)
        },
    )
    .await;
    let r = row(&rows, &shift);
    assert_eq!(r["agent_id"], "o-1");
    assert_eq!(num(r, "tickets_completed"), 2, "{r}");
    assert!(num(r, "engaged_secs") >= 1, "{r}");
    assert!(num(r, "online_secs") >= num(r, "engaged_secs"), "{r}");
    assert_eq!(num(r, "paid_secs"), num(r, "online_secs"), "{r}");
    assert_eq!(
        num(r, "pay_cents"),
        (num(r, "paid_secs") * 1650 + 1800) / 3600,
        "{r}"
    );
}

/// While PostgreSQL is away the events wait in the stream, but no more than
/// `LEDGER_BACKLOG_MAX` of them: past it the oldest are given up (and reported as a gap once
/// the ledger can store again) rather than let Redis run out of memory.
#[tokio::test]
async fn the_stream_keeps_at_most_its_backlog_budget_while_postgres_is_away() {
    let namespace = e2e::fresh_namespace();
    let mut settings = e2e::settings(&Options::default(), &namespace);
    settings.database_url = "postgres://postgres@127.0.0.1:1/unreachable".to_owned();
    settings.ledger_backlog_max = 1_000;
    let app = spawn_from(settings, namespace.clone(), 1, 1).await;
    let stream = format!("{{{namespace}}}:events");
    let mut pipe = redis::pipe();
    for i in 0..3_000 {
        pipe.cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("type")
            .arg("agent_status")
            .arg("n")
            .arg(i)
            .ignore();
    }
    let mut conn = app.redis().await;
    let _: () = pipe.query_async(&mut conn).await.expect("XADD");
    // Checked every 5 s; MAXLEN ~ trims whole nodes (100 entries by default).
    eventually(
        "the stream to be trimmed to its budget",
        Duration::from_secs(15),
        || {
            let mut conn = conn.clone();
            let stream = stream.clone();
            async move {
                let len: u64 = redis::cmd("XLEN")
                    .arg(&stream)
                    .query_async(&mut conn)
                    .await
                    .expect("XLEN");
                (len <= 1_100).then_some(len)
            }
        },
    )
    .await;
    app.stop().await;
}
