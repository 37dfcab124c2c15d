//! The world and the operations: agents' profiles, ticket specs, the operations, and the
//! proptest strategies that generate them.

use proptest::prelude::*;
use serde_json::{json, Value};
use shared::domain::{AgentProfile, AgentStatus, NewTicket, RequestedStatus};
use shared::store::{NewTicketFields, ProfileFields};

use crate::{IDS, MAX_TICKETS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Sv,
    En,
}

impl Lang {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::Sv => "sv",
            Lang::En => "en",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub(crate) langs: Vec<Lang>,
    /// Skill levels, 0 meaning the agent lacks the skill.
    pub(crate) refunds: u8,
    pub(crate) disputes: u8,
    /// Inside the `north` geofence.
    pub(crate) north: bool,
    pub(crate) max: u8,
}

/// A skills object with `refunds` and `disputes` at these levels, leaving out those at 0.
pub(crate) fn skills(refunds: u8, disputes: u8) -> Value {
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
    pub(crate) fn fields(&self) -> ProfileFields {
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
pub(crate) struct TicketSpec {
    pub(crate) lang: Lang,
    /// Minimum levels, 0 meaning not required.
    pub(crate) refunds: u8,
    pub(crate) disputes: u8,
    pub(crate) priority: u8,
    pub(crate) preferred: Option<usize>,
    /// Must be handled from inside the `north` geofence.
    pub(crate) north: bool,
}

impl TicketSpec {
    pub(crate) fn fields(&self) -> NewTicketFields {
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
pub(crate) enum Want {
    Available,
    Break,
    Offline,
}

impl Want {
    pub(crate) fn requested(self) -> RequestedStatus {
        match self {
            Want::Available => RequestedStatus::Available,
            Want::Break => RequestedStatus::Break,
            Want::Offline => RequestedStatus::Offline,
        }
    }

    pub(crate) fn status(self) -> AgentStatus {
        AgentStatus::from(self.requested())
    }
}

/// One operation. Agent numbers are 0..3; ticket numbers are taken modulo the tickets created so
/// far, offer numbers modulo the offers made so far.
#[derive(Debug, Clone)]
pub(crate) enum Op {
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
    /// From now on, the transitions that free an agent (and offer it the next waiting ticket)
    /// make that offer with the 1 ms timeout (`short`) or the 60 s one.
    OfferTimeout { short: bool },
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

pub(crate) fn lang() -> impl Strategy<Value = Lang> {
    prop_oneof![Just(Lang::Sv), Just(Lang::En)]
}

pub(crate) fn profile() -> impl Strategy<Value = Profile> {
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

pub(crate) fn ticket_spec() -> impl Strategy<Value = TicketSpec> {
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

pub(crate) fn op() -> impl Strategy<Value = Op> {
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
        1 => prop::bool::weighted(0.3).prop_map(|short| Op::OfferTimeout { short }),
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
