//! A model-based property test of the dispatch state machine (`shared/src/dispatch.lua`).
//!
//! proptest generates random sequences of operations over a small world (three agents with
//! generated languages, skills, region and capacity; up to six tickets). Each operation is applied
//! both to the real store (a fresh namespace of the real Redis per case, through the typed
//! [`Store`] calls and the real [`Matcher`]) and to a plain reference model written from API.md §5
//! and §6. After every step the observable state is compared (each ticket's status, agent and
//! offer count; each agent's status, connection, active tickets and pending offer; each offer's
//! fate) and the contract's invariants are checked on what the store holds:
//!
//! - a ticket is offered to at most one agent, and an offered ticket has exactly one pending offer;
//! - an agent has at most one pending offer;
//! - an agent holds no more tickets than `max_concurrent` (unless an operator lowered it since);
//! - every ticket is queued, offered, assigned, completed or cancelled, and a queued one is in its
//!   language's queue (so no ticket is lost);
//! - an assigned ticket is in exactly its agent's active set, and an agent holds only tickets
//!   assigned to it.
//!
//! The model predicts exactly which agent the matcher picks for a ticket (preferred, fewest
//! active, longest idle, higher summed level, id) and which ticket a freed agent is offered
//! (highest priority, oldest); it does not read those choices back.
//!
//! Time is made deterministic: offers meant to lapse are made with a 1 ms timeout and the test
//! then sleeps past it; operations that stamp an agent's idle time are followed by a short sleep,
//! so Redis's millisecond clock orders them as the model's logical clock does.
//!
//! Where API.md is silent the model follows what the store documents: `offline` sends the held
//! tickets back to the queue; `break` keeps a pending offer (it can still be accepted); idle time
//! restarts at an assignment or at going available out of `offline` (not out of `break`); a
//! ticket cancelled while assigned keeps its `agent_id`; `break` out of `offline` is refused.
//! Agent-initiated operations (`set_status`, `accept`, `decline`, `complete`) are only sent while
//! the agent is connected, as only its WebSocket sends them.
//!
//! `PROPTEST_CASES` sets the number of cases (default 128); `MODEL_TRACE=1` prints every case's
//! steps. Failures are not persisted to a regressions file: the shrunk sequence is in the message.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use dispatcher::matcher::Matcher;
use e2e::REDIS_URL;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use shared::domain::{
    AgentId, AgentProfile, AgentStatus, NewTicket, OfferId, Outcome, RequestedStatus, TicketId,
    TicketStatus,
};
use shared::error::ErrorCode;
use shared::store::{NewTicketFields, ProfileFields, Store, StoreError};

/// The agents' ids, in ascending order (the policy's last tie-break).
const IDS: [&str; 3] = ["a0", "a1", "a2"];
const MAX_TICKETS: usize = 6;
const MISSED_BEFORE_AWAY: u32 = 2;
const LONG_OFFER: Duration = Duration::from_secs(60);
const SHORT_OFFER: Duration = Duration::from_millis(1);
const LONG_GRACE: Duration = Duration::from_secs(60);
const SHORT_GRACE: Duration = Duration::from_millis(1);
/// Sleep after making something with a 1 ms deadline, so that the deadline has surely passed.
const PAST_DEADLINE: Duration = Duration::from_millis(3);
/// Sleep after stamping an agent's idle time, so that the next stamp is a later millisecond.
const NEXT_MILLISECOND: Duration = Duration::from_millis(2);

// ---------------------------------------------------------------------------------------------
// The world and the operations.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Sv,
    En,
}

impl Lang {
    fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Profile {
    langs: Vec<Lang>,
    /// Skill levels, 0 meaning the agent lacks the skill.
    refunds: u8,
    disputes: u8,
    /// Inside the `north` geofence.
    north: bool,
    max: u8,
}

/// A skills object with `refunds` and `disputes` at these levels, leaving out those at 0.
fn skills(refunds: u8, disputes: u8) -> Value {
    let mut skills = serde_json::Map::new();
    if refunds > 0 {
        skills.insert("refunds".into(), json!(refunds));
    }
    if disputes > 0 {
        skills.insert("disputes".into(), json!(disputes));
    }
    Value::Object(skills)
}

impl Profile {
    fn fields(&self) -> ProfileFields {
        let langs: Vec<&str> = self.langs.iter().map(|l| l.code()).collect();
        let p: AgentProfile = serde_json::from_value(e2e::profile(
            &langs,
            skills(self.refunds, self.disputes),
            self.max,
        ))
        .expect("a valid profile");
        let regions = if self.north {
            vec!["north".to_owned()]
        } else {
            Vec::new()
        };
        ProfileFields::new(&p, &regions)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TicketSpec {
    lang: Lang,
    /// Minimum levels, 0 meaning not required.
    refunds: u8,
    disputes: u8,
    priority: u8,
    preferred: Option<usize>,
    /// Must be handled from inside the `north` geofence.
    north: bool,
}

impl TicketSpec {
    fn fields(&self) -> NewTicketFields {
        let mut body = e2e::ticket(
            self.lang.code(),
            skills(self.refunds, self.disputes),
            self.priority,
        );
        if let Some(p) = self.preferred {
            body["preferred_agent_id"] = json!(IDS[p]);
        }
        if self.north {
            body["region"] = json!("north");
        }
        let t: NewTicket = serde_json::from_value(body).expect("a valid ticket");
        NewTicketFields::new(&t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Available,
    Break,
    Offline,
}

impl Want {
    fn requested(self) -> RequestedStatus {
        match self {
            Want::Available => RequestedStatus::Available,
            Want::Break => RequestedStatus::Break,
            Want::Offline => RequestedStatus::Offline,
        }
    }

    fn status(self) -> AgentStatus {
        AgentStatus::from(self.requested())
    }
}

/// One operation. Agent numbers are 0..3; ticket numbers are taken modulo the tickets created so
/// far, offer numbers modulo the offers made so far.
#[derive(Debug, Clone)]
enum Op {
    /// An operator creates or replaces the agent's profile.
    PutAgent(usize, Profile),
    /// An operator removes the agent from the roster.
    RemoveAgent(usize),
    /// The agent's app opens a (new) WebSocket, through gateway instance 0 or 1.
    Connect { agent: usize, gateway: usize },
    /// Gateway instance 0 or 1 stopped heartbeating: its connections count as dropped (60 s
    /// grace).
    ReapGateway(usize),
    /// The agent's live connection closes (`stale`: an older, replaced one closes instead), with a
    /// 60 s or a 1 ms grace period.
    Disconnect {
        agent: usize,
        stale: bool,
        short_grace: bool,
    },
    /// `set_status` (only while connected, as only the WebSocket sends it).
    SetStatus(usize, Want),
    /// `POST /v1/tickets`.
    CreateTicket(TicketSpec),
    /// The matcher routes a ticket (offer timeout 60 s, or 1 ms if `short`).
    RouteTicket { ticket: usize, short: bool },
    /// The matcher serves a free agent (offer timeout 60 s, or 1 ms if `short`): with the
    /// tickets waiting now, or (`since`) only those that were waiting when ticket `since` was
    /// (last) queued.
    OfferAgent {
        agent: usize,
        short: bool,
        since: Option<usize>,
    },
    /// `accept` of the agent's own pending offer (`None`), or of any offer made so far.
    Accept { agent: usize, offer: Option<usize> },
    /// `decline`, likewise.
    Decline { agent: usize, offer: Option<usize> },
    /// `complete` of a ticket, by its holder (`holder`) or by `agent`.
    Complete {
        agent: usize,
        ticket: usize,
        holder: bool,
    },
    /// `DELETE /v1/tickets/{id}`.
    Cancel(usize),
    /// The timers run: lapsed offers expire, ended grace periods end their shifts.
    ExpireNow,
}

fn lang() -> impl Strategy<Value = Lang> {
    prop_oneof![Just(Lang::Sv), Just(Lang::En)]
}

fn profile() -> impl Strategy<Value = Profile> {
    (
        prop_oneof![
            Just(vec![Lang::Sv]),
            Just(vec![Lang::En]),
            Just(vec![Lang::Sv, Lang::En])
        ],
        prop_oneof![1 => Just(0u8), 3 => 1u8..=3],
        prop_oneof![1 => Just(0u8), 2 => 1u8..=3],
        prop::bool::weighted(0.3),
        1u8..=2,
    )
        .prop_map(|(langs, refunds, disputes, north, max)| Profile {
            langs,
            refunds,
            disputes,
            north,
            max,
        })
}

fn ticket_spec() -> impl Strategy<Value = TicketSpec> {
    (
        lang(),
        prop_oneof![3 => Just(0u8), 1 => 1u8..=2],
        prop_oneof![4 => Just(0u8), 1 => 1u8..=2],
        prop::sample::select(vec![0u8, 5, 9]),
        prop::option::weighted(0.2, 0usize..3),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(lang, refunds, disputes, priority, preferred, north)| TicketSpec {
                lang,
                refunds,
                disputes,
                priority,
                preferred,
                north,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let agent = || 0usize..3;
    let want = prop_oneof![
        6 => Just(Want::Available),
        1 => Just(Want::Break),
        1 => Just(Want::Offline)
    ];
    prop_oneof![
        1 => (agent(), profile()).prop_map(|(a, p)| Op::PutAgent(a, p)),
        1 => agent().prop_map(Op::RemoveAgent),
        2 => (agent(), 0usize..2).prop_map(|(agent, gateway)| Op::Connect { agent, gateway }),
        1 => (0usize..2).prop_map(Op::ReapGateway),
        1 => (agent(), prop::bool::weighted(0.25), any::<bool>()).prop_map(
            |(agent, stale, short_grace)| Op::Disconnect { agent, stale, short_grace }
        ),
        3 => (agent(), want).prop_map(|(a, w)| Op::SetStatus(a, w)),
        5 => ticket_spec().prop_map(Op::CreateTicket),
        6 => (0usize..MAX_TICKETS, prop::bool::weighted(0.25))
            .prop_map(|(ticket, short)| Op::RouteTicket { ticket, short }),
        3 => (agent(), prop::bool::weighted(0.25), prop::option::weighted(0.3, 0usize..MAX_TICKETS))
            .prop_map(|(agent, short, since)| Op::OfferAgent { agent, short, since }),
        5 => (agent(), prop::option::weighted(0.2, 0usize..8))
            .prop_map(|(agent, offer)| Op::Accept { agent, offer }),
        2 => (agent(), prop::option::weighted(0.2, 0usize..8))
            .prop_map(|(agent, offer)| Op::Decline { agent, offer }),
        4 => (agent(), 0usize..MAX_TICKETS, prop::bool::weighted(0.8))
            .prop_map(|(agent, ticket, holder)| Op::Complete { agent, ticket, holder }),
        1 => (0usize..MAX_TICKETS).prop_map(Op::Cancel),
        2 => Just(Op::ExpireNow),
    ]
}

// ---------------------------------------------------------------------------------------------
// The reference model.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferState {
    Pending,
    Accepted,
    Declined,
    Expired,
    Withdrawn,
    Cancelled,
}

impl OfferState {
    fn as_str(self) -> &'static str {
        match self {
            OfferState::Pending => "pending",
            OfferState::Accepted => "accepted",
            OfferState::Declined => "declined",
            OfferState::Expired => "expired",
            OfferState::Withdrawn => "withdrawn",
            OfferState::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone)]
struct MOffer {
    id: String,
    ticket: usize,
    agent: usize,
    state: OfferState,
    /// Its deadline has passed (made with the 1 ms timeout).
    lapsed: bool,
}

#[derive(Debug, Clone)]
struct MAgent {
    /// On the roster.
    exists: bool,
    profile: Profile,
    /// The gateway instance of the (last) connection.
    gateway: usize,
    status: AgentStatus,
    connected: bool,
    conn: Option<String>,
    old_conns: Vec<String>,
    active: BTreeSet<usize>,
    offer: Option<usize>,
    missed: u32,
    /// Logical time of the last assignment, or of going available out of offline.
    idle: u64,
    /// Disconnected on shift: `Some(short)` while the grace period runs.
    grace: Option<bool>,
    /// An operator lowered `max_concurrent` below what the agent already held or was offered.
    excused: bool,
}

#[derive(Debug, Clone)]
struct MTicket {
    id: String,
    spec: TicketSpec,
    seq: u64,
    status: TicketStatus,
    agent: Option<usize>,
    offer: Option<usize>,
    /// Agents who declined it or let an offer of it expire.
    declined: BTreeSet<usize>,
    offers_made: u32,
    /// Logical time it was last queued.
    queued: u64,
}

#[derive(Debug, Clone, Default)]
struct Model {
    agents: Vec<MAgent>,
    tickets: Vec<MTicket>,
    offers: Vec<MOffer>,
    clock: u64,
    seq: u64,
}

/// What an operation should answer: success, or one of these error codes.
type Expect = Result<(), Vec<ErrorCode>>;

impl Model {
    fn new(profiles: &[Profile; 3]) -> Self {
        Self {
            agents: profiles
                .iter()
                .map(|p| MAgent {
                    exists: true,
                    profile: p.clone(),
                    gateway: 0,
                    status: AgentStatus::Offline,
                    connected: false,
                    conn: None,
                    old_conns: Vec::new(),
                    active: BTreeSet::new(),
                    offer: None,
                    missed: 0,
                    idle: 0,
                    grace: None,
                    excused: false,
                })
                .collect(),
            ..Self::default()
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The ids of the tickets agent `a` holds, sorted.
    fn held_ids(&self, a: usize) -> Vec<String> {
        let mut held: Vec<String> = self.agents[a]
            .active
            .iter()
            .map(|&t| self.tickets[t].id.clone())
            .collect();
        held.sort();
        held
    }

    fn is_free(&self, a: usize) -> bool {
        let ag = &self.agents[a];
        ag.status == AgentStatus::Available
            && ag.connected
            && ag.active.len() < usize::from(ag.profile.max)
            && ag.offer.is_none()
    }

    /// API.md §5, "eligible".
    fn eligible(&self, a: usize, t: usize) -> bool {
        let (p, spec) = (&self.agents[a].profile, &self.tickets[t].spec);
        self.is_free(a)
            && p.langs.contains(&spec.lang)
            && p.refunds >= spec.refunds
            && p.disputes >= spec.disputes
            && (!spec.north || p.north)
            && !self.tickets[t].declined.contains(&a)
    }

    fn summed_level(&self, a: usize, t: usize) -> u32 {
        let (p, spec) = (&self.agents[a].profile, &self.tickets[t].spec);
        let mut sum = 0;
        if spec.refunds > 0 {
            sum += u32::from(p.refunds);
        }
        if spec.disputes > 0 {
            sum += u32::from(p.disputes);
        }
        sum
    }

    fn eligible_agents(&self, t: usize) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|&a| self.eligible(a, t))
            .collect()
    }

    /// API.md §5: preferred, fewest active, longest idle, higher summed level, id ascending.
    fn best_agent(&self, t: usize) -> Option<usize> {
        if self.tickets[t].status != TicketStatus::Queued {
            return None;
        }
        self.eligible_agents(t).into_iter().min_by_key(|&a| {
            (
                self.tickets[t].spec.preferred != Some(a),
                self.agents[a].active.len(),
                self.agents[a].idle,
                Reverse(self.summed_level(a, t)),
                a,
            )
        })
    }

    /// API.md §5: the waiting ticket it is eligible for with the highest priority, oldest first
    /// (among those `waiting` says were waiting when the agent became free).
    fn best_ticket(&self, a: usize, waiting: impl Fn(usize) -> bool) -> Option<usize> {
        if !self.is_free(a) {
            return None;
        }
        (0..self.tickets.len())
            .filter(|&t| {
                self.tickets[t].status == TicketStatus::Queued && self.eligible(a, t) && waiting(t)
            })
            .min_by_key(|&t| (9 - self.tickets[t].spec.priority, self.tickets[t].seq))
    }

    fn requeue(&mut self, t: usize) {
        let now = self.tick();
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Queued;
        ticket.agent = None;
        ticket.offer = None;
        ticket.queued = now;
    }

    fn make_offer(&mut self, t: usize, a: usize, id: String, short: bool) {
        let o = self.offers.len();
        self.offers.push(MOffer {
            id,
            ticket: t,
            agent: a,
            state: OfferState::Pending,
            lapsed: short,
        });
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Offered;
        ticket.offer = Some(o);
        ticket.offers_made += 1;
        self.agents[a].offer = Some(o);
    }

    /// A pending offer ends: the agent is freed; unless the ticket was cancelled it waits again;
    /// a decline or an expiry bars the agent from the ticket.
    fn end_offer(&mut self, o: usize, why: OfferState) {
        self.offers[o].state = why;
        let (t, a) = (self.offers[o].ticket, self.offers[o].agent);
        if self.agents[a].offer == Some(o) {
            self.agents[a].offer = None;
        }
        let ticket = &mut self.tickets[t];
        if ticket.status == TicketStatus::Offered && ticket.offer == Some(o) {
            if matches!(why, OfferState::Declined | OfferState::Expired) {
                ticket.declined.insert(a);
            }
            if why != OfferState::Cancelled {
                self.requeue(t);
            }
        }
    }

    fn withdraw_offer(&mut self, a: usize) {
        if let Some(o) = self.agents[a].offer {
            if self.offers[o].state == OfferState::Pending {
                self.end_offer(o, OfferState::Withdrawn);
            }
            self.agents[a].offer = None;
        }
    }

    /// The shift ends: the pending offer is withdrawn and the held tickets wait again.
    fn end_shift(&mut self, a: usize) {
        self.withdraw_offer(a);
        let held: Vec<usize> = self.agents[a].active.iter().copied().collect();
        for t in held {
            let ticket = &self.tickets[t];
            if ticket.status == TicketStatus::Assigned && ticket.agent == Some(a) {
                self.requeue(t);
            }
        }
        let ag = &mut self.agents[a];
        ag.active.clear();
        ag.status = AgentStatus::Offline;
        ag.missed = 0;
        ag.grace = None;
    }

    /// API.md §3: the agent is removed; its shift ends, its offer and tickets go back to the queue.
    fn remove(&mut self, a: usize) -> Expect {
        if !self.agents[a].exists {
            return Err(vec![ErrorCode::AgentNotFound]);
        }
        self.end_shift(a);
        let ag = &mut self.agents[a];
        ag.exists = false;
        ag.connected = false;
        if let Some(old) = ag.conn.take() {
            ag.old_conns.push(old);
        }
        ag.idle = 0;
        ag.excused = false;
        Ok(())
    }

    /// The agent's live connection is gone (`disconnect` or a reaped gateway).
    fn drop_connection(&mut self, a: usize, short_grace: bool) {
        self.agents[a].connected = false;
        self.withdraw_offer(a);
        if self.agents[a].status != AgentStatus::Offline {
            self.agents[a].grace = Some(short_grace);
        }
    }

    /// Whether `accept`/`decline` of offer `o` by agent `a` is allowed (API.md §6).
    fn answerable(&self, a: usize, o: usize) -> Expect {
        let offer = &self.offers[o];
        let refused = vec![ErrorCode::OfferNotFound, ErrorCode::OfferExpired];
        if offer.agent != a || offer.state != OfferState::Pending || offer.lapsed {
            return Err(refused);
        }
        Ok(())
    }

    fn accept(&mut self, a: usize, o: usize) {
        let t = self.offers[o].ticket;
        self.offers[o].state = OfferState::Accepted;
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Assigned;
        ticket.agent = Some(a);
        ticket.offer = None;
        let now = self.tick();
        let ag = &mut self.agents[a];
        ag.active.insert(t);
        ag.offer = None;
        ag.idle = now;
        ag.missed = 0;
    }

    fn set_status(&mut self, a: usize, want: Want) -> Expect {
        let current = self.agents[a].status;
        if want.status() == current {
            return Ok(());
        }
        if want == Want::Offline {
            self.end_shift(a);
            return Ok(());
        }
        if current == AgentStatus::Offline {
            if want != Want::Available {
                return Err(vec![ErrorCode::InvalidStatusTransition]);
            }
            self.agents[a].idle = self.tick();
        }
        let ag = &mut self.agents[a];
        if want == Want::Available {
            ag.missed = 0;
        }
        ag.status = want.status();
        Ok(())
    }

    fn cancel(&mut self, t: usize) -> Expect {
        match self.tickets[t].status {
            TicketStatus::Completed => return Err(vec![ErrorCode::TicketCompleted]),
            TicketStatus::Cancelled => return Ok(()),
            TicketStatus::Queued => {}
            TicketStatus::Offered => {
                if let Some(o) = self.tickets[t].offer {
                    self.end_offer(o, OfferState::Cancelled);
                }
            }
            TicketStatus::Assigned => {
                if let Some(a) = self.tickets[t].agent {
                    self.agents[a].active.remove(&t);
                }
            }
        }
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Cancelled;
        ticket.offer = None;
        Ok(())
    }

    fn complete(&mut self, a: usize, t: usize) -> Expect {
        let ticket = &mut self.tickets[t];
        if ticket.status != TicketStatus::Assigned || ticket.agent != Some(a) {
            return Err(vec![ErrorCode::TicketNotFound]);
        }
        ticket.status = TicketStatus::Completed;
        self.agents[a].active.remove(&t);
        Ok(())
    }

    /// Lapsed pending offers expire; returns how many.
    fn expire_offers(&mut self) -> usize {
        let due: Vec<usize> = (0..self.offers.len())
            .filter(|&o| self.offers[o].state == OfferState::Pending && self.offers[o].lapsed)
            .collect();
        for &o in &due {
            self.end_offer(o, OfferState::Expired);
            let a = self.offers[o].agent;
            let ag = &mut self.agents[a];
            ag.missed += 1;
            if ag.missed >= MISSED_BEFORE_AWAY && ag.status == AgentStatus::Available {
                ag.status = AgentStatus::Away;
            }
        }
        due.len()
    }

    /// Ended grace periods end their shifts; returns how many.
    fn expire_grace(&mut self) -> usize {
        let due: Vec<usize> = (0..self.agents.len())
            .filter(|&a| self.agents[a].grace == Some(true))
            .collect();
        for &a in &due {
            if !self.agents[a].connected {
                self.end_shift(a);
            }
        }
        due.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a case against the real store.
// ---------------------------------------------------------------------------------------------

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

static LIBRARY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

fn aid(a: usize) -> AgentId {
    AgentId::try_from(IDS[a]).expect("agent id")
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Compares an answer of the store with what the model expects.
fn check_answer<T: std::fmt::Debug>(
    what: &str,
    got: &Result<T, StoreError>,
    want: &Expect,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Ok(_), Ok(())) => Ok(()),
        (Err(StoreError::Rejected(code)), Err(codes)) if codes.contains(code) => Ok(()),
        (got, want) => Err(fail(format!(
            "{what}: the store answered {got:?}, the model expects {want:?}"
        ))),
    }
}

fn done(r: &Expect) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(codes) => format!("rejected {codes:?}"),
    }
}

struct Case {
    store: Store,
    namespace: String,
    long: Matcher,
    short: Matcher,
    m: Model,
    conns: u32,
    trace: String,
}

impl Case {
    async fn new(profiles: &[Profile; 3], online: &[bool; 3]) -> Result<Self, TestCaseError> {
        let namespace = e2e::fresh_namespace();
        let store = Store::open(REDIS_URL, &namespace).expect("store");
        LIBRARY
            .get_or_init(|| async { store.load_library().await.expect("library loads") })
            .await;
        for (a, p) in profiles.iter().enumerate() {
            store
                .put_agent(&aid(a), &p.fields())
                .await
                .map_err(|e| fail(format!("put_agent {}: {e}", IDS[a])))?;
        }
        let mut case = Self {
            long: Matcher::new(store.clone(), LONG_OFFER),
            short: Matcher::new(store.clone(), SHORT_OFFER),
            store,
            namespace,
            m: Model::new(profiles),
            conns: 0,
            trace: String::new(),
        };
        // Agents that start the case online: connected and available, as set-up steps.
        for (a, on) in online.iter().enumerate() {
            if *on {
                case.step(&Op::Connect {
                    agent: a,
                    gateway: a % 2,
                })
                .await?;
                case.step(&Op::SetStatus(a, Want::Available)).await?;
            }
        }
        case.note("-- set-up done --");
        Ok(case)
    }

    fn note(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.trace, "  {}", line.as_ref());
    }

    fn ticket_id(&self, t: usize) -> TicketId {
        TicketId::try_from(self.m.tickets[t].id.as_str()).expect("ticket id")
    }

    /// The ticket an operation refers to, if any ticket exists.
    fn pick_ticket(&self, n: usize) -> Option<usize> {
        (!self.m.tickets.is_empty()).then(|| n % self.m.tickets.len())
    }

    /// The first ticket from `n` on (cyclically) that satisfies `want`, else ticket `n`.
    fn pick_ticket_where(&self, n: usize, want: impl Fn(&MTicket) -> bool) -> Option<usize> {
        let len = self.m.tickets.len();
        let start = self.pick_ticket(n)?;
        (0..len)
            .map(|k| (start + k) % len)
            .find(|&t| want(&self.m.tickets[t]))
            .or(Some(start))
    }

    /// The agent and offer an `accept`/`decline` refers to: with `pick`, any offer made so far
    /// (answered by `agent`); without, the pending offer of the first agent from `agent` on
    /// (cyclically) that has one, answered by that agent.
    fn pick_offer(&self, agent: usize, pick: Option<usize>) -> Option<(usize, usize)> {
        match pick {
            Some(n) => (!self.m.offers.is_empty()).then(|| (agent, n % self.m.offers.len())),
            None => (0..IDS.len())
                .map(|k| (agent + k) % IDS.len())
                .find_map(|a| self.m.agents[a].offer.map(|o| (a, o)))
                .or_else(|| {
                    (0..self.m.offers.len())
                        .rev()
                        .find(|&o| self.m.offers[o].agent == agent)
                        .map(|o| (agent, o))
                }),
        }
    }

    /// When each ticket was last queued (the store's sequence), 0 if never.
    async fn queued_seq(&self) -> Result<Vec<i64>, TestCaseError> {
        if self.m.tickets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for t in &self.m.tickets {
            pipe.hget(self.store.keys().ticket(&t.id), "queued_seq");
        }
        let mut conn = self.store.conn();
        let raw: Vec<Option<String>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(format!("HGET queued_seq: {e}")))?;
        Ok(raw
            .into_iter()
            .map(|v| v.and_then(|v| v.parse().ok()).unwrap_or(0))
            .collect())
    }

    /// The ticket's current offer id, as the store records it.
    async fn offer_of(&self, t: usize) -> Result<String, TestCaseError> {
        let mut conn = self.store.conn();
        let offer: Option<String> = redis::cmd("HGET")
            .arg(self.store.keys().ticket(&self.m.tickets[t].id))
            .arg("offer")
            .query_async(&mut conn)
            .await
            .map_err(|e| fail(format!("HGET offer: {e}")))?;
        Ok(offer.unwrap_or_default())
    }

    /// Records in the model the offer of ticket `t` to agent `a` that the store just made (with a
    /// 1 ms timeout if `short`, then waiting past it).
    async fn record_offer(&mut self, t: usize, a: usize, short: bool) -> Result<(), TestCaseError> {
        let offer = self.offer_of(t).await?;
        self.m.make_offer(t, a, offer, short);
        if short {
            tokio::time::sleep(PAST_DEADLINE).await;
        }
        Ok(())
    }

    async fn cleanup(&self) {
        e2e::delete_namespace_keys(&mut self.store.conn(), &self.namespace).await;
    }

    /// Applies one operation to both the store and the model.
    async fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::PutAgent(a, p) => {
                let got = self.store.put_agent(&aid(*a), &p.fields()).await;
                check_answer("put_agent", &got, &Ok(()))?;
                let ag = &mut self.m.agents[*a];
                if got.as_ref().ok() != Some(&!ag.exists) {
                    return Err(fail(format!(
                        "put_agent answered created = {got:?}, but the agent {} on the roster",
                        if ag.exists { "was" } else { "was not" }
                    )));
                }
                ag.exists = true;
                ag.profile = p.clone();
                ag.excused |=
                    ag.active.len() + usize::from(ag.offer.is_some()) > usize::from(p.max);
                self.note(format!("{op:?} -> ok"));
            }
            Op::RemoveAgent(a) => {
                let expect = self.m.remove(*a);
                let got = self.store.remove_agent(&aid(*a)).await;
                check_answer("remove_agent", &got, &expect)?;
                self.note(format!("{op:?} -> {}", done(&expect)));
            }
            Op::ReapGateway(gw) => {
                let dropped: Vec<usize> = (0..IDS.len())
                    .filter(|&a| self.m.agents[a].connected && self.m.agents[a].gateway == *gw)
                    .collect();
                for &a in &dropped {
                    self.m.drop_connection(a, false);
                }
                let got = self
                    .store
                    .reap_gateway(&format!("gw-{gw}"), LONG_GRACE)
                    .await
                    .map_err(|e| fail(format!("reap_gateway: {e}")))?;
                if usize::try_from(got).ok() != Some(dropped.len()) {
                    return Err(fail(format!(
                        "reap_gateway dropped {got} connections, the model {dropped:?}"
                    )));
                }
                self.note(format!("{op:?} -> dropped {dropped:?}"));
            }
            Op::Connect { agent, gateway } => {
                let a = agent;
                self.conns += 1;
                let conn = format!("c{}", self.conns);
                let got = self
                    .store
                    .connect(&aid(*a), &conn, &format!("gw-{gateway}"))
                    .await;
                if !self.m.agents[*a].exists {
                    check_answer("connect", &got, &Err(vec![ErrorCode::AgentNotFound]))?;
                    self.note(format!("{op:?} -> rejected: not on the roster"));
                    return Ok(());
                }
                check_answer("connect", &got, &Ok(()))?;
                let ag = &self.m.agents[*a];
                if !ag.connected && ag.grace == Some(true) {
                    self.m.end_shift(*a);
                }
                let ag = &mut self.m.agents[*a];
                if let Some(old) = ag.conn.take() {
                    ag.old_conns.push(old);
                }
                ag.connected = true;
                ag.conn = Some(conn.clone());
                ag.gateway = *gateway;
                ag.grace = None;
                // The reply is what `welcome` shows: status, held tickets, pending offer.
                let reply = got.map_err(|e| fail(format!("connect: {e}")))?;
                let ag = &self.m.agents[*a];
                let held = self.m.held_ids(*a);
                let mut tickets = reply.tickets.clone();
                tickets.sort();
                let offer = ag.offer.map(|o| self.m.offers[o].id.clone());
                if reply.status != ag.status || tickets != held || reply.offer_id != offer {
                    return Err(fail(format!(
                        "connect of {} answered {reply:?}; the model has status {:?}, tickets {held:?}, offer {offer:?}",
                        IDS[*a], ag.status
                    )));
                }
                self.note(format!("{op:?} -> ok ({conn})"));
            }
            Op::Disconnect {
                agent,
                stale,
                short_grace,
            } => {
                let a = *agent;
                let ag = &self.m.agents[a];
                let conn = if *stale {
                    ag.old_conns.last().cloned()
                } else {
                    ag.conn.clone()
                }
                .unwrap_or_else(|| "c-never".into());
                let drops = !*stale && ag.connected;
                let grace = if *short_grace {
                    SHORT_GRACE
                } else {
                    LONG_GRACE
                };
                let got = self.store.disconnect(&aid(a), &conn, grace).await;
                check_answer("disconnect", &got, &Ok(()))?;
                if drops {
                    self.m.drop_connection(a, *short_grace);
                    if *short_grace {
                        tokio::time::sleep(PAST_DEADLINE).await;
                    }
                }
                self.note(format!(
                    "{op:?} -> ok ({conn}{})",
                    if drops { ", dropped" } else { ", no effect" }
                ));
            }
            Op::SetStatus(a, want) => {
                if !self.m.agents[*a].connected {
                    self.note(format!("{op:?} -> skipped: not connected"));
                    return Ok(());
                }
                let from_offline = self.m.agents[*a].status == AgentStatus::Offline;
                let expect = self.m.set_status(*a, *want);
                let got = self.store.set_status(&aid(*a), want.requested()).await;
                check_answer("set_status", &got, &expect)?;
                if let Ok((status, _)) = &got {
                    if *status != self.m.agents[*a].status {
                        return Err(fail(format!(
                            "set_status answered {status:?}, the model has {:?}",
                            self.m.agents[*a].status
                        )));
                    }
                }
                if expect.is_ok() && from_offline && *want == Want::Available {
                    tokio::time::sleep(NEXT_MILLISECOND).await;
                }
                self.note(format!("{op:?} -> {}", done(&expect)));
            }
            Op::CreateTicket(spec) => {
                if self.m.tickets.len() >= MAX_TICKETS {
                    self.note(format!("{op:?} -> skipped: enough tickets"));
                    return Ok(());
                }
                let tid = TicketId::generate();
                let got = self.store.create_ticket(&tid, None, &spec.fields()).await;
                match &got {
                    Ok((id, true)) if id == tid.as_str() => {}
                    other => return Err(fail(format!("create_ticket answered {other:?}"))),
                }
                self.m.seq += 1;
                let queued = self.m.tick();
                self.m.tickets.push(MTicket {
                    id: tid.to_string(),
                    spec: spec.clone(),
                    seq: self.m.seq,
                    status: TicketStatus::Queued,
                    agent: None,
                    offer: None,
                    declined: BTreeSet::new(),
                    offers_made: 0,
                    queued,
                });
                self.note(format!(
                    "{op:?} -> ok (ticket #{})",
                    self.m.tickets.len() - 1
                ));
            }
            Op::RouteTicket { ticket, short } => {
                let queued = |t: &MTicket| t.status == TicketStatus::Queued;
                let Some(t) = self.pick_ticket_where(*ticket, queued) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let expect = self.m.best_agent(t);
                let matcher = if *short { &self.short } else { &self.long };
                let got = matcher
                    .route_ticket(&self.m.tickets[t].id)
                    .await
                    .map_err(|e| fail(format!("route_ticket: {e}")))?;
                let got_agent = got
                    .as_deref()
                    .and_then(|g| IDS.iter().position(|id| *id == g));
                if got_agent != expect {
                    let eligible: Vec<&str> =
                        self.m.eligible_agents(t).iter().map(|&a| IDS[a]).collect();
                    let keys: Vec<String> = self
                        .m
                        .eligible_agents(t)
                        .iter()
                        .map(|&a| {
                            format!(
                                "{}: preferred {}, active {}, idle {}, level {}",
                                IDS[a],
                                self.m.tickets[t].spec.preferred == Some(a),
                                self.m.agents[a].active.len(),
                                self.m.agents[a].idle,
                                self.m.summed_level(a, t)
                            )
                        })
                        .collect();
                    return Err(fail(format!(
                        "route_ticket #{t} offered it to {got:?}; the model expects {:?} (ticket {:?}, eligible {eligible:?}: {keys:?})",
                        expect.map(|a| IDS[a]),
                        self.m.tickets[t].status
                    )));
                }
                if let Some(a) = got_agent {
                    self.record_offer(t, a, *short).await?;
                }
                self.note(format!(
                    "{op:?} -> ticket #{t} offered to {:?}",
                    got_agent.map(|a| IDS[a])
                ));
            }
            Op::OfferAgent {
                agent,
                short,
                since,
            } => {
                // The first free agent from `agent` on, else `agent` itself.
                let a = (0..IDS.len())
                    .map(|k| (agent + k) % IDS.len())
                    .find(|&a| self.m.is_free(a))
                    .unwrap_or(*agent);
                let matcher = if *short { &self.short } else { &self.long };
                let since = match since.and_then(|n| self.pick_ticket(n)) {
                    Some(k) => Some(self.queued_seq().await?[k]),
                    None => None,
                };
                let (expect, got) = match since {
                    None => (
                        self.m.best_ticket(a, |_| true),
                        matcher.serve_agent(IDS[a]).await,
                    ),
                    Some(at) => {
                        // Waiting then: queued no later than ticket k, by the store's sequence.
                        let stamps = self.queued_seq().await?;
                        let waiting = |t: usize| stamps[t] <= at;
                        (
                            self.m.best_ticket(a, waiting),
                            matcher.serve_agent_since(IDS[a], at).await,
                        )
                    }
                };
                let got = got.map_err(|e| fail(format!("serve_agent: {e}")))?;
                let got_ticket = got
                    .as_deref()
                    .and_then(|g| self.m.tickets.iter().position(|t| t.id == g));
                if got_ticket != expect || got.is_some() != got_ticket.is_some() {
                    let eligible: Vec<(usize, u8, u64)> = (0..self.m.tickets.len())
                        .filter(|&t| {
                            self.m.tickets[t].status == TicketStatus::Queued
                                && self.m.eligible(a, t)
                        })
                        .map(|t| (t, self.m.tickets[t].spec.priority, self.m.tickets[t].seq))
                        .collect();
                    return Err(fail(format!(
                        "serve_agent {} offered ticket {got_ticket:?} ({got:?}); the model expects {expect:?} (free {}, eligible (ticket, priority, seq): {eligible:?})",
                        IDS[a],
                        self.m.is_free(a)
                    )));
                }
                if let Some(t) = got_ticket {
                    self.record_offer(t, a, *short).await?;
                }
                self.note(format!(
                    "{op:?} -> {} offered ticket {got_ticket:?}",
                    IDS[a]
                ));
            }
            Op::Accept { agent, offer } | Op::Decline { agent, offer } => {
                let accepting = matches!(op, Op::Accept { .. });
                let Some((a, o)) = self.pick_offer(*agent, *offer) else {
                    self.note(format!("{op:?} -> skipped: no offer"));
                    return Ok(());
                };
                if !self.m.agents[a].connected {
                    self.note(format!("{op:?} -> skipped: {} not connected", IDS[a]));
                    return Ok(());
                }
                let expect = self.m.answerable(a, o);
                let oid = OfferId::try_from(self.m.offers[o].id.as_str()).expect("offer id");
                if accepting {
                    let got = self.store.accept(&aid(a), &oid).await;
                    check_answer("accept", &got, &expect)?;
                    if let Ok(frame) = &got {
                        let want = &self.m.tickets[self.m.offers[o].ticket].id;
                        if &frame.ticket_id != want {
                            return Err(fail(format!(
                                "accept answered `assigned` for {}, the offer was of {want}",
                                frame.ticket_id
                            )));
                        }
                        self.m.accept(a, o);
                        tokio::time::sleep(NEXT_MILLISECOND).await;
                    }
                } else {
                    let got = self.store.decline(&aid(a), &oid, None).await;
                    check_answer("decline", &got, &expect)?;
                    if got.is_ok() {
                        self.m.agents[a].missed = 0;
                        self.m.end_offer(o, OfferState::Declined);
                    }
                }
                self.note(format!(
                    "{op:?} -> by {} offer #{o} (of ticket #{} to {}): {}",
                    IDS[a],
                    self.m.offers[o].ticket,
                    IDS[self.m.offers[o].agent],
                    done(&expect)
                ));
            }
            Op::Complete {
                agent,
                ticket,
                holder,
            } => {
                let assigned = |t: &MTicket| *holder && t.status == TicketStatus::Assigned;
                let Some(t) = self.pick_ticket_where(*ticket, assigned) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let a = match (holder, self.m.tickets[t].agent) {
                    (true, Some(h)) => h,
                    _ => *agent,
                };
                if !self.m.agents[a].connected {
                    self.note(format!("{op:?} -> skipped: {} not connected", IDS[a]));
                    return Ok(());
                }
                let expect = self.m.complete(a, t);
                let got = self
                    .store
                    .complete(&aid(a), &self.ticket_id(t), Outcome::Resolved, None)
                    .await;
                check_answer("complete", &got, &expect)?;
                self.note(format!(
                    "{op:?} -> ticket #{t} by {}: {}",
                    IDS[a],
                    done(&expect)
                ));
            }
            Op::Cancel(ticket) => {
                let Some(t) = self.pick_ticket(*ticket) else {
                    self.note(format!("{op:?} -> skipped: no tickets"));
                    return Ok(());
                };
                let expect = self.m.cancel(t);
                let got = self.store.cancel_ticket(&self.ticket_id(t)).await;
                check_answer("cancel_ticket", &got, &expect)?;
                self.note(format!("{op:?} -> ticket #{t}: {}", done(&expect)));
            }
            Op::ExpireNow => {
                let offers = self.m.expire_offers();
                let got = self
                    .store
                    .expire_offers(100, MISSED_BEFORE_AWAY)
                    .await
                    .map_err(|e| fail(format!("expire_offers: {e}")))?;
                if usize::try_from(got).ok() != Some(offers) {
                    return Err(fail(format!(
                        "expire_offers lapsed {got} offers, the model {offers}"
                    )));
                }
                let graces = self.m.expire_grace();
                let got = self
                    .store
                    .expire_grace(100)
                    .await
                    .map_err(|e| fail(format!("expire_grace: {e}")))?;
                if usize::try_from(got).ok() != Some(graces) {
                    return Err(fail(format!(
                        "expire_grace ended {got} grace periods, the model {graces}"
                    )));
                }
                self.note(format!(
                    "{op:?} -> {offers} offers expired, {graces} grace periods ended"
                ));
            }
        }
        Ok(())
    }

    /// Reads the store, compares it with the model and checks the invariants on it.
    async fn check(&mut self) -> Result<(), TestCaseError> {
        let keys = self.store.keys().clone();
        let mut conn = self.store.conn();
        let redis_err = |e: redis::RedisError| fail(format!("redis: {e}"));
        // Raw fields: each agent's pending offer; each ticket's offer and offer_agent; each
        // offer's status, ticket and agent.
        let mut pipe = redis::pipe();
        for id in IDS {
            pipe.hget(keys.agent(id), "offer");
        }
        for t in &self.m.tickets {
            pipe.hget(keys.ticket(&t.id), "offer")
                .hget(keys.ticket(&t.id), "offer_agent");
        }
        for o in &self.m.offers {
            pipe.hget(keys.offer(&o.id), "status")
                .hget(keys.offer(&o.id), "ticket")
                .hget(keys.offer(&o.id), "agent");
        }
        let raw: Vec<Option<String>> = pipe.query_async(&mut conn).await.map_err(redis_err)?;
        let raw: Vec<String> = raw.into_iter().map(Option::unwrap_or_default).collect();
        let (agent_offer, rest) = raw.split_at(IDS.len());
        let (ticket_raw, offer_raw) = rest.split_at(2 * self.m.tickets.len());
        let mut pipe = redis::pipe();
        for t in &self.m.tickets {
            pipe.zscore(keys.queue(t.spec.lang.code()), &t.id);
        }
        let queued_in: Vec<Option<f64>> = if self.m.tickets.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await.map_err(redis_err)?
        };

        let mut views = Vec::new();
        for (a, id) in IDS.iter().enumerate() {
            let v = self
                .store
                .agent(&aid(a))
                .await
                .map_err(|e| fail(format!("agent {id}: {e}")))?;
            views.push(v);
        }
        let mut tickets = Vec::new();
        for t in 0..self.m.tickets.len() {
            let v = self
                .store
                .ticket(&self.ticket_id(t))
                .await
                .map_err(|e| fail(format!("ticket #{t}: {e} (not one of the five statuses?)")))?
                .ok_or_else(|| fail(format!("ticket #{t} is gone")))?;
            tickets.push(v);
        }

        // The model's view of the same.
        let mut diffs = Vec::new();
        for (a, v) in views.iter().enumerate() {
            let ag = &self.m.agents[a];
            let Some(v) = v else {
                if ag.exists {
                    diffs.push(format!("{} is not on the roster, model: it is", IDS[a]));
                }
                continue;
            };
            if !ag.exists {
                diffs.push(format!("{} is on the roster, model: removed", IDS[a]));
                continue;
            }
            let held = self.m.held_ids(a);
            let seen: Vec<String> = v
                .state
                .active_tickets
                .iter()
                .map(|t| t.to_string())
                .collect();
            let offer = ag
                .offer
                .map(|o| self.m.offers[o].id.clone())
                .unwrap_or_default();
            if v.state.status != ag.status {
                diffs.push(format!(
                    "{}: status {:?}, model {:?}",
                    IDS[a], v.state.status, ag.status
                ));
            }
            if v.state.connected != ag.connected {
                diffs.push(format!(
                    "{}: connected {}, model {}",
                    IDS[a], v.state.connected, ag.connected
                ));
            }
            if seen != held {
                diffs.push(format!(
                    "{}: active_tickets {seen:?}, model {held:?}",
                    IDS[a]
                ));
            }
            if agent_offer[a] != offer {
                diffs.push(format!(
                    "{}: pending offer {:?}, model {offer:?}",
                    IDS[a], agent_offer[a]
                ));
            }
        }
        for (t, v) in tickets.iter().enumerate() {
            let mt = &self.m.tickets[t];
            let agent = mt.agent.map(|a| IDS[a].to_owned());
            if v.status != mt.status {
                diffs.push(format!(
                    "ticket #{t}: status {:?}, model {:?}",
                    v.status, mt.status
                ));
            }
            if v.agent_id != agent {
                diffs.push(format!(
                    "ticket #{t}: agent_id {:?}, model {agent:?}",
                    v.agent_id
                ));
            }
            if v.offers_made != mt.offers_made {
                diffs.push(format!(
                    "ticket #{t}: offers_made {}, model {}",
                    v.offers_made, mt.offers_made
                ));
            }
            let offer = mt
                .offer
                .map(|o| self.m.offers[o].id.clone())
                .unwrap_or_default();
            if ticket_raw[2 * t] != offer {
                diffs.push(format!(
                    "ticket #{t}: offer {:?}, model {offer:?}",
                    ticket_raw[2 * t]
                ));
            }
        }
        for (o, mo) in self.m.offers.iter().enumerate() {
            if offer_raw[3 * o] != mo.state.as_str() {
                diffs.push(format!(
                    "offer #{o} (ticket #{} to {}): {:?}, model {}",
                    mo.ticket,
                    IDS[mo.agent],
                    offer_raw[3 * o],
                    mo.state.as_str()
                ));
            }
        }
        if !diffs.is_empty() {
            return Err(fail(format!(
                "the store and the model differ:\n    {}",
                diffs.join("\n    ")
            )));
        }

        // Invariants, on what the store holds.
        let mut broken = Vec::new();
        let pending: Vec<(usize, &str, &str)> = (0..self.m.offers.len())
            .filter(|&o| offer_raw[3 * o] == "pending")
            .map(|o| {
                (
                    o,
                    offer_raw[3 * o + 1].as_str(),
                    offer_raw[3 * o + 2].as_str(),
                )
            })
            .collect();
        for (t, v) in tickets.iter().enumerate() {
            let id = self.m.tickets[t].id.as_str();
            let mine: Vec<&(usize, &str, &str)> =
                pending.iter().filter(|(_, tk, _)| *tk == id).collect();
            if v.status == TicketStatus::Offered {
                let (offer, offer_agent) = (&ticket_raw[2 * t], &ticket_raw[2 * t + 1]);
                let holders: Vec<&str> = IDS
                    .iter()
                    .enumerate()
                    .filter(|(a, _)| agent_offer[*a] == *offer)
                    .map(|(_, id)| *id)
                    .collect();
                if mine.len() != 1
                    || self.m.offers[mine[0].0].id != *offer
                    || mine[0].2 != offer_agent
                    || holders != [offer_agent.as_str()]
                {
                    broken.push(format!(
                        "ticket #{t} is offered (offer {offer:?} to {offer_agent:?}) but its pending offers are {mine:?} and agents holding that offer {holders:?}"
                    ));
                }
            } else if !mine.is_empty() {
                broken.push(format!(
                    "ticket #{t} is {:?} but has pending offers {mine:?}",
                    v.status
                ));
            }
            if (v.status == TicketStatus::Queued) != queued_in[t].is_some() {
                broken.push(format!(
                    "ticket #{t} is {:?} and {} its language's queue",
                    v.status,
                    if queued_in[t].is_some() {
                        "in"
                    } else {
                        "not in"
                    }
                ));
            }
            if v.status == TicketStatus::Assigned {
                let holders: Vec<&str> = views
                    .iter()
                    .flatten()
                    .filter(|w| w.state.active_tickets.iter().any(|x| x.as_str() == id))
                    .map(|w| w.agent_id.as_str())
                    .collect();
                if v.agent_id.as_deref().map(|h| vec![h]) != Some(holders.clone()) {
                    broken.push(format!(
                        "ticket #{t} is assigned to {:?} but held by {holders:?}",
                        v.agent_id
                    ));
                }
            }
        }
        for (a, w) in views.iter().enumerate() {
            let Some(w) = w else { continue };
            let mine = pending.iter().filter(|(_, _, ag)| *ag == IDS[a]).count();
            if mine > 1 {
                broken.push(format!("{} has {mine} pending offers", IDS[a]));
            }
            if !agent_offer[a].is_empty()
                && !pending
                    .iter()
                    .any(|(o, _, ag)| self.m.offers[*o].id == agent_offer[a] && *ag == IDS[a])
            {
                broken.push(format!(
                    "{} records offer {} as pending, which is not a pending offer of it",
                    IDS[a], agent_offer[a]
                ));
            }
            let max = usize::from(self.m.agents[a].profile.max);
            let ag = &mut self.m.agents[a];
            if ag.active.len() + usize::from(ag.offer.is_some()) <= max {
                ag.excused = false;
            }
            if w.state.active_tickets.len() > max && !ag.excused {
                broken.push(format!(
                    "{} holds {} tickets, max_concurrent {max}",
                    IDS[a],
                    w.state.active_tickets.len()
                ));
            }
            for held in &w.state.active_tickets {
                let ok = tickets.iter().any(|v| {
                    v.ticket_id == *held
                        && v.status == TicketStatus::Assigned
                        && v.agent_id.as_deref() == Some(IDS[a])
                });
                if !ok {
                    broken.push(format!(
                        "{} holds {held}, which is not assigned to it",
                        IDS[a]
                    ));
                }
            }
        }
        if !broken.is_empty() {
            return Err(fail(format!(
                "invariants broken:\n    {}",
                broken.join("\n    ")
            )));
        }
        Ok(())
    }
}

async fn run_case(
    profiles: &[Profile; 3],
    online: &[bool; 3],
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let mut case = Case::new(profiles, online).await?;
    let mut result = case.check().await;
    for (i, op) in ops.iter().enumerate() {
        if result.is_err() {
            break;
        }
        result = match case.step(op).await {
            Ok(()) => case.check().await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            result = Err(fail(format!(
                "step {i} ({op:?}) went wrong: {e}\nsteps run:\n{}",
                case.trace
            )));
        }
    }
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("case:\n{}", case.trace);
    }
    case.cleanup().await;
    result
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_like_the_model(
        profiles in (profile(), profile(), profile()).prop_map(|(a, b, c)| [a, b, c]),
        online in (prop::bool::weighted(0.8), prop::bool::weighted(0.8), prop::bool::weighted(0.8))
            .prop_map(|(a, b, c)| [a, b, c]),
        ops in prop::collection::vec(op(), 1..30),
    ) {
        runtime().block_on(run_case(&profiles, &online, &ops))?;
    }
}
