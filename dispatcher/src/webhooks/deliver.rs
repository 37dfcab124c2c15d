//! Trying the due deliveries: each dispatcher claims the heads that are due (a lease, so that a
//! dispatcher that dies mid-attempt leaves them to the others), at most [`PER_ENDPOINT`] at a
//! time per endpoint, so that a slow or dead endpoint holds up only its own deliveries; and
//! records how each attempt went, which moves its order key on or schedules the retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use shared::store::{Attempted, Claimed, Store};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{endpoints, sign, Endpoint};

/// Deliveries one dispatcher tries at once for one endpoint.
pub const PER_ENDPOINT: u32 = 8;
/// An attempt's time limit (API.md §9).
pub const TIMEOUT: Duration = Duration::from_secs(15);
/// How long a claimed delivery is this dispatcher's: longer than an attempt can take.
const LEASE: Duration = Duration::from_secs(45);
/// How often due deliveries are looked for when nothing wakes the loop.
const TICK: Duration = Duration::from_millis(250);

/// One dispatcher's deliveries.
pub struct Deliverer {
    store: Store,
    http: reqwest::Client,
    schedule: Arc<Vec<Duration>>,
    queued: Arc<Notify>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
}

/// A retry's delay: `base`, give or take 10 %, so that retries of many deliveries spread.
fn jittered(base: Duration) -> Duration {
    let mut b = [0u8; 4];
    let r = match getrandom::getrandom(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    base.mul_f64(0.9 + 0.2 * r)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Deliverer {
    /// Deliveries retried on `schedule`; `queued` wakes the loop when new ones wait.
    pub fn new(store: Store, schedule: Vec<Duration>, queued: Arc<Notify>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            // A redirect is an answer other than 2xx: the operator fixes the URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dispatch-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            store,
            http,
            schedule: Arc::new(schedule),
            queued,
            in_flight: Arc::default(),
        }
    }

    /// Claims and tries due deliveries until `shutdown`. Attempts still running then are left
    /// to their lease: another dispatcher tries them again.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut attempts = JoinSet::new();
        while !shutdown.is_cancelled() {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.queued.notified() => {}
                () = tokio::time::sleep(TICK) => {}
            }
            while attempts.try_join_next().is_some() {}
            if let Err(e) = self.claim(&mut attempts).await {
                tracing::warn!(error = %e, "webhook deliveries: claiming failed; retrying");
                self.store.connection_failed(&e);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        attempts.abort_all();
    }

    async fn claim(&self, attempts: &mut JoinSet<()>) -> Result<(), shared::store::StoreError> {
        let endpoints = endpoints(&self.store).await?;
        let wanted: Vec<(String, u32)> = {
            let busy = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            endpoints
                .iter()
                .map(|e| {
                    let n = busy.get(&e.webhook_id).copied().unwrap_or(0);
                    (e.webhook_id.clone(), PER_ENDPOINT.saturating_sub(n))
                })
                .filter(|(_, free)| *free > 0)
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let by_id: HashMap<&str, &Endpoint> = endpoints
            .iter()
            .map(|e| (e.webhook_id.as_str(), e))
            .collect();
        for claimed in self.store.webhook_claim(LEASE, &wanted).await? {
            let Some(endpoint) = by_id.get(claimed.endpoint.as_str()) else {
                continue;
            };
            *self
                .in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(claimed.endpoint.clone())
                .or_insert(0) += 1;
            let attempt = Attempt {
                store: self.store.clone(),
                http: self.http.clone(),
                schedule: self.schedule.clone(),
                in_flight: self.in_flight.clone(),
                endpoint: (*endpoint).clone(),
                claimed,
            };
            attempts.spawn(attempt.run());
        }
        Ok(())
    }
}

/// One attempt at one delivery.
struct Attempt {
    store: Store,
    http: reqwest::Client,
    schedule: Arc<Vec<Duration>>,
    in_flight: Arc<Mutex<HashMap<String, u32>>>,
    endpoint: Endpoint,
    claimed: Claimed,
}

impl Attempt {
    async fn run(self) {
        let c = &self.claimed;
        let attempted_ms = now_ms();
        let timestamp = attempted_ms.div_euclid(1000);
        let (status, error) =
            match sign::signature(&self.endpoint.secret, &c.event_id, timestamp, &c.body) {
                None => (None, Some("the endpoint's secret is unreadable".to_owned())),
                Some(signature) => {
                    let sent = self
                        .http
                        .post(&self.endpoint.url)
                        .header("content-type", "application/json")
                        .header("webhook-id", &c.event_id)
                        .header("webhook-timestamp", timestamp.to_string())
                        .header("webhook-signature", signature)
                        .body(c.body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                        Ok(r) => (
                            Some(r.status().as_u16()),
                            Some(format!("answered {}", r.status())),
                        ),
                        Err(e) if e.is_timeout() => (
                            None,
                            Some(format!("no answer within {} s", TIMEOUT.as_secs())),
                        ),
                        Err(e) if e.is_connect() => (None, Some(format!("could not connect: {e}"))),
                        Err(e) => (None, Some(format!("failed: {e}"))),
                    }
                }
            };
        let made = c.attempts as usize;
        let outcome = match (&error, self.schedule.get(made)) {
            (None, _) => Attempted::Delivered,
            (Some(_), Some(delay)) => Attempted::Retry(jittered(*delay)),
            (Some(_), None) => Attempted::GivenUp,
        };
        let next = match outcome {
            Attempted::Retry(d) => json!(attempted_ms + i64::try_from(d.as_millis()).unwrap_or(0)),
            _ => serde_json::Value::Null,
        };
        let log = json!({
            "event_id": c.event_id,
            "type": c.kind,
            "attempt": made + 1,
            "status": status,
            "error": error,
            "attempted_ms": attempted_ms,
            "next_attempt_ms": next,
        });
        match outcome {
            Attempted::Delivered => tracing::debug!(
                webhook_id = c.endpoint,
                event_id = c.event_id,
                "webhook delivered"
            ),
            Attempted::Retry(d) => tracing::info!(
                webhook_id = c.endpoint,
                event_id = c.event_id,
                attempt = made + 1,
                error = error.as_deref(),
                retry_in_secs = d.as_secs(),
                "webhook delivery failed; will retry"
            ),
            Attempted::GivenUp => tracing::warn!(
                webhook_id = c.endpoint,
                event_id = c.event_id,
                attempts = made + 1,
                error = error.as_deref(),
                "webhook delivery given up after its last retry"
            ),
        }
        crate::metrics::webhook(
            match outcome {
                Attempted::Delivered => "delivered",
                Attempted::Retry(_) => "retried",
                Attempted::GivenUp => "failed",
            },
            1,
        );
        if let Err(e) = self.store.webhook_done(c, outcome, &log.to_string()).await {
            // The lease lapses and the delivery is tried again.
            tracing::warn!(webhook_id = c.endpoint, event_id = c.event_id, error = %e, "a webhook attempt's outcome could not be recorded");
        }
        let mut busy = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = busy.get_mut(&c.endpoint) {
            *n = n.saturating_sub(1);
        }
    }
}
