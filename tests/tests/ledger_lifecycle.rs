//! Real shifts, no synthetic events (API.md §6, §7 and the issue): a reconnect within the grace
//! period, to any instance, continues the shift; a drop past it ends the shift at the drop; a
//! restart of every service keeps the shift going; a gateway that died without a word has its
//! agents' shifts closed at their last sign of life, marked recovered.

#[path = "ledger_support.rs"]
mod support;

use std::time::Duration;

use chrono::Utc;
use e2e::{profile, spawn_with, ticket, AgentClient, Options, TestApp};
use serde_json::{json, Value};
use support::{eventually, num, redis_now_ms, rfc, row, sql};

/// A report window around now.
fn around_now() -> (String, String) {
    (
        rfc(Utc::now() - chrono::Duration::minutes(10)),
        rfc(Utc::now() + chrono::Duration::minutes(10)),
    )
}

/// The agent's current shift id from `GET /v1/agents/{id}`.
async fn live_shift(app: &TestApp, agent: &str) -> Option<String> {
    let a = app.get_agent(agent).await;
    assert_eq!(a.status, 200, "{a:?}");
    a.body["state"]["shift_id"].as_str().map(str::to_owned)
}

/// Waits until the report over `[from, to)` holds `shifts` closed rows of `agent`; returns them.
async fn closed_rows(base: &str, from: &str, to: &str, agent: &str, shifts: usize) -> Vec<Value> {
    eventually(
        &format!("{shifts} closed shift(s) of {agent} in the report"),
        Duration::from_secs(15),
        || async {
            let a = support::payroll_shifts(base, from, to, &[("agent_id", agent)]).await;
            assert_eq!(a.status, 200, "{a:?}");
            let rows = a.body["shifts"].as_array().cloned().unwrap_or_default();
            (rows.len() == shifts && rows.iter().all(|r| r["open"] == false)).then_some(rows)
        },
    )
    .await
}

/// The ledger's own record of a shift: `recovered|end_reason|ended_at epoch`.
async fn record(ns: &str, shift: &str) -> String {
    sql(&format!(
        "SELECT recovered || '|' || coalesce(end_reason, '-') || '|'
                || coalesce(extract(epoch FROM ended_at)::bigint::text, '-')
           FROM shifts WHERE namespace = '{ns}' AND shift_id = '{shift}'"
    ))
    .await
}

/// How many shift records the agent has.
async fn records_of(ns: &str, agent: &str) -> String {
    sql(&format!(
        "SELECT count(*) FROM shifts WHERE namespace = '{ns}' AND agent_id = '{agent}'"
    ))
    .await
}

fn secs_of(row: &Value, k: &str) -> i64 {
    support::at(row[k].as_str().expect("a time")).timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_within_grace_on_another_gateway_continues_the_shift() {
    let app = spawn_with(Options {
        gateways: 2,
        grace_secs: 3,
        ..Options::default()
    })
    .await;
    let (from, to) = around_now();
    app.add_agent("g-1", &profile(&["sv"], json!({}), 1)).await;
    let mut agent = AgentClient::connect_available(&app.gateways[0], "g-1").await;
    let shift = live_shift(&app, "g-1").await.expect("on shift");
    // Hold a ticket across the reconnect.
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    agent.close().await;
    eventually("the drop to be seen", Duration::from_secs(5), || async {
        (app.get_agent("g-1").await.body["state"]["connected"] == false).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let mut again = AgentClient::connect(&app.gateways[1], "g-1").await;
    let welcome = again.expect("welcome").await;
    assert_eq!(welcome["status"], "available", "{welcome}");
    assert_eq!(
        welcome["shift_id"],
        shift.as_str(),
        "the same shift: {welcome}"
    );
    assert_eq!(welcome["active_tickets"].as_array().map(Vec::len), Some(1));
    // Stay past the grace period: nothing ends it.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        live_shift(&app, "g-1").await.as_deref(),
        Some(shift.as_str())
    );
    again.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
    again.set_status("offline").await;

    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-1", 1).await;
    let r = row(&rows, &shift);
    assert_eq!(num(r, "tickets_completed"), 1, "{r}");
    let online = num(r, "online_secs");
    assert!(online >= 4, "the shift covers both connections: {r}");
    assert!(
        num(r, "engaged_secs") >= 4 && num(r, "engaged_secs") <= online,
        "held the ticket across the reconnect: {r}"
    );
    assert_eq!(num(r, "break_secs"), 0, "{r}");
    assert_eq!(records_of(&app.namespace, "g-1").await, "1");
    assert_eq!(
        record(&app.namespace, &shift)
            .await
            .rsplit_once('|')
            .map(|x| x.0.to_owned()),
        Some("false|requested".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drop_past_grace_ends_the_shift_at_the_drop() {
    let app = spawn_with(Options {
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let (from, to) = around_now();
    app.add_agent("g-2", &profile(&["sv"], json!({}), 1)).await;
    let mut agent = AgentClient::connect_available(&app.gateways[0], "g-2").await;
    let first = live_shift(&app, "g-2").await.expect("on shift");
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_drop = redis_now_ms().await / 1000;
    agent.close().await;
    eventually("the drop to be seen", Duration::from_secs(5), || async {
        (app.get_agent("g-2").await.body["state"]["connected"] == false).then_some(())
    })
    .await;
    let after_drop = redis_now_ms().await / 1000;
    // The grace period runs out; the held ticket goes back to the queue.
    eventually("the shift to end", Duration::from_secs(10), || async {
        live_shift(&app, "g-2").await.is_none().then_some(())
    })
    .await;
    app.wait_ticket_status(&id, "queued").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let mut again = AgentClient::connect(&app.gateways[0], "g-2").await;
    let welcome = again.expect("welcome").await;
    assert_eq!(welcome["status"], "offline", "{welcome}");
    assert_eq!(welcome["shift_id"], Value::Null, "{welcome}");
    assert_eq!(welcome["active_tickets"], json!([]), "{welcome}");
    again.set_status("available").await;
    let second = live_shift(&app, "g-2").await.expect("a new shift");
    assert_ne!(second, first, "a new shift id");
    // The queued ticket comes back to the agent; decline it and leave.
    let offer = again.expect("offer").await;
    again
        .send(json!({"type": "decline", "offer_id": offer["offer_id"]}))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    again.set_status("offline").await;

    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-2", 2).await;
    let r1 = row(&rows, &first);
    let ended = secs_of(r1, "ended_at");
    assert!(
        (before_drop..=after_drop).contains(&ended),
        "the shift ends at the drop ({before_drop}..={after_drop}), not at the grace \
         period's end: {r1}"
    );
    assert!(num(r1, "engaged_secs") >= 1, "{r1}");
    assert!(
        num(r1, "engaged_secs") <= num(r1, "online_secs"),
        "engaged time ends with the shift: {r1}"
    );
    assert_eq!(num(r1, "tickets_completed"), 0, "{r1}");
    let r2 = row(&rows, &second);
    assert!(
        secs_of(r2, "started_at") > ended,
        "the new shift starts at the reconnect: {r2} after {r1}"
    );
    assert_eq!(num(r2, "engaged_secs"), 0, "{r2}");
    let rec = record(&app.namespace, &first).await;
    assert_eq!(rec, format!("false|disconnected|{ended}"));
    assert_eq!(records_of(&app.namespace, "g-2").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_survives_a_restart_of_every_service() {
    let ns = e2e::fresh_namespace();
    let opts = Options {
        namespace: Some(ns.clone()),
        grace_secs: 5,
        ..Options::default()
    };
    let (from, to) = around_now();
    // The first generation of services (stopped without wiping the namespace).
    let first = spawn_with(opts.clone()).await;
    let a = first
        .put_agent("g-3", &profile(&["sv"], json!({}), 1))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let mut agent = AgentClient::connect_available(&first.gateways[0], "g-3").await;
    let shift = first.get_agent("g-3").await.body["state"]["shift_id"]
        .as_str()
        .expect("on shift")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stopping = tokio::time::Instant::now();
    first.stop().await;
    let _ = agent.expect_close().await;
    println!("stopped in {:?}", stopping.elapsed());

    // The second generation, in the same namespace.
    let app = spawn_with(opts).await;
    let mut again = AgentClient::connect(&app.gateways[0], "g-3").await;
    let welcome = again.expect("welcome").await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "reconnected within the grace period"
    );
    assert_eq!(welcome["status"], "available", "{welcome}");
    assert_eq!(welcome["shift_id"], shift.as_str(), "{welcome}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    again.set_status("offline").await;

    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-3", 1).await;
    let r = row(&rows, &shift);
    assert!(
        num(r, "online_secs") >= 3,
        "one shift covering both halves: {r}"
    );
    assert_eq!(num(r, "paid_secs"), num(r, "online_secs"), "{r}");
    assert_eq!(records_of(&ns, "g-3").await, "1");
    assert!(record(&ns, &shift).await.starts_with("false|requested|"));
}

/// A gateway instance dies without a word while its agent is on shift: the dispatcher reaps it
/// after 15 s of silence, and the shift ends at the instance's last heartbeat, marked recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_gateways_shift_ends_at_its_last_heartbeat_marked_recovered() {
    let app = spawn_with(Options {
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let (from, to) = around_now();
    app.add_agent("g-4", &profile(&["sv"], json!({}), 1)).await;
    let store = shared::store::Store::open(e2e::REDIS_URL, &app.namespace).expect("store");
    let gone = "gw-dead-instance";
    let agent = shared::domain::AgentId::try_from("g-4").expect("an agent id");
    store
        .connect(&agent, "conn-dead", gone)
        .await
        .expect("connect");
    let now = store
        .set_status(&agent, shared::domain::RequestedStatus::Available)
        .await
        .expect("set_status");
    assert_eq!(now.status, shared::domain::AgentStatus::Available);
    let shift = now.shift_id.expect("a shift started");
    let started = redis_now_ms().await;
    // Its last heartbeat: two seconds into the shift.
    let last_beat = started + 2000;
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{{{}}}:gateways", app.namespace))
        .arg(last_beat)
        .arg(gone)
        .query_async(&mut app.redis().await)
        .await
        .expect("zadd");

    // Reaped once silent for 15 s (checked every 2 s), then the 1 s grace period runs out.
    eventually("the shift to end", Duration::from_secs(30), || async {
        live_shift(&app, "g-4").await.is_none().then_some(())
    })
    .await;
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-4", 1).await;
    let r = row(&rows, &shift);
    assert_eq!(
        secs_of(r, "ended_at"),
        last_beat / 1000,
        "ends at the last heartbeat: {r}"
    );
    assert!(
        secs_of(r, "started_at") <= started / 1000,
        "started when set available: {r}"
    );
    assert_eq!(
        num(r, "online_secs"),
        last_beat / 1000 - secs_of(r, "started_at"),
        "{r}"
    );
    assert_eq!(num(r, "paid_secs"), num(r, "online_secs"), "{r}");
    assert_eq!(
        record(&app.namespace, &shift).await,
        format!("true|recovered|{}", last_beat / 1000)
    );
}

/// A gateway process told to stop (SIGTERM) exits as its `main` does: the runtime ends when
/// `run_until_stopped` returns. Its agent does not come back: the shift must still end, after
/// the grace period, at the drop (API.md §7), rather than stay open with the agent looking
/// connected to an instance that no longer exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateways_agent_that_never_returns_has_its_shift_ended() {
    let app = spawn_with(Options {
        gateways: 0,
        grace_secs: 2,
        ..Options::default()
    })
    .await;
    let (from, to) = around_now();
    app.add_agent("g-5", &profile(&["sv"], json!({}), 1)).await;
    // The gateway as a process of its own: its own runtime, dropped when it returns.
    let settings = e2e::settings(
        &Options {
            grace_secs: 2,
            ..Options::default()
        },
        &app.namespace,
    );
    let (port_tx, port_rx) = std::sync::mpsc::channel::<u16>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let gw = agent_app_api::Application::build(settings)
                .await
                .expect("gateway starts");
            port_tx.send(gw.port()).expect("port sent");
            let _ = gw.run_until_stopped(async { drop(stop_rx.await) }).await;
        });
        drop(runtime);
    });
    let port = tokio::task::spawn_blocking(move || port_rx.recv().expect("port"))
        .await
        .expect("port task");
    let gateway = format!("http://127.0.0.1:{port}");
    let mut agent = AgentClient::connect_available(&gateway, "g-5").await;
    let shift = live_shift(&app, "g-5").await.expect("on shift");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before_stop = redis_now_ms().await / 1000;
    let _ = stop_tx.send(());
    tokio::task::spawn_blocking(move || process.join().expect("gateway thread"))
        .await
        .expect("join task");
    let _ = agent.expect_close().await;
    let after_stop = redis_now_ms().await / 1000;

    eventually(
        "the shift of an agent that never came back to end",
        Duration::from_secs(15),
        || async { live_shift(&app, "g-5").await.is_none().then_some(()) },
    )
    .await;
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-5", 1).await;
    let r = row(&rows, &shift);
    let ended = secs_of(r, "ended_at");
    assert!(
        (before_stop..=after_stop).contains(&ended),
        "ends when the connection dropped ({before_stop}..={after_stop}): {r}"
    );
}

/// Every instance stops and Redis comes back empty (it kept nothing): the shift's end is lost
/// with it. Whichever instance starts next closes the shift at the agent's last sign of life
/// the ledger recorded, marked recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_whose_live_state_is_lost_is_closed_by_the_next_instance() {
    let ns = e2e::fresh_namespace();
    let opts = Options {
        namespace: Some(ns.clone()),
        ..Options::default()
    };
    let (from, to) = around_now();
    let first = spawn_with(opts.clone()).await;
    let a = first
        .put_agent("g-6", &profile(&["sv"], json!({}), 1))
        .await;
    assert_eq!(a.status, 201, "{a:?}");
    let mut agent = AgentClient::connect_available(&first.gateways[0], "g-6").await;
    let shift = first.get_agent("g-6").await.body["state"]["shift_id"]
        .as_str()
        .expect("on shift")
        .to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set_status("break").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set_status("available").await;
    let back = redis_now_ms().await / 1000;
    // The ledger has the shift, open.
    eventually(
        "the open shift in the ledger",
        Duration::from_secs(10),
        || async {
            let a = support::payroll_shifts(&first.dispatchers[0], &from, &to, &[]).await;
            let rows = a.body["shifts"].as_array().cloned().unwrap_or_default();
            (rows.len() == 1 && rows[0]["open"] == true && num(&rows[0], "break_secs") >= 1)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    first.stop().await;
    let stopped = redis_now_ms().await / 1000;
    let _ = agent.expect_close().await;
    e2e::drop_namespace(&ns).await;
    let last_seen: i64 = sql(&format!(
        "SELECT extract(epoch FROM last_seen_at)::bigint FROM shifts
          WHERE namespace = '{ns}' AND shift_id = '{shift}' AND ended_at IS NULL"
    ))
    .await
    .parse()
    .expect("the shift is still open in the ledger, with a last sign of life");
    assert!(
        (back..=stopped).contains(&last_seen),
        "the ledger saw the agent until {back}..={stopped}: {last_seen}"
    );

    let app = spawn_with(opts).await;
    let rec = eventually(
        "the next instance to close the shift",
        Duration::from_secs(40),
        || {
            let (ns, shift) = (ns.clone(), shift.clone());
            async move {
                let rec = record(&ns, &shift).await;
                (!rec.ends_with("|-")).then_some(rec)
            }
        },
    )
    .await;
    assert_eq!(rec, format!("true|recovered|{last_seen}"));
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-6", 1).await;
    let r = row(&rows, &shift);
    assert_eq!(secs_of(r, "ended_at"), last_seen, "{r}");
    assert!(num(r, "break_secs") >= 1, "{r}");
}

/// Removal ends the shift (API.md §3, §7); the removed agent's shifts stay reportable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_ends_the_shift() {
    let app = spawn_with(Options::default()).await;
    let (from, to) = around_now();
    let mut agent = app
        .available_agent("g-7", &profile(&["sv"], json!({}), 1))
        .await;
    let shift = live_shift(&app, "g-7").await.expect("on shift");
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let before = redis_now_ms().await / 1000;
    let a = app.delete_agent("g-7").await;
    assert_eq!(a.status, 204, "{a:?}");
    let after = redis_now_ms().await / 1000;
    app.wait_ticket_status(&id, "queued").await;
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-7", 1).await;
    let r = row(&rows, &shift);
    let ended = secs_of(r, "ended_at");
    assert!(
        (before..=after).contains(&ended),
        "ends at the removal: {r}"
    );
    assert!(num(r, "engaged_secs") >= 1, "{r}");
    assert_eq!(
        record(&app.namespace, &shift).await,
        format!("false|removed|{ended}")
    );
}

/// A changed profile takes effect for the next shift; a running shift keeps its rate (§3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_shift_keeps_the_rate_it_started_with() {
    let app = spawn_with(Options::default()).await;
    let (from, to) = around_now();
    let mut p = profile(&["sv"], json!({}), 1);
    let mut agent = app.available_agent("g-8", &p).await;
    let first = live_shift(&app, "g-8").await.expect("on shift");
    p["hourly_rate_cents"] = json!(3600);
    p["currency"] = json!("SEK");
    app.add_agent("g-8", &p).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set_status("offline").await;
    agent.set_status("available").await;
    let second = live_shift(&app, "g-8").await.expect("on shift again");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set_status("offline").await;
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-8", 2).await;
    let (r1, r2) = (row(&rows, &first), row(&rows, &second));
    assert_eq!(r1["hourly_rate_cents"], 1650, "{r1}");
    assert_eq!(r1["currency"], "EUR", "{r1}");
    assert_eq!(r2["hourly_rate_cents"], 3600, "{r2}");
    assert_eq!(r2["currency"], "SEK", "{r2}");
    assert_eq!(num(r2, "pay_cents"), num(r2, "paid_secs"), "{r2}");
}

/// `away` after missed offers is break time, unpaid (§3, §7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_after_missed_offers_is_unpaid_break() {
    let app = spawn_with(Options {
        offer_timeout_secs: 1,
        missed_before_away: 1,
        ..Options::default()
    })
    .await;
    let (from, to) = around_now();
    let mut agent = app
        .available_agent("g-9", &profile(&["sv"], json!({}), 1))
        .await;
    let shift = live_shift(&app, "g-9").await.expect("on shift");
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.expect("offer").await;
    agent.expect("offer_revoked").await;
    let status = agent.expect("status").await;
    assert_eq!(status["status"], "away", "{status}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    agent.set_status("available").await;
    // Declined/expired once: the ticket is not offered to this agent again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    agent.set_status("offline").await;
    let _ = app.cancel_ticket(&id).await;
    let rows = closed_rows(&app.dispatchers[0], &from, &to, "g-9", 1).await;
    let r = row(&rows, &shift);
    let brk = num(r, "break_secs");
    assert!((2..=4).contains(&brk), "away time is break: {r}");
    assert_eq!(num(r, "paid_secs"), num(r, "online_secs") - brk, "{r}");
    assert_eq!(num(r, "engaged_secs"), 0, "{r}");
}
