//! The chaos suite (`deploy/chaos`): a fleet and an open-loop ticket load against two
//! dispatchers and two gateways, each its own process, on a Redis primary with a replica and
//! three Sentinels (`REDIS_URL=redis+sentinel://…`, `REDIS_MIN_REPLICAS=1`) and a PostgreSQL of
//! its own; it injects one fault after another under load and checks what API.md promises.
//!
//! Each phase runs the load for a few seconds, injects its fault, heals it (a killed service is
//! restarted as a supervisor would, a frozen one thawed) and watches for 12 s more. At the end
//! the load stops, every ticket finishes, the agents go offline and the ledger catches up. Per
//! phase it prints: the tickets answered 201 while it ran; how many of them are lost (unknown
//! at the end, or not completed); doubled (assigned to two agents); the recovery time (from
//! the fault's end until a ticket posted after it is offered); and the agents that stayed
//! connected yet got no offer within 10 s of the fault's end. Then the ledger: every shift
//! closed, no agent's shifts overlapping (no second paid twice), one completion per completed
//! ticket, no gap. Exit status 0 when every figure that must be zero is.
//!
//! `chaos [--quick] [--agents N] [--rate R] [--only <part of a fault's name>]` (the services' binaries are taken from the folder
//! of this one; `deploy/chaos` builds them).

mod fleet;
mod procs;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use e2e::redis_server::{redis_command, Replicated};
use fleet::{agent_id, Fleet};
use futures_util::StreamExt;
use procs::{signal, Postgres, Service};
use serde_json::Value;
use tokio::time::Instant;

/// What is done to the system in one phase.
#[derive(Debug, Clone, Copy)]
enum Fault {
    KillDispatcher(usize),
    KillGateway(usize),
    FreezeGateway(u64),
    FreezeDispatcher(u64),
    PrimaryKilled,
    RestartFromAof,
    Outage(u64),
    PubsubKilled,
    PostgresDown(u64),
    StopsReading(u64),
}

impl Fault {
    fn name(self) -> String {
        match self {
            Self::KillDispatcher(i) => format!("kill -9 dispatcher-{}", i + 1),
            Self::KillGateway(i) => format!("kill -9 gateway-{}", i + 1),
            Self::FreezeGateway(s) => format!("SIGSTOP gateway-1 {s} s"),
            Self::FreezeDispatcher(s) => format!("SIGSTOP dispatcher-1 {s} s"),
            Self::PrimaryKilled => "Redis primary killed (failover)".into(),
            Self::RestartFromAof => "Redis restarted from its AOF".into(),
            Self::Outage(s) => format!("Redis outage {s} s"),
            Self::PubsubKilled => "CLIENT KILL TYPE pubsub".into(),
            Self::PostgresDown(s) => format!("PostgreSQL stopped {s} s"),
            Self::StopsReading(s) => format!("an agent stops reading {s} s"),
        }
    }
}

/// The offer timeout the services run with (a frozen dispatcher is frozen past it).
const OFFER_TIMEOUT_SECS: u64 = 10;

fn faults(quick: bool) -> Vec<Fault> {
    use Fault::*;
    if quick {
        return vec![
            KillGateway(0),
            KillDispatcher(0),
            PrimaryKilled,
            PubsubKilled,
            FreezeGateway(5),
            PostgresDown(5),
        ];
    }
    vec![
        KillDispatcher(0),
        KillDispatcher(1),
        KillGateway(0),
        KillGateway(1),
        FreezeGateway(20),
        FreezeDispatcher(OFFER_TIMEOUT_SECS + 5),
        PrimaryKilled,
        RestartFromAof,
        Outage(30),
        PubsubKilled,
        PostgresDown(60),
        StopsReading(40),
    ]
}

/// Everything the suite runs.
struct World {
    dispatchers: Vec<Service>,
    gateways: Vec<Service>,
    redis: Replicated,
    pg: Postgres,
    fleet: Arc<Fleet>,
}

/// One phase's times.
struct Phase {
    fault: Fault,
    start: Instant,
    healed: Instant,
    end: Instant,
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).cloned()
}

fn number(name: &str, default: f64) -> f64 {
    arg(name).map_or(default, |v| {
        v.parse().unwrap_or_else(|_| {
            eprintln!("chaos: {name} takes a number, not {v:?}");
            std::process::exit(2)
        })
    })
}

fn say(what: &str) {
    eprintln!("[chaos] {what}");
}

#[tokio::main]
async fn main() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    // Interrupted, the run is dropped: every process it started is stopped on the way out.
    let passed = tokio::select! {
        passed = run() => passed,
        _ = tokio::signal::ctrl_c() => false,
        _ = term.recv() => false,
    };
    if !passed {
        std::process::exit(1);
    }
}

/// The whole run; whether every figure that must be zero is.
async fn run() -> bool {
    let quick = std::env::args().any(|a| a == "--quick");
    let agents = number("--agents", if quick { 20.0 } else { 200.0 }) as usize;
    let rate = number("--rate", if quick { 5.0 } else { 50.0 });
    let bin_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .expect("the folder of this binary");
    let logs = std::env::temp_dir().join(format!("chaos-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("a folder for the services' logs");

    say("starting Redis (primary, replica, three Sentinels) and PostgreSQL");
    let redis = Replicated::start(&["--appendonly", "yes"]).await;
    let pg = Postgres::start();
    let namespace = format!("chaos-{}", uuid::Uuid::new_v4().simple());
    let env: Vec<(String, String)> = [
        ("REDIS_URL", redis.url()),
        ("REDIS_MIN_REPLICAS", "1".into()),
        ("DATABASE_URL", pg.url()),
        ("DISPATCH_NAMESPACE", namespace.clone()),
        ("JWT_SECRET", e2e::SECRET.into()),
        ("OFFER_TIMEOUT_SECS", OFFER_TIMEOUT_SECS.to_string()),
        ("RUST_LOG", "info".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let start = |name: &str, binary: &str| Service::start(name, &bin_dir.join(binary), &env, &logs);
    let dispatchers = vec![
        start("dispatcher-1", "dispatcher"),
        start("dispatcher-2", "dispatcher"),
    ];
    let gateways = vec![
        start("gateway-1", "agent-app-api"),
        start("gateway-2", "agent-app-api"),
    ];
    let bases = |s: &[Service]| s.iter().map(|s| s.base.clone()).collect::<Vec<_>>();
    let fleet = Fleet::new(agents, bases(&gateways), bases(&dispatchers));
    let mut world = World {
        dispatchers,
        gateways,
        redis,
        pg,
        fleet,
    };
    say(&format!("services' logs in {}", logs.display()));
    wait_ready(&world).await;
    put_roster(&world, agents).await;
    for i in 0..agents {
        tokio::spawn(world.fleet.clone().agent(i));
    }
    let began = Instant::now();
    while world.fleet.connected.load(Ordering::Relaxed) < agents {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "the fleet never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    say(&format!(
        "{agents} agents online; posting {rate} tickets a second"
    ));
    tokio::spawn(world.fleet.clone().load(rate));

    let only = arg("--only");
    let chosen: Vec<Fault> = faults(quick)
        .into_iter()
        .filter(|f| only.as_deref().is_none_or(|o| f.name().contains(o)))
        .collect();
    let mut phases = Vec::new();
    for fault in chosen {
        settle(&world.fleet).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let start = Instant::now();
        say(&format!("fault: {}", fault.name()));
        let healed = inject(&mut world, fault).await;
        tokio::time::sleep(Duration::from_secs(12)).await;
        phases.push(Phase {
            fault,
            start,
            healed,
            end: Instant::now(),
        });
    }
    let ended = Instant::now();
    let report = finish(&world, &phases, &namespace, began, ended).await;
    println!("{report}");
    for service in world
        .dispatchers
        .iter_mut()
        .chain(world.gateways.iter_mut())
    {
        service.stop();
    }
    let passed = !report.contains("FAIL");
    if passed {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        say(&format!(
            "the services' logs are kept in {}",
            logs.display()
        ));
    }
    passed
}

/// What the fleet saw around a phase whose agents went without offers: offers, welcomes and
/// errors, in all and for agent `i`.
fn explain_quiet(rec: &fleet::Record, p: &Phase, i: usize) {
    let window = p.healed + Duration::from_secs(10);
    let since = |t: Instant| format!("{:.2}", t.saturating_duration_since(p.start).as_secs_f64());
    let offers: usize = rec
        .offers
        .iter()
        .map(|o| o.iter().filter(|&&t| t >= p.healed && t < window).count())
        .sum();
    let mut errors: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (t, _, code) in &rec.errors {
        if *t >= p.start && *t < window {
            *errors.entry(code.as_str()).or_default() += 1;
        }
    }
    let welcomes = rec
        .welcomes
        .iter()
        .filter(|(t, _)| *t >= p.start && *t < window)
        .count();
    say(&format!(
        "  healed {} s into the phase; {offers} offers in the 10 s after; since the fault \
         {welcomes} welcomes, errors {errors:?}",
        since(p.healed)
    ));
    let mine = |v: &[Instant]| -> Vec<String> {
        v.iter()
            .filter(|&&t| t >= p.start)
            .take(6)
            .map(|&t| since(t))
            .collect()
    };
    let my_errors: Vec<String> = rec
        .errors
        .iter()
        .filter(|(t, a, _)| *a == i && *t >= p.start)
        .take(6)
        .map(|(t, _, c)| format!("{} {c}", since(*t)))
        .collect();
    let my_welcomes: Vec<Instant> = rec
        .welcomes
        .iter()
        .filter(|(_, a)| *a == i)
        .map(|(t, _)| *t)
        .collect();
    say(&format!(
        "  {}: offers at {:?}, welcomes at {:?}, errors {my_errors:?} (s into the phase)",
        agent_id(i),
        mine(&rec.offers[i]),
        mine(&my_welcomes),
    ));
}

/// The index of the agent named first.
fn quiet_id(ids: &[String]) -> usize {
    ids[0].trim_start_matches("c-").parse().unwrap_or(0)
}

/// Waits (at most 2 minutes) until the last fault's backlog is gone: every ticket posted more
/// than a second ago has been offered, so that each phase starts from the steady state.
async fn settle(fleet: &Fleet) {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(120) {
        let behind = {
            let rec = fleet
                .record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let second_ago = Instant::now() - Duration::from_secs(1);
            rec.posted
                .iter()
                .filter(|(id, &at)| at < second_ago && !rec.offered.contains_key(id.as_str()))
                .count()
        };
        if behind == 0 && !fleet.backlogged() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    say("the backlog did not clear within 2 minutes");
}

/// Waits until every service's `/readyz` is 200.
async fn wait_ready(world: &World) {
    let http = reqwest::Client::new();
    let began = Instant::now();
    for s in world.dispatchers.iter().chain(&world.gateways) {
        loop {
            let ok = http
                .get(format!("{}/readyz", s.base))
                .send()
                .await
                .is_ok_and(|a| a.status() == 200);
            if ok {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "{} never ready",
                s.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn put_roster(world: &World, agents: usize) {
    let http = reqwest::Client::new();
    let token = e2e::token("admin", "chaos");
    let base = &world.dispatchers[0].base;
    for i in 0..agents {
        let a = http
            .put(format!("{base}/v1/agents/{}", agent_id(i)))
            .bearer_auth(&token)
            .json(&e2e::profile(&["en"], serde_json::json!({}), 1))
            .send()
            .await
            .expect("PUT /v1/agents");
        assert!(a.status().is_success(), "PUT /v1/agents: {}", a.status());
    }
}

/// Injects `fault` and heals it; returns when it ended.
async fn inject(world: &mut World, fault: Fault) -> Instant {
    let sleep = |s: u64| tokio::time::sleep(Duration::from_secs(s));
    match fault {
        Fault::KillDispatcher(i) | Fault::KillGateway(i) => {
            let service = match fault {
                Fault::KillDispatcher(_) => &mut world.dispatchers[i],
                _ => &mut world.gateways[i],
            };
            service.kill();
            sleep(1).await;
            service.spawn();
        }
        Fault::FreezeGateway(s) | Fault::FreezeDispatcher(s) => {
            let pid = match fault {
                Fault::FreezeGateway(_) => world.gateways[0].pid(),
                _ => world.dispatchers[0].pid(),
            };
            signal(pid, "STOP");
            sleep(s).await;
            signal(pid, "CONT");
        }
        Fault::PrimaryKilled => {
            let old = world.redis.primary_port().await;
            world.redis.roles().await.0.kill();
            let took = world
                .redis
                .wait_failed_over(old, Duration::from_secs(60))
                .await;
            say(&format!("the Sentinels promoted the replica in {took:?}"));
            let healed = Instant::now();
            // Back, it rejoins as a replica (the one REDIS_MIN_REPLICAS=1 waits for).
            let killed = world.redis.roles().await.1;
            killed.spawn();
            killed.wait_ready().await;
            return healed;
        }
        Fault::RestartFromAof => {
            let primary = world.redis.roles().await.0;
            primary.kill();
            primary.spawn();
            primary.wait_ready().await;
        }
        Fault::Outage(s) => {
            for server in &world.redis.servers {
                server.signal("STOP");
            }
            sleep(s).await;
            for server in &world.redis.servers {
                server.signal("CONT");
            }
        }
        Fault::PubsubKilled => {
            let port = world.redis.primary_port().await;
            let url = format!("redis://127.0.0.1:{port}");
            redis_command(&url, &["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        }
        Fault::PostgresDown(s) => {
            world.pg.halt();
            sleep(s).await;
            world.pg.run();
        }
        Fault::StopsReading(s) => {
            world.fleet.mute(0, true);
            sleep(s).await;
            world.fleet.mute(0, false);
        }
    }
    Instant::now()
}

/// Stops the load, lets everything finish, and checks; the report to print.
async fn finish(
    world: &World,
    phases: &[Phase],
    ns: &str,
    began: Instant,
    ended: Instant,
) -> String {
    world.fleet.stop_load();
    say("load stopped; waiting for every ticket to finish");
    let finals = drain(world).await;
    world.fleet.stop();
    let left = Instant::now();
    while world.fleet.connected.load(Ordering::Relaxed) > 0
        && left.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let completed = finals
        .values()
        .filter(|s| s.as_str() == "completed")
        .count();
    say("waiting for the ledger to store every shift and completion");
    let q = |sql: &str| world.pg.query(&sql.replace("$NS", ns));
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(90) {
        let open = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND ended_at IS NULL");
        let done = q("SELECT count(*) FROM ticket_completions WHERE namespace = '$NS'");
        if open == "0" && done == completed.to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Taken last: the agents' tasks take it too, and no await may follow.
    let rec = world
        .fleet
        .record
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = String::new();
    let mut fail = false;
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    line(format!(
        "{:<34} {:>7} {:>5} {:>7} {:>9} {:>12}",
        "fault", "tickets", "lost", "doubled", "recovery", "quiet agents"
    ));
    for p in phases {
        let tickets: Vec<&String> = rec
            .posted
            .iter()
            .filter(|(_, &at)| at >= p.start && at < p.end)
            .map(|(id, _)| id)
            .collect();
        let lost = tickets
            .iter()
            .filter(|id| finals.get(id.as_str()).is_none_or(|s| s != "completed"))
            .count();
        let doubled = tickets
            .iter()
            .filter(|id| rec.assigned.get(id.as_str()).is_some_and(|a| a.len() > 1))
            .count();
        let recovery = rec
            .offered
            .iter()
            .filter(|(id, &at)| {
                at >= p.healed && rec.posted.get(id.as_str()).is_some_and(|&t| t >= p.healed)
            })
            .map(|(_, &at)| at - p.healed)
            .min();
        let window = p.healed + Duration::from_secs(10);
        let quiet = (0..rec.offers.len())
            .filter(|&i| !matches!(p.fault, Fault::StopsReading(_)) || i != 0)
            .filter(|&i| !rec.dropped[i].iter().any(|&d| d >= p.start && d < window))
            .filter(|&i| !rec.offers[i].iter().any(|&o| o >= p.healed && o < window))
            .collect::<Vec<_>>();
        let quiet_ids: Vec<String> = quiet.iter().take(5).map(|&i| agent_id(i)).collect();
        let quiet = quiet.len();
        if quiet > 0 {
            say(&format!(
                "{}: no offer within 10 s for {quiet} agents, e.g. {quiet_ids:?}",
                p.fault.name()
            ));
            explain_quiet(&rec, p, quiet_id(&quiet_ids));
        }
        fail |= lost > 0 || doubled > 0 || quiet > 0;
        line(format!(
            "{:<34} {:>7} {:>5} {:>7} {:>9} {:>12}",
            p.fault.name(),
            tickets.len(),
            lost,
            doubled,
            recovery.map_or("none".into(), |r| format!("{:.2} s", r.as_secs_f64())),
            quiet
        ));
    }
    let unknown = finals.values().filter(|s| s.as_str() == "404").count();
    let overlap = q("SELECT coalesce(sum(extract(epoch FROM least(a.ended_at, b.ended_at) - greatest(a.started_at, b.started_at))), 0)::float8 \
         FROM shifts a JOIN shifts b ON a.namespace = b.namespace AND a.agent_id = b.agent_id AND a.shift_id < b.shift_id \
         WHERE a.namespace = '$NS' AND a.started_at < b.ended_at AND b.started_at < a.ended_at");
    let open = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND ended_at IS NULL");
    let recovered = q("SELECT count(*) FROM shifts WHERE namespace = '$NS' AND recovered");
    let shifts = q("SELECT count(*) FROM shifts WHERE namespace = '$NS'");
    let too_long = q(&format!(
        "SELECT count(*) FROM (SELECT agent_id FROM shifts WHERE namespace = '$NS' GROUP BY agent_id \
         HAVING sum(extract(epoch FROM ended_at - started_at)) > {}) t",
        (ended - began).as_secs() + 120
    ));
    let completions = q("SELECT count(*) FROM ticket_completions WHERE namespace = '$NS'");
    let gaps = q("SELECT count(*) FROM ledger_gaps WHERE namespace = '$NS'");
    let posted = rec.posted.len();
    let doubled_all = rec.assigned.values().filter(|a| a.len() > 1).count();
    fail |= unknown > 0 || completed != posted || doubled_all > 0 || !rec.refused.is_empty();
    // Unrounded: a double-paid millisecond fails too.
    fail |= overlap.parse::<f64>().map_or(true, |o| o > 0.0)
        || open != "0"
        || too_long != "0"
        || completions != completed.to_string()
        || gaps != "0";
    line(String::new());
    line(format!(
        "tickets answered 201: {posted}; completed: {completed}; unknown at the end: {unknown}; \
         assigned to two agents: {doubled_all}; POSTs given up: {}",
        rec.refused.len()
    ));
    line(format!(
        "ledger: {shifts} shifts ({recovered} recovered), open: {open}, seconds paid twice: {overlap}, \
         agents with more shift time than the run: {too_long}, completions: {completions} (tickets completed: {completed}), gaps: {gaps}"
    ));
    line(if fail { "FAIL".into() } else { "PASS".into() });
    out
}

/// Waits (at most 3 minutes) until every ticket answered 201 is completed; the last status of
/// each (`404` for one unknown).
async fn drain(world: &World) -> std::collections::HashMap<String, String> {
    let http = reqwest::Client::new();
    let token = e2e::token("escalation", "chaos");
    let base = world.dispatchers[1].base.clone();
    let mut finals = std::collections::HashMap::new();
    let began = Instant::now();
    // POSTs still retrying finish within their two minutes.
    while world.fleet.posting() && began.elapsed() < Duration::from_secs(130) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let ids: Vec<String> = {
            let rec = world
                .fleet
                .record
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rec.posted.keys().cloned().collect()
        };
        let pending: Vec<String> = ids
            .into_iter()
            .filter(|id| finals.get(id).is_none_or(|s: &String| s != "completed"))
            .collect();
        let answers: Vec<(String, String)> = futures_util::stream::iter(pending)
            .map(|id| {
                let (http, token, base) = (&http, &token, &base);
                async move {
                    let a = http
                        .get(format!("{base}/v1/tickets/{id}"))
                        .bearer_auth(token)
                        .send()
                        .await;
                    let status = match a {
                        Ok(a) if a.status() == 404 => "404".to_owned(),
                        Ok(a) => a
                            .json::<Value>()
                            .await
                            .ok()
                            .and_then(|v| v["status"].as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        Err(_) => String::new(),
                    };
                    (id, status)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let open: HashSet<&str> = answers
            .iter()
            .filter(|(_, s)| s != "completed")
            .map(|(id, _)| id.as_str())
            .collect();
        let done = open.is_empty();
        finals.extend(answers);
        if done || began.elapsed() > Duration::from_secs(180) {
            return finals;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
