//! The soak run: many tickets through a fleet, and whether Redis's memory stays bounded by the
//! work in flight (API.md §4) rather than growing with every ticket ever handled.
//!
//! Starts a dispatcher and an agent-app-api in-process on a fresh namespace of the local Redis
//! and PostgreSQL (`TICKET_RETENTION_SECS` and `EVENT_RETENTION_SECS` short, so that the
//! retained past is small next to the run), connects `--agents` agents over real WebSockets
//! (each accepts its offer and completes the ticket a few milliseconds later), and posts
//! tickets with a `--context-bytes` context, keeping at most `--window` of them unfinished,
//! until `--tickets` have completed.
//!
//! Every `--every` completed tickets it reports, twice. First under load: Redis's `used_memory`
//! and the namespace's own keys. Under load these follow the work in flight, which is the
//! throughput at that moment times the retention windows, so they swing with the machine's
//! other load and mean little for growth. Then settled: posting pauses, the tickets in flight
//! finish, and once the retention has passed and no ticket is left in Redis (the ledger stored
//! them, `purge_tickets` removed them) it takes `used_memory` again, with the namespace's keys
//! and their bytes (`MEMORY USAGE`, immune to other tenants of the Redis), and posting resumes.
//! What is left settled is what the ticket flow leaves behind for good: a leak of even a few
//! bytes a ticket shows there as steady growth.
//!
//! Exit status 0 when every ticket completed, none is left in Redis after the retention, and
//! the settled `used_memory` at the last report is within `--tolerance` (default 10 %) of the
//! first; 1 otherwise. The last line on stdout is a JSON summary.
//!
//! `cargo run --release -p e2e --bin soak -- [--tickets 1000000] [--agents 1000]
//!  [--context-bytes 4096] [--every 100000] [--window 1000] [--retention-secs 10]`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{fresh_namespace, profile, settings, spawn_from, ticket, Options, TestApp};
use serde_json::{json, Value};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        None => default,
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => v,
            None => {
                eprintln!("soak: {name} takes a whole number");
                std::process::exit(2);
            }
        },
    }
}

/// One report line's figures.
#[derive(Debug, Clone)]
struct Sample {
    tickets: u64,
    /// Seconds of posting (the pauses to settle left out).
    secs: f64,
    /// Under load.
    load_memory: u64,
    load_keys: u64,
    /// Settled.
    used_memory: u64,
    keys: u64,
    key_bytes: u64,
    tickets_left: u64,
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects")
}

/// Redis's `used_memory`.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .expect("INFO memory");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// How many keys the namespace has, their bytes (0 unless `with_bytes`: a `MEMORY USAGE` per
/// key, not to be sent under load), and how many of them are tickets.
async fn namespace_keys(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    with_bytes: bool,
) -> (u64, u64, u64) {
    let (mut keys, mut bytes, mut tickets) = (0u64, 0u64, 0u64);
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{{{ns}}}:*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(conn)
            .await
            .expect("SCAN");
        if with_bytes && !batch.is_empty() {
            let mut pipe = redis::pipe();
            for k in &batch {
                pipe.cmd("MEMORY").arg("USAGE").arg(k);
            }
            let sizes: Vec<Option<u64>> = pipe.query_async(conn).await.expect("MEMORY USAGE");
            bytes += sizes.into_iter().flatten().sum::<u64>();
        }
        keys += batch.len() as u64;
        tickets += batch
            .iter()
            .filter(|k| k.starts_with(&format!("{{{ns}}}:ticket:")))
            .count() as u64;
        cursor = next;
        if cursor == 0 {
            return (keys, bytes, tickets);
        }
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Lets the tickets in flight finish (posting is paused) and the retention pass, until no
/// ticket is left in the namespace and the event stream is trimmed (or a minute past the
/// retention): then its keys, their bytes, and how many tickets are left.
async fn settle(
    conn: &mut redis::aio::MultiplexedConnection,
    ns: &str,
    completed: &AtomicU64,
    posted: &AtomicU64,
    retention: u64,
) -> (u64, u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(retention + 60);
    while completed.load(Ordering::Relaxed) < posted.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(retention)).await;
    let stream = format!("{{{ns}}}:events");
    loop {
        let (_, _, tickets) = namespace_keys(conn, ns, false).await;
        // The ledger trims the stream to its retention each second it finds nothing new; a
        // trim keeps what shares a stream node with the last entry kept (a hundred or so).
        let events: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(conn)
            .await
            .expect("XLEN");
        if (tickets == 0 && events <= 200) || Instant::now() >= deadline {
            return namespace_keys(conn, ns, true).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Connects `n` agents that accept every offer and complete the ticket within 10 ms.
async fn fleet(
    app: &TestApp,
    n: u64,
    completed: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let id = format!("soak-{i}");
        let mut agent = app
            .available_agent(&id, &profile(&["en"], json!({"refunds": 3}), 1))
            .await;
        let completed = completed.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let frame = match agent.next(Duration::from_secs(3600)).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => continue,
                    Err(closed) => {
                        eprintln!("soak: agent {id} disconnected: {closed:?}");
                        return;
                    }
                };
                match frame["type"].as_str() {
                    Some("offer") => {
                        agent
                            .send(json!({"type": "accept", "offer_id": frame["offer_id"]}))
                            .await;
                    }
                    Some("assigned") => {
                        let t = frame["ticket_id"].as_str().unwrap_or_default().to_owned();
                        tokio::time::sleep(Duration::from_millis(u64::from(t.as_bytes()[2] % 10)))
                            .await;
                        agent.complete(&t).await;
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                    Some("error") => eprintln!("soak: agent {id} got {frame}"),
                    _ => {}
                }
            }
        }));
    }
    tasks
}

#[tokio::main]
async fn main() {
    let tickets = arg("--tickets", 1_000_000);
    let agents = arg("--agents", 1000);
    let context_bytes = arg("--context-bytes", 4096);
    let every = arg("--every", 100_000).max(1);
    let window = arg("--window", agents).max(1);
    let retention = arg("--retention-secs", 10);
    let tolerance = arg("--tolerance-pct", 10);
    let posters = arg("--posters", 16).max(1);

    let namespace = fresh_namespace();
    let mut s = settings(&Options::default(), &namespace);
    s.ticket_retention = Duration::from_secs(retention);
    s.event_retention = Duration::from_secs(retention);
    let redis_url = s.redis_url.clone();
    let app = Arc::new(spawn_from(s, namespace.clone(), 1, 1).await);
    eprintln!(
        "soak: namespace {namespace}, {agents} agents, {tickets} tickets of {context_bytes} B \
         context, window {window}, retention {retention} s"
    );

    let completed = Arc::new(AtomicU64::new(0));
    let posted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let paused = Arc::new(AtomicBool::new(false));
    let agent_tasks = fleet(&app, agents, completed.clone()).await;
    eprintln!("soak: the fleet is connected");

    let mut body = ticket("en", json!({"refunds": 2}), 5);
    body["context"] =
        json!({"transcript": "x".repeat(usize::try_from(context_bytes).unwrap_or(0))});
    let started = Instant::now();
    let mut poster_tasks = Vec::new();
    for _ in 0..posters {
        let (app, body, posted, completed, failed, paused) = (
            app.clone(),
            body.clone(),
            posted.clone(),
            completed.clone(),
            failed.clone(),
            paused.clone(),
        );
        poster_tasks.push(tokio::spawn(async move {
            loop {
                let done = completed.load(Ordering::Relaxed);
                if posted.load(Ordering::Relaxed) >= tickets {
                    return;
                }
                if paused.load(Ordering::Relaxed)
                    || posted.load(Ordering::Relaxed).saturating_sub(done) >= window
                {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
                if posted.fetch_add(1, Ordering::Relaxed) >= tickets {
                    posted.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                let a = app.post_ticket(&body).await;
                if a.status != 201 {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("soak: POST /v1/tickets answered {} {}", a.status, a.body);
                    posted.fetch_sub(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }

    let mut conn = redis(&redis_url).await;
    let mut samples: Vec<Sample> = Vec::new();
    println!(
        "tickets\tsecs\trate/s\tunder load: used_memory MiB\tkeys\tsettled: used_memory MiB\tkeys\tnamespace MiB"
    );
    let mut next_report = every.min(tickets);
    let mut last_progress = Instant::now();
    let mut last_done = 0;
    let mut settling = Duration::ZERO;
    while next_report <= tickets {
        let done = completed.load(Ordering::Relaxed);
        if done >= next_report {
            let (load_keys, _, _) = namespace_keys(&mut conn, &namespace, false).await;
            let load_memory = used_memory(&mut conn).await;
            let secs = (started.elapsed() - settling).as_secs_f64();
            let pause = Instant::now();
            paused.store(true, Ordering::Relaxed);
            let (keys, key_bytes, tickets_left) =
                settle(&mut conn, &namespace, &completed, &posted, retention).await;
            let sample = Sample {
                tickets: completed.load(Ordering::Relaxed),
                secs,
                load_memory,
                load_keys,
                used_memory: used_memory(&mut conn).await,
                keys,
                key_bytes,
                tickets_left,
            };
            settling += pause.elapsed();
            paused.store(false, Ordering::Relaxed);
            println!(
                "{}\t{:.0}\t{:.0}\t{:.1}\t{}\t{:.1}\t{}\t{:.1}",
                sample.tickets,
                sample.secs,
                sample.tickets as f64 / sample.secs,
                mib(sample.load_memory),
                sample.load_keys,
                mib(sample.used_memory),
                sample.keys,
                mib(sample.key_bytes)
            );
            samples.push(sample);
            if next_report == tickets {
                break;
            }
            next_report = (next_report + every).min(tickets);
            continue;
        }
        if done != last_done {
            last_done = done;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(120) {
            eprintln!("soak: no ticket completed for two minutes ({done} of {tickets}); giving up");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let secs = (started.elapsed() - settling).as_secs_f64();
    for t in poster_tasks {
        t.abort();
    }
    let tickets_left = samples.last().map_or(u64::MAX, |s| s.tickets_left);

    let done = completed.load(Ordering::Relaxed);
    let all_posted = posted.load(Ordering::Relaxed);
    let first = samples.first().map(|s| s.used_memory).unwrap_or(0);
    let last = samples.last().map(|s| s.used_memory).unwrap_or(0);
    let growth_pct = if first > 0 {
        (last as f64 - first as f64) * 100.0 / first as f64
    } else {
        0.0
    };
    let bounded = growth_pct.abs() <= tolerance as f64;
    let ok = done >= tickets && done == all_posted && tickets_left == 0 && bounded;
    let summary: Value = json!({
        "ok": ok,
        "namespace": namespace,
        "tickets": tickets,
        "posted": all_posted,
        "completed": done,
        "post_failures": failed.load(Ordering::Relaxed),
        "agents": agents,
        "context_bytes": context_bytes,
        "secs": secs,
        "rate_per_sec": done as f64 / secs,
        "used_memory_first": first,
        "used_memory_last": last,
        "used_memory_growth_pct": growth_pct,
        "ticket_keys_left": tickets_left,
        "samples": samples.iter().map(|s| json!({
            "tickets": s.tickets, "secs": s.secs,
            "under_load": {"used_memory": s.load_memory, "namespace_keys": s.load_keys},
            "used_memory": s.used_memory, "namespace_keys": s.keys,
            "namespace_bytes": s.key_bytes, "ticket_keys": s.tickets_left,
        })).collect::<Vec<_>>(),
    });
    println!(
        "settled used_memory {:.1} MiB after the first {} tickets, {:.1} MiB after {done} ({growth_pct:+.1} %, at most ±{tolerance} %), {tickets_left} ticket keys left: {}",
        mib(first),
        samples.first().map(|s| s.tickets).unwrap_or(0),
        mib(last),
        if ok { "ok" } else { "FAILED" }
    );
    println!("{summary}");
    for t in agent_tasks {
        t.abort();
    }
    if let Ok(app) = Arc::try_unwrap(app) {
        drop(app);
    }
    std::process::exit(if ok { 0 } else { 1 });
}
