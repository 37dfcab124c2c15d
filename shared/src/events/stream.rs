//! The stream's entries: their ids, and reading an entry into an [`Event`] (and back).

use std::collections::HashMap;

use super::{Event, EventKind};

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

/// A stream entry as the redis crate reads it: its id (`None` if unreadable) and its fields as
/// strings.
pub fn entry_fields(
    entry: &redis::streams::StreamId,
) -> (Option<StreamId>, HashMap<String, String>) {
    let fields = entry
        .map
        .iter()
        .filter_map(|(k, v)| {
            redis::from_redis_value_ref::<String>(v)
                .ok()
                .map(|v| (k.clone(), v))
        })
        .collect();
    (StreamId::parse(&entry.id), fields)
}

impl StreamEvent {
    /// Reads an entry as the redis crate returns it (`XRANGE`, `XREAD`); `None` if its id is
    /// unreadable.
    pub fn from_entry(entry: &redis::streams::StreamId) -> Option<Result<Self, EventError>> {
        let (id, fields) = entry_fields(entry);
        Some(Self::parse(id?, &fields))
    }

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
    use crate::events::ShiftEndReason;

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
                queued: false,
            }
        );
        assert_eq!(e.event.agent(), Some("a-1"));
        assert_eq!(e.to_fields(), offered);
        let mut queued = parked.clone();
        queued.extend(fields(&[("queued", "1")]));
        let e = StreamEvent::parse(id, &queued).expect("a creation parked at once");
        assert!(matches!(
            &e.event,
            Event::TicketCreated { queued: true, .. }
        ));
        assert_eq!(e.to_fields(), queued);
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
