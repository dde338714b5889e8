//! Queue locks for orderly consumption (Java's `RebalanceLockManager`): a
//! lock belongs to one client of a group and lapses 60 s after it was last
//! taken or renewed, on tokio time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_model::MessageQueue;
use tokio::time::Instant;

/// Java's `REBALANCE_LOCK_MAX_LIVE_TIME`.
pub(crate) const LOCK_LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Lease {
    client_id: String,
    renewed: Instant,
}

impl Lease {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.renewed) > LOCK_LEASE
    }
}

/// Locks by group and queue. Emptied when the broker stops.
#[derive(Debug, Default)]
pub(crate) struct Locks {
    table: Mutex<BTreeMap<String, BTreeMap<MessageQueue, Lease>>>,
}

impl Locks {
    fn table(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<MessageQueue, Lease>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks (or renews) every queue that is free, lapsed or already
    /// `client_id`'s; returns those now locked by it.
    pub(crate) fn lock(
        &self,
        group: &str,
        client_id: &str,
        queues: &BTreeSet<MessageQueue>,
    ) -> BTreeSet<MessageQueue> {
        let now = Instant::now();
        let mut table = self.table();
        let leases = table.entry(group.to_owned()).or_default();
        let mut locked = BTreeSet::new();
        for mq in queues {
            let free = leases
                .get(mq)
                .is_none_or(|lease| lease.client_id == client_id || lease.expired(now));
            if free {
                let lease = Lease {
                    client_id: client_id.to_owned(),
                    renewed: now,
                };
                leases.insert(mq.clone(), lease);
                locked.insert(mq.clone());
            }
        }
        locked
    }

    /// Releases the queues `client_id` holds among `queues`.
    pub(crate) fn unlock(&self, group: &str, client_id: &str, queues: &BTreeSet<MessageQueue>) {
        let mut table = self.table();
        if let Some(leases) = table.get_mut(group) {
            for mq in queues {
                if leases.get(mq).is_some_and(|l| l.client_id == client_id) {
                    leases.remove(mq);
                }
            }
        }
    }

    /// The live holder of a queue's lock.
    pub(crate) fn holder(&self, group: &str, mq: &MessageQueue) -> Option<String> {
        let now = Instant::now();
        let table = self.table();
        let lease = table.get(group)?.get(mq)?;
        (!lease.expired(now)).then(|| lease.client_id.clone())
    }

    /// Whether any lock of `group` is live (the group consumes orderly).
    pub(crate) fn any_live(&self, group: &str) -> bool {
        let now = Instant::now();
        self.table()
            .get(group)
            .is_some_and(|leases| leases.values().any(|lease| !lease.expired(now)))
    }

    /// Forgets every lock (the broker stopped).
    pub(crate) fn clear(&self) {
        self.table().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lock_is_exclusive_until_released_or_lapsed() {
        let locks = Locks::default();
        let mq = MessageQueue::new("T", "broker-a", 0);
        let set = BTreeSet::from([mq.clone()]);
        assert_eq!(locks.lock("g", "c1", &set), set);
        assert!(locks.lock("g", "c2", &set).is_empty());
        assert_eq!(locks.lock("g", "c1", &set), set, "renewal");
        tokio::time::advance(LOCK_LEASE + Duration::from_millis(1)).await;
        assert_eq!(locks.holder("g", &mq), None);
        assert_eq!(locks.lock("g", "c2", &set), set);
        locks.unlock("g", "c1", &set);
        assert_eq!(locks.holder("g", &mq).as_deref(), Some("c2"));
        locks.unlock("g", "c2", &set);
        assert_eq!(locks.holder("g", &mq), None);
    }
}
