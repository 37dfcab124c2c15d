//! Payroll (API.md §7): shifts and local workdays, for payroll and operators.

use actix_web::{web, HttpRequest, HttpResponse};
use http_kit::{document, now_secs, parse_id, wants_csv, ApiError, Authenticated, Payroll};
use ledger::report;
use ledger::{Ledger, PayRules};
use serde::Deserialize;
use shared::domain::AgentId;
use shared::error::ErrorCode;
use shared::store::Store;

/// The query of both payroll endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    agent_id: Option<String>,
    format: Option<String>,
}

/// The agent filter, if any: 422 if malformed, 404 if neither the roster nor the ledger knows it.
async fn agent_filter(
    raw: Option<String>,
    store: &Store,
    ledger: &Ledger,
) -> Result<Option<AgentId>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let id: AgentId = parse_id("agent_id", raw)?;
    let on_roster = store.agent(&id).await.map(|a| a.is_some()).unwrap_or(false);
    if !on_roster
        && !ledger
            .knows_agent(id.as_str())
            .await
            .map_err(ledger::client_error)?
    {
        return Err(ApiError::new(
            ErrorCode::AgentNotFound,
            format!("no agent {id}"),
        ));
    }
    Ok(Some(id))
}

/// What both reports take besides their window: the format, the agent filter and now.
struct Request {
    csv: bool,
    agent: Option<AgentId>,
    now: i64,
}

async fn request(
    req: &HttpRequest,
    q: &mut ReportQuery,
    store: &Store,
    ledger: &Ledger,
) -> Result<Request, ApiError> {
    Ok(Request {
        csv: wants_csv(req, q.format.as_deref())?,
        agent: agent_filter(q.agent_id.take(), store, ledger).await?,
        now: now_secs(store).await,
    })
}

/// `GET /v1/payroll/shifts?from=…&to=…[&agent_id=…][&format=csv]`.
#[utoipa::path(
    get,
    path = "/v1/payroll/shifts",
    operation_id = "payrollShifts",
    tag = "payroll",
    params(
        ("from" = String, Query, format = DateTime, description = "The window's start, RFC 3339."),
        ("to" = String, Query, format = DateTime, description = "The window's end (exclusive), at most 93 days after `from`."),
        ("agent_id" = Option<AgentId>, Query, description = "Only this agent's rows."),
        ("format" = Option<String>, Query, description = "`csv` for RFC 4180 CSV (as `Accept: text/csv`), `json` (the default).", pattern = "^(csv|json)$"),
    ),
    responses(
        (status = 200, description = "The report.", content(
            (ledger::report::ShiftsReport = "application/json"),
            (String = "text/csv", example = "shift_id,agent_id,started_at,ended_at,open,online_secs,break_secs,engaged_secs,paid_secs,tickets_completed,hourly_rate_cents,pay_cents,currency"),
        )),
        (status = 404, description = "Neither the roster nor the ledger knows `agent_id`."),
        (status = 422, description = "`to` not after `from`, a window over 93 days, or a malformed `agent_id`."),
        (status = 503, description = "PostgreSQL (the ledger) or Redis is unavailable."),
    ),
    security(("bearer" = []))
)]
pub async fn shifts(
    _auth: Authenticated<Payroll>,
    req: HttpRequest,
    q: Result<web::Query<ReportQuery>, actix_web::Error>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    rules: web::Data<PayRules>,
) -> Result<HttpResponse, ApiError> {
    let mut q = http_kit::query(q)?;
    let (from, to) = report::time_window(q.from.as_deref(), q.to.as_deref())?;
    let r = request(&req, &mut q, &store, &ledger).await?;
    let agent = r.agent.as_ref().map(AgentId::as_str);
    let rows = ledger
        .shift_views(from, to, agent, r.now, rules.breaks_paid)
        .await
        .map_err(ledger::client_error)?;
    Ok(document(report::shifts_document(from, to, &rows, r.csv)))
}

/// `GET /v1/payroll/workdays?from=YYYY-MM-DD&to=YYYY-MM-DD[&agent_id=…][&format=csv]`.
#[utoipa::path(
    get,
    path = "/v1/payroll/workdays",
    operation_id = "payrollWorkdays",
    tag = "payroll",
    params(
        ("from" = String, Query, format = Date, description = "The first local date."),
        ("to" = String, Query, format = Date, description = "The last local date (exclusive), at most 93 days after `from`."),
        ("agent_id" = Option<AgentId>, Query, description = "Only this agent's rows."),
        ("format" = Option<String>, Query, description = "`csv` for RFC 4180 CSV (as `Accept: text/csv`), `json` (the default).", pattern = "^(csv|json)$"),
    ),
    responses(
        (status = 200, description = "The report.", content(
            (ledger::report::WorkdaysReport = "application/json"),
            (String = "text/csv", example = "agent_id,workday,timezone,online_secs,break_secs,engaged_secs,paid_secs,tickets_completed,pay_cents,currency"),
        )),
        (status = 404, description = "Neither the roster nor the ledger knows `agent_id`."),
        (status = 422, description = "`to` not after `from`, a window over 93 days, or a malformed `agent_id`."),
        (status = 503, description = "PostgreSQL (the ledger) or Redis is unavailable."),
    ),
    security(("bearer" = []))
)]
pub async fn workdays(
    _auth: Authenticated<Payroll>,
    req: HttpRequest,
    q: Result<web::Query<ReportQuery>, actix_web::Error>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    rules: web::Data<PayRules>,
) -> Result<HttpResponse, ApiError> {
    let mut q = http_kit::query(q)?;
    let (from, to) = report::date_window(q.from.as_deref(), q.to.as_deref())?;
    let r = request(&req, &mut q, &store, &ledger).await?;
    let agent = r.agent.as_ref().map(AgentId::as_str);
    let rows = ledger
        .workday_rows(from, to, agent, r.now, rules.breaks_paid)
        .await
        .map_err(ledger::client_error)?;
    Ok(document(report::workdays_document(from, to, &rows, r.csv)))
}
