//! Eligibility (API.md §5): language, skills and levels, region, status, connection and capacity;
//! and namespaces (§1): an agent never gets tickets of another namespace.

use e2e::{profile, spawn_app, ticket, AgentClient};
use serde_json::{json, Value};

use crate::support::{
    a_moment, accept, gets_no_offer, offered, status_of, sv, sv_ticket, take, wait_disconnected,
    QUIET,
};

/// `p` placed at (lat, lon).
fn located(mut p: Value, lat: f64, lon: f64) -> Value {
    p["location"] = json!({"lat": lat, "lon": lon});
    p
}

/// `t` restricted to a geofence.
fn in_region(mut t: Value, region: &str) -> Value {
    t["region"] = json!(region);
    t
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
