//! Concurrency: many agents, several dispatcher and gateway instances, one Redis namespace.
//!
//! API.md §5: "A ticket is offered to one agent at a time and is never assigned to two agents,
//! however many dispatcher instances run", and "No ticket is ever lost". These tests drive the
//! real services (and, below them, the matcher and the store) hard and concurrently, and then
//! check those promises from three independent records: the agents' own frames, the tickets as the
//! API shows them, and the namespace's event stream (every transition, in the order Redis made
//! them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dispatcher::matcher::Matcher;
use e2e::{
    drop_namespace, fresh_namespace, profile, spawn_with, stream_events, token, AgentClient,
    Options, REDIS_URL,
};
use serde_json::{json, Value};
use shared::domain::{AgentId, AgentProfile, NewTicket, OfferId, RequestedStatus, TicketId};
use shared::keys::Keys;
use shared::store::{NewTicketFields, ProfileFields, Store, StoreError};
use tokio::time::Instant;

type Event = HashMap<String, String>;

/// A small deterministic generator (SplitMix64), so that the tests need no extra dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = uuid::Uuid::new_v4().as_u64_pair().0;
    eprintln!("random seed: {seed:#x}");
    seed
}

fn field<'a>(e: &'a Event, k: &str) -> &'a str {
    e.get(k).map(String::as_str).unwrap_or_default()
}

/// Replays the event stream and returns every breach of "one offer per ticket at a time, one
/// offer per agent at a time, never more tickets than capacity, never assigned twice".
fn replay_violations(events: &[Event], max_of: &HashMap<String, usize>) -> Vec<String> {
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
            "offer_created" => {
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

// ---------------------------------------------------------------------------------------------
// 1. The whole system under load.
// ---------------------------------------------------------------------------------------------

const AGENT_COUNT: usize = 40;
const TICKET_COUNT: usize = 400;
const COMPLETE_WITHIN: Duration = Duration::from_secs(90);

/// How an agent answers offers.
#[derive(Debug, Clone, Copy)]
struct Behaviour {
    /// Percentage of offers declined.
    decline_pct: u64,
    /// Percentage of offers left to expire.
    ignore_pct: u64,
}

/// What one agent saw and did, from its own frames.
#[derive(Debug, Default)]
struct AgentRecord {
    id: String,
    max: usize,
    /// Tickets of every `assigned` frame, in order.
    assigned: Vec<String>,
    offers: usize,
    declined: usize,
    ignored: usize,
    revoked_expired: usize,
    away: usize,
    errors: Vec<Value>,
    most_held: usize,
    /// Breaches seen from the agent's side.
    violations: Vec<String>,
}

async fn run_agent(
    mut client: AgentClient,
    max: usize,
    behaviour: Behaviour,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) -> AgentRecord {
    let mut rec = AgentRecord {
        id: client.id.clone(),
        max,
        ..AgentRecord::default()
    };
    // Tickets we hold (assigned, complete not yet sent), with when we will complete them.
    let mut holding: Vec<(Instant, String)> = Vec::new();
    // The offer we were sent and have not answered nor seen revoked.
    let mut unanswered: Option<String> = None;
    loop {
        if stop.load(Ordering::SeqCst) && holding.is_empty() {
            break;
        }
        let now = Instant::now();
        let wait = holding
            .iter()
            .map(|(due, _)| due.saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        match client.next(wait).await {
            Err(closed) => {
                rec.violations
                    .push(format!("connection closed: {closed:?}"));
                break;
            }
            Ok(None) => {}
            Ok(Some(frame)) => match frame["type"].as_str().unwrap_or_default() {
                "offer" => {
                    rec.offers += 1;
                    let offer_id = frame["offer_id"].as_str().unwrap_or_default().to_owned();
                    if let Some(other) = &unanswered {
                        rec.violations.push(format!(
                            "offer {offer_id} arrived while offer {other} was still outstanding"
                        ));
                    }
                    if holding.len() >= max {
                        rec.violations.push(format!(
                            "offer {offer_id} arrived while holding {} of {max} tickets",
                            holding.len()
                        ));
                    }
                    let roll = rng.below(100);
                    if roll < behaviour.decline_pct {
                        rec.declined += 1;
                        unanswered = None;
                        client
                            .send(
                                json!({"type": "decline", "offer_id": offer_id, "reason": "busy"}),
                            )
                            .await;
                    } else if roll < behaviour.decline_pct + behaviour.ignore_pct {
                        rec.ignored += 1;
                        unanswered = Some(offer_id);
                    } else {
                        unanswered = None;
                        client
                            .send(json!({"type": "accept", "offer_id": offer_id}))
                            .await;
                    }
                }
                "assigned" => {
                    let ticket = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                    if holding.iter().any(|(_, t)| *t == ticket) || rec.assigned.contains(&ticket) {
                        rec.violations
                            .push(format!("ticket {ticket} assigned to us twice"));
                    }
                    rec.assigned.push(ticket.clone());
                    let due = Instant::now() + Duration::from_millis(10 + rng.below(140));
                    holding.push((due, ticket));
                    rec.most_held = rec.most_held.max(holding.len());
                    if holding.len() > max {
                        rec.violations.push(format!(
                            "holding {} tickets, more than max_concurrent {max}",
                            holding.len()
                        ));
                    }
                }
                "offer_revoked" => {
                    if unanswered.as_deref() == frame["offer_id"].as_str() {
                        unanswered = None;
                    }
                    if frame["reason"] == "expired" {
                        rec.revoked_expired += 1;
                    } else {
                        rec.violations
                            .push(format!("unexpected revocation: {frame}"));
                    }
                }
                "status" => {
                    if frame["status"] == "away" {
                        rec.away += 1;
                        client
                            .send(json!({"type": "set_status", "status": "available"}))
                            .await;
                    }
                }
                "error" => rec.errors.push(frame),
                _ => rec.violations.push(format!("unexpected frame: {frame}")),
            },
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = holding.into_iter().partition(|(d, _)| *d <= now);
        holding = later;
        for (_, ticket) in due {
            client.complete(&ticket).await;
        }
    }
    client.close().await;
    rec
}

async fn post_ticket(http: reqwest::Client, base: String, body: Value) -> String {
    for attempt in 0..5 {
        let resp = http
            .post(format!("{base}/v1/tickets"))
            .bearer_auth(token("escalation", "load"))
            .json(&body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().as_u16() == 201 => {
                let v: Value = r.json().await.expect("ticket JSON");
                return v["ticket_id"].as_str().expect("ticket_id").to_owned();
            }
            Ok(r) => panic!(
                "POST /v1/tickets to {base}: {} {:?}",
                r.status(),
                r.text().await
            ),
            Err(e) if attempt < 4 => {
                eprintln!("POST /v1/tickets to {base} failed ({e}); retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("POST /v1/tickets to {base}: {e}"),
        }
    }
    unreachable!("the loop returns or panics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_load_across_instances_every_ticket_is_assigned_once_and_completed() {
    let app = spawn_with(Options {
        dispatchers: 2,
        gateways: 2,
        offer_timeout_secs: 2,
        ..Options::default()
    })
    .await;
    let mut rng = Rng::new(seed());

    // The roster: mixed languages, levels and capacities. Agents 4k and 4k+1 accept every offer,
    // so every ticket has agents who will take it; 4k+2 let some expire, 4k+3 decline some.
    let mut max_of = HashMap::new();
    let mut clients = Vec::new();
    for i in 0..AGENT_COUNT {
        let id = format!("ag-{i:02}");
        let langs: &[&str] = match i % 3 {
            0 => &["sv", "en"],
            1 => &["sv"],
            _ => &["en"],
        };
        let max = 1 + i % 3;
        let body = profile(
            langs,
            json!({"refunds": 1 + i % 5}),
            u8::try_from(max).unwrap_or(1),
        );
        let base = &app.dispatchers[i % app.dispatchers.len()];
        let put = app.send(
            app.http.put(format!("{base}/v1/agents/{id}")).json(&body),
            "admin",
        );
        let a = put.await;
        assert_eq!(a.status, 201, "agent {id} created: {:?}", a.body);
        let client =
            AgentClient::connect_available(&app.gateways[i % app.gateways.len()], &id).await;
        max_of.insert(id.clone(), max);
        let behaviour = match i % 4 {
            2 => Behaviour {
                decline_pct: 0,
                ignore_pct: 15,
            },
            3 => Behaviour {
                decline_pct: 30,
                ignore_pct: 0,
            },
            _ => Behaviour {
                decline_pct: 0,
                ignore_pct: 0,
            },
        };
        clients.push((client, max, behaviour));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let agents: Vec<_> = clients
        .into_iter()
        .map(|(client, max, behaviour)| {
            tokio::spawn(run_agent(
                client,
                max,
                behaviour,
                Rng::new(rng.next()),
                stop.clone(),
            ))
        })
        .collect();

    // 400 tickets, posted concurrently, alternating between the two dispatchers.
    let started = Instant::now();
    let posting: Vec<_> = (0..TICKET_COUNT)
        .map(|i| {
            let lang = if rng.below(2) == 0 { "sv" } else { "en" };
            let skills = match rng.below(4) {
                0 => json!({}),
                n => json!({"refunds": n}),
            };
            let body = e2e::ticket(lang, skills, u8::try_from(rng.below(10)).unwrap_or(5));
            let base = app.dispatchers[i % app.dispatchers.len()].clone();
            tokio::spawn(post_ticket(app.http.clone(), base, body))
        })
        .collect();
    let mut tickets = Vec::with_capacity(TICKET_COUNT);
    for p in posting {
        tickets.push(p.await.expect("posting task"));
    }
    let distinct: HashSet<&String> = tickets.iter().collect();
    assert_eq!(
        distinct.len(),
        TICKET_COUNT,
        "every POST made its own ticket"
    );

    // Wait (bounded) until every ticket is completed, reading the tickets straight from Redis.
    let keys = Keys::new(&app.namespace);
    let mut conn = app.redis().await;
    let last = loop {
        let mut pipe = redis::pipe();
        for t in &tickets {
            pipe.hget(keys.ticket(t), "status");
        }
        let statuses: Vec<Option<String>> = pipe.query_async(&mut conn).await.expect("statuses");
        let mut last = BTreeMap::new();
        for s in &statuses {
            *last
                .entry(s.clone().unwrap_or_else(|| "missing".into()))
                .or_insert(0usize) += 1;
        }
        if last.get("completed") == Some(&TICKET_COUNT) {
            break last;
        }
        if started.elapsed() > COMPLETE_WITHIN {
            let stuck: Vec<_> = tickets
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| s.as_deref() != Some("completed"))
                .take(5)
                .map(|(t, s)| format!("{t}: {s:?}"))
                .collect();
            stop.store(true, Ordering::SeqCst);
            panic!(
                "not every ticket completed within {COMPLETE_WITHIN:?}: {last:?}; e.g. {stuck:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    eprintln!(
        "{TICKET_COUNT} tickets completed in {:?}: {last:?}",
        started.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    let mut records = Vec::new();
    for a in agents {
        records.push(a.await.expect("agent task"));
    }

    // The agents' own records.
    let mut assigned_to: HashMap<String, Vec<String>> = HashMap::new();
    let mut violations = Vec::new();
    for r in &records {
        for v in &r.violations {
            violations.push(format!("{}: {v}", r.id));
        }
        for t in &r.assigned {
            assigned_to.entry(t.clone()).or_default().push(r.id.clone());
        }
        assert!(
            r.most_held <= r.max,
            "{} held {} tickets at once, max_concurrent {}",
            r.id,
            r.most_held,
            r.max
        );
    }
    assert!(violations.is_empty(), "agents saw: {violations:#?}");
    let twice: Vec<_> = assigned_to.iter().filter(|(_, a)| a.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "assigned frames for one ticket reached several agents: {twice:?}"
    );
    assert_eq!(
        assigned_to.len(),
        TICKET_COUNT,
        "every ticket reached exactly one agent's `assigned`"
    );
    let offers: usize = records.iter().map(|r| r.offers).sum();
    let declined: usize = records.iter().map(|r| r.declined).sum();
    let ignored: usize = records.iter().map(|r| r.ignored).sum();
    let expired: usize = records.iter().map(|r| r.revoked_expired).sum();
    let errors: Vec<_> = records.iter().flat_map(|r| r.errors.iter()).collect();
    eprintln!(
        "offers {offers}, declined {declined}, ignored {ignored}, revoked as expired {expired}, \
         away {}, errors {errors:?}",
        records.iter().map(|r| r.away).sum::<usize>()
    );
    assert!(
        declined > 0 && ignored > 0,
        "the run exercised declines and expiries"
    );
    assert_eq!(
        ignored, expired,
        "every offer left unanswered was revoked as expired, and no other"
    );
    assert!(errors.is_empty(), "agents got error frames: {errors:?}");

    // The tickets, as the API shows them, through both dispatchers.
    for (i, t) in tickets.iter().enumerate() {
        let base = &app.dispatchers[i % app.dispatchers.len()];
        let v = app
            .send(app.http.get(format!("{base}/v1/tickets/{t}")), "escalation")
            .await;
        assert_eq!(v.status, 200, "GET ticket {t}: {:?}", v.body);
        assert_eq!(v.body["status"], "completed", "{t}: {:?}", v.body);
        let holder = &assigned_to[t][0];
        assert_eq!(v.body["agent_id"], holder.as_str(), "{t}: {:?}", v.body);
    }

    // The event stream: created, assigned and completed exactly once each; the replay holds.
    let events = app.events().await;
    let mut counts: HashMap<(&str, &str), usize> = HashMap::new();
    for e in &events {
        *counts
            .entry((field(e, "type"), field(e, "ticket")))
            .or_default() += 1;
    }
    for t in &tickets {
        for kind in ["ticket_created", "ticket_assigned", "ticket_completed"] {
            assert_eq!(
                counts.get(&(kind, t.as_str())).copied().unwrap_or(0),
                1,
                "{kind} events of {t}"
            );
        }
    }
    for e in events
        .iter()
        .filter(|e| field(e, "type") == "ticket_assigned")
    {
        let t = field(e, "ticket");
        assert_eq!(
            assigned_to.get(t).map(|a| a[0].as_str()),
            Some(field(e, "agent")),
            "the agent of ticket_assigned {t} is the one that got `assigned`"
        );
    }
    let replay = replay_violations(&events, &max_of);
    assert!(
        replay.is_empty(),
        "the event stream breaks the rules: {replay:#?}"
    );

    // Nothing is held or pending any more.
    for r in &records {
        let a = app
            .send(
                app.http
                    .get(format!("{}/v1/agents/{}", app.dispatchers[1], r.id)),
                "admin",
            )
            .await;
        assert_eq!(
            a.body["state"]["active_tickets"],
            json!([]),
            "{}: {:?}",
            r.id,
            a.body
        );
    }
    let pending: usize = redis::cmd("ZCARD")
        .arg(keys.deadlines())
        .query_async(&mut conn)
        .await
        .expect("zcard");
    assert_eq!(pending, 0, "no offer is still pending");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Matching raced from many tasks and two "dispatchers" (two stores, two matchers).
// ---------------------------------------------------------------------------------------------

async fn fresh_store() -> (Store, String) {
    let namespace = fresh_namespace();
    let store = Store::open(REDIS_URL, &namespace).expect("store");
    store.load_library().await.expect("library loads");
    (store, namespace)
}

fn agent_id(s: &str) -> AgentId {
    AgentId::try_from(s).expect("agent id")
}

fn profile_fields(langs: &[&str], skills: Value, max: u8) -> ProfileFields {
    let p: AgentProfile = serde_json::from_value(profile(langs, skills, max)).expect("profile");
    ProfileFields::new(&p, &[])
}

fn ticket_fields(lang: &str, priority: u8) -> NewTicketFields {
    let t: NewTicket =
        serde_json::from_value(e2e::ticket(lang, json!({}), priority)).expect("ticket");
    NewTicketFields::new(&t)
}

/// `n` agents speaking sv, connected and available; their ids.
async fn available_agents(store: &Store, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("r-{i:02}");
        let aid = agent_id(&id);
        let max = 1 + u8::try_from(rng.below(3)).unwrap_or(0);
        store
            .put_agent(&aid, &profile_fields(&["sv"], json!({"refunds": 3}), max))
            .await
            .expect("put_agent");
        store
            .connect(&aid, &format!("c-{i}"), "gw-test")
            .await
            .expect("connect");
        store
            .set_status(&aid, RequestedStatus::Available)
            .await
            .expect("available");
        ids.push(id);
    }
    ids
}

async fn queued_tickets(store: &Store, n: usize, rng: &mut Rng) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let tid = TicketId::generate();
        let fields = ticket_fields("sv", u8::try_from(rng.below(10)).unwrap_or(5));
        let (id, created) = store
            .create_ticket(&tid, None, &fields)
            .await
            .expect("create_ticket");
        assert!(created);
        ids.push(id);
    }
    ids
}

/// Routes every ticket from `tasks` tasks at once (each in its own order, through one of two
/// matchers on two separate stores), with `serve_agent` calls for every agent mixed in; then
/// checks that no ticket got two offers and no agent two.
async fn race_matching(agents: usize, tickets: usize, tasks: usize) {
    let mut rng = Rng::new(seed());
    let (store, namespace) = fresh_store().await;
    let agent_ids = available_agents(&store, agents, &mut rng).await;
    let ticket_ids = queued_tickets(&store, tickets, &mut rng).await;
    let other = Store::open(REDIS_URL, &namespace).expect("second store");
    let matchers = [
        Matcher::new(store.clone(), Duration::from_secs(60)),
        Matcher::new(other, Duration::from_secs(60)),
    ];
    let go = Arc::new(tokio::sync::Barrier::new(tasks));
    let mut joins = Vec::new();
    for task in 0..tasks {
        let matcher = matchers[task % 2].clone();
        let go = go.clone();
        let mut order: Vec<(bool, String)> = ticket_ids
            .iter()
            .map(|t| (true, t.clone()))
            .chain(agent_ids.iter().map(|a| (false, a.clone())))
            .collect();
        let mut r = Rng::new(rng.next());
        for i in (1..order.len()).rev() {
            let j = usize::try_from(r.below(u64::try_from(i + 1).unwrap_or(1))).unwrap_or(0);
            order.swap(i, j);
        }
        joins.push(tokio::spawn(async move {
            go.wait().await;
            for (is_ticket, id) in order {
                let result = if is_ticket {
                    matcher.route_ticket(&id).await.map(drop)
                } else {
                    matcher.serve_agent(&id).await.map(drop)
                };
                if let Err(e) = result {
                    return Err(format!("{id}: {e}"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for j in joins {
        j.await.expect("task").expect("matching calls succeed");
    }

    let events = stream_events(&namespace).await;
    let created: Vec<&Event> = events
        .iter()
        .filter(|e| field(e, "type") == "offer_created")
        .collect();
    let mut per_ticket: HashMap<&str, usize> = HashMap::new();
    let mut per_agent: HashMap<&str, usize> = HashMap::new();
    for e in &created {
        *per_ticket.entry(field(e, "ticket")).or_default() += 1;
        *per_agent.entry(field(e, "agent")).or_default() += 1;
    }
    let expected_offers = agents.min(tickets);
    assert_eq!(
        created.len(),
        expected_offers,
        "{agents} free agents and {tickets} queued tickets make {expected_offers} offers: {per_ticket:?} {per_agent:?}"
    );
    for (t, n) in &per_ticket {
        assert_eq!(*n, 1, "ticket {t} was offered {n} times while unanswered");
    }
    for (a, n) in &per_agent {
        assert_eq!(*n, 1, "agent {a} got {n} offers while one was unanswered");
    }
    if tickets <= agents {
        assert_eq!(per_ticket.len(), tickets, "every ticket got its one offer");
    } else {
        assert_eq!(per_agent.len(), agents, "every agent got one offer");
    }
    // The state agrees with the events: each offered ticket names the agent holding its offer.
    let keys = store.keys().clone();
    let mut conn = store.conn();
    for t in &ticket_ids {
        let (status, offer, offer_agent): (String, String, String) = redis::cmd("HMGET")
            .arg(keys.ticket(t))
            .arg(&["status", "offer", "offer_agent"])
            .query_async(&mut conn)
            .await
            .expect("ticket hash");
        let offered = per_ticket.contains_key(t.as_str());
        assert_eq!(status, if offered { "offered" } else { "queued" }, "{t}");
        if offered {
            let agent_offer: String = redis::cmd("HGET")
                .arg(keys.agent(&offer_agent))
                .arg("offer")
                .query_async(&mut conn)
                .await
                .expect("agent offer");
            assert_eq!(
                agent_offer, offer,
                "{t} is offered to {offer_agent} by {offer}"
            );
        }
    }
    drop_namespace(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_matchers_never_offer_one_ticket_twice_more_agents_than_tickets() {
    race_matching(12, 8, 48).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_matchers_never_offer_one_agent_two_tickets_more_tickets_than_agents() {
    race_matching(5, 12, 48).await;
}

// ---------------------------------------------------------------------------------------------
// 3. Answers to one offer raced: double accepts, a decline and a cancellation at once.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_answers_to_an_offer_settle_it_exactly_once() {
    let mut rng = Rng::new(seed());
    let (store, namespace) = fresh_store().await;
    let n = 10;
    available_agents(&store, n, &mut rng).await;
    let ticket_ids = queued_tickets(&store, n, &mut rng).await;
    let matcher = Matcher::new(store.clone(), Duration::from_secs(60));
    for t in &ticket_ids {
        assert!(
            matcher.route_ticket(t).await.expect("route").is_some(),
            "{t} offered"
        );
    }
    let keys = store.keys().clone();
    let mut conn = store.conn();
    let mut offers = Vec::new();
    for t in &ticket_ids {
        let (offer, agent): (String, String) = redis::cmd("HMGET")
            .arg(keys.ticket(t))
            .arg(&["offer", "offer_agent"])
            .query_async(&mut conn)
            .await
            .expect("ticket hash");
        offers.push((t.clone(), offer, agent));
    }
    assert_eq!(
        offers
            .iter()
            .map(|(_, _, a)| a)
            .collect::<HashSet<_>>()
            .len(),
        n,
        "one offer per agent"
    );

    // Per offer: two accepts, a decline (every other offer) and a cancellation (every third),
    // from four separate connections, all at once.
    let stores: Vec<Store> = (0..4)
        .map(|_| Store::open(REDIS_URL, &namespace).expect("store"))
        .collect();
    let go = Arc::new(tokio::sync::Barrier::new(n));
    let mut joins = Vec::new();
    for (i, (ticket, offer, agent)) in offers.clone().into_iter().enumerate() {
        let stores = stores.clone();
        let go = go.clone();
        joins.push(tokio::spawn(async move {
            let aid = agent_id(&agent);
            let oid = OfferId::try_from(offer.as_str()).expect("offer id");
            let tid = TicketId::try_from(ticket.as_str()).expect("ticket id");
            go.wait().await;
            let (a1, a2, d, c) = tokio::join!(
                stores[0].accept(&aid, &oid),
                stores[1].accept(&aid, &oid),
                async {
                    if i % 2 == 0 {
                        Some(stores[2].decline(&aid, &oid, Some("race")).await)
                    } else {
                        None
                    }
                },
                async {
                    if i % 3 == 0 {
                        Some(stores[3].cancel_ticket(&tid).await)
                    } else {
                        None
                    }
                },
            );
            (i, a1.map(drop), a2.map(drop), d, c)
        }));
    }
    let mut outcomes = Vec::new();
    for j in joins {
        outcomes.push(j.await.expect("task"));
    }

    let events = stream_events(&namespace).await;
    for (i, a1, a2, d, c) in outcomes {
        let (ticket, _, agent) = &offers[i];
        let ok_accepts = usize::from(a1.is_ok()) + usize::from(a2.is_ok());
        let declined = matches!(d, Some(Ok(())));
        let cancelled = matches!(c, Some(Ok(())));
        let answer = |r: &Result<(), StoreError>| match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.to_string(),
        };
        let story = format!(
            "offer {i} ({ticket} to {agent}): accepts {} / {}, decline {:?}, cancel {:?}",
            answer(&a1),
            answer(&a2),
            d.as_ref().map(answer),
            c.as_ref().map(answer)
        );
        assert!(ok_accepts <= 1, "accepted twice: {story}");
        assert!(
            ok_accepts + usize::from(declined) <= 1,
            "both accepted and declined: {story}"
        );
        if c.is_some() {
            assert!(
                cancelled,
                "cancelling an unfinished ticket succeeds: {story}"
            );
        }
        let of_ticket = |kind: &str| {
            events
                .iter()
                .filter(|e| field(e, "type") == kind && field(e, "ticket") == ticket)
                .count()
        };
        assert_eq!(of_ticket("ticket_assigned"), ok_accepts, "{story}");
        assert_eq!(
            of_ticket("offer_declined"),
            usize::from(declined),
            "{story}"
        );
        let ticket_view = store
            .ticket(&TicketId::try_from(ticket.as_str()).expect("id"))
            .await
            .expect("ticket")
            .expect("exists");
        let agent_view = store
            .agent(&agent_id(agent))
            .await
            .expect("agent")
            .expect("exists");
        let holds = agent_view
            .state
            .active_tickets
            .iter()
            .any(|t| t.as_str() == ticket);
        let expected = if cancelled {
            "cancelled"
        } else if ok_accepts == 1 {
            "assigned"
        } else if declined {
            "queued"
        } else {
            "offered"
        };
        let status = serde_json::to_value(ticket_view.status).expect("status");
        assert_eq!(status, expected, "{story}");
        assert_eq!(
            holds,
            expected == "assigned",
            "agent holds it iff assigned: {story}"
        );
        if expected == "assigned" {
            assert_eq!(
                ticket_view.agent_id.as_deref(),
                Some(agent.as_str()),
                "{story}"
            );
        }
        let agent_offer: String = redis::cmd("HGET")
            .arg(keys.agent(agent))
            .arg("offer")
            .query_async(&mut conn)
            .await
            .expect("agent offer");
        assert_eq!(
            agent_offer.is_empty(),
            expected != "offered",
            "the agent's pending offer is gone iff the offer was settled: {story}"
        );
    }
    let replay = replay_violations(&events, &HashMap::new());
    assert!(
        replay.is_empty(),
        "the event stream breaks the rules: {replay:#?}"
    );
    drop_namespace(&namespace).await;
}
