//! Webhooks (API.md §9): endpoints, and the deliveries of every public event to those that
//! subscribe to it, signed as Standard Webhooks specifies.
//!
//! - [`routes`]: `/v1/webhooks…`, for operators.
//! - [`fanout`]: the stream's consumer group `webhooks`, shared by the dispatchers, queues each
//!   event's deliveries once (`src/lua/webhooks.lua`).
//! - [`deliver`]: each dispatcher tries the due deliveries, a few per endpoint at a time, so a
//!   slow endpoint holds up only itself; failures are retried on the schedule, with jitter.
//! - [`sign`]: the signature.

pub mod deliver;
pub mod fanout;
pub mod routes;
pub mod sign;

use serde::{Deserialize, Serialize};
use shared::domain::Timestamp;
use shared::events::public::TopicFilter;
use shared::store::{Store, StoreError};

/// The most endpoints a namespace may have.
pub const MAX_ENDPOINTS: u32 = 100;

/// An endpoint as Redis keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Its id.
    pub webhook_id: String,
    /// Where deliveries go.
    pub url: String,
    /// The types it receives (`*`, `ticket.*`, names).
    pub events: Vec<String>,
    /// The operator's note.
    pub description: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// `whsec_…`.
    pub secret: String,
}

impl Endpoint {
    /// Its filter (checked when the endpoint was made).
    pub fn filter(&self) -> TopicFilter {
        TopicFilter::new(&self.events).unwrap_or_default()
    }
}

/// Every endpoint of the namespace (one that does not parse, written by a newer build, is
/// skipped).
pub async fn endpoints(store: &Store) -> Result<Vec<Endpoint>, StoreError> {
    let mut out: Vec<Endpoint> = store
        .webhooks()
        .await?
        .into_iter()
        .filter_map(|(id, json)| match serde_json::from_str(&json) {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::error!(webhook_id = id, error = %e, "an unreadable webhook endpoint");
                None
            }
        })
        .collect();
    out.sort_by(|a, b| (a.created_at, &a.webhook_id).cmp(&(b.created_at, &b.webhook_id)));
    Ok(out)
}
