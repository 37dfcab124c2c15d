//! The events the platform publishes (API.md §9 and §10): what one entry of the stream tells the
//! escalation engine and the operators, by type.
//!
//! One stream entry gives zero or more public events ([`announcements`]): a ticket created and
//! offered in one step is `ticket.created` then `ticket.offered`. A public event's id is the
//! entry's id and its index within the entry, `<ms>-<seq>-<n>` ([`EventId`]): the same on every
//! retry of a webhook, and what `Last-Event-ID` resumes after. Its `data` is built by the
//! dispatcher from the ticket as it stands (the event says what is not in the ticket: the
//! offer, the reason, the status it moved to).

use serde::{Deserialize, Serialize};

use super::{Event, StreamEvent, StreamId};
use crate::domain::TicketStatus;

/// A public event type (API.md §9's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Topic {
    /// `ticket.created`.
    #[serde(rename = "ticket.created")]
    TicketCreated,
    /// `ticket.queued`.
    #[serde(rename = "ticket.queued")]
    TicketQueued,
    /// `ticket.offered`.
    #[serde(rename = "ticket.offered")]
    TicketOffered,
    /// `ticket.assigned`.
    #[serde(rename = "ticket.assigned")]
    TicketAssigned,
    /// `ticket.requeued`.
    #[serde(rename = "ticket.requeued")]
    TicketRequeued,
    /// `ticket.completed`.
    #[serde(rename = "ticket.completed")]
    TicketCompleted,
    /// `ticket.cancelled`.
    #[serde(rename = "ticket.cancelled")]
    TicketCancelled,
    /// `agent.status_changed`.
    #[serde(rename = "agent.status_changed")]
    AgentStatusChanged,
    /// `shift.ended`.
    #[serde(rename = "shift.ended")]
    ShiftEnded,
}

impl Topic {
    /// Every type.
    pub const ALL: [Topic; 9] = [
        Self::TicketCreated,
        Self::TicketQueued,
        Self::TicketOffered,
        Self::TicketAssigned,
        Self::TicketRequeued,
        Self::TicketCompleted,
        Self::TicketCancelled,
        Self::AgentStatusChanged,
        Self::ShiftEnded,
    ];

    /// Its name, `ticket.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TicketCreated => "ticket.created",
            Self::TicketQueued => "ticket.queued",
            Self::TicketOffered => "ticket.offered",
            Self::TicketAssigned => "ticket.assigned",
            Self::TicketRequeued => "ticket.requeued",
            Self::TicketCompleted => "ticket.completed",
            Self::TicketCancelled => "ticket.cancelled",
            Self::AgentStatusChanged => "agent.status_changed",
            Self::ShiftEnded => "shift.ended",
        }
    }

    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// The status a ticket event leaves its ticket in (`None` for other events, and for a
    /// creation, whose status depends on what followed it).
    pub fn ticket_status(self) -> Option<TicketStatus> {
        Some(match self {
            Self::TicketQueued | Self::TicketRequeued => TicketStatus::Queued,
            Self::TicketOffered => TicketStatus::Offered,
            Self::TicketAssigned => TicketStatus::Assigned,
            Self::TicketCompleted => TicketStatus::Completed,
            Self::TicketCancelled => TicketStatus::Cancelled,
            Self::TicketCreated | Self::AgentStatusChanged | Self::ShiftEnded => return None,
        })
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which types a subscriber wants: names, `*` for all, or `ticket.*` for a family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicFilter {
    patterns: Vec<String>,
}

impl TopicFilter {
    /// Every type.
    pub fn all() -> Self {
        Self {
            patterns: vec!["*".into()],
        }
    }

    /// A filter of `patterns`; an error names the first that matches no type.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(patterns.len());
        for p in patterns {
            let p = p.as_ref().trim();
            if !Topic::ALL.iter().any(|t| matches(p, *t)) {
                let known: Vec<&str> = Topic::ALL.iter().map(|t| t.as_str()).collect();
                return Err(format!(
                    "unknown event type {p:?}: expected `*`, a family such as `ticket.*`, or one of {}",
                    known.join(", ")
                ));
            }
            out.push(p.to_owned());
        }
        Ok(Self { patterns: out })
    }

    /// Whether `topic` is wanted.
    pub fn wants(&self, topic: Topic) -> bool {
        self.patterns.iter().any(|p| matches(p, topic))
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

fn matches(pattern: &str, topic: Topic) -> bool {
    match pattern.strip_suffix(".*") {
        _ if pattern == "*" => true,
        Some(family) => topic.as_str().split('.').next() == Some(family),
        None => pattern == topic.as_str(),
    }
}

/// A public event's id: its stream entry and its place among that entry's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// The entry.
    pub entry: StreamId,
    /// Its place, from 0.
    pub n: u8,
}

impl EventId {
    /// Parses `<ms>-<seq>-<n>`.
    pub fn parse(id: &str) -> Option<Self> {
        let (entry, n) = id.rsplit_once('-')?;
        Some(Self {
            entry: StreamId::parse(entry)?,
            n: n.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.entry, self.n)
    }
}

/// What a public event is about, so its `data` can be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A ticket: `data` is the ticket, with `status` set to `status` and `extra` added.
    Ticket {
        /// The ticket.
        ticket: String,
        /// The status the event left it in.
        status: TicketStatus,
        /// Fields added to the ticket (the offer, the reason).
        extra: serde_json::Map<String, serde_json::Value>,
        /// The agent whose `agent_id` and `display_name` go in `agent` (`ticket.assigned`).
        agent: Option<String>,
    },
    /// `data` is complete as it is.
    Complete(serde_json::Value),
}

impl Subject {
    /// What orders deliveries: the events of one ticket (or one agent) keep their order.
    pub fn order_key(&self) -> String {
        match self {
            Self::Ticket { ticket, .. } => format!("t:{ticket}"),
            Self::Complete(data) => match data.get("agent_id").and_then(|a| a.as_str()) {
                Some(agent) => format!("a:{agent}"),
                None => String::from("-"),
            },
        }
    }
}

/// One public event before its `data` is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// Its id.
    pub id: EventId,
    /// Its type.
    pub topic: Topic,
    /// When it happened, ms.
    pub ts: i64,
    /// What it is about.
    pub subject: Subject,
}

fn ticket(
    ticket: &str,
    status: TicketStatus,
    extra: &[(&str, serde_json::Value)],
) -> (
    String,
    TicketStatus,
    serde_json::Map<String, serde_json::Value>,
) {
    let extra = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    (ticket.to_owned(), status, extra)
}

fn rfc3339_ms(ms: i64) -> serde_json::Value {
    serde_json::to_value(crate::domain::Timestamp::from_millis(ms)).unwrap_or_default()
}

fn offered(ticket_id: &str, agent: &str, offer: &str, expires: i64) -> (Topic, Subject) {
    let (ticket, status, extra) = ticket(
        ticket_id,
        TicketStatus::Offered,
        &[
            ("offer_id", offer.into()),
            ("agent_id", agent.into()),
            ("expires_at", rfc3339_ms(expires)),
        ],
    );
    (
        Topic::TicketOffered,
        Subject::Ticket {
            ticket,
            status,
            extra,
            agent: None,
        },
    )
}

fn of_ticket(
    topic: Topic,
    ticket_id: &str,
    extra: &[(&str, serde_json::Value)],
) -> (Topic, Subject) {
    let status = topic.ticket_status().unwrap_or(TicketStatus::Queued);
    let (ticket, status, extra) = ticket(ticket_id, status, extra);
    (
        topic,
        Subject::Ticket {
            ticket,
            status,
            extra,
            agent: None,
        },
    )
}

fn requeued(ticket_id: &str, reason: &str) -> (Topic, Subject) {
    of_ticket(
        Topic::TicketRequeued,
        ticket_id,
        &[("reason", reason.into())],
    )
}

/// The public events of stream entry `e`, in the order they happened (none for the entries
/// only the ledger reads).
pub fn announcements(e: &StreamEvent) -> Vec<Announcement> {
    let parts: Vec<(Topic, Subject)> = match &e.event {
        Event::TicketCreated {
            ticket,
            agent,
            offer,
            expires,
            queued,
            ..
        } => {
            let first = if offer.is_empty() {
                TicketStatus::Queued
            } else {
                TicketStatus::Offered
            };
            let mut out = vec![(
                Topic::TicketCreated,
                Subject::Ticket {
                    ticket: ticket.clone(),
                    status: first,
                    extra: Default::default(),
                    agent: None,
                },
            )];
            if !offer.is_empty() {
                out.push(offered(ticket, agent, offer, expires.unwrap_or(e.ts)));
            } else if *queued {
                out.push(of_ticket(Topic::TicketQueued, ticket, &[]));
            }
            out
        }
        Event::TicketQueued { ticket } => vec![of_ticket(Topic::TicketQueued, ticket, &[])],
        Event::OfferCreated {
            ticket,
            agent,
            offer,
            expires,
        } => vec![offered(ticket, agent, offer, *expires)],
        Event::OfferDeclined { ticket, .. } => vec![requeued(ticket, "declined")],
        Event::OfferExpired { ticket, .. } => vec![requeued(ticket, "expired")],
        Event::OfferWithdrawn { ticket, .. } | Event::TicketRequeued { ticket, .. } => {
            vec![requeued(ticket, "agent_gone")]
        }
        Event::TicketAssigned { ticket, agent, .. } => {
            let (topic, mut subject) = of_ticket(Topic::TicketAssigned, ticket, &[]);
            if let Subject::Ticket { agent: a, .. } = &mut subject {
                *a = Some(agent.clone());
            }
            vec![(topic, subject)]
        }
        Event::TicketCompleted { ticket, .. } => {
            vec![of_ticket(Topic::TicketCompleted, ticket, &[])]
        }
        Event::TicketCancelled { ticket, .. } => {
            vec![of_ticket(Topic::TicketCancelled, ticket, &[])]
        }
        Event::AgentStatus {
            agent,
            status,
            reason,
            ..
        } => vec![(
            Topic::AgentStatusChanged,
            Subject::Complete(serde_json::json!({
                "agent_id": agent,
                "status": status,
                "reason": reason,
            })),
        )],
        Event::ShiftRecorded { row, .. } => match serde_json::from_str(row) {
            Ok(data) => vec![(Topic::ShiftEnded, Subject::Complete(data))],
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(n, (topic, subject))| Announcement {
            id: EventId {
                entry: e.id,
                n: u8::try_from(n).unwrap_or(u8::MAX),
            },
            topic,
            ts: e.ts,
            subject,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_names_families_and_everything() {
        let f = TopicFilter::new(&["ticket.*", "shift.ended"]).expect("valid");
        assert!(f.wants(Topic::TicketAssigned));
        assert!(f.wants(Topic::ShiftEnded));
        assert!(!f.wants(Topic::AgentStatusChanged));
        assert!(TopicFilter::all().wants(Topic::AgentStatusChanged));
        let e = TopicFilter::new(&["ticket.assigned", "ticket.nope"]).expect_err("unknown");
        assert!(e.contains("ticket.nope"), "{e}");
        assert!(TopicFilter::new(&["tick.*"]).is_err());
        assert!(TopicFilter::new(&["ticket"]).is_err());
    }

    #[test]
    fn event_ids_round_trip() {
        let id = EventId {
            entry: StreamId { ms: 17, seq: 3 },
            n: 1,
        };
        assert_eq!(id.to_string(), "17-3-1");
        assert_eq!(EventId::parse("17-3-1"), Some(id));
        assert_eq!(EventId::parse("17-3"), None);
        assert_eq!(EventId::parse("x"), None);
    }

    #[test]
    fn a_creation_offered_at_once_is_two_events_in_order() {
        let e = StreamEvent {
            id: StreamId { ms: 5, seq: 0 },
            ts: 5,
            event: Event::TicketCreated {
                ticket: "t-1".into(),
                language: "sv".into(),
                priority: 5,
                agent: "a-1".into(),
                offer: "o-1".into(),
                expires: Some(20_005),
                queued: false,
            },
        };
        let out = announcements(&e);
        let topics: Vec<Topic> = out.iter().map(|a| a.topic).collect();
        assert_eq!(topics, [Topic::TicketCreated, Topic::TicketOffered]);
        assert_eq!(out[1].id.to_string(), "5-0-1");
        let Subject::Ticket { status, extra, .. } = &out[1].subject else {
            panic!("a ticket event");
        };
        assert_eq!(*status, TicketStatus::Offered);
        assert_eq!(extra["agent_id"], "a-1");
        assert_eq!(extra["offer_id"], "o-1");
    }
}
