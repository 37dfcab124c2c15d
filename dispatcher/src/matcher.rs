//! Matching: putting a ticket that needs an agent with the best eligible agent (API.md §5).
//!
//! Most matching happens inside the transitions themselves (`shared/src/lua/`): a
//! transition that frees an agent offers it the best waiting ticket in the same atomic step. What
//! is left here is the other direction, which needs the choice policy ([`crate::policy`]): a
//! ticket that needs an agent is "routing" until [`Matcher::route_ticket`] has read its
//! candidates (step 1, one function call), chosen the best and offered it (step 2); with no
//! eligible agent the ticket is parked in its queue by step 1 itself.
//!
//! Who routes:
//! - a new ticket, the request that created it ([`Matcher::route_created`]: its first page of
//!   candidates comes with the creation, so a match costs two Redis calls);
//! - a ticket that comes back (declined, lapsed, withdrawn, requeued), whichever dispatcher pops it
//!   from the namespace's `routeq` list ([`Matcher::run`]);
//! - a routing ticket nobody finished with (its dispatcher died), the timers after
//!   [`STALE_ROUTING`] ([`Matcher::recover_stale`]).
//!
//! Routing is idempotent and safe to race: the offer is made only if ticket and agent are both
//! still free, in one atomic call, so two dispatchers routing one ticket offer it once.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use shared::domain::OfferId;
use shared::store::{Candidate, CandidatePage, OfferOutcome, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::policy;

/// How many index entries one `candidates` call looks at.
pub const PAGE: u64 = 256;
/// How often a lost race for an agent is retried with fresh candidates.
const ATTEMPTS: usize = 4;
/// How long a ticket may stay routing before another dispatcher routes it (its own died).
pub const STALE_ROUTING: Duration = Duration::from_secs(2);
/// How many routing tasks each dispatcher runs, each popping `routeq` on its own connection.
pub const ROUTERS: usize = 2;

/// Offers tickets to agents.
#[derive(Debug, Clone)]
pub struct Matcher {
    store: Store,
}

impl Matcher {
    /// A matcher making offers that last as long as the store's offer timeout.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The store it matches in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Offers a queued ticket to the best eligible agent, if there is one (else the ticket waits
    /// in its queue). Returns the agent offered to.
    pub async fn route_ticket(&self, ticket: &str) -> Result<Option<String>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(candidates) = self.candidates(ticket, None).await? else {
                return Ok(None);
            };
            if let Some(agent) = self.offer_best(ticket, &candidates).await? {
                return Ok(Some(agent));
            }
            if candidates.is_empty() {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Routes a ticket just created, starting from the candidates its creation returned.
    /// Returns the agent offered to.
    pub async fn route_created(
        &self,
        ticket: &str,
        first: CandidatePage,
    ) -> Result<Option<String>, StoreError> {
        let Some(candidates) = self.candidates(ticket, Some(first)).await? else {
            return Ok(None);
        };
        if let Some(agent) = self.offer_best(ticket, &candidates).await? {
            return Ok(Some(agent));
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        // The best agent was taken meanwhile: try again with fresh candidates.
        self.route_ticket(ticket).await
    }

    /// Offers the ticket to the best of `candidates`; the agent, if the offer was made.
    async fn offer_best(
        &self,
        ticket: &str,
        candidates: &[Candidate],
    ) -> Result<Option<String>, StoreError> {
        let Some(best) = policy::choose(candidates) else {
            return Ok(None);
        };
        let offer = OfferId::generate();
        match self
            .store
            .offer_ticket(ticket, &best.agent_id, &offer)
            .await?
        {
            OfferOutcome::Offered { .. } => {
                tracing::debug!(ticket, agent = %best.agent_id, offer = %offer, "offered");
                Ok(Some(best.agent_id.clone()))
            }
            OfferOutcome::TicketNotQueued | OfferOutcome::AgentNotEligible => Ok(None),
        }
    }

    /// The candidates for a queued ticket, from `first` if given (`None` if it is not queued
    /// any more): pages are read until one holds a candidate or the index ends.
    async fn candidates(
        &self,
        ticket: &str,
        first: Option<CandidatePage>,
    ) -> Result<Option<Vec<Candidate>>, StoreError> {
        let mut page = match first {
            Some(page) => page,
            None => match self.store.candidates(ticket, 0, PAGE).await? {
                Some(page) => page,
                None => return Ok(None),
            },
        };
        loop {
            match page.next_offset {
                Some(next) if page.candidates.is_empty() => {
                    page = match self.store.candidates(ticket, next, PAGE).await? {
                        Some(page) => page,
                        None => return Ok(None),
                    };
                }
                _ => return Ok(Some(page.candidates)),
            }
        }
    }

    /// One step of the queue sweep, a safety net: in every language with waiting tickets,
    /// `per_language` free agents, from where the last step stopped (`cursors`), are each offered
    /// the best waiting ticket they may take. Every transition that frees an agent already does
    /// this, so a sweep that makes an offer found a lost wake-up (it is logged). Returns the
    /// offers made.
    pub async fn sweep_queues(
        &self,
        cursors: &mut HashMap<String, u64>,
        per_language: u32,
    ) -> Result<u32, StoreError> {
        let mut conn = self.store.conn();
        let languages: Vec<String> = conn.smembers(self.store.keys().queues()).await?;
        cursors.retain(|lang, _| languages.contains(lang));
        let mut made = 0;
        for lang in languages {
            let at = cursors.get(&lang).copied().unwrap_or(0);
            let (next, offers) = self.store.sweep(&lang, at, per_language).await?;
            cursors.insert(lang.clone(), next);
            if offers > 0 {
                tracing::warn!(language = %lang, offers, "the queue sweep found waiting tickets a free agent could take");
            }
            made += offers;
        }
        Ok(made)
    }

    /// Routes the tickets left routing by a dispatcher that died.
    pub async fn recover_stale(&self) -> Result<usize, StoreError> {
        let stale = self.store.stale_routing(100, STALE_ROUTING).await?;
        for ticket in &stale {
            tracing::info!(
                ticket,
                "routing a ticket another dispatcher left unfinished"
            );
            self.route_ticket(ticket).await?;
        }
        Ok(stale.len())
    }

    /// Routes the tickets the namespace's `routeq` asks for until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "routing queue consumer failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        // A connection of its own: a blocking pop would hold up the shared one.
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let mut conn = self
            .store
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let queue = self.store.keys().route_queue();
        while !shutdown.is_cancelled() {
            // A ticket popped and then lost with this process stays routing, and
            // `recover_stale` routes it.
            let popped: Option<(String, String)> = conn.brpop(&queue, 1.0).await?;
            let Some((_, ticket)) = popped else {
                continue;
            };
            match self.route_ticket(&ticket).await {
                Ok(_) => {}
                Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
                Err(e) => tracing::error!(ticket, error = %e, "ticket could not be routed"),
            }
        }
        Ok(())
    }
}
