//! Counting the commands Redis executes, from `INFO commandstats`: every command the server ran,
//! those run inside functions included, by name. The counts are the whole server's, so a
//! measurement that must not see other clients' commands runs on a [`PrivateRedis`].

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Calls per command name (`hset`, `fcall`, `config|resetstat`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calls(pub BTreeMap<String, u64>);

impl Calls {
    /// The server's counts now.
    pub async fn read(conn: &mut impl redis::aio::ConnectionLike) -> redis::RedisResult<Self> {
        Ok(Self::read_with_usec(conn).await?.0)
    }

    /// The server's counts and microseconds (as [`Calls::parse_usec`]) now, from one `INFO`.
    pub async fn read_with_usec(
        conn: &mut impl redis::aio::ConnectionLike,
    ) -> redis::RedisResult<(Self, Self)> {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await?;
        Ok((Self::parse(&info), Self::parse_usec(&info)))
    }

    /// Parses `INFO commandstats` (`cmdstat_hset:calls=3,usec=...`).
    pub fn parse(info: &str) -> Self {
        Self::parse_field(info, "calls")
    }

    /// The microseconds the server spent in each command, from the same `INFO commandstats`
    /// (an `fcall`'s include those of the commands its function ran).
    pub fn parse_usec(info: &str) -> Self {
        Self::parse_field(info, "usec")
    }

    /// Field `field` of every command's line, by command name.
    fn parse_field(info: &str, field: &str) -> Self {
        let prefix = format!("{field}=");
        Self(
            info.lines()
                .filter_map(|l| l.strip_prefix("cmdstat_"))
                .filter_map(|l| {
                    let (name, rest) = l.split_once(':')?;
                    let n = rest
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(prefix.as_str()))?
                        .parse()
                        .ok()?;
                    Some((name.to_owned(), n))
                })
                .collect(),
        )
    }

    /// What ran between `before` and `self`, leaving out the `INFO` that read `self`.
    pub fn since(&self, before: &Calls) -> Calls {
        let mut out = BTreeMap::new();
        for (name, &n) in &self.0 {
            let mut d = n.saturating_sub(before.0.get(name).copied().unwrap_or(0));
            if name == "info" {
                d = d.saturating_sub(1);
            }
            if d > 0 {
                out.insert(name.clone(), d);
            }
        }
        Calls(out)
    }

    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &Calls) {
        for (name, n) in &other.0 {
            *self.0.entry(name.clone()).or_default() += n;
        }
    }

    /// All calls.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `hset 3, fcall 1, ...`, most called first, each divided by `per`.
    pub fn describe(&self, per: u64) -> String {
        let mut all: Vec<(&String, &u64)> = self.0.iter().collect();
        all.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        all.iter()
            .map(|(name, n)| format!("{name} {:.1}", **n as f64 / per.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A Redis server of its own on a free loopback port, with no persistence, for measurements
/// that must not count other clients' commands; stopped when dropped. Needs `redis-server`
/// on the `PATH` (`deploy/lib.sh` installs it).
pub struct PrivateRedis {
    child: Child,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl PrivateRedis {
    /// Starts it and waits until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir", "/tmp"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts (deploy/lib.sh installs it)");
        let me = Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        let client = redis::Client::open(me.url.as_str()).expect("a Redis URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return me;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the private redis-server on port {port} did not answer"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commandstats_parse_and_subtract() {
        let before = Calls::parse("# Commandstats\r\ncmdstat_hset:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\ncmdstat_info:calls=1,usec=1\r\n");
        let after = Calls::parse("cmdstat_hset:calls=5,usec=9\r\ncmdstat_info:calls=2,usec=1\r\ncmdstat_config|resetstat:calls=1,usec=1\r\n");
        let d = after.since(&before);
        assert_eq!(d.0.get("hset"), Some(&2));
        assert_eq!(d.0.get("info"), None);
        assert_eq!(d.total(), 3);
        assert_eq!(d.describe(1), "hset 2.0, config|resetstat 1.0");
    }
}
