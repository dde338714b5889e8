//! [`PullCore`]: the state of a running pull consumer, shared by its public
//! handle, its fetch tasks and its client instance (as a
//! [`ConsumerHandle`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use async_trait::async_trait;
use rocketmq_kernel::allocate::AllocateStrategy;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::consume::ConsumeHooks;
use rocketmq_kernel::offset::{OffsetStore, PersistLog};
use rocketmq_kernel::{ConsumerOptions, Routes};
use rocketmq_model::body::property_keys::{PROP_CONSUME_TYPE, PROP_CONSUMER_START_TIMESTAMP};
use rocketmq_model::body::{
    ConsumeMessageDirectlyResult, ConsumeType, ConsumerData, MessageModel, ProcessQueueInfo,
};
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::queues::{Fetched, QueueEntry, Queues};
use super::{fetch, rebalance};
use crate::consumer::subscriptions::Subscriptions;
use crate::instance::{ClientInstance, ConsumerHandle};

/// How the consumer gets its queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Rebalanced among the group's members.
    Subscribe,
    /// Chosen by the user.
    Assign,
}

/// Everything a running pull consumer works with.
pub(crate) struct PullCore {
    /// Itself, for the instance's calls that start fetch tasks.
    pub(crate) me: Weak<PullCore>,
    pub(crate) options: ConsumerOptions,
    pub(crate) client_id: String,
    pub(crate) instance: ClientInstance,
    pub(crate) api: Arc<dyn BrokerApi>,
    pub(crate) routes: Routes,
    pub(crate) store: Arc<dyn OffsetStore>,
    pub(crate) strategy: Arc<dyn AllocateStrategy>,
    pub(crate) mode: Mode,
    pub(crate) auto_commit: bool,
    pub(crate) subscriptions: Subscriptions,
    pub(crate) queues: Queues,
    pub(crate) buffer: mpsc::Sender<Fetched>,
    pub(crate) tasks: TaskTracker,
    pub(crate) cancel: CancellationToken,
    /// One change of the queue set at a time.
    pub(crate) reassigning: tokio::sync::Mutex<()>,
    /// Per queue being released, the generation of its latest release
    /// (taken with the queues' lock after it).
    pub(crate) releasing: std::sync::Mutex<HashMap<MessageQueue, u64>>,
    pub(crate) started_at: SystemTime,
    /// Set once the build's heartbeat went out: the instance's rebalances
    /// (on registration, on a first route) wait for it, as brokers answer a
    /// group they have not heard of with an error.
    pub(crate) heartbeat_sent: AtomicBool,
    /// The periodic persistence rounds, logged without flooding.
    pub(crate) persist_log: PersistLog,
    /// Called when a poll hands messages out.
    pub(crate) hooks: ConsumeHooks,
    /// The queues read, as the application names them, for those watching
    /// them (`PullConsumer::watch_assignment`).
    pub(crate) assignment: tokio::sync::watch::Sender<BTreeSet<MessageQueue>>,
    /// Where message traces go, when tracing is on.
    pub(crate) tracer: Option<Arc<crate::trace::Tracer>>,
}

impl PullCore {
    pub(crate) fn group(&self) -> &str {
        &self.options.group
    }

    /// The queues read now.
    pub(crate) fn assigned(&self) -> BTreeSet<MessageQueue> {
        self.queues.lock().keys().cloned().collect()
    }

    /// Makes the queue set `wanted`: new queues start fetching, released
    /// ones stop, and their committed offsets are persisted and forgotten
    /// (what was handed out since the last commit goes to the queue's next
    /// reader again, as Java's lite pull consumer does).
    pub(crate) async fn reassign(self: &Arc<Self>, wanted: BTreeSet<MessageQueue>) {
        let current = self.assigned();
        for mq in current.difference(&wanted) {
            self.release(mq).await;
        }
        for mq in wanted.difference(&current) {
            self.add(mq.clone());
        }
        let now = crate::consumer::shared::user_queues(&self.options.namespace, self.assigned());
        self.assignment.send_if_modified(|known| {
            let changed = *known != now;
            if changed {
                *known = now;
            }
            changed
        });
    }

    fn add(self: &Arc<Self>, mq: MessageQueue) {
        let cancel = self.cancel.child_token();
        let mut entry = QueueEntry::new(cancel.clone());
        let generation = entry.generation.subscribe();
        let span = tracing::debug_span!(
            "lite_pull",
            group = %self.options.group,
            topic = %mq.topic,
            queue_id = mq.queue_id,
            broker = %mq.broker_name,
        );
        let task = fetch::run(Arc::clone(self), mq.clone(), generation, cancel).instrument(span);
        // The entry goes in first so that the task finds it.
        let mut queues = self.queues.lock();
        entry.task = Some(self.tasks.spawn(task));
        queues.insert(mq.clone(), entry);
        tracing::info!(group = self.group(), %mq, "queue added");
    }

    /// Stops fetching `mq`, persists its offset and forgets it. Done by a
    /// task of the consumer's, which a caller that gives up on `assign` or
    /// a rebalance does not stop half way: a queue that left the table but
    /// not the store would have its stale offset persisted every 5 s over
    /// its next reader's.
    async fn release(self: &Arc<Self>, mq: &MessageQueue) {
        let mut entry = {
            let mut queues = self.queues.lock();
            let Some(entry) = queues.remove(mq) else {
                return;
            };
            // The latest release of `mq` is the one that may forget it.
            self.releasing_lock().insert(mq.clone(), entry.generation());
            entry
        };
        let generation = entry.generation();
        entry.cancel.cancel();
        let core = Arc::clone(self);
        let mq = mq.clone();
        let released = self.tasks.spawn(async move {
            if let Some(task) = entry.task.take() {
                let _ = task.await;
            }
            if let Err(err) = core.store.persist(&mq).await {
                tracing::warn!(group = core.group(), %mq, error = %err, "persisting a released queue's offset failed");
            }
            // Under the queues' lock: a queue assigned again while this
            // release ran (its caller gave up) keeps the offset it read,
            // and one released again since is forgotten by that release.
            let queues = core.queues.lock();
            let mut releasing = core.releasing_lock();
            if releasing.get(&mq) == Some(&generation) {
                releasing.remove(&mq);
                if !queues.contains_key(&mq) {
                    core.store.remove(&mq);
                }
            }
            drop((releasing, queues));
            tracing::info!(group = core.group(), %mq, "queue released");
        });
        let _ = released.await;
    }

    fn releasing_lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageQueue, u64>> {
        self.releasing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the offsets handed out by `poll` to the store's memory (they
    /// are persisted every 5 s, or by `commit_sync`). Called by the
    /// application, or by `poll` itself with auto commit. What was handed
    /// out is the truth, also below an offset stored earlier (one past the
    /// queue's end that the broker moved back): Java's `updateOffset(mq,
    /// offset, false)`.
    pub(crate) fn commit(&self) {
        // Under the queues' lock: a seek cannot slip in between and be
        // overwritten with an offset read before it.
        self.queues.each_consumed(|mq, offset| {
            self.store.update(mq, offset, false);
        });
    }

    /// [`commit`](Self::commit) for `queues` only, all or none: the queue
    /// that is not read by this consumer is the error (Java's `commit(Set,
    /// persist)` passes over it in silence).
    pub(crate) fn commit_queues(
        &self,
        queues: &BTreeSet<MessageQueue>,
    ) -> Result<(), MessageQueue> {
        let entries = self.queues.lock();
        if let Some(mq) = queues.iter().find(|mq| !entries.contains_key(*mq)) {
            return Err(mq.clone());
        }
        for mq in queues {
            if let Some(offset) = entries.get(mq).and_then(QueueEntry::handed_out) {
                self.store.update(mq, offset, false);
            }
        }
        Ok(())
    }

    /// Moves `mq` to `offset`: buffered messages are dropped, the next
    /// poll starts there and the offset is committed (forced, also for a
    /// queue whose fetch has not read its offset yet).
    pub(crate) fn seek(&self, mq: &MessageQueue, offset: i64) -> bool {
        // Forced under the queues' lock: a release that takes the queue away
        // either comes first (no seek) or persists the sought offset.
        let found = self.queues.with(mq, |entry| {
            entry.restart_at(Some(offset));
            entry.consumed = Some(offset);
            entry.seeks += 1;
            self.store.force(mq, offset);
        });
        if found.is_some() {
            tracing::info!(group = self.group(), %mq, offset, "seek");
        }
        found.is_some()
    }

    /// Commits `offsets` as they are, all or none: the queue that is not
    /// read by this consumer is the error. Under the queues' lock, as a
    /// seek: a release cannot take a queue away between check and write.
    pub(crate) fn force_offsets(
        &self,
        offsets: &BTreeMap<MessageQueue, i64>,
    ) -> Result<(), MessageQueue> {
        let queues = self.queues.lock();
        if let Some(mq) = offsets.keys().find(|mq| !queues.contains_key(*mq)) {
            return Err(mq.clone());
        }
        for (mq, offset) in offsets {
            self.store.force(mq, *offset);
        }
        Ok(())
    }

    /// Pauses or resumes `mq`; pausing drops what is buffered, and what a
    /// stream took but has not yielded, which is pulled again after the
    /// resume.
    pub(crate) fn set_paused(&self, mq: &MessageQueue, paused: bool) {
        self.queues.with(mq, |entry| {
            if entry.paused == paused {
                return;
            }
            entry.paused = paused;
            let from = if paused {
                entry.consumed = entry.handed_out();
                entry.rewound_at = Some(entry.accepted);
                // Nothing handed out yet: back to where fetching started.
                entry.consumed.or(entry.start)
            } else {
                entry.next_pull
            };
            entry.restart_at(from);
        });
    }

    /// Messages pulled and not handed out.
    pub(crate) fn buffered(&self) -> usize {
        self.queues.lock().values().map(|e| e.buffered).sum()
    }

    /// Stops every fetch task and waits for them.
    pub(crate) async fn stop_fetching(&self) {
        self.cancel.cancel();
        // A rebalance under way (the instance's) ends first: it would ask
        // the brokers about the group after the shutdown unregistered it.
        drop(self.reassigning.lock().await);
        self.tasks.close();
        self.tasks.wait().await;
    }

    fn queue_info(&self) -> BTreeMap<MessageQueue, ProcessQueueInfo> {
        let committed = self.store.snapshot();
        self.queues
            .lock()
            .iter()
            .map(|(mq, entry)| {
                let info = ProcessQueueInfo {
                    cached_msg_count: i32::try_from(entry.buffered).unwrap_or(i32::MAX),
                    cached_msg_size_in_mib: i32::try_from(entry.buffered_bytes / (1024 * 1024))
                        .unwrap_or(i32::MAX),
                    commit_offset: committed.get(mq).copied().unwrap_or(-1),
                    ..ProcessQueueInfo::default()
                };
                (mq.clone(), info)
            })
            .collect()
    }
}

#[async_trait]
impl ConsumerHandle for PullCore {
    fn group(&self) -> &str {
        &self.options.group
    }

    fn heartbeat_data(&self) -> ConsumerData {
        self.subscriptions
            .consumer_data(&self.options, ConsumeType::ConsumeActively)
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.subscriptions.topics()
    }

    async fn rebalance(&self) {
        if !self.heartbeat_sent.load(Ordering::Acquire) {
            return; // the build rebalances right after its heartbeat
        }
        if let Some(me) = self.me.upgrade() {
            rebalance::run(&me).await;
        }
    }

    /// Persists what was committed; commits nothing itself (auto commit
    /// happens in `poll`).
    async fn persist_offsets(&self) {
        match self.store.persist_all().await {
            Ok(()) => self.persist_log.persisted(self.group()),
            Err(err) => self.persist_log.failed(self.group(), &err),
        }
    }

    async fn reset_offset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        for (mq, offset) in offsets.iter().filter(|(mq, _)| mq.topic == topic) {
            if self.seek(mq, *offset) {
                if let Err(err) = self.store.persist(mq).await {
                    tracing::warn!(%mq, error = %err, "persisting a reset offset failed");
                }
            }
        }
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        let mut properties = BTreeMap::new();
        properties.insert("consumerGroup".to_owned(), self.group().to_owned());
        let model = match self.options.message_model {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        };
        properties.insert("messageModel".to_owned(), model.to_owned());
        properties.insert("autoCommit".to_owned(), self.auto_commit.to_string());
        properties.insert(
            PROP_CONSUME_TYPE.to_owned(),
            ConsumeType::ConsumeActively.as_str().to_owned(),
        );
        let started = self
            .started_at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        properties.insert(
            PROP_CONSUMER_START_TIMESTAMP.to_owned(),
            started.to_string(),
        );
        ConsumerRunningInfo {
            properties,
            subscription_set: self.subscriptions.list(),
            mq_table: self.queue_info(),
            ..ConsumerRunningInfo::default()
        }
    }

    fn consumer_status(&self, topic: &str) -> HashMap<MessageQueue, i64> {
        self.store
            .snapshot()
            .into_iter()
            .filter(|(mq, _)| mq.topic == topic)
            .collect()
    }

    async fn consume_directly(
        &self,
        _msg: MessageExt,
        _broker_name: Option<String>,
    ) -> Option<ConsumeMessageDirectlyResult> {
        None
    }
}
