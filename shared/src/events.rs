//! The namespace's event stream (`{ns}:events`): every state change, as the Lua library appends
//! it, parsed into one enum.
//!
//! An entry is a flat map of strings: `type`, `ts` (Redis's clock, ms) and the fields of its
//! kind. [`StreamEvent::parse`] reads one entry; [`Event`] is what happened. A kind this build
//! does not know (written by a newer one during a rolling deploy) parses as
//! [`EventError::UnknownKind`], which a reader skips; an entry of a known kind that lacks a field
//! is [`EventError::Malformed`]. A test of the library checks that every kind the Lua emits is a
//! kind of [`EventKind`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::{AgentStatus, Outcome, TicketStatus};
use crate::protocol::StatusReason;

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
    /// [`Event::AgentConnected`].
    AgentConnected,
    /// [`Event::AgentDisconnected`].
    AgentDisconnected,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 16] = [
        Self::AgentUpserted,
        Self::AgentRemoved,
        Self::TicketCreated,
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
        Self::AgentConnected,
        Self::AgentDisconnected,
    ];

    /// The `type` the stream carries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentUpserted => "agent_upserted",
            Self::AgentRemoved => "agent_removed",
            Self::TicketCreated => "ticket_created",
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
            Self::AgentConnected { .. } => EventKind::AgentConnected,
            Self::AgentDisconnected { .. } => EventKind::AgentDisconnected,
        }
    }

    /// The agent it concerns, if any ('' counts as none).
    pub fn agent(&self) -> Option<&str> {
        let agent = match self {
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

/// A stream entry's id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: i64,
    /// Sequence part.
    pub seq: i64,
}

impl StreamId {
    /// Parses `ms-seq`.
    pub fn parse(id: &str) -> Option<Self> {
        let (ms, seq) = id.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEvent {
    /// Its id.
    pub id: StreamId,
    /// When it happened, ms, by Redis's clock.
    pub ts: i64,
    /// What happened.
    pub event: Event,
}

/// Why an entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A kind this build does not know.
    #[error("unknown event type {0:?}")]
    UnknownKind(String),
    /// A known kind with a missing or unreadable field.
    #[error("malformed {kind} event: {reason}")]
    Malformed {
        /// Its `type`.
        kind: String,
        /// What is wrong.
        reason: String,
    },
}

impl StreamEvent {
    /// Reads entry `id` with `fields`.
    pub fn parse(id: StreamId, fields: &HashMap<String, String>) -> Result<Self, EventError> {
        let kind = fields.get("type").cloned().unwrap_or_default();
        if EventKind::parse(&kind).is_none() {
            return Err(EventError::UnknownKind(kind));
        }
        let malformed = |reason: String| EventError::Malformed {
            kind: kind.clone(),
            reason,
        };
        let ts = match fields.get("ts").map(|t| t.parse::<i64>()) {
            Some(Ok(ts)) => ts,
            _ => return Err(malformed("ts: not a number".into())),
        };
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .filter(|(k, _)| k.as_str() != "ts")
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let event = serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| malformed(e.to_string()))?;
        Ok(Self { id, ts, event })
    }

    /// The entry's fields (`type`, `ts`, then the event's), as the stream holds them.
    pub fn to_fields(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = self.event.to_fields().into_iter().collect();
        out.insert("ts".into(), self.ts.to_string());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_entry_parses_into_its_kind_and_back() {
        let id = StreamId::parse("1700000000000-3").expect("an id");
        let entry = fields(&[
            ("type", "shift_ended"),
            ("ts", "1700000000000"),
            ("agent", "a-1"),
            ("shift", "s-1"),
            ("ended_at", "1699999999000"),
            ("reason", "disconnected"),
        ]);
        let e = StreamEvent::parse(id, &entry).expect("a shift_ended");
        assert_eq!(
            e.event,
            Event::ShiftEnded {
                agent: "a-1".into(),
                shift: "s-1".into(),
                ended_at: 1_699_999_999_000,
                reason: ShiftEndReason::Disconnected,
            }
        );
        assert_eq!(e.ts, 1_700_000_000_000);
        assert_eq!(e.to_fields(), entry);
        assert_eq!(e.event.agent(), Some("a-1"));
    }

    #[test]
    fn unknown_kinds_and_missing_fields_are_told_apart() {
        let id = StreamId { ms: 1, seq: 0 };
        assert_eq!(
            StreamEvent::parse(id, &fields(&[("type", "from_the_future"), ("ts", "1")])),
            Err(EventError::UnknownKind("from_the_future".into()))
        );
        let e = StreamEvent::parse(id, &fields(&[("type", "ticket_assigned"), ("ts", "1")]))
            .expect_err("no ticket");
        assert!(matches!(e, EventError::Malformed { .. }), "{e}");
        let e = StreamEvent::parse(
            id,
            &fields(&[("type", "agent_removed"), ("ts", "x"), ("agent", "a")]),
        )
        .expect_err("bad ts");
        assert!(e.to_string().contains("ts"), "{e}");
    }

    #[test]
    fn a_ticket_created_carries_its_offer_only_when_offered_at_once() {
        let id = StreamId { ms: 1, seq: 0 };
        let parked = fields(&[
            ("type", "ticket_created"),
            ("ts", "1"),
            ("ticket", "t-1"),
            ("language", "sv"),
            ("priority", "5"),
        ]);
        let e = StreamEvent::parse(id, &parked).expect("a creation");
        assert!(matches!(
            &e.event,
            Event::TicketCreated { agent, offer, expires: None, .. } if agent.is_empty() && offer.is_empty()
        ));
        assert_eq!(e.event.agent(), None);
        assert_eq!(e.to_fields(), parked);
        let mut offered = parked.clone();
        offered.extend(fields(&[
            ("agent", "a-1"),
            ("offer", "o-1"),
            ("expires", "21"),
        ]));
        let e = StreamEvent::parse(id, &offered).expect("a creation with its offer");
        assert_eq!(
            e.event,
            Event::TicketCreated {
                ticket: "t-1".into(),
                language: "sv".into(),
                priority: 5,
                agent: "a-1".into(),
                offer: "o-1".into(),
                expires: Some(21),
            }
        );
        assert_eq!(e.event.agent(), Some("a-1"));
        assert_eq!(e.to_fields(), offered);
    }

    #[test]
    fn an_empty_agent_is_no_agent_and_optional_fields_default() {
        let e = StreamEvent::parse(
            StreamId { ms: 1, seq: 0 },
            &fields(&[
                ("type", "ticket_cancelled"),
                ("ts", "1"),
                ("ticket", "t-1"),
                ("agent", ""),
                ("was", "queued"),
            ]),
        )
        .expect("a cancellation");
        assert_eq!(e.event.agent(), None);
        let kinds: std::collections::HashSet<&str> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds.len(), EventKind::ALL.len());
    }

    #[test]
    fn stream_ids_order_by_ms_then_seq() {
        let a = StreamId::parse("5-9").expect("id");
        let b = StreamId::parse("6-0").expect("id");
        assert!(a < b);
        assert_eq!(a.to_string(), "5-9");
        assert_eq!(StreamId::parse("x"), None);
    }
}
