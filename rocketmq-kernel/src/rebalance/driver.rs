//! The background loops of a rebalancer: rounds on a timer and on request,
//! and (orderly, clustering) the periodic renewal of queue locks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::lock;
use super::round;
use super::shared::Shared;
use crate::process_queue::LOCK_RENEW_INTERVAL;

/// How soon a round runs again after a queue's lock was refused (Java's
/// `rebalanceLater(500)`).
const LOCK_RETRY_DELAY: Duration = Duration::from_millis(500);

/// How soon a round runs again after a queue could not be added for want of
/// its start offset (Java 5's `rocketmq.client.rebalance.minInterval`).
const ADD_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Runs a round on every request and every `interval`, one at a time,
/// until `cancel`.
pub(crate) async fn rebalance_loop(
    shared: Arc<Shared>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut wait = interval;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = shared.trigger.requested() => {}
            () = tokio::time::sleep(wait) => {}
        }
        let serving = shared.trigger.latest();
        let outcome = {
            let _one_at_a_time = shared.run_lock.lock().await;
            tokio::select! {
                () = cancel.cancelled() => return,
                outcome = round::run(&shared) => outcome,
            }
        };
        shared.trigger.complete(serving);
        wait = if !outcome.all_locked {
            LOCK_RETRY_DELAY
        } else if !outcome.all_added {
            ADD_RETRY_DELAY.min(interval)
        } else {
            interval
        };
    }
}

/// Renews the broker locks of every held queue every
/// [`LOCK_RENEW_INTERVAL`] until `cancel` (Java's `lockAll` timer).
pub(crate) async fn lock_loop(shared: Arc<Shared>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(LOCK_RENEW_INTERVAL) => {}
        }
        let _one_at_a_time = shared.run_lock.lock().await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = lock::lock_all(&shared) => {}
        }
    }
}
