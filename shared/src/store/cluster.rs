//! A namespace on a Redis Cluster: every key of a namespace carries its `{namespace}` hash tag,
//! so the whole namespace is one hash slot, owned by one shard's primary at a time. A [`Shard`]
//! finds that primary by asking the nodes (`CLUSTER SLOTS`), and is asked again when the link
//! follows a failover or a `MOVED` reply (a slot moved to another shard).
//!
//! Why not the redis crate's cluster client: it routes each command by its own key, and the
//! commands without one (`WAIT`, `FUNCTION LOAD`, `PING`, the subscriptions) to any node,
//! while every command of a namespace, and the `WAIT` that vouches for its writes, belongs on
//! the one node of its slot. Following that node the way a Sentinel's primary is followed
//! keeps one path for all three deployments (see `link.rs`).

use std::sync::Mutex;
use std::time::Duration;

use redis::{FromRedisValue, RedisResult, Value};

/// How long asking one node may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The hash slot of `key` (Redis Cluster's key distribution: CRC16/XMODEM of the key, or of
/// its first non-empty `{…}` tag, modulo 16384).
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16(hashed) % 16384
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One namespace's slot on a cluster, and the nodes to ask who owns it.
pub(crate) struct Shard {
    slot: u16,
    /// `host:port` of the nodes named in the URL, then of those the cluster told of.
    nodes: Mutex<Vec<String>>,
    /// `user:password@` or nothing.
    auth: String,
}

impl Shard {
    pub(crate) fn new(nodes: &[String], userinfo: Option<&str>, slot: u16) -> Self {
        Self {
            slot,
            nodes: Mutex::new(nodes.to_vec()),
            auth: userinfo.map_or(String::new(), |u| format!("{u}@")),
        }
    }

    /// For logs: which slot.
    pub(crate) fn label(&self) -> String {
        format!("slot {}", self.slot)
    }

    /// A client of the node at `address` (`host:port`).
    pub(crate) fn client(&self, address: &str) -> RedisResult<redis::Client> {
        redis::Client::open(format!("redis://{}{address}/", self.auth))
    }

    /// The primary that owns the slot now, as the first node that answers says.
    pub(crate) async fn owner(&self) -> Result<redis::Client, String> {
        let nodes = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut why = String::from("no node is known");
        for node in &nodes {
            match tokio::time::timeout(ASK_TIMEOUT, self.ask(node)).await {
                Ok(Ok(owner)) => return self.client(&owner).map_err(|e| e.to_string()),
                Ok(Err(e)) => why = format!("{node}: {e}"),
                Err(_) => why = format!("{node}: no answer within {ASK_TIMEOUT:?}"),
            }
        }
        Err(why)
    }

    /// Asks `node` which primary owns the slot; remembers the nodes it names.
    async fn ask(&self, node: &str) -> Result<String, String> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(ASK_TIMEOUT))
            .set_response_timeout(Some(ASK_TIMEOUT));
        let mut conn = self
            .client(node)
            .map_err(|e| e.to_string())?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let host = node.rsplit_once(':').map_or(node, |(host, _)| host);
        let ranges = parse_slots(slots, host)?;
        self.learn(ranges.iter().flat_map(|r| r.nodes.iter()));
        ranges
            .into_iter()
            .find(|r| (r.start..=r.end).contains(&self.slot))
            .and_then(|r| r.nodes.into_iter().next())
            .ok_or_else(|| format!("no node owns slot {} (is the cluster whole?)", self.slot))
    }

    fn learn<'a>(&self, seen: impl Iterator<Item = &'a String>) {
        let mut nodes = self
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for node in seen {
            if !nodes.contains(node) {
                nodes.push(node.clone());
            }
        }
    }
}

/// One range of `CLUSTER SLOTS`: its primary first, then its replicas, as `host:port`.
struct Range {
    start: u16,
    end: u16,
    nodes: Vec<String>,
}

/// `CLUSTER SLOTS` read; a node announced without an address is on `asked_host`.
fn parse_slots(slots: Value, asked_host: &str) -> Result<Vec<Range>, String> {
    let corrupt = |e: redis::ParsingError| format!("CLUSTER SLOTS: {e}");
    let mut ranges = Vec::new();
    for entry in Vec::<Vec<Value>>::from_redis_value(slots).map_err(corrupt)? {
        let mut fields = entry.into_iter();
        let mut bound = || -> Result<u16, String> {
            u16::from_redis_value(fields.next().unwrap_or(Value::Nil)).map_err(corrupt)
        };
        let (start, end) = (bound()?, bound()?);
        let mut nodes = Vec::new();
        for node in fields {
            let mut parts = Vec::<Value>::from_redis_value(node)
                .map_err(corrupt)?
                .into_iter();
            let host =
                String::from_redis_value(parts.next().unwrap_or(Value::Nil)).map_err(corrupt)?;
            let port =
                u16::from_redis_value(parts.next().unwrap_or(Value::Nil)).map_err(corrupt)?;
            let host = if host.is_empty() || host == "?" {
                asked_host
            } else {
                &host
            };
            nodes.push(format!("{host}:{port}"));
        }
        ranges.push(Range { start, end, nodes });
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_are_those_redis_cluster_computes() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.0.
        for (key, want) in [
            ("foo", 12182),
            ("user1000", 3443),
            ("{x}:ch", 16287),
            ("{t-abc}:events", 1950),
            // An empty tag is no tag: the whole key is hashed; so is one never closed.
            ("{}foo", 9500),
            ("foo{}{bar}", 8363),
            ("a{b", 13340),
        ] {
            assert_eq!(slot(key), want, "{key}");
        }
    }
}
