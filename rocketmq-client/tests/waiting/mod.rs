//! Awaiting a condition with a deadline, on tokio's clock (so paused-time
//! tests advance through it): shared by the testkit and the interop support.

use std::future::Future;
use std::time::Duration;

/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `condition` holds; panics naming `what` after `limit`.
pub(crate) async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    wait_for(what, limit, || std::future::ready(condition())).await;
}

/// Like [`wait_until`] with an async condition.
pub(crate) async fn wait_for<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting: {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
