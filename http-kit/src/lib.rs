//! actix-web glue shared by `dispatcher` and `agent-app-api`.
//!
//! - [`ApiError`]: every error leaves as `application/problem+json` (RFC 9457) with the stable
//!   `code` of [`shared::error::ErrorCode`]; a 5xx tells the client nothing internal.
//! - [`Authenticated`]: the bearer-token extractor; a handler names the roles it admits in its
//!   signature (`Authenticated<Admin>`, `Authenticated<Tickets>`, ...).
//! - [`ValidJson`]: a JSON body checked for media type (415), size (413), syntax (400) and
//!   values (422, naming the field).
//! - [`health`]: `/healthz` and `/readyz`, and the 404/405 fallbacks.

mod auth;
mod body;
mod health;
pub mod openapi;
pub mod web;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use shared::error::{ClientError, ErrorCode};
use shared::store::{Store, StoreError};

pub use auth::{bearer, Admin, AgentOnly, Allowed, Authenticated, Payroll, Tickets};
pub use body::{BodyLimit, ValidJson};
pub use health::{health, method_not_allowed, not_found, Probe, Readiness};

/// An error answered as a problem document.
#[derive(Debug)]
pub struct ApiError(pub ClientError);

impl ApiError {
    /// An error with `code` and `detail`.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self(ClientError::new(code, detail))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self(client_error(e))
    }
}

/// What a client is told about a store failure; the cause goes to the log, not the client.
pub fn client_error(e: StoreError) -> ClientError {
    match e {
        StoreError::Rejected(code) => ClientError::new(code, rejected_detail(code)),
        StoreError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "redis unavailable");
            ClientError::new(
                ErrorCode::Unavailable,
                "the live state store is unavailable; retry shortly",
            )
        }
        e @ StoreError::NotReplicated { .. } => {
            tracing::warn!(error = %e, "a write not confirmed by enough replicas");
            ClientError::new(
                ErrorCode::Unavailable,
                format!("{e}, so a failover could lose it; retry with the same Idempotency-Key"),
            )
        }
        StoreError::Corrupt(cause) => {
            tracing::error!(error = %cause, "unexpected store reply");
            ClientError::new(ErrorCode::Internal, "internal error")
        }
    }
}

fn rejected_detail(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::AgentNotFound => "no agent with this id",
        ErrorCode::TicketNotFound => "no such ticket, or not assigned to this agent",
        ErrorCode::OfferNotFound => "no such offer for this agent",
        ErrorCode::OfferExpired => "the offer has expired",
        ErrorCode::TicketCompleted => "the ticket is already completed",
        ErrorCode::InvalidStatusTransition => "this status cannot be set from the current one",
        ErrorCode::IdempotencyKeyReused => {
            "Idempotency-Key: this key was used with a different request body"
        }
        ErrorCode::IdempotencyKeyInProgress => {
            "Idempotency-Key: a request with this key is still being processed"
        }
        _ => "the request conflicts with the current state",
    }
}

/// How long a client is told to wait (`Retry-After`, seconds) before retrying what a 503
/// refused: about how long a Redis failover or reconnection takes.
pub const RETRY_AFTER_SECS: u32 = 2;

/// The problem document of an error; a 503 (Redis or PostgreSQL unavailable) says when to
/// retry (`Retry-After`).
pub fn problem(e: &ClientError) -> HttpResponse {
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
    }
    response
        .content_type("application/problem+json")
        .json(serde_json::json!({
            "type": format!("/problems/{}", e.code.as_str()),
            "title": e.code.title(),
            "status": e.code.status(),
            "detail": e.detail,
            "code": e.code.as_str(),
        }))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        problem(&self.0)
    }
}

/// `GET /metrics`: every registered series in the Prometheus text format (API.md §11).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses((
        status = 200,
        description = "Every series in the Prometheus text exposition format 0.0.4, without authentication or personal data.",
        content_type = "text/plain",
        body = String
    ))
)]
pub async fn metrics() -> HttpResponse {
    let (body, content_type) = shared::metrics::render();
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// A query string as `T`, or 400 `malformed_query` naming what is wrong (an unknown parameter,
/// a value of the wrong type). Handlers take `Result<web::Query<T>, actix_web::Error>`.
pub fn query<T>(q: Result<actix_web::web::Query<T>, actix_web::Error>) -> Result<T, ApiError> {
    q.map(actix_web::web::Query::into_inner)
        .map_err(|e| ApiError::new(ErrorCode::MalformedQuery, e.to_string()))
}

/// Path identifiers are parsed like body fields: a bad one is a 422 naming the field.
pub fn parse_id<T: TryFrom<String, Error = String>>(
    field: &str,
    raw: String,
) -> Result<T, ApiError> {
    T::try_from(raw).map_err(|e| ApiError(ClientError::field(field, e)))
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// How a service run ended badly.
#[derive(Debug)]
pub enum Exit {
    /// It could not start (bad configuration, address in use): exit code 2.
    Startup(String),
    /// It failed while running: exit code 1.
    Runtime(String),
}

/// The whole of a service's `main`: logging, settings from the environment, a multi-threaded
/// runtime, then `serve`; every failure is one line on stderr naming the service.
pub fn run_service<F, Fut>(name: &str, serve: F) -> std::process::ExitCode
where
    F: FnOnce(shared::config::Settings) -> Fut,
    Fut: std::future::Future<Output = Result<(), Exit>>,
{
    use std::process::ExitCode;
    shared::telemetry::init();
    let settings = match shared::config::Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit::Startup(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::from(2)
        }
        Err(Exit::Runtime(e)) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The authoritative clock (Redis) in whole seconds, or this machine's if Redis is away.
pub async fn now_secs(store: &Store) -> i64 {
    match store.now_ms().await {
        Ok(ms) => ms.div_euclid(1000),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    }
}

/// Whether the client asked for CSV (`format=csv` or `Accept: text/csv`); 400 for an unknown
/// format.
pub fn wants_csv(req: &HttpRequest, format: Option<&str>) -> Result<bool, ApiError> {
    match format {
        Some("csv") => Ok(true),
        Some("json") => Ok(false),
        Some(other) => Err(ApiError::new(
            ErrorCode::MalformedQuery,
            format!("format: {other:?} is not csv or json"),
        )),
        None => Ok(req
            .headers()
            .get(actix_web::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/csv"))),
    }
}

/// A report's body (`ledger::report::Document`: content type and bytes) as a 200.
pub fn document((content_type, body): (&'static str, Vec<u8>)) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).body(body)
}
