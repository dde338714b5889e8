//! [`SimpleConsumer`]: pop consumption (RocketMQ 5.x). You ask for
//! messages, the broker hands them out and hides them from the rest of the
//! group until you acknowledge each one; an unacknowledged message comes back
//! (to any member) once its invisible duration passes. No queues are
//! assigned to members and no offsets kept here: the broker does both.
//!
//! The remoting form of Java 5's `SimpleConsumer`, over POP_MESSAGE,
//! ACK_MESSAGE and CHANGE_MESSAGE_INVISIBLETIME.

mod attempt;
mod builder;
mod core;
mod received;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use builder::{
    DEFAULT_AWAIT_DURATION, DEFAULT_MAX_DELIVERY_ATTEMPTS, MAX_AWAIT_DURATION,
    SimpleConsumerBuilder,
};
pub use received::ReceivedMessage;

use self::core::SimpleCore;
use super::report::ShutdownReport;
use super::selector::MessageSelector;
use super::shared::{leave, shut_down_fully};
use crate::config::ClientConfig;
use crate::error::Result;
use crate::instance::InstanceLease;

/// The most messages one [`receive`](SimpleConsumer::receive) may ask for
/// (a Java broker refuses more).
pub const MAX_RECEIVE_MESSAGES: usize = 32;

/// The longest invisible duration a receive or a change may give a message
/// (Java's proxy refuses more: `maxInvisibleTimeMills`, 12 hours). A Java
/// broker checks none: it adds the duration to the pop time, and one past
/// the `i64` of milliseconds wraps the message's revive time into the past,
/// so it would come back at once.
pub const MAX_INVISIBLE_DURATION: Duration = Duration::from_secs(12 * 60 * 60);

/// A pop consumer: [`receive`](Self::receive) messages, then
/// [`ack`](Self::ack) each one (or let it come back).
///
/// ```no_run
/// use std::time::Duration;
///
/// use rocketmq_client::consumer::{MessageSelector, SimpleConsumer};
/// use rocketmq_client::ClientConfig;
///
/// # async fn run() -> rocketmq_client::Result<()> {
/// let config = ClientConfig::new(["127.0.0.1:9876"]);
/// let consumer = SimpleConsumer::builder("orders-workers", config)
///     .subscribe("orders", MessageSelector::all())
///     .build()
///     .await?;
/// loop {
///     for received in consumer.receive(16, Duration::from_secs(30)).await? {
///         println!("{:?}", received.message().message.body);
///         consumer.ack(&received).await?;
///     }
/// }
/// # }
/// ```
pub struct SimpleConsumer {
    core: Arc<SimpleCore>,
    lease: Option<InstanceLease>,
}

impl fmt::Debug for SimpleConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleConsumer")
            .field("group", &self.core.group_name())
            .field("client_id", &self.core.client_id())
            .finish_non_exhaustive()
    }
}

impl SimpleConsumer {
    /// Starts building a consumer of `group`.
    pub fn builder(group: impl Into<String>, config: ClientConfig) -> SimpleConsumerBuilder {
        SimpleConsumerBuilder::new(group.into(), config)
    }

    /// Receives up to `max_messages` (1 to [`MAX_RECEIVE_MESSAGES`]) of one
    /// subscribed topic from one of its brokers (both taken in turn), which
    /// stay invisible to the group for `invisible_duration` (1 ms to
    /// [`MAX_INVISIBLE_DURATION`]). Waits up to the
    /// builder's await duration for messages to arrive; empty when none did.
    ///
    /// A broker holding too many waiting requests answers POLLING_FULL,
    /// returned as an error so that a receiving loop backs off.
    ///
    /// A receive given up on (its future dropped, e.g. by a timeout) while
    /// the broker holds it may still pop messages nobody gets: they come
    /// back when their invisible duration passes; for an
    /// [`orderly`](SimpleConsumerBuilder::orderly) consumer, with the first
    /// receive of that topic from that broker after the broker stopped
    /// holding the one given up on.
    pub async fn receive(
        &self,
        max_messages: usize,
        invisible_duration: Duration,
    ) -> Result<Vec<ReceivedMessage>> {
        self.core.receive(max_messages, invisible_duration).await
    }

    /// Acknowledges `message`: the broker will not deliver it again, if
    /// the acknowledgement arrives within the message's invisible duration.
    /// A Java broker does not look whether the pop is still in flight: an
    /// acknowledgement after the invisible duration passed (the message
    /// went back to the group already), or a second one, is answered
    /// success all the same and changes nothing. Acknowledge in time, or
    /// extend the duration with
    /// [`change_invisible_duration`](Self::change_invisible_duration).
    pub async fn ack(&self, message: &ReceivedMessage) -> Result<()> {
        self.core.ack(message).await
    }

    /// Acknowledges `messages` in one request per broker
    /// (BATCH_ACK_MESSAGE), where [`ack`](Self::ack) makes one per message.
    /// Like `ack`, it is answered SUCCESS for receipts the broker no longer
    /// knows (they did nothing). A batch the broker answers with an error is
    /// sent again as single acknowledgements, and a broker that cannot take
    /// batches (older than BATCH_ACK_MESSAGE) gets single ones for ten
    /// minutes; a batch without an answer is not sent again. Every broker is
    /// tried; the first failure is returned.
    pub async fn ack_batch(&self, messages: &[ReceivedMessage]) -> Result<()> {
        self.core.ack_batch(messages).await
    }

    /// Makes `message` invisible for `invisible_duration` from now (1 ms to
    /// [`MAX_INVISIBLE_DURATION`]; to take longer over it, or to have it
    /// back sooner), and gives it the
    /// new receipt handle this answers: the old one no longer acknowledges it.
    /// As with [`ack`](Self::ack), a Java broker does not look whether the
    /// message is still in flight: a change of a message acknowledged
    /// already makes it come back once more when the new duration ends.
    pub async fn change_invisible_duration(
        &self,
        message: &mut ReceivedMessage,
        invisible_duration: Duration,
    ) -> Result<()> {
        self.core
            .change_invisible_duration(message, invisible_duration)
            .await
    }

    /// Subscribes to `topic` as well (or replaces its selector) while
    /// running; the brokers learn of it with the next heartbeat, sent at once.
    pub async fn subscribe(
        &self,
        topic: impl Into<String>,
        selector: impl Into<MessageSelector>,
    ) -> Result<()> {
        self.core.subscribe(topic.into(), selector.into()).await
    }

    /// Stops receiving from `topic`.
    pub fn unsubscribe(&self, topic: &str) {
        self.core.unsubscribe(topic);
    }

    /// The topics subscribed, without the namespace.
    pub fn topics(&self) -> Vec<String> {
        self.core.user_topics()
    }

    /// The consumer group, without the namespace.
    pub fn group(&self) -> String {
        self.core.user_group()
    }

    /// Leaves the group: unregisters from the brokers and releases the
    /// client instance. Messages received and not acknowledged come back to
    /// the group when their invisible duration passes.
    ///
    /// Runs to its end in a task of its own, even when the caller stops
    /// waiting.
    pub async fn shutdown(mut self) {
        let core = Arc::clone(&self.core);
        let lease = self.lease.take();
        shut_down_fully(async move {
            let group = core.group_name().to_owned();
            leave(core.instance(), &group, lease).await;
            tracing::info!(%group, "simple consumer shut down");
            ShutdownReport::default()
        })
        .await;
    }
}

impl Drop for SimpleConsumer {
    fn drop(&mut self) {
        if self.lease.is_some() {
            self.core
                .instance()
                .unregister_consumer(self.core.group_name());
        }
    }
}
