//! [`PullConsumerBuilder`]: the settings of a pull consumer, with the
//! defaults of Java's `DefaultLitePullConsumer`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use rocketmq_kernel::ConsumerOptions;
use rocketmq_kernel::allocate::{AllocateStrategy, Averagely};
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::consume::{ConsumeHook, ConsumeHooks};
use rocketmq_kernel::offset::{OffsetStore, PersistLog};
use rocketmq_model::MessageQueue;
use rocketmq_model::body::{ConsumeFromWhere, MessageModel, SUB_ALL};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::PullConsumer;
use super::core::{Mode, PullCore};
use super::rebalance;
use crate::config::ClientConfig;
use crate::consumer::metered::MeteredBrokerApi;
use crate::consumer::selector::{MessageSelector, put_selector};
use crate::consumer::shared::{
    OffsetsFileClaim, default_offset_store, shared_consumer_setters, start_tracing, to_namespace,
};
use crate::consumer::stats::PullStats;
use crate::consumer::subscriptions::Subscriptions;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle, InstanceLease};
use crate::trace::Tracer;

/// How long [`PullConsumer::poll`] waits by default for messages
/// (Java's `pollTimeoutMillis`).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages the poll buffer holds, of all queues, before fetching pauses
/// (Java's `pullThresholdForAll`).
pub const DEFAULT_PULL_THRESHOLD_FOR_ALL: usize = 10_000;

/// Builds a [`PullConsumer`]; see [`PullConsumer::builder`].
pub struct PullConsumerBuilder {
    config: ClientConfig,
    options: ConsumerOptions,
    subscriptions: Vec<(String, MessageSelector)>,
    /// Set by `assign` (even with no queue yet) and `assign_selector`.
    assign_mode: bool,
    assigned: BTreeSet<MessageQueue>,
    /// The filters of topics read in assign mode (all messages otherwise).
    assign_selectors: Vec<(String, MessageSelector)>,
    strategy: Arc<dyn AllocateStrategy>,
    store: Option<Arc<dyn OffsetStore>>,
    offset_store_dir: Option<PathBuf>,
    auto_commit: bool,
    poll_timeout: Duration,
    pull_threshold_for_all: usize,
    consume_hooks: Vec<Arc<dyn ConsumeHook>>,
    /// The trace topic, when message traces are on.
    trace_topic: Option<String>,
}

impl fmt::Debug for PullConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullConsumerBuilder")
            .field("config", &self.config)
            .field("options", &self.options)
            .field("subscriptions", &self.subscriptions)
            .field("assigned", &self.assigned)
            .field("auto_commit", &self.auto_commit)
            .finish_non_exhaustive()
    }
}

impl PullConsumerBuilder {
    pub(super) fn new(group: String, config: ClientConfig) -> Self {
        let mut options = ConsumerOptions::new(group);
        options.pull_batch_size = 10;
        options.broker_suspend_max_time = Duration::from_secs(20);
        PullConsumerBuilder {
            config,
            options,
            subscriptions: Vec::new(),
            assign_mode: false,
            assigned: BTreeSet::new(),
            assign_selectors: Vec::new(),
            strategy: Arc::new(Averagely),
            store: None,
            offset_store_dir: None,
            auto_commit: true,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
            pull_threshold_for_all: DEFAULT_PULL_THRESHOLD_FOR_ALL,
            consume_hooks: Vec::new(),
            trace_topic: None,
        }
    }

    /// Subscribes to `topic` (queues rebalanced among the group's members);
    /// not with [`assign`](Self::assign).
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Self {
        put_selector(&mut self.subscriptions, topic.into(), selector.into());
        self
    }

    /// Reads exactly these queues (no rebalance); not with
    /// [`subscribe`](Self::subscribe). With none, the consumer starts in
    /// assign mode reading nothing, as Java's does before its first
    /// `assign`: find the queues with
    /// [`PullConsumer::fetch_message_queues`] and give them to
    /// [`PullConsumer::assign`].
    pub fn assign(mut self, queues: impl IntoIterator<Item = MessageQueue>) -> Self {
        self.assign_mode = true;
        self.assigned.extend(queues);
        self
    }

    /// Reads only the messages of `topic` that `selector` selects, from
    /// the queues of it this consumer is assigned (Java's
    /// `setSubExpressionForAssign`; all of them by default). It puts the
    /// consumer in assign mode, so not with [`subscribe`](Self::subscribe);
    /// set it here, before the consumer starts, as Java requires.
    pub fn assign_selector(
        mut self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Self {
        self.assign_mode = true;
        put_selector(&mut self.assign_selectors, topic.into(), selector.into());
        self
    }

    shared_consumer_setters!();

    /// Commit what `poll` handed out automatically (default true): at the
    /// next poll, and only then (not on a timer, a rebalance or shutdown),
    /// so a batch is committed once the application asks for more;
    /// committed offsets are persisted every 5 s. Off: call
    /// [`PullConsumer::commit`] or [`PullConsumer::commit_sync`].
    pub fn auto_commit(mut self, auto: bool) -> Self {
        self.auto_commit = auto;
        self
    }

    /// The wait of [`PullConsumer::poll_default`] and of the stream
    /// (default 5 s).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Messages waiting to be polled, of all queues, before fetching
    /// pauses (10,000, Java's `pullThresholdForAll`): the buffer holds
    /// this many divided by `pull_batch_size` batches (at least one), and
    /// each queue's fetch waiting for room holds one more batch. Each
    /// queue is also bounded by `pull_threshold_for_queue` and
    /// `pull_threshold_size_for_queue`.
    pub fn pull_threshold_for_all(mut self, n: usize) -> Self {
        self.pull_threshold_for_all = n;
        self
    }

    /// Batches the poll buffer holds: `pull_threshold_for_all` in batches
    /// of `pull_batch_size`.
    fn buffered_batches(&self) -> usize {
        let batch = usize::try_from(self.options.pull_batch_size)
            .unwrap_or(1)
            .max(1);
        // usize::MAX ("no limit") must not make a channel tokio refuses.
        (self.pull_threshold_for_all / batch).clamp(1, tokio::sync::Semaphore::MAX_PERMITS)
    }

    /// Refuses an empty topic, as Java's `subscribe` does ("Topic can not
    /// be null or empty"): no route would ever be found for it. Before the
    /// namespace is added, which would make it `namespace%`.
    fn check_topics(&self) -> Result<()> {
        let topics = (self.subscriptions.iter()).chain(&self.assign_selectors);
        if topics.map(|(topic, _)| topic).any(String::is_empty) {
            return Err(ClientError::Config("a topic is empty".into()));
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        crate::config::check_group("consumer", &self.options.group)?;
        match (self.subscriptions.is_empty(), !self.assign_mode) {
            (true, true) => Err(ClientError::Config(
                "subscribe to a topic or assign queues (assign([]) to assign them later)".into(),
            )),
            (false, false) => Err(ClientError::Config("subscribe or assign, not both".into())),
            _ if self.options.pull_batch_size < 1 => Err(ClientError::Config(
                "the pull batch size must be positive".into(),
            )),
            _ => Ok(()),
        }
    }

    fn subscription_table(&self) -> Result<Subscriptions> {
        let table =
            Subscriptions::from_selectors(self.subscriptions.iter().chain(&self.assign_selectors))?;
        for mq in &self.assigned {
            if table.get(&mq.topic).is_none() {
                table.insert(MessageSelector::tag(SUB_ALL).subscription(&mq.topic)?);
            }
        }
        Ok(table)
    }

    /// Starts the consumer: registers the group, sends a heartbeat and
    /// starts fetching its queues.
    pub async fn build(mut self) -> Result<PullConsumer> {
        self.check_topics()?;
        let topics = (self.subscriptions.iter_mut())
            .chain(&mut self.assign_selectors)
            .map(|(topic, _)| topic);
        to_namespace(&self.config, &mut self.options, topics)?;
        let namespace = &self.options.namespace;
        self.assigned = (self.assigned.iter())
            .map(|mq| namespace.wrap_queue(mq).into_owned())
            .collect();
        self.check()?;
        let subscriptions = self.subscription_table()?;
        let trace_topic = self.trace_topic.take();
        let tracer = start_tracing(
            &self.config,
            &self.options,
            trace_topic,
            &mut self.consume_hooks,
        )
        .await?;
        let started = match ClientInstance::acquire(self.config.clone()) {
            Ok(lease) => match self.start(&lease, subscriptions, tracer.clone()).await {
                Ok((core, receiver, offsets_file)) => {
                    return Ok(PullConsumer::new(
                        core,
                        receiver,
                        lease,
                        self.poll_timeout,
                        offsets_file,
                    ));
                }
                Err(err) => {
                    lease.release().await;
                    Err(err)
                }
            },
            Err(err) => Err(err),
        };
        if let Some(tracer) = &tracer {
            tracer.shutdown().await;
        }
        started
    }

    async fn start(
        &self,
        lease: &InstanceLease,
        subscriptions: Subscriptions,
        tracer: Option<Arc<Tracer>>,
    ) -> Result<(
        Arc<PullCore>,
        mpsc::Receiver<super::queues::Fetched>,
        Option<OffsetsFileClaim>,
    )> {
        let instance = lease.instance();
        // Metered: the pull latency and pull counts of this group.
        let api: Arc<dyn BrokerApi> = Arc::new(MeteredBrokerApi::new(
            instance.clone(),
            self.options.group.clone(),
            Arc::new(PullStats::default()),
        ));
        let (store, offsets_file) = match &self.store {
            Some(store) => (Arc::clone(store), None),
            None => default_offset_store(
                &self.options,
                self.offset_store_dir.as_ref(),
                &self.config,
                &instance,
                Arc::clone(&api),
            )?,
        };
        store.load().await?;
        let (buffer, receiver) = mpsc::channel(self.buffered_batches());
        let mode = if self.assign_mode {
            Mode::Assign
        } else {
            Mode::Subscribe
        };
        let topics = subscriptions.topics();
        let core = Arc::new_cyclic(|me| PullCore {
            me: me.clone(),
            options: self.options.clone(),
            client_id: instance.client_id().to_owned(),
            instance: instance.clone(),
            api,
            routes: instance.routes().clone(),
            store,
            strategy: Arc::clone(&self.strategy),
            mode,
            auto_commit: self.auto_commit,
            subscriptions,
            queues: Default::default(),
            buffer,
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            reassigning: tokio::sync::Mutex::new(()),
            releasing: Default::default(),
            started_at: SystemTime::now(),
            heartbeat_sent: AtomicBool::new(false),
            persist_log: PersistLog::default(),
            hooks: ConsumeHooks::new(self.consume_hooks.clone()),
            assignment: tokio::sync::watch::Sender::new(BTreeSet::new()),
            tracer,
        });
        // A build given up on (an error, or its future dropped) stops
        // whatever the instance's rebalance started for the half-built
        // consumer in the meantime: no handle would ever stop it.
        let stop_unless_built = core.cancel.clone().drop_guard();
        for topic in &topics {
            if let Err(err) = core.routes.refresh(topic).await {
                tracing::warn!(group = core.group(), %topic, error = %err, "no route for the topic yet");
            }
        }
        let registration =
            instance.register_consumer_for_build(Arc::clone(&core) as Arc<dyn ConsumerHandle>)?;
        instance.send_heartbeat().await;
        core.heartbeat_sent.store(true, Ordering::Release);
        match mode {
            Mode::Assign => core.reassign(self.assigned.clone()).await,
            Mode::Subscribe => rebalance::run(&core).await,
        }
        registration.keep();
        stop_unless_built.disarm();
        tracing::info!(group = core.group(), client_id = %core.client_id, "pull consumer started");
        Ok((core, receiver, offsets_file))
    }
}
