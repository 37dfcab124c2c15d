//! Health and readiness, and the problem-document fallbacks for unknown routes and methods.

use actix_web::{web, HttpRequest, HttpResponse};
use ledger::Ledger;
use shared::error::{ClientError, ErrorCode};
use shared::store::Store;

use crate::problem;

/// Registers `GET /healthz` (the process runs) and `GET /readyz` (Redis answers).
pub fn health(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// 200 while Redis answers (dispatch works); the body also says whether PostgreSQL answers,
/// since without it only the payroll endpoints are affected.
async fn readyz(store: web::Data<Store>, ledger: Option<web::Data<Ledger>>) -> HttpResponse {
    let (redis, postgres) = match &ledger {
        Some(ledger) => futures_util::join!(store.ping(), ledger.ping()),
        None => (store.ping().await, false),
    };
    let postgres = match (&ledger, postgres) {
        (None, _) => "not used",
        (Some(_), true) => "ok",
        (Some(_), false) => "unavailable",
    };
    if redis {
        HttpResponse::Ok().json(serde_json::json!({
            "status": "ready", "redis": "ok", "postgres": postgres,
        }))
    } else {
        problem(&ClientError::new(
            ErrorCode::Unavailable,
            format!(
                "redis does not answer; dispatch is paused until it does (postgres: {postgres})"
            ),
        ))
    }
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
