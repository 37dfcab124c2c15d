//! `GET /metrics` (API.md §11): the dispatcher's Prometheus series.
//!
//! Two kinds. What this instance does (its webhook attempts, its Redis calls) is counted by it.
//! What happens in the namespace (tickets ended, offers made, queues, agents, the ledger's lag)
//! is derived from the event stream and the queues, which every dispatcher reads alike: those
//! series are the same on every instance, so aggregate them with `max`, not `sum`. No series
//! carries personal data: labels are languages, outcomes, statuses and results.

use std::sync::LazyLock;

use actix_web::{web, HttpResponse};
use http_kit::ApiError;
use prometheus::{HistogramVec, IntCounterVec, IntGaugeVec};
use redis::AsyncCommands;
use shared::domain::AgentStatus;
use shared::metrics::{counter, gauge, histogram};
use shared::store::{Store, StoreError};

use crate::outbound::waits::Waits;

static TICKETS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "dispatch_tickets_total",
        "Tickets ended in the namespace, by language and outcome (resolved, unresolved, cancelled), as this instance has seen them on the event stream since it started",
        &["language", "outcome"],
    )
});

static OFFER_LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    histogram(
        "dispatch_offer_latency_seconds",
        "Time from a ticket's intake to each offer of it to an agent",
        &[],
        vec![
            0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
        ],
    )
});

static QUEUE_DEPTH: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "dispatch_queue_depth",
        "Tickets waiting for an agent, by language",
        &["language"],
    )
});

static QUEUE_OLDEST: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "dispatch_queue_oldest_wait_seconds",
        "How long the longest waiting ticket has waited since its creation, by language",
        &["language"],
    )
});

static AGENTS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "dispatch_agents",
        "Agents on the roster, by status",
        &["status"],
    )
});

static LEDGER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    gauge(
        "dispatch_ledger_lag_events",
        "Events in the stream the ledger has not stored in PostgreSQL yet (counted up to 100,000)",
        &[],
    )
});

static WEBHOOKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    counter(
        "dispatch_webhook_deliveries_total",
        "Webhook delivery attempts by this instance, by result (delivered, retried, failed: given up after the last retry, dropped: given up for a full backlog)",
        &["result"],
    )
});

/// A ticket of `language` ended with `outcome`.
pub fn ticket_ended(language: &str, outcome: &str) {
    TICKETS.with_label_values(&[language, outcome]).inc();
}

/// An offer was made `after_ms` after its ticket's intake.
pub fn offer_made(after_ms: i64) {
    OFFER_LATENCY
        .with_label_values(&[] as &[&str])
        .observe(after_ms.max(0) as f64 / 1000.0);
}

/// A webhook attempt ended with `result`, `n` times.
pub fn webhook(result: &str, n: u64) {
    WEBHOOKS.with_label_values(&[result]).inc_by(n);
}

const LAG_COUNTED: usize = 100_000;

/// Entries after the ledger's stored mark.
async fn ledger_lag(store: &Store) -> Result<u64, StoreError> {
    let mut conn = store.conn();
    let stored: Option<String> = conn.get(store.keys().ledger_stored()).await?;
    let events = store.keys().events();
    let n = match stored {
        None => conn.xlen(&events).await?,
        Some(mark) => {
            let after: redis::streams::StreamRangeReply = conn
                .xrange_count(&events, format!("({mark}"), "+", LAG_COUNTED)
                .await?;
            after.ids.len()
        }
    };
    Ok(n as u64)
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `GET /metrics`: the namespace's figures are read at each scrape.
pub async fn scrape(
    store: web::Data<Store>,
    waits: web::Data<Waits>,
) -> Result<HttpResponse, ApiError> {
    // Touch every family so that each is exposed from the first scrape.
    LazyLock::force(&TICKETS);
    LazyLock::force(&OFFER_LATENCY);
    LazyLock::force(&WEBHOOKS);
    let now = store.now_ms().await?;
    let figures = store.queue_overview(&waits.online_languages()).await?;
    QUEUE_DEPTH.reset();
    QUEUE_OLDEST.reset();
    for f in &figures {
        QUEUE_DEPTH
            .with_label_values(&[f.language.as_str()])
            .set(int(f.waiting));
        let oldest = f.oldest_created_ms.map_or(0, |c| (now - c).max(0) / 1000);
        QUEUE_OLDEST
            .with_label_values(&[f.language.as_str()])
            .set(oldest);
    }
    let by_status = waits.by_status();
    for status in [
        AgentStatus::Offline,
        AgentStatus::Available,
        AgentStatus::Break,
        AgentStatus::Away,
    ] {
        let n = by_status.get(&status).copied().unwrap_or(0);
        AGENTS.with_label_values(&[status.as_str()]).set(int(n));
    }
    LEDGER_LAG
        .with_label_values(&[] as &[&str])
        .set(int(ledger_lag(&store).await?));
    let (body, content_type) = shared::metrics::render();
    Ok(HttpResponse::Ok().content_type(content_type).body(body))
}
