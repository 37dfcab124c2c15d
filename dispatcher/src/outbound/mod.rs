//! What the dispatcher tells other systems as it happens (API.md §9 and §10): the public
//! events of the stream, with their bodies, for webhooks ([`crate::webhooks`]) and the live
//! events stream ([`sse`]).
//!
//! [`Publisher::publish`] turns one stream entry into its public events
//! ([`shared::events::public::announcements`]) and builds each body,
//! `{"type", "timestamp", "data"}`: a ticket event's `data` is the ticket as it stands when the
//! body is built (read from Redis, or from the archive once it left), with the status the
//! event gave it and what the event adds (the offer, the reason, the agent).

pub mod sse;
pub mod waits;

use ledger::{Ledger, LedgerError};
use serde_json::{json, Map, Value};
use shared::domain::{AgentId, TicketId, TicketStatus, TicketView, Timestamp};
use shared::events::public::{announcements, Announcement, EventId, Subject, Topic};
use shared::events::StreamEvent;
use shared::store::{Store, StoreError};

use waits::Waits;

/// A public event, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    /// Its id.
    pub id: EventId,
    /// Its type.
    pub topic: Topic,
    /// What orders its deliveries (one ticket's, one agent's).
    pub order_key: String,
    /// The body, JSON.
    pub body: String,
}

/// Builds the bodies of public events.
#[derive(Clone)]
pub struct Publisher {
    store: Store,
    ledger: Ledger,
    waits: Waits,
}

/// Fills in a live ticket's place and wait (API.md §8): its place while queued, the estimate
/// while queued or offered.
pub async fn with_wait(
    store: &Store,
    waits: &Waits,
    view: &mut TicketView,
) -> Result<(), StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    match view.status {
        TicketStatus::Queued => {
            view.queue_position = store.queue_position(&view.ticket_id).await?;
            view.estimated_wait_secs = view
                .queue_position
                .and_then(|p| waits.queued(&view.language, p, now));
        }
        TicketStatus::Offered => view.estimated_wait_secs = waits.offered(&view.language),
        _ => {}
    }
    Ok(())
}

impl Publisher {
    /// A publisher reading tickets from `store`, and from `ledger` once they left it.
    pub fn new(store: Store, ledger: Ledger, waits: Waits) -> Self {
        Self {
            store,
            ledger,
            waits,
        }
    }

    /// The public events of `entry` that `wanted` keeps, with their bodies. A ticket that
    /// neither Redis nor the archive knows (it cannot happen unless both lost it) gives no
    /// event.
    pub async fn publish(
        &self,
        entry: &StreamEvent,
        wanted: impl Fn(Topic) -> bool,
    ) -> Result<Vec<Published>, LedgerError> {
        let mut out = Vec::new();
        for a in announcements(entry).into_iter().filter(|a| wanted(a.topic)) {
            if let Some(data) = self.data(&a).await? {
                let body = json!({
                    "type": a.topic,
                    "timestamp": Timestamp::from_millis(a.ts),
                    "data": data,
                });
                out.push(Published {
                    id: a.id,
                    topic: a.topic,
                    order_key: a.subject.order_key(),
                    body: body.to_string(),
                });
            }
        }
        Ok(out)
    }

    async fn data(&self, a: &Announcement) -> Result<Option<Value>, LedgerError> {
        let (ticket, status, extra, agent) = match &a.subject {
            Subject::Complete(data) => return Ok(Some(data.clone())),
            Subject::Ticket {
                ticket,
                status,
                extra,
                agent,
            } => (ticket, status, extra, agent),
        };
        let Ok(id) = ticket.parse::<TicketId>() else {
            return Ok(None);
        };
        let view = match self.store.ticket(&id).await? {
            Some(view) => Some(view),
            None => self.ledger.ticket(&id).await?,
        };
        let Some(mut view) = view else {
            tracing::warn!(ticket = %id, event = %a.id, "an event of a ticket nobody knows");
            return Ok(None);
        };
        view.status = *status;
        with_wait(&self.store, &self.waits, &mut view).await?;
        let Value::Object(mut data) = serde_json::to_value(&view).unwrap_or_default() else {
            return Ok(None);
        };
        for (k, v) in extra {
            data.insert(k.clone(), v.clone());
        }
        if let Some(agent) = agent {
            data.insert("agent".into(), self.agent(agent).await?);
        }
        Ok(Some(Value::Object(data)))
    }

    /// `{"agent_id", "display_name"}` (the name null if the agent has left the roster).
    async fn agent(&self, agent: &str) -> Result<Value, LedgerError> {
        let mut out = Map::new();
        out.insert("agent_id".into(), json!(agent));
        let name = match agent.parse::<AgentId>() {
            Ok(id) => self
                .store
                .agent(&id)
                .await?
                .map(|a| json!(a.profile.display_name)),
            Err(_) => None,
        };
        out.insert("display_name".into(), name.unwrap_or(Value::Null));
        Ok(Value::Object(out))
    }
}
