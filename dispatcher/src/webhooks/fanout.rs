//! From the stream to the endpoints' queues: the consumer group `webhooks`, which every
//! dispatcher reads as a consumer of its own, so that each entry is handled by one of them.
//!
//! A batch read is turned into deliveries (the bodies built once per event, for every endpoint
//! that wants it) and handed to `webhook_enqueue`, which acknowledges each entry and queues its
//! deliveries in one step. Entries a dispatcher read and then died with stay pending in the
//! group: after [`CLAIM_IDLE`] another one claims them (`XAUTOCLAIM`), and the acknowledgement
//! inside `webhook_enqueue` makes sure that, should the first one come back, only one of the
//! two queues them.

use std::sync::Arc;
use std::time::Duration;

use ledger::LedgerError;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use shared::events::{StreamEvent, StreamId};
use shared::store::{NewDelivery, Store, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::endpoints;
use crate::outbound::Publisher;

/// The consumer group.
pub const GROUP: &str = "webhooks";
/// Entries read at once.
const BATCH: usize = 100;
/// How long an entry stays with a consumer that does not acknowledge it before another takes it.
pub const CLAIM_IDLE: Duration = Duration::from_secs(15);
/// How often entries left by others are looked for.
const RECLAIM_EVERY: Duration = Duration::from_secs(5);
/// A consumer of the group idle this long with nothing pending (a dispatcher gone) is removed.
const CONSUMER_GONE: Duration = Duration::from_secs(3600);

/// One dispatcher's consumer of the group.
pub struct Fanout {
    /// The store.
    pub store: Store,
    /// Builds the bodies.
    pub publisher: Publisher,
    /// This consumer's name.
    pub consumer: String,
    /// `WEBHOOK_BACKLOG_MAX`.
    pub backlog_max: u64,
    /// Woken when deliveries were queued.
    pub queued: Arc<Notify>,
}

impl Fanout {
    /// Reads the group until `shutdown`, starting again after a failure.
    pub async fn run(self, shutdown: CancellationToken) {
        let failed = |e: &LedgerError| {
            if let LedgerError::Store(e) = e {
                self.store.connection_failed(e);
            }
        };
        crate::supervise::restarting("webhook fan-out", &shutdown, failed, || {
            self.consume(&shutdown)
        })
        .await;
    }

    async fn consume(&self, shutdown: &CancellationToken) -> Result<(), LedgerError> {
        let mut conn = self.store.dedicated();
        let events = self.store.keys().events();
        self.ensure_group().await?;
        let mut reclaimed = tokio::time::Instant::now();
        self.reclaim().await?;
        while !shutdown.is_cancelled() {
            if reclaimed.elapsed() >= RECLAIM_EVERY {
                self.reclaim().await?;
                reclaimed = tokio::time::Instant::now();
            }
            let options = StreamReadOptions::default()
                .group(GROUP, &self.consumer)
                .count(BATCH)
                .block(2000);
            let read: redis::RedisResult<Option<StreamReadReply>> = conn
                .get()
                .await?
                .xread_options(&[&events], &[">"], &options)
                .await;
            let read = match read {
                Err(e) if e.code() == Some("NOGROUP") => {
                    // The stream was lost (a Redis that keeps nothing restarted).
                    self.ensure_group().await?;
                    continue;
                }
                other => other.map_err(StoreError::from)?,
            };
            let entries: Vec<_> = read
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect();
            if !entries.is_empty() {
                self.handle(&entries).await?;
            }
        }
        Ok(())
    }

    /// Creates the group at the stream's end if it does not exist.
    async fn ensure_group(&self) -> Result<(), StoreError> {
        let made: redis::RedisResult<()> = self
            .store
            .conn()
            .xgroup_create_mkstream(self.store.keys().events(), GROUP, "$")
            .await;
        match made {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// Takes over the entries other consumers left unacknowledged, and forgets consumers long
    /// gone.
    async fn reclaim(&self) -> Result<(), LedgerError> {
        let events = self.store.keys().events();
        let mut cursor = String::from("0-0");
        for _ in 0..10 {
            let reply: StreamAutoClaimReply = self
                .store
                .conn()
                .xautoclaim_options(
                    &events,
                    GROUP,
                    &self.consumer,
                    u64::try_from(CLAIM_IDLE.as_millis()).unwrap_or(u64::MAX),
                    &cursor,
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await
                .map_err(StoreError::from)?;
            if !reply.claimed.is_empty() {
                tracing::info!(
                    entries = reply.claimed.len(),
                    "webhook fan-out: taking over entries another dispatcher left"
                );
                self.handle(&reply.claimed).await?;
            }
            if !reply.deleted_ids.is_empty() {
                // Trimmed from the stream before anyone queued them: nothing left to send.
                let _: u64 = self
                    .store
                    .conn()
                    .xack(&events, GROUP, &reply.deleted_ids)
                    .await
                    .map_err(StoreError::from)?;
            }
            cursor = reply.next_stream_id;
            if cursor == "0-0" {
                break;
            }
        }
        let consumers: redis::streams::StreamInfoConsumersReply = self
            .store
            .conn()
            .xinfo_consumers(&events, GROUP)
            .await
            .map_err(StoreError::from)?;
        let gone_ms = u64::try_from(CONSUMER_GONE.as_millis()).unwrap_or(u64::MAX);
        for c in consumers.consumers {
            if c.pending == 0 && c.idle as u64 > gone_ms && c.name != self.consumer {
                let _: redis::RedisResult<u64> = self
                    .store
                    .conn()
                    .xgroup_delconsumer(&events, GROUP, &c.name)
                    .await;
            }
        }
        Ok(())
    }

    /// Queues the deliveries of `entries` and acknowledges them.
    async fn handle(&self, entries: &[redis::streams::StreamId]) -> Result<(), LedgerError> {
        let endpoints = endpoints(&self.store).await?;
        let filters: Vec<_> = endpoints.iter().map(|e| (e, e.filter())).collect();
        let mut batch = Vec::with_capacity(entries.len());
        let mut queued = 0;
        for entry in entries {
            let Some(id) = StreamId::parse(&entry.id) else {
                continue;
            };
            let mut deliveries = Vec::new();
            if let (false, Some(Ok(event))) = (filters.is_empty(), StreamEvent::from_entry(entry)) {
                let published = self
                    .publisher
                    .publish(&event, |t| filters.iter().any(|(_, f)| f.wants(t)))
                    .await?;
                for p in published {
                    for (endpoint, filter) in &filters {
                        if filter.wants(p.topic) {
                            deliveries.push(NewDelivery {
                                endpoint: endpoint.webhook_id.clone(),
                                order_key: p.order_key.clone(),
                                event_id: p.id.to_string(),
                                kind: p.topic.as_str().to_owned(),
                                body: p.body.clone(),
                            });
                        }
                    }
                }
            }
            queued += deliveries.len();
            batch.push((id, deliveries));
        }
        let dropped = self
            .store
            .webhook_enqueue(GROUP, self.backlog_max, &batch)
            .await?;
        for (endpoint, n) in dropped {
            tracing::warn!(
                webhook_id = endpoint,
                given_up = n,
                backlog_max = self.backlog_max,
                "a webhook endpoint's backlog is full: its oldest deliveries were given up"
            );
            crate::metrics::webhook("dropped", n);
        }
        if queued > 0 {
            self.queued.notify_waiters();
        }
        Ok(())
    }
}
