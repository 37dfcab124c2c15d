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
#[utoipa::path(
    get,
    path = "/v1/me",
    operation_id = "getMe",
    tag = "agent",
    responses(
        (status = 200, description = "The agent's own profile and live state.", body = shared::domain::AgentView),
        (status = 404, description = "The token's agent is not on the roster."),
    ),
    security(("bearer" = []))
)]
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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShiftsQuery {
    /// The window's start, RFC 3339.
    #[param(required = true, format = DateTime)]
    from: Option<String>,
    /// The window's end (exclusive), at most 93 days after `from`.
    #[param(required = true, format = DateTime)]
    to: Option<String>,
    /// `csv` for RFC 4180 CSV (as `Accept: text/csv`), `json` (the default).
    #[param(pattern = "^(csv|json)$")]
    format: Option<String>,
}

/// The agent's own shifts overlapping `[from, to)`, in the shape of `GET /v1/payroll/shifts`.
#[utoipa::path(
    get,
    path = "/v1/me/shifts",
    operation_id = "myShifts",
    tag = "agent",
    params(ShiftsQuery),
    responses(
        (status = 200, description = "The agent's own shifts, clipped to the window.", content(
            (ledger::report::ShiftsReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 404, description = "The token's agent is not on the roster."),
        (status = 422, description = "`to` not after `from`, or a window over 93 days."),
        (status = 503, description = "PostgreSQL (the ledger) or Redis is unavailable."),
    ),
    security(("bearer" = []))
)]
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
