//! How frames leave a connection and how fast they may come in: sends that give up on a client
//! that does not read, the ping that finds one, and the per-connection rate limit (API.md §6).

use std::time::Duration;

use actix_ws::Session;
use tokio::time::Instant;

/// How often the server pings.
pub(super) const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a client has to answer a ping: one that stops reading answers none, and is
/// disconnected at most `PING_EVERY + PONG_WAIT` (30 s) after it stopped (API.md §6).
pub(super) const PONG_WAIT: Duration = Duration::from_secs(10);
/// How long one frame may take to leave: a client that does not read fills its socket and the
/// session's queue, and is then disconnected rather than allowed to hold the connection task.
pub(super) const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake may take to leave.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Frames a client may send per second, and in a burst (API.md §6).
pub(super) const FRAMES_PER_SEC: f64 = 10.0;
pub(super) const FRAME_BURST: f64 = 20.0;
/// Bad frames allowed per [`BAD_FRAME_WINDOW`] before closing with 4008.
pub(super) const BAD_FRAME_LIMIT: usize = 20;
pub(super) const BAD_FRAME_WINDOW: Duration = Duration::from_secs(60);

/// A token bucket: `FRAME_BURST` frames at once, refilled at `FRAMES_PER_SEC`.
#[derive(Debug)]
pub(super) struct RateLimit {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    pub(super) fn new() -> Self {
        Self {
            tokens: FRAME_BURST,
            at: Instant::now(),
        }
    }

    /// Whether one more frame may be acted on now.
    pub(super) fn admit(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * FRAMES_PER_SEC;
        self.tokens = (self.tokens + refill).min(FRAME_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Sends `text`, giving up after [`SEND_TIMEOUT`] (the client does not read).
pub(super) async fn send_text(session: &mut Session, text: String) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(()),
        Err(_elapsed) => {
            tracing::info!("client does not read its frames; disconnecting it");
            Err(())
        }
    }
}

/// Resolves at `due`, or never when nothing is due.
pub(super) async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_20_passes_then_10_a_second() {
        let mut limit = RateLimit::new();
        for i in 0..20 {
            assert!(limit.admit(), "frame {i} of the burst");
        }
        assert!(!limit.admit(), "the 21st frame at once");
        // At 10 a second, 150 ms earn one frame (and a half).
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(limit.admit());
        assert!(!limit.admit());
    }
}
