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

mod faults;
mod fleet;
mod procs;
mod report;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use e2e::redis_server::Replicated;
use faults::{faults, inject, Fault, OFFER_TIMEOUT_SECS};
use fleet::{agent_id, Fleet};
use procs::{Postgres, Service};
use report::{finish, Phase};
use tokio::time::Instant;

/// Everything the suite runs.
struct World {
    dispatchers: Vec<Service>,
    gateways: Vec<Service>,
    redis: Replicated,
    pg: Postgres,
    fleet: Arc<Fleet>,
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
    if agents == 0 || rate <= 0.0 || !rate.is_finite() {
        eprintln!("chaos: --agents takes a whole number above 0, --rate a number of tickets a second above 0");
        std::process::exit(2);
    }
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
