//! The roster (API.md §3), for operators.

use actix_web::{web, HttpResponse};
use http_kit::{parse_id, Admin, ApiError, Authenticated, ValidJson};
use serde::Deserialize;
use shared::domain::{AgentId, AgentProfile, AgentStatus};
use shared::error::{ClientError, ErrorCode};
use shared::store::{ProfileFields, Store, Upserted};

use crate::geofence::Geofences;

fn agent_id(path: web::Path<String>) -> Result<AgentId, ApiError> {
    parse_id("agent_id", path.into_inner())
}

fn not_found(id: &AgentId) -> ApiError {
    ApiError::new(ErrorCode::AgentNotFound, format!("no agent {id}"))
}

/// `PUT /v1/agents/{agent_id}`: creates (201) or replaces (200) a profile.
pub async fn put(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    body: ValidJson<AgentProfile>,
    store: web::Data<Store>,
    fences: web::Data<Geofences>,
) -> Result<HttpResponse, ApiError> {
    let id = agent_id(path)?;
    let profile = body.value;
    let regions = profile
        .location
        .map(|l| fences.containing(l.lat(), l.lon()))
        .unwrap_or_default();
    let created = store
        .put_agent(&id, &ProfileFields::new(&profile, &regions))
        .await?;
    let view = store.agent(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(if created == Upserted::Created {
        HttpResponse::Created().json(view)
    } else {
        HttpResponse::Ok().json(view)
    })
}

/// `GET /v1/agents/{agent_id}`: the profile with its live state.
pub async fn get(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id = agent_id(path)?;
    let view = store.agent(&id).await?.ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(view))
}

/// How many agents a page of `GET /v1/agents` holds unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// The most `limit` may ask for.
pub const MAX_PAGE: usize = 1000;

/// The query of `GET /v1/agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<AgentStatus>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/agents[?status=…][&limit=…][&cursor=…]`: a page of the roster in id order, and
/// `next_cursor` to ask for the next one (null on the last page).
pub async fn list(
    _auth: Authenticated<Admin>,
    query: Result<web::Query<ListQuery>, actix_web::Error>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let query = http_kit::query(query)?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError(ClientError::field(
            "limit",
            format!("must be 1 to {MAX_PAGE}, not {limit}"),
        )));
    }
    let cursor = match query.cursor {
        Some(c) => Some(AgentId::try_from(c).map_err(|_| {
            ApiError(ClientError::field(
                "cursor",
                "is not a cursor this endpoint returned",
            ))
        })?),
        None => None,
    };
    let (agents, next) = store
        .agents_page(query.status, limit, cursor.as_ref())
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "agents": agents, "next_cursor": next })))
}

/// `DELETE /v1/agents/{agent_id}`: closes its connection, ends its shift, requeues its work.
pub async fn delete(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id = agent_id(path)?;
    store.remove_agent(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}
