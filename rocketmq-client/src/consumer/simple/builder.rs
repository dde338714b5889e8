//! [`SimpleConsumerBuilder`]: the settings of a simple (pop) consumer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, SystemTime};

use rocketmq_kernel::ConsumerOptions;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::pop::PopAcks;
use rocketmq_model::body::{ConsumeFromWhere, MessageModel};

use super::SimpleConsumer;
use super::attempt::AttemptIds;
use super::core::SimpleCore;
use crate::config::ClientConfig;
use crate::consumer::selector::{MessageSelector, put_selector};
use crate::consumer::shared::to_namespace;
use crate::consumer::subscriptions::Subscriptions;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle, InstanceLease};

/// How long a receive waits by default for messages to arrive.
pub const DEFAULT_AWAIT_DURATION: Duration = Duration::from_secs(20);

/// The longest a receive may wait for messages (a broker adds it to the
/// receive's start in an `i64` of milliseconds; a long poll of more than an
/// hour is a mistake anyway).
pub const MAX_AWAIT_DURATION: Duration = Duration::from_secs(60 * 60);

/// How often a message is delivered by default before it goes to the
/// dead-letter topic: a subscription group's default `retryMaxTimes` (16)
/// plus one, as Java's proxy gives its simple consumers.
pub const DEFAULT_MAX_DELIVERY_ATTEMPTS: u32 = 17;

/// Builds a [`SimpleConsumer`]; see [`SimpleConsumer::builder`].
pub struct SimpleConsumerBuilder {
    config: ClientConfig,
    options: ConsumerOptions,
    subscriptions: Vec<(String, MessageSelector)>,
    await_duration: Duration,
    max_delivery_attempts: u32,
    orderly: bool,
}

impl fmt::Debug for SimpleConsumerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleConsumerBuilder")
            .field("config", &self.config)
            .field("group", &self.options.group)
            .field("subscriptions", &self.subscriptions)
            .field("await_duration", &self.await_duration)
            .field("max_delivery_attempts", &self.max_delivery_attempts)
            .field("orderly", &self.orderly)
            .finish_non_exhaustive()
    }
}

impl SimpleConsumerBuilder {
    pub(super) fn new(group: String, config: ClientConfig) -> Self {
        SimpleConsumerBuilder {
            config,
            options: ConsumerOptions::new(group),
            subscriptions: Vec::new(),
            await_duration: DEFAULT_AWAIT_DURATION,
            max_delivery_attempts: DEFAULT_MAX_DELIVERY_ATTEMPTS,
            orderly: false,
        }
    }

    /// Subscribes to `topic`; a later selector for the same topic replaces
    /// an earlier one. At least one subscription is needed to build.
    pub fn subscribe(
        mut self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Self {
        put_selector(&mut self.subscriptions, topic.into(), selector.into());
        self
    }

    /// How long a receive waits for messages to arrive before answering
    /// none (default 20 s, at most [`MAX_AWAIT_DURATION`]; zero answers at
    /// once). The broker holds the request that long (long polling).
    pub fn await_duration(mut self, wait: Duration) -> Self {
        self.await_duration = wait;
        self
    }

    /// How often a message is delivered before it goes to the group's
    /// dead-letter topic, `%DLQ%<group>` (default 17). A message that comes
    /// back after that many deliveries is moved there and acknowledged
    /// instead of received again.
    pub fn max_delivery_attempts(mut self, attempts: u32) -> Self {
        self.max_delivery_attempts = attempts;
        self
    }

    /// Orderly (FIFO) pops (default off): the broker answers a queue's
    /// messages in their order and holds the queue's next messages back
    /// until these are acknowledged, or their invisible duration passes,
    /// when the same messages come again, in the same order (their delivery
    /// attempt one higher). Acknowledge a queue's messages in order to keep
    /// them in order. What a Java proxy does for a group with
    /// `consumeMessageOrderly`; the broker must serve orderly pops (5.x).
    ///
    /// Each pop carries an attempt id (`attemptId`). When a receive's
    /// answer is lost (it timed out, its connection closed, or it was
    /// dropped while the broker held it), the broker has hidden a batch
    /// that nobody got and holds its queues back for it. The next receive
    /// of that topic from that broker (once the broker no longer holds the
    /// lost one) sends the same id, and the broker answers it the same
    /// batch at once, with the same delivery attempt, rather than after
    /// the invisible duration.
    pub fn orderly(mut self, orderly: bool) -> Self {
        self.orderly = orderly;
        self
    }

    /// Where the group starts on a queue it never consumed:
    /// [`ConsumeFromWhere::FirstOffset`] from the queue's first message,
    /// anything else (the default) from its end, as Java's push consumer
    /// in pop mode.
    pub fn consume_from_where(mut self, from: ConsumeFromWhere) -> Self {
        self.options.consume_from_where = from;
        self
    }

    /// The namespace of the group and topics (the config's by default).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self
    }

    fn check(&self) -> Result<()> {
        crate::config::check_group("consumer", &self.options.group)?;
        if self.subscriptions.is_empty() {
            return Err(ClientError::Config("subscribe to a topic".into()));
        }
        if self.await_duration > MAX_AWAIT_DURATION {
            return Err(ClientError::Config(format!(
                "await_duration {:?} exceeds {MAX_AWAIT_DURATION:?}",
                self.await_duration
            )));
        }
        if self.max_delivery_attempts < 1 {
            return Err(ClientError::Config(
                "max_delivery_attempts must be at least 1".into(),
            ));
        }
        if self.subscriptions.iter().any(|(topic, _)| topic.is_empty()) {
            return Err(ClientError::Config("a topic is empty".into()));
        }
        Ok(())
    }

    /// Starts the consumer: registers the group with the client instance,
    /// which heartbeats it (as a CONSUME_POP consumer) to the brokers.
    pub async fn build(mut self) -> Result<SimpleConsumer> {
        self.check()?;
        let topics = self.subscriptions.iter_mut().map(|(topic, _)| topic);
        to_namespace(&self.config, &mut self.options, topics)?;
        // Pop consumption is clustering only: the broker shares the messages.
        self.options.message_model = MessageModel::Clustering;
        let subscriptions = Subscriptions::from_selectors(&self.subscriptions)?;
        let lease = ClientInstance::acquire(self.config.clone())?;
        match self.start(&lease, subscriptions).await {
            Ok(core) => Ok(SimpleConsumer {
                core,
                lease: Some(lease),
            }),
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
    ) -> Result<Arc<SimpleCore>> {
        let instance = lease.instance();
        let api: Arc<dyn BrokerApi> = instance.broker_api().clone();
        let topics = subscriptions.topics();
        let core = Arc::new(SimpleCore {
            options: self.options.clone(),
            instance: instance.clone(),
            acks: PopAcks::new(
                Arc::clone(&api),
                instance.routes().clone(),
                self.options.group.clone(),
            ),
            api,
            subscriptions,
            await_duration: self.await_duration,
            max_delivery_attempts: self.max_delivery_attempts,
            orderly: self.orderly,
            attempt_ids: AttemptIds::default(),
            started_at: SystemTime::now(),
            next_topic: AtomicUsize::new(0),
            next_broker: std::sync::Mutex::new(HashMap::new()),
        });
        for topic in &topics {
            if let Err(err) = instance.routes().refresh(topic).await {
                tracing::warn!(group = core.group_name(), %topic, error = %err, "no route for the topic yet");
            }
        }
        let registration =
            instance.register_consumer_for_build(Arc::clone(&core) as Arc<dyn ConsumerHandle>)?;
        instance.send_heartbeat().await;
        registration.keep();
        tracing::info!(group = core.group_name(), client_id = %core.client_id(), "simple consumer started");
        Ok(core)
    }
}
