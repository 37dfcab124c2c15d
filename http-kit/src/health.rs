//! Health and readiness, and the problem-document fallbacks for unknown routes and methods.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use shared::error::{ClientError, ErrorCode};

use crate::problem;

/// A check: `None` while all is well, else what is wrong (shown in `/readyz`'s body).
type Check = dyn Fn() -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync;

/// One dependency `/readyz` reports on.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    required: bool,
    check: Arc<Check>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// A dependency without which the service cannot do its work: `/readyz` is 503 while
    /// `check` fails.
    pub fn required<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            name,
            required: true,
            check: Arc::new(move || {
                let ok = check();
                Box::pin(async move { (!ok.await).then(|| "unavailable".to_owned()) })
            }),
        }
    }

    /// A dependency only some endpoints need: `/readyz` reports it but stays 200.
    pub fn optional<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            required: false,
            ..Self::required(name, check)
        }
    }

    /// Something `/readyz` reports without ever failing on it: `check` says what is wrong, if
    /// anything (the ledger's gaps).
    pub fn report<F, Fut>(name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        Self {
            name,
            required: false,
            check: Arc::new(move || Box::pin(check())),
        }
    }
}

/// What `/readyz` checks, in order.
#[derive(Debug, Clone, Default)]
pub struct Readiness(pub Vec<Probe>);

/// Registers `GET /healthz` (the process runs) and `GET /readyz` (every required dependency
/// answers; the app data must hold a [`Readiness`]).
pub fn health(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// `GET /healthz`: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses((status = 200, description = "The process runs.", body = Object, example = json!({"status": "ok"})))
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// How long one probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// 200 while every required dependency answers; the body names each dependency's state, since
/// an optional one failing affects only some endpoints (PostgreSQL: only payroll).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Every required dependency answers; each one's state by name.", body = Object),
        (status = 503, description = "A required dependency (Redis) does not answer or cannot take writes."),
    )
)]
pub(crate) async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let results = futures_util::future::join_all(readiness.0.iter().map(|p| async move {
        let problem = tokio::time::timeout(PROBE_TIMEOUT, (p.check)())
            .await
            .unwrap_or_else(|_| Some("unavailable".to_owned()));
        (p, problem)
    }))
    .await;
    let mut body = serde_json::Map::new();
    let mut failed = Vec::new();
    for (probe, problem) in &results {
        let state = problem.as_deref().unwrap_or("ok");
        body.insert(probe.name.to_owned(), serde_json::Value::from(state));
        if problem.is_some() && probe.required {
            failed.push(probe.name);
        }
    }
    if failed.is_empty() {
        body.insert("status".into(), "ready".into());
        return HttpResponse::Ok().json(body);
    }
    let states: Vec<String> = results
        .iter()
        .map(|(p, problem)| format!("{}: {}", p.name, problem.as_deref().unwrap_or("ok")))
        .collect();
    problem(&ClientError::new(
        ErrorCode::Unavailable,
        format!(
            "not ready: {} unavailable; dispatch is paused until it is back ({})",
            failed.join(", "),
            states.join(", ")
        ),
    ))
}

/// The fallback for paths no route matches.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    problem(&ClientError::new(
        ErrorCode::NotFound,
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// The fallback for a known path with a method it does not take.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    problem(&ClientError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}
