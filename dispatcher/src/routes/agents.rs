//! The roster (API.md §3), for operators.

use actix_web::{web, HttpResponse};
use http_kit::{parse_id, Admin, ApiError, Authenticated, ValidJson};
use serde::{Deserialize, Serialize};
use shared::domain::{AgentId, AgentProfile, AgentStatus, AgentView};
use shared::error::{ClientError, ErrorCode};
use shared::store::{ProfileFields, Store, Upserted};

use utoipa::{IntoParams, ToSchema};

use crate::geofence::Geofences;

fn agent_id(path: web::Path<String>) -> Result<AgentId, ApiError> {
    parse_id("agent_id", path.into_inner())
}

fn not_found(id: &AgentId) -> ApiError {
    ApiError::new(ErrorCode::AgentNotFound, format!("no agent {id}"))
}

/// `PUT /v1/agents/{agent_id}`: creates (201) or replaces (200) a profile.
#[utoipa::path(
    put,
    path = "/v1/agents/{agent_id}",
    operation_id = "putAgent",
    tag = "roster",
    params(("agent_id" = AgentId, Path, description = "The agent.")),
    request_body = AgentProfile,
    responses(
        (status = 200, description = "The profile was replaced.", body = AgentView),
        (status = 201, description = "The agent was added to the roster.", body = AgentView),
    ),
    security(("bearer" = []))
)]
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
#[utoipa::path(
    get,
    path = "/v1/agents/{agent_id}",
    operation_id = "getAgent",
    tag = "roster",
    params(("agent_id" = AgentId, Path, description = "The agent.")),
    responses(
        (status = 200, description = "The profile and its live state.", body = AgentView),
        (status = 404, description = "No agent with this id (`agent_not_found`)."),
        (status = 422, description = "Not an identifier."),
    ),
    security(("bearer" = []))
)]
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only agents with this status.
    status: Option<AgentStatus>,
    /// How many agents a page holds (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$")]
    cursor: Option<String>,
}

/// A page of the roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentPage {
    /// The agents, in id order.
    agents: Vec<AgentView>,
    /// Where the next page starts; null on the last page.
    next_cursor: Option<String>,
}

/// `GET /v1/agents[?status=…][&limit=…][&cursor=…]`: a page of the roster in id order, and
/// `next_cursor` to ask for the next one (null on the last page).
#[utoipa::path(
    get,
    path = "/v1/agents",
    operation_id = "listAgents",
    tag = "roster",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the roster.", body = AgentPage),
        (status = 422, description = "A `limit` out of range or a `cursor` not of this endpoint."),
    ),
    security(("bearer" = []))
)]
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
    Ok(HttpResponse::Ok().json(AgentPage {
        agents,
        next_cursor: next,
    }))
}

/// `DELETE /v1/agents/{agent_id}`: closes its connection, ends its shift, requeues its work.
#[utoipa::path(
    delete,
    path = "/v1/agents/{agent_id}",
    operation_id = "deleteAgent",
    tag = "roster",
    params(("agent_id" = AgentId, Path, description = "The agent.")),
    responses(
        (status = 204, description = "Removed: its connection closed, its shift ended, its work requeued."),
        (status = 404, description = "No agent with this id (`agent_not_found`)."),
        (status = 422, description = "Not an identifier."),
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id = agent_id(path)?;
    store.remove_agent(&id).await?;
    Ok(HttpResponse::NoContent().finish())
}
