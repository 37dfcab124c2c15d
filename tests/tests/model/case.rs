//! One case against the real store: a fresh namespace, the matchers, the model beside them, and
//! the helpers the steps and checks share.

use std::fmt::Write as _;

use dispatcher::matcher::Matcher;
use e2e::REDIS_URL;
use proptest::test_runner::TestCaseError;
use serde_json::json;
use shared::domain::{AgentId, NewTicket, TicketId};
use shared::store::{CreatedTicket, NewTicketFields, Routed, Store, StoreError};

use crate::reference::{Expect, MTicket, Model};
use crate::world::{Op, Profile, Want};
use crate::{BALLAST, IDS, LONG_OFFER, PAST_DEADLINE, SHORT_OFFER};

static LIBRARY: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

pub(crate) fn aid(a: usize) -> AgentId {
    AgentId::try_from(IDS[a]).expect("agent id")
}

pub(crate) fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

/// Compares an answer of the store with what the model expects.
pub(crate) fn check_answer<T: std::fmt::Debug>(
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

pub(crate) fn done(r: &Expect) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(codes) => format!("rejected {codes:?}"),
    }
}

pub(crate) struct Case {
    pub(crate) store: Store,
    pub(crate) namespace: String,
    pub(crate) long: Matcher,
    pub(crate) short: Matcher,
    pub(crate) m: Model,
    pub(crate) conns: u32,
    pub(crate) trace: String,
    /// Tickets nobody can take, waiting in each language ahead of the model's (not in it).
    pub(crate) ballast: usize,
}

impl Case {
    pub(crate) async fn new(
        profiles: &[Profile; 3],
        online: &[bool; 3],
        ballast: bool,
    ) -> Result<Self, TestCaseError> {
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
        let ballast = if ballast { BALLAST } else { 0 };
        for i in 0..2 * ballast {
            let lang = if i % 2 == 0 { "sv" } else { "en" };
            let body: NewTicket =
                serde_json::from_value(e2e::ticket(lang, json!({"impossible": 1}), 9))
                    .expect("a ticket");
            let created = store
                .create_ticket(
                    &TicketId::generate(),
                    None,
                    &NewTicketFields::new(&body),
                    16,
                )
                .await
                .map_err(|e| fail(format!("ballast: {e}")))?;
            if !matches!(
                &created,
                CreatedTicket::Created {
                    routed: Routed::Parked,
                    ..
                }
            ) {
                return Err(fail(format!(
                    "a ballast ticket was not parked: {created:?}"
                )));
            }
        }
        let mut case = Self {
            long: Matcher::new(store.clone().with_offer_timeout(LONG_OFFER)),
            short: Matcher::new(store.clone().with_offer_timeout(SHORT_OFFER)),
            store,
            namespace,
            m: Model::new(profiles),
            conns: 0,
            trace: String::new(),
            ballast,
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

    pub(crate) fn note(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.trace, "  {}", line.as_ref());
    }

    pub(crate) fn ticket_id(&self, t: usize) -> TicketId {
        TicketId::try_from(self.m.tickets[t].id.as_str()).expect("ticket id")
    }

    /// The ticket an operation refers to, if any ticket exists.
    pub(crate) fn pick_ticket(&self, n: usize) -> Option<usize> {
        (!self.m.tickets.is_empty()).then(|| n % self.m.tickets.len())
    }

    /// The first ticket from `n` on (cyclically) that satisfies `want`, else ticket `n`.
    pub(crate) fn pick_ticket_where(
        &self,
        n: usize,
        want: impl Fn(&MTicket) -> bool,
    ) -> Option<usize> {
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
    pub(crate) fn pick_offer(&self, agent: usize, pick: Option<usize>) -> Option<(usize, usize)> {
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

    /// The store the transitions that free an agent go through: its offer timeout is the one
    /// the model makes their offers with.
    pub(crate) fn serving_store(&self) -> &Store {
        if self.m.short_offers {
            self.short.store()
        } else {
            self.long.store()
        }
    }

    /// How a step's note says what a freed agent was offered.
    pub(crate) fn served_note(&self, a: usize, served: Option<usize>) -> String {
        match served {
            Some(t) => format!(", {} offered ticket #{t}", IDS[a]),
            None => String::new(),
        }
    }

    /// Checks the offers the model made in this step (their ids still empty) against the store:
    /// the store must have made each of them, to the same agent; records their ids. Waits past
    /// the deadline of those made with the 1 ms timeout.
    pub(crate) async fn confirm_offers(&mut self) -> Result<(), TestCaseError> {
        let new: Vec<usize> = (0..self.m.offers.len())
            .filter(|&o| self.m.offers[o].id.is_empty())
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let mut conn = self.store.conn();
        let mut short = false;
        for o in new {
            let (t, a) = (self.m.offers[o].ticket, self.m.offers[o].agent);
            let (status, offer, offer_agent): (Option<String>, Option<String>, Option<String>) =
                redis::cmd("HMGET")
                    .arg(self.store.keys().ticket(&self.m.tickets[t].id))
                    .arg(&["status", "offer", "offer_agent"])
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail(format!("HMGET ticket: {e}")))?;
            let offer = offer.unwrap_or_default();
            if status.as_deref() != Some("offered") || offer_agent.as_deref() != Some(IDS[a]) {
                let theirs: Option<String> = redis::cmd("HGET")
                    .arg(self.store.keys().agent(IDS[a]))
                    .arg("offer")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail(format!("HGET agent offer: {e}")))?;
                return Err(fail(format!(
                    "the model offers ticket #{t} to {}; the store has the ticket {status:?} with offer {offer:?} to {offer_agent:?}, and {}'s pending offer is {theirs:?}",
                    IDS[a], IDS[a]
                )));
            }
            short |= self.m.offers[o].lapsed;
            self.m.offers[o].id = offer;
        }
        if short {
            tokio::time::sleep(PAST_DEADLINE).await;
        }
        Ok(())
    }

    pub(crate) async fn cleanup(&self) {
        e2e::delete_namespace_keys(&mut self.store.conn(), &self.namespace).await;
    }
}
