//! [`PushConsumer`]: messages are pulled for you (long polling) from the
//! queues the group's rebalance gives this client, and handed to your
//! listener; offsets advance past what the listener acknowledged.

mod builder;
mod core;
mod running_info;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::{ConsumerRunningInfo, MessageQueue};

pub use self::builder::{DEFAULT_DRAIN_TIMEOUT, PushConsumerBuilder};
use self::core::PushCore;
use super::report::ShutdownReport;
use super::selector::MessageSelector;
use super::shared::{leave, persist_at_shutdown, shut_down_fully, user_queue_map, user_queues};
use crate::admin::Admin;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle, InstanceLease};

/// A push consumer (Java's `DefaultMQPushConsumer`), running from
/// [`build`](PushConsumerBuilder::build) until
/// [`shutdown`](Self::shutdown).
///
/// ```no_run
/// use rocketmq_client::ClientConfig;
/// use rocketmq_client::consumer::{ConcurrentResult, PushConsumer};
///
/// # async fn run() -> rocketmq_client::Result<()> {
/// let consumer = PushConsumer::builder("my-group", ClientConfig::new(["127.0.0.1:9876"]))
///     .subscribe("orders", "created || paid")
///     .consume_concurrently(|msgs, _ctx| async move {
///         for msg in &msgs {
///             println!("{} {:?}", msg.msg_id(), msg.body());
///         }
///         ConcurrentResult::Success
///     })
///     .build()
///     .await?;
/// // ... later:
/// let report = consumer.shutdown().await;
/// println!("committed {:?}", report.offsets_committed);
/// # Ok(())
/// # }
/// ```
pub struct PushConsumer {
    core: Arc<PushCore>,
    lease: Option<InstanceLease>,
    drain_timeout: Duration,
}

impl fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.core.group())
            .field("client_id", &self.core.client_id)
            .field("orderly", &self.core.listener.is_orderly())
            .finish_non_exhaustive()
    }
}

impl PushConsumer {
    /// A builder for a consumer of `group` with the client settings
    /// `config`.
    pub fn builder(group: impl Into<String>, config: ClientConfig) -> PushConsumerBuilder {
        PushConsumerBuilder::new(group.into(), config)
    }

    fn new(core: Arc<PushCore>, lease: InstanceLease, drain_timeout: Duration) -> Self {
        PushConsumer {
            core,
            lease: Some(lease),
            drain_timeout,
        }
    }

    /// The consumer group, as the brokers know it (in the namespace, if
    /// the consumer has one).
    pub fn group(&self) -> &str {
        self.core.group()
    }

    /// This client's id in the group.
    pub fn client_id(&self) -> &str {
        &self.core.client_id
    }

    /// Subscribes to another topic (or replaces a topic's selector) while
    /// running; the broker learns it from the next heartbeat, sent now.
    pub async fn subscribe(
        &self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Result<()> {
        let topic = self.core.options.namespace.wrap(&topic.into()).into_owned();
        let subscription = selector.into().subscription(&topic)?;
        if let Err(err) = self.core.routes.refresh(&topic).await {
            tracing::warn!(group = self.group(), %topic, error = %err, "no route for the topic yet");
        }
        {
            // An offset reset of the broker's takes the topic off and puts
            // its subscription back: not in the middle of one.
            let _no_reset = self.core.resetting.lock().await;
            self.core.set_subscription(subscription);
        }
        self.core.instance.send_heartbeat().await;
        self.rebalance().await;
        Ok(())
    }

    /// Stops consuming `topic`: its queues are released in the next round.
    pub async fn unsubscribe(&self, topic: &str) {
        let topic = self.core.options.namespace.wrap(topic);
        {
            let _no_reset = self.core.resetting.lock().await;
            self.core.remove_subscription(&topic);
        }
        self.core.instance.send_heartbeat().await;
        self.rebalance().await;
    }

    /// Stops pulling (what was pulled is still consumed) until
    /// [`resume`](Self::resume).
    pub fn suspend(&self) {
        if let Some(rebalancer) = self.core.rebalancer() {
            rebalancer.suspend();
        }
    }

    /// Resumes pulling after [`suspend`](Self::suspend) and rebalances.
    pub fn resume(&self) {
        if let Some(rebalancer) = self.core.rebalancer() {
            rebalancer.resume();
        }
    }

    /// Whether the consumer is suspended.
    pub fn is_suspended(&self) -> bool {
        self.core.rebalancer().is_some_and(|r| r.is_suspended())
    }

    /// The queues of `topic` a consumer reads, from a route asked of the
    /// nameserver now (Java's `fetchSubscribeMessageQueues`).
    pub async fn fetch_subscribe_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.admin().subscribe_queues(topic).await
    }

    /// The client instance the consumer uses (shared by the producers and
    /// consumers of the same client id), e.g. to replace its nameservers.
    pub fn instance(&self) -> &ClientInstance {
        &self.core.instance
    }

    /// Admin calls through the consumer's connections, in its namespace
    /// (what Java's consumer offers as `MQAdmin`: offsets, message lookup,
    /// topic creation), e.g. [`Admin::consume_stats`] of its own group.
    pub fn admin(&self) -> Admin {
        let admin = self.core.instance.admin();
        admin.in_namespace(self.core.options.namespace.clone())
    }

    /// Runs a rebalance round now and waits for it.
    pub async fn rebalance(&self) {
        if let Some(rebalancer) = self.core.rebalancer() {
            rebalancer.rebalance().await;
        }
    }

    /// The queues this client consumes now.
    pub fn assigned(&self) -> BTreeSet<MessageQueue> {
        let assigned = self.core.rebalancer().map(|r| r.assigned());
        user_queues(&self.core.options.namespace, assigned.unwrap_or_default())
    }

    /// The in-memory committed offsets (the next message to consume, per
    /// queue).
    pub fn committed_offsets(&self) -> BTreeMap<MessageQueue, i64> {
        user_queue_map(&self.core.options.namespace, self.core.store.snapshot())
    }

    /// Per owned queue with a committed offset: the broker's max offset
    /// minus the committed offset (asked of each queue's broker now). Also
    /// sets the lag gauge.
    pub async fn lag(&self) -> Result<BTreeMap<MessageQueue, i64>> {
        let lag = self.core.lag().await?;
        Ok(user_queue_map(&self.core.options.namespace, lag))
    }

    /// What GET_CONSUMER_RUNNING_INFO reports about this consumer: settings,
    /// subscriptions, the process-queue table and the status table.
    pub fn running_info(&self) -> ConsumerRunningInfo {
        self.core.running_info()
    }

    /// Persists the committed offsets now.
    pub async fn persist_offsets(&self) -> Result<()> {
        Ok(self.core.store.persist_all().await?)
    }

    /// Stops the consumer, in this order: stops pulling and rebalancing;
    /// waits for in-flight consumption up to the drain timeout (and, at
    /// the same time, for an expired message being sent back to the
    /// broker, which may take longer when the broker is slow); persists
    /// the offsets (and, orderly, unlocks the queues on the brokers);
    /// unregisters the group from every broker; releases the client
    /// instance (closing its connections when this was its last user);
    /// sends the message traces left, when tracing is on.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let core = Arc::clone(&self.core);
        let lease = self.lease.take();
        shut_down_fully(shut_down(core, lease, self.drain_timeout)).await
    }
}

/// The steps of [`PushConsumer::shutdown`], in their order.
async fn shut_down(
    core: Arc<PushCore>,
    lease: Option<InstanceLease>,
    drain_timeout: Duration,
) -> ShutdownReport {
    let mut report = ShutdownReport::default();
    let group = core.group().to_owned();
    let stop_expiry = async {
        if let Some(expiry) = core.expiry.get() {
            expiry.shutdown().await;
        }
    };
    let drain = async {
        if let Some(rebalancer) = core.rebalancer() {
            rebalancer.stop_pulling().await;
        }
        core.service.shutdown(drain_timeout).await
    };
    // The expiry scan's send-back under way (a request timeout and its
    // fallback at worst) runs alongside the drain instead of before it.
    let ((), drained) = tokio::join!(stop_expiry, drain);
    report.batches_left = drained.batches_left;
    // What the process queues still hold counts too, whatever left it
    // there (an orderly queue's messages not started, for one).
    let cached: usize = core
        .rebalancer()
        .map(|rebalancer| {
            rebalancer
                .process_queues()
                .iter()
                .map(|(_, pq)| pq.cached_count())
                .sum()
        })
        .unwrap_or(0);
    report.messages_left = drained.messages_left.max(cached);
    report.offsets_committed = user_queue_map(&core.options.namespace, core.store.snapshot());
    if let Err(err) = persist_at_shutdown(core.store.as_ref()).await {
        report.errors.push(ClientError::from(err));
    }
    if let Some(rebalancer) = core.rebalancer() {
        rebalancer.shutdown().await;
    }
    leave(&core.instance, &group, lease).await;
    // After `leave`: the instance's timer no longer sets them.
    core.clear_gauges();
    // Last, as Java stops its trace dispatcher after the consumer: sending
    // the traces left (slow when the trace topic's brokers are) holds back
    // neither the offsets nor the group's queues going to other members.
    if let Some(tracer) = &core.tracer {
        tracer.shutdown().await;
    }
    tracing::info!(%group, messages_left = report.messages_left, "push consumer shut down");
    report
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        if self.lease.is_some() {
            // Not shut down: stop taking part; the rebalancer and the
            // consume service stop when the core goes.
            self.core.instance.unregister_consumer(self.core.group());
        }
    }
}
