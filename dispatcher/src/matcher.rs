//! Matching: putting a ticket that needs an agent with the best eligible agent (API.md §5).
//!
//! Matching happens inside the transitions themselves (`shared/src/lua/`), each one atomic
//! call: a transition that frees an agent offers it the best waiting ticket, and a ticket that
//! needs an agent is offered to the agent the choice policy picks in the call that reserves it
//! (`Match.route`; [`crate::policy`] is the same policy in Rust, the tests' oracle). With no
//! eligible agent the ticket is parked in its queues by that call.
//!
//! Who routes:
//! - a new ticket, its creation itself (one Redis call for the match);
//! - a ticket that comes back (declined, lapsed, withdrawn, requeued), whichever dispatcher pops it
//!   from the namespace's `routeq` list ([`Matcher::run`]);
//! - a routing ticket nobody finished with (its dispatcher died), the timers after
//!   [`STALE_ROUTING`] ([`Matcher::recover_stale`]).
//!
//! Routing is idempotent and safe to race: choice and offer are one atomic call, so two
//! dispatchers routing one ticket offer it once, and neither retries.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use shared::store::{Routed, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// How many free-index entries one routing call looks at while it finds nobody eligible (a
/// ticket whose creation looked at that many goes on with [`Matcher::route_created`]).
pub const PAGE: u64 = 256;
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
    /// in its queues). Returns the agent offered to.
    pub async fn route_ticket(&self, ticket: &str) -> Result<Option<String>, StoreError> {
        self.route_created(ticket, Routed::More { next_offset: 0 })
            .await
    }

    /// Finishes routing a ticket from what its last routing call did (for a ticket just
    /// created, its creation, which looked at the first [`PAGE`] entries of the free index): a
    /// page of the index per call until it is offered or parked. Returns the agent offered to.
    pub async fn route_created(
        &self,
        ticket: &str,
        mut routed: Routed,
    ) -> Result<Option<String>, StoreError> {
        loop {
            match routed {
                Routed::Offered { agent, .. } => {
                    tracing::debug!(ticket, agent, "offered");
                    return Ok(Some(agent));
                }
                Routed::Parked | Routed::NotQueued => return Ok(None),
                Routed::More { next_offset } => {
                    routed = self.store.route_ticket(ticket, next_offset, PAGE).await?;
                }
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
        let failed = |e: &StoreError| self.store.connection_failed(e);
        crate::supervise::restarting("routing queue consumer", &shutdown, failed, || {
            self.consume(&shutdown)
        })
        .await;
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), StoreError> {
        // A connection of its own: a blocking pop would hold up the shared one.
        let mut conn = self.store.dedicated();
        let queue = self.store.keys().route_queue();
        while !shutdown.is_cancelled() {
            // A ticket popped and then lost with this process stays routing, and
            // `recover_stale` routes it.
            let popped: Option<(String, String)> = conn.get().await?.brpop(&queue, 1.0).await?;
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
