//! HTTP routes of the dispatcher: one module per resource. Handlers are thin: extract (the role
//! is in the signature), call the store, map the result.

pub mod agents;
pub mod payroll;
pub mod queues;
pub mod tickets;

use actix_web::web;
use http_kit::method_not_allowed;

use crate::outbound::sse;
use crate::webhooks::routes as webhooks;

/// The dispatcher's OpenAPI document (API.md §11), of the handlers below.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "dispatcher",
        description = "Roster, ticket intake, queues, payroll, webhooks and live events of the remote-agent dispatch platform (API.md §1–§11)."
    ),
    paths(
        agents::list, agents::put, agents::get, agents::delete,
        tickets::create, tickets::get, tickets::cancel,
        queues::list,
        payroll::shifts, payroll::workdays,
        webhooks::create, webhooks::list, webhooks::get, webhooks::delete, webhooks::deliveries,
        sse::events,
        crate::geofence::list,
    ),
    tags(
        (name = "roster", description = "Agents' profiles and live state (role `admin`)."),
        (name = "tickets", description = "Escalated conversations and their queues (role `escalation` or `admin`)."),
        (name = "payroll", description = "Shifts and workdays (role `payroll` or `admin`)."),
        (name = "webhooks", description = "Signed callbacks, Standard Webhooks (role `admin`)."),
        (name = "events", description = "Live events as Server-Sent Events (role `admin`)."),
        (name = "operations", description = "Health, readiness, metrics and this document, without authentication."),
    )
)]
pub struct ApiDoc;

/// Registers every `/v1` route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource =
        |path: &str| web::resource(path.to_owned()).default_service(web::to(method_not_allowed));
    cfg.service(resource("/v1/agents").route(web::get().to(agents::list)))
        .service(
            resource("/v1/agents/{agent_id}")
                .route(web::put().to(agents::put))
                .route(web::get().to(agents::get))
                .route(web::delete().to(agents::delete)),
        )
        .service(resource("/v1/tickets").route(web::post().to(tickets::create)))
        .service(resource("/v1/payroll/shifts").route(web::get().to(payroll::shifts)))
        .service(resource("/v1/payroll/workdays").route(web::get().to(payroll::workdays)))
        .service(
            resource("/v1/tickets/{ticket_id}")
                .route(web::get().to(tickets::get))
                .route(web::delete().to(tickets::cancel)),
        )
        .service(
            resource("/v1/webhooks")
                .route(web::post().to(webhooks::create))
                .route(web::get().to(webhooks::list)),
        )
        .service(
            resource("/v1/webhooks/{webhook_id}")
                .route(web::get().to(webhooks::get))
                .route(web::delete().to(webhooks::delete)),
        )
        .service(
            resource("/v1/webhooks/{webhook_id}/deliveries")
                .route(web::get().to(webhooks::deliveries)),
        )
        .service(resource("/v1/events").route(web::get().to(sse::events)))
        .service(resource("/v1/queues").route(web::get().to(queues::list)))
        .service(resource("/v1/geofences").route(web::get().to(crate::geofence::list)))
        .service(resource("/metrics").route(web::get().to(crate::metrics::scrape)));
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let document = DOCUMENT
        .get_or_init(|| http_kit::openapi::document(<ApiDoc as utoipa::OpenApi>::openapi()));
    http_kit::openapi::route(cfg, "/openapi.json", document.clone());
}
