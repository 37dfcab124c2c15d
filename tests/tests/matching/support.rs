//! Helpers shared by the matching tests: profiles and tickets, offers taken, declined or awaited,
//! and the state of tickets and agents.

use std::time::Duration;

use e2e::{profile, ticket, AgentClient, TestApp};
use serde_json::{json, Value};

/// Long enough for the matcher to have made any offer it was going to make.
pub(crate) const QUIET: Duration = Duration::from_millis(500);
/// "At once": far below the default 20 s offer timeout.
pub(crate) const AT_ONCE: Duration = Duration::from_secs(3);

/// A Swedish-speaking agent with these skills and this capacity.
pub(crate) fn sv(skills: Value, max: u8) -> Value {
    profile(&["sv"], skills, max)
}

/// A Swedish ticket needing no skill.
pub(crate) fn sv_ticket(priority: u8) -> Value {
    ticket("sv", json!({}), priority)
}

/// Lets Redis's millisecond clock move on, so that what the test does next happens strictly
/// later than what it did last (an agent going available after another, a ticket arriving after
/// the agents went available; `a_ticket_posted_right_after_...` covers the same-moment case).
pub(crate) async fn a_moment() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Waits for an offer of `ticket` and returns its offer id.
pub(crate) async fn offered(agent: &mut AgentClient, ticket: &str) -> String {
    let offer = agent.expect("offer").await;
    assert_eq!(
        offer["ticket_id"], ticket,
        "{}: offered the wrong ticket",
        agent.id
    );
    offer["offer_id"].as_str().expect("offer_id").to_owned()
}

/// Accepts `offer_id`, returning the `assigned` frame.
pub(crate) async fn accept(agent: &mut AgentClient, offer_id: &str) -> Value {
    agent
        .send(json!({"type": "accept", "offer_id": offer_id}))
        .await;
    agent.expect("assigned").await
}

/// Declines `offer_id`.
pub(crate) async fn decline(agent: &mut AgentClient, offer_id: &str) {
    agent
        .send(json!({"type": "decline", "offer_id": offer_id, "reason": "busy"}))
        .await;
}

/// Waits for the offer of `ticket` and accepts it.
pub(crate) async fn take(agent: &mut AgentClient, ticket: &str) {
    let offer = offered(agent, ticket).await;
    let assigned = accept(agent, &offer).await;
    assert_eq!(assigned["ticket_id"], ticket);
}

/// Asserts the agent is offered nothing for a while.
pub(crate) async fn gets_no_offer(agent: &mut AgentClient) {
    agent.expect_silence(QUIET).await;
}

/// The ticket's status.
pub(crate) async fn status_of(app: &TestApp, id: &str) -> String {
    app.get_ticket(id).await.body["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// The agent's live `state`.
pub(crate) async fn state_of(app: &TestApp, id: &str) -> Value {
    app.get_agent(id).await.body["state"].clone()
}

/// Waits until the service has recorded the agent's connection as gone.
pub(crate) async fn wait_disconnected(app: &TestApp, id: &str) {
    for _ in 0..200 {
        if state_of(app, id).await["connected"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} still looks connected");
}
