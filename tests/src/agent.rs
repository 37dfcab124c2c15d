//! The agent's side of the harness: a real WebSocket client of `/v1/agent/ws`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{token, FRAME_WAIT};

/// A raw WebSocket connection.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A real WebSocket client of the agent API.
pub struct AgentClient {
    /// The agent's id.
    pub id: String,
    ws: Ws,
    pace: Pace,
}

/// A well-behaved client keeps under the gateway's rate limit (API.md §6: 10 frames a second,
/// bursts of 20), with a margin for the two clocks: 8 a second, bursts of 16.
struct Pace {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Pace {
    const RATE: f64 = 8.0;
    const BURST: f64 = 16.0;

    fn new() -> Self {
        Self {
            tokens: Self::BURST,
            at: tokio::time::Instant::now(),
        }
    }

    /// Waits until one more frame may go.
    async fn wait(&mut self) {
        let now = tokio::time::Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * Self::RATE).min(Self::BURST);
        self.at = now;
        if self.tokens < 1.0 {
            tokio::time::sleep(Duration::from_secs_f64((1.0 - self.tokens) / Self::RATE)).await;
            self.tokens = 1.0;
            self.at = tokio::time::Instant::now();
        }
        self.tokens -= 1.0;
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code (1005 if none was given).
    pub code: u16,
    /// The reason.
    pub reason: String,
}

/// The agent WebSocket URL of the service at `base` (`http://127.0.0.1:port`).
pub fn ws_url(base: &str) -> String {
    format!("{}/v1/agent/ws", base.replacen("http://", "ws://", 1))
}

/// A handshake to `url` with exactly `headers`; the error is the HTTP status of a refusal.
pub async fn handshake(url: &str, headers: &[(&str, String)]) -> Result<Ws, u16> {
    match try_handshake(url, headers).await {
        Ok(ws) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

/// A handshake to `url` with exactly `headers`, any failure returned (for clients that
/// reconnect, as the chaos suite's fleet does while a gateway is down).
pub async fn try_handshake(
    url: &str,
    headers: &[(&str, String)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = url.into_client_request().expect("valid ws url");
    for (name, value) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                .expect("header name"),
            value.parse().expect("header value"),
        );
    }
    Ok(tokio_tungstenite::connect_async(req).await?.0)
}

impl AgentClient {
    /// Connects with the token in the `Authorization` header.
    pub async fn connect(gateway: &str, id: &str) -> Self {
        Self::try_connect(gateway, id, &token("agent", id), None)
            .await
            .expect("handshake accepted")
    }

    /// Connects with `token` in the header (if `Some`) and an optional `Origin`; the error is
    /// the HTTP status of a refused handshake.
    pub async fn try_connect(
        gateway: &str,
        id: &str,
        token: &str,
        origin: Option<&str>,
    ) -> Result<Self, u16> {
        let mut headers = Vec::new();
        if !token.is_empty() {
            headers.push(("authorization", format!("Bearer {token}")));
        }
        if let Some(origin) = origin {
            headers.push(("origin", origin.to_owned()));
        }
        let ws = handshake(&ws_url(gateway), &headers).await?;
        Ok(Self {
            id: id.to_owned(),
            ws,
            pace: Pace::new(),
        })
    }

    /// Connects (header auth), consumes the `welcome` and sets the agent `available`.
    pub async fn connect_available(gateway: &str, id: &str) -> Self {
        let mut agent = Self::connect(gateway, id).await;
        agent.expect("welcome").await;
        agent.set_status("available").await;
        agent
    }

    /// Connects without a header, for first-frame authentication.
    pub async fn connect_bare(gateway: &str, id: &str) -> Self {
        Self::try_connect(gateway, id, "", None)
            .await
            .expect("handshake accepted")
    }

    /// Sends a JSON frame, keeping under the rate limit as a well-behaved client does.
    pub async fn send(&mut self, frame: Value) {
        self.send_raw(Message::Text(frame.to_string().into())).await;
    }

    /// Sends a JSON frame at once, whatever the rate limit (to test it).
    pub async fn send_now(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("frame sent");
    }

    /// Sends a raw message, keeping under the rate limit.
    pub async fn send_raw(&mut self, msg: Message) {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) {
            self.pace.wait().await;
        }
        self.ws.send(msg).await.expect("frame sent");
    }

    /// The next text frame as JSON; `Err` if the connection closed first.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Value>, Closed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(msg) => msg,
            };
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(Some(exact_frame(&t))),
                Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    return Err(Closed {
                        code: 1006,
                        reason: String::new(),
                    })
                }
            }
        }
    }

    /// The next frame, which must be of `kind`; fails the test otherwise.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_within(kind, FRAME_WAIT).await
    }

    /// The next frame, which must come within `wait` and be of `kind`; fails the test otherwise.
    pub async fn expect_within(&mut self, kind: &str, wait: Duration) -> Value {
        match self.next(wait).await {
            Ok(Some(frame)) => {
                assert_eq!(
                    frame["type"], kind,
                    "{}: expected {kind}, got {frame}",
                    self.id
                );
                frame
            }
            Ok(None) => panic!("{}: no {kind} frame within {wait:?}", self.id),
            Err(c) => panic!("{}: closed ({c:?}) while waiting for {kind}", self.id),
        }
    }

    /// Asserts no frame arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(Some(frame)) = self.next(wait).await {
            panic!("{}: expected no frame, got {frame}", self.id);
        }
    }

    /// Waits for the connection to close and returns how.
    pub async fn expect_close(&mut self) -> Closed {
        loop {
            match self.next(FRAME_WAIT).await {
                Err(c) => return c,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{}: not closed within {FRAME_WAIT:?}", self.id),
            }
        }
    }

    /// `set_status`, waiting for the `status` reply.
    pub async fn set_status(&mut self, status: &str) -> Value {
        self.send(json!({"type": "set_status", "status": status}))
            .await;
        let reply = self.expect("status").await;
        assert_eq!(reply["status"], status);
        reply
    }

    /// Waits for an offer and accepts it, returning the `assigned` frame.
    pub async fn accept_next(&mut self) -> Value {
        let offer = self.expect("offer").await;
        self.send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
            .await;
        self.expect("assigned").await
    }

    /// Completes a ticket.
    pub async fn complete(&mut self, ticket_id: &str) {
        self.send(json!({"type": "complete", "ticket_id": ticket_id, "outcome": "resolved"}))
            .await;
    }

    /// The raw connection, for tests that drive it themselves (flooding it, never reading it).
    pub fn into_ws(self) -> Ws {
        self.ws
    }

    /// Closes the connection from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

fn closed(frame: Option<CloseFrame>) -> Closed {
    match frame {
        Some(f) => Closed {
            code: u16::from(f.code),
            reason: f.reason.to_string(),
        },
        None => Closed {
            code: 1005,
            reason: String::new(),
        },
    }
}

/// A server frame as JSON, which must be exactly a `ServerMessage` (and the `ref` it echoes): the
/// same value once read as one and written again, whoever made it (the gateway, or a Redis
/// function that built a push's frame itself).
pub fn exact_frame(text: &str) -> Value {
    let frame: Value = serde_json::from_str(text).expect("server frames are JSON");
    let msg: shared::protocol::ServerMessage = serde_json::from_value(frame.clone())
        .unwrap_or_else(|e| panic!("not a ServerMessage ({e}): {text}"));
    let again: Value =
        serde_json::from_str(&msg.to_text(frame.get("ref"))).expect("a ServerMessage is JSON");
    assert_eq!(
        frame, again,
        "a frame with more or other than a ServerMessage"
    );
    frame
}
