//! The namespace's event stream (`{ns}:events`): every state change, as the Lua library appends
//! it, parsed into one enum.
//!
//! An entry is a flat map of strings: `type`, `ts` (Redis's clock, ms) and the fields of its
//! kind. [`StreamEvent::parse`] reads one entry; [`Event`] is what happened. A kind this build
//! does not know (written by a newer one during a rolling deploy) parses as
//! [`EventError::UnknownKind`], which a reader skips; an entry of a known kind that lacks a field
//! is [`EventError::Malformed`]. A test of the library checks that every kind the Lua emits is a
//! kind of [`EventKind`].

use serde::{Deserialize, Serialize};

use crate::domain::{AgentStatus, Outcome, TicketStatus};
use crate::protocol::StatusReason;

pub mod public;
mod stream;

pub use stream::{entry_fields, EventError, StreamEvent, StreamId};

/// Why a shift ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShiftEndReason {
    /// The agent went offline.
    Requested,
    /// The connection dropped and did not come back within the grace period.
    Disconnected,
    /// An operator removed the agent.
    Removed,
    /// The gateway holding the connection died (or the ledger found the shift gone).
    Recovered,
}

impl ShiftEndReason {
    /// The snake_case name, as the ledger stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Disconnected => "disconnected",
            Self::Removed => "removed",
            Self::Recovered => "recovered",
        }
    }
}

/// Numbers travel as decimal strings in the stream.
mod text_num {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, T: std::fmt::Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let s = String::deserialize(d)?;
        s.parse().map_err(D::Error::custom)
    }
}

/// An optional number, as a decimal string when present.
mod text_num_opt {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Some).map_err(D::Error::custom)
    }
}

/// A flag, `1` when set (and absent when not).
mod text_flag {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *v { "1" } else { "0" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(String::deserialize(d)? == "1")
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// What happened, by kind: the `type` field names the variant in snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A profile was created or replaced.
    AgentUpserted {
        /// The agent.
        agent: String,
    },
    /// An agent was removed from the roster.
    AgentRemoved {
        /// The agent.
        agent: String,
    },
    /// A ticket was posted. A ticket offered in the same step carries its offer here (the
    /// three offer fields, as [`Event::OfferCreated`] has them), and has no `offer_created`.
    TicketCreated {
        /// The ticket.
        ticket: String,
        /// Its language.
        language: String,
        /// Its priority.
        #[serde(with = "text_num")]
        priority: u8,
        /// The agent it was offered to at once ('' if none).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        agent: String,
        /// That offer ('' if none).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        offer: String,
        /// That offer's deadline, ms.
        #[serde(
            default,
            with = "text_num_opt",
            skip_serializing_if = "Option::is_none"
        )]
        expires: Option<i64>,
        /// Parked at once, nobody being able to take it (and no `ticket_queued` follows).
        #[serde(default, with = "text_flag", skip_serializing_if = "is_false")]
        queued: bool,
    },
    /// A ticket nobody can take now was parked in its queues (after its creation: a ticket
    /// parked at once says so in its [`Event::TicketCreated`]).
    TicketQueued {
        /// The ticket.
        ticket: String,
    },
    /// A ticket was offered to an agent.
    OfferCreated {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// The offer.
        offer: String,
        /// Its deadline, ms.
        #[serde(with = "text_num")]
        expires: i64,
    },
    /// The agent declined the offer.
    OfferDeclined {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// The offer.
        offer: String,
        /// The agent's reason ('' if none).
        #[serde(default)]
        reason: String,
    },
    /// The offer lapsed.
    OfferExpired {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// The offer.
        offer: String,
    },
    /// The offer was withdrawn because its agent left.
    OfferWithdrawn {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// The offer.
        offer: String,
    },
    /// The agent accepted: the ticket is assigned to it.
    TicketAssigned {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// The accepted offer.
        offer: String,
        /// The agent's shift ('' if none).
        #[serde(default)]
        shift: String,
    },
    /// An assigned ticket went back to routing (its agent's shift ended).
    TicketRequeued {
        /// The ticket.
        ticket: String,
        /// The agent it was assigned to.
        agent: String,
    },
    /// The agent completed the ticket.
    TicketCompleted {
        /// The ticket.
        ticket: String,
        /// The agent.
        agent: String,
        /// How it went.
        outcome: Outcome,
        /// The agent's shift ('' if none).
        #[serde(default)]
        shift: String,
    },
    /// The ticket was cancelled.
    TicketCancelled {
        /// The ticket.
        ticket: String,
        /// The agent that held its offer or had it assigned ('' if none).
        #[serde(default)]
        agent: String,
        /// Its status before.
        was: TicketStatus,
    },
    /// An agent's status changed.
    AgentStatus {
        /// The agent.
        agent: String,
        /// The new status.
        status: AgentStatus,
        /// Why.
        reason: StatusReason,
        /// The shift it is in ('' if none).
        #[serde(default)]
        shift: String,
    },
    /// A shift began (the agent went available out of offline).
    ShiftStarted {
        /// The agent.
        agent: String,
        /// The new shift.
        shift: String,
        /// The rate it is paid at, cents an hour.
        #[serde(with = "text_num")]
        rate: i64,
        /// The rate's currency.
        currency: String,
        /// The agent's time zone.
        tz: String,
    },
    /// A shift ended.
    ShiftEnded {
        /// The agent.
        agent: String,
        /// The shift.
        shift: String,
        /// Its last moment, ms (a drop's time for a shift that ended by a drop).
        #[serde(with = "text_num")]
        ended_at: i64,
        /// Why.
        reason: ShiftEndReason,
    },
    /// The ledger stored an ended shift: appended by the ledger writer (not the Lua), once per
    /// shift, for webhooks and live events (`shift.ended`, API.md §9).
    ShiftRecorded {
        /// The agent.
        agent: String,
        /// The shift.
        #[serde(rename = "shift")]
        shift_id: String,
        /// The shift as API.md §7 shows it, JSON.
        row: String,
    },
    /// An agent's WebSocket was bound.
    AgentConnected {
        /// The agent.
        agent: String,
        /// The connection.
        conn: String,
        /// The shift it is in ('' if none).
        #[serde(default)]
        shift: String,
    },
    /// An agent's WebSocket went away.
    AgentDisconnected {
        /// The agent.
        agent: String,
        /// The connection.
        conn: String,
        /// When it went, ms (a dead gateway's last heartbeat).
        #[serde(with = "text_num")]
        at: i64,
    },
}

/// The kinds of [`Event`], by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// [`Event::AgentUpserted`].
    AgentUpserted,
    /// [`Event::AgentRemoved`].
    AgentRemoved,
    /// [`Event::TicketCreated`].
    TicketCreated,
    /// [`Event::TicketQueued`].
    TicketQueued,
    /// [`Event::OfferCreated`].
    OfferCreated,
    /// [`Event::OfferDeclined`].
    OfferDeclined,
    /// [`Event::OfferExpired`].
    OfferExpired,
    /// [`Event::OfferWithdrawn`].
    OfferWithdrawn,
    /// [`Event::TicketAssigned`].
    TicketAssigned,
    /// [`Event::TicketRequeued`].
    TicketRequeued,
    /// [`Event::TicketCompleted`].
    TicketCompleted,
    /// [`Event::TicketCancelled`].
    TicketCancelled,
    /// [`Event::AgentStatus`].
    AgentStatus,
    /// [`Event::ShiftStarted`].
    ShiftStarted,
    /// [`Event::ShiftEnded`].
    ShiftEnded,
    /// [`Event::ShiftRecorded`].
    ShiftRecorded,
    /// [`Event::AgentConnected`].
    AgentConnected,
    /// [`Event::AgentDisconnected`].
    AgentDisconnected,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 18] = [
        Self::AgentUpserted,
        Self::AgentRemoved,
        Self::TicketCreated,
        Self::TicketQueued,
        Self::OfferCreated,
        Self::OfferDeclined,
        Self::OfferExpired,
        Self::OfferWithdrawn,
        Self::TicketAssigned,
        Self::TicketRequeued,
        Self::TicketCompleted,
        Self::TicketCancelled,
        Self::AgentStatus,
        Self::ShiftStarted,
        Self::ShiftEnded,
        Self::ShiftRecorded,
        Self::AgentConnected,
        Self::AgentDisconnected,
    ];

    /// The `type` the stream carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentUpserted => "agent_upserted",
            Self::AgentRemoved => "agent_removed",
            Self::TicketCreated => "ticket_created",
            Self::TicketQueued => "ticket_queued",
            Self::OfferCreated => "offer_created",
            Self::OfferDeclined => "offer_declined",
            Self::OfferExpired => "offer_expired",
            Self::OfferWithdrawn => "offer_withdrawn",
            Self::TicketAssigned => "ticket_assigned",
            Self::TicketRequeued => "ticket_requeued",
            Self::TicketCompleted => "ticket_completed",
            Self::TicketCancelled => "ticket_cancelled",
            Self::AgentStatus => "agent_status",
            Self::ShiftStarted => "shift_started",
            Self::ShiftEnded => "shift_ended",
            Self::ShiftRecorded => "shift_recorded",
            Self::AgentConnected => "agent_connected",
            Self::AgentDisconnected => "agent_disconnected",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl Event {
    /// Its kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::AgentUpserted { .. } => EventKind::AgentUpserted,
            Self::AgentRemoved { .. } => EventKind::AgentRemoved,
            Self::TicketCreated { .. } => EventKind::TicketCreated,
            Self::TicketQueued { .. } => EventKind::TicketQueued,
            Self::OfferCreated { .. } => EventKind::OfferCreated,
            Self::OfferDeclined { .. } => EventKind::OfferDeclined,
            Self::OfferExpired { .. } => EventKind::OfferExpired,
            Self::OfferWithdrawn { .. } => EventKind::OfferWithdrawn,
            Self::TicketAssigned { .. } => EventKind::TicketAssigned,
            Self::TicketRequeued { .. } => EventKind::TicketRequeued,
            Self::TicketCompleted { .. } => EventKind::TicketCompleted,
            Self::TicketCancelled { .. } => EventKind::TicketCancelled,
            Self::AgentStatus { .. } => EventKind::AgentStatus,
            Self::ShiftStarted { .. } => EventKind::ShiftStarted,
            Self::ShiftEnded { .. } => EventKind::ShiftEnded,
            Self::ShiftRecorded { .. } => EventKind::ShiftRecorded,
            Self::AgentConnected { .. } => EventKind::AgentConnected,
            Self::AgentDisconnected { .. } => EventKind::AgentDisconnected,
        }
    }

    /// The agent it concerns, if any ('' counts as none).
    pub fn agent(&self) -> Option<&str> {
        let agent = match self {
            Self::TicketQueued { .. } => return None,
            Self::AgentUpserted { agent }
            | Self::TicketCreated { agent, .. }
            | Self::AgentRemoved { agent }
            | Self::OfferCreated { agent, .. }
            | Self::OfferDeclined { agent, .. }
            | Self::OfferExpired { agent, .. }
            | Self::OfferWithdrawn { agent, .. }
            | Self::TicketAssigned { agent, .. }
            | Self::TicketRequeued { agent, .. }
            | Self::TicketCompleted { agent, .. }
            | Self::TicketCancelled { agent, .. }
            | Self::AgentStatus { agent, .. }
            | Self::ShiftStarted { agent, .. }
            | Self::ShiftEnded { agent, .. }
            | Self::ShiftRecorded { agent, .. }
            | Self::AgentConnected { agent, .. }
            | Self::AgentDisconnected { agent, .. } => agent,
        };
        Some(agent.as_str()).filter(|a| !a.is_empty())
    }

    /// The event as the stream's field/value pairs, `type` first (not `ts`).
    pub fn to_fields(&self) -> Vec<(String, String)> {
        let mut out = vec![("type".to_owned(), self.kind().as_str().to_owned())];
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            for (k, v) in map {
                if k == "type" {
                    continue;
                }
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push((k, v));
            }
        }
        out
    }
}
