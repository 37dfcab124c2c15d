//! The shift arithmetic of API.md §7, end to end: synthetic events with chosen timestamps go into
//! the namespace's stream, the running dispatcher's ledger writer applies them to PostgreSQL, and
//! the payroll endpoints must report exact numbers.
//!
//! - available, engaged, break and away time, tickets completed, `BREAKS_PAID`;
//! - pay rounded half up from whole seconds (event times are floored to the second);
//! - window clipping at both ends, open shifts clipped at `to` or now;
//! - local workdays in each agent's own zone, across midnight and DST changes.

#[path = "ledger_support.rs"]
mod support;

use e2e::{settings, spawn_app, spawn_from, token, Options, TestApp};
use serde_json::{json, Value};
use support::{assert_fields, at, ms, num, rfc, row, shift_rows, workday_rows, Feed};

/// A second, in ms.
const S: i64 = 1000;

/// The §7 scenario: every kind of segment, in one shift and a few more; returns nothing, the
/// expectations are in [`check_section7`].
async fn feed_section7(feed: &mut Feed) {
    // a-avail: two hours available, nothing else.
    let t = ms(at("2026-03-10T06:00:00Z"));
    feed.started("a-avail", "s-avail", t, 1650, "Europe/Stockholm")
        .await;
    feed.offline("a-avail", "s-avail", t + 7200 * S).await;

    // a-mix: 30 minutes of every kind. Start at .999 (floored to the second).
    let t = ms(at("2026-03-10T08:00:00Z"));
    let (a, s) = ("a-mix", "s-mix");
    feed.started(a, s, t + 999, 1650, "Europe/Stockholm").await;
    feed.assigned(a, s, "t1", t + 100 * S).await; // engaged 100..400
    feed.completed(a, s, "t1", t + 400 * S).await;
    feed.status(a, s, "break", t + 500 * S).await; // break 500..800
    feed.status(a, s, "available", t + 800 * S).await;
    feed.status(a, s, "away", t + 900 * S).await; // away 900..1000 (a break)
    feed.status(a, s, "available", t + 1000 * S).await;
    feed.assigned(a, s, "t2", t + 1100 * S).await; // engaged 1100..1200, even in break
    feed.status(a, s, "break", t + 1150 * S).await;
    feed.completed(a, s, "t2", t + 1200 * S).await; // then break 1200..1300
    feed.status(a, s, "available", t + 1300 * S).await;
    feed.assigned(a, s, "t3", t + 1400 * S).await; // engaged 1400..1600 (two tickets)
    feed.assigned(a, s, "t4", t + 1450 * S).await;
    feed.completed(a, s, "t3", t + 1500 * S).await;
    feed.completed(a, s, "t4", t + 1600 * S).await;
    feed.assigned(a, s, "t5", t + 1650 * S).await; // engaged 1650..1700, then cancelled
    feed.cancelled(a, "t5", t + 1700 * S).await;
    feed.assigned(a, s, "t6", t + 1720 * S).await; // engaged 1720..1740, then requeued
    feed.requeued(a, "t6", t + 1740 * S).await;
    // Ends at 1800.5 s (floored to 1800).
    feed.offline(a, s, t + 1800 * S + 500).await;

    // Rounding: pay = paid × rate / 3600, half up.
    let t = ms(at("2026-03-10T12:00:00Z"));
    // 1 s at 1800 cents/h is half a cent: 1. Both ends at .999: still exactly one second.
    feed.started("r-1800", "s-r-1800", t + 999, 1800, "UTC")
        .await;
    feed.offline("r-1800", "s-r-1800", t + S + 999).await;
    // 1 s at 1799 cents/h: 0.4997 → 0. From .999 to the next whole second: one ledger second.
    feed.started("r-1799", "s-r-1799", t + 999, 1799, "UTC")
        .await;
    feed.offline("r-1799", "s-r-1799", t + S).await;
    // 1800 s at 1 cent/h: exactly half: 1.
    feed.started("r-half", "s-r-half", t, 1, "UTC").await;
    feed.offline("r-half", "s-r-half", t + 1800 * S).await;
    // 1799 s at 1 cent/h: 0.
    feed.started("r-below", "s-r-below", t, 1, "UTC").await;
    feed.offline("r-below", "s-r-below", t + 1799 * S).await;
    // 3 h with a 30 min break at 1 cent/h: 9000 s paid = 2.5 cents → 3 (half up, not to even).
    feed.started("r-break", "s-r-break", t, 1, "UTC").await;
    feed.status("r-break", "s-r-break", "break", t + 3600 * S)
        .await;
    feed.status("r-break", "s-r-break", "available", t + 5400 * S)
        .await;
    feed.offline("r-break", "s-r-break", t + 10800 * S).await;
}

/// Checks the rows of [`feed_section7`], with breaks paid or not.
fn check_section7(rows: &[Value], breaks_paid: bool) {
    assert_eq!(rows.len(), 7, "{rows:#?}");
    let paid = |online: i64, brk: i64| if breaks_paid { online } else { online - brk };
    assert_fields(
        row(rows, "s-avail"),
        &json!({
            "agent_id": "a-avail", "started_at": "2026-03-10T06:00:00Z",
            "ended_at": "2026-03-10T08:00:00Z", "open": false, "online_secs": 7200,
            "break_secs": 0, "engaged_secs": 0, "paid_secs": 7200, "tickets_completed": 0,
            "hourly_rate_cents": 1650, "pay_cents": 3300, "currency": "EUR"
        }),
    );
    // a-mix: engaged 300 + 100 + 200 + 50 + 20 = 670; break 300 + 100 + 100 = 500.
    let mix_paid = paid(1800, 500);
    assert_fields(
        row(rows, "s-mix"),
        &json!({
            "agent_id": "a-mix", "started_at": "2026-03-10T08:00:00Z",
            "ended_at": "2026-03-10T08:30:00Z", "open": false, "online_secs": 1800,
            "break_secs": 500, "engaged_secs": 670, "paid_secs": mix_paid,
            "tickets_completed": 4, "hourly_rate_cents": 1650,
            // 1300 × 1650 / 3600 = 595.83 → 596; 1800 × 1650 / 3600 = 825.
            "pay_cents": if breaks_paid { 825 } else { 596 }, "currency": "EUR"
        }),
    );
    for (shift, online, pay) in [
        ("s-r-1800", 1, 1),
        ("s-r-1799", 1, 0),
        ("s-r-half", 1800, 1),
        ("s-r-below", 1799, 0),
    ] {
        let r = row(rows, shift);
        assert_eq!(num(r, "online_secs"), online, "{r}");
        assert_eq!(num(r, "paid_secs"), online, "{r}");
        assert_eq!(num(r, "pay_cents"), pay, "pay rounded half up: {r}");
    }
    assert_eq!(
        row(rows, "s-r-1800")["started_at"],
        "2026-03-10T12:00:00Z",
        "milliseconds are floored"
    );
    let r = row(rows, "s-r-break");
    assert_eq!(num(r, "online_secs"), 10800, "{r}");
    assert_eq!(num(r, "break_secs"), 1800, "{r}");
    assert_eq!(num(r, "paid_secs"), paid(10800, 1800), "{r}");
    assert_eq!(num(r, "pay_cents"), 3, "2.5 (or 3.0) cents → 3: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn section7_segments_pay_and_rounding() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    feed_section7(&mut feed).await;
    feed.applied().await;
    let rows = shift_rows(&app, "2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z").await;
    check_section7(&rows, false);

    // The agent's own view (agent-app-api) shows the same row.
    let (mine, _) = support::report(
        &app.gateways[0],
        "/v1/me/shifts",
        "",
        &[
            ("from", "2026-03-10T00:00:00Z"),
            ("to", "2026-03-11T00:00:00Z"),
        ],
        None,
    )
    .await;
    assert_eq!(mine.status, 401, "no token: {mine:?}");
    let me = e2e::fetch(
        app.http
            .get(app.gateway("/v1/me/shifts"))
            .query(&[
                ("from", "2026-03-10T00:00:00Z"),
                ("to", "2026-03-11T00:00:00Z"),
            ])
            .bearer_auth(token("agent", "a-mix")),
    )
    .await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["shifts"], json!([row(&rows, "s-mix")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaks_paid_pays_the_whole_shift() {
    let ns = e2e::fresh_namespace();
    let mut s = settings(&Options::default(), &ns);
    s.breaks_paid = true;
    let app = spawn_from(s, ns, 1, 1).await;
    let mut feed = Feed::new(&app.namespace).await;
    feed_section7(&mut feed).await;
    feed.applied().await;
    let rows = shift_rows(&app, "2026-03-10T00:00:00Z", "2026-03-11T00:00:00Z").await;
    check_section7(&rows, true);
    // The gateway applies the same rule to the agent's own shifts.
    let me = e2e::fetch(
        app.http
            .get(app.gateway("/v1/me/shifts"))
            .query(&[
                ("from", "2026-03-10T00:00:00Z"),
                ("to", "2026-03-11T00:00:00Z"),
            ])
            .bearer_auth(token("agent", "a-mix")),
    )
    .await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["shifts"], json!([row(&rows, "s-mix")]));
}

/// A dropped connection not back within the grace period: the store emits the requeue of the
/// held ticket and `shift_ended` when the grace period runs out, with `ended_at` at the drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_ended_by_a_drop_ends_at_the_drop() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    let t = ms(at("2026-03-12T09:00:00Z"));
    let (a, s) = ("d-1", "s-d-1");
    feed.started(a, s, t, 3600, "UTC").await;
    feed.assigned(a, s, "t-d", t + 600 * S).await;
    // The connection drops at 900 s, the grace period (60 s) runs out at 960 s.
    feed.event(
        "agent_disconnected",
        t + 900 * S,
        &[
            ("agent", a),
            ("conn", "c-1"),
            ("at", &(t + 900 * S).to_string()),
        ],
    )
    .await;
    feed.requeued(a, "t-d", t + 960 * S).await;
    feed.ended(a, s, t + 960 * S, t + 900 * S, "disconnected")
        .await;
    feed.applied().await;
    let rows = shift_rows(&app, "2026-03-12T00:00:00Z", "2026-03-13T00:00:00Z").await;
    assert_fields(
        row(&rows, s),
        &json!({
            "started_at": "2026-03-12T09:00:00Z", "ended_at": "2026-03-12T09:15:00Z",
            "open": false, "online_secs": 900, "engaged_secs": 300, "break_secs": 0,
            "paid_secs": 900, "pay_cents": 900, "tickets_completed": 0
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_clipped_to_the_window() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    // c-1: 08:00–16:00, 1 cent per second; break 12:00–12:30; tickets 10:30–11:00, 14:45–15:15.
    let t = |hms: &str| ms(at(&format!("2026-03-11T{hms}Z")));
    let (a, s) = ("c-1", "s-c-1");
    feed.started(a, s, t("08:00:00"), 3600, "UTC").await;
    feed.assigned(a, s, "t1", t("10:30:00")).await;
    feed.completed(a, s, "t1", t("11:00:00")).await;
    feed.status(a, s, "break", t("12:00:00")).await;
    feed.status(a, s, "available", t("12:30:00")).await;
    feed.assigned(a, s, "t2", t("14:45:00")).await;
    feed.completed(a, s, "t2", t("15:15:00")).await;
    feed.offline(a, s, t("16:00:00")).await;
    // c-open: from 20:00, still open.
    feed.started("c-open", "s-c-open", t("20:00:00"), 3600, "UTC")
        .await;
    // c-now: started two hours ago, a break from 60 to 30 minutes ago, still open.
    let now = support::redis_now_ms().await / S * S;
    feed.started("c-now", "s-c-now", now - 7200 * S, 3600, "UTC")
        .await;
    feed.status("c-now", "s-c-now", "break", now - 3600 * S)
        .await;
    feed.status("c-now", "s-c-now", "available", now - 1800 * S)
        .await;
    feed.applied().await;

    let window =
        |from: &str, to: &str| (format!("2026-03-11T{from}Z"), format!("2026-03-11T{to}Z"));

    // Both ends clipped.
    let (from, to) = window("10:00:00", "14:00:00");
    let rows = shift_rows(&app, &from, &to).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_fields(
        row(&rows, s),
        &json!({
            "agent_id": a, "started_at": "2026-03-11T10:00:00Z",
            "ended_at": "2026-03-11T14:00:00Z", "open": false, "online_secs": 14400,
            "break_secs": 1800, "engaged_secs": 1800, "paid_secs": 12600,
            "tickets_completed": 1, "pay_cents": 12600
        }),
    );
    // Start clipped only.
    let (from, to) = window("15:00:00", "18:00:00");
    let rows = shift_rows(&app, &from, &to).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_fields(
        row(&rows, s),
        &json!({
            "started_at": "2026-03-11T15:00:00Z", "ended_at": "2026-03-11T16:00:00Z",
            "online_secs": 3600, "break_secs": 0, "engaged_secs": 900, "paid_secs": 3600,
            "tickets_completed": 1, "pay_cents": 3600
        }),
    );
    // End clipped only.
    let (from, to) = window("07:00:00", "09:00:00");
    let rows = shift_rows(&app, &from, &to).await;
    assert_fields(
        row(&rows, s),
        &json!({
            "started_at": "2026-03-11T08:00:00Z", "ended_at": "2026-03-11T09:00:00Z",
            "online_secs": 3600, "tickets_completed": 0, "pay_cents": 3600
        }),
    );
    // Windows touching the shift only at its ends (half-open) see nothing.
    for (from, to) in [
        window("06:00:00", "08:00:00"),
        window("16:00:00", "19:00:00"),
    ] {
        let rows = shift_rows(&app, &from, &to).await;
        assert!(rows.is_empty(), "[{from}, {to}): {rows:#?}");
    }
    // Adjacent windows add up to the whole shift; the completion at 11:00 counts once.
    let whole = shift_rows(&app, "2026-03-11T00:00:00Z", "2026-03-11T19:00:00Z").await;
    let mut sum = [0_i64; 6];
    let keys = [
        "online_secs",
        "break_secs",
        "engaged_secs",
        "paid_secs",
        "tickets_completed",
        "pay_cents",
    ];
    for (from, to) in [
        window("00:00:00", "10:15:00"),
        window("10:15:00", "11:00:00"),
        window("11:00:00", "12:10:00"),
        window("12:10:00", "15:15:00"),
        window("15:15:00", "19:00:00"),
    ] {
        for r in shift_rows(&app, &from, &to).await {
            for (i, k) in keys.iter().enumerate() {
                sum[i] += num(&r, k);
            }
        }
    }
    let w = row(&whole, s);
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(sum[i], num(w, k), "{k} over adjacent windows vs {w}");
    }
    assert_eq!(num(w, "tickets_completed"), 2, "{w}");

    // An open shift is clipped at `to` and says so.
    let rows = shift_rows(&app, "2026-03-11T21:00:00Z", "2026-03-11T22:00:00Z").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_fields(
        row(&rows, "s-c-open"),
        &json!({
            "agent_id": "c-open", "started_at": "2026-03-11T21:00:00Z",
            "ended_at": "2026-03-11T22:00:00Z", "open": true, "online_secs": 3600,
            "paid_secs": 3600, "pay_cents": 3600
        }),
    );
    // The day: the closed shift whole, the open one up to midnight.
    let rows = shift_rows(&app, "2026-03-11T00:00:00Z", "2026-03-12T00:00:00Z").await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(num(row(&rows, s), "online_secs"), 28800);
    assert_eq!(num(row(&rows, "s-c-open"), "online_secs"), 4 * 3600);
    assert_eq!(row(&rows, "s-c-open")["open"], true);

    // An open shift is clipped at now when `to` is later.
    let before = support::redis_now_ms().await / S;
    let from = rfc(chrono::Utc::now() - chrono::Duration::days(1));
    let to = rfc(chrono::Utc::now() + chrono::Duration::days(1));
    let rows = shift_rows(&app, &from, &to).await;
    let after = support::redis_now_ms().await / S;
    let r = row(&rows, "s-c-now");
    assert_eq!(r["open"], true, "{r}");
    assert_eq!(r["started_at"], rfc(support::second(now - 7200 * S)), "{r}");
    let ended = support::at(r["ended_at"].as_str().expect("ended_at")).timestamp();
    assert!(
        (before..=after).contains(&ended),
        "an open shift ends at now ({before}..={after}): {r}"
    );
    let online = num(r, "online_secs");
    assert_eq!(online, ended - (now / S - 7200), "{r}");
    assert_eq!(num(r, "break_secs"), 1800, "{r}");
    assert_eq!(num(r, "paid_secs"), online - 1800, "{r}");
    assert_eq!(num(r, "pay_cents"), online - 1800, "{r}");
    // c-open (started 2026-03-11) is open too and overlaps this window: clipped at its start.
    let r = row(&rows, "s-c-open");
    assert_eq!(r["started_at"], from, "{r}");
    assert_eq!(r["open"], true, "{r}");

    // The agent filter.
    let a = support::payroll_shifts(
        &app.dispatchers[0],
        "2026-03-11T00:00:00Z",
        "2026-03-12T00:00:00Z",
        &[("agent_id", "c-open")],
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let only = a.body["shifts"].as_array().cloned().unwrap_or_default();
    assert_eq!(only.len(), 1, "{only:#?}");
    assert_eq!(only[0]["agent_id"], "c-open");
}

/// The workday of a row, looked up by agent and local date.
fn workday<'a>(rows: &'a [Value], agent: &str, day: &str) -> &'a Value {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| r["agent_id"] == agent && r["workday"] == day)
        .collect();
    assert_eq!(found.len(), 1, "one row of {agent} on {day}: {rows:#?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workdays_split_at_local_midnight_in_the_agents_zone() {
    let app: TestApp = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    // Events of one agent come in time order, as the store emits them: spring first.
    // Stockholm, spring change: 2026-03-28 22:00 CET (21:00Z) → 2026-03-29 06:00 CEST (04:00Z),
    // seven hours.
    let (a, s2) = ("w-sthlm", "s-w-spring");
    feed.started(
        a,
        s2,
        ms(at("2026-03-28T21:00:00Z")),
        1650,
        "Europe/Stockholm",
    )
    .await;
    feed.offline(a, s2, ms(at("2026-03-29T04:00:00Z"))).await;
    // Stockholm, autumn change: 2026-10-24 22:00 CEST (20:00Z) → 2026-10-25 06:00 CET (05:00Z),
    // nine hours; a break 00:30Z–01:00Z (02:30–03:00 CEST, on the 25th).
    let s = "s-w-autumn";
    feed.started(
        a,
        s,
        ms(at("2026-10-24T20:00:00Z")),
        1650,
        "Europe/Stockholm",
    )
    .await;
    feed.assigned(a, s, "t-w1", ms(at("2026-10-24T21:00:00Z")))
        .await;
    feed.completed(a, s, "t-w1", ms(at("2026-10-24T21:30:00Z")))
        .await;
    feed.status(a, s, "break", ms(at("2026-10-25T00:30:00Z")))
        .await;
    feed.status(a, s, "available", ms(at("2026-10-25T01:00:00Z")))
        .await;
    feed.offline(a, s, ms(at("2026-10-25T05:00:00Z"))).await;
    // New York (EDT since 2026-03-08): 2026-03-09 23:00 local → 2026-03-10 02:00 local.
    feed.started(
        "w-ny",
        "s-w-ny",
        ms(at("2026-03-10T03:00:00Z")),
        1200,
        "America/New_York",
    )
    .await;
    feed.offline("w-ny", "s-w-ny", ms(at("2026-03-10T06:00:00Z")))
        .await;
    // UTC, two shifts on one day, a ticket completed in each.
    for (shift, from, to, ticket) in [
        (
            "s-w-u1",
            "2026-03-10T08:00:00Z",
            "2026-03-10T09:00:00Z",
            "t-u1",
        ),
        (
            "s-w-u2",
            "2026-03-10T13:00:00Z",
            "2026-03-10T14:30:00Z",
            "t-u2",
        ),
    ] {
        feed.started("w-utc", shift, ms(at(from)), 1200, "UTC")
            .await;
        feed.assigned("w-utc", shift, ticket, ms(at(from)) + 60 * S)
            .await;
        feed.completed("w-utc", shift, ticket, ms(at(from)) + 120 * S)
            .await;
        feed.offline("w-utc", shift, ms(at(to))).await;
    }
    feed.applied().await;

    // Autumn night shift: 2 h on the 24th, 7 h on the 25th (the hour 02:00–03:00 twice).
    let rows = workday_rows(&app, "2026-10-24", "2026-10-26").await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let day1 = workday(&rows, a, "2026-10-24");
    assert_fields(
        day1,
        &json!({
            "timezone": "Europe/Stockholm", "online_secs": 7200, "break_secs": 0,
            "engaged_secs": 1800, "paid_secs": 7200, "tickets_completed": 1,
            "pay_cents": 3300, "currency": "EUR"
        }),
    );
    let day2 = workday(&rows, a, "2026-10-25");
    assert_fields(
        day2,
        &json!({
            "timezone": "Europe/Stockholm", "online_secs": 25200, "break_secs": 1800,
            "engaged_secs": 0, "paid_secs": 23400, "tickets_completed": 0,
            // 23400 × 1650 / 3600 = 10725.
            "pay_cents": 10725, "currency": "EUR"
        }),
    );
    assert_eq!(
        num(day1, "online_secs") + num(day2, "online_secs"),
        9 * 3600,
        "the autumn night shift is nine hours"
    );
    for r in &rows {
        for k in [
            "agent_id",
            "workday",
            "timezone",
            "online_secs",
            "break_secs",
            "engaged_secs",
            "paid_secs",
            "tickets_completed",
            "pay_cents",
            "currency",
        ] {
            assert!(r.get(k).is_some(), "workday row has {k}: {r}");
        }
    }
    // The same shift in the shifts report: one row of nine hours.
    let shifts = shift_rows(&app, "2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z").await;
    assert_eq!(num(row(&shifts, s), "online_secs"), 9 * 3600);

    // Spring night shift: 2 h on the 28th, 5 h on the 29th (02:00–03:00 never happened).
    let rows = workday_rows(&app, "2026-03-28", "2026-03-30").await;
    assert_eq!(
        num(workday(&rows, a, "2026-03-28"), "online_secs"),
        2 * 3600
    );
    assert_eq!(
        num(workday(&rows, a, "2026-03-29"), "online_secs"),
        5 * 3600
    );

    // New York: split at New York's midnight, not UTC's; the UTC agent's two shifts merge.
    let rows = workday_rows(&app, "2026-03-09", "2026-03-11").await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_fields(
        workday(&rows, "w-ny", "2026-03-09"),
        &json!({"timezone": "America/New_York", "online_secs": 3600, "pay_cents": 1200,
                "currency": "EUR"}),
    );
    assert_fields(
        workday(&rows, "w-ny", "2026-03-10"),
        &json!({"timezone": "America/New_York", "online_secs": 7200, "pay_cents": 2400}),
    );
    assert_fields(
        workday(&rows, "w-utc", "2026-03-10"),
        &json!({"timezone": "UTC", "online_secs": 9000, "engaged_secs": 120,
                "paid_secs": 9000, "tickets_completed": 2, "pay_cents": 3000}),
    );
    // `to` is exclusive.
    let rows = workday_rows(&app, "2026-03-10", "2026-03-11").await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(
        num(workday(&rows, "w-ny", "2026-03-10"), "online_secs"),
        7200
    );
    let rows = workday_rows(&app, "2026-03-09", "2026-03-10").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(
        num(workday(&rows, "w-ny", "2026-03-09"), "online_secs"),
        3600
    );
    // The agent filter applies to workdays too.
    let (a_ny, _) = support::report(
        &app.dispatchers[0],
        "/v1/payroll/workdays",
        "payroll",
        &[
            ("from", "2026-03-09"),
            ("to", "2026-03-11"),
            ("agent_id", "w-ny"),
        ],
        None,
    )
    .await;
    assert_eq!(a_ny.status, 200, "{a_ny:?}");
    assert_eq!(a_ny.body["workdays"].as_array().map(Vec::len), Some(2));
}
