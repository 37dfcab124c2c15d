//! Matching (API.md §5) and the ticket lifecycle (§4), end to end: which agent gets a ticket,
//! when, and what becomes of the ticket when agents decline, miss, drop or leave, or when it is
//! cancelled.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use e2e::{profile, spawn_app, spawn_with, ticket, AgentClient, Options, TestApp};
use serde_json::{json, Value};

/// Long enough for the matcher to have made any offer it was going to make.
const QUIET: Duration = Duration::from_millis(500);
/// "At once": far below the default 20 s offer timeout.
const AT_ONCE: Duration = Duration::from_secs(3);
/// What a ticket may be: anything else means it was lost.
const STATUSES: [&str; 5] = ["queued", "offered", "assigned", "completed", "cancelled"];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A Swedish-speaking agent with these skills and this capacity.
fn sv(skills: Value, max: u8) -> Value {
    profile(&["sv"], skills, max)
}

/// `p` placed at (lat, lon).
fn located(mut p: Value, lat: f64, lon: f64) -> Value {
    p["location"] = json!({"lat": lat, "lon": lon});
    p
}

/// A Swedish ticket needing no skill.
fn sv_ticket(priority: u8) -> Value {
    ticket("sv", json!({}), priority)
}

/// `t` with a preferred agent.
fn preferring(mut t: Value, agent: &str) -> Value {
    t["preferred_agent_id"] = json!(agent);
    t
}

/// `t` restricted to a geofence.
fn in_region(mut t: Value, region: &str) -> Value {
    t["region"] = json!(region);
    t
}

/// Lets Redis's millisecond clock move on, so that what the test does next happens strictly
/// later than what it did last (an agent going available after another, a ticket arriving after
/// the agents went available; `a_ticket_posted_right_after_...` covers the same-moment case).
async fn a_moment() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Waits for an offer of `ticket` and returns its offer id.
async fn offered(agent: &mut AgentClient, ticket: &str) -> String {
    let offer = agent.expect("offer").await;
    assert_eq!(
        offer["ticket_id"], ticket,
        "{}: offered the wrong ticket",
        agent.id
    );
    offer["offer_id"].as_str().expect("offer_id").to_owned()
}

/// Accepts `offer_id`, returning the `assigned` frame.
async fn accept(agent: &mut AgentClient, offer_id: &str) -> Value {
    agent
        .send(json!({"type": "accept", "offer_id": offer_id}))
        .await;
    agent.expect("assigned").await
}

/// Declines `offer_id`.
async fn decline(agent: &mut AgentClient, offer_id: &str) {
    agent
        .send(json!({"type": "decline", "offer_id": offer_id, "reason": "busy"}))
        .await;
}

/// Waits for the offer of `ticket` and accepts it.
async fn take(agent: &mut AgentClient, ticket: &str) {
    let offer = offered(agent, ticket).await;
    let assigned = accept(agent, &offer).await;
    assert_eq!(assigned["ticket_id"], ticket);
}

/// Asserts the agent is offered nothing for a while.
async fn gets_no_offer(agent: &mut AgentClient) {
    agent.expect_silence(QUIET).await;
}

/// The ticket's status.
async fn status_of(app: &TestApp, id: &str) -> String {
    app.get_ticket(id).await.body["status"]
        .as_str()
        .expect("status")
        .to_owned()
}

/// The agent's live `state`.
async fn state_of(app: &TestApp, id: &str) -> Value {
    app.get_agent(id).await.body["state"].clone()
}

/// Waits until the service has recorded the agent's connection as gone.
async fn wait_disconnected(app: &TestApp, id: &str) {
    for _ in 0..200 {
        if state_of(app, id).await["connected"] == false {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{id} still looks connected");
}

/// The millisecond since which the agent counts as idle (an internal field, read only to check
/// a test's precondition: the API does not show it).
async fn idle_since(app: &TestApp, id: &str) -> String {
    let mut conn = app.redis().await;
    redis::cmd("HGET")
        .arg(shared::keys::Keys::new(&app.namespace).agent(id))
        .arg("idle_since")
        .query_async(&mut conn)
        .await
        .expect("hget idle_since")
}

/// Puts both agents on shift in the same millisecond, so that idle time ties and the later
/// tie-breakers decide. Redis's clock has millisecond resolution, so this retries until it
/// happens.
async fn available_in_the_same_millisecond(
    app: &TestApp,
    a: &mut AgentClient,
    b: &mut AgentClient,
) {
    for _ in 0..200 {
        tokio::join!(a.set_status("available"), b.set_status("available"));
        if idle_since(app, &a.id).await == idle_since(app, &b.id).await {
            return;
        }
        tokio::join!(a.set_status("offline"), b.set_status("offline"));
    }
    panic!(
        "could not put {} and {} on shift in the same millisecond",
        a.id, b.id
    );
}

// ---------------------------------------------------------------------------------------------
// Choice order (§5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_preferred_agent_wins_over_an_agent_better_on_every_other_rule() {
    let app = spawn_app().await;
    let mut best = app
        .available_agent("a", &sv(json!({"refunds": 5}), 2))
        .await;
    a_moment().await;
    let mut preferred = app
        .available_agent("z", &sv(json!({"refunds": 3}), 2))
        .await;

    let first = app
        .new_ticket(&preferring(ticket("sv", json!({"refunds": 1}), 5), "z"))
        .await;
    take(&mut preferred, &first).await;
    let second = app
        .new_ticket(&preferring(ticket("sv", json!({"refunds": 1}), 5), "z"))
        .await;

    offered(&mut preferred, &second).await;
    gets_no_offer(&mut best).await;
}

#[tokio::test]
async fn a_preferred_agent_on_break_is_passed_over_for_the_next_best() {
    let app = spawn_app().await;
    let mut preferred = app.available_agent("z", &sv(json!({}), 1)).await;
    preferred.set_status("break").await;
    let mut other = app.available_agent("a", &sv(json!({}), 1)).await;

    let id = app.new_ticket(&preferring(sv_ticket(5), "z")).await;

    offered(&mut other, &id).await;
    gets_no_offer(&mut preferred).await;
}

#[tokio::test]
async fn the_agent_with_fewest_active_tickets_wins() {
    let app = spawn_app().await;
    let mut busy = app.available_agent("a", &sv(json!({}), 2)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut busy, &first).await;
    a_moment().await;
    // Idle for less time than `a`, but holding nothing.
    let mut free = app.available_agent("b", &sv(json!({}), 2)).await;

    let second = app.new_ticket(&sv_ticket(5)).await;

    offered(&mut free, &second).await;
    gets_no_offer(&mut busy).await;
}

#[tokio::test]
async fn the_agent_available_longest_wins() {
    let app = spawn_app().await;
    // `z` loses on summed level and on id, and wins only by having waited longer.
    let mut early = app
        .available_agent("z", &sv(json!({"refunds": 1}), 1))
        .await;
    a_moment().await;
    let mut late = app
        .available_agent("a", &sv(json!({"refunds": 5}), 1))
        .await;
    a_moment().await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 1}), 5))
        .await;

    offered(&mut early, &id).await;
    gets_no_offer(&mut late).await;
}

#[tokio::test]
async fn an_agent_that_just_took_a_ticket_waits_behind_one_idle_longer() {
    let app = spawn_app().await;
    let mut early = app.available_agent("z", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut late = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut early, &first).await;
    early.complete(&first).await;
    app.wait_ticket_status(&first, "completed").await;
    a_moment().await;

    let second = app.new_ticket(&sv_ticket(5)).await;

    offered(&mut late, &second).await;
    gets_no_offer(&mut early).await;
}

#[tokio::test]
async fn between_agents_idle_equally_long_the_higher_summed_level_wins() {
    let app = spawn_app().await;
    // `a` is first by id and higher on one skill, `b` higher in sum.
    let mut lower = app
        .agent("a", &sv(json!({"refunds": 3, "disputes": 2}), 1))
        .await;
    let mut higher = app
        .agent("b", &sv(json!({"refunds": 1, "disputes": 5}), 1))
        .await;
    lower.expect("welcome").await;
    higher.expect("welcome").await;
    available_in_the_same_millisecond(&app, &mut lower, &mut higher).await;
    a_moment().await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 1, "disputes": 1}), 5))
        .await;

    offered(&mut higher, &id).await;
    gets_no_offer(&mut lower).await;
}

#[tokio::test]
async fn between_otherwise_equal_agents_the_lowest_agent_id_wins() {
    let app = spawn_app().await;
    let mut second = app.agent("b", &sv(json!({"refunds": 3}), 1)).await;
    let mut first = app.agent("a", &sv(json!({"refunds": 3}), 1)).await;
    second.expect("welcome").await;
    first.expect("welcome").await;
    available_in_the_same_millisecond(&app, &mut second, &mut first).await;
    a_moment().await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 2}), 5))
        .await;

    offered(&mut first, &id).await;
    gets_no_offer(&mut second).await;
}

#[tokio::test]
async fn a_ticket_posted_right_after_an_agent_goes_available_still_goes_to_the_agent_idle_longest()
{
    let app = spawn_app().await;
    let mut longest = app.available_agent("z", &sv(json!({}), 1)).await;
    let mut newcomer = app.welcomed_agent("a", &sv(json!({}), 1)).await;

    // The race between "an agent became free" and "a ticket arrived" is lost only now and then,
    // so it is run many times.
    for round in 0..40 {
        a_moment().await;
        newcomer.set_status("available").await;
        let id = app.new_ticket(&sv_ticket(5)).await;

        let offer = longest.next(AT_ONCE).await;
        assert!(
            matches!(&offer, Ok(Some(o)) if o["type"] == "offer" && o["ticket_id"] == id.as_str()),
            "round {round}: the ticket did not go to the agent idle longest (it got {offer:?}, \
             the newcomer got {:?})",
            newcomer.next(QUIET).await
        );
        assert_eq!(app.cancel_ticket(&id).await.status, 200);
        assert_eq!(longest.expect("offer_revoked").await["reason"], "cancelled");
        newcomer.set_status("offline").await;
    }
}

#[tokio::test]
async fn a_ticket_arriving_as_another_agent_goes_available_still_goes_to_the_agent_idle_longest() {
    let app = spawn_app().await;
    let mut longest = app.available_agent("z", &sv(json!({}), 1)).await;
    let mut newcomer = app.welcomed_agent("a", &sv(json!({}), 1)).await;

    // Whichever lands first, the ticket finds `z` free and idle longer: `z` must get it. The two
    // land in the same millisecond only now and then, so it is run many times.
    for round in 0..40 {
        a_moment().await;
        let body = sv_ticket(5);
        let (_, id) = tokio::join!(newcomer.set_status("available"), app.new_ticket(&body));

        let offer = longest.next(AT_ONCE).await;
        assert!(
            matches!(&offer, Ok(Some(o)) if o["type"] == "offer" && o["ticket_id"] == id.as_str()),
            "round {round}: the ticket did not go to the agent idle longest (it got {offer:?}, \
             the newcomer got {:?})",
            newcomer.next(QUIET).await
        );
        assert_eq!(app.cancel_ticket(&id).await.status, 200);
        assert_eq!(longest.expect("offer_revoked").await["reason"], "cancelled");
        newcomer.set_status("offline").await;
    }
}

// ---------------------------------------------------------------------------------------------
// Eligibility (§5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_agent_who_does_not_speak_the_language_is_not_offered_the_ticket() {
    let app = spawn_app().await;
    let mut english = app
        .available_agent("en-only", &profile(&["en", "de"], json!({}), 1))
        .await;

    let id = app.new_ticket(&sv_ticket(5)).await;

    gets_no_offer(&mut english).await;
    assert_eq!(status_of(&app, &id).await, "queued");
    let mut swedish = app
        .available_agent("sv-too", &profile(&["en", "sv"], json!({}), 1))
        .await;
    offered(&mut swedish, &id).await;
}

#[tokio::test]
async fn an_agent_below_the_required_level_is_not_offered_the_ticket() {
    let app = spawn_app().await;
    let mut low = app
        .available_agent("a", &sv(json!({"refunds": 2}), 1))
        .await;
    a_moment().await;
    let mut exact = app
        .available_agent("b", &sv(json!({"refunds": 3}), 1))
        .await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 3}), 5))
        .await;

    offered(&mut exact, &id).await;
    gets_no_offer(&mut low).await;
}

#[tokio::test]
async fn an_agent_missing_one_of_the_skills_is_not_offered_the_ticket() {
    let app = spawn_app().await;
    let mut agent = app
        .available_agent("a", &sv(json!({"refunds": 5}), 1))
        .await;

    let id = app
        .new_ticket(&ticket("sv", json!({"refunds": 1, "disputes": 1}), 5))
        .await;

    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &id).await, "queued");
}

#[tokio::test]
async fn a_connected_agent_not_on_shift_is_not_offered_tickets() {
    let app = spawn_app().await;
    let mut agent = app.welcomed_agent("a", &sv(json!({}), 1)).await;

    let id = app.new_ticket(&sv_ticket(5)).await;

    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &id).await, "queued");
}

#[tokio::test]
async fn an_agent_on_break_gets_no_offer_until_it_is_available_again() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    agent.set_status("break").await;

    let id = app.new_ticket(&sv_ticket(5)).await;

    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &id).await, "queued");
    agent.set_status("available").await;
    offered(&mut agent, &id).await;
}

#[tokio::test]
async fn a_disconnected_agent_is_not_offered_tickets() {
    let app = spawn_app().await;
    let agent = app.available_agent("a", &sv(json!({}), 1)).await;
    agent.close().await;
    wait_disconnected(&app, "a").await;

    let id = app.new_ticket(&sv_ticket(5)).await;

    tokio::time::sleep(QUIET).await;
    assert_eq!(status_of(&app, &id).await, "queued");
}

#[tokio::test]
async fn an_agent_at_capacity_gets_no_offer_until_it_completes_a_ticket() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &first).await;

    let second = app.new_ticket(&sv_ticket(5)).await;

    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &second).await, "queued");
    agent.complete(&first).await;
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn an_agent_holding_an_offer_gets_no_second_offer_until_it_answers() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 2)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut agent, &first).await;

    let second = app.new_ticket(&sv_ticket(5)).await;

    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &second).await, "queued");
    accept(&mut agent, &offer).await;
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn a_region_ticket_goes_to_the_agent_inside_the_geofence() {
    let app = spawn_app().await;
    // South of `north`, and idle longer.
    let mut outside = app
        .available_agent("a", &located(sv(json!({}), 1), 40.0, 15.0))
        .await;
    a_moment().await;
    let mut inside = app
        .available_agent("b", &located(sv(json!({}), 1), 63.8258, 20.2630))
        .await;

    let id = app.new_ticket(&in_region(sv_ticket(5), "north")).await;

    offered(&mut inside, &id).await;
    gets_no_offer(&mut outside).await;
}

#[tokio::test]
async fn an_agent_in_one_region_is_not_offered_tickets_of_another() {
    let app = spawn_app().await;
    // Inside the `south` MultiPolygon.
    let mut agent = app
        .available_agent("a", &located(sv(json!({}), 1), -20.0, 120.0))
        .await;

    let north = app.new_ticket(&in_region(sv_ticket(5), "north")).await;
    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &north).await, "queued");

    let south = app.new_ticket(&in_region(sv_ticket(5), "south")).await;
    offered(&mut agent, &south).await;
}

#[tokio::test]
async fn an_agent_without_a_location_never_gets_a_region_ticket() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;

    let regional = app.new_ticket(&in_region(sv_ticket(9), "north")).await;
    gets_no_offer(&mut agent).await;
    assert_eq!(status_of(&app, &regional).await, "queued");

    let anywhere = app.new_ticket(&sv_ticket(1)).await;
    offered(&mut agent, &anywhere).await;
}

#[tokio::test]
async fn a_ticket_for_an_unknown_region_is_rejected_with_422() {
    let app = spawn_app().await;

    let answer = app.post_ticket(&in_region(sv_ticket(5), "atlantis")).await;

    assert_eq!(answer.status, 422, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["code"], "invalid_field");
    let detail = answer.body["detail"].as_str().expect("detail");
    assert!(
        detail.contains("region"),
        "the detail names the field: {detail}"
    );
}

// ---------------------------------------------------------------------------------------------
// The priority queue (§5)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn waiting_tickets_are_offered_by_priority_then_oldest_first() {
    let app = spawn_app().await;
    let put = app.put_agent("a", &sv(json!({}), 1)).await;
    assert_eq!(put.status, 201);
    let low = app.new_ticket(&sv_ticket(1)).await;
    let high = app.new_ticket(&sv_ticket(9)).await;
    let older = app.new_ticket(&sv_ticket(5)).await;
    let newer = app.new_ticket(&sv_ticket(5)).await;

    let mut agent = AgentClient::connect_available(&app.gateways[0], "a").await;

    for expected in [&high, &older, &newer, &low] {
        take(&mut agent, expected).await;
        agent.complete(expected).await;
    }
    gets_no_offer(&mut agent).await;
}

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

// ---------------------------------------------------------------------------------------------
// Dropped connections (§5, §6)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_dropped_agents_pending_offer_goes_at_once_to_another_agent() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut second = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut first, &id).await;

    first.close().await;

    let offer = second.expect_within("offer", AT_ONCE).await;
    assert_eq!(offer["ticket_id"], id.as_str());
}

#[tokio::test]
async fn a_dropped_agents_tickets_wait_through_the_grace_period_then_go_to_another_agent() {
    let app = spawn_with(Options {
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let mut dropped = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut dropped, &id).await;
    let mut other = app.available_agent("b", &sv(json!({}), 1)).await;

    dropped.close().await;
    wait_disconnected(&app, "a").await;

    let t = app.get_ticket(&id).await.body;
    assert_eq!(t["status"], "assigned");
    assert_eq!(t["agent_id"], "a");
    other.expect_silence(Duration::from_millis(300)).await;
    offered(&mut other, &id).await;
    assert_eq!(state_of(&app, "a").await["active_tickets"], json!([]));
}

#[tokio::test]
async fn an_agent_reconnecting_within_the_grace_period_keeps_its_tickets_and_shift() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 2)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &id).await;
    let shift = state_of(&app, "a").await["shift_id"].clone();
    agent.close().await;
    wait_disconnected(&app, "a").await;

    let mut agent = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = agent.expect("welcome").await;
    assert_eq!(welcome["status"], "available");
    assert_eq!(welcome["shift_id"], shift);
    assert_eq!(welcome["active_tickets"][0]["ticket_id"], id.as_str());
    assert_eq!(welcome["active_tickets"].as_array().map(Vec::len), Some(1));
    assert_eq!(welcome["pending_offer"], Value::Null);
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;
}

#[tokio::test]
async fn a_new_connection_takes_over_the_active_tickets_and_the_pending_offer() {
    let app = spawn_app().await;
    let mut old = app.available_agent("a", &sv(json!({}), 2)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut old, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut old, &second).await;

    let mut new = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = new.expect("welcome").await;
    assert_eq!(old.expect_close().await.code, 4009);
    assert_eq!(welcome["active_tickets"][0]["ticket_id"], first.as_str());
    assert_eq!(welcome["pending_offer"]["offer_id"], offer.as_str());
    assert_eq!(welcome["pending_offer"]["ticket_id"], second.as_str());
    let assigned = accept(&mut new, &offer).await;
    assert_eq!(assigned["ticket_id"], second.as_str());
}

#[tokio::test]
async fn a_ticket_withdrawn_from_a_dropped_agent_is_offered_to_it_again_when_it_returns() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut agent, &id).await;
    agent.close().await;
    app.wait_ticket_status(&id, "queued").await;

    let mut agent = AgentClient::connect(&app.gateways[0], "a").await;

    let welcome = agent.expect("welcome").await;
    let offer = if welcome["pending_offer"].is_null() {
        agent.expect("offer").await
    } else {
        welcome["pending_offer"].clone()
    };
    assert_eq!(offer["ticket_id"], id.as_str());
}

// ---------------------------------------------------------------------------------------------
// Cancelling (§4)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cancelling_a_queued_ticket_cancels_it() {
    let app = spawn_app().await;
    let id = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&id).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    assert!(answer.body["cancelled_at"].is_string());
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    gets_no_offer(&mut agent).await;
}

#[tokio::test]
async fn cancelling_an_offered_ticket_revokes_the_offer_and_frees_the_agent() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut agent, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&first).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    let revoked = agent.expect("offer_revoked").await;
    assert_eq!(revoked["reason"], "cancelled");
    assert_eq!(revoked["offer_id"], offer.as_str());
    assert_eq!(revoked["ticket_id"], first.as_str());
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn cancelling_an_assigned_ticket_tells_the_agent_and_gives_back_its_capacity() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &first).await;
    let second = app.new_ticket(&sv_ticket(5)).await;

    let answer = app.cancel_ticket(&first).await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["status"], "cancelled");
    let cancelled = agent.expect("ticket_cancelled").await;
    assert_eq!(cancelled["ticket_id"], first.as_str());
    offered(&mut agent, &second).await;
}

#[tokio::test]
async fn cancelling_a_completed_ticket_is_a_conflict() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    take(&mut agent, &id).await;
    agent.complete(&id).await;
    app.wait_ticket_status(&id, "completed").await;

    let answer = app.cancel_ticket(&id).await;

    assert_eq!(answer.status, 409, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["code"], "ticket_completed");
    assert_eq!(status_of(&app, &id).await, "completed");
}

#[tokio::test]
async fn cancelling_a_ticket_twice_succeeds_both_times() {
    let app = spawn_app().await;
    let id = app.new_ticket(&sv_ticket(5)).await;

    let first = app.cancel_ticket(&id).await;
    let second = app.cancel_ticket(&id).await;

    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(second.body["status"], "cancelled");
    assert_eq!(second.body["cancelled_at"], first.body["cancelled_at"]);
}

// ---------------------------------------------------------------------------------------------
// Removing an agent (§3)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn removing_an_agent_closes_its_connection_and_re_offers_its_offer_and_tickets() {
    let app = spawn_app().await;
    let mut removed = app.available_agent("a", &sv(json!({}), 2)).await;
    let assigned = app.new_ticket(&sv_ticket(5)).await;
    take(&mut removed, &assigned).await;
    let pending = app.new_ticket(&sv_ticket(5)).await;
    offered(&mut removed, &pending).await;
    let mut other = app.available_agent("b", &sv(json!({}), 2)).await;

    assert_eq!(app.delete_agent("a").await.status, 204);

    removed.expect_close().await;
    assert_eq!(app.get_agent("a").await.status, 404);
    let mut got = HashSet::new();
    for _ in 0..2 {
        let offer = other.expect("offer").await;
        got.insert(offer["ticket_id"].as_str().expect("ticket_id").to_owned());
        accept(&mut other, offer["offer_id"].as_str().expect("offer_id")).await;
    }
    assert_eq!(got, HashSet::from([assigned, pending]));
}

// ---------------------------------------------------------------------------------------------
// Namespaces (§1)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_agent_never_gets_tickets_of_another_namespace() {
    let here = spawn_app().await;
    let there = spawn_app().await;
    // The same agent id in both.
    let mut agent_here = here.available_agent("a-17", &sv(json!({}), 1)).await;
    assert_eq!(there.put_agent("a-17", &sv(json!({}), 1)).await.status, 201);

    let id = there.new_ticket(&sv_ticket(9)).await;

    gets_no_offer(&mut agent_here).await;
    assert_eq!(status_of(&there, &id).await, "queued");
    assert_eq!(here.get_ticket(&id).await.status, 404);
    let mut agent_there = AgentClient::connect_available(&there.gateways[0], "a-17").await;
    offered(&mut agent_there, &id).await;
    gets_no_offer(&mut agent_here).await;
}

// ---------------------------------------------------------------------------------------------
// No ticket lost (§5)
// ---------------------------------------------------------------------------------------------

/// How an agent in the busy test behaves.
#[derive(Debug, Clone, Copy)]
enum Habit {
    /// Accepts every offer and completes every ticket.
    Works,
    /// Declines every offer.
    Declines,
    /// Never answers (its offers lapse; it goes away).
    Sleeps,
    /// Accepts one offer, then drops its connection.
    Drops,
}

/// Plays `habit` until `until`, then drops the connection.
async fn play(mut agent: AgentClient, habit: Habit, until: tokio::time::Instant) {
    while tokio::time::Instant::now() < until {
        let frame = match agent.next(Duration::from_millis(100)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(_) => return,
        };
        let offer_id = frame["offer_id"].clone();
        match (frame["type"].as_str(), habit) {
            (Some("offer"), Habit::Works | Habit::Drops) => {
                agent
                    .send(json!({"type": "accept", "offer_id": offer_id}))
                    .await;
            }
            (Some("offer"), Habit::Declines) => {
                agent
                    .send(json!({"type": "decline", "offer_id": offer_id}))
                    .await;
            }
            (Some("assigned"), Habit::Works) => {
                let id = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                agent.complete(&id).await;
            }
            (Some("assigned"), Habit::Drops) => return,
            _ => {}
        }
    }
}

/// Checks from the event stream that no ticket was ever held by two agents, or offered to two
/// agents, at the same time.
async fn assert_one_holder_at_a_time(app: &TestApp) {
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut offer: HashMap<String, String> = HashMap::new();
    for e in app.events().await {
        let get = |k: &str| e.get(k).cloned().unwrap_or_default();
        let (ticket, agent) = (get("ticket"), get("agent"));
        match get("type").as_str() {
            "offer_created" => {
                let before = offer.insert(ticket.clone(), agent.clone());
                assert!(
                    before.is_none(),
                    "{ticket} offered to {agent} while offered to {before:?}"
                );
            }
            "offer_declined" | "offer_expired" | "offer_withdrawn" => {
                offer.remove(&ticket);
            }
            "ticket_assigned" => {
                offer.remove(&ticket);
                let before = holder.insert(ticket.clone(), agent.clone());
                assert!(
                    before.is_none(),
                    "{ticket} assigned to {agent} while held by {before:?}"
                );
            }
            "ticket_requeued" | "ticket_completed" | "ticket_cancelled" => {
                offer.remove(&ticket);
                holder.remove(&ticket);
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn no_ticket_is_lost_in_a_busy_hour() {
    let app = spawn_with(Options {
        offer_timeout_secs: 1,
        grace_secs: 1,
        ..Options::default()
    })
    .await;
    let now = tokio::time::Instant::now();
    let mut others = Vec::new();
    for (id, habit) in [
        ("decliner", Habit::Declines),
        ("sleeper", Habit::Sleeps),
        ("dropper", Habit::Drops),
    ] {
        let agent = app.available_agent(id, &sv(json!({}), 2)).await;
        others.push(tokio::spawn(play(
            agent,
            habit,
            now + Duration::from_secs(4),
        )));
        a_moment().await;
    }
    let agent = app.available_agent("worker", &sv(json!({}), 2)).await;
    let worker = tokio::spawn(play(agent, Habit::Works, now + Duration::from_secs(60)));
    let mut tickets = Vec::new();
    for i in 0..16u8 {
        tickets.push(app.new_ticket(&sv_ticket(i % 10)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in tickets.iter().step_by(5) {
        let answer = app.cancel_ticket(id).await;
        assert!(answer.status == 200 || answer.status == 409, "{answer:?}");
    }

    // While agents decline, miss, drop and work: every ticket is somewhere.
    for id in &tickets {
        let status = status_of(&app, id).await;
        assert!(STATUSES.contains(&status.as_str()), "{id} is {status}");
    }
    for other in others {
        other.await.expect("agent task");
    }
    // Once only the worker is left, it ends up with every ticket not cancelled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for id in &tickets {
        loop {
            let status = status_of(&app, id).await;
            if status == "completed" || status == "cancelled" {
                break;
            }
            assert!(STATUSES.contains(&status.as_str()), "{id} is {status}");
            assert!(
                tokio::time::Instant::now() < deadline,
                "{id} is still {status}: {:?}",
                app.get_ticket(id).await.body
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    worker.abort();
    assert_one_holder_at_a_time(&app).await;
}
