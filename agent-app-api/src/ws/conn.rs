//! One agent connection: authentication, `welcome`, then frames both ways until it closes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use serde_json::Value;
use shared::domain::AgentId;
use shared::error::{ClientError, ErrorCode};
use shared::protocol::{parse_client_frame, ClientMessage, ServerMessage, StatusReason};
use shared::store::{ConnectReply, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::io::{
    send_text, sleep_until_due, RateLimit, BAD_FRAME_LIMIT, BAD_FRAME_WINDOW, CLOSE_TIMEOUT,
    PING_EVERY, PONG_WAIT, SEND_TIMEOUT,
};
use super::{Gateway, Refusal};
use crate::hub::{Outbound, OUTBOUND_CAPACITY};

/// How long a browser has to send its `auth` frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const NOT_AUTHENTICATED: u16 = 4001;
const NOT_ALLOWED: u16 = 4003;
const TOO_MANY_BAD_FRAMES: u16 = 4008;

fn reason(code: u16, description: &str) -> Option<CloseReason> {
    Some(CloseReason {
        code: CloseCode::from(code),
        description: Some(description.to_owned()),
    })
}

/// Runs a connection to its end.
pub async fn run(
    gw: Arc<Gateway>,
    mut session: Session,
    mut stream: AggregatedMessageStream,
    preauth: Option<AgentId>,
) {
    let agent = match preauth {
        Some(agent) => agent,
        None => match first_frame_auth(&gw, &mut session, &mut stream).await {
            Ok(agent) => agent,
            Err(close) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(close)).await;
                return;
            }
        },
    };
    let conn_id = format!("c-{}", uuid::Uuid::new_v4().simple());
    let span = tracing::info_span!("ws", agent_id = %agent, conn = %conn_id);
    let _open = Connected::new();
    serve(gw, session, stream, agent, conn_id)
        .instrument(span)
        .await;
}

static CONNECTED: std::sync::LazyLock<prometheus::IntGaugeVec> = std::sync::LazyLock::new(|| {
    shared::metrics::gauge(
        "dispatch_websockets_connected",
        "Authenticated agent WebSockets open on this instance",
        &[],
    )
});

/// Counts an authenticated connection in `dispatch_websockets_connected` while it lives.
struct Connected;

impl Connected {
    fn new() -> Self {
        CONNECTED.with_label_values(&[] as &[&str]).inc();
        Self
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        CONNECTED.with_label_values(&[] as &[&str]).dec();
    }
}

/// Exposes the gauge from the first scrape, before any connection.
pub fn register_metrics() {
    std::sync::LazyLock::force(&CONNECTED);
}

async fn serve(
    gw: Arc<Gateway>,
    session: Session,
    stream: AggregatedMessageStream,
    agent: AgentId,
    conn_id: String,
) {
    let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
    gw.hub.register(agent.as_str(), &conn_id, tx).await;
    let mut conn = Connection {
        gw: gw.clone(),
        agent,
        conn_id,
        session,
        bad_frames: VecDeque::new(),
        rate: RateLimit::new(),
        welcomed_offer: None,
        resync_due: None,
    };
    let close = match conn.welcome().await {
        Ok(()) => conn.serve(stream, rx).await,
        Err(close) => close,
    };
    let Connection {
        gw,
        agent,
        conn_id,
        session,
        ..
    } = conn;
    // A client that does not read would hold the close up too.
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, session.close(close)).await;
    gw.hub.unregister(agent.as_str(), &conn_id).await;
    tokio::spawn(release(gw, agent, conn_id));
}

/// Tells Redis the connection is gone, retrying for as long as this process lives while Redis
/// is away (the agent would otherwise look connected, and be offered tickets, until this
/// instance is taken for dead). An error that is not an outage is a bug, logged once.
async fn release(gw: Arc<Gateway>, agent: AgentId, conn_id: String) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match gw.store.disconnect(&agent, &conn_id, gw.grace).await {
            Ok(()) => return,
            Err(e @ StoreError::Unavailable(_)) => {
                tracing::warn!(agent_id = %agent, error = %e, "could not record the disconnect yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(agent_id = %agent, error = %e, "could not record the disconnect");
                return;
            }
        }
    }
}

/// Waits for the browser's `auth` frame.
async fn first_frame_auth(
    gw: &Gateway,
    session: &mut Session,
    stream: &mut AggregatedMessageStream,
) -> Result<AgentId, Option<CloseReason>> {
    let deadline = Instant::now() + AUTH_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(deadline, stream.recv())
            .await
            .map_err(|_| reason(NOT_AUTHENTICATED, "no auth frame within 10 s"))?;
        match msg {
            Some(Ok(AggregatedMessage::Text(text))) => {
                let token = match parse_client_frame(&text) {
                    Ok((ClientMessage::Auth(auth), _)) => auth.token,
                    _ => return Err(reason(NOT_AUTHENTICATED, "the first frame must be auth")),
                };
                return match gw.authorize(&token).await {
                    Ok(agent) => Ok(agent),
                    Err(Refusal::Unauthenticated(e)) => Err(reason(NOT_AUTHENTICATED, &e.detail)),
                    Err(Refusal::Forbidden(e)) => Err(reason(NOT_ALLOWED, &e.detail)),
                    Err(Refusal::Unavailable(e)) => {
                        let _ = send_text(session, ServerMessage::error(&e).to_text(None)).await;
                        Err(reason(1013, "try again later"))
                    }
                };
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = tokio::time::timeout(SEND_TIMEOUT, session.pong(&bytes)).await;
            }
            Some(Ok(AggregatedMessage::Pong(_))) => {}
            Some(Ok(AggregatedMessage::Close(_))) | None => return Err(None),
            Some(Ok(AggregatedMessage::Binary(_))) | Some(Err(_)) => {
                return Err(reason(NOT_AUTHENTICATED, "the first frame must be auth"))
            }
        }
    }
}

struct Connection {
    gw: Arc<Gateway>,
    agent: AgentId,
    conn_id: String,
    session: Session,
    bad_frames: VecDeque<Instant>,
    rate: RateLimit,
    /// The offer sent in `welcome`: its push, if queued meanwhile, is not sent twice.
    welcomed_offer: Option<String>,
    /// A resync Redis could not answer yet (it is loading, say, after a restart): when to try
    /// again, and whether pushes were lost.
    resync_due: Option<(Instant, bool)>,
}

/// How soon a resync that Redis could not answer is tried again.
const RESYNC_RETRY: Duration = Duration::from_millis(500);

impl Connection {
    /// Binds the connection in Redis and sends `welcome`.
    async fn welcome(&mut self) -> Result<(), Option<CloseReason>> {
        let built = async {
            let reply = self
                .gw
                .store
                .connect(&self.agent, &self.conn_id, &self.gw.instance)
                .await?;
            self.gw
                .hub
                .activate(self.agent.as_str(), &self.conn_id)
                .await;
            self.welcome_frame(reply).await
        };
        let welcome = match built.await {
            Ok(w) => w,
            Err(StoreError::Rejected(ErrorCode::AgentNotFound)) => {
                return Err(reason(NOT_ALLOWED, "this agent is not on the roster"))
            }
            Err(e) => {
                let e = http_kit::client_error(e);
                let _ = self.send(&ServerMessage::error(&e), None).await;
                return Err(reason(1013, "try again later"));
            }
        };
        tracing::info!("agent connected");
        self.send_welcome(welcome).await
    }

    /// The `welcome` frame of what the agent has now.
    async fn welcome_frame(&self, now: ConnectReply) -> Result<ServerMessage, StoreError> {
        let store = &self.gw.store;
        let server_time = store.now_ms().await?;
        let pending_offer = match &now.offer_id {
            Some(offer) => store.offer_frame(offer, server_time).await?,
            None => None,
        };
        let active_tickets = store.assigned_frames(&now.tickets).await?;
        Ok(ServerMessage::Welcome {
            agent_id: self.agent.to_string(),
            status: now.status,
            shift_id: now.shift_id,
            active_tickets,
            pending_offer,
            server_time: shared::domain::Timestamp::from_millis(server_time),
        })
    }

    /// Sends `welcome`; its pending offer's push, if queued meanwhile, is then not sent twice.
    async fn send_welcome(&mut self, welcome: ServerMessage) -> Result<(), Option<CloseReason>> {
        if let ServerMessage::Welcome {
            pending_offer: Some(offer),
            ..
        } = &welcome
        {
            self.welcomed_offer = Some(offer.offer_id.clone());
        }
        self.send(&welcome, None).await.map_err(|()| None)
    }

    /// Mends what Redis records of this connection ([`Outbound::Resync`]). Dropped there (its
    /// gateway was taken for dead, say after a Redis outage): binds it again, as a reconnect
    /// within the grace period would (the shift, the tickets and the status are kept; an offer
    /// made meanwhile was withdrawn and its `offer_revoked` sent), with a fresh `welcome`. A
    /// newer connection live, or the agent removed: closes it as the lost push would have. With
    /// `lost_pushes`, a live one gets a fresh `welcome`: its pending offer and assignments as
    /// they are now. `Some` if the connection must close.
    /// While Redis cannot answer, it is tried again every [`RESYNC_RETRY`], the frames going
    /// on meanwhile.
    async fn resync(&mut self, lost_pushes: bool) -> Option<Option<CloseReason>> {
        let retry = self.resync_due.take();
        let lost_pushes = lost_pushes || retry.is_some_and(|(_, lost)| lost);
        let session = match self.gw.store.session(&self.agent).await {
            Ok(Some(session)) => session,
            Ok(None) => return Some(reason(NOT_ALLOWED, "removed from the roster")),
            Err(e) => {
                if matches!(e, StoreError::Unavailable(_)) {
                    self.resync_due = Some((Instant::now() + RESYNC_RETRY, lost_pushes));
                }
                if retry.is_none() {
                    tracing::warn!(error = %e, "cannot read what redis records of this connection; trying again");
                }
                return None;
            }
        };
        if session.conn != self.conn_id {
            return Some(reason(4009, "replaced by a newer connection"));
        }
        if !session.connected {
            tracing::warn!("redis recorded this live connection as dropped; binding it again");
            return self.welcome().await.err();
        }
        if !lost_pushes {
            return None;
        }
        match self.welcome_frame(session.now).await {
            Ok(welcome) => self.send_welcome(welcome).await.err(),
            Err(e) => {
                if matches!(e, StoreError::Unavailable(_)) {
                    self.resync_due = Some((Instant::now() + RESYNC_RETRY, true));
                }
                if retry.is_none() {
                    tracing::warn!(error = %e, "cannot send this connection its state again; trying again");
                }
                None
            }
        }
    }

    async fn send(&mut self, msg: &ServerMessage, reference: Option<&Value>) -> Result<(), ()> {
        send_text(&mut self.session, msg.to_text(reference)).await
    }

    /// Relays frames both ways until the connection ends; returns how to close it.
    async fn serve(
        &mut self,
        mut stream: AggregatedMessageStream,
        mut rx: mpsc::Receiver<Outbound>,
    ) -> Option<CloseReason> {
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        // Set while a ping waits for its pong.
        let mut pong_due: Option<Instant> = None;
        let shutdown = self.gw.shutdown.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return reason(1001, "server restarting; reconnect"),
                out = rx.recv() => match out {
                    Some(Outbound::Frame { text, offer_id }) => {
                        if offer_id.is_some() && offer_id == self.welcomed_offer {
                            self.welcomed_offer = None;
                            continue;
                        }
                        if send_text(&mut self.session, text).await.is_err() {
                            return None;
                        }
                    }
                    Some(Outbound::Resync { lost_pushes }) => {
                        if let Some(close) = self.resync(lost_pushes).await {
                            return close;
                        }
                    }
                    Some(Outbound::Close(4009)) => return reason(4009, "replaced by a newer connection"),
                    Some(Outbound::Close(code)) => return reason(code, "removed from the roster"),
                    None => return reason(1008, "too slow to read its frames"),
                },
                msg = stream.recv() => {
                    if matches!(msg, Some(Ok(AggregatedMessage::Text(_) | AggregatedMessage::Binary(_))))
                        && !self.rate.admit()
                    {
                        if let Some(close) = self.rate_limited(msg).await {
                            return close;
                        }
                        continue;
                    }
                    match msg {
                        None => return None,
                        Some(Ok(AggregatedMessage::Text(text))) => {
                            if let Some(close) = self.on_text(&text).await {
                                return close;
                            }
                        }
                        Some(Ok(AggregatedMessage::Binary(_))) => {
                            let e = ClientError::new(ErrorCode::BinaryFrame, "only JSON text frames are accepted");
                            if let Some(close) = self.bad_frame(e, None).await {
                                return close;
                            }
                        }
                        Some(Ok(AggregatedMessage::Ping(bytes))) => {
                            let pong = self.session.pong(&bytes);
                            if !matches!(tokio::time::timeout(SEND_TIMEOUT, pong).await, Ok(Ok(()))) {
                                return None;
                            }
                        }
                        Some(Ok(AggregatedMessage::Pong(_))) => pong_due = None,
                        Some(Ok(AggregatedMessage::Close(_))) => return reason(1000, "bye"),
                        Some(Err(actix_ws::ProtocolError::Overflow)) => {
                            return reason(1009, "frames are limited to 64 KiB");
                        }
                        Some(Err(actix_ws::ProtocolError::Io(e))) if e.kind() == std::io::ErrorKind::InvalidData => {
                            let e = ClientError::new(ErrorCode::MalformedFrame, "a text frame must be valid UTF-8");
                            if let Some(close) = self.bad_frame(e, None).await {
                                return close;
                            }
                        }
                        // The only other I/O error the stream makes is a fragmented message
                        // over the limit: treated like one oversized frame.
                        Some(Err(actix_ws::ProtocolError::Io(e))) if e.to_string().contains("continuation size") => {
                            return reason(1009, "messages are limited to 64 KiB");
                        }
                        Some(Err(actix_ws::ProtocolError::Io(_))) => return None,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "protocol error");
                            return reason(1002, "protocol error");
                        }
                    }
                }
                _ = ping.tick() => {
                    let sent = tokio::time::timeout(SEND_TIMEOUT, self.session.ping(b"")).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return None;
                    }
                    pong_due.get_or_insert(Instant::now() + PONG_WAIT);
                }
                () = sleep_until_due(self.resync_due.map(|(at, _)| at)) => {
                    if let Some(close) = self.resync(false).await {
                        return close;
                    }
                }
                () = sleep_until_due(pong_due) => {
                    tracing::info!("no answer to a ping; the client stopped reading");
                    return reason(1001, "no answer to ping");
                }
            }
        }
    }

    /// Answers a frame over the rate limit with `rate_limited` (echoing its `ref` if it has a
    /// readable one); it is not acted on.
    async fn rate_limited(
        &mut self,
        msg: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Option<Option<CloseReason>> {
        let reference = match &msg {
            Some(Ok(AggregatedMessage::Text(text))) => match parse_client_frame(text) {
                Ok((_, reference)) => reference,
                Err(bad) => bad.reference,
            },
            _ => None,
        };
        let e = ClientError::new(
            ErrorCode::RateLimited,
            "more than 10 frames a second (bursts of 20); this frame was not acted on",
        );
        self.send(&ServerMessage::error(&e), reference.as_ref())
            .await
            .err()
            .map(|()| None)
    }

    /// Answers a bad frame; past the budget, closes with 4008.
    async fn bad_frame(
        &mut self,
        e: ClientError,
        reference: Option<Value>,
    ) -> Option<Option<CloseReason>> {
        let now = Instant::now();
        while self
            .bad_frames
            .front()
            .is_some_and(|t| now.duration_since(*t) > BAD_FRAME_WINDOW)
        {
            self.bad_frames.pop_front();
        }
        self.bad_frames.push_back(now);
        if self.bad_frames.len() > BAD_FRAME_LIMIT {
            return Some(reason(TOO_MANY_BAD_FRAMES, "too many bad frames"));
        }
        self.send(&ServerMessage::error(&e), reference.as_ref())
            .await
            .err()
            .map(|()| None)
    }

    /// Handles one text frame; `Some` means close.
    async fn on_text(&mut self, text: &str) -> Option<Option<CloseReason>> {
        let (msg, reference) = match parse_client_frame(text) {
            Ok(parsed) => parsed,
            Err(bad) => return self.bad_frame(bad.error, bad.reference).await,
        };
        let store = self.gw.store.clone();
        let reply = match msg {
            ClientMessage::Auth(_) => {
                let e = ClientError::new(ErrorCode::UnexpectedAuth, "already authenticated");
                return self.bad_frame(e, reference).await;
            }
            ClientMessage::SetStatus(s) => {
                store.set_status(&self.agent, s.status).await.map(|now| {
                    Some(ServerMessage::Status {
                        status: now.status,
                        reason: StatusReason::Requested,
                    })
                })
            }
            ClientMessage::Accept(a) => store
                .accept(&self.agent, &a.offer_id)
                .await
                .map(|frame| Some(ServerMessage::Assigned(frame))),
            ClientMessage::Decline(d) => store
                .decline(&self.agent, &d.offer_id, d.reason.as_ref())
                .await
                .map(|()| None),
            ClientMessage::Complete(c) => store
                .complete(&self.agent, &c.ticket_id, c.outcome, c.note.as_ref())
                .await
                .map(|()| None),
        };
        let frame = match reply {
            Ok(Some(frame)) => frame,
            Ok(None) => return None,
            Err(e) => ServerMessage::error(&http_kit::client_error(e)),
        };
        self.send(&frame, reference.as_ref())
            .await
            .err()
            .map(|()| None)
    }
}
