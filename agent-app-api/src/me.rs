//! `GET /v1/me`: the agent's own profile and live state.

use actix_web::{web, HttpResponse};
use http_kit::{AgentOnly, ApiError, Authenticated};
use shared::domain::AgentId;
use shared::error::ErrorCode;
use shared::store::Store;

/// The agent of the token, with its state.
pub async fn me(
    auth: Authenticated<AgentOnly>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::new(ErrorCode::AgentNotFound, "this agent is not on the roster");
    let id = AgentId::try_from(auth.claims.sub).map_err(|_| not_found())?;
    let view = store.agent(&id).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok().json(view))
}
