//! The ledger end to end: a shift worked over the WebSocket shows up in the payroll report.

use std::time::Duration;

use e2e::{profile, spawn_app, ticket};
use serde_json::json;

#[tokio::test]
async fn a_worked_shift_appears_in_the_payroll_report() {
    let app = spawn_app().await;
    let from = chrono::Utc::now() - chrono::Duration::minutes(1);
    let mut agent = app
        .available_agent("a-1", &profile(&["sv"], json!({}), 1))
        .await;
    let welcome_shift = app.get_agent("a-1").await.body["state"]["shift_id"].clone();
    let id = app.new_ticket(&ticket("sv", json!({}), 5)).await;
    agent.accept_next().await;
    // The ledger counts whole seconds: hold the ticket long enough to show.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
    agent.set_status("offline").await;
    let to = chrono::Utc::now() + chrono::Duration::minutes(1);
    let a = app
        .wait_payroll(from, to, Duration::from_secs(10), |a| {
            assert_eq!(a.status, 200, "{a:?}");
            let shifts = a.body["shifts"].as_array().cloned().unwrap_or_default();
            shifts.len() == 1 && shifts[0]["open"] == false && shifts[0]["tickets_completed"] == 1
        })
        .await;
    let shifts = &a.body["shifts"];
    assert_eq!(shifts[0]["shift_id"], welcome_shift);
    assert_eq!(shifts[0]["agent_id"], "a-1");
    assert_eq!(shifts[0]["hourly_rate_cents"], 1650);
    assert_eq!(shifts[0]["currency"], "EUR");
    let secs = |k: &str| shifts[0][k].as_i64().expect("whole seconds");
    assert!(secs("engaged_secs") >= 2, "{shifts:?}");
    assert_eq!(secs("paid_secs"), secs("online_secs"));
    assert_eq!(secs("break_secs"), 0);
}
