//! Webhooks (API.md §9), end to end: the real dispatcher delivers to a real HTTP receiver in the
//! test, and the signatures are checked by an independent implementation (the
//! `standardwebhooks` package from PyPI, which `deploy/test` installs).

use std::collections::HashMap;
use std::time::Duration;

use e2e::hooks::{
    create_webhook, has, kinds, of_ticket, only_webhook, spawn, verify_independently, webhook,
};
use e2e::receiver::{Received, Receiver, Reply};
use e2e::{profile, ticket, token};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn every_event_type_arrives_signed_with_its_data() {
    let app = spawn(1, "1", 10_000).await;
    let receiver = Receiver::start().await;
    let secret = webhook(&app, &receiver.url, json!(["*"])).await;

    let mut agent = app
        .available_agent("a-1", &profile(&["sv"], json!({}), 1))
        .await;
    // Offered at once, declined, queued (nobody else), then offered again and accepted.
    let t1 = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    let offer = agent.expect("offer").await;
    agent
        .send(json!({"type": "decline", "offer_id": offer["offer_id"], "reason": "busy"}))
        .await;
    // Nobody speaks German: created and queued at once; then cancelled.
    let t2 = app.new_ticket(&ticket("de", json!({}), 5)).await;
    assert_eq!(app.cancel_ticket(&t2).await.status, 200);
    // The declined ticket waits for an agent that has not declined it: a second agent takes it.
    let mut other = app
        .available_agent("a-2", &profile(&["sv"], json!({}), 1))
        .await;
    let assigned = other.accept_next().await;
    assert_eq!(assigned["ticket_id"], t1.as_str());
    other.complete(&t1).await;
    app.wait_ticket_status(&t1, "completed").await;
    other.set_status("offline").await;

    // `shift.ended` waits for the ledger writer, which polls the stream.
    let got = receiver
        .wait_for(Duration::from_secs(30), "every type", |r| {
            [
                "ticket.created",
                "ticket.offered",
                "ticket.requeued",
                "ticket.queued",
                "ticket.assigned",
                "ticket.completed",
                "ticket.cancelled",
                "agent.status_changed",
                "shift.ended",
            ]
            .iter()
            .all(|k| has(r, k))
        })
        .await;
    assert_eq!(verify_independently(&secret, &got), got.len());
    for r in &got {
        assert_eq!(r.header("content-type"), "application/json");
        let body = r.json();
        assert!(body["timestamp"].is_string(), "{body}");
        assert!(!r.id().is_empty());
    }
    let ids: Vec<&str> = got.iter().map(Received::id).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "each event once: {ids:?}");

    let t1_events = of_ticket(&got, &t1);
    let t1_kinds: Vec<String> = t1_events.iter().map(|r| r.kind()).collect();
    assert_eq!(
        t1_kinds,
        [
            "ticket.created",
            "ticket.offered",
            "ticket.requeued",
            "ticket.queued",
            "ticket.offered",
            "ticket.assigned",
            "ticket.completed"
        ],
        "one ticket's events, in order"
    );
    let data = |i: usize| t1_events[i].json()["data"].clone();
    assert!(
        data(0)["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("conv-"),
        "{}",
        data(0)
    );
    assert_eq!(
        data(0)["summary"],
        "Double charge, customer asks for a refund"
    );
    assert_eq!(data(1)["status"], "offered");
    assert_eq!(data(1)["agent_id"], "a-1");
    assert!(data(1)["offer_id"].is_string() && data(1)["expires_at"].is_string());
    assert_eq!(data(2)["reason"], "declined");
    assert_eq!(data(2)["status"], "queued");
    assert_eq!(data(3)["status"], "queued");
    assert_eq!(
        data(5)["agent"],
        json!({"agent_id": "a-2", "display_name": "Test Agent"})
    );
    assert_eq!(data(6)["status"], "completed");
    assert_eq!(data(6)["outcome"], "resolved");

    let t2_kinds: Vec<String> = of_ticket(&got, &t2).iter().map(|r| r.kind()).collect();
    assert_eq!(
        t2_kinds,
        ["ticket.created", "ticket.queued", "ticket.cancelled"]
    );

    let status = got
        .iter()
        .find(|r| r.kind() == "agent.status_changed" && r.json()["data"]["status"] == "offline")
        .expect("a-2 went offline");
    assert_eq!(
        status.json()["data"],
        json!({"agent_id": "a-2", "status": "offline", "reason": "requested"})
    );
    let shift = got
        .iter()
        .find(|r| r.kind() == "shift.ended")
        .expect("a-2's shift ended")
        .json()["data"]
        .clone();
    assert_eq!(shift["agent_id"], "a-2");
    assert_eq!(shift["open"], false);
    assert_eq!(shift["tickets_completed"], 1);
    for field in ["shift_id", "started_at", "ended_at", "currency"] {
        assert!(shift[field].is_string(), "{field}: {shift}");
    }
    for field in [
        "online_secs",
        "break_secs",
        "engaged_secs",
        "paid_secs",
        "hourly_rate_cents",
        "pay_cents",
    ] {
        assert!(shift[field].is_i64(), "{field}: {shift}");
    }
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_holds_back_only_its_own_tickets_later_events() {
    let app = spawn(1, "1,1", 10_000).await;
    let receiver = Receiver::start().await;
    webhook(
        &app,
        &receiver.url,
        json!(["ticket.created", "ticket.cancelled"]),
    )
    .await;
    // The first delivery (t1's creation) gets a 500, its retry no answer within 15 s; the
    // second retry succeeds.
    receiver.script(&[Reply::Status(500)]);
    let t1 = app.new_ticket(&ticket("de", json!({}), 5)).await;
    let first = receiver
        .wait_for(WAIT, "t1's creation", |r| !r.is_empty())
        .await;
    receiver.script_for(first[0].id(), &[Reply::Hang(Duration::from_secs(20))]);
    assert_eq!(app.cancel_ticket(&t1).await.status, 200);
    let t2 = app.new_ticket(&ticket("de", json!({}), 5)).await;
    // t2 is not held back by t1's failing delivery.
    let got = receiver
        .wait_for(WAIT, "t2's creation", |r| !of_ticket(r, &t2).is_empty())
        .await;
    assert!(
        of_ticket(&got, &t1)
            .iter()
            .all(|r| r.kind() == "ticket.created"),
        "t1's cancellation waits behind its creation: {:?}",
        kinds(&got)
    );
    let got = receiver
        .wait_for(Duration::from_secs(30), "t1's cancellation", |r| {
            of_ticket(r, &t1)
                .iter()
                .any(|r| r.kind() == "ticket.cancelled")
        })
        .await;
    let t1_deliveries: Vec<(String, Reply)> = of_ticket(&got, &t1)
        .iter()
        .map(|r| (r.kind(), r.reply))
        .collect();
    assert_eq!(
        t1_deliveries,
        [
            ("ticket.created".to_owned(), Reply::Status(500)),
            (
                "ticket.created".to_owned(),
                Reply::Hang(Duration::from_secs(20))
            ),
            ("ticket.created".to_owned(), Reply::Status(200)),
            ("ticket.cancelled".to_owned(), Reply::Status(200)),
        ]
    );
    let created: Vec<&Received> = of_ticket(&got, &t1)
        .into_iter()
        .filter(|r| r.kind() == "ticket.created")
        .collect();
    assert!(
        created.iter().all(|r| r.id() == first[0].id()),
        "one webhook-id on every retry"
    );
    let gap = created[1].at - created[0].at;
    assert!(
        gap >= Duration::from_millis(800),
        "retried after about 1 s: {gap:?}"
    );
    let timed_out = created[2].at - created[1].at;
    assert!(
        timed_out >= Duration::from_secs(15),
        "an attempt waits 15 s: {timed_out:?}"
    );

    // The log shows each attempt.
    let id = only_webhook(&app).await;
    let log = app
        .send(
            app.http
                .get(app.dispatcher(&format!("/v1/webhooks/{id}/deliveries"))),
            "admin",
        )
        .await;
    assert_eq!(log.status, 200);
    let entries = log.body["deliveries"]
        .as_array()
        .expect("deliveries")
        .clone();
    let attempts: Vec<(Value, Value)> = entries
        .iter()
        .filter(|e| e["event_id"] == first[0].id())
        .map(|e| (e["attempt"].clone(), e["status"].clone()))
        .collect();
    assert_eq!(
        attempts,
        [
            (json!(3), json!(200)),
            (json!(2), Value::Null),
            (json!(1), json!(500))
        ],
        "{entries:#?}"
    );
    let timeout = entries
        .iter()
        .find(|e| e["event_id"] == first[0].id() && e["attempt"] == 2)
        .expect("the timed-out attempt");
    assert!(
        timeout["error"]
            .as_str()
            .unwrap_or_default()
            .contains("15 s"),
        "{timeout}"
    );
    assert!(timeout["next_attempt_at"].is_string() && timeout["attempted_at"].is_string());
}

#[tokio::test]
async fn with_two_dispatchers_each_event_is_delivered_once() {
    let app = spawn(2, "1", 10_000).await;
    let receiver = Receiver::start().await;
    webhook(&app, &receiver.url, json!(["ticket.*"])).await;
    let mut tickets = Vec::new();
    for i in 0..20 {
        let base = &app.dispatchers[i % 2];
        let a = app
            .send(
                app.http
                    .post(format!("{base}/v1/tickets"))
                    .json(&ticket("de", json!({}), 5)),
                "escalation",
            )
            .await;
        assert_eq!(a.status, 201);
        tickets.push(a.body["ticket_id"].as_str().expect("id").to_owned());
    }
    // Each: created and queued.
    let got = receiver
        .wait_for(WAIT, "40 deliveries", |r| r.len() >= 40)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = receiver.received();
    assert_eq!(got_after.len(), got.len(), "no more than once each");
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for r in &got_after {
        *by_id.entry(r.id()).or_default() += 1;
    }
    assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
    for t in &tickets {
        let k: Vec<String> = of_ticket(&got_after, t).iter().map(|r| r.kind()).collect();
        assert_eq!(k, ["ticket.created", "ticket.queued"], "{t}");
    }
}

#[tokio::test]
async fn entries_a_dead_dispatcher_read_are_delivered_by_another() {
    let app = spawn(1, "1", 10_000).await;
    let receiver = Receiver::start().await;
    let mut redis = app.redis().await;
    let events = format!("{{{}}}:events", app.namespace);
    // The group's position before the tickets: read (and acknowledged) while no endpoint existed.
    let before: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(&events)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut redis)
        .await
        .expect("xrevrange");
    let before = before
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
    let mut posted = Vec::new();
    for _ in 0..3 {
        posted.push(app.new_ticket(&ticket("de", json!({}), 5)).await);
    }
    webhook(&app, &receiver.url, json!(["ticket.created"])).await;
    // A dispatcher that reads those entries and dies before queuing them: the group is moved
    // back and a consumer of its own reads them, in one transaction so the app's consumer
    // cannot read them first.
    let (_, read): ((), redis::streams::StreamReadReply) = redis::pipe()
        .atomic()
        .cmd("XGROUP")
        .arg("SETID")
        .arg(&events)
        .arg("webhooks")
        .arg(&before)
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg("webhooks")
        .arg("dead-dispatcher")
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg(&events)
        .arg(">")
        .query_async(&mut redis)
        .await
        .expect("the dead consumer reads");
    let taken = read.keys.iter().map(|k| k.ids.len()).sum::<usize>();
    assert!(
        taken >= 3,
        "the dead consumer took the tickets' entries: {taken}"
    );
    let got = receiver
        .wait_for(Duration::from_secs(40), "every creation", |r| {
            posted.iter().all(|t| !of_ticket(r, t).is_empty())
        })
        .await;
    // The dead dispatcher comes back and queues what it had read: nothing more is sent, for
    // the entries are no longer its own to acknowledge.
    let store = shared::store::Store::open(e2e::REDIS_URL, &app.namespace).expect("store");
    let endpoint = only_webhook(&app).await;
    let late: Vec<_> = read
        .keys
        .iter()
        .flat_map(|k| &k.ids)
        .filter_map(|e| shared::events::StreamId::parse(&e.id))
        .map(|id| {
            let delivery = shared::store::NewDelivery {
                endpoint: endpoint.clone(),
                order_key: format!("late:{id}"),
                event_id: format!("{id}-9"),
                kind: "ticket.created".into(),
                body: "{}".into(),
            };
            (id, vec![delivery])
        })
        .collect();
    store
        .webhook_enqueue("webhooks", 10_000, &late)
        .await
        .expect("enqueued");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got_after = receiver.received();
    assert_eq!(
        got.len(),
        got_after.len(),
        "the late consumer queued nothing"
    );
    for t in &posted {
        assert_eq!(of_ticket(&got_after, t).len(), 1, "{t} delivered once");
    }
}

#[tokio::test]
async fn a_dead_endpoint_slows_neither_offers_nor_the_other_endpoints() {
    let app = spawn(1, "1", 10_000).await;
    let dead = Receiver::start().await;
    dead.otherwise(Reply::Hang(Duration::from_secs(60)));
    let alive = Receiver::start().await;
    webhook(&app, &dead.url, json!(["*"])).await;
    webhook(&app, &alive.url, json!(["ticket.offered"])).await;
    let mut agents = Vec::new();
    for i in 0..12 {
        agents.push(
            app.available_agent(&format!("a-{i}"), &profile(&["sv"], json!({}), 1))
                .await,
        );
    }
    let started = std::time::Instant::now();
    let mut tickets = Vec::new();
    for _ in 0..12 {
        tickets.push(app.new_ticket(&ticket("sv", json!({}), 5)).await);
    }
    for agent in &mut agents {
        agent.expect_within("offer", Duration::from_secs(3)).await;
    }
    let got = alive
        .wait_for(Duration::from_secs(3), "12 offers", |r| r.len() >= 12)
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(got.iter().all(|r| r.kind() == "ticket.offered"));
    // The dead endpoint is being tried, a few at a time.
    assert!(!dead.received().is_empty());
    assert!(dead.received().len() <= 8, "{}", dead.received().len());
}

#[tokio::test]
async fn a_dead_endpoints_backlog_is_bounded_oldest_given_up_first() {
    let app = spawn(1, "3600", 10).await;
    let receiver = Receiver::start().await;
    receiver.otherwise(Reply::Status(503));
    webhook(&app, &receiver.url, json!(["ticket.created"])).await;
    for _ in 0..25 {
        app.new_ticket(&ticket("de", json!({}), 5)).await;
    }
    let id = only_webhook(&app).await;
    let url = app.dispatcher(&format!("/v1/webhooks/{id}/deliveries"));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let log = app.send(app.http.get(&url), "admin").await;
        let given_up = log.body["deliveries"]
            .as_array()
            .map(|d| {
                d.iter()
                    .filter(|e| {
                        e["error"]
                            .as_str()
                            .unwrap_or_default()
                            .starts_with("given up")
                    })
                    .count()
            })
            .unwrap_or(0);
        if given_up == 15 {
            assert_eq!(log.body["waiting"], 10, "{}", log.body);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", log.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn endpoints_are_validated_listed_without_secret_and_deleted() {
    let app = spawn(1, "1", 10_000).await;
    for (body, field) in [
        (
            json!({"url": "ftp://example.com/x", "events": ["*"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["*"]}), "url"),
        (
            json!({"url": "https://example.com/x", "events": ["ticket.exploded"]}),
            "events",
        ),
        (
            json!({"url": "https://example.com/x", "events": []}),
            "events",
        ),
        (json!({"url": "https://example.com/x"}), "events"),
        (
            json!({"url": "https://example.com/x", "events": ["*"], "colour": 1}),
            "colour",
        ),
    ] {
        let a = app
            .send(
                app.http.post(app.dispatcher("/v1/webhooks")).json(&body),
                "admin",
            )
            .await;
        assert_eq!(a.status, 422, "{body}: {a:?}");
        assert!(
            a.body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{a:?}"
        );
    }
    let a = app
        .send(
            app.http
                .post(app.dispatcher("/v1/webhooks"))
                .json(&json!({"url": "https://example.com/x", "events": ["*"]})),
            "escalation",
        )
        .await;
    assert_eq!(a.status, 403);

    let made = create_webhook(&app, "https://example.com/hook", json!(["ticket.*"])).await;
    assert_eq!(made.status, 201);
    let secret = made.body["secret"].as_str().expect("secret");
    assert!(
        secret.starts_with("whsec_") && secret.len() >= 6 + 32,
        "{secret}"
    );
    let id = made.body["webhook_id"].as_str().expect("id").to_owned();
    assert!(made.body["created_at"].is_string());
    let one = app
        .send(
            app.http.get(app.dispatcher(&format!("/v1/webhooks/{id}"))),
            "admin",
        )
        .await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["url"], "https://example.com/hook");
    assert_eq!(one.body["events"], json!(["ticket.*"]));
    assert!(one.body.get("secret").is_none(), "{}", one.body);
    let list = app
        .send(app.http.get(app.dispatcher("/v1/webhooks")), "admin")
        .await;
    assert!(list.body["webhooks"][0].get("secret").is_none());
    let del = app
        .http
        .delete(app.dispatcher(&format!("/v1/webhooks/{id}")))
        .bearer_auth(token("admin", "ops"))
        .send()
        .await
        .expect("sent");
    assert_eq!(del.status(), 204);
    for path in [
        format!("/v1/webhooks/{id}"),
        format!("/v1/webhooks/{id}/deliveries"),
    ] {
        let gone = app.send(app.http.get(app.dispatcher(&path)), "admin").await;
        assert_eq!(gone.status, 404, "{path}");
        assert_eq!(gone.body["code"], "webhook_not_found");
    }
}
