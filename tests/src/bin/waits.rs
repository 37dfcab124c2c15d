//! How accurate the wait estimate is (API.md §8) in a simulated busy hour: the real services
//! (in this process, against the local Redis and PostgreSQL), agents that accept every offer
//! and handle each ticket for an exponentially distributed time, and Poisson arrivals above
//! capacity for a while, then below it, so a queue forms and drains.
//!
//! Each ticket that is queued when posted has its `estimated_wait_secs` read at once; after the
//! run its `assigned_at` gives the actual wait. Printed: median and p90 of
//! |estimated − actual| / actual, over all of them and per phase.
//!
//!   cargo run --release -p e2e --bin waits [-- --quick]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{profile, spawn_with, ticket, AgentClient, Options};
use serde_json::json;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn exponential(&mut self, mean: f64) -> f64 {
        -self.uniform().ln() * mean
    }
}

struct Plan {
    agents: usize,
    handle_secs: f64,
    phases: Vec<(&'static str, f64, u64)>,
}

#[derive(Debug, Clone)]
struct Sample {
    phase: &'static str,
    ticket: String,
    asked_ms: i64,
    estimate: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn work(mut agent: AgentClient, handle_secs: f64, seed: u64, stop: Arc<Mutex<bool>>) {
    let mut rng = Rng(seed);
    loop {
        if *stop.lock().unwrap_or_else(|p| p.into_inner()) {
            return;
        }
        let frame = match agent.next(Duration::from_millis(500)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => continue,
            Err(closed) => {
                eprintln!("waits: an agent's connection closed ({closed:?}); it stops working");
                return;
            }
        };
        if frame["type"] != "offer" {
            continue;
        }
        agent
            .send(json!({"type": "accept", "offer_id": frame["offer_id"]}))
            .await;
        let ticket = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
        tokio::time::sleep(Duration::from_secs_f64(rng.exponential(handle_secs))).await;
        agent.complete(&ticket).await;
    }
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // Capacity: agents / handling time, 10 tickets a second either way.
    let plan = if quick {
        Plan {
            agents: 10,
            handle_secs: 1.0,
            phases: vec![("above capacity", 13.0, 20), ("below capacity", 7.0, 25)],
        }
    } else {
        Plan {
            agents: 20,
            handle_secs: 2.0,
            phases: vec![("above capacity", 13.0, 60), ("below capacity", 7.0, 90)],
        }
    };
    let app = spawn_with(Options {
        offer_timeout_secs: 20,
        ..Options::default()
    })
    .await;
    let stop = Arc::new(Mutex::new(false));
    let mut workers = Vec::new();
    for i in 0..plan.agents {
        let agent = app
            .available_agent(&format!("a-{i}"), &profile(&["sv"], json!({}), 1))
            .await;
        workers.push(tokio::spawn(work(
            agent,
            plan.handle_secs,
            0x9E37_79B9 + i as u64,
            stop.clone(),
        )));
    }
    eprintln!(
        "waits: {} agents handling a ticket in {:.1} s on average (capacity {:.1}/s); phases {:?}",
        plan.agents,
        plan.handle_secs,
        plan.agents as f64 / plan.handle_secs,
        plan.phases
    );
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let mut posts = Vec::new();
    let mut rng = Rng(42);
    for (phase, rate, secs) in plan.phases.clone() {
        let end = Instant::now() + Duration::from_secs(secs);
        eprintln!("waits: {phase}, {rate}/s for {secs} s");
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs_f64(rng.exponential(1.0 / rate))).await;
            let http = app.http.clone();
            let url = app.dispatcher("/v1/tickets");
            let samples = samples.clone();
            let base = app.dispatcher("/v1/tickets/");
            posts.push(tokio::spawn(async move {
                let posted = e2e::fetch(
                    http.post(&url)
                        .bearer_auth(e2e::token("escalation", "bench"))
                        .json(&ticket("sv", json!({}), 5)),
                )
                .await;
                if posted.body["status"] != "queued" {
                    return;
                }
                let id = posted.body["ticket_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let asked_ms = chrono::Utc::now().timestamp_millis();
                let t = e2e::fetch(
                    http.get(format!("{base}{id}"))
                        .bearer_auth(e2e::token("escalation", "bench")),
                )
                .await;
                if let Some(estimate) = t.body["estimated_wait_secs"].as_u64() {
                    samples
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Sample {
                            phase,
                            ticket: id,
                            asked_ms,
                            estimate,
                        });
                }
            }));
        }
    }
    for p in posts {
        let _ = p.await;
    }
    // Drain: every sampled ticket assigned.
    let samples = samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    eprintln!(
        "waits: {} queued tickets had an estimate; draining",
        samples.len()
    );
    let mut errors: Vec<(&'static str, f64)> = Vec::new();
    for s in &samples {
        let deadline = Instant::now() + Duration::from_secs(600);
        let assigned_ms = loop {
            let t = e2e::fetch(
                app.http
                    .get(app.dispatcher(&format!("/v1/tickets/{}", s.ticket)))
                    .bearer_auth(e2e::token("escalation", "bench")),
            )
            .await;
            if let Some(at) = t.body["assigned_at"].as_str() {
                break chrono::DateTime::parse_from_rfc3339(at)
                    .map(|d| d.timestamp_millis())
                    .unwrap_or_default();
            }
            assert!(
                Instant::now() < deadline,
                "ticket {} never assigned: {}",
                s.ticket,
                t.body
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let actual = (assigned_ms - s.asked_ms) as f64 / 1000.0;
        // Waits under a second are offers in flight, not queueing.
        if actual >= 1.0 {
            errors.push((s.phase, (s.estimate as f64 - actual).abs() / actual));
        }
    }
    *stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
    for w in workers {
        let _ = w.await;
    }
    let report = |label: &str, mut e: Vec<f64>| {
        e.sort_by(f64::total_cmp);
        println!(
            "{label:>16}: {:>5} queued tickets, |estimated - actual| / actual: median {:.1} %, p90 {:.1} %",
            e.len(),
            100.0 * percentile(&e, 0.5),
            100.0 * percentile(&e, 0.9)
        );
        e
    };
    println!(
        "wait estimate accuracy (API.md §8), {} agents, capacity {:.1}/s",
        plan.agents,
        plan.agents as f64 / plan.handle_secs
    );
    for (phase, _, _) in &plan.phases {
        report(
            phase,
            errors
                .iter()
                .filter(|(p, _)| p == phase)
                .map(|(_, e)| *e)
                .collect(),
        );
    }
    let all = report("all", errors.iter().map(|(_, e)| *e).collect());
    if all.is_empty() {
        eprintln!("waits: no queued ticket to measure");
        std::process::exit(1);
    }
    app.stop().await;
}
