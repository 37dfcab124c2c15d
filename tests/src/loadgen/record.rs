//! The record of a run: what happened to every ticket as the generator saw it, the counters and
//! latency histograms, and the notes agents make of what they see. In a worker process
//! ([`crate::shard`]) the notes go to the coordinating process as lines instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cli::Args;
use crate::common::AgentSpec;

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

/// Something an agent saw or did, for the record. Agents make notes; [`Ctx::note`] applies
/// them to the collector, or (in a worker process) sends them to the coordinating process, which
/// applies them to its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "n", rename_all = "snake_case")]
pub enum Note {
    /// An agent is set up.
    Ready,
    /// An agent could not be set up.
    Failed { why: String },
    /// A connection closed under an agent.
    Dropped,
    /// An offer of ticket `seq` (sent at `sent`) reached an agent at `at` (µs).
    Offer { seq: u64, sent: u64, at: u64 },
    /// Agent `agent` got ticket `seq`'s `assigned` at `at`.
    Assigned {
        seq: u64,
        agent: u32,
        sent: u64,
        at: u64,
    },
    /// An agent declined ticket `seq`.
    Declined { seq: u64 },
    /// An agent ignored an offer of ticket `seq`.
    Ignored { seq: u64 },
    /// An agent completed ticket `seq`.
    Completed { seq: u64 },
    /// An offer was revoked: lapsed (`expired`) or cancelled.
    Revoked { expired: bool },
    /// An offer reached an agent already at capacity (NATS, which cannot know).
    BusyOffer,
    /// A frame of no ticket of this run.
    ForeignFrame,
    /// An `error` frame or a protocol error, by code.
    Error { code: String },
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
    /// In a worker process: where its notes go (lines for the coordinating process).
    remote: Option<mpsc::UnboundedSender<Note>>,
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
            remote: None,
        }
    }

    /// The state of a worker process, whose notes go to `remote`.
    pub fn worker(
        args: Args,
        run: u32,
        specs: Vec<AgentSpec>,
        remote: mpsc::UnboundedSender<Note>,
    ) -> Self {
        Self {
            remote: Some(remote),
            ..Self::new(args, run, specs)
        }
    }

    /// The record (never held across an await).
    pub fn col(&self) -> MutexGuard<'_, Collector> {
        self.col.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what an agent saw or did (see [`Note`]).
    pub fn note(&self, note: Note) {
        match &self.remote {
            Some(remote) => {
                let _ = remote.send(note);
            }
            None => self.apply(note),
        }
    }

    /// Applies a note to this process's record.
    pub fn apply(&self, note: Note) {
        match note {
            Note::Ready => {
                self.ready.fetch_add(1, Ordering::Relaxed);
            }
            Note::Failed { why } => {
                let n = self.failed.fetch_add(1, Ordering::Relaxed);
                if n < 5 {
                    eprintln!("agent setup failed: {why}");
                }
            }
            Note::Dropped => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Note::Offer { seq, sent, at } => self.col().offer(seq, sent, at),
            Note::Assigned {
                seq,
                agent,
                sent,
                at,
            } => self.col().assigned(seq, agent, sent, at),
            Note::Declined { seq } => self.col().declined(seq),
            Note::Ignored { seq } => self.col().ignored(seq),
            Note::Completed { seq } => self.col().completed(seq),
            Note::Revoked { expired: true } => self.col().revoked_expired += 1,
            Note::Revoked { expired: false } => self.col().revoked_cancelled += 1,
            Note::BusyOffer => self.col().busy_offers += 1,
            Note::ForeignFrame => self.col().foreign_frames += 1,
            Note::Error { code } => self.col().error(&code),
        }
    }

    /// Counts an agent that could not be set up, saying why.
    pub fn mark_failed(&self, why: &str) {
        self.note(Note::Failed {
            why: why.to_owned(),
        });
    }
}

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
