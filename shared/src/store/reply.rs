//! The typed boundary of the function library: each function's reply, parsed into a Rust type.
//!
//! A reply is an array of words (see `src/lua/util.lua`). [`super::Store::call`] turns a refusal
//! (`error`, code) into [`StoreError::Rejected`] and hands the rest to the [`FromReply`] of the
//! type the caller asks for, which checks the success word and parses the data; anything else is
//! [`StoreError::Corrupt`], never a silent default.

use super::read::{assigned_frame, pairs};
use super::StoreError;
use crate::domain::AgentStatus;
use crate::protocol::AssignedFrame;

/// A type a function's reply parses into.
pub trait FromReply: Sized {
    /// Parses the words of a successful reply of `function`.
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError>;
}

fn corrupt(function: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{function}: {what}"))
}

/// Parses word `i` as a number.
fn num<T: std::str::FromStr>(function: &str, words: &[String], i: usize) -> Result<T, StoreError> {
    words.get(i).and_then(|s| s.parse().ok()).ok_or_else(|| {
        corrupt(
            function,
            format!("word {i} is not a number: {:?}", words.get(i)),
        )
    })
}

/// Checks that the reply begins with one of `expected`; returns it.
fn first<'a>(
    function: &str,
    words: &'a [String],
    expected: &[&str],
) -> Result<&'a str, StoreError> {
    match words.first() {
        Some(w) if expected.contains(&w.as_str()) => Ok(w),
        other => Err(corrupt(
            function,
            format!("expected {expected:?}, got {other:?}"),
        )),
    }
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// `ok` and nothing else worth reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done;

impl FromReply for Done {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"]).map(|_| Done)
    }
}

/// `ok`, then a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub u32);

impl FromReply for Count {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        num(function, &words, 1).map(Count)
    }
}

/// What `expire_offers` did: `ok`, how many offers lapsed, how many deadlines were due (the
/// lapsed ones and those of offers answered before, which are only dropped), then the offers
/// whose lapse failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Offers that lapsed.
    pub lapsed: u32,
    /// Deadlines handled: a call that handled as many as it was allowed may have left more.
    pub due: u32,
    /// Those that failed, tried again in 5 s; the others lapsed all the same.
    pub failed: Vec<Failed>,
}

impl FromReply for Expired {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        Ok(Expired {
            lapsed: num(function, &words, 1)?,
            due: num(function, &words, 2)?,
            failed: failures(function, &words[3..])?,
        })
    }
}

/// What `expire_grace` did: `ok`, how many grace periods were due, then those whose shift could
/// not be ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraceEnded {
    /// Grace periods handled: a call that handled as many as it was allowed may have left more.
    pub due: u32,
    /// Those that failed, tried again in 5 s; the others ended all the same.
    pub failed: Vec<Failed>,
}

impl FromReply for GraceEnded {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        Ok(GraceEnded {
            due: num(function, &words, 1)?,
            failed: failures(function, &words[2..])?,
        })
    }
}

/// A due entry a timer could not handle (`Timer.guarded` in src/lua/timers.lua): a bug, or data
/// that no build should have written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// The offer or agent.
    pub id: String,
    /// The error Redis raised.
    pub error: String,
}

/// The (id, error) pairs that end a timer's reply.
fn failures(function: &str, words: &[String]) -> Result<Vec<Failed>, StoreError> {
    if !words.len().is_multiple_of(2) {
        return Err(corrupt(function, "an id without its error"));
    }
    Ok(words
        .chunks(2)
        .map(|pair| Failed {
            id: pair[0].clone(),
            error: pair[1].clone(),
        })
        .collect())
}

/// `ok`, then ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids(pub Vec<String>);

impl FromReply for Ids {
    fn from_reply(function: &str, mut words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        Ok(Ids(words.split_off(1)))
    }
}

/// What `sweep` did: where to go on, and how many offers it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// The free-index entry to continue from (0: the index ended).
    pub next_offset: u64,
    /// Offers made.
    pub offers: u32,
}

impl FromReply for Swept {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        Ok(Swept {
            next_offset: num(function, &words, 1)?,
            offers: num(function, &words, 2)?,
        })
    }
}

/// What `put_agent` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// A new profile.
    Created,
    /// A profile replaced.
    Updated,
}

impl FromReply for Upserted {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        Ok(match first(function, &words, &["created", "updated"])? {
            "created" => Upserted::Created,
            _ => Upserted::Updated,
        })
    }
}

/// Whether `lease` left the lease with the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// The caller holds it now.
    Ours,
    /// Another holder does.
    Held,
}

impl FromReply for LeaseState {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        Ok(match first(function, &words, &["ok", "held"])? {
            "ok" => LeaseState::Ours,
            _ => LeaseState::Held,
        })
    }
}

/// What routing a queued ticket did (`route_ticket`, and `create_ticket` for a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Offered to the best eligible agent, until `expires_ms`.
    Offered {
        /// The agent.
        agent: String,
        /// The offer's deadline, ms.
        expires_ms: i64,
        /// The offer.
        offer: String,
    },
    /// Nobody can take it now: it waits in its queues for a freed agent.
    Parked,
    /// Nobody eligible among the index entries looked at: route again from `next_offset`.
    More {
        /// Where to go on in the free index.
        next_offset: u64,
    },
    /// The ticket is no longer queued (offered, assigned or ended meanwhile).
    NotQueued,
}

impl Routed {
    /// Parses the words of a routing reply, from its first.
    fn parse(function: &str, words: &[String]) -> Result<Self, StoreError> {
        Ok(
            match first(
                function,
                words,
                &["offered", "parked", "more", "not_queued"],
            )? {
                "offered" => Routed::Offered {
                    agent: words
                        .get(1)
                        .cloned()
                        .ok_or_else(|| corrupt(function, "no agent"))?,
                    expires_ms: num(function, words, 2)?,
                    offer: words
                        .get(3)
                        .cloned()
                        .ok_or_else(|| corrupt(function, "no offer id"))?,
                },
                "parked" => Routed::Parked,
                "more" => Routed::More {
                    next_offset: num(function, words, 1)?,
                },
                _ => Routed::NotQueued,
            },
        )
    }
}

impl FromReply for Routed {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        Routed::parse(function, &words)
    }
}

/// What `create_ticket` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedTicket {
    /// A new ticket, created at `created_ms` (Redis's clock), and routed in the same call.
    Created {
        /// The ticket.
        id: String,
        /// When it was created, ms.
        created_ms: i64,
        /// Offered, parked, or (rarely) still to route from an offset.
        routed: Routed,
    },
    /// The ticket an earlier request with the same `Idempotency-Key` and body created.
    Existing(String),
}

impl FromReply for CreatedTicket {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        let word = first(function, &words, &["created", "existing"])?;
        let id = words
            .get(1)
            .cloned()
            .ok_or_else(|| corrupt(function, "no ticket id"))?;
        if word == "existing" {
            return Ok(CreatedTicket::Existing(id));
        }
        Ok(CreatedTicket::Created {
            id,
            created_ms: num(function, &words, 2)?,
            routed: Routed::parse(function, words.get(3..).unwrap_or_default())?,
        })
    }
}

/// `accept`: the ticket now assigned, as its agent's `assigned` frame.
impl FromReply for AssignedFrame {
    fn from_reply(function: &str, mut words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        if words.len() < 2 || !words.len().is_multiple_of(2) {
            return Err(corrupt(function, "no ticket, or an odd field list"));
        }
        let fields = words.split_off(2);
        Ok(assigned_frame(&words[1], &pairs(fields)))
    }
}

/// `set_status`: the agent's status and shift now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusNow {
    /// Status now.
    pub status: AgentStatus,
    /// Shift now.
    pub shift_id: Option<String>,
}

impl FromReply for StatusNow {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        let status = words
            .get(1)
            .and_then(|s| AgentStatus::parse(s))
            .ok_or_else(|| corrupt(function, format!("no status: {:?}", words.get(1))))?;
        Ok(StatusNow {
            status,
            shift_id: non_empty(words.get(2)),
        })
    }
}

/// What `connect` tells the gateway about the agent, to build its `welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectReply {
    /// Status now.
    pub status: AgentStatus,
    /// Shift now.
    pub shift_id: Option<String>,
    /// Pending offer.
    pub offer_id: Option<String>,
    /// Tickets held.
    pub tickets: Vec<String>,
}

impl FromReply for ConnectReply {
    fn from_reply(function: &str, mut words: Vec<String>) -> Result<Self, StoreError> {
        first(function, &words, &["ok"])?;
        if words.len() < 4 {
            return Err(corrupt(function, "a short reply"));
        }
        let tickets = words.split_off(4);
        let status = AgentStatus::parse(&words[1])
            .ok_or_else(|| corrupt(function, format!("no status: {:?}", words[1])))?;
        Ok(ConnectReply {
            status,
            shift_id: non_empty(words.get(2)),
            offer_id: non_empty(words.get(3)),
            tickets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn replies_parse_into_their_types() {
        assert_eq!(Count::from_reply("f", w(&["ok", "7"])).ok(), Some(Count(7)));
        assert_eq!(
            Upserted::from_reply("f", w(&["created"])).ok(),
            Some(Upserted::Created)
        );
        assert_eq!(
            CreatedTicket::from_reply(
                "f",
                w(&["created", "t-1", "17", "offered", "a-1", "123", "o-1"])
            )
            .ok(),
            Some(CreatedTicket::Created {
                id: "t-1".into(),
                created_ms: 17,
                routed: Routed::Offered {
                    agent: "a-1".into(),
                    expires_ms: 123,
                    offer: "o-1".into()
                }
            })
        );
        assert_eq!(
            Routed::from_reply("f", w(&["more", "256"])).ok(),
            Some(Routed::More { next_offset: 256 })
        );
        let c = ConnectReply::from_reply("f", w(&["ok", "break", "s-1", "", "t-1", "t-2"]))
            .expect("a connect reply");
        assert_eq!(c.offer_id, None);
        assert_eq!(c.tickets, w(&["t-1", "t-2"]));
    }

    #[test]
    fn an_unexpected_reply_is_corrupt_not_a_default() {
        for words in [w(&[]), w(&["okay"]), w(&["ok", "x"])] {
            assert!(matches!(
                Count::from_reply("f", words),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert!(Routed::from_reply("f", w(&["offered", "a-1", "123"])).is_err());
        assert!(CreatedTicket::from_reply("f", w(&["created", "t-1", "17", "queued"])).is_err());
        assert!(StatusNow::from_reply("f", w(&["ok", "dancing", ""])).is_err());
    }
}
