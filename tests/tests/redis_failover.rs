//! With `REDIS_URL=redis+sentinel://…/<master>` both services follow a Sentinel failover
//! without a restart (API.md §11): while the Sentinels promote the replica, calls answer 503
//! `unavailable` (never 500); then tickets are taken, offered and assigned on the new primary,
//! the agent connected throughout receives offers again, and what was replicated is still known.
//!
//! These tests run their own primary, replica and three Sentinels (`e2e::redis_server`).

use std::time::Duration;

use e2e::failover::{placed, Reader};
use e2e::redis_server::{redis_command, RedisServer, Replicated};
use e2e::{assert_unavailable, profile, spawn_on, ticket, wait_readyz};
use serde_json::json;

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

    let mut agent = Reader::new(
        app.available_agent("a-1", &profile(&["sv"], json!({}), 3))
            .await,
    );
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
