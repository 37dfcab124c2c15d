//! Where a store's commands go: one Redis named by its URL, or whichever primary the Sentinels
//! of a `redis+sentinel://` URL name now (API.md §11), followed through failovers.
//!
//! A [`Primary`] knows the current primary's client and counts how often it changed (its
//! epoch). Each [`Link`] (the store's connection, and each one made by `with_own_connection`)
//! keeps a lazily reconnecting manager built for one epoch and builds a new one when the epoch
//! moves. With Sentinels, a task asks them every [`RECHECK`] which primary they name, and at once
//! when a command fails the way a demoted or dead primary fails (`READONLY`, refused, dropped).
//! [`Conn`] is what callers hold: it finds the link's manager per command, so a loop that keeps
//! a connection for hours still follows a failover.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{watch, Notify};

/// How often the Sentinels are asked which primary they name, when nothing failed meanwhile.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How long one question to the Sentinels may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a store's Redis is, as `REDIS_URL` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// One server: `redis://`, `rediss://`, `redis+unix://` or `unix://`.
    Direct(String),
    /// The primary the Sentinels call `master`:
    /// `redis+sentinel://[user:password@]host:port,host:port/<master>[/<db>]`. The credentials
    /// and database are the Redis servers'; the Sentinels are asked without.
    Sentinel {
        /// `host:port` of each Sentinel (port 26379 where none is given).
        sentinels: Vec<String>,
        /// The name the Sentinels monitor the primary by.
        master: String,
        /// `user:password` for the primary, as written (percent-encoded).
        userinfo: Option<String>,
        /// The database number.
        db: u32,
    },
}

impl Address {
    /// Reads `REDIS_URL`; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, String> {
        if ["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Ok(Self::Direct(url.to_owned()));
        }
        let Some(rest) = url.strip_prefix("redis+sentinel://") else {
            return Err(format!(
                "{url:?} is not a redis://, rediss:// or redis+sentinel:// URL"
            ));
        };
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo.to_owned()), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (name, port) = match host.rsplit_once(':') {
                Some((name, port)) => (
                    name,
                    port.parse::<u16>()
                        .map_err(|_| format!("{host:?}: the port is not a number"))?,
                ),
                None => (host, 26379),
            };
            if name.is_empty() {
                return Err(format!("{host:?}: no host name"));
            }
            sentinels.push(format!("{name}:{port}"));
        }
        if sentinels.is_empty() {
            return Err("a redis+sentinel:// URL names no Sentinel".to_owned());
        }
        let mut path = path.split('/');
        let master = path.next().unwrap_or_default().to_owned();
        if master.is_empty() {
            return Err(
                "a redis+sentinel:// URL ends with /<master-name>, the name the Sentinels monitor"
                    .to_owned(),
            );
        }
        let db = match path.next() {
            None | Some("") => 0,
            Some(db) => db
                .parse()
                .map_err(|_| format!("{db:?} is not a database number"))?,
        };
        if path.next().is_some() {
            return Err("a redis+sentinel:// URL has at most /<master-name>/<db>".to_owned());
        }
        Ok(Self::Sentinel {
            sentinels,
            master,
            userinfo,
            db,
        })
    }
}

/// How every manager connects, answers and reconnects.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// The primary a store talks to now.
pub(crate) struct Primary {
    /// Its client, once known.
    current: RwLock<Option<redis::Client>>,
    /// How many times it changed: links compare theirs with it.
    epoch: AtomicU64,
    /// The same, for those who wait for a change (the push subscription).
    changes: watch::Sender<u64>,
    /// Absent for a direct URL.
    sentinel: Option<Follower>,
}

struct Follower {
    client: tokio::sync::Mutex<SentinelClient>,
    master: String,
    /// Ask now: a command failed as on a demoted or dead primary.
    wake: Notify,
    started: AtomicBool,
}

impl Primary {
    pub(crate) fn open(address: &Address) -> RedisResult<Arc<Self>> {
        let (current, sentinel) = match address {
            Address::Direct(url) => (Some(redis::Client::open(url.as_str())?), None),
            Address::Sentinel {
                sentinels,
                master,
                userinfo,
                db,
            } => {
                let auth = userinfo
                    .as_deref()
                    .map_or(String::new(), |u| format!("{u}@"));
                let node = format!("redis://{auth}localhost/{db}")
                    .into_connection_info()?
                    .redis_settings()
                    .clone();
                let client = SentinelClient::build(
                    sentinels.iter().map(|s| format!("redis://{s}")).collect(),
                    master.clone(),
                    Some(SentinelNodeConnectionInfo::default().set_redis_connection_info(node)),
                    SentinelServerType::Master,
                )?;
                let follower = Follower {
                    client: tokio::sync::Mutex::new(client),
                    master: master.clone(),
                    wake: Notify::new(),
                    started: AtomicBool::new(false),
                };
                (None, Some(follower))
            }
        };
        Ok(Arc::new(Self {
            current: RwLock::new(current),
            epoch: AtomicU64::new(0),
            changes: watch::channel(0).0,
            sentinel,
        }))
    }

    /// The current primary's client; with Sentinels, starts following them on first use.
    pub(crate) fn client(self: &Arc<Self>) -> RedisResult<redis::Client> {
        self.follow();
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "no Sentinel has named the primary yet",
                ))
            })
    }

    /// How many times the primary changed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Changes of the primary (a failover followed).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Told of every failed command: one that a demoted or unreachable primary would fail has
    /// the Sentinels asked again at once.
    pub(crate) fn failed(&self, e: &RedisError) {
        let Some(follower) = &self.sentinel else {
            return;
        };
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
        {
            follower.wake.notify_one();
        }
    }

    fn follow(self: &Arc<Self>) {
        let Some(follower) = &self.sentinel else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if follower.started.swap(true, Ordering::AcqRel) {
            return;
        }
        runtime.spawn(follow(Arc::downgrade(self)));
    }

    /// Records the client Sentinels named, if it is a different server.
    fn found(&self, client: redis::Client, master: &str) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let address = client.get_connection_info().addr().clone();
        if current
            .as_ref()
            .is_some_and(|c| *c.get_connection_info().addr() == address)
        {
            return;
        }
        match &*current {
            None => tracing::info!(%address, master, "Sentinel names the primary"),
            Some(old) => tracing::warn!(
                from = %old.get_connection_info().addr(),
                to = %address,
                master,
                "failover: Sentinel names a new primary; following it"
            ),
        }
        *current = Some(client);
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        drop(current);
        self.changes.send_replace(epoch);
    }
}

/// Asks the Sentinels which primary they name, every [`RECHECK`] and whenever a command failed
/// as on a lost primary (at most every 100 ms), until every store of this primary is dropped
/// (then within one [`RECHECK`]).
async fn follow(primary: Weak<Primary>) {
    let mut complained = false;
    loop {
        let Some(me) = primary.upgrade() else { return };
        let Some(follower) = &me.sentinel else { return };
        let asked = {
            let mut client = follower.client.lock().await;
            tokio::time::timeout(ASK_TIMEOUT, client.async_get_client()).await
        };
        match asked {
            Ok(Ok(client)) => {
                complained = false;
                me.found(client, &follower.master);
            }
            Ok(Err(e)) if !complained => {
                complained = true;
                tracing::warn!(error = %e, master = follower.master, "Sentinels name no primary that answers");
            }
            Err(_) if !complained => {
                complained = true;
                tracing::warn!(master = follower.master, "Sentinels did not answer in time");
            }
            _ => {}
        }
        let known = me
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some();
        let wait = if known {
            RECHECK
        } else {
            Duration::from_millis(250)
        };
        let _ = tokio::time::timeout(wait, follower.wake.notified()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One connection of a store: a reconnecting manager for the primary of one epoch.
pub(crate) struct Link {
    primary: Arc<Primary>,
    manager: Mutex<Option<(u64, ConnectionManager)>>,
}

impl Link {
    pub(crate) fn new(primary: Arc<Primary>) -> Arc<Self> {
        Arc::new(Self {
            primary,
            manager: Mutex::new(None),
        })
    }

    pub(crate) fn primary(&self) -> &Arc<Primary> {
        &self.primary
    }

    /// The manager for the current primary, made (lazily connecting) if the primary changed.
    fn manager(&self) -> RedisResult<ConnectionManager> {
        let epoch = self.primary.epoch.load(Ordering::Acquire);
        let mut slot = self.manager.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((made_for, manager)) = &*slot {
            if *made_for == epoch {
                return Ok(manager.clone());
            }
        }
        let client = self.primary.client()?;
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config())?;
        *slot = Some((epoch, manager.clone()));
        Ok(manager)
    }
}

/// A store's connection as callers hold it: each command goes to the current primary.
#[derive(Clone)]
pub struct Conn {
    link: Arc<Link>,
}

impl Conn {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        Self { link }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut manager = self.link.manager()?;
            let answer = manager.req_packed_command(cmd).await;
            if let Err(e) = &answer {
                self.link.primary.failed(e);
            }
            answer
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut manager = self.link.manager()?;
            let answer = manager.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &answer {
                self.link.primary.failed(e);
            }
            answer
        })
    }

    fn get_db(&self) -> i64 {
        self.link.manager().map_or(0, |manager| manager.get_db())
    }
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn sentinel_urls_are_read_or_refused_with_a_reason() {
        assert_eq!(
            Address::parse("redis+sentinel://a:26380,b/mymaster"),
            Ok(Address::Sentinel {
                sentinels: vec!["a:26380".into(), "b:26379".into()],
                master: "mymaster".into(),
                userinfo: None,
                db: 0,
            })
        );
        assert_eq!(
            Address::parse("redis+sentinel://:p%40ss@a:1/m/3"),
            Ok(Address::Sentinel {
                sentinels: vec!["a:1".into()],
                master: "m".into(),
                userinfo: Some(":p%40ss".into()),
                db: 3,
            })
        );
        assert_eq!(
            Address::parse("redis://x:1/2"),
            Ok(Address::Direct("redis://x:1/2".into()))
        );
        for (url, says) in [
            ("redis+sentinel://a:1", "master-name"),
            ("redis+sentinel:///m", "names no Sentinel"),
            ("redis+sentinel://a:x/m", "port"),
            ("redis+sentinel://a/m/zero", "database"),
            ("http://a", "not a redis://"),
        ] {
            let error = Address::parse(url).expect_err(url);
            assert!(error.contains(says), "{url}: {error}");
        }
    }
}
