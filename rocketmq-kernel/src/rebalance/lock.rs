//! Orderly consumption's broker queue locks (LOCK_BATCH_MQ / UNLOCK_BATCH_MQ,
//! PROTOCOL.md §3.10), sent to the master of each queue's broker.

use std::collections::BTreeSet;

use rocketmq_model::MessageQueue;
use rocketmq_model::body::{LockBatchRequestBody, UnlockBatchRequestBody};
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

use super::shared::Shared;
use crate::api::CallMode;
use crate::error::{KernelError, Result};

/// Locks `mqs` (all of one broker) and returns the queues the broker
/// granted.
async fn lock_batch(
    shared: &Shared,
    broker_name: &str,
    mqs: BTreeSet<MessageQueue>,
) -> Result<BTreeSet<MessageQueue>> {
    let addr = shared.routes.table().master_addr(broker_name)?;
    let body = LockBatchRequestBody {
        client_id: shared.client_id.clone(),
        consumer_group: shared.options.group.clone(),
        mq_set: mqs,
        only_this_broker: false,
    };
    shared.broker.lock_batch(&addr, body).await
}

/// Locks one queue before it is added (Java's `RebalanceImpl#lock`):
/// whether the broker granted it; an error when the request failed, so that
/// the broker may hold the lock all the same (an answer that came after the
/// request timeout). Other queues the answer names are marked locked too.
pub(crate) async fn lock_one(shared: &Shared, mq: &MessageQueue) -> Result<bool> {
    let locked = lock_batch(shared, &mq.broker_name, BTreeSet::from([mq.clone()])).await?;
    let now = Instant::now();
    for other in &locked {
        if let Some(pq) = shared.assignment.process_queue(other) {
            pq.lock_granted(now);
        }
    }
    let granted = locked.contains(mq);
    tracing::debug!(group = %shared.options.group, %mq, granted, "queue lock");
    Ok(granted)
}

/// Whether the broker may hold a lock that a request failing with `err`
/// asked for: unless the request never reached it (no address, no
/// connection) or it answered with a refusal.
pub(crate) fn may_have_locked(err: &KernelError) -> bool {
    match err {
        KernelError::Remoting(err) => !matches!(
            err,
            RemotingError::Connect { .. }
                | RemotingError::ConnectTimeout { .. }
                | RemotingError::TooManyPending { .. }
                | RemotingError::Response { .. }
                | RemotingError::NoAddress(_)
        ),
        KernelError::NoRoute { .. } | KernelError::NoBrokerAddress { .. } => false,
        _ => true,
    }
}

/// Renews the locks of every held queue, one request per broker, marking
/// each process queue locked or unlocked by the answer (Java's
/// `RebalanceImpl#lockAll`). A failed request changes nothing: the locks
/// then expire locally after `LOCK_MAX_LIVE_TIME`.
pub(crate) async fn lock_all(shared: &Shared) {
    for (broker_name, mqs) in shared.assignment.by_broker() {
        let asked = mqs.clone();
        let locked = match lock_batch(shared, &broker_name, mqs).await {
            Ok(locked) => locked,
            Err(err) => {
                tracing::warn!(group = %shared.options.group, broker = %broker_name, error = %err, "renewing queue locks failed");
                continue;
            }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rocketmq_model::ResponseCode;

    use super::*;

    #[test]
    fn only_a_request_that_may_have_reached_the_broker_may_hold_a_lock() {
        let addr = || "b:10911".to_owned();
        let lost = [
            RemotingError::Timeout {
                addr: addr(),
                after: Duration::from_secs(3),
            },
            RemotingError::ConnectionClosed {
                addr: addr(),
                reason: "reset".into(),
            },
        ];
        for err in lost {
            assert!(may_have_locked(&err.into()));
        }
        let never_locked = [
            RemotingError::Connect {
                addr: addr(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            },
            RemotingError::ConnectTimeout {
                addr: addr(),
                after: Duration::from_secs(3),
            },
            RemotingError::Response {
                addr: addr(),
                code: ResponseCode::SYSTEM_ERROR,
                remark: String::new(),
            },
        ];
        for err in never_locked {
            assert!(!may_have_locked(&err.into()));
        }
        assert!(!may_have_locked(&KernelError::NoBrokerAddress {
            broker_name: "b".into()
        }));
    }
}
