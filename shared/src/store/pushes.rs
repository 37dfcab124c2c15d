//! Subscriptions to a namespace's push channels, on its primary (on a Redis Cluster, the
//! namespace's shard).
//!
//! This build's functions publish with `SPUBLISH` (sharded pub/sub: on a cluster a message
//! stays on its channel's shard, where plain `PUBLISH` is copied to every node); older builds'
//! functions, during a rolling deploy, with `PUBLISH`. A [`Subscription`] reads both on one RESP3
//! connection. The redis crate subscribes to sharded channels only through its cluster client,
//! so `SSUBSCRIBE` is sent one channel per command: its one confirmation, a push, is then that
//! command's reply.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{FromRedisValue, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::{Store, StoreError};

/// A message read from a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel it was published on.
    pub channel: String,
    /// Whether it was published with `SPUBLISH`.
    pub sharded: bool,
    /// What was published.
    pub payload: Vec<u8>,
}

/// Channels subscribed to on the namespace's primary ([`Store::subscribe`]).
pub struct Subscription {
    /// Kept open for as long as the subscription is read.
    _conn: MultiplexedConnection,
    pushes: UnboundedReceiver<PushInfo>,
}

impl Subscription {
    /// The next message; `None` once the connection is lost or the server ended the
    /// subscription (what is published then is lost: subscribe again).
    pub async fn next(&mut self) -> Option<Message> {
        loop {
            let PushInfo { kind, data } = self.pushes.recv().await?;
            let sharded = match kind {
                PushKind::SMessage => true,
                PushKind::Message => false,
                // A slot that moved away takes its shard channels' subscribers with it
                // (`sunsubscribe`): subscribe again, where the slot is now.
                PushKind::Disconnection | PushKind::SUnsubscribe | PushKind::Unsubscribe => {
                    return None
                }
                _ => continue,
            };
            let mut data = data.into_iter();
            let read = match (data.next(), data.next()) {
                (Some(channel), Some(payload)) => String::from_redis_value(channel)
                    .and_then(|channel| Ok((channel, Vec::<u8>::from_redis_value(payload)?))),
                _ => {
                    tracing::error!(?kind, "a message push without channel and payload; skipped");
                    continue;
                }
            };
            match read {
                Ok((channel, payload)) => {
                    return Some(Message {
                        channel,
                        sharded,
                        payload,
                    })
                }
                Err(e) => tracing::error!(error = %e, "an unreadable message push; skipped"),
            }
        }
    }
}

impl Store {
    /// Subscribes, on the current primary, to `sharded` channels (`SSUBSCRIBE`) and `plain`
    /// ones (`SUBSCRIBE`). It does not follow a failover by itself: resubscribe when
    /// [`Store::primary_changes`] ticks or [`Subscription::next`] ends.
    pub async fn subscribe(
        &self,
        sharded: &[String],
        plain: &[String],
    ) -> Result<Subscription, StoreError> {
        self.link.primary().asked().await;
        let client = self.client()?;
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let (sender, pushes) = unbounded_channel();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_push_sender(sender);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        for channel in sharded {
            redis::cmd("SSUBSCRIBE")
                .arg(channel)
                .query_async::<Value>(&mut conn)
                .await?;
        }
        if !plain.is_empty() {
            conn.subscribe(plain).await?;
        }
        Ok(Subscription {
            _conn: conn,
            pushes,
        })
    }
}
