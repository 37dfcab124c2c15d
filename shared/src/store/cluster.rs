//! A namespace on a Redis Cluster: every key of a namespace carries its `{namespace}` hash tag,
//! so the whole namespace is one hash slot, owned by one shard's primary at a time. A [`Shard`]
//! finds that primary by asking every node it knows at once (`CLUSTER NODES`) and trusting the
//! claim with the highest configuration epoch: a node cut off from the others, or a killed
//! primary started again from its `nodes.conf`, still claims the slot with the epoch it had,
//! while the replica promoted in its place claims it with a newer one. It is asked again when
//! the link follows a failover or a `MOVED` reply (a slot moved to another shard).
//!
//! Why not the redis crate's cluster client: it routes each command by its own key, and the
//! commands without one (`WAIT`, `FUNCTION LOAD`, `PING`, the subscriptions) to any node,
//! while every command of a namespace, and the `WAIT` that vouches for its writes, belongs on
//! the one node of its slot. Following that node the way a Sentinel's primary is followed
//! keeps one path for all three deployments (see `link.rs`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::RedisResult;

/// How long asking one node may take (all are asked at once).
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
    /// `host:port` of the nodes named in the URL: always asked.
    seeds: Vec<String>,
    /// Those the last answers named besides (replaced by each round that got an answer, so
    /// nodes that left are forgotten).
    learned: Mutex<Vec<String>>,
    /// `user:password@` or nothing.
    auth: String,
    /// A connection to each node asked, kept between rounds (dropped when it fails).
    conns: Mutex<HashMap<String, MultiplexedConnection>>,
}

/// A node's claim to own the slot, as one node sees the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    address: String,
    epoch: u64,
}

/// What one node said: who owns the slot (if anyone) and which nodes there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct View {
    owner: Option<Claim>,
    nodes: Vec<String>,
}

impl Shard {
    pub(crate) fn new(nodes: &[String], userinfo: Option<&str>, slot: u16) -> Self {
        Self {
            slot,
            seeds: nodes.to_vec(),
            learned: Mutex::new(Vec::new()),
            auth: userinfo.map_or(String::new(), |u| format!("{u}@")),
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn learned(&self) -> MutexGuard<'_, Vec<String>> {
        self.learned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<String, MultiplexedConnection>> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// For logs: which slot.
    pub(crate) fn label(&self) -> String {
        format!("slot {}", self.slot)
    }

    /// A client of the node at `address` (`host:port`; an IPv6 host with or without brackets).
    pub(crate) fn client(&self, address: &str) -> RedisResult<redis::Client> {
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "6379"));
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        redis::Client::open(format!("redis://{}{host}:{port}/", self.auth))
    }

    /// The primary that owns the slot now: every known node is asked at once, and of the
    /// claims they report, the one with the highest configuration epoch wins.
    pub(crate) async fn owner(&self) -> Result<redis::Client, String> {
        let mut nodes = self.seeds.clone();
        for node in self.learned().iter() {
            if !nodes.contains(node) {
                nodes.push(node.clone());
            }
        }
        let answers = futures_util::future::join_all(nodes.iter().map(|node| async move {
            match tokio::time::timeout(ASK_TIMEOUT, self.ask(node)).await {
                Ok(answer) => answer.map_err(|e| format!("{node}: {e}")),
                Err(_) => {
                    // Its kept connection may hang: made again next time.
                    self.conns().remove(node);
                    Err(format!("{node}: no answer within {ASK_TIMEOUT:?}"))
                }
            }
        }))
        .await;
        let Round {
            best,
            seen,
            answered,
            why,
        } = Round::of(answers, self.slot);
        if answered {
            self.conns()
                .retain(|node, _| seen.contains(node) || self.seeds.contains(node));
            *self.learned() = seen;
        }
        match best {
            Some(claim) => self.client(&claim.address).map_err(|e| e.to_string()),
            None => Err(why),
        }
    }

    /// Asks `node` how it sees the cluster, on the connection kept for it (made if none is).
    async fn ask(&self, node: &str) -> Result<View, String> {
        let kept = self.conns().get(node).cloned();
        let mut conn = match kept {
            Some(conn) => conn,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(ASK_TIMEOUT))
                    .set_response_timeout(Some(ASK_TIMEOUT));
                let conn = self
                    .client(node)
                    .map_err(|e| e.to_string())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(|e| e.to_string())?;
                self.conns().insert(node.to_owned(), conn.clone());
                conn
            }
        };
        let text: Result<String, _> = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await;
        let text = text.map_err(|e| {
            self.conns().remove(node);
            e.to_string()
        })?;
        let host = node.rsplit_once(':').map_or(node, |(host, _)| host);
        Ok(parse_nodes(&text, self.slot, host))
    }
}

/// What one round of asking the nodes found.
#[derive(Debug)]
struct Round {
    /// The claim with the highest configuration epoch.
    best: Option<Claim>,
    /// Every node the answers named.
    seen: Vec<String>,
    /// Whether any node answered.
    answered: bool,
    /// Why no owner was found, if none was.
    why: String,
}

impl Round {
    fn of(answers: Vec<Result<View, String>>, slot: u16) -> Self {
        let mut round = Self {
            best: None,
            seen: Vec::new(),
            answered: false,
            why: String::from("no node is known"),
        };
        for answer in answers {
            let view = match answer {
                Ok(view) => view,
                Err(e) => {
                    round.why = e;
                    continue;
                }
            };
            round.answered = true;
            for node in view.nodes {
                if !round.seen.contains(&node) {
                    round.seen.push(node);
                }
            }
            match view.owner {
                Some(claim) if round.best.as_ref().is_none_or(|b| claim.epoch > b.epoch) => {
                    round.best = Some(claim);
                }
                Some(_) => {}
                None => round.why = format!("no node owns slot {slot} (is the cluster whole?)"),
            }
        }
        round
    }
}

/// `CLUSTER NODES` read: each line `<id> <ip:port@cport[,hostname]> <flags> <primary>
/// <ping-sent> <pong-recv> <config-epoch> <link-state> <slot ranges…>`. Nodes without an
/// address or still in the handshake are left out, and a primary flagged `fail` claims nothing;
/// one announced without an address is on `asked_host`.
fn parse_nodes(text: &str, slot: u16, asked_host: &str) -> View {
    let mut view = View::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if flags.iter().any(|f| matches!(*f, "noaddr" | "handshake")) {
            continue;
        }
        let endpoint = fields[1].split(['@', ',']).next().unwrap_or_default();
        let Some((host, port)) = endpoint.rsplit_once(':') else {
            continue;
        };
        if port == "0" {
            continue;
        }
        let host = if host.is_empty() { asked_host } else { host };
        let address = format!("{host}:{port}");
        let owns = flags.contains(&"master")
            && !flags.contains(&"fail")
            && fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                match (start.parse::<u16>(), end.parse::<u16>()) {
                    (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                    // `[slot->-node]`, `[slot-<-node]`: a migration in progress.
                    _ => false,
                }
            });
        if owns {
            let epoch = fields[6].parse().unwrap_or(0);
            view.owner = Some(Claim {
                address: address.clone(),
                epoch,
            });
        }
        view.nodes.push(address);
    }
    view
}

#[cfg(test)]
mod tests {
    use super::{parse_nodes, slot, Claim, Round, Shard, View};

    /// `CLUSTER NODES` of a 3+3 cluster (Redis 7.0), as the node on 7100 answered.
    const NODES: &str = "\
442989cc 127.0.0.1:7103@17103 slave 3c700385 0 1796595597064 3 connected
3c700385 127.0.0.1:7102@17102 master - 0 1796595597064 3 connected 10923-16383
88c633f5 127.0.0.1:7104@17104 slave d89740fb 0 1796595597064 1 connected
7ba79f79 127.0.0.1:7101@17101 master - 0 1796595597165 2 connected 5461-10922
d89740fb 127.0.0.1:7100@17100 myself,master - 0 1796595596000 1 connected 0-5460
ceb553c8 127.0.0.1:7105@17105 slave 7ba79f79 0 1796595597000 2 connected
";

    #[test]
    fn of_the_nodes_claims_the_newest_epoch_wins_whatever_the_order() {
        let view = |address: &str, epoch, nodes: &[&str]| View {
            owner: Some(Claim {
                address: address.into(),
                epoch,
            }),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        };
        // The old primary, cut off, still claims the slot; the promoted replica has a newer epoch.
        let stale = view("a:1", 3, &["a:1", "b:1"]);
        let fresh = view("b:1", 7, &["b:1", "c:1"]);
        for answers in [
            vec![
                Ok(stale.clone()),
                Ok(fresh.clone()),
                Err("c:1: refused".into()),
            ],
            vec![Err("c:1: refused".into()), Ok(fresh), Ok(stale)],
        ] {
            let round = Round::of(answers, 9);
            assert_eq!(round.best.map(|c| c.address).as_deref(), Some("b:1"));
            assert!(round.answered);
            assert_eq!(round.seen.len(), 3, "{:?}", round.seen);
        }
        let none = Round::of(vec![Err("a:1: refused".into())], 9);
        assert!(none.best.is_none() && !none.answered);
        assert_eq!(none.why, "a:1: refused");
        let unowned = Round::of(vec![Ok(View::default())], 9);
        assert!(
            unowned.why.contains("no node owns slot 9"),
            "{}",
            unowned.why
        );
    }

    #[test]
    fn cluster_nodes_name_the_owner_of_a_slot_with_its_epoch() {
        let view = parse_nodes(NODES, 6000, "127.0.0.1");
        let claim = |address: &str, epoch| {
            Some(Claim {
                address: address.into(),
                epoch,
            })
        };
        assert_eq!(view.owner, claim("127.0.0.1:7101", 2));
        assert_eq!(view.nodes.len(), 6);
        assert_eq!(parse_nodes(NODES, 0, "x").owner, claim("127.0.0.1:7100", 1));
        assert_eq!(
            parse_nodes(NODES, 16383, "x").owner,
            claim("127.0.0.1:7102", 3)
        );
        // A failed primary claims nothing; a migrating range, a handshake or no address neither.
        let failed = NODES.replace(
            "master - 0 1796595597165 2",
            "master,fail - 0 1796595597165 2",
        );
        assert_eq!(parse_nodes(&failed, 6000, "x").owner, None);
        let odd = "a :7000@17000 myself,master - 0 0 4 connected 0-100 [101->-b]\n\
                   b 127.0.0.1:0@0 master,noaddr - 0 0 5 connected 101\n\
                   c 127.0.0.1:7009@17009 handshake - 0 0 0 connected\n";
        let view = parse_nodes(odd, 50, "10.0.0.1");
        assert_eq!(view.owner, claim("10.0.0.1:7000", 4));
        assert_eq!(view.nodes, vec!["10.0.0.1:7000".to_owned()]);
        assert_eq!(parse_nodes(odd, 101, "10.0.0.1").owner, None);
        let shard = Shard::new(&[], Some("u:p"), 0);
        for address in ["::1:7000", "[::1]:7000", "10.0.0.1:7000"] {
            let client = shard.client(address).expect(address);
            assert!(client
                .get_connection_info()
                .addr()
                .to_string()
                .ends_with(":7000"));
        }
    }

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
