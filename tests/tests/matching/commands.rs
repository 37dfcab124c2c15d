//! How many Redis commands a ticket's life costs, counted by the server (`INFO commandstats`
//! deltas, commands run inside functions included) on a Redis of the test's own, so that no
//! other test's commands are counted.
//!
//! A ticket's life on the hot path: posted (created and offered at once), accepted, completed;
//! then, off the hot path, the timer dropping the answered offer's deadline, the ledger storing
//! its events and archiving it and the purge that removes it from Redis. One agent takes `TICKETS` tickets in turn, through the store's calls
//! (the same the services make) and the real ledger writer on the real PostgreSQL. The test
//! prints the counts by transition and by command (`--nocapture`) and fails when a ticket's
//! life costs more than the budgets below, so that the command diet only goes one way.

use std::time::Duration;

use e2e::commands::{Calls, PrivateRedis};
use e2e::direct::{online_agent, ticket_fields};
use e2e::{fresh_namespace, settings, Options};
use ledger::Ledger;
use serde_json::json;
use shared::domain::{OfferId, Outcome, TicketId};
use shared::store::{CreatedTicket, Routed, Store};

const TICKETS: u64 = 20;
/// Long enough for every offer to be accepted in time; the test then waits it out.
const OFFER_TIMEOUT: Duration = Duration::from_secs(2);
/// Commands per ticket on the hot path (create with its offer, accept, complete): at most.
const HOT_PATH_BUDGET: u64 = 33;
/// Commands per ticket in all, the deadline's drop, the ledger's reads and the purge included:
/// at most.
const LIFE_BUDGET: u64 = 39;

/// Runs `f` and adds what Redis ran meanwhile to `into`.
async fn counted<T>(
    conn: &mut redis::aio::MultiplexedConnection,
    into: &mut Calls,
    f: impl std::future::Future<Output = T>,
) -> T {
    let before = Calls::read(conn).await.expect("INFO commandstats");
    let out = f.await;
    let after = Calls::read(conn).await.expect("INFO commandstats");
    into.add(&after.since(&before));
    out
}

#[tokio::test]
async fn a_ticket_life_costs_at_most_its_budget_of_redis_commands() {
    let redis = PrivateRedis::start().await;
    let namespace = fresh_namespace();
    let store = Store::open(&redis.url, &namespace)
        .expect("a Redis URL")
        .with_offer_timeout(OFFER_TIMEOUT);
    store.load_library().await.expect("the library loads");
    let ledger = Ledger::open(
        &settings(&Options::default(), &namespace).database_url,
        &namespace,
    )
    .expect("a PostgreSQL URL")
    .with_stream_retention(Duration::ZERO);
    ledger.migrate().await.expect("the ledger migrates");
    let mut conn = redis::Client::open(redis.url.as_str())
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis connects");

    let agent = online_agent(
        &store,
        "a",
        &e2e::profile(&["en"], json!({"refunds": 3}), 1),
        true,
    )
    .await;
    ledger
        .catch_up(&store)
        .await
        .expect("the ledger catches up");
    let fields = ticket_fields(&e2e::ticket("en", json!({"refunds": 2}), 5));

    let (mut create, mut accept, mut complete) =
        (Calls::default(), Calls::default(), Calls::default());
    for _ in 0..TICKETS {
        let id = TicketId::generate();
        let created = counted(
            &mut conn,
            &mut create,
            store.create_ticket(&id, None, &fields, dispatcher::matcher::PAGE),
        )
        .await
        .expect("create_ticket");
        let CreatedTicket::Created {
            routed: Routed::Offered { offer, .. },
            ..
        } = created
        else {
            panic!("the free agent is offered the ticket at once: {created:?}");
        };
        let offer = OfferId::try_from(offer.as_str()).expect("an offer id");
        counted(&mut conn, &mut accept, store.accept(&agent, &offer))
            .await
            .expect("accept");
        counted(
            &mut conn,
            &mut complete,
            store.complete(&agent, &id, Outcome::Resolved, None),
        )
        .await
        .expect("complete");
    }
    let mut after = Calls::default();
    // The answered offers' deadlines, dropped once they pass.
    tokio::time::sleep(OFFER_TIMEOUT).await;
    let due = counted(&mut conn, &mut after, store.expire_offers(1000, 3))
        .await
        .expect("expire_offers");
    assert_eq!(
        (due.lapsed, u64::from(due.due)),
        (0, TICKETS),
        "every answered offer's deadline was due, none lapsed"
    );
    let stored = counted(&mut conn, &mut after, ledger.catch_up(&store))
        .await
        .expect("the ledger catches up");
    assert!(stored > 0, "the ledger stored the tickets' events");
    let purged = counted(
        &mut conn,
        &mut after,
        store.purge_tickets(Duration::ZERO, 1000),
    )
    .await
    .expect("purge_tickets");
    assert_eq!(u64::from(purged), TICKETS, "every ticket left Redis");

    let mut hot = create.clone();
    hot.add(&accept);
    hot.add(&complete);
    let mut life = hot.clone();
    life.add(&after);
    let per = |c: &Calls| c.total() as f64 / TICKETS as f64;
    println!(
        "Redis commands per ticket: create and offer {:.1}, accept {:.1}, complete {:.1}; \
         hot path {:.1}; deadline, ledger and purge {:.1}; life {:.1}",
        per(&create),
        per(&accept),
        per(&complete),
        per(&hot),
        per(&after),
        per(&life)
    );
    println!("hot path by command: {}", hot.describe(TICKETS));
    println!("after the end by command: {}", after.describe(TICKETS));
    assert!(
        hot.total() <= HOT_PATH_BUDGET * TICKETS,
        "the hot path costs {:.1} commands a ticket, over the budget of {HOT_PATH_BUDGET}: {}",
        per(&hot),
        hot.describe(TICKETS)
    );
    assert!(
        life.total() <= LIFE_BUDGET * TICKETS,
        "a ticket's life costs {:.1} commands, over the budget of {LIFE_BUDGET}: {}",
        per(&life),
        life.describe(TICKETS)
    );
}
