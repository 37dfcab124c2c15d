//! What the failover tests (Sentinel and Cluster) share: the agent who stays connected through
//! a failover, and a ticket placed, offered and accepted across one.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use crate::{assert_unavailable, ticket, AgentClient, TestApp};

/// The agent who stays connected, as a client app: it reads its frames all the time (or the
/// gateway's pings go unanswered and it drops the connection) and keeps them until looked at.
pub struct Reader {
    /// The connection.
    pub agent: AgentClient,
    frames: VecDeque<Value>,
}

impl Reader {
    /// Reads for `agent`.
    pub fn new(agent: AgentClient) -> Self {
        Self {
            agent,
            frames: VecDeque::new(),
        }
    }

    /// Reads frames for `wait`.
    pub async fn read_for(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.agent.next(left).await {
                Ok(Some(frame)) => self.frames.push_back(frame),
                Ok(None) => return,
                Err(c) => panic!("closed ({c:?})"),
            }
        }
    }

    /// The first frame of `kind` for `ticket`, read within `wait`; the frames before it are
    /// dropped. A `welcome` (the agent's state, sent again once the gateway resubscribed on the
    /// new primary) holds the offer as its `pending_offer`, as a client reads it. An offer of
    /// another ticket can come first: one the old primary took after the promotion, a write
    /// lost with the old primary's data (its POST was answered 503, unconfirmed).
    pub async fn next_for(&mut self, kind: &str, ticket: &str, wait: Duration) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            while let Some(frame) = self.frames.pop_front() {
                if frame["type"] == kind && frame["ticket_id"] == ticket {
                    return frame;
                }
                let pending = &frame["pending_offer"];
                if kind == "offer" && frame["type"] == "welcome" && pending["ticket_id"] == ticket {
                    return pending.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} for {ticket} within {wait:?}"
            );
            self.read_for(Duration::from_millis(100)).await;
        }
    }
}

/// Posts a ticket with the `Idempotency-Key` `key` until it is taken (201, or 200 for a
/// retry the primary had taken; each refusal meanwhile must be 503 `unavailable`), and has the
/// agent accept its offer. Returns the ticket and how long it took to be taken.
pub async fn placed(app: &TestApp, agent: &mut Reader, key: &str) -> (String, Duration) {
    let body = ticket("sv", json!({}), 5);
    let started = Instant::now();
    let id = loop {
        let request = app
            .http
            .post(app.dispatcher("/v1/tickets"))
            .header("Idempotency-Key", key)
            .json(&body);
        let a = app.send(request, "escalation").await;
        if a.status == 201 || a.status == 200 {
            break a.body["ticket_id"].as_str().expect("ticket_id").to_owned();
        }
        assert_unavailable(&a, "POST /v1/tickets during the failover");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "tickets never taken again: {a:?}"
        );
        agent.read_for(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();
    let offer = agent.next_for("offer", &id, Duration::from_secs(20)).await;
    agent
        .agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    agent
        .next_for("assigned", &id, Duration::from_secs(10))
        .await;
    (id, took)
}
