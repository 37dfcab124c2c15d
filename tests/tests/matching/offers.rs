//! What becomes of an offer that is declined (API.md §5) or not answered in time: the ticket
//! goes on to the next eligible agent, and an agent that misses offers is set away.

use e2e::{spawn_app, spawn_with, Options};
use serde_json::{json, Value};

use crate::support::{
    a_moment, decline, gets_no_offer, offered, state_of, sv, sv_ticket, take, AT_ONCE, QUIET,
};

// ---------------------------------------------------------------------------------------------
// Declines (§5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_declined_ticket_goes_at_once_to_the_next_eligible_agent() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut second = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut first, &id).await;

    decline(&mut first, &offer).await;

    let next = second.expect_within("offer", AT_ONCE).await;
    assert_eq!(next["ticket_id"], id.as_str());
    assert_eq!(app.get_ticket(&id).await.body["offers_made"], 2);
}

#[tokio::test]
async fn a_ticket_is_never_offered_again_to_an_agent_who_declined_it() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut second = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut first, &id).await;
    decline(&mut first, &offer).await;
    let offer = offered(&mut second, &id).await;
    decline(&mut second, &offer).await;
    app.wait_ticket_status(&id, "queued").await;

    // Both become free again: neither may see the ticket.
    first.set_status("break").await;
    first.set_status("available").await;
    second.set_status("break").await;
    second.set_status("available").await;

    gets_no_offer(&mut first).await;
    gets_no_offer(&mut second).await;
    let mut third = app.available_agent("c", &sv(json!({}), 1)).await;
    offered(&mut third, &id).await;
}

#[tokio::test]
async fn a_ticket_declined_by_the_only_eligible_agent_goes_back_to_the_queue() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut agent, &id).await;

    decline(&mut agent, &offer).await;

    let t = app.wait_ticket_status(&id, "queued").await;
    assert_eq!(t["agent_id"], Value::Null);
    gets_no_offer(&mut agent).await;
}

// ---------------------------------------------------------------------------------------------
// Offer timeouts (§5)
// ---------------------------------------------------------------------------------------------

fn one_second_offers() -> Options {
    Options {
        offer_timeout_secs: 1,
        ..Options::default()
    }
}

#[tokio::test]
async fn an_unanswered_offer_expires_and_goes_to_the_next_agent() {
    let app = spawn_with(one_second_offers()).await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut second = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut first, &id).await;

    let revoked = first.expect("offer_revoked").await;
    assert_eq!(revoked["reason"], "expired");
    assert_eq!(revoked["offer_id"], offer.as_str());
    assert_eq!(revoked["ticket_id"], id.as_str());
    offered(&mut second, &id).await;
    gets_no_offer(&mut first).await;
}

#[tokio::test]
async fn after_two_missed_offers_the_agent_is_set_away_and_gets_no_more_offers() {
    let app = spawn_with(one_second_offers()).await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let second = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut agent, &first).await;
    assert_eq!(agent.expect("offer_revoked").await["reason"], "expired");
    offered(&mut agent, &second).await;
    assert_eq!(agent.expect("offer_revoked").await["reason"], "expired");

    let status = agent.expect("status").await;
    assert_eq!(status["status"], "away");
    assert_eq!(status["reason"], "missed_offers");
    assert_eq!(state_of(&app, "a").await["status"], "away");

    let third = app.new_ticket(&sv_ticket(5)).await;
    gets_no_offer(&mut agent).await;
    // Back again: offered the one ticket it did not let lapse.
    agent.set_status("available").await;
    offered(&mut agent, &third).await;
}

#[tokio::test]
async fn an_accepted_offer_resets_the_count_of_missed_offers() {
    let app = spawn_with(one_second_offers()).await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let second = app.new_ticket(&sv_ticket(5)).await;
    let third = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut agent, &first).await;
    assert_eq!(agent.expect("offer_revoked").await["reason"], "expired");
    take(&mut agent, &second).await;
    agent.complete(&second).await;

    offered(&mut agent, &third).await;
    assert_eq!(agent.expect("offer_revoked").await["reason"], "expired");

    agent.expect_silence(QUIET).await;
    assert_eq!(state_of(&app, "a").await["status"], "available");
}
