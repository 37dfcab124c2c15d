//! With `REDIS_URL=redis+cluster://…` each namespace lives on one shard of a Redis Cluster
//! (API.md §11): its keys, its functions and its pushes on the primary owning its slot, which
//! the services follow through a failover and a slot moved to another shard.
//!
//! These tests run their own cluster: three primaries, three replicas (`e2e::redis_cluster`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::failover::{placed, Reader};
use e2e::redis_cluster::{Cluster, NODE_TIMEOUT_MS};
use e2e::redis_server::redis_command;
use e2e::{profile, spawn_in, ticket, wait_readyz, AgentClient, TestApp};
use serde_json::json;

/// The namespace's stream, which every function call names as its key.
fn events_key(namespace: &str) -> String {
    shared::keys::Keys::new(namespace).events()
}

/// An agent works a shift in `app`: two tickets accepted, a dropped connection and a reconnect
/// within the grace period that finds both still held, both completed, offline; the ledger's
/// payroll report then has the closed shift with both completions.
async fn work_a_shift(app: &TestApp) {
    let from = chrono::Utc::now() - chrono::Duration::minutes(1);
    let agent_profile = profile(&["sv"], json!({}), 2);
    let mut agent = app.available_agent("a-1", &agent_profile).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
        let assigned = agent.accept_next().await;
        assert_eq!(assigned["ticket_id"], id.as_str(), "{assigned}");
        held.push(id);
    }
    agent.close().await;
    let mut agent = app.agent("a-1", &agent_profile).await;
    let welcome = agent.expect("welcome").await;
    let mut active: Vec<&str> = welcome["active_tickets"]
        .as_array()
        .expect("active_tickets")
        .iter()
        .filter_map(|t| t["ticket_id"].as_str())
        .collect();
    active.sort_unstable();
    let mut want: Vec<&str> = held.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(
        active, want,
        "both tickets held across the reconnect: {welcome}"
    );
    // The ledger counts whole seconds.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for id in &held {
        agent.complete(id).await;
        app.wait_ticket_status(id, "completed").await;
    }
    agent.set_status("offline").await;
    let to = chrono::Utc::now() + chrono::Duration::minutes(1);
    let a = app
        .wait_payroll(from, to, Duration::from_secs(15), |a| {
            // The ledger's PostgreSQL pool may still be connecting (503, retry).
            assert!(a.status == 200 || a.status == 503, "{a:?}");
            let shifts = a.body["shifts"].as_array().cloned().unwrap_or_default();
            shifts.len() == 1 && shifts[0]["open"] == false
        })
        .await;
    let shifts = &a.body["shifts"];
    assert_eq!(shifts[0]["tickets_completed"], 2, "{shifts:?}");
    assert_eq!(shifts[0]["agent_id"], "a-1");
    agent.close().await;
}

/// Two namespaces on two shards, each with its own dispatcher and gateway, work at the same
/// time: matching, offers, a disconnect and the ledger, each on its own shard. Each shard's
/// primary holds its own namespace's keys and no other, the library was loaded where it was
/// called, and the pushes went out as sharded pub/sub.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespaces_on_two_shards_each_work_on_their_own_shard() {
    let cluster = Cluster::start().await;
    let shards = cluster.shards().await;
    assert_eq!(shards.len(), 3, "{shards:?}");
    let mut apps = Vec::new();
    for index in 0..2 {
        let namespace = cluster.namespace_on(index).await;
        let app = spawn_in(&cluster.url(), namespace, 0, 1).await;
        wait_readyz(&app, 200, Duration::from_secs(15)).await;
        apps.push(app);
    }
    futures_util::future::join_all(apps.iter().map(work_a_shift)).await;

    // Each shard's primary holds the keys of its namespace only, and the library where it was
    // called; the third shard holds nothing.
    for (index, shard) in shards.iter().enumerate() {
        let url = format!("redis://127.0.0.1:{}", shard.primary);
        let keys: Vec<String> =
            redis::from_redis_value(redis_command(&url, &["KEYS", "*"]).await).expect("keys");
        let functions: Vec<redis::Value> =
            redis::from_redis_value(redis_command(&url, &["FUNCTION", "LIST"]).await)
                .expect("a list");
        match apps.get(index) {
            Some(app) => {
                let prefix = shared::keys::Keys::new(&app.namespace).prefix().to_owned();
                assert!(
                    keys.contains(&events_key(&app.namespace)),
                    "shard {index}: {keys:?}"
                );
                let foreign: Vec<&String> =
                    keys.iter().filter(|k| !k.starts_with(&prefix)).collect();
                assert!(
                    foreign.is_empty(),
                    "shard {index} holds only {prefix}*: {foreign:?}"
                );
                assert!(
                    !functions.is_empty(),
                    "the library was loaded on shard {index}"
                );
                let stats: String =
                    redis::from_redis_value(redis_command(&url, &["INFO", "commandstats"]).await)
                        .expect("text");
                assert!(
                    stats.contains("cmdstat_spublish:"),
                    "pushes went out with SPUBLISH on shard {index}"
                );
            }
            None => {
                assert!(
                    keys.is_empty(),
                    "shard {index} holds no namespace: {keys:?}"
                );
                assert!(functions.is_empty(), "nothing called shard {index}");
            }
        }
    }
}

/// A shard's primary is killed while tickets arrive in its namespace and in another on a
/// different shard. The killed shard's namespace answers 503 until its replica is promoted
/// (and, with `REDIS_MIN_REPLICAS=1`, until a replica follows the new primary again), then
/// resumes: the agent who stayed connected takes the next ticket, and every ticket answered 201
/// is still known. The other namespace answers 201 all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shards_primary_killed_under_load_fails_over_and_only_its_namespace_waits() {
    let mut cluster = Cluster::start().await;
    let (hit, spared) = (cluster.namespace_on(0).await, cluster.namespace_on(1).await);
    let app = spawn_in(&cluster.url(), hit.clone(), 1, 1).await;
    let other = spawn_in(&cluster.url(), spared, 1, 1).await;
    wait_readyz(&app, 200, Duration::from_secs(15)).await;
    wait_readyz(&other, 200, Duration::from_secs(15)).await;
    let mut agent = Reader::new(
        app.available_agent("a-1", &profile(&["sv"], json!({}), 3))
            .await,
    );
    let before = placed(&app, &mut agent, "before").await.0;

    // Load on both namespaces: a ticket every 50 ms each, recording what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let load = |app: Arc<TestApp>, stop: Arc<AtomicBool>| async move {
        let (mut acknowledged, mut refused) = (Vec::new(), 0);
        while !stop.load(Ordering::Relaxed) {
            let a = app.post_ticket(&ticket("en", json!({}), 3)).await;
            match a.status {
                201 => acknowledged.push(a.body["ticket_id"].as_str().expect("id").to_owned()),
                503 => refused += 1,
                _ => panic!("a ticket during the failover answered {a:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (acknowledged, refused)
    };
    let app = Arc::new(app);
    let other = Arc::new(other);
    let loads = [
        tokio::spawn(load(app.clone(), stop.clone())),
        tokio::spawn(load(other.clone(), stop.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;

    let old = cluster.shard_of(&hit).await.primary;
    // What the test relies on surviving is on the replica.
    redis_command(&format!("redis://127.0.0.1:{old}"), &["WAIT", "1", "5000"]).await;
    cluster.node(old).kill();
    let took = cluster
        .wait_promoted(&hit, old, Duration::from_millis(NODE_TIMEOUT_MS * 10))
        .await;
    eprintln!("the replica was promoted {took:?} after the kill");
    // Back as a replica of the new primary (it kept its cluster configuration), so that
    // REDIS_MIN_REPLICAS=1 can be kept again.
    let killed = cluster.node(old);
    killed.spawn();
    killed.wait_ready().await;
    let (id, taken) = placed(&app, &mut agent, "after").await;
    eprintln!("tickets taken again {:?} after the kill", took + taken);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let [hit_load, spared_load] = loads;
    let (hit_acknowledged, hit_refused) = hit_load.await.expect("the load ran");
    let (spared_acknowledged, spared_refused) = spared_load.await.expect("the load ran");
    eprintln!(
        "killed shard's namespace: {} acknowledged, {hit_refused} refused; \
         the other: {} acknowledged, {spared_refused} refused",
        hit_acknowledged.len(),
        spared_acknowledged.len()
    );
    assert!(hit_refused > 0, "the killed shard's namespace waited (503)");
    assert_eq!(
        spared_refused, 0,
        "the other shard's namespace never waited"
    );
    wait_readyz(&app, 200, Duration::from_secs(15)).await;
    for known in hit_acknowledged.iter().chain([&before, &id]) {
        let a = app.get_ticket(known).await;
        assert_eq!(
            a.status, 200,
            "{known}, answered 201, is still known: {a:?}"
        );
    }
    assert_eq!(app.get_ticket(&before).await.body["status"], "assigned");
    agent.agent.close().await;
}

/// The namespace's slot is moved to another shard, as an operator balancing the shards does:
/// with the namespace's services stopped (a function running while its keys migrate could fail
/// halfway, and Lua does not roll back). A store that was open throughout meets `MOVED` on its
/// next command and has it answered by the new owner; the services started again find the slot
/// there, load the library on it and carry on with the state that moved with the keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_namespace_whose_slot_moves_to_another_shard_follows_it() {
    let cluster = Cluster::start().await;
    let namespace = cluster.namespace_on(0).await;
    let app = spawn_in(&cluster.url(), namespace.clone(), 0, 1).await;
    wait_readyz(&app, 200, Duration::from_secs(15)).await;
    let agent_profile = profile(&["sv"], json!({}), 3);
    let mut agent = Reader::new(app.available_agent("a-1", &agent_profile).await);
    let first = placed(&app, &mut agent, "first").await.0;

    let store = shared::store::Store::open(&cluster.url(), &namespace).expect("a store");
    let probe = store.keys().probe();
    let mut conn = store.conn();
    redis::cmd("SET")
        .arg(&probe)
        .arg("moved with the slot")
        .query_async::<()>(&mut conn)
        .await
        .expect("SET on the slot's first owner");
    agent.agent.close().await;
    app.stop().await;

    let shards = cluster.shards().await;
    let (from, to) = (shards[0].primary, shards[1].primary);
    let slot = shared::store::slot(shared::keys::Keys::new(&namespace).prefix());
    move_slot(slot, from, to).await;
    assert_eq!(cluster.shard_of(&namespace).await.primary, to);
    let read: Result<String, _> = redis::cmd("GET").arg(&probe).query_async(&mut conn).await;
    assert_eq!(
        read.map_err(|e| e.to_string()).as_deref(),
        Ok("moved with the slot"),
        "the command that met MOVED was sent again to the new owner"
    );

    let app = spawn_in(&cluster.url(), namespace.clone(), 0, 1).await;
    wait_readyz(&app, 200, Duration::from_secs(15)).await;
    let mut back = AgentClient::connect(&app.gateways[0], "a-1").await;
    let welcome = back.expect("welcome").await;
    assert_eq!(
        welcome["active_tickets"][0]["ticket_id"],
        first.as_str(),
        "the ticket held before the move: {welcome}"
    );
    let mut agent = Reader::new(back);
    let (second, _) = placed(&app, &mut agent, "second").await;
    agent.agent.complete(&first).await;
    app.wait_ticket_status(&first, "completed").await;
    let a = app.get_ticket(&second).await;
    assert_eq!(a.body["status"], "assigned", "{a:?}");
    let functions = redis_command(&format!("redis://127.0.0.1:{to}"), &["FUNCTION", "LIST"]).await;
    assert!(
        !redis::from_redis_value::<Vec<redis::Value>>(functions)
            .expect("a list")
            .is_empty(),
        "the library was loaded on the slot's new owner"
    );
    agent.agent.close().await;
}

/// Moves `slot` from the primary on `from` to the one on `to`, keys and all, as
/// `redis-cli --cluster reshard` does.
async fn move_slot(slot: u16, from: u16, to: u16) {
    let url = |port: u16| format!("redis://127.0.0.1:{port}");
    let id = |port: u16| async move {
        redis::from_redis_value::<String>(redis_command(&url(port), &["CLUSTER", "MYID"]).await)
            .expect("an id")
    };
    let (from_id, to_id) = (id(from).await, id(to).await);
    let slot = slot.to_string();
    redis_command(
        &url(to),
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id],
    )
    .await;
    redis_command(
        &url(from),
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id],
    )
    .await;
    loop {
        let keys = redis_command(&url(from), &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]).await;
        let keys: Vec<String> = redis::from_redis_value(keys).expect("keys");
        if keys.is_empty() {
            break;
        }
        let port = to.to_string();
        let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        migrate.extend(keys.iter().map(String::as_str));
        redis_command(&url(from), &migrate).await;
    }
    for port in [to, from] {
        redis_command(&url(port), &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).await;
    }
}
