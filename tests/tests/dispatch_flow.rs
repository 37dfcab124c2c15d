//! The happy path, end to end: an agent goes online, a ticket is posted, offered, accepted,
//! completed.

use e2e::{profile, spawn_app, ticket};
use serde_json::json;

#[tokio::test]
async fn a_posted_ticket_is_offered_accepted_and_completed() {
    let app = spawn_app().await;
    let mut agent = app
        .available_agent("a-17", &profile(&["sv", "en"], json!({"refunds": 4}), 2))
        .await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;
    let offer = agent.expect("offer").await;
    assert_eq!(offer["ticket_id"], id.as_str());
    assert!(
        offer.get("context").is_none(),
        "offers never show the context"
    );
    assert_eq!(app.get_ticket(&id).await.body["status"], "offered");

    agent
        .send(json!({"type": "accept", "offer_id": offer["offer_id"], "ref": "r1"}))
        .await;
    let assigned = agent.expect("assigned").await;
    assert_eq!(assigned["ticket_id"], id.as_str());
    assert_eq!(assigned["ref"], "r1");
    assert_eq!(assigned["context"]["customer_tier"], "gold");
    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["agent_id"], "a-17");
    assert_eq!(t["offers_made"], 1);

    agent.complete(&id).await;
    let t = app.wait_ticket_status(&id, "completed").await;
    assert_eq!(t["outcome"], "resolved");
    let state = app.get_agent("a-17").await.body["state"].clone();
    assert_eq!(state["active_tickets"], json!([]));
}
