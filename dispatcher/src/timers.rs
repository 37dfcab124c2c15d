//! The clocks of dispatch: offer deadlines, grace periods, silent gateways, ended tickets
//! leaving Redis after their retention (once the ledger has them), tickets a dead
//! dispatcher left routing, and the queue sweep (a safety net that goes through every free
//! agent in turn).
//!
//! Deadlines live in Redis sorted sets, so every dispatcher instance runs this loop and whichever
//! gets there first lapses an offer: an offer outlives the instance that made it. Each step is a
//! function call that is atomic and idempotent, so instances running it together do no harm.

use std::time::Duration;

use redis::AsyncCommands;
use shared::store::{Store, StoreError, GATEWAY_SILENCE};
use tokio_util::sync::CancellationToken;

use crate::matcher::Matcher;

/// How often deadlines are checked: the most an offer can outlive its deadline.
const TICK: Duration = Duration::from_millis(100);
/// How many offers or grace periods one call ends at most.
const BATCH: u32 = 500;
/// How often silent gateways are looked for.
const REAP_EVERY: Duration = Duration::from_secs(2);
/// How often the queue sweep takes a step.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// How many free agents of each language one sweep step looks at.
const SWEEP_AGENTS: u32 = 100;
/// How often tickets left routing are looked for.
const RECOVER_EVERY: Duration = Duration::from_secs(1);

/// What the timers need.
#[derive(Debug, Clone)]
pub struct Timers {
    /// The store.
    pub store: Store,
    /// The matcher, for the queue sweep and tickets left routing.
    pub matcher: Matcher,
    /// `MISSED_OFFERS_BEFORE_AWAY`.
    pub missed_before_away: u32,
    /// `DISCONNECT_GRACE_SECS`.
    pub grace: Duration,
    /// `TICKET_RETENTION_SECS`.
    pub ticket_retention: Duration,
}

impl Timers {
    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reap = tokio::time::Instant::now();
        let mut last_sweep = tokio::time::Instant::now();
        let mut last_recover = tokio::time::Instant::now();
        let mut sweep_cursors = std::collections::HashMap::new();
        // Since when Redis has answered this instance without a break (None while it does not).
        let mut answering_since: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.deadlines().await {
                Ok(()) => {
                    answering_since.get_or_insert_with(tokio::time::Instant::now);
                }
                Err(e @ StoreError::Unavailable(_)) => {
                    tracing::debug!(error = %e, "deadline check failed");
                    answering_since = None;
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "deadline check failed"),
            }
            // A gateway silent while Redis could not be reached may be alive: every gateway
            // falls silent in an outage. So silence counts only once Redis has answered this
            // instance for as long as it takes to judge it (`GATEWAY_SILENCE`): the live
            // gateways have heartbeated by then, and a dead one is reaped that much later.
            let judged = answering_since.is_some_and(|t| t.elapsed() >= GATEWAY_SILENCE);
            if judged && last_reap.elapsed() >= REAP_EVERY {
                last_reap = tokio::time::Instant::now();
                if let Err(e) = self.reap_gateways().await {
                    tracing::warn!(error = %e, "gateway reaping failed");
                }
            }
            if last_recover.elapsed() >= RECOVER_EVERY {
                last_recover = tokio::time::Instant::now();
                if let Err(e) = self.matcher.recover_stale().await {
                    tracing::warn!(error = %e, "routing left-over tickets failed");
                }
                if let Err(e) = self.purge().await {
                    tracing::warn!(error = %e, "removing ended tickets from redis failed");
                }
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = tokio::time::Instant::now();
                if let Err(e) = self
                    .matcher
                    .sweep_queues(&mut sweep_cursors, SWEEP_AGENTS)
                    .await
                {
                    tracing::warn!(error = %e, "queue sweep failed");
                }
            }
        }
    }

    /// Lapses due offers and ends due grace periods. One that fails does not hold up the
    /// others: it is logged, and tried again in 5 s.
    pub async fn deadlines(&self) -> Result<(), StoreError> {
        loop {
            let expired = self
                .store
                .expire_offers(BATCH, self.missed_before_away)
                .await?;
            for f in &expired.failed {
                tracing::warn!(offer_id = %f.id, error = %f.error, "an offer could not lapse; trying again in 5 s");
            }
            if expired.due < BATCH {
                break;
            }
        }
        loop {
            let ended = self.store.expire_grace(BATCH).await?;
            for f in &ended.failed {
                tracing::warn!(agent_id = %f.id, error = %f.error, "a grace period could not end; trying again in 5 s");
            }
            if ended.due < BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Ended tickets past the retention that the ledger has stored leave Redis.
    pub async fn purge(&self) -> Result<(), StoreError> {
        while self
            .store
            .purge_tickets(self.ticket_retention, BATCH)
            .await?
            == BATCH
        {}
        Ok(())
    }

    /// Treats the connections of gateways silent for [`GATEWAY_SILENCE`] as dropped.
    pub async fn reap_gateways(&self) -> Result<(), StoreError> {
        let now = self.store.now_ms().await?;
        let cutoff = now - i64::try_from(GATEWAY_SILENCE.as_millis()).unwrap_or(i64::MAX);
        let mut conn = self.store.conn();
        let silent: Vec<String> = conn
            .zrangebyscore(self.store.keys().gateways(), "-inf", cutoff)
            .await?;
        for instance in silent {
            let n = self.store.reap_gateway(&instance, self.grace).await?;
            tracing::warn!(%instance, connections = n, "gateway instance went silent; its connections count as dropped");
        }
        Ok(())
    }
}
