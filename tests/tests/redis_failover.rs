//! With `REDIS_URL=redis+sentinel://…/<master>` both services follow a Sentinel failover
//! without a restart (API.md §11): while the Sentinels promote the replica, calls answer 503
//! `unavailable` (never 500); then tickets are taken, offered and assigned on the new primary,
//! the agent connected throughout receives offers again, and what was replicated is still known.
//!
//! These tests run their own primary, replica and three Sentinels (`e2e::redis_server`).

use std::collections::VecDeque;
use std::time::Duration;

use e2e::redis_server::{redis_command, RedisServer, Replicated};
use e2e::{assert_unavailable, profile, spawn_on, ticket, wait_readyz, AgentClient, TestApp};
use serde_json::{json, Value};
use tokio::time::Instant;

/// The agent who stays connected, as a client app: it reads its frames all the time (or the
/// gateway's pings go unanswered and it drops the connection) and keeps them until looked at.
struct Reader {
    agent: AgentClient,
    frames: VecDeque<Value>,
}

impl Reader {
    /// Reads frames for `wait`.
    async fn read_for(&mut self, wait: Duration) {
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
    async fn next_for(&mut self, kind: &str, ticket: &str, wait: Duration) -> Value {
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
async fn placed(app: &TestApp, agent: &mut Reader, key: &str) -> (String, Duration) {
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

/// A manual failover (the old primary lives on, demoted to a replica: `READONLY`), then the
/// new primary killed (refused connections): each time both services find the primary the
/// Sentinels name, the agent who stayed connected takes the next ticket, and every ticket
/// answered 201 before (with `REDIS_MIN_REPLICAS=1`) is still known.
#[tokio::test]
async fn both_services_follow_sentinel_failovers_without_a_restart() {
    let mut redis = Replicated::start(&[]).await;
    // With REDIS_MIN_REPLICAS=1, a ticket answered 201 is on the replica too, so no failover
    // can lose it.
    let app = spawn_on(&redis.url(), 1, 1).await;
    wait_readyz(&app, 200, Duration::from_secs(15)).await;

    let mut agent = Reader {
        agent: app
            .available_agent("a-1", &profile(&["sv"], json!({}), 3))
            .await,
        frames: VecDeque::new(),
    };
    let mut placed_before = vec![placed(&app, &mut agent, "before").await.0];

    for (round, fault) in ["SENTINEL FAILOVER", "kill -9 of the primary"]
        .into_iter()
        .enumerate()
    {
        let old = redis.primary_port().await;
        // What the test relies on surviving is on the replica (replication is asynchronous).
        redis_command(&format!("redis://127.0.0.1:{old}"), &["WAIT", "1", "5000"]).await;
        if round == 0 {
            redis_command(
                &redis.sentinels[0].url(),
                &["SENTINEL", "FAILOVER", &redis.master],
            )
            .await;
        } else {
            redis.roles().await.0.kill();
        }
        let took = redis.wait_failed_over(old, Duration::from_secs(30)).await;
        eprintln!("{fault}: the Sentinels promoted the replica in {took:?}");
        if round == 1 {
            // Until the killed server is back, as a replica of the new primary, no ticket can
            // be acknowledged (503): `REDIS_MIN_REPLICAS=1` is then a promise nobody keeps.
            let a = app.post_ticket(&ticket("sv", json!({}), 5)).await;
            assert_unavailable(&a, "POST /v1/tickets with no replica");
            let [x, y] = &mut redis.servers;
            let killed = if x.running() { y } else { x };
            killed.spawn();
            killed.wait_ready().await;
            agent.read_for(Duration::from_millis(10)).await;
        }

        let (id, taken) = placed(&app, &mut agent, &format!("after-{round}")).await;
        eprintln!("{fault}: tickets taken again after {:?}", took + taken);
        wait_readyz(&app, 200, Duration::from_secs(15)).await;
        for before in &placed_before {
            let a = app.get_ticket(before).await;
            assert_eq!(a.status, 200, "{fault}: {before} is still known: {a:?}");
            assert_eq!(a.body["status"], "assigned", "{fault}: {a:?}");
            assert_eq!(a.body["agent_id"], "a-1", "{fault}: {a:?}");
        }
        placed_before.push(id);
        // The old primary follows the new one before the next failover needs it.
        redis.wait_watched().await;
    }
    agent.agent.close().await;
    app.stop().await;
}

/// A URL that names no Sentinel's master, or no Sentinel that answers, leaves the services up
/// and unready (503 `unavailable`), never failing a request with a 500.
#[tokio::test]
async fn services_whose_sentinels_name_no_primary_are_up_but_unready() {
    let redis = RedisServer::ready().await;
    let sentinel = RedisServer::sentinel("e2e", redis.port);
    sentinel.wait_ready().await;
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/no-such-master",
        sentinel.port
    );
    let app = spawn_on(&url, 0, 1).await;
    for a in wait_readyz(&app, 503, Duration::from_secs(10)).await {
        assert_unavailable(&a, "/readyz with no primary");
    }
    let a = app.post_ticket(&ticket("sv", json!({}), 5)).await;
    assert_unavailable(&a, "POST /v1/tickets with no primary");
    app.stop().await;
}
