//! Feeding the ledger from the event stream.
//!
//! Every dispatcher runs [`Ledger::run_writer`], but only the holder of the `ledger` lease in
//! Redis writes, so events are applied in stream order. It reads the stream from the offset
//! stored in PostgreSQL and applies each batch in one transaction that also advances the offset:
//! reading is at-least-once, applying exactly once, and a replayed event changes nothing. While
//! PostgreSQL is down the stream keeps the events and dispatch goes on; the writer catches up
//! when it returns, then trims what it has stored from the stream. Each committed batch also
//! archives the tickets that ended in it and moves Redis's `ledger:stored` mark, after which
//! those tickets may leave Redis (`purge_tickets`).

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use shared::events::{entry_fields, Event, EventError, StreamEvent, StreamId};
use shared::store::Store;
use tokio_util::sync::CancellationToken;

use crate::apply::close_shift;
use crate::batch::apply_events;
use crate::tickets::archive;
use crate::{Ledger, LedgerError};

/// How many events one transaction applies at most.
const BATCH: usize = 1000;
/// How long the writer's lease lasts without renewal.
const LEASE: Duration = Duration::from_secs(10);
/// How often the stream is held to `LEDGER_BACKLOG_MAX`.
const BOUND_EVERY: Duration = Duration::from_secs(5);
/// How often open shifts are checked against the live state.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

/// A batch read from the stream: the events this build knows, the entries it could not read
/// (kept in `ledger_rejects`), and the last id read.
struct Batch {
    events: Vec<StreamEvent>,
    unreadable: Vec<(StreamId, HashMap<String, String>, String)>,
    last: StreamId,
    /// The tickets that ended in the batch, read from Redis (view and note) to archive.
    ended: Vec<(shared::domain::TicketView, String)>,
    /// Events lost before it: after the stored one, up to (not including) its first.
    gap: Option<(StreamId, StreamId)>,
}

/// Whether the database refused `e` for what the statement holds (a data exception, SQLSTATE
/// class 22, or a violated constraint, class 23): the same event would be refused again, so it
/// is recorded in `ledger_rejects`. Anything else (a lost connection, a deadlock, a
/// serialization failure, a timeout, a shutdown, no resources) is transient: the batch is
/// retried, and nothing is recorded as refused.
pub fn is_refusal(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

impl Ledger {
    /// Applies every event after the stored offset, in batches; returns how many were applied.
    pub async fn catch_up(&self, store: &Store) -> Result<usize, LedgerError> {
        self.catch_up_as(store, None).await
    }

    /// [`Ledger::catch_up`], by the holder of the writer's lease if `holder` is given: the lease
    /// is renewed before each batch commits, and the work stops if another instance holds it.
    pub async fn catch_up_as(
        &self,
        store: &Store,
        holder: Option<&str>,
    ) -> Result<usize, LedgerError> {
        let mut total = 0;
        loop {
            let n = self.apply_batch(store, holder).await?;
            total += n;
            if n < BATCH {
                return Ok(total);
            }
        }
    }

    async fn offset(&self) -> Result<Option<(i64, i64)>, LedgerError> {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT last_ms, last_seq FROM ledger_offsets WHERE namespace = $1")
                .bind(&self.namespace)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row)
    }

    async fn apply_batch(&self, store: &Store, holder: Option<&str>) -> Result<usize, LedgerError> {
        let stored = self
            .offset()
            .await?
            .filter(|&(ms, seq)| (ms, seq) != (0, 0))
            .map(|(ms, seq)| StreamId { ms, seq });
        // The read starts at the stored event itself, which the ledger's trims keep: if it is
        // gone, events after it may have gone with it before they were stored (a gap).
        let start = stored.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let mut conn = store.conn();
        let mut reply: redis::streams::StreamRangeReply = conn
            .xrange_count(store.keys().events(), &start, "+", BATCH + 1)
            .await?;
        let first = reply.ids.first().and_then(|e| StreamId::parse(&e.id));
        let gap = match (stored, first) {
            (Some(s), Some(f)) if f == s => {
                reply.ids.remove(0);
                None
            }
            (Some(s), Some(f)) => Some((s, f)),
            (None, Some(f)) if self.lost_before_first(store).await? => {
                Some((StreamId { ms: 0, seq: 0 }, f))
            }
            _ => None,
        };
        let read = reply.ids.len();
        let Some(mut batch) = read_batch(reply) else {
            // Nothing new: what was stored still leaves the stream once past its retention, so
            // that the stream does not keep the last busy minutes for as long as it is quiet.
            if let Some(stored) = stored {
                self.trim(store, stored).await;
            }
            return Ok(0);
        };
        batch.gap = gap;
        // Ended tickets are read before the transaction and marked stored (in Redis) only after
        // it commits, so Redis lets a ticket go only once PostgreSQL has it.
        let ended: Vec<String> = batch
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::TicketCompleted { ticket, .. } | Event::TicketCancelled { ticket, .. } => {
                    Some(ticket.clone())
                }
                _ => None,
            })
            .collect();
        batch.ended = store.ended_tickets(&ended).await?;
        let lease = holder.map(|h| (store, h));
        match self.store_batch(&batch, false, lease).await {
            Err(LedgerError::Database(sqlx::Error::Database(e))) if is_refusal(e.as_ref()) => {
                // The database refused an event (a constraint): find it, record it, go on,
                // rather than retrying the same batch forever.
                tracing::warn!(error = %e, "a batch was refused; applying it event by event");
                self.store_batch(&batch, true, lease).await?;
            }
            other => other?,
        }
        if let Some((after, until)) = batch.gap {
            tracing::error!(
                %after,
                %until,
                "events left the stream before the ledger stored them; closing the shifts they touched from the live state"
            );
            self.gap_found
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        store.ledger_stored(batch.last).await?;
        self.trim(store, batch.last).await;
        Ok(read)
    }

    /// Whether events left the stream before a ledger that has stored nothing yet read them:
    /// the stream has had more entries than it holds (`XINFO STREAM`), and a ledger trims only
    /// what it stored.
    async fn lost_before_first(&self, store: &Store) -> Result<bool, LedgerError> {
        let mut conn = store.conn();
        let info: HashMap<String, redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(store.keys().events())
            .query_async(&mut conn)
            .await?;
        let number = |k: &str| {
            info.get(k)
                .and_then(|v| redis::from_redis_value_ref::<i64>(v).ok())
                .unwrap_or(0)
        };
        Ok(number("entries-added") > number("length"))
    }

    /// Announces in the stream (`shift_recorded`, for `shift.ended`, API.md §9) the shifts
    /// `batch` ended, as this transaction stores them. Before the commit, so that none is lost
    /// to a crash after it; a batch stored again after a failed commit announces nothing twice
    /// (`shift_recorded` remembers each shift).
    async fn announce_ended_shifts(
        &self,
        tx: &mut sqlx::PgConnection,
        store: &Store,
        batch: &Batch,
    ) -> Result<(), LedgerError> {
        let ended: Vec<String> = batch
            .events
            .iter()
            .filter_map(|e| match &e.event {
                Event::ShiftEnded { shift, .. } => Some(shift.clone()),
                _ => None,
            })
            .collect();
        if ended.is_empty() {
            return Ok(());
        }
        let views =
            crate::query::ended_shift_views(tx, &self.namespace, &ended, self.breaks_paid).await?;
        for view in views {
            let row = serde_json::to_string(&view).unwrap_or_default();
            store
                .shift_recorded(&view.agent_id, &view.shift_id, &row)
                .await?;
        }
        Ok(())
    }

    /// Applies `batch` and advances the offset in one transaction. With `isolate`, each event
    /// runs under a savepoint and one the database refuses goes to `ledger_rejects` instead.
    /// With `lease`, the writer's lease is renewed just before the commit, which does not
    /// happen if another instance holds it ([`LedgerError::LeaseLost`]).
    async fn store_batch(
        &self,
        batch: &Batch,
        isolate: bool,
        lease: Option<(&Store, &str)>,
    ) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        if isolate {
            for event in &batch.events {
                self.apply_isolated(&mut tx, event).await?;
            }
        } else {
            apply_events(&mut tx, &self.namespace, &batch.events).await?;
        }
        for (id, fields, error) in &batch.unreadable {
            self.reject(&mut tx, *id, fields, error).await?;
        }
        archive(&mut tx, &self.namespace, &batch.ended).await?;
        if let Some((after, until)) = batch.gap {
            self.record_gap(&mut tx, after, until).await?;
        }
        sqlx::query(
            "INSERT INTO ledger_offsets (namespace, last_ms, last_seq) VALUES ($1, $2, $3)
             ON CONFLICT (namespace) DO UPDATE SET last_ms = $2, last_seq = $3",
        )
        .bind(&self.namespace)
        .bind(batch.last.ms)
        .bind(batch.last.seq)
        .execute(&mut *tx)
        .await?;
        if let Some((store, holder)) = lease {
            self.announce_ended_shifts(&mut tx, store, batch).await?;
            if !store.lease("ledger", holder, LEASE).await? {
                return Err(LedgerError::LeaseLost);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the events after `after` up to (not including) `until` left the stream
    /// before the ledger stored them (in the batch's transaction; once it commits, the writer
    /// is told to close the open shifts the live state no longer has: their ends may be among
    /// the lost events).
    async fn record_gap(
        &self,
        tx: &mut sqlx::PgConnection,
        after: StreamId,
        until: StreamId,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO ledger_gaps (namespace, after_ms, after_seq, lost_until_ms, lost_until_seq)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&self.namespace)
        .bind(after.ms)
        .bind(after.seq)
        .bind(until.ms)
        .bind(until.seq)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Records an event the ledger could not apply, for an operator.
    async fn reject(
        &self,
        tx: &mut sqlx::PgConnection,
        id: StreamId,
        fields: &HashMap<String, String>,
        error: &str,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO ledger_rejects (namespace, event_ms, event_seq, event, error)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(&self.namespace)
        .bind(id.ms)
        .bind(id.seq)
        .bind(serde_json::to_value(fields).unwrap_or_default())
        .bind(error)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    /// Applies one event under a savepoint; one the database refuses goes to `ledger_rejects`.
    async fn apply_isolated(
        &self,
        tx: &mut sqlx::PgConnection,
        event: &StreamEvent,
    ) -> Result<(), LedgerError> {
        sqlx::query("SAVEPOINT event").execute(&mut *tx).await?;
        match apply_events(tx, &self.namespace, std::slice::from_ref(event)).await {
            Ok(()) => Ok(()),
            Err(sqlx::Error::Database(refusal)) if is_refusal(refusal.as_ref()) => {
                sqlx::query("ROLLBACK TO SAVEPOINT event")
                    .execute(&mut *tx)
                    .await?;
                tracing::error!(error = %refusal, event = %event.id, "event refused by the ledger; recorded in ledger_rejects");
                self.reject(tx, event.id, &event.to_fields(), &refusal.to_string())
                    .await
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Drops from the stream what the ledger stored longer ago than its stream retention. (The ledger is the
    /// stream's only reader that needs its past: matching does not read the stream, and a
    /// consumer group an earlier version left on it does not hold trimming back.) Once
    /// trimmed all the way to `stored`, a quiet writer does not trim again.
    async fn trim(&self, store: &Store, stored: StreamId) {
        if *self.trimmed.lock().unwrap_or_else(|e| e.into_inner()) == Some(stored) {
            return;
        }
        let Ok(now) = store.now_ms().await else {
            return;
        };
        // The recent past stays readable for operators, audits and consumers that come later.
        let retain = i64::try_from(self.stream_retention.as_millis()).unwrap_or(i64::MAX);
        let StreamId { ms, seq } = if now - retain < stored.ms {
            StreamId {
                ms: now - retain,
                seq: 0,
            }
        } else {
            stored
        };
        let mut conn = store.conn();
        let trimmed: Result<i64, _> = redis::cmd("XTRIM")
            .arg(store.keys().events())
            .arg("MINID")
            .arg("~")
            .arg(format!("{ms}-{seq}"))
            .query_async(&mut conn)
            .await;
        if trimmed.is_ok() && (StreamId { ms, seq }) == stored {
            *self.trimmed.lock().unwrap_or_else(|e| e.into_inner()) = Some(stored);
        }
    }

    /// Closes open shifts the live state no longer has (Redis lost them, or every instance
    /// crashed and the agent is gone): at the agent's last sign of life, marked recovered.
    ///
    /// The live state is read first and the stream applied after: a shift that ended in Redis
    /// meanwhile has its `shift_ended` in the stream by then, and is closed by it, not here.
    /// Only the `holder` of the writer's lease does this.
    pub async fn reconcile(&self, store: &Store, holder: &str) -> Result<usize, LedgerError> {
        let open: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT shift_id, agent_id, last_seen_at FROM shifts
             WHERE namespace = $1 AND ended_at IS NULL",
        )
        .bind(&self.namespace)
        .fetch_all(&self.pool)
        .await?;
        let mut gone = Vec::new();
        for (shift, agent, last_seen) in open {
            let mut conn = store.conn();
            let live: Option<String> = conn.hget(store.keys().agent(&agent), "shift").await?;
            if live.as_deref() != Some(shift.as_str()) {
                gone.push((shift, agent, last_seen));
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        self.catch_up_as(store, Some(holder)).await?;
        let mut closed = 0;
        for (shift, agent, last_seen) in gone {
            let mut tx = self.pool.begin().await?;
            if close_shift(
                &mut tx,
                &self.namespace,
                &shift,
                last_seen,
                "recovered",
                true,
            )
            .await?
            {
                tracing::warn!(%shift, %agent, "closed a shift the live state no longer has");
                closed += 1;
            }
            tx.commit().await?;
        }
        Ok(closed)
    }

    /// Keeps the stream within `LEDGER_BACKLOG_MAX` events: while PostgreSQL is down the
    /// events wait there, and past the budget the oldest are given up (the writer reports them
    /// as a gap once it can store again) rather than let Redis run out of memory. `MAXLEN ~`
    /// trims whole nodes only, so the stream may hold up to a node more; under the budget it
    /// changes nothing and costs one command.
    async fn bound_backlog(&self, store: &Store) {
        let trimmed: redis::RedisResult<u64> = redis::cmd("XTRIM")
            .arg(store.keys().events())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.backlog_max)
            .query_async(&mut store.conn())
            .await;
        match trimmed {
            Ok(0) => {}
            Ok(n) => tracing::error!(
                events = n,
                budget = self.backlog_max,
                "the stream is over LEDGER_BACKLOG_MAX: its oldest events were given up"
            ),
            Err(e) => tracing::debug!(error = %e, "cannot bound the stream"),
        }
    }

    /// Runs until `shutdown`: while holding the lease, keeps the ledger caught up; whether or
    /// not, keeps the stream within its budget.
    pub async fn run_writer(self, store: Store, holder: String, shutdown: CancellationToken) {
        let mut migrated = false;
        let mut last_reconcile: Option<tokio::time::Instant> = None;
        let mut last_bound: Option<tokio::time::Instant> = None;
        loop {
            if last_bound.is_none_or(|t| t.elapsed() >= BOUND_EVERY) {
                self.bound_backlog(&store).await;
                last_bound = Some(tokio::time::Instant::now());
            }
            let wait = match self
                .writer_step(&store, &holder, &mut migrated, &mut last_reconcile)
                .await
            {
                Ok(true) => Duration::from_millis(100),
                Ok(false) => Duration::from_secs(1),
                Err(LedgerError::LeaseLost) => {
                    tracing::info!(
                        "another instance took the ledger's lease; this one stops writing"
                    );
                    Duration::from_secs(1)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "ledger writer waiting: events stay in the stream");
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One round; `Ok(true)` when this instance holds the lease.
    async fn writer_step(
        &self,
        store: &Store,
        holder: &str,
        migrated: &mut bool,
        last_reconcile: &mut Option<tokio::time::Instant>,
    ) -> Result<bool, LedgerError> {
        if !store.lease("ledger", holder, LEASE).await? {
            return Ok(false);
        }
        if !*migrated {
            self.migrate().await?;
            *migrated = true;
        }
        self.catch_up_as(store, Some(holder)).await?;
        let gap = self
            .gap_found
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if gap || last_reconcile.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
            self.reconcile(store, holder).await?;
            *last_reconcile = Some(tokio::time::Instant::now());
        }
        Ok(true)
    }
}

/// Parses what XRANGE read; `None` if it read nothing. Kinds this build does not know (a newer
/// build's) are skipped; entries of a known kind it cannot read are kept aside as unreadable.
fn read_batch(reply: redis::streams::StreamRangeReply) -> Option<Batch> {
    let mut batch = Batch {
        events: Vec::with_capacity(reply.ids.len()),
        unreadable: Vec::new(),
        last: StreamId::parse(&reply.ids.last()?.id)?,
        ended: Vec::new(),
        gap: None,
    };
    for entry in &reply.ids {
        let (Some(id), fields) = entry_fields(entry) else {
            continue;
        };
        match StreamEvent::parse(id, &fields) {
            Ok(event) => batch.events.push(event),
            Err(EventError::UnknownKind(kind)) => {
                tracing::debug!(%id, kind, "an event of a kind this build does not know");
            }
            Err(e) => {
                tracing::error!(%id, error = %e, "an unreadable event; recorded in ledger_rejects");
                batch.unreadable.push((id, fields, e.to_string()));
            }
        }
    }
    Some(batch)
}
