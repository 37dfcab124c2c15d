//! The fleet: agents as a real app behaves (reconnect with backoff and jitter to the other
//! gateway when one fails, go available once, accept every offer, complete each ticket after a
//! few seconds, pick up what a `welcome` restores), and the open-loop ticket load, both keeping
//! the record the checks are made from.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// What the fleet and the load saw.
#[derive(Default)]
pub struct Record {
    /// Each ticket answered 201 (or 200 for a retry): when it was posted.
    pub posted: HashMap<String, Instant>,
    /// POSTs given up (a status other than 2xx or 503, or 503 for two minutes).
    pub refused: Vec<String>,
    /// The agents each ticket was assigned to.
    pub assigned: HashMap<String, BTreeSet<usize>>,
    /// When each ticket was first offered.
    pub offered: HashMap<String, Instant>,
    /// When each agent was offered something, in order.
    pub offers: Vec<Vec<Instant>>,
    /// When each agent's connection was lost.
    pub dropped: Vec<Vec<Instant>>,
    /// `complete` frames sent.
    pub completes: u64,
    /// `error` frames received: when, by whom, with which code.
    pub errors: Vec<(Instant, usize, String)>,
    /// `welcome` frames received: when, by whom.
    pub welcomes: Vec<(Instant, usize)>,
}

/// The agents and the load, shared by their tasks.
pub struct Fleet {
    pub record: Mutex<Record>,
    gateways: Vec<String>,
    dispatchers: Vec<String>,
    /// Agents told to stop reading their socket, as a frozen phone does.
    muted: Vec<AtomicBool>,
    stopping: AtomicBool,
    load_stopped: AtomicBool,
    /// POSTs in flight (retrying included).
    in_flight: AtomicUsize,
    /// The load's rate, rounded up.
    rate_per_sec: AtomicUsize,
    /// How many agents are connected now.
    pub connected: AtomicUsize,
    http: reqwest::Client,
}

/// Uniform in `[0, 1)`, for jitter.
fn unit() -> f64 {
    (uuid::Uuid::new_v4().as_u128() >> 75) as f64 / (1u64 << 53) as f64
}

/// Agent `i`'s id.
pub fn agent_id(i: usize) -> String {
    format!("c-{i:04}")
}

impl Fleet {
    pub fn new(agents: usize, gateways: Vec<String>, dispatchers: Vec<String>) -> Arc<Self> {
        let record = Record {
            offers: vec![Vec::new(); agents],
            dropped: vec![Vec::new(); agents],
            ..Record::default()
        };
        Arc::new(Self {
            record: Mutex::new(record),
            gateways,
            dispatchers,
            muted: (0..agents).map(|_| AtomicBool::new(false)).collect(),
            stopping: AtomicBool::new(false),
            load_stopped: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            rate_per_sec: AtomicUsize::new(1),
            connected: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        })
    }

    fn rec(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Agent `i` stops reading (or reads again).
    pub fn mute(&self, i: usize, muted: bool) {
        self.muted[i].store(muted, Ordering::Relaxed);
    }

    /// Tells the agents to go offline.
    pub fn stop(&self) {
        self.stop_load();
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Stops posting new tickets.
    pub fn stop_load(&self) {
        self.load_stopped.store(true, Ordering::Relaxed);
    }

    /// Whether POSTs are retrying: more in flight than a second's worth at the steady rate.
    pub fn backlogged(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > self.rate_per_sec.load(Ordering::Relaxed)
    }

    /// Whether a POST is still in flight.
    pub fn posting(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Runs agent `i` until [`Fleet::stop`]: then it goes offline and closes.
    pub async fn agent(self: Arc<Self>, i: usize) {
        let id = agent_id(i);
        let mut attempt = 0usize;
        let mut backoff = Duration::from_millis(200);
        while !self.stopping() {
            let gateway = &self.gateways[(i + attempt) % self.gateways.len()];
            attempt += 1;
            let (url, headers) = (
                e2e::ws_url(gateway),
                [(
                    "authorization",
                    format!("Bearer {}", e2e::token("agent", &id)),
                )],
            );
            let connecting = e2e::try_handshake(&url, &headers);
            let Ok(Ok(ws)) = tokio::time::timeout(Duration::from_secs(5), connecting).await else {
                let jitter = unit() * backoff.as_secs_f64();
                tokio::time::sleep(backoff + Duration::from_secs_f64(jitter)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            };
            backoff = Duration::from_millis(200);
            self.connected.fetch_add(1, Ordering::Relaxed);
            let graceful = self.serve(i, ws).await;
            self.connected.fetch_sub(1, Ordering::Relaxed);
            if graceful {
                return;
            }
            self.rec().dropped[i].push(Instant::now());
        }
    }

    /// One connection: true once the agent went offline at the end, false if it was lost.
    async fn serve(&self, i: usize, ws: e2e::Ws) -> bool {
        let (mut tx, mut rx) = ws.split();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<String>();
        let mut holding: HashSet<String> = HashSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut going_offline = false;
        loop {
            if self.muted[i].load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if self.stopping() && !going_offline {
                going_offline = true;
                let frame = json!({"type": "set_status", "status": "offline"});
                if tx
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
            let mut out: Vec<Value> = Vec::new();
            tokio::select! {
                msg = rx.next() => {
                    let Some(Ok(msg)) = msg else { return false };
                    let Message::Text(text) = msg else { continue };
                    let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                    match frame["type"].as_str().unwrap_or_default() {
                        "welcome" => {
                            self.rec().welcomes.push((Instant::now(), i));
                            if frame["status"] == "offline" && !self.stopping() {
                                out.push(json!({"type": "set_status", "status": "available"}));
                            }
                            if let Some(active) = frame["active_tickets"].as_array() {
                                for t in active {
                                    self.assigned(i, t, &mut holding, &done_tx);
                                }
                            }
                            let pending = &frame["pending_offer"];
                            if pending.is_object() {
                                out.push(self.offered(i, pending));
                            }
                        }
                        "offer" => out.push(self.offered(i, &frame)),
                        "assigned" => self.assigned(i, &frame, &mut holding, &done_tx),
                        "status" if going_offline && frame["status"] == "offline" => {
                            let _ = tx.send(Message::Close(None)).await;
                            return true;
                        }
                        "error" => {
                            let code = frame["code"].as_str().unwrap_or_default().to_owned();
                            self.rec().errors.push((Instant::now(), i, code));
                        }
                        "status" if frame["status"] == "away" && !self.stopping() => {
                            out.push(json!({"type": "set_status", "status": "available"}));
                        }
                        _ => {}
                    }
                }
                Some(ticket) = done_rx.recv() => {
                    holding.remove(&ticket);
                    self.rec().completes += 1;
                    out.push(json!({"type": "complete", "ticket_id": ticket, "outcome": "resolved"}));
                }
                _ = tick.tick() => {}
            }
            for frame in out {
                if tx
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    return false;
                }
            }
        }
    }

    /// Records an offer and answers it with `accept`.
    fn offered(&self, i: usize, offer: &Value) -> Value {
        let now = Instant::now();
        let mut rec = self.rec();
        rec.offers[i].push(now);
        if let Some(t) = offer["ticket_id"].as_str() {
            rec.offered.entry(t.to_owned()).or_insert(now);
        }
        json!({"type": "accept", "offer_id": offer["offer_id"]})
    }

    /// Records an assignment and completes the ticket 1–3 s later (once per connection).
    fn assigned(
        &self,
        i: usize,
        frame: &Value,
        holding: &mut HashSet<String>,
        done: &mpsc::UnboundedSender<String>,
    ) {
        let Some(ticket) = frame["ticket_id"].as_str() else {
            return;
        };
        self.rec()
            .assigned
            .entry(ticket.to_owned())
            .or_default()
            .insert(i);
        if holding.insert(ticket.to_owned()) {
            let hold = Duration::from_secs_f64(1.0 + 2.0 * unit());
            let (done, ticket) = (done.clone(), ticket.to_owned());
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let _ = done.send(ticket);
            });
        }
    }

    /// Posts `rate` tickets a second until [`Fleet::stop_load`], each retried (same
    /// `Idempotency-Key`, the other dispatcher first) while it is refused as unavailable.
    pub async fn load(self: Arc<Self>, rate: f64) {
        self.rate_per_sec
            .store(rate.ceil() as usize, Ordering::Relaxed);
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut n = 0usize;
        while !self.load_stopped.load(Ordering::Relaxed) {
            every.tick().await;
            n += 1;
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let me = self.clone();
            tokio::spawn(async move {
                me.clone().post(n).await;
                me.in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    async fn post(self: Arc<Self>, n: usize) {
        let key = uuid::Uuid::new_v4().to_string();
        let body = e2e::ticket("en", json!({}), 5);
        let started = Instant::now();
        let token = e2e::token("escalation", "chaos");
        for attempt in 0.. {
            let base = &self.dispatchers[(n + attempt) % self.dispatchers.len()];
            let answer = self
                .http
                .post(format!("{base}/v1/tickets"))
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .send()
                .await;
            let retry = match answer {
                Ok(a) if a.status().is_success() => {
                    let body: Value = a.json().await.unwrap_or_default();
                    if let Some(id) = body["ticket_id"].as_str() {
                        self.rec().posted.insert(id.to_owned(), started);
                        return;
                    }
                    false
                }
                Ok(a) => a.status() == 503,
                Err(_) => true,
            };
            if !retry || started.elapsed() > Duration::from_secs(120) {
                self.rec().refused.push(key);
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
