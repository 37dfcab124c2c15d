//! Tickets (API.md §4), for the escalation engine.

use actix_web::{web, HttpRequest, HttpResponse};
use http_kit::{parse_id, ApiError, Authenticated, Tickets, ValidJson};
use ledger::Ledger;
use sha2::{Digest, Sha256};
use shared::domain::{NewTicket, TicketId, MAX_CONTEXT_BYTES};
use shared::domain::{TicketStatus, TicketView, Timestamp};
use shared::error::{ClientError, ErrorCode};
use shared::store::{CreatedTicket, NewTicketFields, Store, StoreError};

use crate::geofence::Geofences;
use crate::matcher::{Matcher, PAGE};
use crate::outbound::waits::Waits;
use crate::outbound::with_wait;

fn ticket_id(path: web::Path<String>) -> Result<TicketId, ApiError> {
    parse_id("ticket_id", path.into_inner())
}

fn not_found(id: &TicketId) -> ApiError {
    ApiError::new(ErrorCode::TicketNotFound, format!("no ticket {id}"))
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `Idempotency-Key` header, if present: 1 to 255 characters.
fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("Idempotency-Key") else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| {
        ApiError(ClientError::field(
            "Idempotency-Key",
            "must be visible ASCII",
        ))
    })?;
    if key.is_empty() || key.chars().count() > 255 {
        return Err(ApiError(ClientError::field(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Checks what the types cannot: the region exists and the context fits.
fn check(ticket: &NewTicket, fences: &Geofences) -> Result<(), ApiError> {
    if let Some(region) = &ticket.region {
        if !fences.has(region.as_str()) {
            return Err(ApiError(ClientError::field(
                "region",
                format!("no geofence named {region:?}"),
            )));
        }
    }
    if let Some(context) = &ticket.context {
        let size = serde_json::to_vec(context)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CONTEXT_BYTES {
            return Err(ApiError(ClientError::field(
                "context",
                format!("is {size} bytes, at most {MAX_CONTEXT_BYTES} allowed"),
            )));
        }
    }
    Ok(())
}

/// `POST /v1/tickets`: 201 with the new ticket, offered to the best eligible agent if there is
/// one, or 200 with the first one for a repeated `Idempotency-Key` and body.
#[utoipa::path(
    post,
    path = "/v1/tickets",
    operation_id = "createTicket",
    tag = "tickets",
    params((
        "Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters; a retry with the same key and body returns the first ticket.",
        min_length = 1, max_length = 255, pattern = "^[!-~]+$"
    )),
    request_body = NewTicket,
    responses(
        (status = 200, description = "The ticket first posted with this `Idempotency-Key`.", body = TicketView),
        (status = 201, description = "Accepted for routing: offered at once, or queued with its place and wait.", body = TicketView),
        (status = 409, description = "A request with this `Idempotency-Key` is still being processed."),
        (status = 422, description = "An invalid field, an unknown `region`, or an `Idempotency-Key` reused with another body."),
    ),
    security(("bearer" = []))
)]
pub async fn create(
    auth: Authenticated<Tickets>,
    req: HttpRequest,
    body: ValidJson<NewTicket>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    matcher: web::Data<Matcher>,
    fences: web::Data<Geofences>,
) -> Result<HttpResponse, ApiError> {
    check(&body.value, &fences)?;
    let waits = req
        .app_data::<web::Data<Waits>>()
        .cloned()
        .unwrap_or_default();
    let key = idempotency_key(&req)?;
    // Keys are the caller's own: the same key from two services names two requests.
    let idempotency = key.as_deref().map(|k| {
        (
            sha256(format!("{}\n{k}", auth.claims.sub).as_bytes()),
            // serde_json's map keeps keys sorted, so equal bodies hash equally.
            sha256(body.raw.to_string().as_bytes()),
        )
    });
    let id = TicketId::generate();
    // The creation and the WAIT for replicas on a connection of this request's own.
    let store = store.exclusive();
    let created = store
        .create_ticket(
            &id,
            idempotency.as_ref().map(|(k, h)| (k.as_str(), h.as_str())),
            &NewTicketFields::new(&body.value),
            PAGE,
        )
        .await?;
    let (created_ms, routed) = match created {
        CreatedTicket::Created {
            created_ms, routed, ..
        } => (created_ms, routed),
        CreatedTicket::Existing(existing) => {
            let existing = parse_id::<TicketId>("ticket_id", existing)?;
            let view = find(&store, &ledger, &waits, &existing)
                .await?
                .ok_or_else(|| not_found(&existing))?;
            tracing::info!(ticket_id = %existing, "ticket posted again");
            store.replicated().await?;
            return Ok(HttpResponse::Ok().json(view));
        }
    };
    let offered = matcher.route_created(id.as_str(), routed).await?;
    tracing::info!(ticket_id = %id, offered_to = offered.as_deref(), "ticket posted");
    // Acknowledged only once `REDIS_MIN_REPLICAS` replicas hold it (API.md §11).
    store.replicated().await?;
    // The ticket as it stands after its first routing, built from what was posted rather than
    // read back: the response costs no Redis call of its own.
    let mut view = TicketView::posted(id, &body.value, Timestamp::from_millis(created_ms));
    if offered.is_some() {
        view.status = TicketStatus::Offered;
        view.offers_made = 1;
    }
    // A ticket nobody could take is told its place (which costs a call: rare, while offers
    // are made at once).
    with_wait(&store, &waits, &mut view).await?;
    Ok(HttpResponse::Created().json(view))
}

/// A ticket from Redis while it holds it, else from the archive (an ended ticket, after
/// `TICKET_RETENTION_SECS`): `None` if neither knows it; 503 if only PostgreSQL could tell.
async fn find(
    store: &Store,
    ledger: &Ledger,
    waits: &Waits,
    id: &TicketId,
) -> Result<Option<TicketView>, ApiError> {
    if let Some(mut view) = store.ticket(id).await? {
        with_wait(store, waits, &mut view).await?;
        return Ok(Some(view));
    }
    Ok(ledger.ticket(id).await.map_err(ledger::client_error)?)
}

/// `GET /v1/tickets/{ticket_id}`.
#[utoipa::path(
    get,
    path = "/v1/tickets/{ticket_id}",
    operation_id = "getTicket",
    tag = "tickets",
    params(("ticket_id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "The ticket, with its place and wait while it waits.", body = TicketView),
        (status = 404, description = "No ticket with this id (`ticket_not_found`)."),
        (status = 422, description = "Not an identifier."),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    _auth: Authenticated<Tickets>,
    path: web::Path<String>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    waits: web::Data<Waits>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(path)?;
    let view = find(&store, &ledger, &waits, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `DELETE /v1/tickets/{ticket_id}`: cancels; 409 once completed (an archived ticket is
/// answered from the archive: cancelled already, or completed).
#[utoipa::path(
    delete,
    path = "/v1/tickets/{ticket_id}",
    operation_id = "cancelTicket",
    tag = "tickets",
    params(("ticket_id" = TicketId, Path, description = "The ticket.")),
    responses(
        (status = 200, description = "Cancelled (or cancelled already).", body = TicketView),
        (status = 404, description = "No ticket with this id (`ticket_not_found`)."),
        (status = 409, description = "Completed already (`ticket_completed`)."),
        (status = 422, description = "Not an identifier."),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    _auth: Authenticated<Tickets>,
    path: web::Path<String>,
    store: web::Data<Store>,
    ledger: web::Data<Ledger>,
    waits: web::Data<Waits>,
) -> Result<HttpResponse, ApiError> {
    let id = ticket_id(path)?;
    match store.cancel_ticket(&id).await {
        Ok(()) => {}
        Err(StoreError::Rejected(ErrorCode::TicketNotFound)) => {
            let archived = ledger
                .ticket(&id)
                .await
                .map_err(ledger::client_error)?
                .ok_or_else(|| not_found(&id))?;
            if archived.status == TicketStatus::Completed {
                return Err(StoreError::Rejected(ErrorCode::TicketCompleted).into());
            }
            return Ok(HttpResponse::Ok().json(archived));
        }
        Err(e) => return Err(e.into()),
    }
    let view = find(&store, &ledger, &waits, &id)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(HttpResponse::Ok().json(view))
}
