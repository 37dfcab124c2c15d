//! End-to-end test helpers: the real services, in-process on port 0, against the real Redis.
//!
//! [`spawn_app`] starts one dispatcher and one agent-app-api in a fresh namespace (so tests run
//! in parallel without seeing each other); [`TestApp`] has one helper per endpoint (in `http.rs`), and
//! [`AgentClient`] is a real WebSocket client. [`Options`] tunes timeouts and instance counts.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use shared::config::Settings;
use tokio::sync::oneshot;

mod agent;
mod checkers;
pub mod commands;
pub mod direct;
pub mod failover;
pub mod hooks;
mod http;
pub mod receiver;
pub mod redis_cluster;
pub mod redis_server;
pub use agent::{exact_frame, handshake, try_handshake, ws_url, AgentClient, Closed, Ws};
pub use checkers::{node, python, run, venv_program};
pub use http::{fetch, fetch_text, http_client, Answer};

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
    /// `TICKET_RETENTION_SECS`.
    pub ticket_retention_secs: u64,
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
            ticket_retention_secs: 3600,
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
        (
            "TICKET_RETENTION_SECS",
            opts.ticket_retention_secs.to_string(),
        ),
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
    /// What the services were started with, to start one again.
    settings: Settings,
    /// Whether dropping the app deletes the namespace's keys (not after [`TestApp::stop`]).
    clean_up: bool,
}

/// Starts one dispatcher and one gateway in a fresh namespace.
pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

/// A fresh, random namespace.
pub fn fresh_namespace() -> String {
    format!("t-{}", uuid::Uuid::new_v4().simple())
}

/// Starts services as `opts` says.
pub async fn spawn_with(opts: Options) -> TestApp {
    let namespace = opts.namespace.clone().unwrap_or_else(fresh_namespace);
    let settings = settings(&opts, &namespace);
    spawn_from(settings, namespace, opts.dispatchers, opts.gateways).await
}

/// Starts `dispatchers` dispatchers and `gateways` gateways with `settings`, whose namespace is
/// `namespace`.
pub async fn spawn_from(
    settings: Settings,
    namespace: String,
    dispatchers: usize,
    gateways: usize,
) -> TestApp {
    // `E2E_LOG=1` shows the services' logs (filtered by `RUST_LOG`), to see why a test failed.
    if std::env::var_os("E2E_LOG").is_some() {
        shared::telemetry::init();
    }
    let mut app = TestApp {
        dispatchers: Vec::new(),
        gateways: Vec::new(),
        namespace,
        http: http_client(),
        stops: Vec::new(),
        tasks: Vec::new(),
        settings: settings.clone(),
        clean_up: true,
    };
    for _ in 0..dispatchers {
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
    for _ in 0..gateways {
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
    app.wait_ready(Duration::from_secs(10)).await;
    app
}

impl TestApp {
    /// Waits (at most `within`) until every service's `/readyz` answers 200: a gateway is ready
    /// once its push subscription is live, and a push sent before that would be lost. A test
    /// that starts services without Redis on purpose just waits the time out.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for base in self.dispatchers.iter().chain(&self.gateways) {
            let url = format!("{base}/readyz");
            while tokio::time::Instant::now() < deadline {
                let ready = self
                    .http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ready {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
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

impl TestApp {
    /// Stops gateway `i` (as SIGTERM would: its sockets close with 1001) and starts a new one on
    /// the same address: what an agent's app sees when its connection drops and comes back.
    pub async fn restart_gateway(&mut self, i: usize) {
        let slot = self.dispatchers.len() + i;
        let (tx, rx) = oneshot::channel::<()>();
        let _ = std::mem::replace(&mut self.stops[slot], tx).send(());
        let old = std::mem::replace(&mut self.tasks[slot], tokio::spawn(async {}));
        let _ = old.await;
        let mut settings = self.settings.clone();
        settings.agent_api_listen = self.gateways[i].trim_start_matches("http://").to_owned();
        let built = agent_app_api::Application::build(settings)
            .await
            .expect("gateway starts again");
        self.tasks[slot] = tokio::spawn(async move {
            let _ = built.run_until_stopped(async { drop(rx.await) }).await;
        });
        self.wait_ready(Duration::from_secs(10)).await;
    }

    /// Stops the services (as SIGTERM would), leaving the namespace's state in Redis so that
    /// services started again in the same namespace carry on (a restart).
    pub async fn stop(mut self) {
        self.clean_up = false;
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
        if !self.clean_up {
            return;
        }
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

/// Whether stream entry `e` (as [`stream_events`] gives it) makes an offer: an `offer_created`,
/// or a `ticket_created` of a ticket offered in the same step (it carries the offer's fields).
pub fn makes_offer(e: &HashMap<String, String>) -> bool {
    match e.get("type").map(String::as_str) {
        Some("offer_created") => true,
        Some("ticket_created") => e.get("offer").is_some_and(|o| !o.is_empty()),
        _ => false,
    }
}

/// Every event of `namespace`'s stream (in the test Redis), in stream order, as field maps.
pub async fn stream_events(namespace: &str) -> Vec<HashMap<String, String>> {
    let mut conn = redis::Client::open(REDIS_URL)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(shared::keys::Keys::new(namespace).events())
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

/// Removes every key of `namespace` over `conn` (best effort).
pub async fn delete_namespace_keys(conn: &mut impl redis::aio::ConnectionLike, namespace: &str) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{namespace}}}:*"))
        .query_async(conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(conn).await;
    }
}

/// Removes every key of `namespace` from the test Redis (best effort).
pub async fn drop_namespace(namespace: &str) {
    let Ok(client) = redis::Client::open(REDIS_URL) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    delete_namespace_keys(&mut conn, namespace).await;
}

/// `dispatchers` dispatchers and one agent-app-api in a fresh namespace, against the Redis at
/// `redis_url` (a private one, or its Sentinels) with `REDIS_MIN_REPLICAS=min_replicas`; not
/// waited for ([`wait_readyz`]).
pub async fn spawn_on(redis_url: &str, min_replicas: u32, dispatchers: usize) -> TestApp {
    spawn_in(redis_url, fresh_namespace(), min_replicas, dispatchers).await
}

/// [`spawn_on`] in `namespace` (on a cluster, one placed on a chosen shard).
pub async fn spawn_in(
    redis_url: &str,
    namespace: String,
    min_replicas: u32,
    dispatchers: usize,
) -> TestApp {
    let mut s = settings(&Options::default(), &namespace);
    s.redis_url = redis_url.to_owned();
    s.redis_min_replicas = min_replicas;
    spawn_from(s, namespace, dispatchers, 1).await
}

/// `path` on the dispatcher and on the gateway.
pub fn urls(app: &TestApp, path: &str) -> [String; 2] {
    [app.dispatcher(path), app.gateway(path)]
}

/// Waits until `/readyz` answers `status` on both services; returns the last answers.
pub async fn wait_readyz(app: &TestApp, status: u16, within: Duration) -> Vec<Answer> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut answers = Vec::new();
        for url in urls(app, "/readyz") {
            answers.push(fetch(app.http.get(url)).await);
        }
        if answers.iter().all(|a| a.status == status) {
            return answers;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status} on both services within {within:?}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts `a` is API.md §11's 503 `unavailable` problem with `Retry-After: 2`.
#[track_caller]
pub fn assert_unavailable(a: &Answer, what: &str) {
    assert_eq!(a.status, 503, "{what}: {a:?}");
    assert!(
        a.content_type.starts_with("application/problem+json"),
        "{what}: a problem document: {a:?}"
    );
    assert_eq!(a.body["status"], 503, "{what}: {a:?}");
    assert_eq!(a.body["code"], "unavailable", "{what}: {a:?}");
    assert_eq!(
        a.retry_after.as_deref(),
        Some("2"),
        "{what}: says when to retry: {a:?}"
    );
    for field in ["type", "title", "detail"] {
        assert!(a.body[field].is_string(), "{what}: has {field}: {a:?}");
    }
}
