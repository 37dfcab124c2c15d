//! Helpers of the webhook tests: services with a retry schedule of the test's, endpoints, the
//! independent signature check, and sorting what a [`Receiver`](crate::receiver::Receiver) got.

use std::time::Duration;

use serde_json::{json, Value};

use crate::receiver::Received;
use crate::{fresh_namespace, settings, spawn_from, Answer, Options, TestApp};

/// One gateway and `dispatchers` dispatchers retrying on `retry` (comma-separated seconds),
/// with at most `backlog_max` deliveries waiting per endpoint.
pub async fn spawn(dispatchers: usize, retry: &str, backlog_max: u64) -> TestApp {
    let namespace = fresh_namespace();
    let mut s = settings(&Options::default(), &namespace);
    s.webhook_retry_schedule = retry
        .split(',')
        .map(|v| Duration::from_secs(v.parse().expect("seconds")))
        .collect();
    s.webhook_backlog_max = backlog_max;
    spawn_from(s, namespace, dispatchers, 1).await
}

/// `POST /v1/webhooks` as admin, with a description.
pub async fn create_webhook(app: &TestApp, url: &str, events: Value) -> Answer {
    app.send(
        app.http
            .post(app.dispatcher("/v1/webhooks"))
            .json(&json!({"url": url, "events": events, "description": "test"})),
        "admin",
    )
    .await
}

/// Creates an endpoint for `url` and `events`; returns its secret.
pub async fn webhook(app: &TestApp, url: &str, events: Value) -> String {
    let a = create_webhook(app, url, events).await;
    assert_eq!(a.status, 201, "{a:?}");
    a.body["secret"].as_str().expect("a secret").to_owned()
}

/// Checks every request's signature with the `standardwebhooks` package; returns how many it
/// verified.
pub fn verify_independently(secret: &str, received: &[Received]) -> usize {
    let requests: Vec<Value> = received
        .iter()
        .map(|r| json!({"headers": r.headers, "body": r.body}))
        .collect();
    let input = json!({"secret": secret, "requests": requests}).to_string();
    let (ok, printed) = crate::python("verify_webhooks.py", &input);
    assert!(ok, "standardwebhooks refused a delivery: {printed}");
    printed.trim().parse().expect("a count")
}

/// The body `type` of each request, in arrival order.
pub fn kinds(received: &[Received]) -> Vec<String> {
    received.iter().map(Received::kind).collect()
}

/// Whether a request of body type `kind` arrived.
pub fn has(received: &[Received], kind: &str) -> bool {
    received.iter().any(|r| r.kind() == kind)
}

/// The requests about ticket `id`, in arrival order.
pub fn of_ticket<'a>(received: &'a [Received], id: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|r| r.json()["data"]["ticket_id"] == id)
        .collect()
}

/// The id of the namespace's first endpoint.
pub async fn only_webhook(app: &TestApp) -> String {
    let list = app
        .send(app.http.get(app.dispatcher("/v1/webhooks")), "admin")
        .await;
    assert_eq!(list.status, 200);
    list.body["webhooks"][0]["webhook_id"]
        .as_str()
        .expect("an endpoint")
        .to_owned()
}
