//! `GET /metrics` on both services (API.md §11), parsed by `prometheus_client`'s parser from
//! PyPI, with values checked against what the test did. One test in its own binary: the
//! registry is the process's, and the services run in the test's process.

use std::time::Duration;

use e2e::receiver::Receiver;
use e2e::{profile, spawn_app, ticket, TestApp};
use serde_json::{json, Value};

/// The samples of `url`, as the parser read them.
async fn samples(app: &TestApp, url: &str) -> Vec<Value> {
    let resp = app.http.get(url).send().await.expect("scraped");
    assert_eq!(resp.status(), 200);
    let ct = resp.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.expect("a body");
    let (ok, printed) = e2e::python("parse_metrics.py", &text);
    assert!(ok, "{printed}\n{text}");
    serde_json::from_str(&printed).expect("JSON samples")
}

fn value(samples: &[Value], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s["name"] == name
                && labels
                    .as_object()
                    .is_some_and(|l| l.iter().all(|(k, v)| s["labels"][k] == *v))
        })
        .and_then(|s| s["value"].as_f64())
}

#[tokio::test]
async fn both_services_expose_the_named_series_with_what_happened() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let hook = app
        .send(
            app.http
                .post(app.dispatcher("/v1/webhooks"))
                .json(&json!({"url": receiver.url, "events": ["ticket.completed"]})),
            "admin",
        )
        .await;
    assert_eq!(hook.status, 201);
    let mut agent = app
        .available_agent("a-1", &profile(&["sv"], json!({}), 1))
        .await;
    let done = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    agent.complete(&done).await;
    app.wait_ticket_status(&done, "completed").await;
    let gone = app.new_ticket(&ticket("fi", json!({}), 5)).await;
    assert_eq!(app.cancel_ticket(&gone).await.status, 200);
    for _ in 0..2 {
        app.new_ticket(&ticket("fi", json!({}), 5)).await;
    }
    receiver
        .wait_for(Duration::from_secs(10), "the completion", |r| !r.is_empty())
        .await;

    let metrics = app.dispatcher("/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let d = loop {
        let d = samples(&app, &metrics).await;
        let seen = value(
            &d,
            "dispatch_tickets_total",
            json!({"language": "fi", "outcome": "cancelled"}),
        );
        let sent = value(
            &d,
            "dispatch_webhook_deliveries_total",
            json!({"result": "delivered"}),
        );
        if seen == Some(1.0) && sent == Some(1.0) {
            break d;
        }
        assert!(std::time::Instant::now() < deadline, "{d:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let v = |name: &str, labels: Value| value(&d, name, labels);
    assert_eq!(
        v(
            "dispatch_tickets_total",
            json!({"language": "sv", "outcome": "resolved"})
        ),
        Some(1.0)
    );
    assert_eq!(
        v("dispatch_queue_depth", json!({"language": "fi"})),
        Some(2.0)
    );
    assert!(v(
        "dispatch_queue_oldest_wait_seconds",
        json!({"language": "fi"})
    )
    .is_some());
    assert_eq!(
        v("dispatch_agents", json!({"status": "available"})),
        Some(1.0)
    );
    assert_eq!(v("dispatch_agents", json!({"status": "away"})), Some(0.0));
    assert_eq!(
        v("dispatch_offer_latency_seconds_count", json!({})),
        Some(1.0)
    );
    assert!(v("dispatch_ledger_lag_events", json!({})).is_some());
    assert!(
        v(
            "dispatch_redis_call_seconds_count",
            json!({"function": "create_ticket"})
        ) >= Some(4.0)
    );
    let g = samples(&app, &app.gateway("/metrics")).await;
    assert_eq!(
        value(&g, "dispatch_websockets_connected", json!({})),
        Some(1.0)
    );
    assert!(
        value(
            &g,
            "dispatch_redis_call_seconds_count",
            json!({"function": "connect"})
        ) >= Some(1.0)
    );
    agent.close().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while value(
        &samples(&app, &app.gateway("/metrics")).await,
        "dispatch_websockets_connected",
        json!({}),
    ) != Some(0.0)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed connection is counted off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
