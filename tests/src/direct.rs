//! Driving the store directly, through the same typed calls the services make, for tests and
//! measurements that need many agents or tickets set up fast (no HTTP, no WebSocket): validated
//! ticket and profile fields from their JSON bodies, an agent put online, and the runtime and
//! case count of the property tests that run against the real Redis.

use std::sync::OnceLock;

use serde_json::Value;
use shared::domain::{AgentId, AgentProfile, NewTicket, RequestedStatus};
use shared::store::{NewTicketFields, ProfileFields, Store};

/// The store's fields of a ticket body (as `POST /v1/tickets` takes it, e.g. from
/// [`crate::ticket`]); panics if the body is not a valid ticket.
pub fn ticket_fields(body: &Value) -> NewTicketFields {
    let t: NewTicket = serde_json::from_value(body.clone()).expect("a valid ticket");
    NewTicketFields::new(&t)
}

/// The store's fields of a profile (as `PUT /v1/agents/{id}` takes it, e.g. from
/// [`crate::profile`]), inside no geofence; panics if it is not a valid profile.
pub fn profile_fields(profile: &Value) -> ProfileFields {
    let p: AgentProfile = serde_json::from_value(profile.clone()).expect("a valid profile");
    ProfileFields::new(&p, &[])
}

/// Puts agent `id` on the roster with `profile` and connects it (connection `c-<id>` on
/// gateway `gw-test`); with `available`, it also goes available (and is offered the best
/// waiting ticket, as always).
pub async fn online_agent(store: &Store, id: &str, profile: &Value, available: bool) -> AgentId {
    let aid = AgentId::try_from(id).expect("an agent id");
    store
        .put_agent(&aid, &profile_fields(profile))
        .await
        .expect("put_agent");
    connect(store, &aid, &format!("c-{id}"), "gw-test", available).await;
    aid
}

/// Records agent `id` (on the roster already) as connected with `conn` through gateway
/// `instance`, whether or not that gateway holds such a connection, and available.
pub async fn connected_through(store: &Store, id: &str, conn: &str, instance: &str) -> AgentId {
    let aid = AgentId::try_from(id).expect("an agent id");
    connect(store, &aid, conn, instance, true).await;
    aid
}

async fn connect(store: &Store, aid: &AgentId, conn: &str, instance: &str, available: bool) {
    store.connect(aid, conn, instance).await.expect("connect");
    if available {
        store
            .set_status(aid, RequestedStatus::Available)
            .await
            .expect("available");
    }
}

/// The runtime property tests block on (proptest's cases are synchronous).
pub fn proptest_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

/// `PROPTEST_CASES` if set, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
