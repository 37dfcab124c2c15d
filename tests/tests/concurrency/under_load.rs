//! The whole system under load: many agents with different behaviours over several dispatcher and
//! gateway instances; every ticket is assigned once and completed, as the agents' frames, the
//! tickets and the event stream all show.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::{profile, spawn_with, token, AgentClient, Options};
use serde_json::{json, Value};
use shared::keys::Keys;
use tokio::time::Instant;

use crate::support::{field, replay_violations, seed, Rng};

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
            Ok(Some(frame)) => {
                match frame["type"].as_str().unwrap_or_default() {
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
                            client.send(json!({"type": "decline", "offer_id": offer_id, "reason": "busy"})).await;
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
                        if holding.iter().any(|(_, t)| *t == ticket)
                            || rec.assigned.contains(&ticket)
                        {
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
                }
            }
        }
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = holding.into_iter().partition(|(d, _)| *d <= now);
        holding = later;
        for (_, ticket) in due {
            client
                .send(json!({"type": "complete", "ticket_id": ticket, "outcome": "resolved"}))
                .await;
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
    // Answered offers keep their deadline entry until it passes (expire_offers drops them).
    let deadlines: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.deadlines())
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .expect("zrange");
    for offer in &deadlines {
        let status: Option<String> = redis::cmd("HGET")
            .arg(keys.offer(offer))
            .arg("status")
            .query_async(&mut conn)
            .await
            .expect("hget");
        assert_ne!(
            status.as_deref(),
            Some("pending"),
            "offer {offer} is still pending"
        );
    }
    app.stop().await;
}
