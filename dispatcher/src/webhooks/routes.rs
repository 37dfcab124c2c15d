//! `/v1/webhooks…` (API.md §9), for operators.

use actix_web::{web, HttpResponse};
use http_kit::{Admin, ApiError, Authenticated, ValidJson};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::domain::Timestamp;
use shared::error::{ClientError, ErrorCode};
use shared::events::public::{Topic, TopicFilter};
use shared::store::Store;
use utoipa::ToSchema;

use super::{endpoints, sign, Endpoint, MAX_ENDPOINTS};

/// The longest `url`.
const MAX_URL: usize = 2048;
/// The longest `description`, in characters.
const MAX_DESCRIPTION: usize = 500;
/// The most entries `events` may have.
const MAX_EVENTS: usize = 20;

/// What `events` may list: `*`, a family such as `ticket.*`, or a type.
fn event_patterns() -> utoipa::openapi::schema::ArrayBuilder {
    let mut patterns = vec!["*".to_owned()];
    for topic in Topic::ALL {
        let family = format!("{}.*", topic.as_str().split('.').next().unwrap_or_default());
        if !patterns.contains(&family) {
            patterns.push(family);
        }
    }
    patterns.extend(Topic::ALL.iter().map(|t| t.as_str().to_owned()));
    shared::schema::array(
        "The event types to send: `*` for all, a family such as `ticket.*`, or types.",
        shared::schema::string("An event type or pattern.").enum_values(Some(patterns)),
        1,
    )
    .max_items(Some(MAX_EVENTS))
}

/// `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where to POST: an http:// or https:// URL with a host.
    #[schema(max_length = 2048, pattern = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]+")]
    url: String,
    /// The event types to send.
    #[schema(schema_with = event_patterns)]
    events: Vec<String>,
    /// For operators, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    description: String,
}

/// An endpoint as the API shows it: without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView<'a> {
    /// The endpoint's id.
    webhook_id: &'a str,
    /// Where events are POSTed.
    url: &'a str,
    /// The event types it takes.
    #[schema(value_type = Vec<String>)]
    events: &'a [String],
    /// For operators.
    description: &'a str,
    /// When it was created.
    created_at: Timestamp,
}

/// `POST /v1/webhooks`' answer: the endpoint with its secret, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpoint<'a> {
    /// The endpoint.
    #[serde(flatten)]
    endpoint: EndpointView<'a>,
    /// `whsec_` + base64 of 24 random bytes: the key of every delivery's signature.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/=]+$")]
    secret: &'a str,
}

/// `GET /v1/webhooks`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoints<'a> {
    /// Every endpoint of the namespace.
    webhooks: Vec<EndpointView<'a>>,
}

/// One attempt of the delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    /// The event's id (`webhook-id`).
    #[schema(value_type = String)]
    event_id: Value,
    /// The event's type.
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    kind: Value,
    /// 1 for the first attempt.
    #[schema(value_type = u32)]
    attempt: Value,
    /// The HTTP status answered, or null when none was (a timeout, a refused connection).
    #[schema(value_type = Option<u16>)]
    status: Value,
    /// What went wrong, or null.
    #[schema(value_type = Option<String>)]
    error: Value,
    /// When it was made.
    #[schema(value_type = Timestamp)]
    attempted_at: Value,
    /// When it is tried again; null after a success or once given up.
    #[schema(value_type = Option<Timestamp>)]
    next_attempt_at: Value,
}

/// `GET /v1/webhooks/{id}/deliveries`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deliveries {
    /// The endpoint.
    webhook_id: String,
    /// Deliveries waiting to be made (their first attempt or a retry).
    waiting: u64,
    /// The latest attempts, newest first.
    deliveries: Vec<Attempt>,
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
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    request_body = NewEndpoint,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown only here).", body = CreatedEndpoint),
        (status = 409, description = "The namespace has 100 endpoints already (`webhook_limit_reached`)."),
        (status = 422, description = "A `url` not http(s), an unknown event type, a `description` too long."),
    ),
    security(("bearer" = []))
)]
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
    Ok(HttpResponse::Created().json(CreatedEndpoint {
        endpoint: EndpointView::from(&endpoint),
        secret: &endpoint.secret,
    }))
}

/// `GET /v1/webhooks`.
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    operation_id = "listWebhooks",
    tag = "webhooks",
    responses((status = 200, description = "Every endpoint, without secrets.", body = Endpoints)),
    security(("bearer" = []))
)]
pub async fn list(
    _auth: Authenticated<Admin>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let all = endpoints(&store).await?;
    Ok(HttpResponse::Ok().json(Endpoints {
        webhooks: all.iter().map(EndpointView::from).collect(),
    }))
}

/// `GET /v1/webhooks/{id}`.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}",
    operation_id = "getWebhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint.", pattern = "^[A-Za-z0-9_.-]{1,64}$")),
    responses(
        (status = 200, description = "The endpoint, without its secret.", body = EndpointView),
        (status = 404, description = "No endpoint with this id (`webhook_not_found`)."),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = find(&store, &path).await?;
    Ok(HttpResponse::Ok().json(EndpointView::from(&endpoint)))
}

/// `DELETE /v1/webhooks/{id}`: 204; what it had to deliver is dropped.
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{webhook_id}",
    operation_id = "deleteWebhook",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint.", pattern = "^[A-Za-z0-9_.-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted (or there was none), with what it had to deliver."),
        (status = 404, description = "Not an endpoint's id."),
    ),
    security(("bearer" = []))
)]
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
    ms.as_i64().map_or(Value::Null, |ms| {
        serde_json::json!(Timestamp::from_millis(ms))
    })
}

/// `GET /v1/webhooks/{id}/deliveries`: the latest attempts, newest first, and how many
/// deliveries wait.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{webhook_id}/deliveries",
    operation_id = "listDeliveries",
    tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint.", pattern = "^[A-Za-z0-9_.-]{1,64}$")),
    responses(
        (status = 200, description = "The latest attempts, newest first.", body = Deliveries),
        (status = 404, description = "No endpoint with this id (`webhook_not_found`)."),
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(
    _auth: Authenticated<Admin>,
    path: web::Path<String>,
    store: web::Data<Store>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = find(&store, &path).await?;
    let log = store.webhook_log(&endpoint.webhook_id).await?;
    let waiting = store.webhook_backlog(&endpoint.webhook_id).await?;
    let deliveries = log
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|mut e| Attempt {
            event_id: e["event_id"].take(),
            kind: e["type"].take(),
            attempt: e["attempt"].take(),
            status: e["status"].take(),
            error: e["error"].take(),
            attempted_at: at(&e["attempted_ms"]),
            next_attempt_at: at(&e["next_attempt_ms"]),
        })
        .collect();
    Ok(HttpResponse::Ok().json(Deliveries {
        webhook_id: endpoint.webhook_id,
        waiting,
        deliveries,
    }))
}
