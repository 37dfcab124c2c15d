//! `GET /v1/me` and `GET /v1/me/shifts`: the agent's own profile, state and shifts.

use actix_web::{web, HttpRequest, HttpResponse};
use http_kit::{document, now_secs, wants_csv, AgentOnly, ApiError, Authenticated};
use ledger::{Ledger, PayRules};
use serde::Deserialize;
use shared::domain::AgentId;
use shared::error::ErrorCode;
use shared::store::Store;

fn agent_id(auth: Authenticated<AgentOnly>) -> Result<AgentId, ApiError> {
    AgentId::try_from(auth.claims.sub)
        .map_err(|_| ApiError::new(ErrorCode::AgentNotFound, "this agent is not on the roster"))
}

/// The agent of the token, with its state.
pub async fn me(
    auth: Authenticated<AgentOnly>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let id = agent_id(auth)?;
    let view = store.agent(&id).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::AgentNotFound, "this agent is not on the roster")
    })?;
    Ok(HttpResponse::Ok().json(view))
}

/// The query of `GET /v1/me/shifts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftsQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// The agent's own shifts overlapping `[from, to)`, in the shape of `GET /v1/payroll/shifts`.
pub async fn shifts(
    auth: Authenticated<AgentOnly>,
    req: HttpRequest,
    q: Result<web::Query<ShiftsQuery>, actix_web::Error>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    rules: web::Data<PayRules>,
) -> Result<HttpResponse, ApiError> {
    let q = q.map_err(|e| ApiError::new(ErrorCode::MalformedQuery, e.to_string()))?;
    let (from, to) = ledger::report::time_window(q.from.as_deref(), q.to.as_deref())?;
    let csv = wants_csv(&req, q.format.as_deref())?;
    let id = agent_id(auth)?;
    let rows = ledger
        .shift_views(
            from,
            to,
            Some(id.as_str()),
            now_secs(&store).await,
            rules.breaks_paid,
        )
        .await
        .map_err(ledger::client_error)?;
    Ok(document(ledger::report::shifts_document(
        from, to, &rows, csv,
    )))
}
