//! What both targets share: the seeded fleet and ticket mix, the clock, the record of what
//! happened to every ticket, and WebSocket connections from chosen source addresses.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

use crate::cli::Args;

/// The languages tickets and agents use.
pub const LANGS: [&str; 6] = ["en", "sv", "de", "fr", "es", "fi"];
/// The language of "not eligible" agents: no ticket asks for it.
pub const OTHER_LANG: &str = "nl";
/// The skills.
pub const SKILLS: [&str; 8] = [
    "refunds",
    "billing",
    "disputes",
    "shipping",
    "returns",
    "technical",
    "accounts",
    "fraud",
];
/// The length of every ticket summary, so payloads are the same size for both targets.
pub const SUMMARY_LEN: usize = 120;

// ---------------------------------------------------------------------------------------------
// Randomness

/// A small deterministic PRNG (xorshift64*, seeded through splitmix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Exponentially distributed with mean `mean`.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
}

// ---------------------------------------------------------------------------------------------
// The clock

static T0: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the generator started (one clock for send and receive times).
pub fn now_us() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_micros() as u64
}

// ---------------------------------------------------------------------------------------------
// The fleet

/// What an agent does with its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Goes `available` and takes offers.
    Free,
    /// Connected but `offline`.
    Offline,
    /// Connected, on `break`.
    Break,
    /// `available` but speaks only a language no ticket uses.
    OtherLanguage,
}

/// One simulated agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub id: String,
    pub langs: Vec<&'static str>,
    pub skills: Vec<(&'static str, u8)>,
    pub max: u8,
    pub role: Role,
}

impl AgentSpec {
    /// The roster profile (`PUT /v1/agents/{id}`).
    pub fn profile(&self) -> Value {
        let skills: serde_json::Map<String, Value> = self
            .skills
            .iter()
            .map(|(s, l)| ((*s).to_owned(), json!(l)))
            .collect();
        let mut p = e2e::profile(&self.langs, Value::Object(skills), self.max);
        p["display_name"] = json!(format!("Load {}", self.id));
        p
    }
}

/// The fleet for `args`: deterministic in `--seed`. Agent `i` is free when the running share
/// of free agents crosses an integer at `i`, so free agents are spread evenly over gateways and
/// source addresses; the others cycle through offline, break and another language.
pub fn fleet(args: &Args) -> Vec<AgentSpec> {
    let mut rng = Rng::new(args.seed);
    let mut other = 0usize;
    (0..args.agents)
        .map(|i| {
            let a = LANGS[rng.below(LANGS.len())];
            let langs = if rng.f64() < 0.5 {
                let mut b = LANGS[rng.below(LANGS.len())];
                while b == a {
                    b = LANGS[rng.below(LANGS.len())];
                }
                vec![a, b]
            } else {
                vec![a]
            };
            let s1 = rng.below(SKILLS.len());
            let s2 = (s1 + 1 + rng.below(SKILLS.len() - 1)) % SKILLS.len();
            let skills = vec![
                (SKILLS[s1], 1 + rng.below(5) as u8),
                (SKILLS[s2], 1 + rng.below(5) as u8),
            ];
            let max = 1 + rng.below(3) as u8;
            let share = args.free_share;
            let free = ((i + 1) as f64 * share).floor() > (i as f64 * share).floor();
            let role = if free {
                Role::Free
            } else {
                other += 1;
                match other % 3 {
                    1 => Role::Offline,
                    2 => Role::Break,
                    _ => Role::OtherLanguage,
                }
            };
            let langs = if role == Role::OtherLanguage {
                vec![OTHER_LANG]
            } else {
                langs
            };
            AgentSpec {
                id: format!("{}-{i}", args.agent_prefix),
                langs,
                skills,
                max,
                role,
            }
        })
        .collect()
}

/// The ticket mix: each ticket copies a language (and, half the time, one skill at a low
/// level) from a random free agent, so tickets follow the fleet's languages and most match.
pub struct TicketMix {
    rng: Rng,
    free: Vec<usize>,
}

/// A ticket about to be sent.
#[derive(Debug, Clone)]
pub struct TicketSpec {
    pub seq: u64,
    pub lang: &'static str,
    pub skills: Value,
    pub priority: u8,
}

impl TicketMix {
    pub fn new(seed: u64, specs: &[AgentSpec]) -> Self {
        let mut free: Vec<usize> = specs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.role == Role::Free)
            .map(|(i, _)| i)
            .collect();
        if free.is_empty() {
            free = (0..specs.len()).collect();
        }
        Self {
            rng: Rng::new(seed ^ 0x7469_636B_6574),
            free,
        }
    }

    pub fn next(&mut self, seq: u64, specs: &[AgentSpec]) -> TicketSpec {
        let Some(agent) =
            (!self.free.is_empty()).then(|| &specs[self.free[self.rng.below(self.free.len())]])
        else {
            return TicketSpec {
                seq,
                lang: "en",
                skills: json!({}),
                priority: 5,
            };
        };
        let lang = agent.langs[self.rng.below(agent.langs.len())];
        let skills = if self.rng.f64() < 0.5 {
            json!({})
        } else {
            let (name, level) = agent.skills[self.rng.below(agent.skills.len())];
            let low = (1 + self.rng.below(2) as u8).min(level);
            json!({ name: low })
        };
        TicketSpec {
            seq,
            lang,
            skills,
            priority: self.rng.below(10) as u8,
        }
    }
}

/// The fixed-length summary that carries the run, the sequence number and the send time.
pub fn summary(run: u32, seq: u64, sent_us: u64) -> String {
    const FILLER: &str =
        "Customer reports a double charge on the last order and asks for a refund \
                          to the original card; escalated by the assistant. ";
    let mut s = format!("lg {run:08x} {seq:010} {sent_us:015} ");
    while s.len() < SUMMARY_LEN {
        let need = SUMMARY_LEN - s.len();
        s.push_str(&FILLER[..need.min(FILLER.len())]);
    }
    s.truncate(SUMMARY_LEN);
    s
}

/// `(seq, sent_us)` of a summary of run `run`; `None` for anything else.
pub fn parse_summary(run: u32, summary: &str) -> Option<(u64, u64)> {
    let mut parts = summary.split(' ');
    if parts.next()? != "lg" || u32::from_str_radix(parts.next()?, 16).ok()? != run {
        return None;
    }
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

/// The ticket body, the same for both targets (`POST /v1/tickets` body; the NATS payload).
pub fn ticket_body(t: &TicketSpec, run: u32, sent_us: u64) -> Value {
    let mut body = e2e::ticket(t.lang, t.skills.clone(), t.priority);
    body["summary"] = json!(summary(run, t.seq, sent_us));
    body
}

// ---------------------------------------------------------------------------------------------
// The record

/// What happened to one ticket, as the generator saw it.
#[derive(Debug, Clone, Default)]
pub struct Rec {
    pub ticket_id: Option<String>,
    pub sent_us: u64,
    pub posted: bool,
    pub offers: u32,
    pub assigned_to: Vec<u32>,
    pub declines: u32,
    pub ignores: u32,
    pub completed: bool,
    /// The last offer was ignored and has not been followed by another.
    pub ignored_pending: bool,
}

/// Every count and latency of a run.
pub struct Collector {
    pub recs: HashMap<u64, Rec>,
    pub offer_hist: Histogram<u64>,
    pub assigned_hist: Histogram<u64>,
    /// Dispatch: `POST /v1/tickets` → its 201.
    pub post_hist: Histogram<u64>,
    pub posted: u64,
    pub post_errors: u64,
    pub offer_frames: u64,
    pub tickets_offered: u64,
    pub assigned: u64,
    pub completed: u64,
    pub declined: u64,
    pub ignored: u64,
    pub revoked_expired: u64,
    pub revoked_cancelled: u64,
    pub busy_offers: u64,
    pub foreign_frames: u64,
    pub request_timeouts: u64,
    pub errors: BTreeMap<String, u64>,
    pub first_sent_us: Option<u64>,
    pub last_assigned_us: u64,
    pub problems: Vec<String>,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

impl Default for Collector {
    fn default() -> Self {
        Self {
            recs: HashMap::new(),
            offer_hist: hist(),
            assigned_hist: hist(),
            post_hist: hist(),
            posted: 0,
            post_errors: 0,
            offer_frames: 0,
            tickets_offered: 0,
            assigned: 0,
            completed: 0,
            declined: 0,
            ignored: 0,
            revoked_expired: 0,
            revoked_cancelled: 0,
            busy_offers: 0,
            foreign_frames: 0,
            request_timeouts: 0,
            errors: BTreeMap::new(),
            first_sent_us: None,
            last_assigned_us: 0,
            problems: Vec::new(),
        }
    }
}

impl Collector {
    /// A problem worth reporting (the first 50 are kept).
    pub fn problem(&mut self, p: String) {
        if self.problems.len() < 50 {
            self.problems.push(p);
        } else if self.problems.len() == 50 {
            self.problems.push("… more problems left out".into());
        }
    }

    pub fn sending(&mut self, seq: u64, sent_us: u64) {
        self.first_sent_us.get_or_insert(sent_us);
        self.recs.entry(seq).or_default().sent_us = sent_us;
    }

    pub fn posted(&mut self, seq: u64, ticket_id: Option<String>) {
        self.posted += 1;
        let r = self.recs.entry(seq).or_default();
        r.posted = true;
        r.ticket_id = ticket_id;
    }

    pub fn post_failed(&mut self, seq: u64, why: String) {
        self.post_errors += 1;
        self.recs.remove(&seq);
        self.problem(format!("ticket #{seq} not posted: {why}"));
    }

    pub fn offer(&mut self, seq: u64, sent_us: u64, at_us: u64) {
        self.offer_frames += 1;
        let r = self.recs.entry(seq).or_default();
        r.offers += 1;
        r.ignored_pending = false;
        if r.offers == 1 {
            self.tickets_offered += 1;
            let _ = self.offer_hist.record(at_us.saturating_sub(sent_us).max(1));
        }
    }

    pub fn assigned(&mut self, seq: u64, agent: u32, sent_us: u64, at_us: u64) {
        let r = self.recs.entry(seq).or_default();
        if !r.assigned_to.contains(&agent) {
            r.assigned_to.push(agent);
        }
        if r.assigned_to.len() == 1 {
            self.assigned += 1;
            self.last_assigned_us = self.last_assigned_us.max(at_us);
            let _ = self
                .assigned_hist
                .record(at_us.saturating_sub(sent_us).max(1));
        }
    }

    /// An assignment seen by the sender (NATS: the accept reply), timed from the send time.
    pub fn assigned_reply(&mut self, seq: u64, agent: u32, at_us: u64) {
        let sent = self.recs.get(&seq).map_or(at_us, |r| r.sent_us);
        self.assigned(seq, agent, sent, at_us);
    }

    pub fn declined(&mut self, seq: u64) {
        self.declined += 1;
        self.recs.entry(seq).or_default().declines += 1;
    }

    pub fn ignored(&mut self, seq: u64) {
        self.ignored += 1;
        let r = self.recs.entry(seq).or_default();
        r.ignores += 1;
        r.ignored_pending = true;
    }

    pub fn completed(&mut self, seq: u64) {
        self.completed += 1;
        self.recs.entry(seq).or_default().completed = true;
    }

    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_owned()).or_default() += 1;
    }

    /// Posted tickets not yet assigned.
    pub fn unassigned(&self) -> usize {
        self.recs
            .values()
            .filter(|r| r.posted && r.assigned_to.is_empty())
            .count()
    }
}

/// The shared state of a run.
pub struct Ctx {
    pub args: Args,
    pub run: u32,
    pub specs: Vec<AgentSpec>,
    col: Mutex<Collector>,
    pub ready: AtomicUsize,
    pub failed: AtomicUsize,
    pub dropped: AtomicUsize,
}

impl Ctx {
    pub fn new(args: Args, run: u32, specs: Vec<AgentSpec>) -> Self {
        Self {
            args,
            run,
            specs,
            col: Mutex::new(Collector::default()),
            ready: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }

    /// The record (never held across an await).
    pub fn col(&self) -> MutexGuard<'_, Collector> {
        self.col.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn mark_ready(&self) {
        self.ready.fetch_add(1, Ordering::Relaxed);
    }

    pub fn mark_failed(&self, why: &str) {
        let n = self.failed.fetch_add(1, Ordering::Relaxed);
        if n < 5 {
            eprintln!("agent setup failed: {why}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// WebSockets

/// A client WebSocket over a plain TCP stream.
pub type Ws = WebSocketStream<TcpStream>;

/// Small buffers: a generator may hold 100,000 connections.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Opens a WebSocket to `url` (at `addr`) from `source`:0, with `headers`.
pub async fn ws_connect(
    url: &str,
    addr: SocketAddr,
    source: Ipv4Addr,
    headers: &[(&'static str, String)],
) -> anyhow::Result<Ws> {
    let socket = if addr.is_ipv4() {
        let s = TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(source.into(), 0))?;
        s
    } else {
        TcpSocket::new_v6()?
    };
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut req = url.into_client_request()?;
    for (name, value) in headers {
        req.headers_mut().insert(*name, value.parse()?);
    }
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(req, stream, Some(ws_config())).await?;
    Ok(ws)
}

/// Opens agent `id`'s WebSocket within 30 s; on failure counts the agent as failed, says
/// why, and gives `None`.
pub async fn connect_agent(
    ctx: &Ctx,
    id: &str,
    url: &str,
    addr: SocketAddr,
    source: Ipv4Addr,
    headers: &[(&'static str, String)],
) -> Option<Ws> {
    let connecting = ws_connect(url, addr, source, headers);
    match tokio::time::timeout(std::time::Duration::from_secs(30), connecting).await {
        Ok(Ok(ws)) => Some(ws),
        Ok(Err(e)) => {
            ctx.mark_failed(&format!("{id} via {source}: {e}"));
            None
        }
        Err(_) => {
            ctx.mark_failed(&format!("{id} via {source}: connect timed out"));
            None
        }
    }
}

/// The agent WebSocket URL of a gateway given as `ws://host:port` or `http://host:port`
/// (a URL with a path of its own is used as it is).
pub fn gateway_ws_url(base: &str) -> String {
    let base = base
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let after_scheme = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
    match after_scheme.find('/') {
        Some(i) if after_scheme.len() > i + 1 => base.clone(),
        _ => format!("{}/v1/agent/ws", base.trim_end_matches('/')),
    }
}

// ---------------------------------------------------------------------------------------------
// Results

/// Latency quantiles in milliseconds.
pub fn quantiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"p50": 0.0, "p90": 0.0, "p99": 0.0, "p999": 0.0, "max": 0.0});
    }
    let ms = |us: u64| us as f64 / 1000.0;
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_round_trip_at_fixed_length() {
        let s = summary(0xabc, 42, 123_456_789);
        assert_eq!(s.len(), SUMMARY_LEN);
        assert_eq!(parse_summary(0xabc, &s), Some((42, 123_456_789)));
        assert_eq!(parse_summary(0xabd, &s), None);
        assert_eq!(summary(1, u64::MAX / 2, u64::MAX / 2).len(), SUMMARY_LEN);
    }

    #[test]
    fn fleet_is_deterministic_and_mixed() {
        let args = Args {
            agents: 300,
            free_share: 0.1,
            ..Args::default()
        };
        let a = fleet(&args);
        let b = fleet(&args);
        assert_eq!(a.len(), 300);
        assert_eq!(
            a.iter().map(|s| s.langs.clone()).collect::<Vec<_>>(),
            b.iter().map(|s| s.langs.clone()).collect::<Vec<_>>()
        );
        assert_eq!(a.iter().filter(|s| s.role == Role::Free).count(), 30);
        for s in &a {
            assert!((1..=3).contains(&s.max));
            assert_eq!(s.skills.len(), 2);
            assert_ne!(s.skills[0].0, s.skills[1].0);
            assert!(!s.langs.is_empty() && s.langs.len() <= 2);
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            gateway_ws_url("ws://127.0.0.1:8081"),
            "ws://127.0.0.1:8081/v1/agent/ws"
        );
        assert_eq!(
            gateway_ws_url("http://127.0.0.1:8081/"),
            "ws://127.0.0.1:8081/v1/agent/ws"
        );
        assert_eq!(gateway_ws_url("ws://h:1/custom"), "ws://h:1/custom");
    }
}
