//! `GET /v1/events` (API.md §10): the public events as Server-Sent Events.
//!
//! One reader per dispatcher ([`Live::run`]) follows the stream and builds each event's body
//! once, for every client of this instance, through a broadcast channel; what it reads also
//! feeds the wait estimates ([`super::waits`]). A client with
//! `Last-Event-ID` is first sent what followed that event, read from the stream page by page
//! (it is kept an hour at least, `EVENT_RETENTION_SECS`), then the live events after the last
//! one it was sent. Each client has a bounded buffer: one that falls more than [`BUFFERED`]
//! events behind is dropped (its next connection resumes with `Last-Event-ID`). A comment every
//! [`HEARTBEAT`] keeps proxies from closing a quiet stream.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use http_kit::{Admin, ApiError, Authenticated};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::AsyncCommands;
use serde::Deserialize;
use shared::error::ClientError;
use shared::events::public::{EventId, TopicFilter};
use shared::events::{Event, StreamEvent, StreamId};
use shared::store::{Store, StoreError};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use super::waits::{Waits, WINDOW};
use super::{Published, Publisher};

/// How many events a client may fall behind before it is dropped.
pub const BUFFERED: usize = 1024;
/// How often a quiet stream gets a comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Entries read per page, live and when resuming.
const PAGE: usize = 500;

/// The live events of this instance, for its SSE clients.
#[derive(Clone)]
pub struct Live {
    store: Store,
    publisher: Publisher,
    waits: Waits,
    tx: broadcast::Sender<Arc<Published>>,
}

impl Live {
    /// Live events read from `store` with bodies built by `publisher`.
    /// Live events read from `store`, which also feed the wait estimates `waits`.
    pub fn new(store: Store, publisher: Publisher, waits: Waits) -> Self {
        let (tx, _) = broadcast::channel(BUFFERED);
        Self {
            store,
            publisher,
            waits,
            tx,
        }
    }

    /// Reads the roster (agents' languages and who is online) and the last [`WINDOW`] of the
    /// stream into the wait model; returns the stream id it read up to.
    async fn warm_up(&self) -> Result<String, StoreError> {
        let mut cursor = None;
        loop {
            let (page, next) = self.store.agents_page(None, 1000, cursor.as_ref()).await?;
            for a in &page {
                self.waits.learn_agent(a);
            }
            match next.and_then(|n| n.parse::<shared::domain::AgentId>().ok()) {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let now: i64 = self.store.now_ms().await?;
        let since = now - i64::try_from(WINDOW.as_millis()).unwrap_or(0);
        let events = self.store.keys().events();
        let mut from = format!("{since}-0");
        loop {
            let page: StreamRangeReply = self
                .store
                .conn()
                .xrange_count(&events, &from, "+", PAGE)
                .await?;
            for entry in &page.ids {
                from = format!("({}", entry.id);
                if let Some(Ok(event)) = StreamEvent::from_entry(entry) {
                    self.learn(&event).await;
                }
            }
            if page.ids.len() < PAGE {
                return Ok(page
                    .ids
                    .last()
                    .map_or_else(|| format!("{since}-0"), |e| e.id.clone()));
            }
        }
    }

    /// Feeds the wait model, reading the profile of an agent it does not know yet.
    async fn learn(&self, event: &StreamEvent) {
        let reread = match &event.event {
            Event::AgentUpserted { agent } => Some(agent),
            Event::AgentStatus { agent, .. } if !self.waits.knows_agent(agent) => Some(agent),
            _ => None,
        };
        if let Some(Ok(id)) = reread.map(|a| a.parse::<shared::domain::AgentId>()) {
            if let Ok(Some(a)) = self.store.agent(&id).await {
                self.waits.learn_agent(&a);
            }
        }
        self.waits.observe(event);
    }

    /// Follows the stream until `shutdown`, building bodies only while a client listens.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut conn = self.store.dedicated();
        let mut last: Option<String> = None;
        let events = self.store.keys().events();
        while !shutdown.is_cancelled() {
            let step = async {
                let from = match &last {
                    Some(id) => id.clone(),
                    None => self.warm_up().await?,
                };
                let conn = conn.get().await?;
                let options = StreamReadOptions::default().count(PAGE).block(2000);
                let read: Option<StreamReadReply> =
                    conn.xread_options(&[&events], &[&from], &options).await?;
                Ok::<_, StoreError>((from, read))
            };
            let (from, read) = tokio::select! {
                () = shutdown.cancelled() => return,
                r = step => match r {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::warn!(error = %e, "live events: reading the stream failed; retrying");
                        conn.failed(&e);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            last = Some(from);
            let entries = read.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
            for entry in entries {
                last = Some(entry.id.clone());
                let Some(Ok(event)) = StreamEvent::from_entry(&entry) else {
                    continue;
                };
                self.learn(&event).await;
                if self.tx.receiver_count() == 0 {
                    continue;
                }
                match self.publisher.publish(&event, |_| true).await {
                    Ok(published) => {
                        for p in published {
                            let _ = self.tx.send(Arc::new(p));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, id = %event.id, "live events: an event's body could not be built; left out")
                    }
                }
            }
        }
    }
}

/// `?types=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Comma-separated event types, `ticket.*` allowed; all when absent.
    types: Option<String>,
}

fn frame(p: &Published) -> web::Bytes {
    web::Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        p.id, p.topic, p.body
    ))
}

/// Sends `client` what followed `after` in the stream, page by page; returns the last event sent
/// (or `after`). Stops early (`None`) if the client went away.
async fn resume(
    live: &Live,
    filter: &TopicFilter,
    after: EventId,
    client: &mpsc::Sender<web::Bytes>,
) -> Result<Option<EventId>, ApiError> {
    let events = live.store.keys().events();
    let mut from = after.entry.to_string();
    let mut last = after;
    loop {
        let page: StreamRangeReply = live
            .store
            .conn()
            .xrange_count(&events, &from, "+", PAGE)
            .await
            .map_err(StoreError::from)?;
        let n = page.ids.len();
        for entry in &page.ids {
            from = format!("({}", entry.id);
            let Some(Ok(event)) = StreamEvent::from_entry(entry) else {
                continue;
            };
            let published = live
                .publisher
                .publish(&event, |t| filter.wants(t))
                .await
                .map_err(ledger::client_error)?;
            for p in published {
                if p.id <= last {
                    continue;
                }
                if client.send(frame(&p)).await.is_err() {
                    return Ok(None);
                }
                last = p.id;
            }
        }
        if n < PAGE {
            return Ok(Some(last));
        }
    }
}

/// `GET /v1/events`.
#[utoipa::path(
    get,
    path = "/v1/events",
    operation_id = "events",
    tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (kept at least an hour)."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id:` the event id, `event:` its type, `data:` the body of API.md §9; a comment every 15 s.", content_type = "text/event-stream", body = String),
        (status = 422, description = "An unknown type in `types`, or a `Last-Event-ID` this stream never sent."),
    ),
    security(("bearer" = []))
)]
pub async fn events(
    _auth: Authenticated<Admin>,
    req: HttpRequest,
    query: Result<web::Query<EventsQuery>, actix_web::Error>,
    live: web::Data<Live>,
) -> Result<HttpResponse, ApiError> {
    let query = http_kit::query(query)?;
    let filter = match query.types.as_deref() {
        None | Some("") => TopicFilter::all(),
        Some(types) => {
            let types: Vec<&str> = types.split(',').collect();
            TopicFilter::new(&types).map_err(|e| ApiError(ClientError::field("types", e)))?
        }
    };
    let after = match req.headers().get("Last-Event-ID") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| {
                    EventId::parse(v.trim()).or_else(|| {
                        StreamId::parse(v.trim()).map(|entry| EventId { entry, n: u8::MAX })
                    })
                })
                .ok_or_else(|| {
                    ApiError(ClientError::field(
                        "Last-Event-ID",
                        "must be the id of an event this stream sent",
                    ))
                })?,
        ),
    };
    // Subscribed before the catch-up reads the stream: what it does not read comes live.
    let mut rx = live.tx.subscribe();
    let (client, out) = mpsc::channel::<web::Bytes>(16);
    let live = live.get_ref().clone();
    tokio::spawn(async move {
        let _ = client
            .send(web::Bytes::from_static(b": connected\n\n"))
            .await;
        let mut last = None;
        if let Some(after) = after {
            match resume(&live, &filter, after, &client).await {
                Ok(Some(id)) => last = Some(id),
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e.0.detail, "live events: resuming failed; the client is dropped");
                    return;
                }
            }
        }
        let mut heartbeat =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let sent = tokio::select! {
                got = rx.recv() => match got {
                    Ok(p) => {
                        if !filter.wants(p.topic) || last.is_some_and(|l| p.id <= l) {
                            continue;
                        }
                        last = Some(p.id);
                        heartbeat.reset();
                        client.send(frame(&p)).await
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::info!(behind = n, "live events: a client too slow for the stream was dropped");
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => client.send(web::Bytes::from_static(b": heartbeat\n\n")).await,
                () = client.closed() => return,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(out, |mut out| async move {
        out.recv()
            .await
            .map(|bytes| (Ok::<_, actix_web::Error>(bytes), out))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
