//! The state one consumer group's rebalancer shares with its pull tasks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rocketmq_model::SubscriptionData;
use rocketmq_model::body::MessageModel;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::AssignmentListener;
use super::add_failures::AddFailures;
use super::assignment::Assignment;
use crate::allocate::AllocateStrategy;
use crate::api::BrokerApi;
use crate::consume::ConsumeService;
use crate::consumer_options::ConsumerOptions;
use crate::offset::OffsetStore;
use crate::route::Routes;

/// Everything rebalance rounds and pull tasks read or change.
pub(crate) struct Shared {
    pub(crate) client_id: String,
    pub(crate) options: ConsumerOptions,
    pub(crate) strategy: Arc<dyn AllocateStrategy>,
    pub(crate) broker: Arc<dyn BrokerApi>,
    pub(crate) routes: Routes,
    pub(crate) store: Arc<dyn OffsetStore>,
    pub(crate) consume: Arc<dyn ConsumeService>,
    pub(crate) subscriptions: RwLock<BTreeMap<String, SubscriptionData>>,
    pub(crate) assignment: Assignment,
    /// Allocated queues not added yet, for logging.
    pub(crate) add_failures: AddFailures,
    /// Whether the consumer is suspended (pull tasks wait).
    pub(crate) paused: watch::Sender<bool>,
    /// Bumped whenever a round changed the assignment.
    pub(crate) changes: watch::Sender<u64>,
    /// Told of the topics whose queues a round changed.
    pub(crate) on_change: Option<AssignmentListener>,
    pub(crate) trigger: Trigger,
    /// Held by a rebalance round and by lock renewal: one at a time.
    pub(crate) run_lock: tokio::sync::Mutex<()>,
    /// The pull tasks (each also has a child token of `cancel`).
    pub(crate) pull_tasks: TaskTracker,
    /// Cancelled at shutdown: stops the background loops and every pull task.
    pub(crate) cancel: CancellationToken,
}

impl Shared {
    /// Whether queues are locked on the broker before they are pulled
    /// (orderly consumption in clustering mode).
    pub(crate) fn locks_queues(&self) -> bool {
        self.consume.is_orderly() && self.options.message_model == MessageModel::Clustering
    }

    /// Whether the brokers choose this consumer's queues (QUERY_ASSIGNMENT)
    /// rather than its strategy: only when asked for, and never for an
    /// orderly or broadcasting consumer (Java's
    /// `RebalancePushImpl.clientRebalance`).
    pub(crate) fn broker_rebalances(&self) -> bool {
        !self.options.client_rebalance
            && !self.consume.is_orderly()
            && self.options.message_model == MessageModel::Clustering
    }

    /// The subscription of `topic`.
    pub(crate) fn subscription(&self, topic: &str) -> Option<SubscriptionData> {
        self.subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .cloned()
    }

    /// The subscription of `topic` when it is no longer `seen` (another
    /// version, or gone: `None` then too); nothing is copied when it is the
    /// same.
    pub(crate) fn changed_since(&self, seen: &SubscriptionData) -> Option<SubscriptionData> {
        self.subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&seen.topic)
            .filter(|now| now.sub_version != seen.sub_version)
            .cloned()
    }

    /// The subscribed topics.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    /// Records that a round changed the assignment.
    pub(crate) fn assignment_changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("group", &self.options.group)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Rebalance requests, coalesced: requests made while a round runs are all
/// served by one more round after it.
#[derive(Debug)]
pub(crate) struct Trigger {
    requested: AtomicU64,
    notify: Notify,
    completed: watch::Sender<u64>,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger {
            requested: AtomicU64::new(0),
            notify: Notify::new(),
            completed: watch::Sender::new(0),
        }
    }
}

impl Trigger {
    /// Asks for a round; returns the request's number.
    pub(crate) fn request(&self) -> u64 {
        let number = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        self.notify.notify_one();
        number
    }

    /// Resolves when a round was requested (a request made before this call
    /// resolves it at once: `Notify` keeps one permit).
    pub(crate) async fn requested(&self) {
        self.notify.notified().await;
    }

    /// The number of the latest request; a round starting now serves it.
    pub(crate) fn latest(&self) -> u64 {
        self.requested.load(Ordering::Acquire)
    }

    /// A round serving every request up to `number` is done.
    pub(crate) fn complete(&self, number: u64) {
        self.completed.send_if_modified(|done| {
            let advanced = number > *done;
            *done = (*done).max(number);
            advanced
        });
    }

    /// Waits until request `number` was served.
    pub(crate) async fn served(&self, number: u64) {
        let mut completed = self.completed.subscribe();
        // The sender lives in `self`, so the channel never closes here.
        let _ = completed.wait_for(|done| *done >= number).await;
    }
}
