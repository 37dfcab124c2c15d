//! A load generator for the dispatch platform, and for a NATS server as its peer.
//!
//! Simulates a fleet of agents (1–2 of 6 languages, 2 of 8 skills with levels, capacity 1–3;
//! a share of them `available`, the rest offline, on break or speaking a language no ticket
//! uses) over real WebSockets, spread over gateways and 127.0.0.x source addresses, and an
//! escalation engine that posts tickets as an open-loop Poisson process. Measures ticket send →
//! offer frame and → assigned latencies (hdrhistogram, µs), matches per second, CPU per match of
//! the named server processes and resident memory per connected agent, and checks that no
//! ticket was lost or assigned twice.
//!
//! A fleet larger than one process's open-file limit allows is split over worker processes
//! (this binary again, started by the first; `shard.rs`).
//!
//! Progress goes to stderr; exactly one JSON object goes to stdout. `loadgen --help` lists the
//! flags.
//!
//! `cargo run --release -p e2e --bin loadgen -- --dispatcher http://127.0.0.1:8080 \
//!     --gateways ws://127.0.0.1:8081 --agents 1000 --rate 100 --duration 10`

#[path = "../loadgen/check.rs"]
mod check;
#[path = "../loadgen/cli.rs"]
mod cli;
#[path = "../loadgen/common.rs"]
mod common;
#[path = "../loadgen/dispatch.rs"]
mod dispatch;
#[path = "../loadgen/nats.rs"]
mod nats;
#[path = "../loadgen/nats_wire.rs"]
mod nats_wire;
#[path = "../loadgen/procs.rs"]
mod procs;
#[path = "../loadgen/record.rs"]
mod record;
#[path = "../loadgen/shard.rs"]
mod shard;
#[path = "../loadgen/stream.rs"]
mod stream;
#[path = "../loadgen/ws.rs"]
mod ws;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use cli::{Args, Target, USAGE};
use common::{fleet, Role};
use procs::Procs;
use record::{quantiles, Ctx};
use shard::{Shard, Workers};

/// Open files a process keeps for itself beyond its agents' sockets (HTTP, Redis, NATS).
const SPARE_FILES: usize = 2000;

#[tokio::main]
async fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(raw.clone()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            eprint!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("loadgen: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let (soft, hard) = procs::raise_nofile();
    if args.shard != Shard::ALL {
        return run_worker(args).await;
    }
    eprintln!("open-file limit: soft {soft}, hard {hard}");
    let per_process = (soft as usize).saturating_sub(SPARE_FILES).max(1);
    let processes = args
        .processes
        .unwrap_or_else(|| args.agents.div_ceil(per_process).max(1));
    if args.agents.div_ceil(processes) > per_process {
        eprintln!(
            "warning: {} agents over {processes} processes need about {} open files each; \
             the limit is {soft}",
            args.agents,
            args.agents.div_ceil(processes) + SPARE_FILES
        );
    }
    let per_source = args.agents.div_ceil(args.source_ips.len());
    if per_source > 28_000 {
        eprintln!(
            "warning: {per_source} connections per source address may exhaust ephemeral ports; \
             add addresses with --source-ips"
        );
    }
    // Every POST in flight holds a connection: what the agents of this process leave of the
    // open-file limit bounds them (an engine past it would fail on EMFILE, not measure).
    let mut args = args;
    let own_agents = args.agents.div_ceil(processes);
    let headroom = (soft as usize).saturating_sub(own_agents + 500).max(100);
    if args.max_inflight > headroom {
        eprintln!(
            "at most {headroom} POSTs in flight (of --max-inflight {}): the open-file limit",
            args.max_inflight
        );
        args.max_inflight = headroom;
    }
    let procs = Procs::new(args.pids.clone(), args.commands.clone());
    let run = match args.run_id {
        0 => {
            let nanos = common::now_us();
            common::Rng::new(nanos ^ u64::from(std::process::id())).next_u64() as u32
        }
        id => id,
    };
    let specs = fleet(&args);
    let ctx = Arc::new(Ctx::new(args, run, specs));
    match run_all(ctx, procs, processes, &raw).await {
        Ok(result) => println!("{result}"),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Spawns the agents of `shard`.
fn spawn_agents(
    ctx: &Arc<Ctx>,
    shard: Shard,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let gate = Arc::new(Semaphore::new(ctx.args.connect_concurrency));
    let mut handles = Vec::new();
    for idx in (0..ctx.specs.len() as u32).filter(|i| shard.has(*i as usize)) {
        let (c, g, s) = (ctx.clone(), gate.clone(), stop.clone());
        handles.push(match ctx.args.target {
            Target::Dispatch => tokio::spawn(dispatch::agent_task(c, idx, g, s)),
            Target::Nats => tokio::spawn(nats::agent_task(c, idx, g, s)),
        });
    }
    handles
}

/// Spawns the agents of `shard` (this process's) and waits (bounded) until every agent of the
/// fleet, in every process, is set up or has failed.
async fn connect_fleet(
    ctx: &Arc<Ctx>,
    shard: Shard,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let n = ctx.specs.len();
    let started = Instant::now();
    let handles = spawn_agents(ctx, shard, stop);
    let deadline = started + Duration::from_secs(60 + n as u64 / 100);
    let mut last_note = Instant::now();
    loop {
        let ready = ctx.ready.load(Ordering::Relaxed);
        let failed = ctx.failed.load(Ordering::Relaxed);
        if ready + failed >= n {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "fleet: gave up waiting after {:.0} s with {ready} ready, {failed} failed",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        if last_note.elapsed() >= Duration::from_secs(2) {
            last_note = Instant::now();
            eprintln!("  fleet: {ready}/{n} ready, {failed} failed");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "fleet: {} of {n} agents connected and set up in {:.1} s ({} failed)",
        ctx.ready.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        ctx.failed.load(Ordering::Relaxed)
    );
    handles
}

/// Waits until the measured server processes use less than 5 % of a core over half a second
/// (at most `limit`); returns how long that took.
async fn settle(procs: &Procs, limit: Duration) -> f64 {
    let started = Instant::now();
    let window = Duration::from_millis(500);
    let mut last = procs.cpu();
    while started.elapsed() < limit {
        tokio::time::sleep(window).await;
        let now = procs.cpu();
        let busy_ms = procs
            .cpu_ms(&last, &now)
            .get("total")
            .copied()
            .unwrap_or(0.0);
        last = now;
        if busy_ms < 0.05 * window.as_millis() as f64 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!("servers quiet {secs:.1} s after the fleet was set up");
    secs
}

/// Prints counters every second until `stop`.
fn progress(ctx: Arc<Ctx>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            let col = ctx.col();
            eprintln!(
                "  t={:>5.1}s posted {} offered {} assigned {} completed {} declined {} ignored {}",
                started.elapsed().as_secs_f64(),
                col.posted,
                col.tickets_offered,
                col.assigned,
                col.completed,
                col.declined,
                col.ignored
            );
        }
    });
}

/// A worker process: plays its shard's agents, sending their notes to the coordinator, until
/// told to stop.
async fn run_worker(args: Args) {
    let specs = fleet(&args);
    let run = args.run_id;
    let (notes_tx, notes_rx) = tokio::sync::mpsc::unbounded_channel();
    let shard = args.shard;
    let ctx = Arc::new(Ctx::worker(args, run, specs, notes_tx));
    let writer = tokio::spawn(shard::write_notes(notes_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let handles = spawn_agents(&ctx, shard, &stop_rx);
    shard::wait_for_stop(stop_tx).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    for h in handles {
        let abort = h.abort_handle();
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            abort.abort();
        }
    }
    drop(ctx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn run_all(
    ctx: Arc<Ctx>,
    procs: Procs,
    processes: usize,
    raw_args: &[String],
) -> anyhow::Result<Value> {
    let args = ctx.args.clone();
    let client = dispatch::http_client();
    eprintln!(
        "loadgen run {:08x}: target {}, {} agents ({} free), {}",
        ctx.run,
        args.target.name(),
        args.agents,
        ctx.specs.iter().filter(|s| s.role == Role::Free).count(),
        if args.idle {
            format!("idle for {} s", args.duration)
        } else {
            format!("{}/s for {} s", args.rate, args.duration)
        }
    );
    if args.target == Target::Dispatch {
        dispatch::create_agents(&ctx, &client).await;
    }
    let mem_name = match args.target {
        Target::Dispatch => ["agent-app-api"].as_slice(),
        Target::Nats => ["nats-server", "nats"].as_slice(),
    }
    .iter()
    .find(|n| procs.has(n))
    .map(|n| (*n).to_owned());
    let rss_before = procs.rss();

    let (stop_tx, stop_rx) = watch::channel(false);
    let workers = if processes > 1 {
        eprintln!(
            "fleet: {processes} processes (this one and {} workers)",
            processes - 1
        );
        let mut args = raw_args.to_vec();
        args.extend(["--run-id".to_owned(), format!("{:08x}", ctx.run)]);
        Some(Workers::start(&ctx, processes, &args)?)
    } else {
        None
    };
    let own = Shard {
        index: 0,
        of: processes,
    };
    let handles = connect_fleet(&ctx, own, &stop_rx).await;
    // The servers are still busy with the fleet's log-ins (the ledger opening a shift for each
    // agent, say): the run measures the steady state, so it starts once they are quiet.
    // (The ledger takes about a millisecond per agent here; 100,000 agents need minutes.)
    let settle_limit = Duration::from_secs(60) + Duration::from_millis(3 * args.agents as u64);
    let settle_secs = settle(&procs, settle_limit).await;

    let engine = match args.target {
        Target::Nats if !args.idle => Some(nats::start_engine(ctx.clone()).await?),
        _ => None,
    };

    // Redis's command counts over the run (the whole server's: the benchmark has it alone).
    let mut redis_conn = match args.target {
        Target::Dispatch => redis::Client::open(args.redis.as_str())?
            .get_multiplexed_async_connection()
            .await
            .ok(),
        _ => None,
    };
    let calls_before = match redis_conn.as_mut() {
        Some(conn) => e2e::commands::Calls::read_with_usec(conn).await.ok(),
        None => None,
    };
    let cpu_before = procs.cpu();
    let measured = Instant::now();
    if args.idle {
        eprintln!("holding the idle fleet for {} s", args.duration);
        tokio::time::sleep(Duration::from_secs_f64(args.duration)).await;
    } else {
        let (pstop_tx, pstop_rx) = watch::channel(false);
        progress(ctx.clone(), pstop_rx);
        match &engine {
            Some(engine) => nats::post_tickets(ctx.clone(), engine.clone()).await,
            None => dispatch::post_tickets(ctx.clone(), client.clone()).await,
        }
        eprintln!(
            "posting done after {:.1} s; draining for up to {} s",
            measured.elapsed().as_secs_f64(),
            args.drain_secs
        );
        let deadline = Instant::now() + Duration::from_secs_f64(args.drain_secs);
        while Instant::now() < deadline {
            let waiting = ctx.col().unassigned();
            let outstanding = engine.as_ref().map(|e| e.outstanding());
            if waiting == 0 || outstanding == Some(0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = pstop_tx.send(true);
    }
    let measured_secs = measured.elapsed().as_secs_f64();
    let cpu_after = procs.cpu();
    let (calls, usec) = match (redis_conn.as_mut(), &calls_before) {
        (Some(conn), Some((calls_before, usec_before))) => {
            match e2e::commands::Calls::read_with_usec(conn).await {
                Ok((calls, usec)) => (
                    Some(calls.since(calls_before)),
                    Some(usec.since(usec_before)),
                ),
                Err(_) => (None, None),
            }
        }
        _ => (None, None),
    };
    let rss_after = procs.rss();
    let cpu = procs.cpu_ms(&cpu_before, &cpu_after);
    let loadgen_rss_kib: u64 = std::iter::once(std::process::id())
        .chain(workers.iter().flat_map(Workers::pids))
        .filter_map(procs::rss_kib)
        .sum();

    let correctness = if args.idle {
        json!({"ok": true, "lost": 0, "assigned_twice": 0, "still_queued": 0, "problems": []})
    } else {
        eprintln!("checking the end state");
        match &engine {
            Some(engine) => nats::check(&ctx, engine),
            None => check::check(&ctx, &client).await,
        }
    };

    let _ = stop_tx.send(true);
    if let Some(workers) = workers {
        workers.stop().await;
    }
    let stop_deadline = Instant::now() + Duration::from_secs(10);
    for h in handles {
        let left = stop_deadline.saturating_duration_since(Instant::now());
        let abort = h.abort_handle();
        if tokio::time::timeout(left, h).await.is_err() {
            abort.abort();
        }
    }

    let connected = ctx.ready.load(Ordering::Relaxed);
    let col = ctx.col();
    let total_cpu_ms = cpu.get("total").copied().unwrap_or(0.0);
    let span_us = col
        .first_sent_us
        .map(|f| col.last_assigned_us.saturating_sub(f))
        .unwrap_or(0);
    let matches_per_sec = if span_us > 0 {
        col.assigned as f64 / (span_us as f64 / 1e6)
    } else {
        0.0
    };
    let (rss_per_agent, rss_per_agent_total) = match &mem_name {
        Some(name) if connected > 0 => {
            let after = rss_after.get(name).copied().unwrap_or(0);
            let before = rss_before.get(name).copied().unwrap_or(0);
            (
                json!((after.saturating_sub(before) * 1024) as f64 / connected as f64),
                json!((after * 1024) as f64 / connected as f64),
            )
        }
        _ => (Value::Null, Value::Null),
    };
    let offer_p99_ms = col.offer_hist.value_at_quantile(0.99) as f64 / 1000.0;
    let mut result = json!({
        "label": args.label,
        "target": args.target.name(),
        "agents": args.agents,
        "free_agents": ctx.specs.iter().filter(|s| s.role == Role::Free).count(),
        "rate": if args.idle { 0.0 } else { args.rate },
        "duration_secs": args.duration,
        "tickets_posted": col.posted,
        "offers_received": col.tickets_offered,
        "assigned": col.assigned,
        "completed": col.completed,
        "declined": col.declined,
        "expired_or_ignored": col.ignored,
        "offer_latency_ms": quantiles(&col.offer_hist),
        "assigned_latency_ms": quantiles(&col.assigned_hist),
        "matches_per_sec": matches_per_sec,
        "cpu_ms": cpu,
        "cpu_us_per_match": if col.assigned > 0 {
            json!(total_cpu_ms * 1000.0 / col.assigned as f64)
        } else {
            Value::Null
        },
        "rss_kib": rss_after,
        "rss_bytes_per_agent": rss_per_agent,
        "redis_commands_per_match": match &calls {
            Some(c) if col.assigned > 0 => json!(c.total() as f64 / col.assigned as f64),
            _ => Value::Null,
        },
        "correctness": correctness,
    });
    // Beyond the contract: what helps read the numbers above.
    let extra = json!({
        "run_id": format!("{:08x}", ctx.run),
        "redis_commands_by_name_per_match": calls.as_ref().map(|c| c.describe(col.assigned)),
        // Redis's time inside function calls (theirs and their commands'), per match: the rest
        // of its CPU is the event loop, the sockets and the commands called directly.
        "redis_function_us_per_match": match &usec {
            Some(u) if col.assigned > 0 => {
                json!(u.0.get("fcall").copied().unwrap_or(0) as f64 / col.assigned as f64)
            }
            _ => Value::Null,
        },
        "idle": args.idle,
        "agents_connected": connected,
        "agents_failed": ctx.failed.load(Ordering::Relaxed),
        "connections_dropped": ctx.dropped.load(Ordering::Relaxed),
        "post_errors": col.post_errors,
        "posted_per_sec": if args.duration > 0.0 { col.posted as f64 / args.duration } else { 0.0 },
        "offer_frames": col.offer_frames,
        "offer_p99_under_10ms": col.tickets_offered > 0 && offer_p99_ms < 10.0,
        "offers_expired": col.revoked_expired,
        "offers_revoked_cancelled": col.revoked_cancelled,
        "busy_offers": col.busy_offers,
        "request_timeouts": col.request_timeouts,
        "foreign_frames": col.foreign_frames,
        "errors": col.errors,
        "measured_secs": measured_secs,
        "settle_secs": settle_secs,
        "rss_kib_before": rss_before,
        "rss_process": mem_name,
        "rss_bytes_per_agent_total": rss_per_agent_total,
        "loadgen_rss_kib": loadgen_rss_kib,
        "post_latency_ms": match args.target {
            Target::Dispatch => quantiles(&col.post_hist),
            Target::Nats => Value::Null,
        },
        "source_ips": args.source_ips.len(),
        "loadgen_processes": processes,
        "gateways": match args.target {
            Target::Dispatch => args.gateways.len(),
            Target::Nats => 1,
        },
    });
    if let (Some(r), Value::Object(e)) = (result.as_object_mut(), extra) {
        r.extend(e);
    }
    eprintln!(
        "done: {} posted, {} assigned, offer p99 {:.2} ms, {:.0} matches/s, correctness ok: {}",
        col.posted, col.assigned, offer_p99_ms, matches_per_sec, result["correctness"]["ok"]
    );
    Ok(result)
}
