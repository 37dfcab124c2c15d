//! The ledger's records in PostgreSQL: replaying the event stream changes nothing, and the
//! database itself refuses two overlapping shifts of one agent.

#[path = "ledger_support.rs"]
mod support;

use e2e::{spawn_app, TestApp};
use serde_json::json;
use support::{assert_fields, at, ms, num, psql, row, shift_rows, sql, workday_rows, Feed};

/// A second, in ms.
const S: i64 = 1000;

/// Everything the ledger holds for `namespace`, row by row, for comparing before and after.
async fn dump(namespace: &str) -> String {
    sql(&format!(
        "SELECT string_agg(r, E'\\n' ORDER BY r) FROM (
           SELECT 'shift ' || shift_id || ' ' || agent_id || ' ' || started_at || ' '
                  || coalesce(ended_at::text, '-') || ' ' || coalesce(end_reason, '-') || ' '
                  || recovered || ' ' || status || ' ' || active_tickets || ' '
                  || hourly_rate_cents || ' ' || currency || ' ' || timezone AS r
             FROM shifts WHERE namespace = '{namespace}'
           UNION ALL
           SELECT 'segment ' || shift_id || ' ' || started_at || ' '
                  || coalesce(ended_at::text, '-') || ' ' || kind
             FROM shift_segments WHERE namespace = '{namespace}'
           UNION ALL
           SELECT 'completion ' || ticket_id || ' ' || agent_id || ' ' || shift_id || ' '
                  || completed_at || ' ' || outcome
             FROM ticket_completions WHERE namespace = '{namespace}') d"
    ))
    .await
}

/// Sets the ledger's offset back to the start of the stream and waits until the writer has
/// applied the whole stream again.
async fn replay_everything(app: &TestApp, feed: &Feed) {
    let ns = &app.namespace;
    let len: i64 = redis::cmd("XLEN")
        .arg(format!("{{{ns}}}:events"))
        .query_async(&mut app.redis().await)
        .await
        .expect("xlen");
    let first: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("{{{ns}}}:events"))
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut app.redis().await)
        .await
        .expect("xrange");
    let first = first.ids.first().map(|e| e.id.clone()).unwrap_or_default();
    assert!(
        len > 10,
        "the stream still holds the events to replay ({len})"
    );
    sql(&format!(
        "UPDATE ledger_offsets SET last_ms = 0, last_seq = 0 WHERE namespace = '{ns}'"
    ))
    .await;
    // Once the offset is back at the last event, the writer has read everything again.
    feed.applied().await;
    println!("replayed {len} events from {first}");
}

/// Closed shifts: two shifts of one agent (tickets, a break) and one of another.
async fn feed_closed_shifts(feed: &mut Feed) {
    let t = ms(at("2026-04-01T08:00:00Z"));
    feed.started("p-1", "s-p1-a", t, 1650, "Europe/Stockholm")
        .await;
    feed.assigned("p-1", "s-p1-a", "t-1", t + 60 * S).await;
    feed.completed("p-1", "s-p1-a", "t-1", t + 600 * S).await;
    feed.status("p-1", "s-p1-a", "break", t + 900 * S).await;
    feed.status("p-1", "s-p1-a", "available", t + 1200 * S)
        .await;
    feed.offline("p-1", "s-p1-a", t + 3600 * S).await;
    feed.started("p-2", "s-p2", t + 10 * S, 2000, "UTC").await;
    feed.assigned("p-2", "s-p2", "t-2", t + 20 * S).await;
    feed.assigned("p-2", "s-p2", "t-3", t + 30 * S).await;
    feed.completed("p-2", "s-p2", "t-2", t + 40 * S).await;
    feed.requeued("p-2", "t-3", t + 50 * S).await;
    feed.offline("p-2", "s-p2", t + 7200 * S).await;
    let t = ms(at("2026-04-01T13:00:00Z"));
    feed.started("p-1", "s-p1-b", t, 1650, "Europe/Stockholm")
        .await;
    feed.assigned("p-1", "s-p1-b", "t-4", t + 100 * S).await;
    feed.completed("p-1", "s-p1-b", "t-4", t + 200 * S).await;
    feed.offline("p-1", "s-p1-b", t + 1800 * S).await;
}

const DAY_FROM: &str = "2026-04-01T00:00:00Z";
const DAY_TO: &str = "2026-04-02T00:00:00Z";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_stream_changes_nothing() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    feed_closed_shifts(&mut feed).await;
    feed.applied().await;
    let shifts = shift_rows(&app, DAY_FROM, DAY_TO).await;
    let days = workday_rows(&app, "2026-04-01", "2026-04-02").await;
    let records = dump(&app.namespace).await;
    assert_eq!(shifts.len(), 3, "{shifts:#?}");
    assert_fields(
        row(&shifts, "s-p1-a"),
        &json!({"online_secs": 3600, "engaged_secs": 540, "break_secs": 300,
                "paid_secs": 3300, "tickets_completed": 1, "pay_cents": 1513}),
    );

    replay_everything(&app, &feed).await;
    assert_eq!(
        dump(&app.namespace).await,
        records,
        "the records after a replay"
    );
    assert_eq!(shift_rows(&app, DAY_FROM, DAY_TO).await, shifts);
    assert_eq!(workday_rows(&app, "2026-04-01", "2026-04-02").await, days);
}

/// A replay while shifts are still open: one agent holding a ticket after an earlier shift of
/// its own, another on a break. The open shifts must come out of the replay untouched and go on
/// counting correctly afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_the_stream_leaves_open_shifts_intact() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    feed_closed_shifts(&mut feed).await;
    // p-1's third shift, still open: holding t-5 since 16:10.
    let t = ms(at("2026-04-01T16:00:00Z"));
    feed.started("p-1", "s-p1-c", t, 3600, "Europe/Stockholm")
        .await;
    feed.assigned("p-1", "s-p1-c", "t-5", t + 600 * S).await;
    // p-3: open, on a break since 16:20.
    feed.started("p-3", "s-p3", t, 3600, "UTC").await;
    feed.status("p-3", "s-p3", "break", t + 1200 * S).await;
    // p-4: its only shift, open, holding t-6 since 16:10.
    feed.started("p-4", "s-p4", t, 3600, "UTC").await;
    feed.assigned("p-4", "s-p4", "t-6", t + 600 * S).await;
    feed.applied().await;
    let shifts = shift_rows(&app, DAY_FROM, DAY_TO).await;
    let records = dump(&app.namespace).await;
    assert_eq!(shifts.len(), 6, "{shifts:#?}");

    replay_everything(&app, &feed).await;
    let after = dump(&app.namespace).await;
    let after_shifts = shift_rows(&app, DAY_FROM, DAY_TO).await;
    let diff = |a: &str, b: &str| -> Vec<String> {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        let gone = a
            .iter()
            .filter(|l| !b.contains(l))
            .map(|l| format!("- {l}"));
        let new = b
            .iter()
            .filter(|l| !a.contains(l))
            .map(|l| format!("+ {l}"));
        gone.chain(new).collect()
    };
    assert!(
        after == records,
        "the records after a replay differ:\n{}",
        diff(&records, &after).join("\n")
    );
    assert_eq!(after_shifts, shifts, "the report after a replay");

    // The shifts go on: t-5 completed at 16:30, both end at 17:00.
    feed.completed("p-1", "s-p1-c", "t-5", t + 1800 * S).await;
    feed.offline("p-1", "s-p1-c", t + 3600 * S).await;
    feed.offline("p-3", "s-p3", t + 3600 * S).await;
    feed.completed("p-4", "s-p4", "t-6", t + 1800 * S).await;
    feed.offline("p-4", "s-p4", t + 3600 * S).await;
    feed.applied().await;
    let rows = shift_rows(&app, DAY_FROM, DAY_TO).await;
    assert_eq!(rows.len(), 6, "{rows:#?}");
    assert_fields(
        row(&rows, "s-p4"),
        &json!({"started_at": "2026-04-01T16:00:00Z", "ended_at": "2026-04-01T17:00:00Z",
                "open": false, "online_secs": 3600, "engaged_secs": 1200, "break_secs": 0,
                "paid_secs": 3600, "tickets_completed": 1, "pay_cents": 3600}),
    );
    assert_fields(
        row(&rows, "s-p1-c"),
        &json!({"started_at": "2026-04-01T16:00:00Z", "ended_at": "2026-04-01T17:00:00Z",
                "open": false, "online_secs": 3600, "engaged_secs": 1200, "break_secs": 0,
                "paid_secs": 3600, "tickets_completed": 1, "pay_cents": 3600}),
    );
    assert_fields(
        row(&rows, "s-p3"),
        &json!({"started_at": "2026-04-01T16:00:00Z", "ended_at": "2026-04-01T17:00:00Z",
                "open": false, "online_secs": 3600, "engaged_secs": 0, "break_secs": 2400,
                "paid_secs": 1200, "pay_cents": 1200}),
    );
    // The closed shifts are as before.
    for id in ["s-p1-a", "s-p1-b", "s-p2"] {
        assert_eq!(row(&rows, id), row(&shifts, id));
    }
}

/// Inserts a shift row directly; the error text if PostgreSQL refuses it.
async fn insert_shift(
    ns: &str,
    shift: &str,
    agent: &str,
    from: &str,
    to: Option<&str>,
) -> Result<String, String> {
    let ended = to.map_or("NULL".to_owned(), |t| format!("'{t}'"));
    psql(&format!(
        "INSERT INTO shifts (namespace, shift_id, agent_id, started_at, ended_at,
                             hourly_rate_cents, currency, timezone, last_seen_at, status)
         VALUES ('{ns}', '{shift}', '{agent}', '{from}', {ended}, 1650, 'EUR', 'UTC',
                 '{from}', 'available')"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_overlapping_shifts_of_one_agent() {
    // The services create the schema; the rows go into namespaces no ledger writer runs in
    // (a writer's reconciliation would close the open shifts below).
    let app = spawn_app().await;
    support::ledger_ready(&app.dispatchers[0]).await;
    let ns = e2e::fresh_namespace();
    let other_ns = e2e::fresh_namespace();
    let ok = |r: Result<String, String>, what: &str| {
        assert!(r.is_ok(), "{what} is accepted: {r:?}");
    };
    let refused = |r: Result<String, String>, what: &str| match r {
        Ok(_) => panic!("{what} must be refused"),
        Err(e) => assert!(
            e.contains("shifts_no_overlap"),
            "{what} is refused by the exclusion constraint: {e}"
        ),
    };
    let d = |hm: &str| format!("2026-05-01T{hm}:00Z");
    ok(
        insert_shift(&ns, "x-1", "o-1", &d("10:00"), Some(&d("12:00"))).await,
        "a first shift",
    );
    refused(
        insert_shift(&ns, "x-2", "o-1", &d("11:00"), Some(&d("13:00"))).await,
        "a shift overlapping its end",
    );
    refused(
        insert_shift(&ns, "x-3", "o-1", &d("09:00"), Some(&d("10:01"))).await,
        "a shift overlapping its start",
    );
    refused(
        insert_shift(&ns, "x-4", "o-1", &d("10:30"), Some(&d("11:00"))).await,
        "a shift inside it",
    );
    ok(
        insert_shift(&ns, "x-5", "o-1", &d("12:00"), Some(&d("13:00"))).await,
        "a shift starting when it ends",
    );
    ok(
        insert_shift(&ns, "x-6", "o-1", &d("08:00"), Some(&d("10:00"))).await,
        "a shift ending when it starts",
    );
    ok(
        insert_shift(&ns, "x-7", "o-2", &d("10:00"), Some(&d("12:00"))).await,
        "another agent's shift at the same time",
    );
    ok(
        insert_shift(&other_ns, "x-8", "o-1", &d("10:00"), Some(&d("12:00"))).await,
        "the same agent's shift in another namespace",
    );
    // An open shift runs to infinity.
    ok(
        insert_shift(&ns, "x-9", "o-1", &d("15:00"), None).await,
        "an open shift",
    );
    refused(
        insert_shift(&ns, "x-10", "o-1", &d("20:00"), Some(&d("21:00"))).await,
        "a later shift while one is open",
    );
    refused(
        insert_shift(&ns, "x-11", "o-1", &d("14:00"), None).await,
        "a second open shift",
    );
    ok(
        insert_shift(&ns, "x-12", "o-1", &d("13:30"), Some(&d("14:30"))).await,
        "a shift before the open one",
    );
    let count = sql(&format!(
        "SELECT count(*) FROM shifts WHERE namespace = '{ns}' AND agent_id = 'o-1'"
    ))
    .await;
    assert_eq!(count, "5");
    sql(&format!(
        "DELETE FROM shifts WHERE namespace IN ('{ns}', '{other_ns}')"
    ))
    .await;
}

/// Redis's clock (the one authoritative clock) can step back a little (NTP, a failover to a
/// replica): an agent's next shift may then start a second before its previous one ended. The
/// ledger must not stop for the whole namespace over it: other agents' later events are still
/// applied and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_step_back_does_not_stall_the_ledger() {
    let app = spawn_app().await;
    let mut feed = Feed::new(&app.namespace).await;
    let t = ms(at("2026-04-02T08:00:00Z"));
    feed.started("q-1", "s-q1-a", t, 3600, "UTC").await;
    feed.offline("q-1", "s-q1-a", t + 3600 * S).await;
    // The clock stepped back two seconds.
    feed.started("q-1", "s-q1-b", t + 3598 * S, 3600, "UTC")
        .await;
    feed.offline("q-1", "s-q1-b", t + 7200 * S).await;
    // Another agent, later.
    feed.started("q-2", "s-q2", t + 7300 * S, 3600, "UTC").await;
    feed.offline("q-2", "s-q2", t + 9000 * S).await;
    feed.applied().await;
    let rows = shift_rows(&app, "2026-04-02T00:00:00Z", "2026-04-03T00:00:00Z").await;
    assert_eq!(num(row(&rows, "s-q2"), "online_secs"), 1700, "{rows:#?}");
    assert_eq!(num(row(&rows, "s-q1-a"), "online_secs"), 3600, "{rows:#?}");
}

#[tokio::test]
async fn events_stored_over_an_hour_ago_leave_the_stream_whatever_groups_are_left_on_it() {
    let app = spawn_app().await;
    let key = format!("{{{}}}:events", app.namespace);
    let mut conn = app.redis().await;
    // A consumer group an earlier version's matcher read the stream in, left behind.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&key)
        .arg("matcher")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await
        .expect("xgroup create");
    // Events from long ago (more than a stream node's worth: trimming drops whole nodes).
    let old = 300;
    for i in 0..old {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg(format!("1000-{i}"))
            .arg("type")
            .arg("agent_upserted")
            .arg("ts")
            .arg("1000")
            .arg("agent")
            .arg("a-old")
            .query_async(&mut conn)
            .await
            .expect("xadd");
    }
    support::wait_applied(&app.namespace, &format!("1000-{}", old - 1)).await;

    support::eventually(
        "the ledger to trim what it stored",
        std::time::Duration::from_secs(20),
        || async {
            let len: i64 = redis::cmd("XLEN")
                .arg(&key)
                .query_async(&mut app.redis().await)
                .await
                .expect("xlen");
            (len < old).then_some(())
        },
    )
    .await;
}

/// The writer renews its lease before each batch commits, and commits nothing once another
/// instance holds it (after a pause longer than the lease, say): two writers never both store.
#[tokio::test]
async fn a_writer_that_lost_its_lease_commits_nothing() {
    let namespace = e2e::fresh_namespace();
    let store = shared::store::Store::open(e2e::REDIS_URL, &namespace).expect("a Redis URL");
    store.load_library().await.expect("the library loads");
    let ledger = ledger::Ledger::open(
        &e2e::settings(&e2e::Options::default(), &namespace).database_url,
        &namespace,
    )
    .expect("a PostgreSQL URL");
    ledger.migrate().await.expect("the ledger migrates");
    let mut feed = Feed::new(&namespace).await;
    feed.started("l-1", "s-l-1", 1_700_000_000_000, 2000, "UTC")
        .await;
    let lease = format!("{{{namespace}}}:lease:ledger");
    let _: () = redis::cmd("SET")
        .arg(&lease)
        .arg("another-instance")
        .arg("PX")
        .arg(10_000)
        .query_async(&mut store.conn())
        .await
        .expect("SET");

    let lost = ledger.catch_up_as(&store, Some("this-instance")).await;
    assert!(
        matches!(lost, Err(ledger::LedgerError::LeaseLost)),
        "{lost:?}"
    );
    assert_eq!(
        support::ledger_offset(&namespace).await,
        None,
        "nothing stored"
    );

    let _: () = redis::cmd("DEL")
        .arg(&lease)
        .query_async(&mut store.conn())
        .await
        .expect("DEL");
    let n = ledger
        .catch_up_as(&store, Some("this-instance"))
        .await
        .expect("the lease is free again");
    let events: usize = redis::cmd("XLEN")
        .arg(format!("{{{namespace}}}:events"))
        .query_async(&mut store.conn())
        .await
        .expect("XLEN");
    assert_eq!(n, events, "the whole stream, once the lease is free");
    assert!(support::ledger_offset(&namespace).await.is_some());
    let holder: String = redis::cmd("GET")
        .arg(&lease)
        .query_async(&mut store.conn())
        .await
        .expect("GET");
    assert_eq!(holder, "this-instance", "renewed as it committed");
    e2e::drop_namespace(&namespace).await;
}

/// Events that leave the stream before the ledger stored them (the stream's cap trimmed a
/// backlog, say) are a gap: the writer records it, says so in `/readyz`'s body (which stays 200),
/// and closes the open shifts the live state no longer has, marked recovered, instead of
/// leaving them open for ever.
#[tokio::test]
async fn events_gone_before_the_ledger_stored_them_are_a_gap_it_reports_and_mends() {
    let app = spawn_app().await;
    let ns = app.namespace.clone();
    let mut feed = Feed::new(&ns).await;
    let t = ms(at("2026-11-30T09:00:00Z"));
    feed.started("g-1", "s-gap-1", t, 2000, "UTC").await;
    feed.applied().await;
    let readyz = e2e::fetch(app.http.get(app.dispatcher("/readyz"))).await;
    assert_eq!(readyz.body["ledger"], "ok", "{readyz:?}");

    // The shift ends in Redis, and its event leaves the stream before the ledger reads it.
    let mut conn = app.redis().await;
    let _: () = redis::pipe()
        .atomic()
        .hdel(format!("{{{ns}}}:agent:g-1"), "shift")
        .ignore()
        .cmd("XADD")
        .arg(format!("{{{ns}}}:events"))
        .arg("*")
        .arg("type")
        .arg("shift_ended")
        .arg("ts")
        .arg(t + 60_000)
        .arg("agent")
        .arg("g-1")
        .arg("shift")
        .arg("s-gap-1")
        .arg("reason")
        .arg("requested")
        .ignore()
        .cmd("XTRIM")
        .arg(format!("{{{ns}}}:events"))
        .arg("MAXLEN")
        .arg(0)
        .ignore()
        .query_async(&mut conn)
        .await
        .expect("the event is lost");
    // The gap shows when the next event comes.
    feed.started("g-2", "s-gap-2", t + 120_000, 2000, "UTC")
        .await;

    support::eventually(
        "the gap to be reported",
        std::time::Duration::from_secs(20),
        || async {
            let readyz = e2e::fetch(app.http.get(app.dispatcher("/readyz"))).await;
            let said = readyz.body["ledger"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (readyz.status == 200 && said.contains("left the stream")).then_some(said)
        },
    )
    .await;
    let gaps = sql(&format!(
        "SELECT count(*) FROM ledger_gaps WHERE namespace = '{ns}'"
    ))
    .await;
    assert_eq!(gaps.trim(), "1");
    let closed = sql(&format!(
        "SELECT recovered || ' ' || (ended_at IS NOT NULL) FROM shifts
          WHERE namespace = '{ns}' AND shift_id = 's-gap-1'"
    ))
    .await;
    assert_eq!(closed.trim(), "true true", "closed from the live state");
    let live = sql(&format!(
        "SELECT (ended_at IS NULL)::text FROM shifts WHERE namespace = '{ns}' AND shift_id = 's-gap-2'"
    ))
    .await;
    assert_eq!(live.trim(), "true", "the shift after the gap goes on");
}
