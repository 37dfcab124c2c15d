//! The gateway's links to Redis besides commands: the push subscription and the heartbeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use shared::protocol::Push;
use shared::store::{Store, GATEWAY_HEARTBEAT};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Whether the push subscription is live: without it this instance cannot deliver offers, so
/// `/readyz` says it is not ready.
#[derive(Debug, Clone, Default)]
pub struct Subscription(Arc<AtomicBool>);

impl Subscription {
    /// Whether pushes reach this instance now.
    pub fn is_live(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, live: bool) {
        self.0.store(live, Ordering::Relaxed);
    }
}

/// Delivers the pushes for this instance's agents to the hub until `shutdown`, resubscribing
/// after errors: those on its own channel (`Keys::push_gateway`), and those on the channel every
/// gateway reads, where a dispatcher of an older build, or one pushing for an agent that
/// connected through an older gateway, sends them. A push lost while disconnected is harmless:
/// its offer lapses and is re-routed.
pub async fn subscribe(
    store: Store,
    hub: Hub,
    instance: String,
    live: Subscription,
    shutdown: CancellationToken,
) {
    let channels = [
        store.keys().push_channel(),
        store.keys().push_gateway(&instance),
    ];
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match store.client().get_async_pubsub().await {
            Ok(mut pubsub) => {
                if let Err(e) = pubsub.subscribe(&channels).await {
                    tracing::warn!(error = %e, "cannot subscribe to pushes");
                } else {
                    backoff = Duration::from_millis(100);
                    live.set(true);
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            msg = messages.next() => match msg {
                                None => break,
                                Some(msg) => match serde_json::from_slice::<Push>(msg.get_payload_bytes()) {
                                    Ok(push) => hub.deliver(push).await,
                                    Err(e) => tracing::error!(error = %e, "unreadable push"),
                                },
                            }
                        }
                    }
                    live.set(false);
                    tracing::warn!("push subscription lost; resubscribing");
                }
            }
            Err(e) => tracing::debug!(error = %e, "redis unavailable for pushes"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Records this instance as alive every [`GATEWAY_HEARTBEAT`], so that if it dies the
/// dispatchers treat its connections as dropped. On shutdown, withdraws the record.
pub async fn heartbeat(store: Store, instance: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(GATEWAY_HEARTBEAT);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let beat = async {
            let now = store.now_ms().await?;
            let mut conn = store.conn();
            let _: i64 = conn.zadd(store.keys().gateways(), &instance, now).await?;
            Ok::<_, shared::store::StoreError>(())
        };
        if let Err(e) = beat.await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
    let mut conn = store.conn();
    let _: Result<i64, _> = conn.zrem(store.keys().gateways(), &instance).await;
}
