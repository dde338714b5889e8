//! The queues a consumer owns: per queue its process queue and the pull task
//! that feeds it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocketmq_model::MessageQueue;
use rocketmq_model::body::MessageRequestMode;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::pop::PopQueue;
use crate::process_queue::ProcessQueue;

/// The running pull task of one queue.
#[derive(Debug)]
pub(crate) struct PullHandle {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl PullHandle {
    pub(crate) fn new(cancel: CancellationToken, task: JoinHandle<()>) -> Self {
        PullHandle { cancel, task }
    }

    /// Whether the task ended (it stops by itself when its queue is dropped,
    /// e.g. after OFFSET_ILLEGAL).
    pub(crate) fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the task and waits until it has ended, so that it touches
    /// neither the process queue nor the offset store afterwards.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        match self.task.await {
            Err(err) if err.is_panic() => tracing::error!(error = %err, "a pull task panicked"),
            _ => {}
        }
    }
}

/// One owned queue.
#[derive(Debug)]
pub(crate) struct Owned {
    pub(crate) pq: Arc<ProcessQueue>,
    /// `None` once stopped (a dropped orderly queue waiting for its unlock).
    pub(crate) pull: Option<PullHandle>,
    /// A queue the brokers assigned in pop mode: its count of popped
    /// messages waiting (its task pops; its process queue only says whether
    /// it was dropped). `None` for a pulled queue.
    pub(crate) popped: Option<Arc<PopQueue>>,
}

impl Owned {
    /// Whether the queue is pulled or popped.
    pub(crate) fn mode(&self) -> MessageRequestMode {
        if self.popped.is_some() {
            MessageRequestMode::Pop
        } else {
            MessageRequestMode::Pull
        }
    }

    /// Whether the queue must leave the table although it is still
    /// allocated here: it was dropped (OFFSET_ILLEGAL, or an orderly unlock
    /// that must be retried) and its task is done, or its task ended
    /// without the queue being dropped (a panic).
    fn is_stale(&self) -> bool {
        self.pull.as_ref().is_none_or(PullHandle::is_finished)
    }
}

/// Queue → owned state, shared by rebalance rounds, pull tasks and readers.
/// The lock is never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Assignment {
    entries: Mutex<BTreeMap<MessageQueue, Owned>>,
}

impl Assignment {
    fn entries(&self) -> MutexGuard<'_, BTreeMap<MessageQueue, Owned>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The queues held and not dropped.
    pub(crate) fn assigned(&self) -> BTreeSet<MessageQueue> {
        self.entries()
            .iter()
            .filter(|(_, owned)| !owned.pq.is_dropped())
            .map(|(mq, _)| mq.clone())
            .collect()
    }

    /// Every process queue in the table (dropped ones included, until their
    /// removal completes).
    pub(crate) fn process_queues(&self) -> Vec<(MessageQueue, Arc<ProcessQueue>)> {
        self.entries()
            .iter()
            .filter(|(_, owned)| owned.popped.is_none())
            .map(|(mq, owned)| (mq.clone(), Arc::clone(&owned.pq)))
            .collect()
    }

    /// The popped queues, each with its count and whether it was dropped.
    pub(crate) fn pop_queues(&self) -> Vec<(MessageQueue, Arc<PopQueue>, bool)> {
        self.entries()
            .iter()
            .filter_map(|(mq, owned)| {
                let popped = owned.popped.as_ref()?;
                Some((mq.clone(), Arc::clone(popped), owned.pq.is_dropped()))
            })
            .collect()
    }

    /// The process queue of `mq`.
    pub(crate) fn process_queue(&self, mq: &MessageQueue) -> Option<Arc<ProcessQueue>> {
        self.entries().get(mq).map(|owned| Arc::clone(&owned.pq))
    }

    /// Whether `mq` has an entry (dropped or not) and is pulled, not popped.
    pub(crate) fn is_pulled(&self, mq: &MessageQueue) -> bool {
        (self.entries().get(mq)).is_some_and(|owned| owned.popped.is_none())
    }

    /// Whether `mq` has an entry (dropped or not).
    pub(crate) fn contains(&self, mq: &MessageQueue) -> bool {
        self.entries().contains_key(mq)
    }

    /// How many queues are held and not dropped, of every topic (the divisor
    /// of the per-topic flow-control thresholds: Java divides them by the
    /// size of the whole process queue table).
    pub(crate) fn count_owned(&self) -> usize {
        self.entries()
            .values()
            .filter(|owned| !owned.pq.is_dropped())
            .count()
    }

    pub(crate) fn insert(&self, mq: MessageQueue, owned: Owned) {
        if let Some(previous) = self.entries().insert(mq, owned) {
            // Never expected: every caller checks `contains` under the
            // rebalance lock first. Stop the replaced task all the same.
            previous.pq.mark_dropped();
            if let Some(pull) = previous.pull {
                pull.cancel.cancel();
            }
        }
    }

    pub(crate) fn take(&self, mq: &MessageQueue) -> Option<Owned> {
        self.entries().remove(mq)
    }

    /// Removes every entry.
    pub(crate) fn take_all(&self) -> Vec<(MessageQueue, Owned)> {
        std::mem::take(&mut *self.entries()).into_iter().collect()
    }

    /// The queues of `topic` to remove in a round whose allocation for the
    /// topic is `allocated`: those no longer allocated (or to be read in
    /// another mode), and stale ones (see
    /// [`Owned::is_stale`]). A dropped queue whose task still runs (it is
    /// fixing an OFFSET_ILLEGAL) is left alone while still allocated.
    pub(crate) fn to_remove(
        &self,
        topic: &str,
        allocated: &BTreeMap<MessageQueue, MessageRequestMode>,
    ) -> Vec<MessageQueue> {
        self.entries()
            .iter()
            .filter(|(mq, owned)| {
                mq.topic == topic && (allocated.get(*mq) != Some(&owned.mode()) || owned.is_stale())
            })
            .map(|(mq, _)| mq.clone())
            .collect()
    }

    /// The queues whose topic is not in `topics` (unsubscribed).
    pub(crate) fn outside(&self, topics: &BTreeSet<String>) -> Vec<MessageQueue> {
        self.entries()
            .keys()
            .filter(|mq| !topics.contains(&mq.topic))
            .cloned()
            .collect()
    }

    /// The held, not dropped queues grouped by broker name (for lock
    /// renewal).
    pub(crate) fn by_broker(&self) -> BTreeMap<String, BTreeSet<MessageQueue>> {
        let mut brokers: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
        for (mq, owned) in self.entries().iter() {
            if !owned.pq.is_dropped() {
                brokers
                    .entry(mq.broker_name.clone())
                    .or_default()
                    .insert(mq.clone());
            }
        }
        brokers
    }
}
