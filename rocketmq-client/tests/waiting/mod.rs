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
pub(crate) async fn wait_for<F, Fut>(what: &str, limit: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    assert!(
        comes_true(limit, condition).await,
        "timed out after {limit:?} waiting: {what}"
    );
}

/// Whether `condition` holds within `limit`, for a test that goes another
/// way when it does not (a broker deviation it reports and works around).
pub(crate) async fn holds_within(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    comes_true(limit, || std::future::ready(condition())).await
}

/// Looks at `condition` every [`POLL`] until it holds (true) or `limit`
/// has passed (false).
async fn comes_true<F, Fut>(limit: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}
