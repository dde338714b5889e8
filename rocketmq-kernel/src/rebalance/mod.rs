//! Rebalance: which queues of its subscribed topics a push consumer owns,
//! and the pull task of each (Java's `RebalanceImpl` and
//! `RebalancePushImpl`).
//!
//! A [`Rebalancer`] serves one consumer group of one client. Each round,
//! per subscribed topic, it gathers the topic's readable queues (from the
//! route) and the group's client ids (GET_CONSUMER_LIST_BY_GROUP on a broker
//! of the topic), allocates with the [`AllocateStrategy`] (clustering) or
//! takes every queue (broadcasting), and applies the difference:
//!
//! - A queue no longer allocated here is *dropped*: its process queue is
//!   marked dropped, its pull task stopped, then its offset persisted and
//!   removed from the offset store, in that order, so that a dropped queue
//!   never commits an offset afterwards. An orderly consumer first waits
//!   briefly for the queue's consume lock (a batch in progress keeps the
//!   queue for a later round) and unlocks the queue on the broker.
//! - A new queue is locked on the broker first (orderly, clustering; a
//!   refused lock skips it and the next round comes after 500 ms), gets its
//!   start offset from [`start_offset`], a fresh [`ProcessQueue`] and a pull
//!   task ([`crate::pull`]). A queue whose start offset cannot be computed is
//!   skipped until the next round, which then comes after 1 s (Java 5's
//!   `minInterval` for a round that left the assignment short).
//!
//! A clustering, concurrent consumer with `client_rebalance` off does not
//! allocate: each round asks a random broker of the topic which queues are
//! its own (QUERY_ASSIGNMENT, Java 5's broker-side rebalance). The broker
//! also says how to read each: *pull* (as above) or *pop* (an
//! administrator's choice: the queue, or every queue of a broker as queue
//! -1, gets a pop task ([`crate::pop`]) instead of a pull task and no
//! offset; several clients may pop it). A queue whose mode changes is
//! dropped and added again in the new mode. A topic whose queues are all
//! pulled again also gets its pop retry topic subscribed, so the messages
//! pop mode left there are pulled (`pop_retry.rs`). A broker that cannot
//! tell yet (it has not had this client's heartbeat) leaves the queues as
//! they are and the next round comes within a second.
//!
//! A round that changed the queues of some topics tells the
//! [`AssignmentListener`] which (Java's `messageQueueChanged`): the client
//! gives those subscriptions a new version and heartbeats at once, so that
//! the brokers take this client's subscription as the group's.
//!
//! Rounds run one at a time: on a timer (20 s), on [`Rebalancer::trigger`]
//! (NOTIFY_CONSUMER_IDS_CHANGED), after a route change
//! ([`Rebalancer::refresh_routes`]) and on [`Rebalancer::resume`]; requests
//! made while a round runs are served together by one more round. An
//! orderly clustering consumer also renews the broker locks of all its
//! queues every 20 s.

mod add_failures;
pub(crate) mod assignment;
mod driver;
mod lock;
mod pop_retry;
mod round;
pub(crate) mod shared;
mod start_offset;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rocketmq_model::body::PopProcessQueueInfo;
use rocketmq_model::resource::pop_retry_topic_v1;
use rocketmq_model::{MessageQueue, SubscriptionData};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::add_failures::AddFailures;
use self::assignment::Assignment;
use self::shared::{Shared, Trigger};
use crate::allocate::{AllocateStrategy, Averagely};
use crate::api::{BrokerApi, CallMode};
use crate::consume::ConsumeService;
use crate::consumer_options::ConsumerOptions;
use crate::error::Result;
use crate::offset::OffsetStore;
use crate::process_queue::ProcessQueue;
use crate::route::Routes;

pub use self::start_offset::start_offset;

/// How often a rebalance round runs without being asked (Java's
/// `rocketmq.client.rebalance.waitInterval`).
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(20);

/// Told, at the end of a round, of the subscribed topics whose queues the
/// round changed (some added or removed), sorted; called on the rebalance
/// task, so it must not block. See [`RebalancerBuilder::on_assignment_change`].
pub type AssignmentListener = Arc<dyn Fn(&[String]) + Send + Sync>;

/// What a consumer's rebalance and pull tasks work with.
#[derive(Clone)]
pub struct ConsumerParts {
    /// The broker calls (consumer list, offsets, pulls, locks).
    pub broker: Arc<dyn BrokerApi>,
    /// Routes: subscribe queues, broker addresses, pull suggestions.
    pub routes: Routes,
    /// The group's offsets.
    pub store: Arc<dyn OffsetStore>,
    /// Where pulled messages go.
    pub consume: Arc<dyn ConsumeService>,
}

impl fmt::Debug for ConsumerParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerParts")
            .field("routes", &self.routes)
            .field("orderly", &self.consume.is_orderly())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Rebalancer`]; see [`Rebalancer::builder`].
pub struct RebalancerBuilder {
    client_id: String,
    options: ConsumerOptions,
    parts: ConsumerParts,
    strategy: Arc<dyn AllocateStrategy>,
    interval: Duration,
    subscriptions: BTreeMap<String, SubscriptionData>,
    on_change: Option<AssignmentListener>,
}

impl fmt::Debug for RebalancerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RebalancerBuilder")
            .field("client_id", &self.client_id)
            .field("group", &self.options.group)
            .field("strategy", &self.strategy.name())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl RebalancerBuilder {
    /// The allocation strategy (default [`Averagely`], Java's default).
    pub fn strategy(mut self, strategy: Arc<dyn AllocateStrategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// How often a round runs unasked (default [`REBALANCE_INTERVAL`]).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Calls `listener` after each round that changed the queues of some
    /// subscribed topics, with those topics (Java's `messageQueueChanged`,
    /// on which a push consumer renews the subscriptions' versions and
    /// heartbeats). Queues let go because their topic was unsubscribed are
    /// not reported.
    pub fn on_assignment_change(mut self, listener: AssignmentListener) -> Self {
        self.on_change = Some(listener);
        self
    }

    /// Subscribes to a topic (more with [`Rebalancer::subscribe`]).
    pub fn subscribe(mut self, subscription: SubscriptionData) -> Self {
        self.subscriptions
            .insert(subscription.topic.clone(), subscription);
        self
    }

    /// Starts the rebalancer's loops and asks for a first round at once.
    /// Must be called within a tokio runtime.
    pub fn start(self) -> Rebalancer {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            client_id: self.client_id,
            options: self.options,
            strategy: self.strategy,
            broker: self.parts.broker,
            routes: self.parts.routes,
            store: self.parts.store,
            consume: self.parts.consume,
            subscriptions: RwLock::new(self.subscriptions),
            assignment: Assignment::default(),
            add_failures: AddFailures::default(),
            paused: watch::Sender::new(false),
            changes: watch::Sender::new(0),
            on_change: self.on_change,
            trigger: Trigger::default(),
            run_lock: tokio::sync::Mutex::new(()),
            pull_tasks: TaskTracker::new(),
            cancel: cancel.clone(),
        });
        let loops = TaskTracker::new();
        let loops_cancel = cancel.child_token();
        loops.spawn(driver::rebalance_loop(
            Arc::clone(&shared),
            self.interval,
            loops_cancel.clone(),
        ));
        if shared.locks_queues() {
            loops.spawn(driver::lock_loop(Arc::clone(&shared), loops_cancel.clone()));
        }
        loops.close();
        shared.trigger.request();
        Rebalancer {
            shared,
            loops,
            loops_cancel,
        }
    }
}

/// The rebalance of one consumer group in one client, with the pull tasks of
/// the queues it owns. See the [module docs](self).
///
/// Dropping it stops its loops and pull tasks without persisting anything;
/// call [`shutdown`](Self::shutdown) for an orderly stop.
pub struct Rebalancer {
    shared: Arc<Shared>,
    loops: TaskTracker,
    loops_cancel: CancellationToken,
}

impl fmt::Debug for Rebalancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rebalancer")
            .field("group", &self.shared.options.group)
            .field("client_id", &self.shared.client_id)
            .field("assigned", &self.assigned().len())
            .finish_non_exhaustive()
    }
}

impl Rebalancer {
    /// A rebalancer for `options.group` as client `client_id` (the id the
    /// broker lists in the group), working with `parts`.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// use async_trait::async_trait;
    /// use rocketmq_kernel::api::{BrokerApi, NameServerApi};
    /// use rocketmq_kernel::consume::{ConsumeRequest, ConsumeService};
    /// use rocketmq_kernel::offset::MemoryOffsetStore;
    /// use rocketmq_kernel::rebalance::{ConsumerParts, Rebalancer};
    /// use rocketmq_kernel::route::Routes;
    /// use rocketmq_kernel::{ConsumerOptions, Result};
    /// use rocketmq_model::body::{ConsumeFromWhere, ExpressionType};
    /// use rocketmq_model::header::PullMessageRequestHeader;
    /// use rocketmq_model::route::perm;
    /// use rocketmq_model::{BrokerData, QueueData, SubscriptionData, TopicRouteData};
    /// use rocketmq_remoting::calls::PullResponse;
    ///
    /// /// Topic "T": four queues on broker-a.
    /// struct NameServer;
    ///
    /// #[async_trait]
    /// impl NameServerApi for NameServer {
    ///     async fn topic_route(&self, _topic: &str) -> Result<TopicRouteData> {
    ///         Ok(TopicRouteData {
    ///             queue_datas: vec![QueueData {
    ///                 broker_name: "broker-a".into(),
    ///                 read_queue_nums: 4,
    ///                 write_queue_nums: 4,
    ///                 perm: perm::READ | perm::WRITE,
    ///                 topic_sys_flag: 0,
    ///             }],
    ///             broker_datas: vec![BrokerData {
    ///                 broker_name: "broker-a".into(),
    ///                 broker_addrs: [(0, "10.0.0.1:10911".to_owned())].into(),
    ///                 ..BrokerData::default()
    ///             }],
    ///             ..TopicRouteData::default()
    ///         })
    ///     }
    /// }
    ///
    /// /// A group of two clients; pulls never answer.
    /// struct Broker;
    ///
    /// #[async_trait]
    /// impl BrokerApi for Broker {
    ///     async fn consumer_list(&self, _addr: &str, _group: &str) -> Result<Vec<String>> {
    ///         Ok(vec!["client-1".into(), "client-2".into()])
    ///     }
    ///
    ///     async fn pull_message(&self, _addr: &str, _header: PullMessageRequestHeader) -> Result<PullResponse> {
    ///         std::future::pending().await
    ///     }
    /// }
    ///
    /// /// Prints what it is given.
    /// struct Print;
    ///
    /// #[async_trait]
    /// impl ConsumeService for Print {
    ///     async fn submit(&self, request: ConsumeRequest) {
    ///         println!("{} messages of {}", request.msgs.len(), request.mq);
    ///     }
    ///
    ///     fn is_orderly(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let mut options = ConsumerOptions::new("group");
    /// options.consume_from_where = ConsumeFromWhere::FirstOffset;
    /// let parts = ConsumerParts {
    ///     broker: Arc::new(Broker),
    ///     routes: Routes::new(Arc::new(NameServer)),
    ///     store: Arc::new(MemoryOffsetStore::new()),
    ///     consume: Arc::new(Print),
    /// };
    /// let subscription = SubscriptionData::from_expression("T", "*", ExpressionType::Tag)?;
    /// let rebalancer = Rebalancer::builder("client-1", options, parts)
    ///     .subscribe(subscription)
    ///     .start();
    /// rebalancer.rebalance().await;
    /// let ids: Vec<i32> = rebalancer.assigned().iter().map(|mq| mq.queue_id).collect();
    /// assert_eq!(ids, [0, 1], "the first half, as Java's averagely strategy");
    /// rebalancer.shutdown().await;
    /// # Ok::<(), rocketmq_model::ModelError>(())
    /// # }).unwrap();
    /// ```
    pub fn builder(
        client_id: impl Into<String>,
        options: ConsumerOptions,
        parts: ConsumerParts,
    ) -> RebalancerBuilder {
        RebalancerBuilder {
            client_id: client_id.into(),
            options,
            parts,
            strategy: Arc::new(Averagely),
            interval: REBALANCE_INTERVAL,
            subscriptions: BTreeMap::new(),
            on_change: None,
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.shared.options.group
    }

    /// This client's id in the group.
    pub fn client_id(&self) -> &str {
        &self.shared.client_id
    }

    /// Asks for a round (NOTIFY_CONSUMER_IDS_CHANGED, a route change); does
    /// not wait. Requests made while a round runs are served together by
    /// one more round.
    pub fn trigger(&self) {
        self.shared.trigger.request();
    }

    /// Asks for a round and waits until a round that started after this
    /// call has finished (or the rebalancer was shut down).
    pub async fn rebalance(&self) {
        let number = self.shared.trigger.request();
        tokio::select! {
            () = self.shared.trigger.served(number) => {}
            () = self.loops_cancel.cancelled() => {}
        }
    }

    /// Refreshes the route of every subscribed topic from the nameserver and
    /// asks for a round when one changed; returns whether one did. A topic
    /// whose refresh fails is skipped (the first error is returned after the
    /// others were tried).
    pub async fn refresh_routes(&self) -> Result<bool> {
        let mut changed = false;
        let mut first_error = None;
        for topic in self.shared.topics() {
            match self.shared.routes.refresh(&topic).await {
                Ok(topic_changed) => changed |= topic_changed,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        if changed {
            self.trigger();
        }
        first_error.map_or(Ok(changed), Err)
    }

    /// Subscribes to (or replaces the subscription of) a topic; takes effect
    /// in the next round.
    pub fn subscribe(&self, subscription: SubscriptionData) {
        self.shared
            .subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subscription.topic.clone(), subscription);
    }

    /// Unsubscribes from `topic` (and from the pop retry topic a round may
    /// have subscribed to for it); its queues are dropped in the next round.
    pub fn unsubscribe(&self, topic: &str) {
        let mut subscriptions = self
            .shared
            .subscriptions
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        subscriptions.remove(topic);
        subscriptions.remove(&pop_retry_topic_v1(topic, &self.shared.options.group));
    }

    /// The current subscriptions (for heartbeats), pop retry topics
    /// included.
    pub fn subscriptions(&self) -> Vec<SubscriptionData> {
        self.shared
            .subscriptions
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The queues owned now (not dropped).
    pub fn assigned(&self) -> BTreeSet<MessageQueue> {
        self.shared.assignment.assigned()
    }

    /// The process queue table: every owned pulled queue with its process queue
    /// (for the running-info report and the expiry scan). A dropped queue
    /// whose removal is pending is listed with its dropped process queue.
    pub fn process_queues(&self) -> Vec<(MessageQueue, Arc<ProcessQueue>)> {
        self.shared.assignment.process_queues()
    }

    /// The queues the brokers assigned in pop mode, as GET_CONSUMER_RUNNING_INFO
    /// reports them (Java's `mqPopTable`); [`process_queues`](Self::process_queues)
    /// lists the pulled ones.
    pub fn pop_queues(&self) -> Vec<(MessageQueue, PopProcessQueueInfo)> {
        (self.shared.assignment.pop_queues().into_iter())
            .map(|(mq, queue, dropped)| (mq, queue.info(dropped)))
            .collect()
    }

    /// The process queue of `mq`, if owned.
    pub fn process_queue(&self, mq: &MessageQueue) -> Option<Arc<ProcessQueue>> {
        self.shared.assignment.process_queue(mq)
    }

    /// A generation number bumped whenever a round changed the assignment,
    /// e.g. to send a heartbeat at once as Java does.
    pub fn assignment_changes(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Suspends the consumer: pull tasks wait before their next pull.
    pub fn suspend(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Resumes a suspended consumer and asks for a round, as Java does.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
        self.trigger();
    }

    /// Whether the consumer is suspended.
    pub fn is_suspended(&self) -> bool {
        *self.shared.paused.borrow()
    }

    /// Restarts the owned queues among `mqs` from new offsets (an offset
    /// reset): drops them as a round would (pull stopped, offset persisted
    /// and forgotten, orderly: unlocked), runs `write` with them while no
    /// round can add them back, then rebalances, which adds them again from
    /// the offsets `write` left in the store. Other queues, of the same
    /// topic included, are not touched (Java's `resetOffset`), nor are
    /// popped ones: the client keeps no offset of those (Java's walks its
    /// process queue table only), and writing the reset offset to the
    /// broker would undo the pops other members made since. An orderly
    /// queue still consuming a batch is dropped but stays in the table
    /// until the batch ends (a dropped batch commits nothing), and is reset
    /// all the same: a later round removes it and adds it back from the
    /// new offset. Returns the queues reset.
    pub async fn reset_queues<F, Fut>(&self, mqs: &[MessageQueue], write: F) -> Vec<MessageQueue>
    where
        F: FnOnce(Vec<MessageQueue>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let removed = {
            let _no_round = self.shared.run_lock.lock().await;
            let mut removed = Vec::new();
            for mq in mqs {
                if !self.shared.assignment.is_pulled(mq) {
                    continue;
                }
                if !round::remove_queue(&self.shared, mq).await {
                    tracing::info!(group = %self.group(), %mq, "queue busy consuming; it restarts from the reset offset after its batch");
                }
                removed.push(mq.clone());
            }
            if !removed.is_empty() {
                self.shared.assignment_changed();
            }
            write(removed.clone()).await;
            removed
        };
        self.rebalance().await;
        removed
    }

    /// Orderly: renews the broker locks of every owned queue now (the lock
    /// loop does it every 20 s). Waits for a round in progress.
    pub async fn lock_all(&self) {
        let _one_at_a_time = self.shared.run_lock.lock().await;
        lock::lock_all(&self.shared).await;
    }

    /// Stops rebalancing and every pull task, leaving the assignment and
    /// the offsets as they are: the first step of a shutdown, before the
    /// consume service drains what was pulled.
    pub async fn stop_pulling(&self) {
        self.loops_cancel.cancel();
        self.loops.wait().await;
        let _no_round = self.shared.run_lock.lock().await;
        for (mq, owned) in self.shared.assignment.take_all() {
            if let Some(pull) = owned.pull {
                pull.stop().await;
            }
            self.shared.assignment.insert(
                mq,
                assignment::Owned {
                    pull: None,
                    ..owned
                },
            );
        }
    }

    /// Stops everything: rebalancing and the pull tasks
    /// ([`stop_pulling`](Self::stop_pulling), if not done yet), then drops
    /// every owned queue, persists every offset, removes them from the store
    /// and (orderly, clustering) unlocks the queues on the broker.
    pub async fn shutdown(&self) {
        self.stop_pulling().await;
        let _no_round = self.shared.run_lock.lock().await;
        let owned = self.shared.assignment.take_all();
        // Every queue still in the table, dropped ones too (their removal
        // waited for a batch, or a shutdown cut it short): the consume
        // service has drained, and a lock left behind keeps the queue's next
        // owner waiting for the broker's expiry.
        let mut by_broker: BTreeMap<String, BTreeSet<MessageQueue>> = BTreeMap::new();
        for (mq, _) in &owned {
            by_broker
                .entry(mq.broker_name.clone())
                .or_default()
                .insert(mq.clone());
        }
        for (_, entry) in &owned {
            entry.pq.mark_dropped();
        }
        if let Err(err) = self.shared.store.persist_all().await {
            tracing::warn!(group = %self.group(), error = %err, "persisting offsets at shutdown failed");
        }
        for (mq, entry) in &owned {
            self.shared.store.remove(mq);
            entry.pq.lock_lost();
        }
        if self.shared.locks_queues() {
            for (broker_name, mqs) in by_broker {
                lock::unlock(&self.shared, &broker_name, mqs, CallMode::Sync).await;
            }
        }
        self.shared.cancel.cancel();
        self.shared.pull_tasks.close();
        self.shared.pull_tasks.wait().await;
        tracing::info!(group = %self.group(), "rebalance shut down");
    }
}

impl Drop for Rebalancer {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
