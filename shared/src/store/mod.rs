//! The Redis store: multiplexed connections to the current primary ([`link`]), and the function
//! library.
//!
//! Every state transition is a call to a function of the Lua library ([`library`], the files of
//! `src/lua/`): [`Store::call`] makes it and parses the reply into the type the caller names
//! ([`reply`]); [`ops`] has one typed method per function. Reads for the REST views are plain
//! hash reads ([`read`]). The manager is lazy and reconnects by itself, so a service starts and
//! stays up while Redis is away; calls fail with [`StoreError::Unavailable`] meanwhile, which
//! handlers turn into 503s and `error` frames.

mod address;
mod cluster;
mod hooks;
pub mod library;
pub mod link;
mod ops;
mod pushes;
mod read;
pub mod reply;
mod visibility;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{FromRedisValue, Value};
use tokio::sync::watch;

use crate::error::ErrorCode;
use crate::keys::Keys;

pub use cluster::slot;
pub use hooks::{Attempted, Claimed, NewDelivery};
pub use library::{library, library_version, Function};
pub use link::{Address, Conn};
pub use ops::{NewTicketFields, ProfileFields};
pub use pushes::{Message, Subscription};
pub use read::{assigned_frame, pairs, Session};
pub use reply::{
    ConnectReply, CreatedTicket, Expired, Failed, FromReply, GraceEnded, Routed, StatusNow,
    Upserted,
};
pub use visibility::QueueFigures;

/// How often a gateway instance records that it is alive.
pub const GATEWAY_HEARTBEAT: Duration = Duration::from_secs(3);
/// After how long without a heartbeat a gateway's connections count as dropped.
pub const GATEWAY_SILENCE: Duration = Duration::from_secs(15);

/// What can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis cannot be reached; the caller answers 503.
    #[error("redis unavailable: {0}")]
    Unavailable(redis::RedisError),
    /// The transition is not allowed in the current state.
    #[error("rejected: {0}")]
    Rejected(ErrorCode),
    /// Redis answered something we did not expect: a bug or a foreign writer.
    #[error("unexpected reply from redis: {0}")]
    Corrupt(String),
    /// Fewer replicas than `REDIS_MIN_REPLICAS` confirmed a write in time (the caller answers
    /// 503: the write is on the primary, and a failover could lose it).
    #[error("only {acked} of {wanted} replicas confirmed the write within 1 s")]
    NotReplicated {
        /// `REDIS_MIN_REPLICAS`.
        wanted: u32,
        /// How many did.
        acked: u32,
    },
}

/// The codes with which Redis refuses work it may take again soon (API.md §11, "cannot write
/// now"): out of memory, a read-only replica (a demoted primary), a script running too long,
/// loading its data, a replica whose primary is down, fewer replicas than
/// `min-replicas-to-write`, a failed snapshot that stops writes, and Redis Cluster's
/// resharding (`TRYAGAIN`; `ASK` while the namespace's slot migrates; `MOVED` when even the
/// node a `MOVED` named does not own it) and outage.
pub const CANNOT_WRITE_NOW: &[&str] = &[
    "OOM",
    "READONLY",
    "BUSY",
    "LOADING",
    "MASTERDOWN",
    "NOREPLICAS",
    "MISCONF",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "ASK",
    "MOVED",
];

impl From<redis::RedisError> for StoreError {
    /// Connection-level failures and the codes of [`CANNOT_WRITE_NOW`] mean "unavailable";
    /// anything else (a script error, a reply of the wrong type) is a bug, not an outage, and
    /// must not hide behind a 503.
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || e.code()
                .is_some_and(|code| CANNOT_WRITE_NOW.contains(&code))
        {
            Self::Unavailable(e)
        } else {
            Self::Corrupt(library::annotate(&e.to_string()))
        }
    }
}

/// The offer timeout a store makes offers with unless told otherwise (`OFFER_TIMEOUT_SECS`'s
/// default).
pub const DEFAULT_OFFER_TIMEOUT: Duration = Duration::from_secs(20);

/// A handle on one namespace of one Redis; cheap to clone.
#[derive(Clone)]
pub struct Store {
    link: Arc<link::Link>,
    /// Every connection of this store and of those made from it (`with_own_connection`), for
    /// `takes_writes`, which tries each: a readiness probe so also heals each after an outage.
    connections: Arc<Mutex<Vec<Arc<link::Link>>>>,
    keys: Keys,
    /// How long the offers made inside a transition last: a transition that frees an agent
    /// offers it the next waiting ticket in the same atomic step (see `src/lua/matching.lua`).
    offer_timeout: Duration,
    /// How many replicas must hold a write before it is acknowledged (`REDIS_MIN_REPLICAS`).
    min_replicas: u32,
    /// Connections lent out one request at a time by [`Store::exclusive`].
    lendable: Arc<Mutex<Vec<Arc<link::Link>>>>,
    /// On a lent store, the primary's epoch when it was lent ([`Store::replicated`]).
    pinned_epoch: Option<u64>,
}

/// How many idle lendable connections a store keeps.
const LENDABLE_KEPT: usize = 64;

/// A store on a connection no other request shares, for as long as it lives
/// ([`Store::exclusive`]); derefs to the store.
pub struct Exclusive {
    store: Store,
    /// Given back when dropped.
    lent: Option<Arc<link::Link>>,
}

impl std::ops::Deref for Exclusive {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        if let Some(link) = self.lent.take() {
            let mut idle = self
                .store
                .lendable
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if idle.len() < LENDABLE_KEPT {
                idle.push(link);
            }
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store for `namespace` on the Redis at `url` (a [`link::Address`]). Connects lazily:
    /// only a malformed URL fails.
    pub fn open(url: &str, namespace: &str) -> Result<Self, redis::RedisError> {
        let address = Address::parse(url).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "REDIS_URL", e))
        })?;
        let keys = Keys::new(namespace);
        let link = link::Link::new(link::Primary::open(&address, slot(keys.prefix()))?);
        Ok(Self {
            connections: Arc::new(Mutex::new(vec![link.clone()])),
            link,
            keys,
            offer_timeout: DEFAULT_OFFER_TIMEOUT,
            min_replicas: 0,
            lendable: Arc::new(Mutex::new(Vec::new())),
            pinned_epoch: None,
        })
    }

    /// The same store on a multiplexed connection of its own, opened on first use. Its driver
    /// task is spawned on the runtime of that first use, so a store made for each actix worker
    /// (in the `HttpServer` factory) keeps each request's Redis calls on the worker's own
    /// thread: no wake-up of the runtime that drives the shared connection, and back, per call.
    pub fn with_own_connection(&self) -> Self {
        let link = link::Link::new(self.link.primary().clone());
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(link.clone());
        Self {
            link,
            ..self.clone()
        }
    }

    /// The same store, making offers that last `timeout` (`OFFER_TIMEOUT_SECS`).
    pub fn with_offer_timeout(mut self, timeout: Duration) -> Self {
        self.offer_timeout = timeout;
        self
    }

    /// The same store, confirming writes on `n` replicas where [`Store::replicated`] is asked
    /// (`REDIS_MIN_REPLICAS`; 0, the default, confirms nothing).
    pub fn with_min_replicas(mut self, n: u32) -> Self {
        self.min_replicas = n;
        self
    }

    /// This store for one request that will wait for replicas ([`Store::replicated`]): `WAIT`
    /// holds up every command behind it on its connection, for up to a second while replicas
    /// are missing, so such a request borrows a connection of its own (from a pool) rather
    /// than stall the others multiplexed on the shared one. Without `REDIS_MIN_REPLICAS`, the
    /// store itself.
    pub fn exclusive(&self) -> Exclusive {
        if self.min_replicas == 0 {
            return Exclusive {
                store: self.clone(),
                lent: None,
            };
        }
        let idle = self
            .lendable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let link = idle.unwrap_or_else(|| link::Link::new(self.link.primary().clone()));
        Exclusive {
            store: Self {
                link: link.clone(),
                pinned_epoch: Some(self.link.primary().epoch()),
                ..self.clone()
            },
            lent: Some(link),
        }
    }

    /// Waits until `REDIS_MIN_REPLICAS` replicas hold every write made so far on the primary
    /// (`WAIT`), for at most a second; [`StoreError::NotReplicated`] if fewer do, or if the
    /// store followed a failover since [`Store::exclusive`] lent it its connection (the write
    /// may have gone to the old primary: no `WAIT` on the new one can vouch for it).
    /// Redis replication is asynchronous: without this, a failover can lose what the primary
    /// acknowledged last; with it, a write the caller was told about is on that many replicas.
    ///
    /// `WAIT` waits for the offset of its connection's last write (Redis 7.0 moves it on
    /// every command; later versions may only on writes): the same pipeline first writes the
    /// namespace's `probe` key, so that it covers every earlier write on this primary whichever
    /// connection made it (the ticket's routing, or a retry that wrote nothing) and whatever
    /// the Redis version. Call it on an [`Store::exclusive`] store, since `WAIT` holds up its
    /// connection.
    pub async fn replicated(&self) -> Result<(), StoreError> {
        if self.min_replicas == 0 {
            return Ok(());
        }
        let refused = |acked| StoreError::NotReplicated {
            wanted: self.min_replicas,
            acked,
        };
        if self
            .pinned_epoch
            .is_some_and(|e| e != self.link.primary().epoch())
        {
            return Err(refused(0));
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.probe())
            .arg(1)
            .arg("PX")
            .arg(10_000)
            .ignore()
            .cmd("WAIT")
            .arg(self.min_replicas)
            .arg(1000);
        let (acked,): (u32,) = pipe.query_async(&mut self.conn()).await?;
        if self
            .pinned_epoch
            .is_some_and(|e| e != self.link.primary().epoch())
        {
            return Err(refused(0));
        }
        if acked < self.min_replicas {
            return Err(refused(acked));
        }
        Ok(())
    }

    /// How long the offers this store makes last.
    pub fn offer_timeout(&self) -> Duration {
        self.offer_timeout
    }

    /// The key names of this namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// A client of the current primary, for dedicated connections (blocking reads, pub/sub);
    /// [`StoreError::Unavailable`] while no Sentinel has named one. A dedicated connection
    /// does not follow a failover by itself: its holder reconnects through this when it fails
    /// or when [`Store::primary_changes`] says so.
    pub fn client(&self) -> Result<redis::Client, StoreError> {
        Ok(self.link.primary().client()?)
    }

    /// A connection of the caller's own for blocking reads, which follows a failover.
    pub fn dedicated(&self) -> Dedicated {
        Dedicated {
            store: self.clone(),
            conn: None,
            primary: self.primary_changes(),
        }
    }

    /// Tells the store of a failure on a connection of the caller's own (a blocking reader,
    /// pub/sub): one that a lost primary would cause has the Sentinels asked again at once.
    pub fn connection_failed(&self, e: &StoreError) {
        if let StoreError::Unavailable(e) = e {
            self.link.primary().failed(e);
        }
    }

    /// Ticks each time the store follows a failover to a new primary.
    pub fn primary_changes(&self) -> watch::Receiver<u64> {
        self.link.primary().changes()
    }

    /// This store's multiplexed connection, for plain commands: each goes to the current
    /// primary.
    pub fn conn(&self) -> Conn {
        Conn::new(self.link.clone())
    }

    /// Whether Redis takes writes now (API.md §11: `/readyz` is 503 while it cannot): every
    /// connection of this store and of the stores made from it answers a PING within a second
    /// (a connection broken by an outage reconnects when used, so this also heals each), and a
    /// write of the namespace's `probe` key succeeds, which a read-only replica, a Redis out of
    /// memory, one whose snapshots fail or one short of `min-replicas-to-write` refuses.
    pub async fn takes_writes(&self) -> bool {
        let connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut all = true;
        for link in connections {
            let mut conn = Conn::new(link);
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            all &= matches!(
                tokio::time::timeout(Duration::from_secs(1), ping).await,
                Ok(Ok(_))
            );
        }
        if !all {
            return false;
        }
        let mut conn = self.conn();
        let mut probe = redis::cmd("SET");
        probe.arg(self.keys.probe()).arg(1).arg("PX").arg(10_000);
        match tokio::time::timeout(Duration::from_secs(1), probe.query_async::<()>(&mut conn)).await
        {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "redis does not take writes");
                false
            }
            Err(_) => false,
        }
    }

    /// Loads (or replaces) the function library.
    pub async fn load_library(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(library())
            .query_async::<String>(&mut conn)
            .await?;
        Ok(())
    }

    /// Calls `function` with `args` and parses its reply as `R`: a refusal (`error`, code)
    /// becomes [`StoreError::Rejected`]. A library Redis lost (a restart) is loaded again.
    pub async fn call<R: FromReply>(
        &self,
        function: Function,
        args: &[&str],
    ) -> Result<R, StoreError> {
        let name = function.versioned();
        let started = std::time::Instant::now();
        let result = self.call_timed::<R>(function, &name, args).await;
        crate::metrics::redis_call(function.name(), started.elapsed());
        result
    }

    async fn call_timed<R: FromReply>(
        &self,
        function: Function,
        name: &str,
        args: &[&str],
    ) -> Result<R, StoreError> {
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(name).arg(1).arg(self.keys.events()).arg(args);
        let mut conn = self.conn();
        let value = match cmd.query_async::<Value>(&mut conn).await {
            Err(e) if is_missing_function(&e) => {
                tracing::warn!(function = %name, "function library missing (redis restarted?), reloading");
                self.load_library().await?;
                cmd.query_async::<Value>(&mut conn).await?
            }
            other => other?,
        };
        let words = Vec::<String>::from_redis_value(value)
            .map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))?;
        if words.first().map(String::as_str) == Some("error") {
            let code = words.get(1).map(String::as_str).unwrap_or_default();
            return match ErrorCode::from_name(code) {
                Some(code) => Err(StoreError::Rejected(code)),
                None => Err(StoreError::Corrupt(format!(
                    "{name}: refused with an unknown code {code:?}"
                ))),
            };
        }
        R::from_reply(function.name(), words)
    }
}

fn is_missing_function(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// A connection of its own, for blocking reads (`BRPOP`, `XREADGROUP … BLOCK`) that would hold
/// up the shared one: made when first used, and made again on the new primary after a failover
/// or after [`Dedicated::failed`].
pub struct Dedicated {
    store: Store,
    conn: Option<redis::aio::MultiplexedConnection>,
    primary: watch::Receiver<u64>,
}

impl Dedicated {
    /// The connection, to the current primary.
    pub async fn get(&mut self) -> Result<&mut redis::aio::MultiplexedConnection, StoreError> {
        if self.primary.has_changed().unwrap_or(false) {
            self.primary.borrow_and_update();
            self.conn = None;
        }
        if self.conn.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_connection_timeout(Some(Duration::from_secs(2)));
            let conn = self
                .store
                .client()?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            self.conn = Some(conn);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| StoreError::Corrupt("dedicated connection missing".into()))
    }

    /// A command on it failed with `e`: it is made again when next used (and the Sentinels
    /// asked again if the primary may be lost).
    pub fn failed(&mut self, e: &StoreError) {
        self.conn = None;
        self.store.connection_failed(e);
    }
}
