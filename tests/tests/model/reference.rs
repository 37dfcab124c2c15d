//! The reference model, written from API.md §5 and §6: offers, agents and tickets, and what each
//! operation does to them (including which agent and which ticket the matcher must pick).

use std::cmp::Reverse;
use std::collections::BTreeSet;

use shared::domain::{AgentStatus, TicketStatus};
use shared::error::ErrorCode;

use crate::world::{Profile, TicketSpec, Want};
use crate::MISSED_BEFORE_AWAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OfferState {
    Pending,
    Accepted,
    Declined,
    Expired,
    Withdrawn,
    Cancelled,
}

impl OfferState {
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct MOffer {
    pub(crate) id: String,
    pub(crate) ticket: usize,
    pub(crate) agent: usize,
    pub(crate) state: OfferState,
    /// Its deadline has passed (made with the 1 ms timeout).
    pub(crate) lapsed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MAgent {
    /// On the roster.
    pub(crate) exists: bool,
    pub(crate) profile: Profile,
    /// The gateway instance of the (last) connection.
    pub(crate) gateway: usize,
    pub(crate) status: AgentStatus,
    pub(crate) connected: bool,
    pub(crate) conn: Option<String>,
    pub(crate) old_conns: Vec<String>,
    pub(crate) active: BTreeSet<usize>,
    pub(crate) offer: Option<usize>,
    pub(crate) missed: u32,
    /// Logical time of the last assignment, or of going available out of offline.
    pub(crate) idle: u64,
    /// Disconnected on shift: `Some(short)` while the grace period runs.
    pub(crate) grace: Option<bool>,
    /// An operator lowered `max_concurrent` below what the agent already held or was offered.
    pub(crate) excused: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct MTicket {
    pub(crate) id: String,
    pub(crate) spec: TicketSpec,
    pub(crate) seq: u64,
    pub(crate) status: TicketStatus,
    pub(crate) agent: Option<usize>,
    pub(crate) offer: Option<usize>,
    /// Agents who declined it or let an offer of it expire.
    pub(crate) declined: BTreeSet<usize>,
    pub(crate) offers_made: u32,
    /// Queued and parked in its language's queue (no eligible agent was free when it was
    /// routed): a freed agent takes it. A queued ticket not parked is routing.
    pub(crate) parked: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    pub(crate) agents: Vec<MAgent>,
    pub(crate) tickets: Vec<MTicket>,
    pub(crate) offers: Vec<MOffer>,
    pub(crate) clock: u64,
    pub(crate) seq: u64,
    /// The transitions that free an agent make their offer with the 1 ms timeout.
    pub(crate) short_offers: bool,
}

/// What an operation should answer: success, or one of these error codes.
pub(crate) type Expect = Result<(), Vec<ErrorCode>>;

impl Model {
    pub(crate) fn new(profiles: &[Profile; 3]) -> Self {
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

    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// The ids of the tickets agent `a` holds, sorted.
    pub(crate) fn held_ids(&self, a: usize) -> Vec<String> {
        let mut held: Vec<String> = self.agents[a]
            .active
            .iter()
            .map(|&t| self.tickets[t].id.clone())
            .collect();
        held.sort();
        held
    }

    pub(crate) fn is_free(&self, a: usize) -> bool {
        let ag = &self.agents[a];
        ag.status == AgentStatus::Available
            && ag.connected
            && ag.active.len() < usize::from(ag.profile.max)
            && ag.offer.is_none()
    }

    /// API.md §5, "eligible".
    pub(crate) fn eligible(&self, a: usize, t: usize) -> bool {
        let (p, spec) = (&self.agents[a].profile, &self.tickets[t].spec);
        self.is_free(a)
            && p.langs.contains(&spec.lang)
            && p.refunds >= spec.refunds
            && p.disputes >= spec.disputes
            && (!spec.north || p.north)
            && !self.tickets[t].declined.contains(&a)
    }

    pub(crate) fn summed_level(&self, a: usize, t: usize) -> u32 {
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

    pub(crate) fn eligible_agents(&self, t: usize) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|&a| self.eligible(a, t))
            .collect()
    }

    /// API.md §5: preferred, fewest active, longest idle, higher summed level, id ascending.
    pub(crate) fn best_agent(&self, t: usize) -> Option<usize> {
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

    /// API.md §5: the waiting (parked) ticket it is eligible for with the highest priority,
    /// oldest first.
    pub(crate) fn best_ticket(&self, a: usize) -> Option<usize> {
        if !self.is_free(a) {
            return None;
        }
        (0..self.tickets.len())
            .filter(|&t| {
                let ticket = &self.tickets[t];
                ticket.status == TicketStatus::Queued && ticket.parked && self.eligible(a, t)
            })
            .min_by_key(|&t| (9 - self.tickets[t].spec.priority, self.tickets[t].seq))
    }

    /// A transition freed agent `a`: it is offered the best waiting ticket, in the same step.
    /// Returns the ticket. The offer's id is the store's, filled in by the caller.
    pub(crate) fn serve(&mut self, a: usize) -> Option<usize> {
        let t = self.best_ticket(a)?;
        self.make_offer(t, a, String::new(), self.short_offers);
        Some(t)
    }

    /// The matcher routes ticket `t` (offers made with the 1 ms timeout if `short`): to the
    /// best eligible agent, else the ticket is parked. Returns the agent.
    pub(crate) fn route(&mut self, t: usize, short: bool) -> Option<usize> {
        match self.best_agent(t) {
            Some(a) => {
                self.make_offer(t, a, String::new(), short);
                Some(a)
            }
            None => {
                if self.tickets[t].status == TicketStatus::Queued {
                    self.tickets[t].parked = true;
                }
                None
            }
        }
    }

    /// The ticket needs an agent again: it is routing (not parked).
    pub(crate) fn requeue(&mut self, t: usize) {
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Queued;
        ticket.agent = None;
        ticket.offer = None;
        ticket.parked = false;
    }

    /// An offer of ticket `t` to agent `a`; `id` is empty until the store's is known.
    pub(crate) fn make_offer(&mut self, t: usize, a: usize, id: String, short: bool) {
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
        ticket.parked = false;
        self.agents[a].offer = Some(o);
    }

    /// A pending offer ends: the agent is freed; unless the ticket was cancelled it waits again;
    /// a decline or an expiry bars the agent from the ticket.
    pub(crate) fn end_offer(&mut self, o: usize, why: OfferState) {
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

    pub(crate) fn withdraw_offer(&mut self, a: usize) {
        if let Some(o) = self.agents[a].offer {
            if self.offers[o].state == OfferState::Pending {
                self.end_offer(o, OfferState::Withdrawn);
            }
            self.agents[a].offer = None;
        }
    }

    /// The shift ends: the pending offer is withdrawn and the held tickets wait again.
    pub(crate) fn end_shift(&mut self, a: usize) {
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
    pub(crate) fn remove(&mut self, a: usize) -> Expect {
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
    pub(crate) fn drop_connection(&mut self, a: usize, short_grace: bool) {
        self.agents[a].connected = false;
        self.withdraw_offer(a);
        if self.agents[a].status != AgentStatus::Offline {
            self.agents[a].grace = Some(short_grace);
        }
    }

    /// Whether `accept`/`decline` of offer `o` by agent `a` is allowed (API.md §6).
    pub(crate) fn answerable(&self, a: usize, o: usize) -> Expect {
        let offer = &self.offers[o];
        let refused = vec![ErrorCode::OfferNotFound, ErrorCode::OfferExpired];
        if offer.agent != a || offer.state != OfferState::Pending || offer.lapsed {
            return Err(refused);
        }
        Ok(())
    }

    /// Whether `accept` of offer `o` by agent `a` repeats one that went through (API.md §6: it
    /// answers `assigned` again and changes nothing): `a` accepted it and still holds its ticket.
    pub(crate) fn accepted_again(&self, a: usize, o: usize) -> bool {
        let offer = &self.offers[o];
        let ticket = &self.tickets[offer.ticket];
        offer.agent == a
            && offer.state == OfferState::Accepted
            && ticket.status == TicketStatus::Assigned
            && ticket.agent == Some(a)
    }

    pub(crate) fn accept(&mut self, a: usize, o: usize) {
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

    pub(crate) fn set_status(&mut self, a: usize, want: Want) -> Expect {
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

    /// Cancels ticket `t`; the agent it frees (its offer's or its holder) is served.
    pub(crate) fn cancel(&mut self, t: usize) -> Expect {
        let freed = match self.tickets[t].status {
            TicketStatus::Completed => return Err(vec![ErrorCode::TicketCompleted]),
            TicketStatus::Cancelled => return Ok(()),
            TicketStatus::Queued => None,
            TicketStatus::Offered => self.tickets[t].offer.map(|o| {
                self.end_offer(o, OfferState::Cancelled);
                self.offers[o].agent
            }),
            TicketStatus::Assigned => self.tickets[t].agent.inspect(|&a| {
                self.agents[a].active.remove(&t);
            }),
        };
        let ticket = &mut self.tickets[t];
        ticket.status = TicketStatus::Cancelled;
        ticket.offer = None;
        ticket.parked = false;
        if let Some(a) = freed {
            self.serve(a);
        }
        Ok(())
    }

    pub(crate) fn complete(&mut self, a: usize, t: usize) -> Expect {
        let ticket = &mut self.tickets[t];
        if ticket.status != TicketStatus::Assigned || ticket.agent != Some(a) {
            return Err(vec![ErrorCode::TicketNotFound]);
        }
        ticket.status = TicketStatus::Completed;
        self.agents[a].active.remove(&t);
        Ok(())
    }

    /// Lapsed pending offers expire, in the order they were made, each freed agent served at
    /// once; returns how many.
    pub(crate) fn expire_offers(&mut self) -> usize {
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
            self.serve(a);
        }
        due.len()
    }

    /// Ended grace periods end their shifts; returns how many.
    pub(crate) fn expire_grace(&mut self) -> usize {
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
