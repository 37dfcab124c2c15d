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

/// One agent that may be the best for a ticket, with what the choice policy orders by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The agent.
    pub agent_id: String,
    /// Tickets it holds.
    pub active: u32,
    /// Its last assignment (or going available), ms.
    pub idle_since: i64,
    /// Its summed level over the ticket's skills.
    pub summed_level: u32,
    /// Whether it is the ticket's preferred agent.
    pub preferred: bool,
}

/// A page of candidates and where to continue, if the index holds more to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidatePage {
    /// Candidates found on this page.
    pub candidates: Vec<Candidate>,
    /// The offset of the next page, if the page ended before an eligible agent was found.
    pub next_offset: Option<u64>,
}

impl CandidatePage {
    /// Parses `[next offset, id, active, idle_since, summed level, preferred, ...]`.
    fn parse(function: &str, words: &[String]) -> Result<Self, StoreError> {
        let next: i64 = num(function, words, 0)?;
        let mut candidates = Vec::new();
        let records = words.get(1..).unwrap_or_default();
        if !records.len().is_multiple_of(5) {
            return Err(corrupt(function, "a short candidate record"));
        }
        for (i, c) in records.chunks(5).enumerate() {
            let at = |j: usize| 1 + 5 * i + j;
            candidates.push(Candidate {
                agent_id: c[0].clone(),
                active: num(function, words, at(1))?,
                idle_since: num(function, words, at(2))?,
                summed_level: num(function, words, at(3))?,
                preferred: c[4] == "1",
            });
        }
        Ok(CandidatePage {
            candidates,
            next_offset: u64::try_from(next).ok(),
        })
    }
}

/// `candidates`: a page, or `None` when the ticket is no longer queued.
impl FromReply for Option<CandidatePage> {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        match first(function, &words, &["candidates", "not_queued"])? {
            "candidates" => CandidatePage::parse(function, &words[1..]).map(Some),
            _ => Ok(None),
        }
    }
}

/// What `create_ticket` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreatedTicket {
    /// A new ticket, created at `created_ms` (Redis's clock), with the first page of its
    /// candidates: route it (`Matcher::route_created`). An empty page that ends the index means
    /// no agent can take it now, and it waits in its queue.
    Created {
        /// The ticket.
        id: String,
        /// When it was created, ms.
        created_ms: i64,
        /// Its first page of candidates.
        page: CandidatePage,
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
            page: CandidatePage::parse(function, words.get(3..).unwrap_or_default())?,
        })
    }
}

/// What `offer_ticket` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// The offer was made; it lapses at `expires_ms`.
    Offered {
        /// Its deadline, ms.
        expires_ms: i64,
    },
    /// The ticket is no longer queued (offered, assigned or ended meanwhile).
    TicketNotQueued,
    /// The agent is no longer free for it.
    AgentNotEligible,
}

impl FromReply for OfferOutcome {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        Ok(
            match first(
                function,
                &words,
                &["offered", "ticket_not_queued", "agent_not_eligible"],
            )? {
                "offered" => OfferOutcome::Offered {
                    expires_ms: num(function, &words, 1)?,
                },
                "ticket_not_queued" => OfferOutcome::TicketNotQueued,
                _ => OfferOutcome::AgentNotEligible,
            },
        )
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
        let page = Option::<CandidatePage>::from_reply(
            "candidates",
            w(&["candidates", "-1", "a-1", "0", "1700", "4", "1"]),
        )
        .expect("a page")
        .expect("queued");
        assert_eq!(page.next_offset, None);
        assert_eq!(page.candidates[0].agent_id, "a-1");
        assert!(page.candidates[0].preferred);
        assert_eq!(
            OfferOutcome::from_reply("f", w(&["offered", "123"])).ok(),
            Some(OfferOutcome::Offered { expires_ms: 123 })
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
        assert!(Option::<CandidatePage>::from_reply(
            "candidates",
            w(&["candidates", "-1", "a-1", "0"])
        )
        .is_err());
        assert!(StatusNow::from_reply("f", w(&["ok", "dancing", ""])).is_err());
    }
}
