//! Queue visibility (API.md §8), end to end: a ticket's place and wait as tickets queue and
//! drain, and `GET /v1/queues`.

use std::time::Duration;

use e2e::{profile, spawn_app, ticket, Answer, TestApp};
use serde_json::{json, Value};

async fn queues(app: &TestApp, query: &str) -> Answer {
    app.send(
        app.http.get(app.dispatcher(&format!("/v1/queues{query}"))),
        "escalation",
    )
    .await
}

async fn place(app: &TestApp, id: &str) -> (Value, Value) {
    let t = app.get_ticket(id).await.body;
    (
        t["queue_position"].clone(),
        t["estimated_wait_secs"].clone(),
    )
}

/// Waits until `GET /v1/queues?language=fi` satisfies `pred`.
async fn wait_queue(app: &TestApp, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let q = queues(app, "?language=fi").await;
        assert_eq!(q.status, 200, "{q:?}");
        let entry = q.body["queues"].get(0).cloned().unwrap_or(Value::Null);
        if pred(&entry) {
            return entry;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {}", q.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn places_and_waits_follow_the_queue_as_it_fills_and_drains() {
    let app = spawn_app().await;
    // Nobody speaks Finnish: three tickets wait, in order, with no estimate yet.
    let mut plain = Vec::new();
    for _ in 0..3 {
        plain.push(app.new_ticket(&ticket("fi", json!({}), 5)).await);
    }
    for (i, t) in plain.iter().enumerate() {
        assert_eq!(place(&app, t).await, (json!(i + 1), Value::Null), "{t}");
    }
    let q = wait_queue(&app, "three waiting", |e| e["waiting"] == 3).await;
    assert_eq!(q["language"], "fi");
    assert_eq!(q["agents_online"], 0);
    assert_eq!(q["agents_available"], 0);
    assert!(q["oldest_wait_secs"].is_u64(), "{q}");
    assert_eq!(q["estimated_wait_secs"], Value::Null);

    // A higher priority goes first; a ticket needing a skill waits behind every plain ticket
    // (any agent able to take it may take those), and delays none of them.
    let urgent = app.new_ticket(&ticket("fi", json!({}), 9)).await;
    let skilled = app
        .new_ticket(&ticket("fi", json!({"refunds": 3}), 5))
        .await;
    assert_eq!(place(&app, &urgent).await.0, json!(1));
    for (i, t) in plain.iter().enumerate() {
        assert_eq!(place(&app, t).await.0, json!(i + 2), "{t}");
    }
    assert_eq!(place(&app, &skilled).await.0, json!(5));

    // An agent arrives and works through them: places move up, and once assignments are
    // measured the waits are estimated.
    let mut agent = app
        .available_agent("a-1", &profile(&["fi"], json!({"refunds": 3}), 1))
        .await;
    let mut order = Vec::new();
    for n in 0..4 {
        let assigned = agent.accept_next().await;
        let id = assigned["ticket_id"].as_str().expect("id").to_owned();
        order.push(id.clone());
        if n == 2 {
            // Three assignments measured: the two still waiting have estimates, in order.
            let q = wait_queue(&app, "the rate measured", |e| {
                e["estimated_wait_secs"].is_u64()
            })
            .await;
            assert_eq!(q["waiting"], 2, "{q}");
            assert_eq!(q["agents_online"], 1);
            let (p1, w1) = place(&app, &plain[2]).await;
            let (p2, w2) = place(&app, &skilled).await;
            assert_eq!((p1, p2), (json!(1), json!(2)));
            let (w1, w2) = (
                w1.as_u64().expect("an estimate"),
                w2.as_u64().expect("an estimate"),
            );
            assert!(w1 <= w2, "{w1} {w2}");
        }
        agent.complete(&id).await;
        app.wait_ticket_status(&id, "completed").await;
    }
    assert_eq!(order[0], urgent, "the urgent one first");
    assert_eq!(&order[1..4], &plain[..], "then in order");
    let last = agent.accept_next().await;
    assert_eq!(last["ticket_id"], skilled.as_str());
    let t = app.get_ticket(&skilled).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(
        (
            t["queue_position"].clone(),
            t["estimated_wait_secs"].clone()
        ),
        (Value::Null, Value::Null)
    );

    // Drained: the language stays listed while its agent is online.
    let q = wait_queue(&app, "drained", |e| e["waiting"] == 0).await;
    assert_eq!(q["agents_online"], 1);
    assert_eq!(q["oldest_wait_secs"], Value::Null);
    let all = queues(&app, "").await;
    assert_eq!(all.status, 200);
    assert!(all.body["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .any(|e| e["language"] == "fi"));
}

#[tokio::test]
async fn a_new_ticket_waits_nothing_where_an_agent_is_free_and_bad_filters_are_refused() {
    let app = spawn_app().await;
    let _agent = app
        .available_agent("a-1", &profile(&["et"], json!({}), 1))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let q = loop {
        let q = queues(&app, "?language=et").await;
        if q.body["queues"][0]["agents_available"] == 1 && q.body["queues"][0]["agents_online"] == 1
        {
            break q;
        }
        assert!(std::time::Instant::now() < deadline, "{}", q.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(q.body["queues"][0]["estimated_wait_secs"], 0, "{}", q.body);
    assert_eq!(q.body["queues"][0]["waiting"], 0);
    let none = queues(&app, "?language=lv").await;
    assert_eq!(none.body, json!({"queues": []}));
    for bad in ["?language=Estonian", "?lang=et"] {
        let a = queues(&app, bad).await;
        assert!(a.status == 422 || a.status == 400, "{bad}: {a:?}");
    }
    let a = app
        .send(app.http.get(app.dispatcher("/v1/queues")), "payroll")
        .await;
    assert_eq!(a.status, 403);
}
