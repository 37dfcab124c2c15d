//! Where a store's commands go: one Redis named by its URL, whichever primary the Sentinels of
//! a `redis+sentinel://` URL name now, or the primary that owns the namespace's slot on a
//! `redis+cluster://` URL (API.md §11), followed through failovers.
//!
//! A [`Primary`] knows the current primary's client and counts how often it changed (its
//! epoch). Each [`Link`] (the store's connection, and each one made by `with_own_connection`)
//! keeps a lazily reconnecting manager built for one epoch and builds a new one when the epoch
//! moves. With Sentinels or a cluster, a task asks them every [`RECHECK`] which primary it is,
//! and at once when a command fails the way a demoted or dead primary fails (`READONLY`,
//! refused, dropped, `CLUSTERDOWN`). A cluster's `MOVED` (the namespace's slot went to another
//! shard) is followed at once and the command sent again there: the node that answered `MOVED`
//! did not run it. [`Conn`] is what callers hold: it finds the link's manager per command, so a
//! loop that keeps a connection for hours still follows a failover.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use std::future::Future;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::{watch, Notify};

pub use super::address::Address;
use super::cluster::Shard;

/// How often the Sentinels are asked which primary they name, when nothing failed meanwhile.
pub const RECHECK: Duration = Duration::from_secs(1);
/// How long one question to the Sentinels (or the cluster's nodes) may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);

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
    follower: Option<Follower>,
}

struct Follower {
    source: Source,
    /// Whether it was asked once (whatever the answer).
    asked: watch::Sender<bool>,
    /// Ask now: a command failed as on a demoted or dead primary.
    wake: Notify,
    started: AtomicBool,
}

/// Who is asked which server is the primary.
enum Source {
    Sentinel {
        client: Box<tokio::sync::Mutex<SentinelClient>>,
        master: String,
    },
    Cluster(Shard),
}

impl Source {
    /// Which primary, for logs: the Sentinels' master name or the cluster's slot.
    fn label(&self) -> String {
        match self {
            Self::Sentinel { master, .. } => master.clone(),
            Self::Cluster(shard) => shard.label(),
        }
    }

    async fn ask(&self) -> Result<redis::Client, String> {
        match self {
            Self::Sentinel { client, .. } => {
                let mut client = client.lock().await;
                client.async_get_client().await.map_err(|e| e.to_string())
            }
            Self::Cluster(shard) => shard.owner().await,
        }
    }
}

impl Primary {
    /// The primary of `address`; on a cluster, the one owning `slot`.
    pub(crate) fn open(address: &Address, slot: u16) -> RedisResult<Arc<Self>> {
        let (current, source) = match address {
            Address::Direct(url) => (Some(redis::Client::open(url.as_str())?), None),
            Address::Cluster { nodes, userinfo } => (
                None,
                Some(Source::Cluster(Shard::new(
                    nodes,
                    userinfo.as_deref(),
                    slot,
                ))),
            ),
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
                let source = Source::Sentinel {
                    client: Box::new(tokio::sync::Mutex::new(client)),
                    master: master.clone(),
                };
                (None, Some(source))
            }
        };
        Ok(Arc::new(Self {
            current: RwLock::new(current),
            epoch: AtomicU64::new(0),
            changes: watch::channel(0).0,
            follower: source.map(|source| Follower {
                source,
                asked: watch::channel(false).0,
                wake: Notify::new(),
                started: AtomicBool::new(false),
            }),
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
                    "the primary is not known yet (no Sentinel or cluster node has named it)",
                ))
            })
    }

    /// Waits (at most [`ASK_TIMEOUT`]) until the Sentinels or the cluster were first asked: a
    /// store's first commands, sent before that, wait for the answer rather than fail.
    pub(crate) async fn asked(self: &Arc<Self>) {
        let Some(follower) = &self.follower else {
            return;
        };
        // Every command comes through here: once asked, nothing more to do.
        if *follower.asked.borrow() {
            return;
        }
        self.follow();
        let mut asked = follower.asked.subscribe();
        let _ = tokio::time::timeout(ASK_TIMEOUT, asked.wait_for(|asked| *asked)).await;
    }

    /// How many times the primary changed.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Changes of the primary (a failover followed).
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Told of every failed command: one that a demoted or unreachable primary would fail (or,
    /// on a cluster, a slot that moved or a shard that is down) has the primary asked for again
    /// at once.
    pub(crate) fn failed(&self, e: &RedisError) {
        let Some(follower) = &self.follower else {
            return;
        };
        if e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout()
            || matches!(
                e.code(),
                Some(
                    "READONLY"
                        | "MASTERDOWN"
                        | "LOADING"
                        | "MOVED"
                        | "ASK"
                        | "CLUSTERDOWN"
                        | "TRYAGAIN"
                )
            )
        {
            follower.wake.notify_one();
        }
    }

    /// On a cluster, a `MOVED` reply names the node that owns the namespace's slot now: it is
    /// followed at once. True if the command should be sent again (to that node).
    fn moved(&self, e: &RedisError) -> bool {
        let Some(Source::Cluster(shard)) = self.follower.as_ref().map(|f| &f.source) else {
            return false;
        };
        let Some((node, _)) = e.redirect_node().filter(|_| e.code() == Some("MOVED")) else {
            return false;
        };
        match shard.client(node) {
            Ok(client) => {
                self.found(client, &shard.label());
                true
            }
            Err(_) => false,
        }
    }

    fn follow(self: &Arc<Self>) {
        let Some(follower) = &self.follower else {
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

    /// Records the primary found (named by the Sentinels, or owning the slot), if it is a
    /// different server.
    fn found(&self, client: redis::Client, of: &str) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let address = client.get_connection_info().addr().clone();
        if current
            .as_ref()
            .is_some_and(|c| *c.get_connection_info().addr() == address)
        {
            return;
        }
        match &*current {
            None => tracing::info!(%address, of, "found the primary"),
            Some(old) => tracing::warn!(
                from = %old.get_connection_info().addr(),
                to = %address,
                of,
                "failover: a new primary; following it"
            ),
        }
        *current = Some(client);
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        drop(current);
        self.changes.send_replace(epoch);
    }
}

/// Asks the Sentinels (or the cluster's nodes) which server is the primary, every [`RECHECK`]
/// and whenever a command failed as on a lost primary (at most every 100 ms), until every store
/// of this primary is dropped (then within one [`RECHECK`]).
async fn follow(primary: Weak<Primary>) {
    let mut complained = false;
    loop {
        let Some(me) = primary.upgrade() else { return };
        let Some(follower) = &me.follower else { return };
        let of = follower.source.label();
        let answer = tokio::time::timeout(ASK_TIMEOUT, follower.source.ask()).await;
        if let Ok(Ok(client)) = &answer {
            me.found(client.clone(), &of);
        }
        follower
            .asked
            .send_if_modified(|asked| !std::mem::replace(asked, true));
        match answer {
            Ok(Ok(_)) => complained = false,
            Ok(Err(error)) if !complained => {
                complained = true;
                tracing::warn!(%error, of, "no primary that answers is named");
            }
            Err(_) if !complained => {
                complained = true;
                tracing::warn!(of, "asked which server is the primary: no answer in time");
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

    /// Sends with `send` on the current primary's manager; after a `MOVED`, once more on the
    /// node it names. Failures, and the server's errors among the replies (`refusal` finds
    /// them: the manager hands those over as values), tell the primary's follower.
    async fn send<T, F, Fut>(
        &self,
        send: F,
        refusal: fn(&T) -> Option<RedisError>,
    ) -> RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.primary.asked().await;
        let failure = |answer: &RedisResult<T>| match answer {
            Err(e) => Some(e.clone()),
            Ok(value) => refusal(value),
        };
        let mut answer = send(self.manager()?).await;
        if let Some(e) = failure(&answer) {
            if self.primary.moved(&e) {
                answer = send(self.manager()?).await;
            }
        }
        if let Some(e) = failure(&answer) {
            self.primary.failed(&e);
        }
        answer
    }
}

/// The server's error, if `value` is one.
fn refused(value: &Value) -> Option<RedisError> {
    match value {
        Value::ServerError(e) => Some(e.clone().into()),
        _ => None,
    }
}

/// The server's error in a pipeline's first reply. A `MOVED` there means no command with a key
/// ran (they run in order, all in the namespace's slot), so the pipeline may be sent again; one
/// further on could follow commands that did.
#[allow(clippy::ptr_arg)] // the type of the pipeline's replies
fn refused_first(values: &Vec<Value>) -> Option<RedisError> {
    values.first().and_then(refused)
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
        let send = move |mut manager: ConnectionManager| async move {
            manager.req_packed_command(cmd).await
        };
        Box::pin(self.link.send(send, refused))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(
            self.link.send(
                move |mut manager| async move {
                    manager.req_packed_commands(pipeline, offset, count).await
                },
                refused_first,
            ),
        )
    }

    fn get_db(&self) -> i64 {
        self.link.manager().map_or(0, |manager| manager.get_db())
    }
}
