//! `GET /v1/events` (API.md §10), end to end: a real streaming HTTP client reads the
//! Server-Sent Events as they happen, filtered, and resumes after `Last-Event-ID`.

use std::time::Duration;

use e2e::{spawn_app, ticket, token, TestApp};
use futures_util::StreamExt;
use serde_json::{json, Value};

/// One SSE event as read.
#[derive(Debug, Clone)]
struct Sse {
    id: String,
    kind: String,
    data: Value,
}

/// A connected SSE client.
struct Client {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Client {
    async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut req = app
            .http
            .get(app.dispatcher(&format!("/v1/events{query}")))
            .bearer_auth(token("admin", "ops"));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        req.send().await.expect("connected")
    }

    async fn connect(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Self {
        let resp = Self::open(app, query, last_event_id).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap_or_default(),
            "text/event-stream"
        );
        let mut client = Self {
            stream: resp.bytes_stream().boxed(),
            buffer: String::new(),
        };
        // The first comment says the stream is live.
        client.read_block().await;
        client
    }

    /// The next blank-line-terminated block.
    async fn read_block(&mut self) -> String {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block = self.buffer[..at].to_owned();
                self.buffer.drain(..at + 2);
                return block;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open")
                .expect("a chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event (comments skipped).
    async fn next(&mut self) -> Sse {
        loop {
            let block = self.read_block().await;
            let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            if !id.is_empty() {
                let data: Value = serde_json::from_str(&data).expect("data is JSON");
                assert_eq!(data["type"], kind.as_str());
                return Sse { id, kind, data };
            }
        }
    }

    async fn next_n(&mut self, n: usize) -> Vec<Sse> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }
}

fn kinds(events: &[Sse]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn events_stream_live_filtered_and_resume_after_the_last_id() {
    let app = spawn_app().await;
    let mut all = Client::connect(&app, "", None).await;
    let mut cancels = Client::connect(&app, "?types=ticket.cancelled,agent.*", None).await;

    let t1 = app.new_ticket(&ticket("de", json!({}), 5)).await;
    let t2 = app.new_ticket(&ticket("de", json!({}), 5)).await;
    assert_eq!(app.cancel_ticket(&t1).await.status, 200);

    let seen = all.next_n(5).await;
    assert_eq!(
        kinds(&seen),
        [
            "ticket.created",
            "ticket.queued",
            "ticket.created",
            "ticket.queued",
            "ticket.cancelled"
        ]
    );
    assert_eq!(seen[0].data["data"]["ticket_id"], t1.as_str());
    assert_eq!(seen[0].data["data"]["status"], "queued");
    assert_eq!(seen[2].data["data"]["ticket_id"], t2.as_str());
    assert_eq!(seen[4].data["data"]["status"], "cancelled");
    assert!(seen.windows(2).all(|w| w[0].id != w[1].id));

    let filtered = cancels.next().await;
    assert_eq!(filtered.kind, "ticket.cancelled");
    assert_eq!(
        filtered.id, seen[4].id,
        "one id per event, whoever reads it"
    );

    // A client that read the first two resumes after the second: the rest, then live.
    let mut resumed = Client::connect(&app, "", Some(&seen[1].id)).await;
    let again = resumed.next_n(3).await;
    assert_eq!(
        again.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        seen[2..].iter().map(|e| e.id.as_str()).collect::<Vec<_>>()
    );
    assert_eq!(app.cancel_ticket(&t2).await.status, 200);
    let live = resumed.next().await;
    assert_eq!(live.kind, "ticket.cancelled");
    assert_eq!(live.data["data"]["ticket_id"], t2.as_str());
    assert_eq!(all.next().await.id, live.id);
}

#[tokio::test]
async fn a_bad_filter_or_resume_id_is_refused_and_only_operators_may_listen() {
    let app = spawn_app().await;
    for (query, id, field) in [
        ("?types=ticket.exploded", None, "types"),
        ("?colour=red", None, "colour"),
        ("", Some("yesterday"), "Last-Event-ID"),
    ] {
        let resp = Client::open(&app, query, id).await;
        assert_eq!(
            resp.status(),
            if field == "colour" { 400 } else { 422 },
            "{query}"
        );
        let body: Value = resp.json().await.expect("a problem");
        assert!(
            body["detail"].as_str().unwrap_or_default().contains(field),
            "{body}"
        );
    }
    let resp = app
        .http
        .get(app.dispatcher("/v1/events"))
        .bearer_auth(token("escalation", "engine"))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), 403);
}
