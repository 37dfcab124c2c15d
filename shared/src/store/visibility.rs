//! Queue visibility (API.md §8): a queued ticket's place, and each language's queue figures,
//! read by functions of the library (`src/lua/queues.lua`), never by scanning the pool.

use super::reply::{FromReply, Ids};
use super::{Function, Store, StoreError};
use crate::domain::TicketId;

/// One language's queue, as `queue_overview` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFigures {
    /// The language.
    pub language: String,
    /// Tickets waiting for a freed agent.
    pub waiting: u64,
    /// When the longest waiting one was created, ms.
    pub oldest_created_ms: Option<i64>,
    /// Agents who could take an offer now.
    pub agents_available: u64,
    /// The place a new ticket of priority 5 with no skills would have.
    pub new_position: u64,
}

/// `ok`, position; or `none`.
struct Position(Option<u64>);

impl FromReply for Position {
    fn from_reply(function: &str, words: Vec<String>) -> Result<Self, StoreError> {
        match (words.first().map(String::as_str), words.get(1)) {
            (Some("none"), _) => Ok(Position(None)),
            (Some("ok"), Some(n)) => n
                .parse()
                .map(|n| Position(Some(n)))
                .map_err(|_| StoreError::Corrupt(format!("{function}: position {n:?}"))),
            other => Err(StoreError::Corrupt(format!("{function}: {other:?}"))),
        }
    }
}

impl Store {
    /// The ticket's place while it is queued (`None` otherwise).
    pub async fn queue_position(&self, id: &TicketId) -> Result<Option<u64>, StoreError> {
        let Position(p) = self.call(Function::QueuePosition, &[id.as_str()]).await?;
        Ok(p)
    }

    /// The figures of `languages` and of every language with waiting tickets.
    pub async fn queue_overview(
        &self,
        languages: &[String],
    ) -> Result<Vec<QueueFigures>, StoreError> {
        let args: Vec<&str> = languages.iter().map(String::as_str).collect();
        let Ids(words) = self.call(Function::QueueOverview, &args).await?;
        let bad = || StoreError::Corrupt("queue_overview: a malformed entry".into());
        words
            .chunks(5)
            .map(|w| {
                let [language, waiting, oldest, available, position] = w else {
                    return Err(bad());
                };
                Ok(QueueFigures {
                    language: language.clone(),
                    waiting: waiting.parse().map_err(|_| bad())?,
                    oldest_created_ms: oldest.parse().ok(),
                    agents_available: available.parse().map_err(|_| bad())?,
                    new_position: position.parse().map_err(|_| bad())?,
                })
            })
            .collect()
    }
}
