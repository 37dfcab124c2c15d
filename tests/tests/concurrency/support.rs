//! Helpers shared by the concurrency tests: a deterministic random generator, a replay of the
//! event stream that finds every breach of the one-offer and capacity rules, and store-level
//! set-up of agents and tickets.

use std::collections::HashMap;

use e2e::{fresh_namespace, profile, REDIS_URL};
use serde_json::{json, Value};
use shared::domain::{AgentId, TicketId};
use shared::store::{CreatedTicket, NewTicketFields, ProfileFields, Routed, Store};

pub(crate) type Event = HashMap<String, String>;

/// A small deterministic generator (SplitMix64), so that the tests need no extra dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub(crate) fn seed() -> u64 {
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    eprintln!("random seed: {seed:#x}");
    seed
}

pub(crate) fn field<'a>(e: &'a Event, k: &str) -> &'a str {
    e.get(k).map(String::as_str).unwrap_or_default()
}

/// Replays the event stream and returns every breach of "one offer per ticket at a time, one
/// offer per agent at a time, never more tickets than capacity, never assigned twice".
pub(crate) fn replay_violations(events: &[Event], max_of: &HashMap<String, usize>) -> Vec<String> {
    let mut bad = Vec::new();
    // ticket -> its pending offer; agent -> its pending offer; offer -> (ticket, agent)
    let mut ticket_offer: HashMap<String, String> = HashMap::new();
    let mut agent_offer: HashMap<String, String> = HashMap::new();
    let mut offers: HashMap<String, (String, String)> = HashMap::new();
    let mut holder: HashMap<String, String> = HashMap::new();
    let mut active: HashMap<String, usize> = HashMap::new();
    let end_offer = |offer: &str,
                     ticket_offer: &mut HashMap<String, String>,
                     agent_offer: &mut HashMap<String, String>,
                     offers: &HashMap<String, (String, String)>| {
        if let Some((t, a)) = offers.get(offer) {
            if ticket_offer.get(t).map(String::as_str) == Some(offer) {
                ticket_offer.remove(t);
            }
            if agent_offer.get(a).map(String::as_str) == Some(offer) {
                agent_offer.remove(a);
            }
        }
    };
    for (i, e) in events.iter().enumerate() {
        let (ticket, agent, offer) = (field(e, "ticket"), field(e, "agent"), field(e, "offer"));
        match field(e, "type") {
            _ if e2e::makes_offer(e) => {
                if let Some(other) = ticket_offer.get(ticket) {
                    bad.push(format!(
                        "event {i}: offer {offer} of {ticket} to {agent} while offer {other} of it is still pending"
                    ));
                }
                if let Some(other) = agent_offer.get(agent) {
                    bad.push(format!(
                        "event {i}: offer {offer} to {agent} while its offer {other} is still pending"
                    ));
                }
                if let Some(h) = holder.get(ticket) {
                    bad.push(format!(
                        "event {i}: offer {offer} of {ticket} while it is assigned to {h}"
                    ));
                }
                let held = active.get(agent).copied().unwrap_or(0);
                let max = max_of.get(agent).copied().unwrap_or(usize::MAX);
                if held >= max {
                    bad.push(format!(
                        "event {i}: offer {offer} to {agent} holding {held} of {max} tickets"
                    ));
                }
                ticket_offer.insert(ticket.to_owned(), offer.to_owned());
                agent_offer.insert(agent.to_owned(), offer.to_owned());
                offers.insert(offer.to_owned(), (ticket.to_owned(), agent.to_owned()));
            }
            "offer_declined" | "offer_expired" | "offer_withdrawn" => {
                end_offer(offer, &mut ticket_offer, &mut agent_offer, &offers);
            }
            "ticket_assigned" => {
                if ticket_offer.get(ticket).map(String::as_str) != Some(offer)
                    || offers.get(offer).map(|(_, a)| a.as_str()) != Some(agent)
                {
                    bad.push(format!(
                        "event {i}: {ticket} assigned to {agent} by offer {offer}, which is not its pending offer"
                    ));
                }
                end_offer(offer, &mut ticket_offer, &mut agent_offer, &offers);
                if let Some(h) = holder.insert(ticket.to_owned(), agent.to_owned()) {
                    bad.push(format!(
                        "event {i}: {ticket} assigned to {agent} while assigned to {h}"
                    ));
                }
                let held = active.entry(agent.to_owned()).or_default();
                *held += 1;
                let max = max_of.get(agent).copied().unwrap_or(usize::MAX);
                if *held > max {
                    bad.push(format!(
                        "event {i}: {agent} holds {held} tickets, more than its {max}"
                    ));
                }
            }
            "ticket_completed" | "ticket_requeued" => {
                if holder.get(ticket).map(String::as_str) != Some(agent) {
                    bad.push(format!(
                        "event {i}: {} of {ticket} by {agent}, which does not hold it",
                        field(e, "type")
                    ));
                } else {
                    holder.remove(ticket);
                    if let Some(held) = active.get_mut(agent) {
                        *held = held.saturating_sub(1);
                    }
                }
            }
            "ticket_cancelled" => {
                if let Some(o) = ticket_offer.get(ticket).cloned() {
                    end_offer(&o, &mut ticket_offer, &mut agent_offer, &offers);
                }
                if let Some(h) = holder.remove(ticket) {
                    if let Some(held) = active.get_mut(&h) {
                        *held = held.saturating_sub(1);
                    }
                }
            }
            _ => {}
        }
    }
    bad
}

pub(crate) async fn fresh_store() -> (Store, String) {
    let namespace = fresh_namespace();
    let store = Store::open(REDIS_URL, &namespace).expect("store");
    store.load_library().await.expect("library loads");
    (store, namespace)
}

pub(crate) fn agent_id(s: &str) -> AgentId {
    AgentId::try_from(s).expect("agent id")
}

pub(crate) fn profile_fields(langs: &[&str], skills: Value, max: u8) -> ProfileFields {
    e2e::direct::profile_fields(&profile(langs, skills, max))
}

pub(crate) fn ticket_fields(lang: &str, priority: u8) -> NewTicketFields {
    e2e::direct::ticket_fields(&e2e::ticket(lang, json!({}), priority))
}

/// `n` agents speaking sv, connected and available; their ids.
pub(crate) async fn available_agents(store: &Store, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("r-{i:02}");
        let max = 1 + u8::try_from(rng.below(3)).unwrap_or(0);
        let p = profile(&["sv"], json!({"refunds": 3}), max);
        e2e::direct::online_agent(store, &id, &p, true).await;
        ids.push(id);
    }
    ids
}

/// `n` new tickets left routing, for matchers to route: created looking at no free-index
/// entry, as a creation that found nobody eligible in its first page leaves its ticket.
pub(crate) async fn queued_tickets(store: &Store, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let tid = TicketId::generate();
        let fields = ticket_fields("sv", u8::try_from(rng.below(10)).unwrap_or(5));
        let created = store
            .create_ticket(&tid, None, &fields, 0)
            .await
            .expect("create_ticket");
        assert!(
            matches!(&created, CreatedTicket::Created { id, routed: Routed::More { .. }, .. } if id == tid.as_str()),
            "{created:?}"
        );
        ids.push(tid.to_string());
    }
    ids
}
