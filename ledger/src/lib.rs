//! The shift ledger: what was worked, kept in PostgreSQL for years.
//!
//! - [`arith`]: pure shift arithmetic (segments clipped to a window, paid time, pay rounded half
//!   up, splitting at local midnights across DST), tested without any database.
//! - [`apply`]: the stream's events, and how one that begins or ends a shift changes the ledger.
//! - [`batch`]: how a batch of events changes it, in a constant number of statements.
//! - [`writer`]: the lease-holding writer that keeps the ledger caught up with the stream.
//! - [`query`]: payroll rows, read back (streamed, for exports of any size).
//! - [`report`]: windows, JSON views and RFC 4180 CSV of the payroll endpoints and export.
//! - [`tickets`]: the archive of ended tickets, which `GET /v1/tickets/{id}` reads once Redis
//!   no longer holds them.
//!
//! Redis holds the live state; this crate turns the namespace's event stream into shift records
//! and the archive of ended tickets, and tells Redis how far it has stored (so that an ended
//! ticket leaves Redis only once it is here).
//! Dispatch never waits on it: if PostgreSQL is down the stream keeps the events.

pub mod apply;
pub mod arith;
pub mod batch;
pub mod query;
pub mod report;
pub mod tickets;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

/// Pay rules from configuration.
#[derive(Debug, Clone, Copy)]
pub struct PayRules {
    /// `BREAKS_PAID`: whether break time is paid.
    pub breaks_paid: bool,
}

/// What can go wrong with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// PostgreSQL cannot be reached or failed.
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Redis (the event stream) failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The live store failed.
    #[error("store: {0}")]
    Store(#[from] shared::store::StoreError),
    /// Another instance holds the writer's lease: this one must not commit.
    #[error("the ledger's lease is held by another instance")]
    LeaseLost,
}

/// What a client is told when the ledger fails: 503 while PostgreSQL is away (dispatch goes
/// on); the cause goes to the log.
pub fn client_error(e: LedgerError) -> shared::error::ClientError {
    tracing::warn!(error = %e, "ledger unavailable");
    shared::error::ClientError::new(
        shared::error::ErrorCode::LedgerUnavailable,
        "the shift ledger is unavailable; dispatch goes on, retry the report shortly",
    )
}

/// The ledger of one namespace; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: PgPool,
    namespace: String,
    /// How long the stream keeps what the ledger stored (`EVENT_RETENTION_SECS`).
    stream_retention: Duration,
    /// The stored offset the stream was last trimmed all the way to: while nothing new is
    /// stored, trimming again would change nothing.
    trimmed: Arc<Mutex<Option<shared::events::StreamId>>>,
    /// The most events the stream keeps (`LEDGER_BACKLOG_MAX`).
    backlog_max: u64,
    /// Set when a gap was recorded: the writer reconciles the open shifts at once.
    gap_found: Arc<std::sync::atomic::AtomicBool>,
    /// `BREAKS_PAID`, for the shifts the writer announces (`shift.ended`).
    breaks_paid: bool,
}

impl Ledger {
    /// A ledger on the database at `url`. Connects lazily: only a malformed URL fails.
    pub fn open(url: &str, namespace: &str) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self {
            pool,
            namespace: namespace.to_owned(),
            stream_retention: Duration::from_secs(3600),
            trimmed: Arc::default(),
            backlog_max: 5_000_000,
            gap_found: Arc::default(),
            breaks_paid: false,
        })
    }

    /// The same ledger, leaving events it stored in the stream for `retention`.
    pub fn with_stream_retention(mut self, retention: Duration) -> Self {
        self.stream_retention = retention;
        self
    }

    /// The same ledger, keeping at most `max` events in the stream (`LEDGER_BACKLOG_MAX`).
    pub fn with_backlog_max(mut self, max: u64) -> Self {
        self.backlog_max = max;
        self
    }

    /// The same ledger, announcing ended shifts with break time paid (`BREAKS_PAID`).
    pub fn with_breaks_paid(mut self, paid: bool) -> Self {
        self.breaks_paid = paid;
        self
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Applies the schema migrations (idempotent; safe from several instances at once).
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// The latest gap in the stream the ledger found (events gone before it stored them), said
    /// for `/readyz`'s body; `None` if there is none (or PostgreSQL cannot tell now).
    pub async fn gap_report(&self) -> Option<String> {
        let row: (i64, i64, i64, i64, chrono::DateTime<chrono::Utc>) = sqlx::query_as(
            "SELECT after_ms, after_seq, lost_until_ms, lost_until_seq, detected_at
               FROM ledger_gaps WHERE namespace = $1 ORDER BY detected_at DESC LIMIT 1",
        )
        .bind(&self.namespace)
        .fetch_optional(&self.pool)
        .await
        .ok()??;
        let (after_ms, after_seq, until_ms, until_seq, at) = row;
        Some(format!(
            "events after {after_ms}-{after_seq} and before {until_ms}-{until_seq} left the \
             stream before the ledger stored them (found {}); the shifts they touched were closed from \
             the live state, marked recovered",
            at.to_rfc3339()
        ))
    }

    /// Whether PostgreSQL answers within a second.
    pub async fn ping(&self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Ok(_))
        )
    }
}
