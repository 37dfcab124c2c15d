//! Queue visibility (API.md §8), for the escalation engine: `GET /v1/queues`. (A ticket's own
//! place and wait are in `GET /v1/tickets/{id}`, [`super::tickets`].)

use actix_web::{web, HttpResponse};
use http_kit::{ApiError, Authenticated, Tickets};
use serde::{Deserialize, Serialize};
use shared::domain::Language;
use shared::error::ClientError;
use shared::store::Store;

use utoipa::{IntoParams, ToSchema};

use crate::outbound::waits::Waits;

/// `?language=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QueuesQuery {
    /// Only this language's queue.
    #[param(value_type = Option<Language>)]
    language: Option<String>,
}

/// One language's queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// The language.
    #[schema(value_type = Language)]
    language: String,
    /// Tickets queued.
    waiting: u64,
    /// Seconds the oldest queued ticket has waited; null when none waits.
    oldest_wait_secs: Option<u64>,
    /// Agents on shift who speak it (available, on break or away).
    agents_online: u64,
    /// Agents who could be offered a ticket of it now.
    agents_available: u64,
    /// The expected wait of a new ticket of priority 5 with no skills; null when nothing has
    /// been measured yet.
    estimated_wait_secs: Option<u64>,
}

/// `GET /v1/queues`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queues {
    /// One entry per language with online agents or waiting tickets, by language.
    queues: Vec<QueueView>,
}

/// `GET /v1/queues[?language=]`: each language with online agents or waiting tickets.
#[utoipa::path(
    get,
    path = "/v1/queues",
    operation_id = "listQueues",
    tag = "tickets",
    params(QueuesQuery),
    responses(
        (status = 200, description = "The queues.", body = Queues),
        (status = 422, description = "`language` is not an ISO 639-1 code."),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: Authenticated<Tickets>,
    query: Result<web::Query<QueuesQuery>, actix_web::Error>,
    store: web::Data<Store>,
    waits: web::Data<Waits>,
) -> Result<HttpResponse, ApiError> {
    let query = http_kit::query(query)?;
    let only = match query.language {
        Some(l) => Some(
            Language::try_from(l.as_str())
                .map_err(|e| ApiError(ClientError::field("language", e)))?
                .as_str()
                .to_owned(),
        ),
        None => None,
    };
    let languages = match &only {
        Some(l) => vec![l.clone()],
        None => waits.online_languages(),
    };
    let now = store.now_ms().await?;
    let mut queues: Vec<QueueView> = store
        .queue_overview(&languages)
        .await?
        .into_iter()
        .filter(|f| only.as_ref().is_none_or(|l| *l == f.language))
        .map(|f| {
            let agents_online = waits.online(&f.language);
            let estimated_wait_secs = if f.agents_available > 0 {
                Some(waits.offered(&f.language).unwrap_or(0))
            } else {
                waits.queued(&f.language, f.new_position, now)
            };
            QueueView {
                oldest_wait_secs: f
                    .oldest_created_ms
                    .map(|c| u64::try_from((now - c).max(0) / 1000).unwrap_or(0)),
                waiting: f.waiting,
                agents_online,
                agents_available: f.agents_available,
                estimated_wait_secs,
                language: f.language,
            }
        })
        .filter(|q| q.waiting > 0 || q.agents_online > 0)
        .collect();
    queues.sort_by(|a, b| a.language.cmp(&b.language));
    Ok(HttpResponse::Ok().json(Queues { queues }))
}
