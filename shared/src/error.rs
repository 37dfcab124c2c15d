//! The one table of stable error codes, each with its HTTP status.
//!
//! HTTP problem bodies (RFC 9457) and WebSocket `error` frames both take their `code` from here,
//! so a client sees the same name for the same failure whichever way it talks to us.

use serde::{Deserialize, Serialize};

/// A stable, snake_case error code with the HTTP status it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not syntactically valid JSON.
    MalformedJson,
    /// The query string cannot be parsed.
    MalformedQuery,
    /// The body is JSON but a field has a wrong type, an invalid value, or is unknown/missing.
    InvalidField,
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// No bearer token, or one that cannot be parsed.
    MissingToken,
    /// A token that is expired, not yet valid, wrongly signed, of the wrong audience or issuer.
    InvalidToken,
    /// A valid token whose role may not use this resource.
    Forbidden,
    /// The agent of an `agent` token is not on the roster.
    AgentNotOnRoster,
    /// No agent with this id.
    AgentNotFound,
    /// No ticket with this id.
    TicketNotFound,
    /// No offer with this id for this agent.
    OfferNotFound,
    /// No webhook endpoint with this id.
    WebhookNotFound,
    /// The namespace has as many webhook endpoints as it may.
    WebhookLimitReached,
    /// The offer's deadline has passed.
    OfferExpired,
    /// The ticket has already been completed.
    TicketCompleted,
    /// The requested status change is not allowed from the current status.
    InvalidStatusTransition,
    /// The `Idempotency-Key` was used before with a different body.
    IdempotencyKeyReused,
    /// A request with this `Idempotency-Key` is still being processed.
    IdempotencyKeyInProgress,
    /// The route does not exist.
    NotFound,
    /// The method is not allowed on this route.
    MethodNotAllowed,
    /// A WebSocket frame is not valid JSON or lacks a valid `type`.
    MalformedFrame,
    /// A WebSocket frame has a `type` we do not know.
    UnknownMessageType,
    /// A binary WebSocket frame: only JSON text frames are spoken.
    BinaryFrame,
    /// `auth` sent when already authenticated, or another frame before `auth`.
    UnexpectedAuth,
    /// A plain HTTP request reached the WebSocket endpoint.
    UpgradeRequired,
    /// A client sent frames faster than it may (10 a second, bursts of 20); the frame was not
    /// acted on.
    RateLimited,
    /// Redis (the live state) cannot be reached.
    Unavailable,
    /// PostgreSQL (the ledger) cannot be reached.
    LedgerUnavailable,
    /// Something failed on our side; the log has the cause.
    Internal,
}

impl ErrorCode {
    /// The HTTP status code this error maps to.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson | MalformedQuery | MalformedFrame | UnknownMessageType | BinaryFrame
            | UnexpectedAuth => 400,
            MissingToken | InvalidToken => 401,
            Forbidden | AgentNotOnRoster => 403,
            AgentNotFound | TicketNotFound | OfferNotFound | WebhookNotFound | NotFound => 404,
            MethodNotAllowed => 405,
            OfferExpired
            | TicketCompleted
            | InvalidStatusTransition
            | IdempotencyKeyInProgress
            | WebhookLimitReached => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            InvalidField | IdempotencyKeyReused => 422,
            UpgradeRequired => 426,
            RateLimited => 429,
            Internal => 500,
            Unavailable | LedgerUnavailable => 503,
        }
    }

    /// The stable snake_case name clients match on.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            MalformedQuery => "malformed_query",
            InvalidField => "invalid_field",
            PayloadTooLarge => "payload_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            MissingToken => "missing_token",
            InvalidToken => "invalid_token",
            Forbidden => "forbidden",
            AgentNotOnRoster => "agent_not_on_roster",
            AgentNotFound => "agent_not_found",
            TicketNotFound => "ticket_not_found",
            OfferNotFound => "offer_not_found",
            WebhookNotFound => "webhook_not_found",
            WebhookLimitReached => "webhook_limit_reached",
            OfferExpired => "offer_expired",
            TicketCompleted => "ticket_completed",
            InvalidStatusTransition => "invalid_status_transition",
            IdempotencyKeyReused => "idempotency_key_reused",
            IdempotencyKeyInProgress => "idempotency_key_in_progress",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            MalformedFrame => "malformed_frame",
            UnknownMessageType => "unknown_message_type",
            BinaryFrame => "binary_frame",
            UnexpectedAuth => "unexpected_auth",
            UpgradeRequired => "upgrade_required",
            RateLimited => "rate_limited",
            Unavailable => "unavailable",
            LedgerUnavailable => "ledger_unavailable",
            Internal => "internal",
        }
    }

    /// A short human title for problem bodies.
    pub fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            409 => "Conflict",
            413 => "Payload too large",
            415 => "Unsupported media type",
            422 => "Unprocessable content",
            426 => "Upgrade required",
            429 => "Too many requests",
            503 => "Service unavailable",
            _ => "Internal server error",
        }
    }

    /// Parses a code by its name, as the Redis function library writes it in error replies.
    pub fn from_name(name: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(name.to_owned())).ok()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error a client is told about: a code and a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ClientError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the field where there is one.
    pub detail: String,
}

impl ClientError {
    /// Builds a client error.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// A 422 naming the field.
    pub fn field(field: &str, why: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::InvalidField, format!("{field}: {why}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_snake_case_and_serialize_as_their_name() {
        for code in [ErrorCode::OfferExpired, ErrorCode::IdempotencyKeyReused] {
            let json = serde_json::to_string(&code).expect("a unit enum serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(ErrorCode::MalformedJson.status(), 400);
        assert_eq!(ErrorCode::InvalidToken.status(), 401);
        assert_eq!(ErrorCode::Forbidden.status(), 403);
        assert_eq!(ErrorCode::TicketNotFound.status(), 404);
        assert_eq!(ErrorCode::TicketCompleted.status(), 409);
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
        assert_eq!(ErrorCode::UnsupportedMediaType.status(), 415);
        assert_eq!(ErrorCode::IdempotencyKeyReused.status(), 422);
        assert_eq!(ErrorCode::Unavailable.status(), 503);
    }

    #[test]
    fn names_written_by_redis_parse_back() {
        assert_eq!(
            ErrorCode::from_name("offer_expired"),
            Some(ErrorCode::OfferExpired)
        );
        assert_eq!(ErrorCode::from_name("nonsense"), None);
    }
}
