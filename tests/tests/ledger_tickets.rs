//! Ticket retention (API.md §4): an ended ticket leaves Redis `TICKET_RETENTION_SECS` after it
//! ended (1 s here), with everything of it, once the ledger has archived it in PostgreSQL, and
//! `GET /v1/tickets/{id}` serves it from there with the same fields; a ticket whose end the
//! ledger has not stored yet stays. Idempotency keys are the caller's own.

#[path = "ledger_support.rs"]
mod support;

use std::time::Duration;

use e2e::{profile, spawn_from, spawn_with, ticket, token, Options, TestApp};
use serde_json::{json, Value};
use support::{eventually, Proxy};

fn retention_1s() -> Options {
    Options {
        ticket_retention_secs: 1,
        ..Options::default()
    }
}

/// Every key of the namespace whose name holds one of `ids`.
async fn keys_naming(app: &TestApp, ids: &[String]) -> Vec<String> {
    let mut conn = app.redis().await;
    let all: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}}}:*", app.namespace))
        .query_async(&mut conn)
        .await
        .expect("keys");
    all.into_iter()
        .filter(|k| ids.iter().any(|id| k.contains(id.as_str())))
        .collect()
}

/// Whether Redis still holds the ticket's hash.
async fn in_redis(app: &TestApp, id: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(format!("{{{}}}:ticket:{id}", app.namespace))
        .query_async(&mut app.redis().await)
        .await
        .expect("exists");
    n == 1
}

/// The ids of the offers made for the ticket, as its hash records them.
async fn offer_ids(app: &TestApp, id: &str) -> Vec<String> {
    let ids: Option<String> = redis::cmd("HGET")
        .arg(format!("{{{}}}:ticket:{id}", app.namespace))
        .arg("offer_ids")
        .query_async(&mut app.redis().await)
        .await
        .expect("hget");
    ids.unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

async fn get(app: &TestApp, id: &str) -> e2e::Answer {
    let a = app.get_ticket(id).await;
    assert_eq!(a.status, 200, "GET {id}: {a:?}");
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_tickets_leave_redis_entirely_and_read_the_same_from_postgres() {
    let app = spawn_with(retention_1s()).await;
    let mut agent = app
        .available_agent("r-1", &profile(&["sv"], json!({"refunds": 3}), 1))
        .await;
    let mut other = app
        .available_agent("r-2", &profile(&["sv"], json!({"refunds": 3}), 1))
        .await;
    support::ledger_ready(&app.dispatchers[0]).await;

    // Completed, after a decline by the other agent (so there is a declined set and two offers).
    let mut body = ticket("sv", json!({"refunds": 2}), 7);
    body["preferred_agent_id"] = json!("r-2");
    let completed = app.new_ticket(&body).await;
    let offer = other.expect("offer").await;
    other
        .send(json!({"type": "decline", "offer_id": offer["offer_id"], "reason": "on a call"}))
        .await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["ticket_id"], completed.as_str());
    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"]}))
        .await;
    agent.expect("assigned").await;
    agent
        .send(json!({"type": "complete", "ticket_id": completed, "outcome": "unresolved", "note": "called back"}))
        .await;
    app.wait_ticket_status(&completed, "completed").await;

    // Cancelled while assigned (to r-1, r-2 on a break), while offered (to r-2, back), and
    // while queued (nobody has the level).
    other.set_status("break").await;
    let assigned = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    other.set_status("available").await;
    let offered = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    other.expect("offer").await;
    let queued = app
        .new_ticket(&ticket("sv", json!({"refunds": 5}), 5))
        .await;
    for id in [&assigned, &offered, &queued] {
        assert_eq!(app.cancel_ticket(id).await.status, 200);
    }
    agent.expect("ticket_cancelled").await;
    other.expect("offer_revoked").await;

    let ended = [completed, assigned, offered, queued];
    let mut before = Vec::new();
    let mut names = Vec::new();
    for id in &ended {
        before.push(get(&app, id).await.body);
        names.push(id.clone());
        names.extend(offer_ids(&app, id).await);
    }
    assert!(
        names.len() >= ended.len() + 4,
        "the offers are recorded: {names:?}"
    );

    // Once stored and a second old, nothing of them is left in Redis.
    eventually(
        "the ended tickets to leave Redis",
        Duration::from_secs(20),
        || async { keys_naming(&app, &names).await.is_empty().then_some(()) },
    )
    .await;
    for (id, was) in ended.iter().zip(&before) {
        let now = get(&app, id).await.body;
        assert_eq!(&now, was, "{id} reads the same from PostgreSQL");
    }
    assert_eq!(before[0]["status"], "completed");
    assert_eq!(before[0]["outcome"], "unresolved");
    assert_eq!(before[0]["offers_made"], 2);
    assert_eq!(before[0]["agent_id"], "r-1");
    assert_eq!(before[1]["agent_id"], "r-1", "cancelled while assigned");
    let note = support::sql(&format!(
        "SELECT note FROM tickets WHERE namespace = '{}' AND ticket_id = '{}'",
        app.namespace, ended[0]
    ))
    .await;
    assert_eq!(note, "called back");
    let ended_left: i64 = redis::cmd("ZCARD")
        .arg(format!("{{{}}}:ended", app.namespace))
        .query_async(&mut app.redis().await)
        .await
        .expect("zcard");
    assert_eq!(ended_left, 0);
    let declined: i64 = redis::cmd("EXISTS")
        .arg(format!("{{{}}}:agent:r-2:declined", app.namespace))
        .query_async(&mut app.redis().await)
        .await
        .expect("exists");
    assert_eq!(declined, 0, "the agent forgot the ticket it declined");

    // Cancelling again: a cancelled one answers as it is, a completed one 409, from the archive.
    let a = app.cancel_ticket(&ended[3]).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body, before[3]);
    let a = app.cancel_ticket(&ended[0]).await;
    assert_eq!(a.status, 409, "{a:?}");
    assert_eq!(a.body["code"], "ticket_completed");
    assert_eq!(app.get_ticket("t-never-was").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticket_the_ledger_has_not_stored_stays_in_redis_until_it_has() {
    let proxy = Proxy::start().await;
    proxy.off();
    let ns = e2e::fresh_namespace();
    let mut settings = e2e::settings(&retention_1s(), &ns);
    settings.database_url = format!("postgres://postgres@127.0.0.1:{}/dispatch", proxy.port);
    let app = spawn_from(settings, ns, 1, 1).await;
    let mut agent = app
        .available_agent("s-1", &profile(&["sv"], json!({}), 1))
        .await;
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    agent.complete(&id).await;
    let was = app.wait_ticket_status(&id, "completed").await;

    // Well past the retention, PostgreSQL still away: the ticket stays, served from Redis.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        in_redis(&app, &id).await,
        "left Redis before the ledger had it"
    );
    assert_eq!(get(&app, &id).await.body, was);

    proxy.on();
    eventually(
        "the ticket to leave Redis",
        Duration::from_secs(30),
        || async { (!in_redis(&app, &id).await).then_some(()) },
    )
    .await;
    assert_eq!(get(&app, &id).await.body, was, "now from PostgreSQL");
}

async fn post_with_key(app: &TestApp, sub: &str, key: &str, body: &Value) -> e2e::Answer {
    e2e::fetch(
        app.http
            .post(app.dispatcher("/v1/tickets"))
            .bearer_auth(token("escalation", sub))
            .header("Idempotency-Key", key)
            .json(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_the_callers_own_and_outlive_the_ticket_in_redis() {
    let app = spawn_with(retention_1s()).await;
    support::ledger_ready(&app.dispatchers[0]).await;
    let body = ticket("sv", json!({}), 5);
    let first = post_with_key(&app, "engine-a", "k-1", &body).await;
    assert_eq!(first.status, 201, "{first:?}");
    let other = post_with_key(&app, "engine-b", "k-1", &body).await;
    assert_eq!(
        other.status, 201,
        "another caller's key is another key: {other:?}"
    );
    assert_ne!(first.body["ticket_id"], other.body["ticket_id"]);
    let again = post_with_key(&app, "engine-a", "k-1", &body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], first.body["ticket_id"]);

    // The key's record lasts 24 h.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{}}}:idem:*", app.namespace))
        .query_async(&mut app.redis().await)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 2);
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut app.redis().await)
            .await
            .expect("ttl");
        assert!((86_000..=86_400).contains(&ttl), "{key}: ttl {ttl}");
    }

    // After the ticket has left Redis, a retry still finds it.
    let id = first.body["ticket_id"].as_str().expect("id").to_owned();
    assert_eq!(app.cancel_ticket(&id).await.status, 200);
    eventually(
        "the ticket to leave Redis",
        Duration::from_secs(20),
        || async { (!in_redis(&app, &id).await).then_some(()) },
    )
    .await;
    let again = post_with_key(&app, "engine-a", "k-1", &body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.body["ticket_id"], id.as_str());
    assert_eq!(again.body["status"], "cancelled");
}
