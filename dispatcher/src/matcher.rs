//! Matching: reacting to the event stream by offering tickets to agents.
//!
//! Every dispatcher instance reads the namespace's event stream in one consumer group
//! (`matcher`), so each event is handled by one instance, and entries a dead instance had taken
//! are claimed by the others after [`CLAIM_IDLE`]. An event that frees a ticket (created,
//! requeued, declined, expired, withdrawn) routes it to the best eligible agent; an event that
//! frees an agent (available, connected, accepted, completed, declined, expired, cancelled) offers
//! it the best waiting ticket. Both are idempotent: handling an event twice changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Value};
use shared::domain::OfferId;
use shared::store::{Candidate, Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::policy;

/// The consumer group every dispatcher reads the event stream in.
pub const GROUP: &str = "matcher";
/// How long an entry may sit unacknowledged with a consumer before another instance takes it.
pub const CLAIM_IDLE: Duration = Duration::from_secs(15);
/// How many index entries one `candidates` call looks at.
const PAGE: u64 = 256;
/// How many queue entries per language `offer_agent` looks at.
const QUEUE_SCAN: u32 = 256;
/// How often a lost race for an agent is retried with fresh candidates.
const ATTEMPTS: usize = 4;

/// Offers tickets to agents.
#[derive(Debug, Clone)]
pub struct Matcher {
    store: Store,
    offer_timeout: Duration,
}

impl Matcher {
    /// A matcher making offers that last `offer_timeout`.
    pub fn new(store: Store, offer_timeout: Duration) -> Self {
        Self {
            store,
            offer_timeout,
        }
    }

    /// Offers a queued ticket to the best eligible agent, if there is one.
    /// Returns the agent offered to.
    pub async fn route_ticket(&self, ticket: &str) -> Result<Option<String>, StoreError> {
        for _ in 0..ATTEMPTS {
            let Some(candidates) = self.candidates(ticket).await? else {
                return Ok(None);
            };
            let Some(best) = policy::choose(&candidates) else {
                return Ok(None);
            };
            let offer = OfferId::generate();
            if self
                .store
                .offer_ticket(ticket, &best.agent_id, &offer, self.offer_timeout)
                .await?
            {
                tracing::debug!(ticket, agent = %best.agent_id, offer = %offer, "offered");
                return Ok(Some(best.agent_id.clone()));
            }
        }
        Ok(None)
    }

    /// The candidates for a queued ticket (`None` if it is not queued any more).
    async fn candidates(&self, ticket: &str) -> Result<Option<Vec<Candidate>>, StoreError> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let Some(page) = self.store.candidates(ticket, offset, PAGE).await? else {
                return Ok(None);
            };
            all.extend(page.candidates);
            match page.next_offset {
                Some(next) if all.is_empty() => offset = next,
                _ => return Ok(Some(all)),
            }
        }
    }

    /// Offers a free agent the best ticket waiting now. Returns the ticket offered.
    pub async fn serve_agent(&self, agent: &str) -> Result<Option<String>, StoreError> {
        self.serve_agent_since(agent, i64::MAX).await
    }

    /// Offers an agent that became free at event `since` (the event's `seq`) the best ticket
    /// that was waiting for it then. Returns the ticket offered.
    pub async fn serve_agent_since(
        &self,
        agent: &str,
        since: i64,
    ) -> Result<Option<String>, StoreError> {
        self.store
            .offer_agent(
                agent,
                &OfferId::generate(),
                self.offer_timeout,
                QUEUE_SCAN,
                since,
            )
            .await
    }

    /// Reacts to one event of the stream.
    pub async fn handle(&self, fields: &HashMap<String, String>) -> Result<(), StoreError> {
        let get = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
        let (ticket, agent) = (get("ticket"), get("agent"));
        let (route, serve) = match get("type") {
            "ticket_created" | "ticket_requeued" | "offer_withdrawn" => (true, false),
            "offer_declined" | "offer_expired" => (true, true),
            "ticket_completed" | "ticket_assigned" | "agent_connected" | "agent_upserted" => {
                (false, true)
            }
            "agent_status" => (false, get("status") == "available"),
            "ticket_cancelled" => (false, !agent.is_empty()),
            _ => (false, false),
        };
        if route && !ticket.is_empty() {
            self.route_ticket(ticket).await?;
        }
        if serve && !agent.is_empty() {
            let since = get("seq").parse().unwrap_or(i64::MAX);
            self.serve_agent_since(agent, since).await?;
        }
        Ok(())
    }

    /// Re-routes the heads of every language queue: a safety net for tickets whose agents were
    /// beyond a scan limit when they became free.
    pub async fn sweep_queues(&self, per_language: isize) -> Result<(), StoreError> {
        let mut conn = self.store.conn();
        let languages: Vec<String> = conn.smembers(self.store.keys().queues()).await?;
        for lang in languages {
            let heads: Vec<String> = conn
                .zrange(self.store.keys().queue(&lang), 0, per_language - 1)
                .await?;
            for ticket in heads {
                self.route_ticket(&ticket).await?;
            }
        }
        Ok(())
    }

    /// Consumes the event stream until `shutdown`.
    pub async fn run(self, consumer: String, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.consume(&consumer, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "event consumer failed; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn consume(
        &self,
        consumer: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), StoreError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let mut conn = self
            .store
            .client()
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let stream = self.store.keys().events();
        let created: Result<(), redis::RedisError> =
            // From the stream's start, not `$`: after Redis lost everything (restart without
            // persistence) the events written before the group is recreated must not be missed.
            // Replaying older events is harmless: handling them is idempotent.
            conn.xgroup_create_mkstream(&stream, GROUP, "0").await;
        if let Err(e) = created {
            if e.code() != Some("BUSYGROUP") {
                return Err(e.into());
            }
        }
        let read = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(128)
            .block(1000);
        let mut last_claim = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let reply: Option<StreamReadReply> =
                conn.xread_options(&[&stream], &[">"], &read).await?;
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    self.handle_entry(&mut conn, &stream, &entry.id, &entry.map)
                        .await?;
                }
            }
            if last_claim.elapsed() >= CLAIM_IDLE / 3 {
                last_claim = tokio::time::Instant::now();
                self.claim_abandoned(&mut conn, &stream, consumer).await?;
            }
        }
        Ok(())
    }

    /// Takes over entries another consumer read but never acknowledged (it died).
    async fn claim_abandoned(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        stream: &str,
        consumer: &str,
    ) -> Result<(), StoreError> {
        let idle = usize::try_from(CLAIM_IDLE.as_millis()).unwrap_or(usize::MAX);
        let options = StreamAutoClaimOptions::default().count(128);
        let reply: StreamAutoClaimReply = conn
            .xautoclaim_options(stream, GROUP, consumer, idle, "0-0", options)
            .await?;
        for entry in reply.claimed {
            tracing::info!(id = %entry.id, "handling an event abandoned by another instance");
            self.handle_entry(conn, stream, &entry.id, &entry.map)
                .await?;
        }
        Ok(())
    }

    async fn handle_entry(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        stream: &str,
        id: &str,
        map: &HashMap<String, Value>,
    ) -> Result<(), StoreError> {
        let fields: HashMap<String, String> = map
            .iter()
            .filter_map(|(k, v)| {
                redis::from_redis_value_ref::<String>(v)
                    .ok()
                    .map(|v| (k.clone(), v))
            })
            .collect();
        match self.handle(&fields).await {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => return Err(StoreError::Unavailable(e)),
            Err(e) => tracing::error!(error = %e, event = id, "event could not be handled"),
        }
        let _: i64 = conn.xack(stream, GROUP, &[id]).await?;
        Ok(())
    }
}
