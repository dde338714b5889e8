//! [`PushConsumerBuilder`]: every setting of a push consumer, with Java's
//! defaults and option names in snake_case.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use rocketmq_kernel::allocate::{AllocateStrategy, Averagely};
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::consume::{ConsumeEnv, ConsumeHook, ConsumeHooks, ConsumeStats};
use rocketmq_kernel::consumer_options::RETRY_TOPIC_PREFIX;
use rocketmq_kernel::offset::{OffsetStore, PersistLog};
use rocketmq_kernel::{
    ConcurrentService, ConsumeService, ConsumerOptions, ConsumerParts, KernelError, OrderlyService,
    Rebalancer, Routes,
};
use rocketmq_model::body::{
    CheckClientRequestBody, ConsumeFromWhere, ExpressionType, MessageModel, SUB_ALL,
};
use rocketmq_model::{MessageExt, SubscriptionData};
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

use super::PushConsumer;
use super::core::{PushCore, Service, sends_back};
use crate::config::ClientConfig;
use crate::consumer::listener::{
    ConcurrentContext, ConcurrentFn, ConcurrentListener, IntoConcurrentReply, IntoOrderlyReply,
    Listener, OrderlyContext, OrderlyFn, OrderlyListener,
};
use crate::consumer::metered::{MeteredBrokerApi, MeteredConcurrent, MeteredOrderly};
use crate::consumer::selector::{MessageSelector, put_selector};
use crate::consumer::shared::{
    default_offset_store, shared_consumer_setters, start_tracing, to_namespace,
};
use crate::consumer::stats::{PullStats, StatusTable};
use crate::consumer::subscriptions::Subscriptions;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, InstanceLease};
use crate::metrics::ConsumeSeries;
use crate::trace::Tracer;

/// How long [`PushConsumer::shutdown`] waits for in-flight consumption by
/// default.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`PushConsumer`]; see [`PushConsumer::builder`].
pub struct PushConsumerBuilder {
    config: ClientConfig,
    options: ConsumerOptions,
    subscriptions: Vec<(String, MessageSelector)>,
    listener: Option<Listener>,
    strategy: Arc<dyn AllocateStrategy>,
    store: Option<Arc<dyn OffsetStore>>,
    offset_store_dir: Option<PathBuf>,
    drain_timeout: Duration,
    consume_hooks: Vec<Arc<dyn ConsumeHook>>,
    /// The trace topic, when message traces are on.
    trace_topic: Option<String>,
    /// Set by `build` when traces are on.
    tracer: Option<Arc<Tracer>>,
}

impl fmt::Debug for PushConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumerBuilder")
            .field("config", &self.config)
            .field("options", &self.options)
            .field("subscriptions", &self.subscriptions)
            .field("listener", &self.listener)
            .field("strategy", &self.strategy.name())
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

impl PushConsumerBuilder {
    pub(super) fn new(group: String, config: ClientConfig) -> Self {
        PushConsumerBuilder {
            config,
            options: ConsumerOptions::new(group),
            subscriptions: Vec::new(),
            listener: None,
            strategy: Arc::new(Averagely),
            store: None,
            offset_store_dir: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            consume_hooks: Vec::new(),
            trace_topic: None,
            tracer: None,
        }
    }

    /// Subscribes to `topic` with a tag expression (`"*"`, `"A || B"`) or a
    /// [`MessageSelector`]; a second call for the same topic replaces the
    /// first.
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Self {
        put_selector(&mut self.subscriptions, topic.into(), selector.into());
        self
    }

    /// Consumes concurrently with an async closure
    /// `|msgs, ctx| async move { ... }` (see [`crate::consumer::listener`]).
    pub fn consume_concurrently<F, Fut, R>(self, f: F) -> Self
    where
        F: Fn(Vec<MessageExt>, ConcurrentContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoConcurrentReply + 'static,
    {
        self.concurrent_listener(ConcurrentFn(f))
    }

    /// Consumes orderly (per queue, one batch at a time) with an async
    /// closure `|msgs, ctx| async move { ... }`.
    pub fn consume_orderly<F, Fut, R>(self, f: F) -> Self
    where
        F: Fn(Vec<MessageExt>, OrderlyContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: IntoOrderlyReply + 'static,
    {
        self.orderly_listener(OrderlyFn(f))
    }

    /// Consumes concurrently with a [`ConcurrentListener`].
    pub fn concurrent_listener(mut self, listener: impl ConcurrentListener + 'static) -> Self {
        self.listener = Some(Listener::Concurrent(Arc::new(listener)));
        self
    }

    /// Consumes orderly with an [`OrderlyListener`].
    pub fn orderly_listener(mut self, listener: impl OrderlyListener + 'static) -> Self {
        self.listener = Some(Listener::Orderly(Arc::new(listener)));
        self
    }

    shared_consumer_setters!();

    /// How long shutdown waits for in-flight consumption (default 10 s).
    pub fn shutdown_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Bytes per pull (256 KiB).
    pub fn pull_batch_size_in_bytes(mut self, n: i32) -> Self {
        self.options.pull_batch_size_in_bytes = n;
        self
    }

    /// Cached messages per topic, spread over every queue the consumer owns
    /// (its retry topic's too), as Java spreads it (off).
    pub fn pull_threshold_for_topic(mut self, n: usize) -> Self {
        self.options.pull_threshold_for_topic = Some(n);
        self
    }

    /// Cached body bytes per topic, spread over every queue the consumer
    /// owns, as Java spreads it (off).
    pub fn pull_threshold_size_for_topic(mut self, bytes: u64) -> Self {
        self.options.pull_threshold_size_for_topic = Some(bytes);
        self
    }

    /// Concurrent: largest span of cached offsets per queue (2000).
    pub fn consume_concurrently_max_span(mut self, span: i64) -> Self {
        self.options.consume_concurrently_max_span = span;
        self
    }

    /// Pause between pulls of a queue (zero).
    pub fn pull_interval(mut self, interval: Duration) -> Self {
        self.options.pull_interval = interval;
        self
    }

    /// Messages per listener call (1).
    pub fn consume_message_batch_max_size(mut self, n: usize) -> Self {
        self.options.consume_message_batch_max_size = n;
        self
    }

    /// Listener calls at once (20).
    pub fn consume_thread_max(mut self, n: usize) -> Self {
        self.options.consume_thread_max = n;
        self
    }

    /// Retries before the dead-letter queue (default: 16 concurrent,
    /// unbounded orderly). −1 means the default, as in Java; another
    /// negative number fails the build.
    pub fn max_reconsume_times(mut self, n: i32) -> Self {
        self.options.max_reconsume_times = (n != -1).then_some(n);
        self
    }

    /// Orderly: pause of a queue after a failed batch (1 s). Held between
    /// 10 ms and 30 s when used, as Java does, whether set here or by the
    /// listener's context.
    pub fn suspend_current_queue_time(mut self, time: Duration) -> Self {
        self.options.suspend_current_queue_time = time;
        self
    }

    /// A message consumed longer than this is sent back (15 min); the
    /// consumer looks for such messages as often (Java's `consumeTimeout`,
    /// both). Concurrent consumers only.
    pub fn consume_timeout(mut self, timeout: Duration) -> Self {
        self.options.consume_timeout = timeout;
        self
    }

    /// Send the subscription with every pull (false).
    pub fn post_subscription_when_pull(mut self, post: bool) -> Self {
        self.options.post_subscription_when_pull = post;
        self
    }

    /// Whether this client chooses its queues itself (true, Java's
    /// `clientRebalance`). False leaves the choice to the brokers (Java 5's
    /// broker-side rebalance, QUERY_ASSIGNMENT): they allocate with the
    /// [`allocate_strategy`](Self::allocate_strategy)'s name, which must be
    /// `AVG` or `AVG_BY_CIRCLE`, the only two a broker knows, and tell the
    /// client for each queue whether to pull it or to pop it (an
    /// administrator switches a topic and group to pop mode with
    /// [`Admin::set_message_request_mode`](crate::Admin::set_message_request_mode)).
    /// Popped messages are acknowledged one by one once consumed; a failed
    /// one comes back after Java's pop retry delay (10 s, 30 s, 1 min, …,
    /// by reconsume count), and after `max_reconsume_times` retries goes to
    /// the group's dead-letter topic (Java's push consumer would go on
    /// retrying it for about four hours after it was born, then acknowledge
    /// it away). In pop mode several clients may read one queue, so a group
    /// can have more consumers than queues. Orderly and
    /// broadcasting consumers always choose their queues themselves, as in
    /// Java.
    pub fn client_rebalance(mut self, client_rebalance: bool) -> Self {
        self.options.client_rebalance = client_rebalance;
        self
    }

    /// Pop mode: how long popped messages stay hidden from the group while
    /// they are consumed (60 s; 5 s to 300 s, as Java's).
    pub fn pop_invisible_time(mut self, time: Duration) -> Self {
        self.options.pop_invisible_time = time;
        self
    }

    /// Pop mode: the most messages one pop asks for (32; 1 to 32).
    pub fn pop_batch_nums(mut self, n: i32) -> Self {
        self.options.pop_batch_nums = n;
        self
    }

    /// Pop mode: a queue pops no more while this many of its messages wait
    /// for their acknowledgement (96; 1 to 65,535).
    pub fn pop_threshold_for_queue(mut self, n: usize) -> Self {
        self.options.pop_threshold_for_queue = n;
        self
    }

    fn check(&self) -> Result<()> {
        crate::config::check_group("consumer", &self.options.group)?;
        if self.subscriptions.is_empty() {
            return Err(ClientError::Config(
                "a push consumer needs a subscription".into(),
            ));
        }
        if self.listener.is_none() {
            return Err(ClientError::Config(
                "a push consumer needs a listener".into(),
            ));
        }
        check_ranges(&self.options)?;
        if self.options.max_reconsume_times.is_some_and(|n| n < 0) {
            return Err(ClientError::Config(
                "max_reconsume_times must be -1 (the default) or at least 0".into(),
            ));
        }
        if self.options.consume_timeout.is_zero() {
            // Every message in consumption would count as expired.
            return Err(ClientError::Config(
                "consume_timeout must be positive".into(),
            ));
        }
        let broker_rebalances = !self.options.client_rebalance
            && self.options.message_model == MessageModel::Clustering
            && matches!(self.listener, Some(Listener::Concurrent(_)));
        if broker_rebalances && !BROKER_STRATEGIES.contains(&self.strategy.name()) {
            return Err(ClientError::Config(format!(
                "with client_rebalance(false) the brokers allocate, and they know the strategies {BROKER_STRATEGIES:?} only, not {:?}",
                self.strategy.name()
            )));
        }
        Ok(())
    }

    /// The subscriptions, plus `%RETRY%<group>` when clustering.
    fn subscription_table(&self) -> Result<Subscriptions> {
        let table = Subscriptions::from_selectors(&self.subscriptions)?;
        if sends_back(self.options.message_model) {
            let retry = self.options.retry_topic();
            table.insert(MessageSelector::tag(SUB_ALL).subscription(&retry)?);
        }
        Ok(table)
    }

    /// Starts the consumer: joins (or creates) the client instance,
    /// registers the group, sends a heartbeat and starts rebalancing; the
    /// returned consumer is running.
    pub async fn build(mut self) -> Result<PushConsumer> {
        let topics = self.subscriptions.iter_mut().map(|(topic, _)| topic);
        to_namespace(&self.config, &mut self.options, topics)?;
        self.check()?;
        let subscriptions = self.subscription_table()?;
        self.tracer = start_tracing(
            &self.config,
            &self.options,
            self.trace_topic.clone(),
            &mut self.consume_hooks,
        )
        .await?;
        let started = match ClientInstance::acquire(self.config.clone()) {
            Ok(lease) => match self.start(&lease, subscriptions).await {
                Ok(core) => return Ok(PushConsumer::new(core, lease, self.drain_timeout)),
                Err(err) => {
                    lease.release().await;
                    Err(err)
                }
            },
            Err(err) => Err(err),
        };
        if let Some(tracer) = &self.tracer {
            tracer.shutdown().await;
        }
        started
    }

    async fn start(
        &self,
        lease: &InstanceLease,
        subscriptions: Subscriptions,
    ) -> Result<Arc<PushCore>> {
        let instance = lease.instance();
        let group = self.options.group.clone();
        let pull_stats = Arc::new(PullStats::default());
        let api: Arc<dyn BrokerApi> = Arc::new(MeteredBrokerApi::new(
            instance.clone(),
            group.clone(),
            Arc::clone(&pull_stats),
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
        let options = Arc::new(self.options.clone());
        let consume_stats = Arc::new(ConsumeStats::new());
        let routes: Routes = instance.routes().clone();
        let env = ConsumeEnv {
            options: Arc::clone(&options),
            client_id: instance.client_id().to_owned(),
            api: Arc::clone(&api),
            routes: routes.clone(),
            offsets: Arc::clone(&store),
            stats: Arc::clone(&consume_stats),
            hooks: ConsumeHooks::new(self.consume_hooks.clone()),
        };
        let listener = self
            .listener
            .clone()
            .ok_or_else(|| ClientError::Config("no listener".into()))?;
        let (service, consume) = start_service(&env, &listener);
        let core = Arc::new(PushCore {
            options: Arc::clone(&options),
            client_id: instance.client_id().to_owned(),
            instance: instance.clone(),
            subscriptions,
            listener,
            service,
            env,
            api: Arc::clone(&api),
            routes: routes.clone(),
            store: Arc::clone(&store),
            consume_stats,
            pull_stats,
            status: StatusTable::new(Instant::now()),
            rebalancer: OnceLock::new(),
            expiry: OnceLock::new(),
            started_at: SystemTime::now(),
            resetting: tokio::sync::Mutex::new(()),
            gauged: std::sync::Mutex::default(),
            tracer: self.tracer.clone(),
            persist_log: PersistLog::default(),
            _offsets_file: offsets_file,
        });
        let subscribed = core.subscriptions.list();
        for topic in subscribed.iter().map(|s| &s.topic) {
            if let Err(err) = routes.refresh(topic).await {
                // A new group's retry topic exists only after its first
                // heartbeat: Java stays quiet about those too.
                if topic.starts_with(RETRY_TOPIC_PREFIX) {
                    tracing::debug!(%group, %topic, error = %err, "no route for the retry topic yet");
                } else {
                    tracing::warn!(%group, %topic, error = %err, "no route for a subscribed topic yet");
                }
            }
        }
        check_in_brokers(
            api.as_ref(),
            &routes,
            instance.client_id(),
            &group,
            subscribed.iter(),
        )
        .await?;
        let registration = instance.register_consumer_for_build(
            Arc::clone(&core) as Arc<dyn crate::instance::ConsumerHandle>
        )?;
        instance.send_heartbeat().await;
        let parts = ConsumerParts {
            broker: api,
            routes,
            store,
            consume,
        };
        let mut rebalancer = Rebalancer::builder(instance.client_id(), (*options).clone(), parts)
            .strategy(Arc::clone(&self.strategy))
            .interval(self.config.rebalance_interval)
            .on_assignment_change(PushCore::on_assignment_change(&core));
        for subscription in subscribed {
            rebalancer = rebalancer.subscribe(subscription);
        }
        // Only this function sets it, once.
        let _ = core.rebalancer.set(rebalancer.start());
        core.start_expiry();
        registration.keep();
        tracing::info!(%group, client_id = %core.client_id, orderly = core.listener.is_orderly(), "push consumer started");
        Ok(core)
    }
}

/// The allocation strategies a broker knows (Java's `QueryAssignmentProcessor`).
const BROKER_STRATEGIES: [&str; 2] = ["AVG", "AVG_BY_CIRCLE"];

/// Java's ranges for the push consumer's numbers
/// (`DefaultMQPushConsumerImpl.checkConfig`; byte thresholds, which Java
/// gives in MiB, up to the same sizes).
fn check_ranges(options: &ConsumerOptions) -> Result<()> {
    const MIB: i128 = 1024 * 1024;
    let as_i128 = |n: usize| i128::try_from(n).unwrap_or(i128::MAX);
    let bytes = |n: u64| i128::from(n);
    let mut ranges = vec![
        // Java's 1..=1000 threads; here they are tasks, but a value past it
        // is a mistake all the same.
        (
            "consume_thread_max",
            as_i128(options.consume_thread_max),
            1,
            1000,
        ),
        (
            "pull_batch_size",
            i128::from(options.pull_batch_size),
            1,
            1024,
        ),
        (
            "consume_message_batch_max_size",
            as_i128(options.consume_message_batch_max_size),
            1,
            1024,
        ),
        (
            "consume_concurrently_max_span",
            i128::from(options.consume_concurrently_max_span),
            1,
            65_535,
        ),
        (
            "pull_threshold_for_queue",
            as_i128(options.pull_threshold_for_queue),
            1,
            65_535,
        ),
        (
            "pull_threshold_size_for_queue (bytes)",
            bytes(options.pull_threshold_size_for_queue),
            1,
            1024 * MIB,
        ),
        (
            "pop_invisible_time (ms)",
            i128::try_from(options.pop_invisible_time.as_millis()).unwrap_or(i128::MAX),
            5_000,
            300_000,
        ),
        ("pop_batch_nums", i128::from(options.pop_batch_nums), 1, 32),
        (
            "pop_threshold_for_queue",
            as_i128(options.pop_threshold_for_queue),
            1,
            65_535,
        ),
        (
            "pull_interval (ms)",
            i128::try_from(options.pull_interval.as_millis()).unwrap_or(i128::MAX),
            0,
            65_535,
        ),
    ];
    if let Some(n) = options.pull_threshold_for_topic {
        ranges.push(("pull_threshold_for_topic", as_i128(n), 1, 6_553_500));
    }
    if let Some(n) = options.pull_threshold_size_for_topic {
        ranges.push((
            "pull_threshold_size_for_topic (bytes)",
            bytes(n),
            1,
            102_400 * MIB,
        ));
    }
    for (name, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            return Err(ClientError::Config(format!(
                "{name} is {value}; it must be in {min}..={max}"
            )));
        }
    }
    Ok(())
}

/// Java's `checkClientInBroker`: every subscription that is not a tag
/// expression is shown to one broker of its topic (CHECK_CLIENT_CONFIG) before
/// the consumer starts, so that a broker without property filtering, or an
/// SQL92 expression that does not compile, fails the start instead of every
/// later pull. A topic with no known broker is not checked (as in Java).
async fn check_in_brokers(
    api: &dyn BrokerApi,
    routes: &Routes,
    client_id: &str,
    group: &str,
    subscriptions: impl Iterator<Item = &SubscriptionData>,
) -> Result<()> {
    for subscription in subscriptions {
        if subscription.expression_type == ExpressionType::Tag {
            continue;
        }
        let Some(addr) = routes.table().route(&subscription.topic).and_then(|route| {
            route
                .broker_datas
                .iter()
                .find_map(|broker| broker.master_addr().map(str::to_owned))
        }) else {
            continue;
        };
        let body = CheckClientRequestBody {
            client_id: client_id.to_owned(),
            group: group.to_owned(),
            subscription_data: subscription.clone(),
        };
        if let Err(err) = api.check_client_config(&addr, body).await {
            let reason = match &err {
                KernelError::Remoting(RemotingError::Response { code, remark, .. }) => {
                    format!("{remark} (code {})", code.0)
                }
                other => other.to_string(),
            };
            return Err(ClientError::SubscriptionRefused {
                topic: subscription.topic.clone(),
                expression: subscription.sub_string.clone(),
                addr,
                reason,
            });
        }
    }
    Ok(())
}

/// Starts the consume service of `listener`, measured.
fn start_service(env: &ConsumeEnv, listener: &Listener) -> (Service, Arc<dyn ConsumeService>) {
    let group = env.options.group.clone();
    match listener {
        Listener::Concurrent(inner) => {
            let metered = MeteredConcurrent {
                inner: Arc::clone(inner),
                series: ConsumeSeries::new(&group),
                group,
                max_reconsume_times: sends_back(env.options.message_model)
                    .then(|| env.options.concurrent_max_reconsume_times()),
            };
            let service = Arc::new(ConcurrentService::start(env.clone(), Arc::new(metered)));
            (Service::Concurrent(Arc::clone(&service)), service)
        }
        Listener::Orderly(inner) => {
            let metered = MeteredOrderly {
                inner: Arc::clone(inner),
                series: ConsumeSeries::new(&group),
                group,
                max_reconsume_times: env.options.orderly_max_reconsume_times(),
            };
            let service = Arc::new(OrderlyService::new(env.clone(), Arc::new(metered)));
            (Service::Orderly(Arc::clone(&service)), service)
        }
    }
}
