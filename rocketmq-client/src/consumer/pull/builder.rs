//! [`PullConsumerBuilder`]: the settings of a pull consumer, with the
//! defaults of Java's `DefaultLitePullConsumer`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rocketmq_kernel::ConsumerOptions;
use rocketmq_kernel::allocate::{AllocateStrategy, Averagely};
use rocketmq_kernel::api::{BrokerApi, BrokerOffsetRemote};
use rocketmq_kernel::offset::{LocalFileOffsetStore, OffsetStore, RemoteOffsetStore};
use rocketmq_model::MessageQueue;
use rocketmq_model::body::{ConsumeFromWhere, MessageModel, SUB_ALL};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::PullConsumer;
use super::core::{Mode, PullCore};
use super::rebalance;
use crate::config::ClientConfig;
use crate::consumer::selector::MessageSelector;
use crate::consumer::subscriptions::Subscriptions;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle, InstanceLease};

/// How long [`PullConsumer::poll`] waits by default for messages
/// (Java's `pollTimeoutMillis`).
pub const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// Batches the poll buffer holds before fetch tasks wait.
const BUFFERED_BATCHES: usize = 256;

/// Builds a [`PullConsumer`]; see [`PullConsumer::builder`].
pub struct PullConsumerBuilder {
    config: ClientConfig,
    options: ConsumerOptions,
    subscriptions: Vec<(String, MessageSelector)>,
    assigned: BTreeSet<MessageQueue>,
    strategy: Arc<dyn AllocateStrategy>,
    store: Option<Arc<dyn OffsetStore>>,
    offset_store_dir: Option<PathBuf>,
    auto_commit: bool,
    poll_timeout: Duration,
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
        options.pull_time_delay_when_exception = Duration::from_secs(1);
        PullConsumerBuilder {
            config,
            options,
            subscriptions: Vec::new(),
            assigned: BTreeSet::new(),
            strategy: Arc::new(Averagely),
            store: None,
            offset_store_dir: None,
            auto_commit: true,
            poll_timeout: DEFAULT_POLL_TIMEOUT,
        }
    }

    /// Subscribes to `topic` (queues rebalanced among the group's members);
    /// not with [`assign`](Self::assign).
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Self {
        let topic = topic.into();
        self.subscriptions.retain(|(t, _)| *t != topic);
        self.subscriptions.push((topic, selector.into()));
        self
    }

    /// Reads exactly these queues (no rebalance); not with
    /// [`subscribe`](Self::subscribe).
    pub fn assign(mut self, queues: impl IntoIterator<Item = MessageQueue>) -> Self {
        self.assigned.extend(queues);
        self
    }

    /// Clustering (default) or broadcasting.
    pub fn message_model(mut self, model: MessageModel) -> Self {
        self.options.message_model = model;
        self
    }

    /// Where a queue without a committed offset starts (default last).
    pub fn consume_from_where(mut self, from: ConsumeFromWhere) -> Self {
        self.options.consume_from_where = from;
        self
    }

    /// Start from this point in time (sets `consume_from_where` to
    /// timestamp).
    pub fn consume_timestamp(mut self, at: SystemTime) -> Self {
        self.options.consume_from_where = ConsumeFromWhere::Timestamp;
        self.options.consume_timestamp = at;
        self
    }

    /// How subscribed queues are shared among members (default averagely).
    pub fn allocate_strategy(mut self, strategy: Arc<dyn AllocateStrategy>) -> Self {
        self.strategy = strategy;
        self
    }

    /// Where offsets are kept (default: brokers when clustering, a local
    /// file when broadcasting).
    pub fn offset_store(mut self, store: Arc<dyn OffsetStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The directory of the broadcasting default offset store.
    pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.offset_store_dir = Some(dir.into());
        self
    }

    /// Commit what `poll` handed out automatically (default true): at the
    /// next poll, persisted every 5 s. Off: call
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

    /// Messages per pull (Java lite: 10).
    pub fn pull_batch_size(mut self, n: i32) -> Self {
        self.options.pull_batch_size = n;
        self
    }

    /// Buffered messages per queue before pulling pauses (1000).
    pub fn pull_threshold_for_queue(mut self, n: usize) -> Self {
        self.options.pull_threshold_for_queue = n;
        self
    }

    /// Buffered body bytes per queue before pulling pauses (100 MiB).
    pub fn pull_threshold_size_for_queue(mut self, bytes: u64) -> Self {
        self.options.pull_threshold_size_for_queue = bytes;
        self
    }

    /// How long the broker holds a pull with nothing new (20 s).
    pub fn broker_suspend_max_time(mut self, time: Duration) -> Self {
        self.options.broker_suspend_max_time = time;
        self
    }

    /// Wait after a failed pull (1 s).
    pub fn pull_time_delay_when_exception(mut self, delay: Duration) -> Self {
        self.options.pull_time_delay_when_exception = delay;
        self
    }

    /// Wait while a queue buffers too much (50 ms).
    pub fn pull_time_delay_when_flow_control(mut self, delay: Duration) -> Self {
        self.options.pull_time_delay_when_flow_control = delay;
        self
    }

    fn check(&self) -> Result<()> {
        if self.options.group.trim().is_empty() {
            return Err(ClientError::Config("the consumer group is empty".into()));
        }
        match (self.subscriptions.is_empty(), self.assigned.is_empty()) {
            (true, true) => Err(ClientError::Config(
                "subscribe to a topic or assign queues".into(),
            )),
            (false, false) => Err(ClientError::Config("subscribe or assign, not both".into())),
            _ if self.options.pull_batch_size < 1 => Err(ClientError::Config(
                "the pull batch size must be positive".into(),
            )),
            _ => Ok(()),
        }
    }

    fn subscription_table(&self) -> Result<Subscriptions> {
        let table = Subscriptions::from_selectors(&self.subscriptions)?;
        for mq in &self.assigned {
            if table.get(&mq.topic).is_none() {
                table.insert(MessageSelector::tag(SUB_ALL).subscription(&mq.topic)?);
            }
        }
        Ok(table)
    }

    fn default_store(&self, instance: &ClientInstance) -> Result<Arc<dyn OffsetStore>> {
        let group = &self.options.group;
        if self.options.message_model == MessageModel::Clustering {
            let api: Arc<dyn BrokerApi> = instance.broker_api().clone();
            let remote = BrokerOffsetRemote::new(api, instance.routes().clone());
            return Ok(Arc::new(
                RemoteOffsetStore::new(group.clone(), Arc::new(remote)).oneway(false),
            ));
        }
        let dir = self
            .offset_store_dir
            .clone()
            .or_else(LocalFileOffsetStore::default_base_dir)
            .ok_or_else(|| {
                ClientError::Config("no offset store directory (HOME is not set)".into())
            })?;
        Ok(Arc::new(LocalFileOffsetStore::new(
            dir,
            instance.client_id(),
            group,
        )))
    }

    /// Starts the consumer: registers the group, sends a heartbeat and
    /// starts fetching its queues.
    pub async fn build(self) -> Result<PullConsumer> {
        self.check()?;
        let subscriptions = self.subscription_table()?;
        let lease = ClientInstance::acquire(self.config.clone())?;
        match self.start(&lease, subscriptions).await {
            Ok((core, receiver)) => Ok(PullConsumer::new(core, receiver, lease, self.poll_timeout)),
            Err(err) => {
                lease.release().await;
                Err(err)
            }
        }
    }

    async fn start(
        &self,
        lease: &InstanceLease,
        subscriptions: Subscriptions,
    ) -> Result<(Arc<PullCore>, mpsc::Receiver<super::queues::Fetched>)> {
        let instance = lease.instance();
        let store = match &self.store {
            Some(store) => Arc::clone(store),
            None => self.default_store(&instance)?,
        };
        store.load().await?;
        let (buffer, receiver) = mpsc::channel(BUFFERED_BATCHES);
        let mode = if self.assigned.is_empty() {
            Mode::Subscribe
        } else {
            Mode::Assign
        };
        let topics = subscriptions.topics();
        let core = Arc::new_cyclic(|me| PullCore {
            me: me.clone(),
            options: self.options.clone(),
            client_id: instance.client_id().to_owned(),
            instance: instance.clone(),
            api: instance.broker_api().clone(),
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
            started_at: SystemTime::now(),
        });
        for topic in &topics {
            if let Err(err) = core.routes.refresh(topic).await {
                tracing::warn!(group = core.group(), %topic, error = %err, "no route for the topic yet");
            }
        }
        instance.register_consumer(Arc::clone(&core) as Arc<dyn ConsumerHandle>)?;
        instance.send_heartbeat().await;
        match mode {
            Mode::Assign => core.reassign(self.assigned.clone()).await,
            Mode::Subscribe => rebalance::run(&core).await,
        }
        tracing::info!(group = core.group(), client_id = %core.client_id, "pull consumer started");
        Ok((core, receiver))
    }
}
