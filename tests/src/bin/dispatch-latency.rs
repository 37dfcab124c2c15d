//! Measures the latency from ticket `POST` to the `offer` frame at the agent, on this machine.
//!
//! Starts one dispatcher and one agent-app-api in-process (a fresh namespace on the local
//! Redis), connects `--agents` agents that accept and complete every offer at once, posts
//! `--tickets` tickets at `--rate` per second, and prints the median, p90, p99 and max.
//!
//! `cargo run --release -p e2e --bin dispatch-latency -- [--tickets 1000] [--agents 50] [--rate 200]`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{profile, spawn_with, ticket, Options};
use serde_json::json;
use tokio::sync::Mutex;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest-rank percentile; the cast is of a value within 0..len.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() {
    let tickets = arg("--tickets", 1000);
    let agents = arg("--agents", 50);
    let rate = arg("--rate", 200).max(1);
    let app = spawn_with(Options::default()).await;
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();

    let mut tasks = Vec::new();
    for i in 0..agents {
        let id = format!("bench-{i}");
        let mut agent = app
            .available_agent(&id, &profile(&["en"], json!({"refunds": 3}), 3))
            .await;
        let received = received.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let frame = match agent.next(Duration::from_secs(5)).await {
                    Ok(Some(frame)) => frame,
                    _ => return,
                };
                match frame["type"].as_str() {
                    Some("offer") => {
                        let at = Instant::now();
                        let ticket = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                        received.lock().await.insert(ticket, at);
                        agent
                            .send(json!({"type": "accept", "offer_id": frame["offer_id"]}))
                            .await;
                    }
                    Some("assigned") => {
                        let ticket = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                        agent.complete(&ticket).await;
                    }
                    _ => {}
                }
            }
        }));
    }

    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    let mut next = tokio::time::Instant::now();
    for _ in 0..tickets {
        tokio::time::sleep_until(next).await;
        next += gap;
        let at = Instant::now();
        let answer = app
            .post_ticket(&ticket("en", json!({"refunds": 2}), 5))
            .await;
        if let Some(id) = answer.body["ticket_id"].as_str() {
            sent.insert(id.to_owned(), at);
        } else {
            eprintln!("POST failed: {} {}", answer.status, answer.body);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().await.len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let received = received.lock().await;
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| received.get(id).map(|r| r.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("tickets posted:   {}", sent.len());
    println!("offers received:  {}", latencies.len());
    println!("agents:           {agents}");
    println!(
        "rate:             {rate}/s (achieved {:.0}/s)",
        sent.len() as f64 / elapsed.as_secs_f64()
    );
    println!(
        "POST -> offer p50: {:.2} ms",
        ms(percentile(&latencies, 50.0))
    );
    println!(
        "POST -> offer p90: {:.2} ms",
        ms(percentile(&latencies, 90.0))
    );
    println!(
        "POST -> offer p99: {:.2} ms",
        ms(percentile(&latencies, 99.0))
    );
    println!(
        "POST -> offer max: {:.2} ms",
        ms(latencies.last().copied().unwrap_or_default())
    );
    for task in tasks {
        task.abort();
    }
    app.stop().await;
}
