//! Who routes a ticket (`dispatcher/src/matcher.rs`): the request that posts it, a dispatcher
//! told by the routing queue when the ticket comes back, and, when the dispatcher routing a
//! ticket dies half-way, another one.

use std::time::Duration;

use dispatcher::matcher::STALE_ROUTING;
use e2e::{spawn_app, REDIS_URL};
use serde_json::json;
use shared::domain::{NewTicket, TicketId};
use shared::store::{CreatedTicket, NewTicketFields, Routed, Store};

use crate::support::{a_moment, decline, offered, sv, sv_ticket, AT_ONCE};

#[tokio::test]
async fn a_ticket_whose_dispatcher_died_before_offering_it_is_routed_by_another() {
    let app = spawn_app().await;
    let mut agent = app.available_agent("a", &sv(json!({}), 1)).await;
    // What a dispatcher that dies right after the creation leaves when the creation found
    // nobody in the index entries it looked at (here none): a ticket left routing, to go on
    // with, and never offered.
    let store = Store::open(REDIS_URL, &app.namespace).expect("store");
    let body: NewTicket = serde_json::from_value(sv_ticket(5)).expect("ticket");
    let id = TicketId::generate();
    let created = store
        .create_ticket(&id, None, &NewTicketFields::new(&body), 0)
        .await
        .expect("created");
    let CreatedTicket::Created { routed, .. } = created else {
        panic!("a new ticket: {created:?}");
    };
    assert_eq!(routed, Routed::More { next_offset: 0 }, "left to route");

    let offer = agent
        .expect_within("offer", STALE_ROUTING + Duration::from_secs(3))
        .await;
    assert_eq!(offer["ticket_id"], id.as_str());
}

#[tokio::test]
async fn a_declined_ticket_goes_to_the_best_of_the_other_free_agents() {
    let app = spawn_app().await;
    let mut first = app.available_agent("a", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut longest_after = app.available_agent("b", &sv(json!({}), 1)).await;
    a_moment().await;
    let mut newest = app.available_agent("c", &sv(json!({}), 1)).await;
    a_moment().await;
    let id = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut first, &id).await;

    decline(&mut first, &offer).await;

    let next = longest_after.expect_within("offer", AT_ONCE).await;
    assert_eq!(next["ticket_id"], id.as_str());
    newest.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_ticket_posted_while_no_agent_is_free_goes_to_the_first_agent_freed() {
    let app = spawn_app().await;
    let mut busy = app.available_agent("a", &sv(json!({}), 1)).await;
    let first = app.new_ticket(&sv_ticket(5)).await;
    let offer = offered(&mut busy, &first).await;
    let waiting = app.new_ticket(&sv_ticket(5)).await;
    assert_eq!(app.get_ticket(&waiting).await.body["status"], "queued");

    crate::support::accept(&mut busy, &offer).await;
    busy.complete(&first).await;

    offered(&mut busy, &waiting).await;
}
