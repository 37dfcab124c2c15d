//! The connection hub: which agent's live connection this instance holds, owned by one task.
//!
//! Connections register their outbound channel; pushes from Redis are delivered through the hub.
//! Every channel is bounded: a client too slow to drain its frames is disconnected (its offers
//! lapse and are re-routed) rather than allowed to grow this process's memory.

use std::collections::HashMap;

use tokio::sync::mpsc;

use crate::push::Delivery;

/// How many frames may wait for one slow client before it is dropped.
pub const OUTBOUND_CAPACITY: usize = 64;
/// How many commands may wait for the hub.
const HUB_CAPACITY: usize = 8192;

/// What the hub sends a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// A text frame to send as is; `offer_id` is set for an `offer` frame.
    Frame {
        /// The frame.
        text: String,
        /// The offer it carries, if it is an offer.
        offer_id: Option<String>,
    },
    /// Close with this code (4009 replaced, 4003 removed, 1008 too slow).
    Close(u16),
    /// Check the connection against Redis's record and mend what differs: bind it again if
    /// Redis records it as dropped (this instance was taken for dead, or could not heartbeat
    /// for a while); close it if a newer connection is live; and with `lost_pushes` (the push
    /// subscription broke and is back) send a fresh `welcome` even if nothing else differs.
    Resync {
        /// Pushes may have been lost.
        lost_pushes: bool,
    },
}

#[derive(Debug)]
enum Command {
    Register {
        agent: String,
        conn: String,
        tx: mpsc::Sender<Outbound>,
    },
    Activate {
        agent: String,
        conn: String,
    },
    Unregister {
        agent: String,
        conn: String,
    },
    Deliver(Delivery),
    ResyncAll {
        lost_pushes: bool,
    },
}

/// An offer whose push found no connection of its agent here: (agent, offer).
pub type Unreached = (String, String);

/// A clonable handle on the hub task.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: mpsc::Sender<Command>,
}

impl Hub {
    /// Starts the hub task; it ends when every handle is dropped. Offers it cannot deliver go
    /// nowhere.
    pub fn start() -> Self {
        Self::start_reporting(mpsc::channel(1).0)
    }

    /// Starts the hub task, sending on `unreached` each offer whose push finds no connection of
    /// its agent here (dropped if the receiver lags).
    pub fn start_reporting(unreached: mpsc::Sender<Unreached>) -> Self {
        let (tx, rx) = mpsc::channel(HUB_CAPACITY);
        tokio::spawn(run(rx, unreached));
        Self { tx }
    }

    /// Routes the agent's pushes to `conn` from now on. An older connection of the agent here
    /// is kept open until [`Hub::activate`]: closing it earlier would let its disconnect reach
    /// Redis before the new connection is recorded there, withdrawing the agent's offer.
    pub async fn register(&self, agent: &str, conn: &str, tx: mpsc::Sender<Outbound>) {
        let cmd = Command::Register {
            agent: agent.to_owned(),
            conn: conn.to_owned(),
            tx,
        };
        let _ = self.tx.send(cmd).await;
    }

    /// Redis now records `conn` as the agent's connection: an older one here is told 4009.
    pub async fn activate(&self, agent: &str, conn: &str) {
        let cmd = Command::Activate {
            agent: agent.to_owned(),
            conn: conn.to_owned(),
        };
        let _ = self.tx.send(cmd).await;
    }

    /// Forgets `conn`. If it never became active, the connection it displaced gets its pushes
    /// back.
    pub async fn unregister(&self, agent: &str, conn: &str) {
        let cmd = Command::Unregister {
            agent: agent.to_owned(),
            conn: conn.to_owned(),
        };
        let _ = self.tx.send(cmd).await;
    }

    /// Tells every live connection here to check itself against Redis ([`Outbound::Resync`]).
    pub async fn resync_all(&self, lost_pushes: bool) {
        let _ = self.tx.send(Command::ResyncAll { lost_pushes }).await;
    }

    /// Delivers a push to the agent's connection, if this instance holds it.
    pub async fn deliver(&self, delivery: Delivery) {
        let _ = self.tx.send(Command::Deliver(delivery)).await;
    }
}

type Entry = (String, mpsc::Sender<Outbound>);

async fn run(mut rx: mpsc::Receiver<Command>, unreached: mpsc::Sender<Unreached>) {
    // The connection each agent's pushes go to, and the one it displaced, not yet closed.
    let mut live: HashMap<String, Entry> = HashMap::new();
    let mut retiring: HashMap<String, Entry> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Register { agent, conn, tx } => {
                if let Some(old) = live.insert(agent.clone(), (conn.clone(), tx)) {
                    if old.0 != conn {
                        if let Some((_, older)) = retiring.insert(agent, old) {
                            let _ = older.try_send(Outbound::Close(4009));
                        }
                    }
                }
            }
            Command::Activate { agent, conn } => {
                if live.get(&agent).is_some_and(|(c, _)| *c == conn) {
                    if let Some((_, old)) = retiring.remove(&agent) {
                        let _ = old.try_send(Outbound::Close(4009));
                    }
                }
            }
            Command::Unregister { agent, conn } => {
                if live.get(&agent).is_some_and(|(c, _)| *c == conn) {
                    live.remove(&agent);
                    if let Some(displaced) = retiring.remove(&agent) {
                        live.insert(agent, displaced);
                    }
                } else if retiring.get(&agent).is_some_and(|(c, _)| *c == conn) {
                    retiring.remove(&agent);
                }
            }
            Command::ResyncAll { lost_pushes } => {
                for (_, tx) in live.values() {
                    // A connection whose channel is full is too slow and being dropped anyway.
                    let _ = tx.try_send(Outbound::Resync { lost_pushes });
                }
            }
            Command::Deliver(Delivery {
                agent,
                conn: target,
                out,
            }) => {
                let Some((conn, tx)) = live.get(&agent) else {
                    if let Outbound::Frame {
                        offer_id: Some(offer),
                        ..
                    } = out
                    {
                        let _ = unreached.try_send((agent, offer));
                    }
                    continue;
                };
                if target.is_some_and(|target| target != *conn) {
                    continue;
                }
                if tx.try_send(out).is_err() {
                    tracing::warn!(agent, "client too slow to take its frames; dropping it");
                    if let Some((_, tx)) = live.remove(&agent) {
                        // The connection task notices the closed channel and hangs up.
                        drop(tx);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::AgentStatus;
    use shared::protocol::{Push, StatusReason};

    async fn deliver(hub: &Hub, push: Push) {
        hub.deliver(Delivery::from_push(&push)).await;
    }

    #[tokio::test]
    async fn pushes_reach_the_registered_connection_only() {
        let hub = Hub::start();
        let (tx, mut rx) = mpsc::channel(4);
        hub.register("a", "c1", tx).await;
        deliver(
            &hub,
            Push::Status {
                agent: "a".into(),
                status: AgentStatus::Away,
                reason: StatusReason::MissedOffers,
            },
        )
        .await;
        deliver(
            &hub,
            Push::Status {
                agent: "b".into(),
                status: AgentStatus::Away,
                reason: StatusReason::MissedOffers,
            },
        )
        .await;
        let Some(Outbound::Frame { text, .. }) = rx.recv().await else {
            panic!("a frame was expected");
        };
        assert!(text.contains("\"missed_offers\""));
        deliver(
            &hub,
            Push::Close {
                agent: "a".into(),
                conn: "other".into(),
                code: 4009,
            },
        )
        .await;
        deliver(
            &hub,
            Push::Close {
                agent: "a".into(),
                conn: "c1".into(),
                code: 4009,
            },
        )
        .await;
        assert_eq!(rx.recv().await, Some(Outbound::Close(4009)));
    }

    #[tokio::test]
    async fn an_offer_for_an_agent_not_here_is_reported() {
        let (report, mut reports) = mpsc::channel(4);
        let hub = Hub::start_reporting(report);
        let (tx, _rx) = mpsc::channel(4);
        hub.register("a", "c1", tx).await;
        let offer = |agent: &str, offer: &str| Delivery {
            agent: agent.into(),
            conn: None,
            out: Outbound::Frame {
                text: "{}".into(),
                offer_id: Some(offer.into()),
            },
        };
        hub.deliver(offer("a", "o-here")).await;
        hub.deliver(offer("b", "o-away")).await;
        assert_eq!(reports.recv().await, Some(("b".into(), "o-away".into())));
        assert!(
            reports.try_recv().is_err(),
            "only the offer for an agent not here"
        );
    }

    #[tokio::test]
    async fn a_second_connection_here_replaces_the_first_once_active() {
        let hub = Hub::start();
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, _rx2) = mpsc::channel(4);
        hub.register("a", "c1", tx1).await;
        hub.activate("a", "c1").await;
        hub.register("a", "c2", tx2).await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), rx1.recv())
                .await
                .is_err(),
            "the old connection stays open until the new one is recorded in Redis"
        );
        hub.activate("a", "c2").await;
        assert_eq!(rx1.recv().await, Some(Outbound::Close(4009)));
    }

    #[tokio::test]
    async fn a_new_connection_that_fails_gives_the_pushes_back_to_the_old_one() {
        let hub = Hub::start();
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, _rx2) = mpsc::channel(4);
        hub.register("a", "c1", tx1).await;
        hub.register("a", "c2", tx2).await;
        hub.unregister("a", "c2").await;
        deliver(
            &hub,
            Push::TicketCancelled {
                agent: "a".into(),
                ticket_id: "t".into(),
            },
        )
        .await;
        assert!(matches!(rx1.recv().await, Some(Outbound::Frame { .. })));
    }
}
