//! The agent WebSocket protocol (API.md §6) and the internal push messages between services.
//!
//! `ClientMessage` and `ServerMessage` are the two enums of the wire, tagged by `type`. A client
//! frame is parsed in exactly one place, [`parse_client_frame`], which also pulls out the `ref`
//! to echo. [`Push`] is what the Redis functions publish for a gateway of an earlier build; the
//! gateway turns it into a `ServerMessage`. This build's functions build the frames of pushes
//! themselves (`U.FRAMES`); the end-to-end tests check every frame they receive against
//! `ServerMessage`, which stays the one definition of a frame's shape.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{
    AgentStatus, DeclineReason, Note, OfferId, Outcome, RequestedStatus, TicketId, Timestamp,
};
use crate::error::{ClientError, ErrorCode};

/// The most one frame may hold.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame from the agent's app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Authenticate (browsers; first frame only).
    Auth(Auth),
    /// Change availability.
    SetStatus(SetStatus),
    /// Take an offered ticket.
    Accept(Accept),
    /// Refuse an offered ticket.
    Decline(Decline),
    /// Close an assigned ticket.
    Complete(Complete),
}

/// `auth`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Auth {
    /// The JWT.
    pub token: String,
}

/// `set_status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetStatus {
    /// `available`, `break` or `offline`.
    pub status: RequestedStatus,
}

/// `accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accept {
    /// The offer.
    pub offer_id: OfferId,
}

/// `decline`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decline {
    /// The offer.
    pub offer_id: OfferId,
    /// Why, for the record (at most 200 characters).
    #[serde(default)]
    pub reason: Option<DeclineReason>,
}

/// `complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Complete {
    /// The ticket.
    pub ticket_id: TicketId,
    /// How it went.
    pub outcome: Outcome,
    /// A note for the record (at most 2,000 characters).
    #[serde(default)]
    pub note: Option<Note>,
}

/// Deserialises a variant's fields, naming the field at fault in the error.
fn variant<T: serde::de::DeserializeOwned>(
    value: Value,
    wrap: fn(T) -> ClientMessage,
) -> Result<ClientMessage, String> {
    serde_path_to_error::deserialize::<_, T>(value)
        .map(wrap)
        .map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.inner().to_string()
            } else {
                format!("{path}: {}", e.inner())
            }
        })
}

/// A client frame that could not be understood, with the `ref` to echo if one was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct BadFrame {
    /// The client's `ref`, if the frame was an object carrying one.
    pub reference: Option<Value>,
    /// What to tell the client.
    pub error: ClientError,
}

/// Parses one text frame into its message and `ref`.
pub fn parse_client_frame(text: &str) -> Result<(ClientMessage, Option<Value>), BadFrame> {
    let bad = |reference: Option<Value>, code, detail: String| BadFrame {
        reference,
        error: ClientError::new(code, detail),
    };
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| bad(None, ErrorCode::MalformedFrame, format!("not JSON: {e}")))?;
    let Some(object) = value.as_object_mut() else {
        return Err(bad(
            None,
            ErrorCode::MalformedFrame,
            "a frame must be a JSON object".into(),
        ));
    };
    let reference = object.remove("ref");
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => {
            return Err(bad(
                reference,
                ErrorCode::MalformedFrame,
                "type: must be a string".into(),
            ))
        }
        None => {
            return Err(bad(
                reference,
                ErrorCode::MalformedFrame,
                "type: missing".into(),
            ))
        }
    };
    let parsed = match kind.as_str() {
        "auth" => variant(value, ClientMessage::Auth),
        "set_status" => variant(value, ClientMessage::SetStatus),
        "accept" => variant(value, ClientMessage::Accept),
        "decline" => variant(value, ClientMessage::Decline),
        "complete" => variant(value, ClientMessage::Complete),
        _ => {
            return Err(bad(
                reference,
                ErrorCode::UnknownMessageType,
                format!("unknown message type {kind:?}"),
            ))
        }
    };
    parsed
        .map(|msg| (msg, reference.clone()))
        .map_err(|detail| bad(reference, ErrorCode::MalformedFrame, detail))
}

/// An offer as the agent sees it: no `context` until accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OfferFrame {
    /// The offer to accept or decline.
    pub offer_id: String,
    /// The ticket offered.
    pub ticket_id: String,
    /// What the customer needs.
    pub summary: String,
    /// The customer's language.
    pub language: String,
    /// Minimum levels.
    #[schema(value_type = crate::domain::Skills)]
    pub skills: Value,
    /// 0..9.
    pub priority: u8,
    /// Seconds since the ticket was posted.
    pub waited_secs: u64,
    /// When the offer lapses.
    pub expires_at: Timestamp,
}

/// An assigned ticket as its agent sees it, with the customer's context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AssignedFrame {
    /// The ticket.
    pub ticket_id: String,
    /// The escalation engine's id.
    pub conversation_id: String,
    /// What the customer needs.
    pub summary: String,
    /// The customer's language.
    pub language: String,
    /// Minimum levels.
    #[schema(value_type = crate::domain::Skills)]
    pub skills: Value,
    /// 0..9.
    pub priority: u8,
    /// The escalation engine's context object.
    #[schema(value_type = Object)]
    pub context: Value,
    /// When accepted.
    pub assigned_at: Timestamp,
}

/// Why an agent's status changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusReason {
    /// The agent asked for it.
    Requested,
    /// Offers lapsed `MISSED_OFFERS_BEFORE_AWAY` times in a row.
    MissedOffers,
    /// An operator removed the agent from the roster.
    Removed,
}

/// Why an offer was withdrawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// Not accepted in time.
    Expired,
    /// The ticket was cancelled (or the offer otherwise withdrawn).
    Cancelled,
}

/// A frame to the agent's app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Sent once authenticated: what the agent has right now.
    Welcome {
        /// Who this is.
        agent_id: String,
        /// Availability.
        status: AgentStatus,
        /// The running shift.
        shift_id: Option<String>,
        /// Tickets held.
        active_tickets: Vec<AssignedFrame>,
        /// An offer waiting for an answer.
        pending_offer: Option<OfferFrame>,
        /// The authoritative clock.
        server_time: Timestamp,
    },
    /// Availability changed.
    Status {
        /// The new status.
        status: AgentStatus,
        /// Why.
        reason: StatusReason,
    },
    /// A ticket offered to this agent.
    Offer(OfferFrame),
    /// An offer withdrawn.
    OfferRevoked {
        /// The offer.
        offer_id: String,
        /// Its ticket.
        ticket_id: String,
        /// Why.
        reason: RevokeReason,
    },
    /// A ticket now this agent's.
    Assigned(AssignedFrame),
    /// A held ticket was cancelled.
    TicketCancelled {
        /// The ticket.
        ticket_id: String,
    },
    /// Something the client sent could not be done.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human detail.
        message: String,
    },
}

impl ServerMessage {
    /// The `error` frame for a client error.
    pub fn error(e: &ClientError) -> Self {
        Self::Error {
            code: e.code,
            message: e.detail.clone(),
        }
    }

    /// Serialises the frame, echoing the client's `ref` when there is one.
    pub fn to_text(&self, reference: Option<&Value>) -> String {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let (Some(r), Some(object)) = (reference, value.as_object_mut()) {
            object.insert("ref".into(), r.clone());
        }
        value.to_string()
    }
}

/// What the Redis functions publish, as JSON, for a gateway of an earlier build (this build's
/// gateways get the frame itself, ready to send: `U.push` in shared/src/lua/util.lua, read by
/// agent-app-api's `push::Delivery`), on its own channel or on the namespace's channel every
/// gateway reads. A gateway delivers it only if it holds the agent's live connection. A push
/// lost in transit is harmless: the offer it carried lapses and is re-routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Push {
    /// Deliver an offer.
    Offer {
        /// The agent.
        agent: String,
        /// The offer.
        offer_id: String,
        /// The ticket.
        ticket_id: String,
        /// Summary.
        summary: String,
        /// Language.
        language: String,
        /// Minimum levels.
        skills: Value,
        /// Priority.
        priority: u8,
        /// When the ticket was posted (ms).
        created_ms: i64,
        /// When the offer was made (ms, Redis clock).
        now_ms: i64,
        /// When the offer lapses (ms).
        expires_ms: i64,
    },
    /// Tell the agent an offer is gone.
    OfferRevoked {
        /// The agent.
        agent: String,
        /// The offer.
        offer_id: String,
        /// Its ticket.
        ticket_id: String,
        /// Why.
        reason: RevokeReason,
    },
    /// Tell the agent a held ticket was cancelled.
    TicketCancelled {
        /// The agent.
        agent: String,
        /// The ticket.
        ticket_id: String,
    },
    /// Tell the agent its status changed without its asking.
    Status {
        /// The agent.
        agent: String,
        /// New status.
        status: AgentStatus,
        /// Why.
        reason: StatusReason,
    },
    /// Close a connection: replaced by a newer one (4009) or the agent removed (4003).
    Close {
        /// The agent.
        agent: String,
        /// The connection to close; other connections of the agent stay.
        conn: String,
        /// WebSocket close code.
        code: u16,
    },
}

impl Push {
    /// The agent the push is for.
    pub fn agent(&self) -> &str {
        match self {
            Push::Offer { agent, .. }
            | Push::OfferRevoked { agent, .. }
            | Push::TicketCancelled { agent, .. }
            | Push::Status { agent, .. }
            | Push::Close { agent, .. } => agent,
        }
    }

    /// The frame to send, if the push carries one (a `Close` does not).
    pub fn to_server_message(&self) -> Option<ServerMessage> {
        Some(match self {
            Push::Offer {
                offer_id,
                ticket_id,
                summary,
                language,
                skills,
                priority,
                created_ms,
                now_ms,
                expires_ms,
                ..
            } => ServerMessage::Offer(OfferFrame {
                offer_id: offer_id.clone(),
                ticket_id: ticket_id.clone(),
                summary: summary.clone(),
                language: language.clone(),
                skills: skills.clone(),
                priority: *priority,
                waited_secs: u64::try_from((now_ms - created_ms) / 1000).unwrap_or(0),
                expires_at: Timestamp::from_millis(*expires_ms),
            }),
            Push::OfferRevoked {
                offer_id,
                ticket_id,
                reason,
                ..
            } => ServerMessage::OfferRevoked {
                offer_id: offer_id.clone(),
                ticket_id: ticket_id.clone(),
                reason: *reason,
            },
            Push::TicketCancelled { ticket_id, .. } => ServerMessage::TicketCancelled {
                ticket_id: ticket_id.clone(),
            },
            Push::Status { status, reason, .. } => ServerMessage::Status {
                status: *status,
                reason: *reason,
            },
            Push::Close { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_with_their_ref() {
        let (msg, r) = parse_client_frame(r#"{"type":"accept","offer_id":"o-1","ref":7}"#)
            .expect("a valid accept");
        assert_eq!(r, Some(Value::from(7)));
        assert!(matches!(msg, ClientMessage::Accept { .. }));
    }

    #[test]
    fn bad_frames_say_what_is_wrong() {
        let e = parse_client_frame("{nope").expect_err("not JSON");
        assert_eq!(e.error.code, ErrorCode::MalformedFrame);
        let e = parse_client_frame(r#"[1]"#).expect_err("not an object");
        assert_eq!(e.error.code, ErrorCode::MalformedFrame);
        let e = parse_client_frame(r#"{"type":"dance","ref":"x"}"#).expect_err("unknown type");
        assert_eq!(e.error.code, ErrorCode::UnknownMessageType);
        assert_eq!(e.reference, Some(Value::from("x")));
        let e = parse_client_frame(r#"{"type":"set_status","status":"away"}"#)
            .expect_err("away is not settable");
        assert_eq!(e.error.code, ErrorCode::MalformedFrame);
        assert!(e.error.detail.contains("status"), "{}", e.error.detail);
        let e = parse_client_frame(r#"{"type":"accept"}"#).expect_err("missing offer_id");
        assert!(e.error.detail.contains("offer_id"), "{}", e.error.detail);
        let long = "x".repeat(201);
        let e = parse_client_frame(&format!(
            r#"{{"type":"decline","offer_id":"o-1","reason":"{long}"}}"#
        ))
        .expect_err("a reason over 200 characters");
        assert!(e.error.detail.contains("reason"), "{}", e.error.detail);
        let ok = "é".repeat(200);
        assert!(parse_client_frame(&format!(
            r#"{{"type":"decline","offer_id":"o-1","reason":"{ok}"}}"#
        ))
        .is_ok());
        let e = parse_client_frame(&format!(
            r#"{{"type":"complete","ticket_id":"t-1","outcome":"resolved","note":"{}"}}"#,
            "n".repeat(2001)
        ))
        .expect_err("a note over 2,000 characters");
        assert!(e.error.detail.contains("note"), "{}", e.error.detail);
        let e = parse_client_frame(r#"{"type":1}"#).expect_err("type not a string");
        assert_eq!(e.error.code, ErrorCode::MalformedFrame);
    }

    #[test]
    fn server_frames_echo_ref_and_round_trip() {
        let msg = ServerMessage::Status {
            status: AgentStatus::Available,
            reason: StatusReason::Requested,
        };
        let text = msg.to_text(Some(&Value::from("r1")));
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["type"], "status");
        assert_eq!(v["ref"], "r1");
        let back: ServerMessage = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back, msg);
    }

    #[test]
    fn an_offer_push_becomes_an_offer_frame_without_context() {
        let push: Push = serde_json::from_value(serde_json::json!({
            "kind": "offer", "agent": "a", "offer_id": "o", "ticket_id": "t", "summary": "s",
            "language": "sv", "skills": {}, "priority": 5, "created_ms": 1000, "now_ms": 4500,
            "expires_ms": 24500
        }))
        .expect("push parses");
        let text = push.to_server_message().expect("a frame").to_text(None);
        let v: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["type"], "offer");
        assert_eq!(v["waited_secs"], 3);
        assert!(v.get("context").is_none());
        assert_eq!(v["skills"], serde_json::json!({}));
    }
}
