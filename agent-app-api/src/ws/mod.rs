//! `GET /v1/agent/ws`: the agent WebSocket (API.md §6).
//!
//! The handshake is checked before the upgrade: a foreign `Origin` is refused with 403, and a
//! token in the `Authorization` header is verified (401/403 as for any HTTP request). Without a
//! header the socket opens and the first frame must be `auth` within 10 s ([`conn`]).

mod conn;
mod io;

pub use conn::register_metrics;

use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use http_kit::{AgentOnly, Allowed, ApiError};
use redis::AsyncCommands;
use shared::auth::TokenVerifier;
use shared::domain::AgentId;
use shared::error::{ClientError, ErrorCode};
use shared::protocol::MAX_FRAME_BYTES;
use shared::store::Store;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Everything a connection needs, shared by all connections of this instance (each actix
/// worker has a copy with a Redis connection of its own).
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The store.
    pub store: Store,
    /// Token verification.
    pub verifier: TokenVerifier,
    /// This instance's connection hub.
    pub hub: Hub,
    /// This instance's id (its connections are reaped if it goes silent).
    pub instance: String,
    /// `DISCONNECT_GRACE_SECS`.
    pub grace: Duration,
    /// `AGENT_APP_ORIGINS`.
    pub origins: Vec<String>,
    /// Cancelled when the service drains: connections close with 1001.
    pub shutdown: CancellationToken,
}

/// Why an agent may not connect.
#[derive(Debug)]
pub enum Refusal {
    /// The token is missing, unreadable, expired or wrongly signed (401 / close 4001).
    Unauthenticated(ClientError),
    /// The token is valid but not an agent's, or the agent is not on the roster (403 / 4003).
    Forbidden(ClientError),
    /// Redis is unavailable (503 / error frame, close 1013).
    Unavailable(ClientError),
}

impl Gateway {
    /// Checks a token for the WebSocket: role `agent`, and the agent on the roster.
    pub async fn authorize(&self, token: &str) -> Result<AgentId, Refusal> {
        let claims = self
            .verifier
            .verify(token)
            .map_err(Refusal::Unauthenticated)?;
        if !claims.role().is_some_and(AgentOnly::allows) {
            return Err(Refusal::Forbidden(ClientError::new(
                ErrorCode::Forbidden,
                "only agents may open the agent WebSocket",
            )));
        }
        let not_on_roster = || {
            Refusal::Forbidden(ClientError::new(
                ErrorCode::AgentNotOnRoster,
                "this agent is not on the roster",
            ))
        };
        let agent = AgentId::try_from(claims.sub).map_err(|_| not_on_roster())?;
        let mut conn = self.store.conn();
        let exists: Result<bool, _> = conn.exists(self.store.keys().agent(agent.as_str())).await;
        match exists {
            Ok(true) => Ok(agent),
            Ok(false) => Err(not_on_roster()),
            Err(e) => Err(Refusal::Unavailable(http_kit::client_error(e.into()))),
        }
    }
}

/// Whether the handshake's `Origin` (if any) is this service's own or an allowed one.
fn origin_allowed(req: &HttpRequest, allowed: &[String]) -> bool {
    let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) else {
        return true;
    };
    let origin = origin
        .to_str()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_ascii_lowercase();
    let host = req.connection_info().host().to_ascii_lowercase();
    let own = [format!("http://{host}"), format!("https://{host}")];
    own.contains(&origin) || allowed.iter().any(|a| a.eq_ignore_ascii_case(&origin))
}

/// The upgrade handler.
#[utoipa::path(
    get,
    path = "/v1/agent/ws",
    operation_id = "agentWebSocket",
    tag = "agent",
    responses(
        (status = 101, description = "Switched to the WebSocket of `/asyncapi.json`."),
        (status = 403, description = "An `Origin` not allowed, or a token whose role or agent may not connect."),
        (status = 426, description = "A plain HTTP request: a WebSocket upgrade is expected (`upgrade_required`)."),
    ),
    security((), ("bearer" = []))
)]
pub async fn upgrade(
    req: HttpRequest,
    body: web::Payload,
    gw: web::Data<Gateway>,
) -> Result<HttpResponse, ApiError> {
    if !origin_allowed(&req, &gw.origins) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "this Origin may not open the agent WebSocket",
        ));
    }
    let preauth = match http_kit::bearer(&req)? {
        Some(token) => Some(gw.authorize(&token).await.map_err(|r| match r {
            Refusal::Unauthenticated(e) | Refusal::Forbidden(e) | Refusal::Unavailable(e) => {
                ApiError(e)
            }
        })?),
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::new(
            ErrorCode::UpgradeRequired,
            format!("a WebSocket upgrade is expected: {e}"),
        )
    })?;
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let gw: Arc<Gateway> = gw.into_inner();
    actix_web::rt::spawn(conn::run(gw, session, stream, preauth));
    Ok(response)
}
