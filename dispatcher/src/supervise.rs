//! Keeping a background loop running: restarted after a failure, with a backoff that doubles
//! from 100 ms to 2 s and starts over once a run had worked for 10 s.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `step` until it returns `Ok` or `shutdown`; after each failure logs it as `what`,
/// hands it to `failed` (to tell the store of a lost connection) and waits the backoff.
pub async fn restarting<E, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    failed: impl Fn(&E),
    mut step: F,
) where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let started = tokio::time::Instant::now();
        match step().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                failed(&e);
                if started.elapsed() > Duration::from_secs(10) {
                    // It had worked: this is a new failure, not the same one again.
                    backoff = Duration::from_millis(100);
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}
