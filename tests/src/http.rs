//! The HTTP side of the tests: one client, answers read whole, and a helper on [`TestApp`] per
//! endpoint the tests call often.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::{stream_events, token, AgentClient, TestApp, FRAME_WAIT, REDIS_URL};

/// The tests' HTTP client. Idle connections are dropped after 2 s, well before the services'
/// keep-alive of 5 s ends them: a request sent on a connection the server is closing at that
/// moment fails with `IncompleteMessage`, which no test means to test.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client")
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
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

/// Sends a request as built (no token added; a 30 s timeout) and reads the answer.
pub async fn fetch(req: reqwest::RequestBuilder) -> Answer {
    fetch_text(req).await.0
}

/// Like [`fetch`], also returning the body as text (for CSV and other non-JSON bodies).
pub async fn fetch_text(req: reqwest::RequestBuilder) -> (Answer, String) {
    let resp = req
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("request is sent");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    let answer = Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        content_type,
        retry_after,
    };
    (answer, text)
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
        fetch(req.bearer_auth(token(role, "tester"))).await
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

    /// Polls `GET /v1/payroll/shifts` over `from`..`to` (whole seconds) until `done` says the
    /// report is what the test waits for, for at most `within`; returns that answer. `done`
    /// sees every answer, so it also asserts what each must be.
    pub async fn wait_payroll(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        within: Duration,
        done: impl Fn(&Answer) -> bool,
    ) -> Answer {
        let secs =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = self.dispatcher(&format!(
            "/v1/payroll/shifts?from={}&to={}",
            secs(from),
            secs(to)
        ));
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let a = self.send(self.http.get(&url), "payroll").await;
            if done(&a) {
                return a;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the payroll report never became what was awaited: {:?}",
                a.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates (or replaces) agent `id` on the roster without connecting it.
    pub async fn add_agent(&self, id: &str, profile: &Value) {
        let a = self.put_agent(id, profile).await;
        assert!(a.status == 201 || a.status == 200, "agent created: {a:?}");
    }

    /// Creates agent `id` and connects it over the first gateway (header auth).
    pub async fn agent(&self, id: &str, profile: &Value) -> AgentClient {
        self.add_agent(id, profile).await;
        AgentClient::connect(&self.gateways[0], id).await
    }

    /// Creates agent `id`, connects it over the first gateway and consumes its `welcome`.
    pub async fn welcomed_agent(&self, id: &str, profile: &Value) -> AgentClient {
        let mut agent = self.agent(id, profile).await;
        agent.expect("welcome").await;
        agent
    }

    /// Creates agent `id`, connects it and sets it `available`.
    pub async fn available_agent(&self, id: &str, profile: &Value) -> AgentClient {
        self.add_agent(id, profile).await;
        AgentClient::connect_available(&self.gateways[0], id).await
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
    pub async fn events(&self) -> Vec<HashMap<String, String>> {
        stream_events(&self.namespace).await
    }

    /// `GET /v1/me` on the first gateway with `token` (no `Authorization` header if empty).
    pub async fn get_me(&self, token: &str) -> Answer {
        let mut req = self.http.get(self.gateway("/v1/me"));
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        fetch(req).await
    }
}
