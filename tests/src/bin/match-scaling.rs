//! Shows whether the cost of one match stays flat as the online pool grows.
//!
//! For each pool size it fills a fresh namespace on the local Redis with that many online
//! agents (a tenth free English speakers with the skill, the rest German speakers or on break),
//! then posts `--tickets` English tickets one at a time as the dispatcher does (the creation,
//! which routes the ticket and makes the offer: one Redis call) and prints the mean and p99 time
//! of one match. Each ticket is cancelled after it is offered, which frees its agent again.
//!
//! `cargo run --release -p e2e --bin match-scaling -- [--tickets 500] [--sizes 100,1000,10000,100000]`

use std::time::{Duration, Instant};

use dispatcher::matcher::{Matcher, PAGE};
use serde_json::json;
use shared::domain::{AgentProfile, NewTicket, TicketId};
use shared::store::{CreatedTicket, Function, NewTicketFields, ProfileFields, Store};

const REDIS: &str = "redis://127.0.0.1:6379";

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Adds `n` online agents with pipelined function calls (setup, not measured).
async fn fill(store: &Store, n: usize) {
    let mut conn = store.conn();
    let events = store.keys().events();
    for chunk_start in (0..n).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in chunk_start..(chunk_start + 1000).min(n) {
            let (lang, status) = match i % 10 {
                0 => ("en", "available"),
                1..=5 => ("de", "available"),
                _ => ("en", "break"),
            };
            let profile: AgentProfile = serde_json::from_value(json!({
                "display_name": "Bench", "languages": [lang], "skills": {"refunds": 3},
                "max_concurrent": 1
            }))
            .expect("valid profile");
            let p = ProfileFields::new(&profile, &[]);
            let id = format!("a{i}");
            let fcall = |function: Function| {
                let mut c = redis::cmd("FCALL");
                c.arg(function.versioned()).arg(1).arg(&events).arg(&id);
                c
            };
            pipe.add_command(
                fcall(Function::PutAgent)
                    .arg(&p.json)
                    .arg(&p.langs)
                    .arg(&p.skills)
                    .arg(&p.regions)
                    .arg(p.max)
                    .arg(p.rate)
                    .arg(&p.currency)
                    .arg(&p.tz)
                    .arg(format!("o-put-{i}"))
                    .arg(20_000)
                    .clone(),
            )
            .ignore();
            pipe.add_command(
                fcall(Function::Connect)
                    .arg(format!("c{i}"))
                    .arg("bench")
                    .arg(format!("o-connect-{i}"))
                    .arg(20_000)
                    .clone(),
            )
            .ignore();
            pipe.add_command(
                fcall(Function::SetStatus)
                    .arg("available")
                    .arg(format!("s{i}"))
                    .arg(format!("o-available-{i}"))
                    .arg(20_000)
                    .clone(),
            )
            .ignore();
            if status == "break" {
                pipe.add_command(
                    fcall(Function::SetStatus)
                        .arg("break")
                        .arg("")
                        .arg(format!("o-break-{i}"))
                        .arg(20_000)
                        .clone(),
                )
                .ignore();
            }
        }
        let _: () = pipe.query_async(&mut conn).await.expect("setup pipeline");
    }
}

async fn cleanup(store: &Store) {
    let mut conn = store.conn();
    let pattern = format!("{}*", store.keys().prefix());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(1000) {
        let _: Result<(), _> = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await;
    }
}

#[tokio::main]
async fn main() {
    let tickets: usize = arg("--tickets").and_then(|v| v.parse().ok()).unwrap_or(500);
    let sizes: Vec<usize> = arg("--sizes")
        .unwrap_or_else(|| "100,1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "{:>10} {:>12} {:>12} {:>12}",
        "agents", "mean µs", "p50 µs", "p99 µs"
    );
    for n in sizes {
        let ns = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let store = Store::open(REDIS, &ns).expect("redis url");
        store.load_library().await.expect("library loads");
        fill(&store, n).await;
        let matcher = Matcher::new(store.clone());
        let body: NewTicket = serde_json::from_value(json!({
            "conversation_id": "c", "language": "en", "skills": {"refunds": 2}, "summary": "s"
        }))
        .expect("valid ticket");
        let fields = NewTicketFields::new(&body);
        let mut times = Vec::with_capacity(tickets);
        for _ in 0..tickets {
            let id = TicketId::generate();
            let started = Instant::now();
            let created = store
                .create_ticket(&id, None, &fields, PAGE)
                .await
                .expect("ticket created");
            let CreatedTicket::Created { routed, .. } = created else {
                panic!("a fresh ticket id creates a ticket");
            };
            let agent = matcher
                .route_created(id.as_str(), routed)
                .await
                .expect("routed");
            times.push(started.elapsed());
            assert!(agent.is_some(), "a free agent exists at every size");
            store.cancel_ticket(&id).await.expect("cancelled");
        }
        times.sort();
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = times.iter().map(|d| micros(*d)).sum::<f64>() / times.len().max(1) as f64;
        let p = |q: f64| micros(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
        println!("{n:>10} {mean:>12.1} {:>12.1} {:>12.1}", p(0.5), p(0.99));
        cleanup(&store).await;
    }
}
