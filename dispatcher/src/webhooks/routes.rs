//! `/v1/webhooks…` (API.md §9), for operators.

use actix_web::{web, HttpResponse};
use http_kit::{Admin, ApiError, Authenticated, ValidJson};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shared::domain::Timestamp;
use shared::error::{ClientError, ErrorCode};
use shared::events::public::TopicFilter;
use shared::store::Store;

use super::{endpoints, sign, Endpoint, MAX_ENDPOINTS};

/// The longest `url`.
const MAX_URL: usize = 2048;
/// The longest `description`, in characters.
const MAX_DESCRIPTION: usize = 500;
/// The most entries `events` may have.
const MAX_EVENTS: usize = 20;

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    url: String,
    events: Vec<String>,
    #[serde(default)]
    description: String,
}

/// An endpoint as the API shows it: without its secret.
#[derive(Debug, Serialize)]
pub struct EndpointView<'a> {
    webhook_id: &'a str,
    url: &'a str,
    events: &'a [String],
    description: &'a str,
    created_at: Timestamp,
}

impl<'a> From<&'a Endpoint> for EndpointView<'a> {
    fn from(e: &'a Endpoint) -> Self {
        Self {
            webhook_id: &e.webhook_id,
            url: &e.url,
            events: &e.events,
            description: &e.description,
            created_at: e.created_at,
        }
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError(ClientError::field(field, why))
}

fn check(body: &NewEndpoint) -> Result<(), ApiError> {
    if body.url.len() > MAX_URL {
        return Err(invalid("url", format!("at most {MAX_URL} bytes")));
    }
    let url =
        reqwest::Url::parse(&body.url).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    if body.events.is_empty() || body.events.len() > MAX_EVENTS {
        return Err(invalid(
            "events",
            format!("must list 1 to {MAX_EVENTS} event types, or [\"*\"]"),
        ));
    }
    TopicFilter::new(&body.events).map_err(|e| invalid("events", e))?;
    if body.description.chars().count() > MAX_DESCRIPTION {
        return Err(invalid(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::WebhookNotFound, format!("no webhook {id}"))
}

/// An id as API.md §2 has them; any other is no endpoint's.
fn checked(id: &str) -> Result<&str, ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(id)
    } else {
        Err(not_found(id))
    }
}

async fn find(store: &Store, id: &str) -> Result<Endpoint, ApiError> {
    let id = checked(id)?;
    let json = store.webhook(id).await?.ok_or_else(|| not_found(id))?;
    serde_json::from_str(&json).map_err(|e| {
        tracing::error!(webhook_id = id, error = %e, "an unreadable webhook endpoint");
        ApiError::new(ErrorCode::Internal, "the endpoint's record is unreadable")
    })
}

/// `POST /v1/webhooks`: 201 with the endpoint and its secret (shown only here).
pub async fn create(
    _auth: Authenticated<Admin>,
    body: ValidJson<NewEndpoint>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let body = body.value;
    check(&body)?;
    let secret = sign::new_secret().map_err(|e| {
        tracing::error!(error = %e, "the operating system's random source failed");
        ApiError::new(ErrorCode::Internal, "no secret could be made")
    })?;
    let endpoint = Endpoint {
        webhook_id: format!("wh_{}", uuid::Uuid::new_v4().simple()),
        url: body.url,
        events: body.events.iter().map(|e| e.trim().to_owned()).collect(),
        description: body.description,
        created_at: Timestamp::from_millis(chrono::Utc::now().timestamp_millis()),
        secret,
    };
    let json = serde_json::to_string(&endpoint).unwrap_or_default();
    store
        .create_webhook(&endpoint.webhook_id, &json, MAX_ENDPOINTS)
        .await?;
    tracing::info!(
        webhook_id = endpoint.webhook_id,
        url = endpoint.url,
        "webhook endpoint created"
    );
    let mut view = serde_json::to_value(EndpointView::from(&endpoint)).unwrap_or_default();
    view["secret"] = json!(endpoint.secret);
    Ok(HttpResponse::Created().json(view))
}

/// `GET /v1/webhooks`.
pub async fn list(
    _auth: Authenticated<Admin>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let all = endpoints(&store).await?;
    let views: Vec<EndpointView> = all.iter().map(EndpointView::from).collect();
    Ok(HttpResponse::Ok().json(json!({ "webhooks": views })))
}

/// `GET /v1/webhooks/{id}`.
pub async fn get(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = find(&store, &path).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(&endpoint)))
}

/// `DELETE /v1/webhooks/{id}`: 204; what it had to deliver is dropped.
pub async fn delete(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    store.delete_webhook(checked(&path)?).await?;
    tracing::info!(webhook_id = %path, "webhook endpoint deleted");
    Ok(HttpResponse::NoContent().finish())
}

fn at(ms: &Value) -> Value {
    ms.as_i64()
        .map_or(Value::Null, |ms| json!(Timestamp::from_millis(ms)))
}

/// `GET /v1/webhooks/{id}/deliveries`: the latest attempts, newest first, and how many
/// deliveries wait.
pub async fn deliveries(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = find(&store, &path).await?;
    let log = store.webhook_log(&endpoint.webhook_id).await?;
    let waiting = store.webhook_backlog(&endpoint.webhook_id).await?;
    let entries: Vec<Value> = log
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|e| {
            json!({
                "event_id": e["event_id"],
                "type": e["type"],
                "attempt": e["attempt"],
                "status": e["status"],
                "error": e["error"],
                "attempted_at": at(&e["attempted_ms"]),
                "next_attempt_at": at(&e["next_attempt_ms"]),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "webhook_id": endpoint.webhook_id,
        "waiting": waiting,
        "deliveries": entries,
    })))
}
