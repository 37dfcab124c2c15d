//! Choice order (API.md §5): which eligible agent a ticket goes to (preferred, fewest active,
//! longest idle, higher summed level, lowest id), and which waiting ticket an agent gets first
//! (priority, then oldest).

use e2e::{spawn_app, ticket, AgentClient, TestApp};
use serde_json::{json, Value};

use crate::support::{a_moment, gets_no_offer, offered, sv, sv_ticket, take, AT_ONCE, QUIET};

/// `t` with a preferred agent.
fn preferring(mut t: Value, agent: &str) -> Value {
    t["preferred_agent_id"] = json!(agent);
    t
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
