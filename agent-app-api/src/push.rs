//! The gateway's links to Redis besides commands: the push subscription and the heartbeat.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::domain::Timestamp;
use shared::protocol::Push;
use shared::store::{Store, StoreError, GATEWAY_HEARTBEAT};
use tokio_util::sync::CancellationToken;

use crate::hub::{Hub, Outbound, Unreached};

/// A push as the hub hands it on: whose connection it is for, and what to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The agent.
    pub agent: String,
    /// The connection a close is for (a newer connection of the agent is left open).
    pub conn: Option<String>,
    /// The frame or the close.
    pub out: Outbound,
}

impl Delivery {
    /// Reads what the Redis functions published: a frame ready to send behind a line of
    /// routing (`U.push` in shared/src/lua/util.lua: "f1", agent, kind, then the offer and its
    /// deadline in ms or the connection and its close code, then the frame), to which only an
    /// offer's `expires_at` is added here; or, from an older build, a [`Push`] as JSON.
    pub fn parse(payload: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(payload).map_err(|e| e.to_string())?;
        let Some(routed) = text.strip_prefix("f1\n") else {
            let push: Push = serde_json::from_str(text).map_err(|e| e.to_string())?;
            return Ok(Self::from_push(&push));
        };
        let mut parts = routed.splitn(5, '\n');
        let mut part = || parts.next().ok_or("a routing line is missing");
        let (agent, kind, first, second, frame) = (part()?, part()?, part()?, part()?, part()?);
        let (conn, out) = match kind {
            "close" => {
                let code = second
                    .parse()
                    .map_err(|_| format!("close code {second:?}"))?;
                (Some(first.to_owned()), Outbound::Close(code))
            }
            "offer" => {
                let expires: i64 = second.parse().map_err(|_| format!("deadline {second:?}"))?;
                let open = frame
                    .strip_suffix('}')
                    .ok_or("an offer frame that is no object")?;
                let at = serde_json::to_string(&Timestamp::from_millis(expires))
                    .map_err(|e| e.to_string())?;
                let text = format!("{open},\"expires_at\":{at}}}");
                let offer_id = Some(first.to_owned());
                (None, Outbound::Frame { text, offer_id })
            }
            _ => {
                let text = frame.to_owned();
                (
                    None,
                    Outbound::Frame {
                        text,
                        offer_id: None,
                    },
                )
            }
        };
        Ok(Self {
            agent: agent.to_owned(),
            conn,
            out,
        })
    }

    /// What an older build's [`Push`] delivers.
    pub fn from_push(push: &Push) -> Self {
        let (conn, out) = match push {
            Push::Close { conn, code, .. } => (Some(conn.clone()), Outbound::Close(*code)),
            other => {
                let offer_id = match other {
                    Push::Offer { offer_id, .. } => Some(offer_id.clone()),
                    _ => None,
                };
                // Every push but a close carries a frame.
                let text = other
                    .to_server_message()
                    .map(|m| m.to_text(None))
                    .unwrap_or_default();
                (None, Outbound::Frame { text, offer_id })
            }
        };
        Self {
            agent: push.agent().to_owned(),
            conn,
            out,
        }
    }
}

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
/// after errors: those on its own sharded channel (`Keys::push_gateway`), frames ready to send
/// (`SPUBLISH`: on a Redis Cluster they stay on the namespace's shard); and, from the functions
/// of older builds during a rolling deploy, those published with `PUBLISH` on its own channel
/// (frames, or JSON) and on the channel every gateway reads. Pushes published while the
/// subscription is broken are lost, so once it is back every connection is sent its state
/// again ([`Hub::resync_all`]).
pub async fn subscribe(
    store: Store,
    hub: Hub,
    instance: String,
    live: Subscription,
    shutdown: CancellationToken,
) {
    let own = store.keys().push_gateway(&instance);
    let sharded = [own.clone()];
    let plain = [store.keys().push_channel(), own];
    let mut backoff = Duration::from_millis(100);
    let mut resubscribed = false;
    let mut primary = store.primary_changes();
    while !shutdown.is_cancelled() {
        primary.borrow_and_update();
        match store.subscribe(&sharded, &plain).await {
            Err(e) => {
                store.connection_failed(&e);
                tracing::debug!(error = %e, "redis unavailable for pushes");
            }
            Ok(mut messages) => {
                let since = tokio::time::Instant::now();
                live.set(true);
                if resubscribed {
                    // What was published meanwhile is lost: each client gets its offer and
                    // assignments again, as they are now.
                    tracing::warn!(
                        "push subscription back; sending each connection its state again"
                    );
                    hub.resync_all(true).await;
                }
                resubscribed = true;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        // After a failover, what is published goes to the new primary.
                        _ = primary.changed() => break,
                        msg = messages.next() => match msg {
                            None => break,
                            Some(msg) => match Delivery::parse(&msg.payload) {
                                Ok(delivery) => hub.deliver(delivery).await,
                                Err(e) => tracing::error!(error = %e, "unreadable push"),
                            },
                        }
                    }
                }
                live.set(false);
                // One that ends at once (a server dropping it as soon as it is made) is not
                // tried again at once: each time back, every connection is sent its state.
                if since.elapsed() >= Duration::from_secs(1) {
                    backoff = Duration::from_millis(100);
                }
                // Dropped by a primary that went away: have it asked for now.
                let lost = std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "push subscription lost",
                );
                store.connection_failed(&StoreError::Unavailable(lost.into()));
                tracing::warn!("push subscription lost; resubscribing");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Tells Redis of each offer whose push found no connection of its agent here (its connection
/// closed, the disconnect not recorded yet), so that the connection is dropped and the offer
/// withdrawn at once rather than lapsing later as missed ([`Store::offer_unreached`]).
pub async fn report_unreached(
    store: Store,
    instance: String,
    grace: Duration,
    mut unreached: tokio::sync::mpsc::Receiver<Unreached>,
    shutdown: CancellationToken,
) {
    loop {
        let (agent, offer) = tokio::select! {
            () = shutdown.cancelled() => return,
            next = unreached.recv() => match next {
                Some(u) => u,
                None => return,
            },
        };
        match store
            .offer_unreached(&agent, &offer, &instance, grace)
            .await
        {
            Ok(true) => {
                tracing::info!(agent_id = %agent, offer_id = %offer, "an offer reached no connection here; withdrawn");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(agent_id = %agent, offer_id = %offer, error = %e, "an offer that reached no connection could not be withdrawn; it lapses instead");
            }
        }
    }
}

/// Records this instance as alive every [`GATEWAY_HEARTBEAT`], so that if it dies the
/// dispatchers treat its connections as dropped. If a beat finds the record gone (a dispatcher
/// took this instance for dead, or Redis lost it) or follows beats that failed, every live
/// connection here binds itself again where Redis records it as dropped ([`Hub::resync_all`]).
/// On shutdown, withdraws the record.
pub async fn heartbeat(store: Store, hub: Hub, instance: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(GATEWAY_HEARTBEAT);
    let (mut first, mut failed) = (true, false);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let beat = async {
            let now = store.now_ms().await?;
            let mut conn = store.conn();
            let added: i64 = conn.zadd(store.keys().gateways(), &instance, now).await?;
            Ok::<_, shared::store::StoreError>(added)
        };
        match beat.await {
            Ok(added) => {
                // Before the first beat that landed, nothing here was bound to a record (a
                // start while Redis or its Sentinels were away is no outage to mend).
                if !first && (added == 1 || failed) {
                    tracing::warn!(
                        reaped = added == 1,
                        "heartbeats were missed or this instance was taken for dead; binding its connections again"
                    );
                    hub.resync_all(false).await;
                }
                (first, failed) = (false, false);
            }
            Err(e) => {
                tracing::debug!(error = %e, "heartbeat failed");
                failed = true;
            }
        }
    }
    let mut conn = store.conn();
    let _: Result<i64, _> = conn.zrem(store.keys().gateways(), &instance).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(delivery: &Delivery) -> serde_json::Value {
        let Outbound::Frame { text, .. } = &delivery.out else {
            panic!("a frame was expected: {delivery:?}");
        };
        serde_json::from_str(text).expect("the frame is JSON")
    }

    #[test]
    fn an_offer_gets_its_deadline_as_a_timestamp() {
        let d = Delivery::parse(
            b"f1\na-1\noffer\no-9\n1700000000123\n{\"type\":\"offer\",\"offer_id\":\"o-9\"}",
        )
        .expect("a frame");
        assert_eq!(d.agent, "a-1");
        assert_eq!(d.conn, None);
        assert!(matches!(&d.out, Outbound::Frame { offer_id: Some(o), .. } if o == "o-9"));
        let f = frame(&d);
        assert_eq!(f["offer_id"], "o-9");
        let at = serde_json::to_value(Timestamp::from_millis(1_700_000_000_123)).expect("json");
        assert_eq!(f["expires_at"], at);
    }

    #[test]
    fn a_close_names_its_connection_and_other_frames_pass_as_they_are() {
        let d = Delivery::parse(b"f1\na-1\nclose\nc-2\n4009\n").expect("a close");
        assert_eq!(d.conn.as_deref(), Some("c-2"));
        assert_eq!(d.out, Outbound::Close(4009));
        let body = r#"{"type":"ticket_cancelled","ticket_id":"t-1"}"#;
        let d = Delivery::parse(format!("f1\na-1\nticket_cancelled\n\n\n{body}").as_bytes())
            .expect("a frame");
        assert_eq!(
            d.out,
            Outbound::Frame {
                text: body.into(),
                offer_id: None
            }
        );
    }

    #[test]
    fn an_older_builds_json_push_still_delivers() {
        let d = Delivery::parse(
            br#"{"kind":"status","agent":"a-1","status":"away","reason":"missed_offers"}"#,
        )
        .expect("a push");
        assert_eq!(d.agent, "a-1");
        assert_eq!(frame(&d)["reason"], "missed_offers");
    }

    #[test]
    fn unreadable_pushes_say_why() {
        for bad in [
            &b"f1\na-1\noffer"[..],
            b"f1\na-1\nclose\nc\nsoon\n",
            b"f1\na-1\noffer\no\nlater\n{}",
            b"f1\na-1\noffer\no\n1\n[]",
            b"{\"kind\":\"dance\"}",
            b"\xff",
        ] {
            assert!(
                Delivery::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
