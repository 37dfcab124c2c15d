//! Shared helpers of the ledger end-to-end tests (`ledger_*.rs` include this file as a module).
//!
//! - [`Feed`]: appends synthetic events with chosen timestamps to a namespace's event stream and
//!   waits until the ledger writer has applied them (its stored offset reaches the last one).
//! - [`psql`]: runs SQL against the test PostgreSQL with the `psql` client.
//! - [`Services`]: dispatchers and gateways started without [`e2e::TestApp`], so stopping them
//!   leaves the namespace's Redis state in place (for restarts).
//! - report helpers: `GET /v1/payroll/shifts` and `/v1/payroll/workdays` with a proper query.
//! - [`Proxy`]: a switchable TCP proxy to the test PostgreSQL, to take it away from services
//!   without stopping the shared server.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use e2e::{token, Answer, TestApp, REDIS_URL};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// An instant given in RFC 3339.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

/// Milliseconds since the epoch.
pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The whole second of an instant in ms (floored), as the ledger stores it.
pub fn second(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ms.div_euclid(1000), 0).expect("a representable time")
}

/// RFC 3339 in UTC with whole seconds, as the reports print times.
pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Polls `f` until it yields `Some`, for at most `limit`; fails the test with `what` otherwise.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `sql` with `psql` on the test database; stdout (unaligned, tuples only) or stderr.
pub async fn psql(sql: &str) -> Result<String, String> {
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "dispatch",
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                &sql,
            ])
            .output()
            .expect("psql runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    })
    .await
    .expect("psql task")
}

/// `psql` that must succeed.
pub async fn sql(query: &str) -> String {
    match psql(query).await {
        Ok(out) => out,
        Err(e) => panic!("psql failed: {e}\n{query}"),
    }
}

/// The ledger's stored offset of `namespace`, if any.
pub async fn ledger_offset(namespace: &str) -> Option<(i64, i64)> {
    let out = psql(&format!(
        "SELECT last_ms || '|' || last_seq FROM ledger_offsets WHERE namespace = '{namespace}'"
    ))
    .await
    .ok()?;
    let (a, b) = out.split_once('|')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Parses a stream id `ms-seq`.
pub fn stream_id(id: &str) -> (i64, i64) {
    let (a, b) = id.split_once('-').expect("a stream id");
    (
        a.parse().expect("stream id ms"),
        b.parse().expect("stream id seq"),
    )
}

/// Waits until the ledger of `namespace` has applied the stream up to `id` (`ms-seq`).
pub async fn wait_applied(namespace: &str, id: &str) {
    let want = stream_id(id);
    eventually(
        &format!("the ledger of {namespace} to apply up to {id}"),
        Duration::from_secs(20),
        || async {
            ledger_offset(namespace)
                .await
                .filter(|got| *got >= want)
                .map(|_| ())
        },
    )
    .await;
}

/// Appends synthetic events to one namespace's stream, numbering them like the store does.
pub struct Feed {
    /// The namespace.
    pub namespace: String,
    conn: redis::aio::MultiplexedConnection,
    /// The id of the last event appended.
    pub last_id: Option<String>,
}

impl Feed {
    /// A feed into `namespace`.
    pub async fn new(namespace: &str) -> Self {
        let conn = redis::Client::open(REDIS_URL)
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection");
        Self {
            namespace: namespace.to_owned(),
            conn,
            last_id: None,
        }
    }

    fn key(&self, rest: &str) -> String {
        format!("{{{}}}:{rest}", self.namespace)
    }

    /// Appends an event of `kind` with `ts` (ms) and `fields`; returns its stream id.
    pub async fn event(&mut self, kind: &str, ts_ms: i64, fields: &[(&str, &str)]) -> String {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.key("events"))
            .arg("*")
            .arg("type")
            .arg(kind)
            .arg("ts")
            .arg(ts_ms.to_string());
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let id: String = cmd.query_async(&mut self.conn).await.expect("xadd");
        self.last_id = Some(id.clone());
        id
    }

    /// `shift_started` at `t` (ms).
    pub async fn started(&mut self, agent: &str, shift: &str, t: i64, rate: i64, tz: &str) {
        self.started_in(agent, shift, t, rate, "EUR", tz).await;
    }

    /// `shift_started` at `t` (ms) with a currency, followed by `agent_status available` as the
    /// store emits them; the agent's live state in Redis names the shift (see [`Feed::keep_live`]).
    pub async fn started_in(
        &mut self,
        agent: &str,
        shift: &str,
        t: i64,
        rate: i64,
        currency: &str,
        tz: &str,
    ) {
        // The live state has the shift too, as it would: the ledger's reconciliation closes
        // open shifts that Redis does not know.
        self.keep_live(agent, shift).await;
        let rate = rate.to_string();
        self.event(
            "shift_started",
            t,
            &[
                ("agent", agent),
                ("shift", shift),
                ("rate", &rate),
                ("currency", currency),
                ("tz", tz),
            ],
        )
        .await;
        self.status(agent, shift, "available", t).await;
    }

    /// `agent_status` at `t` (ms).
    pub async fn status(&mut self, agent: &str, shift: &str, status: &str, t: i64) {
        let reason = if status == "away" {
            "missed_offers"
        } else {
            "requested"
        };
        self.event(
            "agent_status",
            t,
            &[
                ("agent", agent),
                ("status", status),
                ("reason", reason),
                ("shift", shift),
            ],
        )
        .await;
    }

    /// `ticket_assigned` at `t` (ms).
    pub async fn assigned(&mut self, agent: &str, shift: &str, ticket: &str, t: i64) {
        let offer = format!("o-{ticket}");
        self.event(
            "ticket_assigned",
            t,
            &[
                ("ticket", ticket),
                ("agent", agent),
                ("offer", &offer),
                ("shift", shift),
            ],
        )
        .await;
    }

    /// `ticket_completed` at `t` (ms).
    pub async fn completed(&mut self, agent: &str, shift: &str, ticket: &str, t: i64) {
        self.event(
            "ticket_completed",
            t,
            &[
                ("ticket", ticket),
                ("agent", agent),
                ("outcome", "resolved"),
                ("shift", shift),
            ],
        )
        .await;
    }

    /// `ticket_requeued` at `t` (ms).
    pub async fn requeued(&mut self, agent: &str, ticket: &str, t: i64) {
        self.event(
            "ticket_requeued",
            t,
            &[("ticket", ticket), ("agent", agent)],
        )
        .await;
    }

    /// `ticket_cancelled` of a ticket that was assigned to `agent`, at `t` (ms).
    pub async fn cancelled(&mut self, agent: &str, ticket: &str, t: i64) {
        self.event(
            "ticket_cancelled",
            t,
            &[("ticket", ticket), ("agent", agent), ("was", "assigned")],
        )
        .await;
    }

    /// The agent asks to go offline at `t` (ms): `shift_ended` then `agent_status offline`.
    pub async fn offline(&mut self, agent: &str, shift: &str, t: i64) {
        self.ended(agent, shift, t, t, "requested").await;
        self.status(agent, "", "offline", t).await;
    }

    /// `shift_ended` emitted at `ts` (ms) with `ended_at` (ms) and `reason`.
    pub async fn ended(&mut self, agent: &str, shift: &str, ts: i64, ended_at: i64, reason: &str) {
        let ended_at = ended_at.to_string();
        self.event(
            "shift_ended",
            ts,
            &[
                ("agent", agent),
                ("shift", shift),
                ("ended_at", &ended_at),
                ("reason", reason),
            ],
        )
        .await;
    }

    /// Marks `shift` as `agent`'s live shift in Redis, so the ledger's reconciliation (which
    /// closes open shifts the live state no longer has) leaves a synthetic open shift alone.
    pub async fn keep_live(&mut self, agent: &str, shift: &str) {
        let _: i64 = redis::cmd("HSET")
            .arg(self.key(&format!("agent:{agent}")))
            .arg("shift")
            .arg(shift)
            .query_async(&mut self.conn)
            .await
            .expect("hset");
    }

    /// Waits until the ledger has applied every event appended so far.
    pub async fn applied(&self) {
        let id = self.last_id.clone().expect("some event was appended");
        wait_applied(&self.namespace, &id).await;
    }
}

/// `GET {base}{path}?from=…&to=…&extra…` with a token of `role` (none if empty).
pub async fn report(
    base: &str,
    path: &str,
    role: &str,
    query: &[(&str, &str)],
    accept: Option<&str>,
) -> (Answer, String) {
    let client = reqwest::Client::new();
    let mut req = client.get(format!("{base}{path}")).query(query);
    if !role.is_empty() {
        req = req.bearer_auth(token(role, "tester"));
    }
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    raw(req).await
}

/// Sends `req`, returning the parsed answer and the raw body text.
pub async fn raw(req: reqwest::RequestBuilder) -> (Answer, String) {
    e2e::fetch_text(req).await
}

/// `GET /v1/payroll/shifts` as payroll over `[from, to)` (RFC 3339), with more query `extra`.
pub async fn payroll_shifts(base: &str, from: &str, to: &str, extra: &[(&str, &str)]) -> Answer {
    let mut q = vec![("from", from), ("to", to)];
    q.extend_from_slice(extra);
    report(base, "/v1/payroll/shifts", "payroll", &q, None)
        .await
        .0
}

/// The shift rows over `[from, to)`; the answer must be 200.
pub async fn shift_rows(app: &TestApp, from: &str, to: &str) -> Vec<Value> {
    let a = payroll_shifts(&app.dispatchers[0], from, to, &[]).await;
    assert_eq!(a.status, 200, "GET /v1/payroll/shifts: {a:?}");
    assert_eq!(a.body["from"], from, "{:?}", a.body);
    assert_eq!(a.body["to"], to, "{:?}", a.body);
    a.body["shifts"].as_array().cloned().expect("shifts array")
}

/// The workday rows for local dates `[from, to)`; the answer must be 200.
pub async fn workday_rows(app: &TestApp, from: &str, to: &str) -> Vec<Value> {
    let (a, _) = report(
        &app.dispatchers[0],
        "/v1/payroll/workdays",
        "payroll",
        &[("from", from), ("to", to)],
        None,
    )
    .await;
    assert_eq!(a.status, 200, "GET /v1/payroll/workdays: {a:?}");
    a.body["workdays"]
        .as_array()
        .cloned()
        .expect("workdays array")
}

/// The row of `shift_id` among `rows`, which must hold exactly one.
pub fn row<'a>(rows: &'a [Value], shift_id: &str) -> &'a Value {
    let found: Vec<&Value> = rows.iter().filter(|r| r["shift_id"] == shift_id).collect();
    assert_eq!(found.len(), 1, "one row of {shift_id} in {rows:#?}");
    found[0]
}

/// The numeric field `k` of `row`.
pub fn num(row: &Value, k: &str) -> i64 {
    row[k]
        .as_i64()
        .unwrap_or_else(|| panic!("{k} is a whole number in {row}"))
}

/// Asserts `row`'s fields equal `want` (a JSON object of the expected subset).
pub fn assert_fields(row: &Value, want: &Value) {
    let want = want.as_object().expect("an object of expected fields");
    for (k, v) in want {
        assert_eq!(&row[k], v, "field {k} of {row:#}");
    }
}

/// Waits until the payroll endpoint answers 200 (the writer has migrated the database).
pub async fn ledger_ready(base: &str) {
    eventually(
        "the payroll report to answer 200",
        Duration::from_secs(20),
        || async {
            let a = payroll_shifts(base, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", &[]).await;
            (a.status == 200).then_some(())
        },
    )
    .await;
}

/// Redis's clock, in ms (the services' one authoritative clock).
pub async fn redis_now_ms() -> i64 {
    let mut conn = redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let (secs, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut conn)
        .await
        .expect("time");
    secs * 1000 + micros / 1000
}

/// A switchable TCP proxy to the test PostgreSQL.
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    on: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// A proxy, on at once, on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let on = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (on2, links2) = (on.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !on2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().expect("links").push(link.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            on,
            links,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn off(&self) {
        self.on.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    /// Accepts connections again.
    pub fn on(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.off();
    }
}
