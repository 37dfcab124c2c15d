//! A private Redis Cluster for the tests: three primaries and three replicas, each a
//! [`RedisServer`] on a free port (its cluster bus on another), created with
//! `redis-cli --cluster create`, and namespaces placed on the shard a test names.

use std::process::Command;
use std::time::Duration;

use tokio::time::Instant;

use crate::redis_server::{free_port, try_redis_command, RedisServer};

/// How long a primary may be silent before the cluster fails it over (`cluster-node-timeout`).
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// Six cluster nodes, killed when dropped.
pub struct Cluster {
    /// The nodes; the first three were created as the primaries.
    pub nodes: Vec<RedisServer>,
}

/// One slot range of `CLUSTER SLOTS`: its primary's port and its replicas'.
#[derive(Debug, Clone)]
pub struct Shard {
    /// The first slot.
    pub start: u16,
    /// The last slot.
    pub end: u16,
    /// The port of its primary.
    pub primary: u16,
    /// The ports of its replicas.
    pub replicas: Vec<u16>,
}

impl Cluster {
    /// Starts the nodes, creates the cluster and waits until every node says it is whole.
    pub async fn start() -> Self {
        let timeout = NODE_TIMEOUT_MS.to_string();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let bus = free_port().to_string();
            let node = RedisServer::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                &timeout,
                "--cluster-port",
                &bus,
                // A killed node started again rejoins from its files (nodes.conf, the AOF).
                "--appendonly",
                "yes",
                // A shard without a primary leaves the others serving their slots.
                "--cluster-require-full-coverage",
                "no",
                // A promoted replica takes writes at once; no replica waits to be "fresh".
                "--cluster-replica-validity-factor",
                "0",
                "--repl-diskless-sync-delay",
                "0",
            ]);
            nodes.push(node);
        }
        for node in &nodes {
            node.wait_ready().await;
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&addresses)
                .args(["--cluster-replicas", "1", "--cluster-yes"])
                .output()
        })
        .await
        .expect("redis-cli ran")
        .expect("redis-cli is installed (Debian's redis-tools)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = Self { nodes };
        cluster.wait_whole(Duration::from_secs(30)).await;
        cluster
    }

    /// `REDIS_URL` for the services: `redis+cluster://` and the first two nodes (the services
    /// learn the others).
    pub fn url(&self) -> String {
        format!(
            "redis+cluster://127.0.0.1:{},127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port
        )
    }

    /// The node on `port`.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// The shards as a running node sees them, by their first slot.
    pub async fn shards(&self) -> Vec<Shard> {
        for node in self.nodes.iter().filter(|n| n.running()) {
            let Ok(slots) = try_redis_command(&node.url(), &["CLUSTER", "SLOTS"]).await else {
                continue;
            };
            let Ok(ranges) = redis::from_redis_value::<Vec<Vec<redis::Value>>>(slots) else {
                continue;
            };
            let mut shards: Vec<Shard> = ranges
                .into_iter()
                .map(|range| {
                    // A node is [ip, port, id, …].
                    let port = |v: &redis::Value| {
                        let parts = redis::from_redis_value::<Vec<redis::Value>>(v.clone())
                            .expect("a node");
                        redis::from_redis_value::<u16>(parts[1].clone()).expect("a port")
                    };
                    let bound = |v: &redis::Value| {
                        redis::from_redis_value::<u16>(v.clone()).expect("a slot")
                    };
                    Shard {
                        start: bound(&range[0]),
                        end: bound(&range[1]),
                        primary: port(&range[2]),
                        replicas: range[3..].iter().map(port).collect(),
                    }
                })
                .collect();
            shards.sort_by_key(|s| s.start);
            return shards;
        }
        panic!("no node of the cluster answers CLUSTER SLOTS");
    }

    /// A fresh namespace whose slot is on shard `index` (of [`Cluster::shards`]).
    pub async fn namespace_on(&self, index: usize) -> String {
        let shard = self.shards().await[index].clone();
        loop {
            let namespace = crate::fresh_namespace();
            let slot = shared::store::slot(shared::keys::Keys::new(&namespace).prefix());
            if (shard.start..=shard.end).contains(&slot) {
                return namespace;
            }
        }
    }

    /// The shard that holds `namespace` now.
    pub async fn shard_of(&self, namespace: &str) -> Shard {
        let slot = shared::store::slot(shared::keys::Keys::new(namespace).prefix());
        self.shards()
            .await
            .into_iter()
            .find(|s| (s.start..=s.end).contains(&slot))
            .expect("every slot is served")
    }

    /// Waits until every running node says `cluster_state:ok`.
    pub async fn wait_whole(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for node in self.nodes.iter().filter(|n| n.running()) {
            loop {
                let info = try_redis_command(&node.url(), &["CLUSTER", "INFO"]).await;
                let ok = info
                    .ok()
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .is_some_and(|i| i.contains("cluster_state:ok"));
                if ok {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} never saw the cluster whole",
                    node.port
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until a node other than `old` is the primary of `namespace`'s shard and every
    /// running node sees the cluster whole; returns how long that took.
    pub async fn wait_promoted(&self, namespace: &str, old: u16, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.shard_of(namespace).await.primary != old {
                self.wait_whole(within.saturating_sub(started.elapsed()))
                    .await;
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "no replica of port {old} promoted within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
