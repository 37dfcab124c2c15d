//! The faults the suite injects, and how each is done and healed.

use std::time::Duration;

use e2e::redis_server::redis_command;
use tokio::time::Instant;

use super::procs::signal;
use super::{say, World};

/// What is done to the system in one phase.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
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
    pub fn name(self) -> String {
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
pub const OFFER_TIMEOUT_SECS: u64 = 10;

pub fn faults(quick: bool) -> Vec<Fault> {
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

/// Injects `fault` and heals it; returns when it ended.
pub async fn inject(world: &mut World, fault: Fault) -> Instant {
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
