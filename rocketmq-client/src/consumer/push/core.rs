//! [`PushCore`]: the state of a running push consumer, shared by its public
//! handle and its client instance (as a [`ConsumerHandle`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::FutureExt;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::consume::{
    ConcurrentContext, ConcurrentResult, ConsumeEnv, ConsumeStats, OrderlyContext, OrderlyResult,
    ShutdownReport as ConsumeShutdown, restore_retry_topic,
};
use rocketmq_kernel::offset::{OffsetStore, PersistLog, ReadOffsetType};
use rocketmq_kernel::rebalance::AssignmentListener;
use rocketmq_kernel::{
    ConcurrentService, ConsumerOptions, ExpiryCleaner, OrderlyService, Rebalancer, Routes,
};
use rocketmq_model::body::{
    ConsumeMessageDirectlyResult, ConsumeResult, ConsumeType, ConsumerData, MessageModel,
};
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue, SubscriptionData};
use tokio::time::Instant;

use crate::consumer::listener::Listener;
use crate::consumer::shared::OffsetsFileClaim;
use crate::consumer::stats::{self, PullStats, StatusTable};
use crate::consumer::subscriptions::Subscriptions;
use crate::error::Result;
use crate::instance::{ClientInstance, ConsumerHandle};

/// How long a queue's pulls fail before its lag gauge is refreshed from
/// the broker's max offset rather than left at the last pull answer's.
const STUCK_AFTER: Duration = Duration::from_secs(30);

/// How long the refresh of stuck queues' max offsets may take.
const STUCK_REFRESH_LIMIT: Duration = Duration::from_secs(1);

/// The consume service in use, kept typed for its shutdown.
pub(crate) enum Service {
    Concurrent(Arc<ConcurrentService>),
    Orderly(Arc<OrderlyService>),
}

impl Service {
    pub(crate) async fn shutdown(&self, timeout: Duration) -> ConsumeShutdown {
        match self {
            Service::Concurrent(service) => service.shutdown(timeout).await,
            Service::Orderly(service) => service.shutdown(timeout).await,
        }
    }
}

/// Everything a running push consumer works with.
pub(crate) struct PushCore {
    pub(crate) options: Arc<ConsumerOptions>,
    pub(crate) client_id: String,
    pub(crate) instance: ClientInstance,
    /// The user's subscriptions plus, clustering, `%RETRY%<group>`.
    pub(crate) subscriptions: Subscriptions,
    /// The user's listener, unmeasured (for direct consumption).
    pub(crate) listener: Listener,
    pub(crate) service: Service,
    pub(crate) env: ConsumeEnv,
    pub(crate) api: Arc<dyn BrokerApi>,
    pub(crate) routes: Routes,
    pub(crate) store: Arc<dyn OffsetStore>,
    pub(crate) consume_stats: Arc<ConsumeStats>,
    pub(crate) pull_stats: Arc<PullStats>,
    pub(crate) status: StatusTable,
    pub(crate) rebalancer: OnceLock<Rebalancer>,
    /// Concurrent consumers: sends back messages consumed for longer than
    /// `consume_timeout`, scanning every `consume_timeout` (Java's
    /// `cleanExpireMsg`).
    pub(crate) expiry: OnceLock<ExpiryCleaner>,
    pub(crate) started_at: SystemTime,
    /// One offset reset at a time.
    pub(crate) resetting: tokio::sync::Mutex<()>,
    /// The queues whose gauges were set last time, to zero those that left.
    pub(crate) gauged: std::sync::Mutex<BTreeSet<MessageQueue>>,
    /// The periodic persistence rounds, logged without flooding.
    pub(crate) persist_log: PersistLog,
    /// Where message traces go, when tracing is on.
    pub(crate) tracer: Option<Arc<crate::trace::Tracer>>,
    /// The local offsets file held while the consumer lives (broadcasting).
    pub(crate) _offsets_file: Option<OffsetsFileClaim>,
}

impl PushCore {
    pub(crate) fn group(&self) -> &str {
        &self.options.group
    }

    pub(crate) fn rebalancer(&self) -> Option<&Rebalancer> {
        self.rebalancer.get()
    }

    /// Starts the expiry cleaner of a concurrent consumer (once).
    pub(crate) fn start_expiry(self: &Arc<Self>) {
        if !matches!(self.service, Service::Concurrent(_)) {
            return;
        }
        let core = Arc::downgrade(self);
        let queues = move || {
            core.upgrade()
                .and_then(|core| core.rebalancer().map(Rebalancer::process_queues))
                .unwrap_or_default()
        };
        let cleaner = ExpiryCleaner::start(self.env.clone(), self.options.consume_timeout, queues);
        let _ = self.expiry.set(cleaner);
    }

    /// What the rebalancer calls when a round changed the queues of
    /// `topics` (Java's `RebalancePushImpl#messageQueueChanged`): their
    /// subscriptions get new versions and every broker a heartbeat at once,
    /// so that the brokers filter the group's messages with this client's
    /// subscription rather than with one a member that has left sent with
    /// a higher version (ROCKETMQ-175: messages the broker filtered out
    /// are lost to the queues' new owner).
    ///
    /// Only the heartbeats carry the new version; pulls keep carrying the
    /// version the subscription was made with, never above what the brokers
    /// have, so none is refused SUBSCRIPTION_NOT_LATEST while the heartbeat
    /// is on its way (Java's pulls carry the new version, and its new
    /// queues wait 500 ms for the heartbeat to get there first).
    pub(crate) fn on_assignment_change(core: &Arc<Self>) -> AssignmentListener {
        let core = Arc::downgrade(core);
        Arc::new(move |topics: &[String]| {
            let Some(core) = core.upgrade() else {
                return;
            };
            core.subscriptions.renew_versions(topics);
            core.instance.heartbeat_soon();
        })
    }

    /// Subscribes to (or replaces the subscription of) a topic while
    /// running. The heartbeats' copy is versioned anew as it goes in:
    /// above every version a rebalance gave the topic meanwhile (the
    /// subscription was made before waiting for an offset reset, whose
    /// rebalance renews the old one's version), or the brokers would keep
    /// the old subscription as the newer. The pulls' copy keeps its lower
    /// version.
    pub(crate) fn set_subscription(&self, subscription: SubscriptionData) {
        if let Some(rebalancer) = self.rebalancer() {
            rebalancer.subscribe(subscription.clone());
        }
        self.subscriptions.insert_latest(subscription);
    }

    /// The subscriptions to pop retry topics that the rebalancer added of
    /// its own (a topic the brokers switched back from pop to pull mode,
    /// see the kernel's `rebalance` docs): the brokers are told of them
    /// with the consumer's own (Java's `subscriptionInner` holds both).
    pub(crate) fn pop_retry_subscriptions(&self) -> Vec<SubscriptionData> {
        let Some(rebalancer) = self.rebalancer() else {
            return Vec::new();
        };
        let prefix = format!("{}_", self.options.retry_topic());
        (rebalancer.subscriptions().into_iter())
            .filter(|s| s.topic.starts_with(&prefix) && self.subscriptions.get(&s.topic).is_none())
            .collect()
    }

    /// Every subscription the brokers are told of: the consumer's and the
    /// [pop retry topics'](Self::pop_retry_subscriptions).
    pub(crate) fn all_subscriptions(&self) -> Vec<SubscriptionData> {
        let mut all = self.subscriptions.list();
        all.extend(self.pop_retry_subscriptions());
        all
    }

    pub(crate) fn remove_subscription(&self, topic: &str) {
        if let Some(rebalancer) = self.rebalancer() {
            rebalancer.unsubscribe(topic);
        }
        self.subscriptions.remove(topic);
    }

    /// Broker max offset minus committed offset of every owned queue that
    /// has a committed offset.
    pub(crate) async fn lag(&self) -> Result<BTreeMap<MessageQueue, i64>> {
        let Some(rebalancer) = self.rebalancer() else {
            return Ok(BTreeMap::new());
        };
        let mut lags = BTreeMap::new();
        for mq in rebalancer.assigned() {
            // Memory only: a rebalance may take `mq` away while this loop
            // awaits the brokers, and reading through to the broker would
            // bring its old offset back into the store, whose periodic
            // persistence would then write it over the new owner's.
            let committed = self.store.read(&mq, ReadOffsetType::Memory).await?;
            let Some(committed) = committed else {
                continue;
            };
            let addr = self.routes.master_addr(&mq).await?;
            let max = self.api.max_offset(&addr, &mq).await?;
            let lag = (max - committed).max(0);
            stats::set_lag(self.group(), &mq, lag);
            // Zeroed by the next gauge update if the queue has left by then.
            self.gauged
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(mq.clone());
            lags.insert(mq, lag);
        }
        Ok(lags)
    }

    /// Asks the brokers for the max offset of the queues whose pulls have
    /// failed for [`STUCK_AFTER`] or longer, so that their lag gauge keeps
    /// growing with what is sent meanwhile instead of standing at its last
    /// value (the failure a lag alert is for). Bounded by
    /// [`STUCK_REFRESH_LIMIT`]: a broker that does not answer leaves the
    /// gauge as it was.
    async fn refresh_stuck_max_offsets(&self) {
        let Some(rebalancer) = self.rebalancer() else {
            return;
        };
        let Some(before) = Instant::now().checked_sub(STUCK_AFTER) else {
            return;
        };
        let stuck = self
            .pull_stats
            .failing_since(&rebalancer.assigned(), before);
        if stuck.is_empty() {
            return;
        }
        let asks = stuck.iter().map(|mq| async move {
            let addr = self.routes.master_addr(mq).await.ok()?;
            let max = self.api.max_offset(&addr, mq).await.ok()?;
            self.pull_stats.set_max_offset(mq, max);
            Some(())
        });
        let _ = tokio::time::timeout(STUCK_REFRESH_LIMIT, futures::future::join_all(asks)).await;
    }

    /// Zeroes the gauges of every queue they were set for (at shutdown: a
    /// stopped consumer's lag would otherwise stand for ever).
    pub(crate) fn clear_gauges(&self) {
        let gauged =
            std::mem::take(&mut *self.gauged.lock().unwrap_or_else(PoisonError::into_inner));
        for mq in &gauged {
            stats::clear_queue(self.group(), mq);
        }
    }

    /// Updates the per-queue gauges: cached messages and bytes, and the lag
    /// as the last pull answers reported the broker's max offset.
    fn update_gauges(&self) {
        let Some(rebalancer) = self.rebalancer() else {
            return;
        };
        let committed = self.store.snapshot();
        let queues = rebalancer.process_queues();
        let owned: BTreeSet<MessageQueue> = queues.iter().map(|(mq, _)| mq.clone()).collect();
        {
            let mut gauged = self.gauged.lock().unwrap_or_else(PoisonError::into_inner);
            for gone in gauged.difference(&owned) {
                stats::clear_queue(self.group(), gone);
            }
            gauged.clone_from(&owned);
        }
        self.pull_stats.retain(&owned);
        for (mq, pq) in queues {
            stats::set_cached(self.group(), &mq, pq.cached_count(), pq.cached_bytes());
            if let (Some(max), Some(offset)) = (self.pull_stats.max_offset(&mq), committed.get(&mq))
            {
                stats::set_lag(self.group(), &mq, (max - offset).max(0));
            }
        }
    }

    /// RESET_CONSUMER_CLIENT_OFFSET for the owned queues of `topic` that
    /// the broker names (each broker names its own): those queues are
    /// dropped (pull tasks stopped, offsets persisted and forgotten), the
    /// new offsets forced into the store and persisted, and a rebalance adds
    /// them back from there. The topic's other queues go on undisturbed.
    async fn reset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        let _one_at_a_time = self.resetting.lock().await;
        let (Some(rebalancer), true) = (self.rebalancer(), self.subscriptions.get(topic).is_some())
        else {
            tracing::warn!(group = self.group(), %topic, "offset reset for a topic not subscribed");
            return;
        };
        let owned: Vec<MessageQueue> = rebalancer
            .assigned()
            .into_iter()
            .filter(|mq| mq.topic == topic && offsets.contains_key(mq))
            .collect();
        if owned.is_empty() {
            tracing::info!(group = self.group(), %topic, "offset reset names no queue of this client");
            return;
        }
        let reset = rebalancer
            .reset_queues(&owned, |dropped| async move {
                for mq in &dropped {
                    if let Some(offset) = offsets.get(mq) {
                        self.force_offset(mq, *offset).await;
                    }
                }
            })
            .await;
        if reset.is_empty() {
            tracing::info!(group = self.group(), %topic,
                "the offset reset names only queues this client pops, which keep no offset here (as Java's)");
        } else {
            tracing::info!(group = self.group(), %topic, queues = reset.len(), "offsets reset");
        }
    }

    /// Writes `offset` for the removed queue `mq` through the store:
    /// forced into memory (as Java's `updateOffset`, without asking the
    /// broker first), persisted, removed again; the queue's return reads it.
    async fn force_offset(&self, mq: &MessageQueue, offset: i64) {
        let store = &self.store;
        if !store.force(mq, offset) {
            // A store of the application's own, written before `force`: read
            // the queue back (which a store takes as its return), then update.
            if let Err(err) = store.read(mq, ReadOffsetType::Store).await {
                tracing::debug!(%mq, error = %err, "reading the offset before a reset failed");
            }
            if !store.update(mq, offset, false) {
                tracing::warn!(group = self.group(), %mq, offset, "the offset store refused a reset offset");
                return;
            }
        }
        let persisted = store.persist(mq).await;
        store.remove(mq);
        match persisted {
            Ok(()) => tracing::info!(group = self.group(), %mq, offset, "offset reset"),
            Err(err) => {
                tracing::warn!(group = self.group(), %mq, offset, error = %err, "persisting a reset offset failed; it is lost")
            }
        }
    }

    /// CONSUME_MESSAGE_DIRECTLY: the user's listener on one message.
    pub(crate) async fn consume_one(
        &self,
        mut msg: MessageExt,
        broker_name: Option<String>,
    ) -> ConsumeMessageDirectlyResult {
        restore_retry_topic(&mut msg, &self.options.retry_topic());
        self.options
            .namespace
            .unwrap_in_place(&mut msg.message.topic);
        let mq = MessageQueue::new(msg.topic(), broker_name.unwrap_or_default(), msg.queue_id);
        let msgs = vec![msg];
        let started = Instant::now();
        let mut result = ConsumeMessageDirectlyResult::default();
        let outcome = match &self.listener {
            Listener::Concurrent(listener) => {
                let mut ctx = ConcurrentContext::new(mq);
                AssertUnwindSafe(listener.consume(msgs, &mut ctx))
                    .catch_unwind()
                    .await
                    .map(|r| match r {
                        ConcurrentResult::Success => ConsumeResult::Success,
                        ConcurrentResult::RetryLater => ConsumeResult::Later,
                    })
            }
            Listener::Orderly(listener) => {
                result.order = true;
                let mut ctx = OrderlyContext::new(mq);
                let outcome = AssertUnwindSafe(listener.consume(msgs, &mut ctx))
                    .catch_unwind()
                    .await;
                result.auto_commit = ctx.auto_commit;
                outcome.map(|r| match r {
                    OrderlyResult::Success => ConsumeResult::Success,
                    OrderlyResult::SuspendCurrentQueue => ConsumeResult::Later,
                })
            }
        };
        result.consume_result = Some(outcome.unwrap_or_else(|_| {
            result.remark = Some("the listener panicked".to_owned());
            ConsumeResult::ThrowException
        }));
        result.spent_time_mills = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        result
    }
}

#[async_trait]
impl ConsumerHandle for PushCore {
    fn group(&self) -> &str {
        &self.options.group
    }

    fn heartbeat_data(&self) -> ConsumerData {
        let mut data = self
            .subscriptions
            .consumer_data(&self.options, ConsumeType::ConsumePassively);
        (data.subscription_data_set).extend(self.pop_retry_subscriptions());
        data
    }

    fn subscribed_topics(&self) -> Vec<String> {
        let mut topics = self.subscriptions.topics();
        topics.extend(self.pop_retry_subscriptions().into_iter().map(|s| s.topic));
        topics
    }

    async fn rebalance(&self) {
        if let Some(rebalancer) = self.rebalancer() {
            rebalancer.trigger();
        }
    }

    async fn persist_offsets(&self) {
        match self.store.persist_all().await {
            Ok(()) => self.persist_log.persisted(self.group()),
            Err(err) => self.persist_log.failed(self.group(), &err),
        }
        self.refresh_stuck_max_offsets().await;
        self.update_gauges();
    }

    async fn reset_offset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        self.reset(topic, offsets).await;
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        super::running_info::build(self)
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
        msg: MessageExt,
        broker_name: Option<String>,
    ) -> Option<ConsumeMessageDirectlyResult> {
        Some(self.consume_one(msg, broker_name).await)
    }
}

/// Whether `model` sends failed messages back (clustering) or drops them.
pub(crate) fn sends_back(model: MessageModel) -> bool {
    model == MessageModel::Clustering
}
