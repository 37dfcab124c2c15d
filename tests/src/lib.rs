//! End-to-end test helpers: the real services, in-process on port 0, against the real Redis.
//!
//! [`spawn_app`] starts one dispatcher and one agent-app-api in a fresh namespace (so tests run
//! in parallel without seeing each other); [`TestApp`] has one helper per endpoint, and
//! [`AgentClient`] is a real WebSocket client. [`Options`] tunes timeouts and instance counts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shared::config::Settings;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The shared secret of test tokens.
pub const SECRET: &str = "test-secret";
/// Redis for tests.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// How long helpers wait for a frame before failing the test.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// How to start the services.
#[derive(Debug, Clone)]
pub struct Options {
    /// `OFFER_TIMEOUT_SECS`.
    pub offer_timeout_secs: u64,
    /// `MISSED_OFFERS_BEFORE_AWAY`.
    pub missed_before_away: u32,
    /// `DISCONNECT_GRACE_SECS`.
    pub grace_secs: u64,
    /// `AGENT_APP_ORIGINS`.
    pub origins: String,
    /// How many dispatcher instances.
    pub dispatchers: usize,
    /// How many agent-app-api instances.
    pub gateways: usize,
    /// The namespace (fresh and random unless set).
    pub namespace: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            offer_timeout_secs: 20,
            missed_before_away: 2,
            grace_secs: 60,
            origins: String::new(),
            dispatchers: 1,
            gateways: 1,
            namespace: None,
        }
    }
}

/// The geofence file the tests use: `north` (lat 50..70, lon 0..30) and `south` (lat -40..-10).
pub fn geofence_file() -> String {
    format!(
        "{}/tests/fixtures/geofences.geojson",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Settings for one test.
pub fn settings(opts: &Options, namespace: &str) -> Settings {
    let vars = [
        ("JWT_SECRET", SECRET.to_owned()),
        ("DISPATCH_NAMESPACE", namespace.to_owned()),
        ("REDIS_URL", REDIS_URL.to_owned()),
        ("DISPATCHER_LISTEN", "127.0.0.1:0".to_owned()),
        ("AGENT_API_LISTEN", "127.0.0.1:0".to_owned()),
        ("OFFER_TIMEOUT_SECS", opts.offer_timeout_secs.to_string()),
        (
            "MISSED_OFFERS_BEFORE_AWAY",
            opts.missed_before_away.to_string(),
        ),
        ("DISCONNECT_GRACE_SECS", opts.grace_secs.to_string()),
        ("GEOFENCES_FILE", geofence_file()),
        ("AGENT_APP_ORIGINS", opts.origins.clone()),
    ];
    Settings::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings are valid")
}

/// A running set of services in one namespace; stopped and cleaned up when dropped.
pub struct TestApp {
    /// Base URLs of the dispatchers (`http://127.0.0.1:port`).
    pub dispatchers: Vec<String>,
    /// Base URLs of the gateways.
    pub gateways: Vec<String>,
    /// The namespace.
    pub namespace: String,
    /// An HTTP client.
    pub http: reqwest::Client,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts one dispatcher and one gateway in a fresh namespace.
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// Starts services as `opts` says.
pub async fn spawn_with(opts: Options) -> TestApp {
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| format!("t-{}", uuid::Uuid::new_v4().simple()));
    let settings = settings(&opts, &namespace);
    let mut app = TestApp {
        dispatchers: Vec::new(),
        gateways: Vec::new(),
        namespace,
        http: reqwest::Client::new(),
        stops: Vec::new(),
        tasks: Vec::new(),
    };
    for _ in 0..opts.dispatchers {
        let built = dispatcher::Application::build(settings.clone())
            .await
            .expect("dispatcher starts");
        app.dispatchers
            .push(format!("http://127.0.0.1:{}", built.port()));
        let (tx, rx) = oneshot::channel::<()>();
        app.stops.push(tx);
        app.tasks.push(tokio::spawn(async move {
            let _ = built.run_until_stopped(async { drop(rx.await) }).await;
        }));
    }
    for _ in 0..opts.gateways {
        let built = agent_app_api::Application::build(settings.clone())
            .await
            .expect("gateway starts");
        app.gateways
            .push(format!("http://127.0.0.1:{}", built.port()));
        let (tx, rx) = oneshot::channel::<()>();
        app.stops.push(tx);
        app.tasks.push(tokio::spawn(async move {
            let _ = built.run_until_stopped(async { drop(rx.await) }).await;
        }));
    }
    app
}

/// A signed token for `role`/`sub`.
pub fn token(role: &str, sub: &str) -> String {
    shared::auth::mint_hs256(SECRET, sub, role, "dispatch", 3600)
}

/// A typical profile: speaks `languages`, has `skills`, capacity `max`.
pub fn profile(languages: &[&str], skills: Value, max: u8) -> Value {
    json!({
        "display_name": "Test Agent",
        "skills": skills,
        "languages": languages,
        "max_concurrent": max,
        "timezone": "Europe/Stockholm",
        "hourly_rate_cents": 1650,
        "currency": "EUR"
    })
}

/// A typical ticket in `language` needing `skills`.
pub fn ticket(language: &str, skills: Value, priority: u8) -> Value {
    json!({
        "conversation_id": format!("conv-{}", uuid::Uuid::new_v4().simple()),
        "language": language,
        "skills": skills,
        "priority": priority,
        "summary": "Double charge, customer asks for a refund",
        "context": {"customer_tier": "gold"}
    })
}

/// An HTTP answer: status and JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Value,
    /// Content type.
    pub content_type: String,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let bytes = resp.bytes().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        content_type,
    }
}

impl TestApp {
    /// The first dispatcher's URL for `path`.
    pub fn dispatcher(&self, path: &str) -> String {
        format!("{}{path}", self.dispatchers[0])
    }

    /// The first gateway's URL for `path`.
    pub fn gateway(&self, path: &str) -> String {
        format!("{}{path}", self.gateways[0])
    }

    /// Sends `req` with a bearer token for `role`.
    pub async fn send(&self, req: reqwest::RequestBuilder, role: &str) -> Answer {
        let resp = req
            .bearer_auth(token(role, "tester"))
            .send()
            .await
            .expect("request is sent");
        answer(resp).await
    }

    /// `PUT /v1/agents/{id}` as admin.
    pub async fn put_agent(&self, id: &str, profile: &Value) -> Answer {
        self.send(
            self.http
                .put(self.dispatcher(&format!("/v1/agents/{id}")))
                .json(profile),
            "admin",
        )
        .await
    }

    /// `GET /v1/agents/{id}` as admin.
    pub async fn get_agent(&self, id: &str) -> Answer {
        self.send(
            self.http.get(self.dispatcher(&format!("/v1/agents/{id}"))),
            "admin",
        )
        .await
    }

    /// `DELETE /v1/agents/{id}` as admin.
    pub async fn delete_agent(&self, id: &str) -> Answer {
        self.send(
            self.http
                .delete(self.dispatcher(&format!("/v1/agents/{id}"))),
            "admin",
        )
        .await
    }

    /// `POST /v1/tickets` as the escalation engine.
    pub async fn post_ticket(&self, body: &Value) -> Answer {
        self.send(
            self.http.post(self.dispatcher("/v1/tickets")).json(body),
            "escalation",
        )
        .await
    }

    /// `POST /v1/tickets` and return the new ticket's id.
    pub async fn new_ticket(&self, body: &Value) -> String {
        let a = self.post_ticket(body).await;
        assert_eq!(a.status, 201, "ticket created: {:?}", a.body);
        a.body["ticket_id"].as_str().expect("ticket_id").to_owned()
    }

    /// `GET /v1/tickets/{id}`.
    pub async fn get_ticket(&self, id: &str) -> Answer {
        self.send(
            self.http.get(self.dispatcher(&format!("/v1/tickets/{id}"))),
            "escalation",
        )
        .await
    }

    /// `DELETE /v1/tickets/{id}`.
    pub async fn cancel_ticket(&self, id: &str) -> Answer {
        self.send(
            self.http
                .delete(self.dispatcher(&format!("/v1/tickets/{id}"))),
            "escalation",
        )
        .await
    }

    /// Waits until the ticket has `status` (polling), returning it.
    pub async fn wait_ticket_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        loop {
            let t = self.get_ticket(id).await;
            if t.body["status"] == status {
                return t.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ticket {id} never became {status}: {:?}",
                t.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates agent `id` and connects it over the first gateway (header auth).
    pub async fn agent(&self, id: &str, profile: &Value) -> AgentClient {
        let a = self.put_agent(id, profile).await;
        assert!(a.status == 201 || a.status == 200, "agent created: {a:?}");
        AgentClient::connect(&self.gateways[0], id).await
    }

    /// Creates agent `id`, connects it and sets it `available`.
    pub async fn available_agent(&self, id: &str, profile: &Value) -> AgentClient {
        let mut agent = self.agent(id, profile).await;
        agent.expect("welcome").await;
        agent.set_status("available").await;
        agent
    }

    /// A Redis connection, for inspecting the namespace.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(REDIS_URL)
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Every event of the namespace's stream, as field maps.
    pub async fn events(&self) -> Vec<std::collections::HashMap<String, String>> {
        let mut conn = self.redis().await;
        let key = shared::keys::Keys::new(&self.namespace).events();
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("xrange");
        reply
            .ids
            .into_iter()
            .map(|e| {
                e.map
                    .into_iter()
                    .filter_map(|(k, v)| redis::from_redis_value::<String>(v).ok().map(|v| (k, v)))
                    .collect()
            })
            .collect()
    }

    /// Stops the services (as SIGTERM would).
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        // Best effort: remove the namespace's keys so a developer's Redis does not fill up.
        if let Ok(mut conn) = redis::Client::open(REDIS_URL).and_then(|c| c.get_connection()) {
            let pattern = format!("{{{}}}:*", self.namespace);
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        }
    }
}

/// A real WebSocket client of the agent API.
pub struct AgentClient {
    /// The agent's id.
    pub id: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code (1005 if none was given).
    pub code: u16,
    /// The reason.
    pub reason: String,
}

fn ws_url(base: &str) -> String {
    format!("{}/v1/agent/ws", base.replacen("http://", "ws://", 1))
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
        let mut req = ws_url(gateway).into_client_request().expect("valid ws url");
        if !token.is_empty() {
            req.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header value"),
            );
        }
        if let Some(origin) = origin {
            req.headers_mut()
                .insert("origin", origin.parse().expect("header value"));
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Self {
                id: id.to_owned(),
                ws,
            }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket connect failed: {e}"),
        }
    }

    /// Connects without a header, for first-frame authentication.
    pub async fn connect_bare(gateway: &str, id: &str) -> Self {
        Self::try_connect(gateway, id, "", None)
            .await
            .expect("handshake accepted")
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await
            .expect("frame sent");
    }

    /// Sends a raw message.
    pub async fn send_raw(&mut self, msg: Message) {
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
                Some(Ok(Message::Text(t))) => {
                    return Ok(Some(
                        serde_json::from_str(&t).expect("server frames are JSON"),
                    ))
                }
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
        match self.next(FRAME_WAIT).await {
            Ok(Some(frame)) => {
                assert_eq!(
                    frame["type"], kind,
                    "{}: expected {kind}, got {frame}",
                    self.id
                );
                frame
            }
            Ok(None) => panic!("{}: no {kind} frame within {FRAME_WAIT:?}", self.id),
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
