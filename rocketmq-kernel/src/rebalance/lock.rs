//! Orderly consumption's broker queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ,
//! PROTOCOL.md §3.10), sent to the master of each queue's broker.

use std::collections::BTreeSet;

use rocketmq_model::MessageQueue;
use rocketmq_model::body::{LockBatchRequestBody, UnlockBatchRequestBody};
use tokio::time::Instant;

use super::shared::Shared;
use crate::api::CallMode;

/// Locks `mqs` (all of one broker) and returns the queues the broker
/// granted; `None` when the request failed (logged).
async fn lock_batch(
    shared: &Shared,
    broker_name: &str,
    mqs: BTreeSet<MessageQueue>,
) -> Option<BTreeSet<MessageQueue>> {
    let group = &shared.options.group;
    let addr = match shared.routes.table().master_addr(broker_name) {
        Ok(addr) => addr,
        Err(err) => {
            tracing::warn!(%group, broker = broker_name, error = %err, "cannot lock queues: no master");
            return None;
        }
    };
    let body = LockBatchRequestBody {
        client_id: shared.client_id.clone(),
        consumer_group: group.clone(),
        mq_set: mqs,
        only_this_broker: false,
    };
    match shared.broker.lock_batch(&addr, body).await {
        Ok(locked) => Some(locked),
        Err(err) => {
            tracing::warn!(%group, broker = %addr, error = %err, "locking queues failed");
            None
        }
    }
}

/// Locks one queue before it is added (Java's `RebalanceImpl#lock`):
/// whether the broker granted it; `None` when the request failed, so that
/// the broker may hold the lock all the same (an answer that came after the
/// request timeout). Other queues the answer names are marked locked too.
pub(crate) async fn lock_one(shared: &Shared, mq: &MessageQueue) -> Option<bool> {
    let locked = lock_batch(shared, &mq.broker_name, BTreeSet::from([mq.clone()])).await?;
    let now = Instant::now();
    for other in &locked {
        if let Some(pq) = shared.assignment.process_queue(other) {
            pq.lock_granted(now);
        }
    }
    let granted = locked.contains(mq);
    tracing::debug!(group = %shared.options.group, %mq, granted, "queue lock");
    Some(granted)
}

/// Renews the locks of every held queue, one request per broker, marking
/// each process queue locked or unlocked by the answer (Java's
/// `RebalanceImpl#lockAll`). A failed request changes nothing: the locks
/// then expire locally after `LOCK_MAX_LIVE_TIME`.
pub(crate) async fn lock_all(shared: &Shared) {
    for (broker_name, mqs) in shared.assignment.by_broker() {
        let asked = mqs.clone();
        let Some(locked) = lock_batch(shared, &broker_name, mqs).await else {
            continue;
        };
        let now = Instant::now();
        for mq in &asked {
            let Some(pq) = shared.assignment.process_queue(mq) else {
                continue;
            };
            if locked.contains(mq) {
                pq.lock_granted(now);
            } else {
                tracing::warn!(group = %shared.options.group, %mq, "queue lock renewal refused");
                pq.lock_lost();
            }
        }
    }
}

/// Releases the locks of `mqs` (all of one broker).
pub(crate) async fn unlock(
    shared: &Shared,
    broker_name: &str,
    mqs: BTreeSet<MessageQueue>,
    mode: CallMode,
) {
    let group = &shared.options.group;
    let addr = match shared.routes.table().master_addr(broker_name) {
        Ok(addr) => addr,
        Err(err) => {
            tracing::warn!(%group, broker = broker_name, error = %err, "cannot unlock queues: no master");
            return;
        }
    };
    let body = UnlockBatchRequestBody {
        client_id: shared.client_id.clone(),
        consumer_group: group.clone(),
        mq_set: mqs,
        only_this_broker: false,
    };
    if let Err(err) = shared.broker.unlock_batch(&addr, body, mode).await {
        tracing::warn!(%group, broker = %addr, error = %err, "unlocking queues failed");
    }
}
