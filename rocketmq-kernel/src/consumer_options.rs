//! The settings of a push consumer that the kernel's rebalance, pull and consume
//! machinery read. Defaults are the Java client's (`DefaultMQPushConsumer`); the
//! field names are Java's in snake_case, so users can map them one to one.

use std::time::{Duration, SystemTime};

use rocketmq_model::Namespace;
use rocketmq_model::body::{ConsumeFromWhere, MessageModel};

/// Push-consumer settings (Java `DefaultMQPushConsumer` defaults).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConsumerOptions {
    /// The consumer group.
    pub group: String,
    /// Clustering (members share queues) or broadcasting (every member gets all).
    pub message_model: MessageModel,
    /// Where a queue without a committed offset starts.
    pub consume_from_where: ConsumeFromWhere,
    /// The point in time for [`ConsumeFromWhere::Timestamp`]; Java's default is
    /// half an hour before the consumer starts.
    pub consume_timestamp: SystemTime,
    /// Messages asked for per pull (`pullBatchSize`, 32).
    pub pull_batch_size: i32,
    /// Bytes asked for per pull (`maxMsgBytes` on the wire, 256 KiB).
    pub pull_batch_size_in_bytes: i32,
    /// Pause pulling a queue when it caches this many messages (1000).
    pub pull_threshold_for_queue: usize,
    /// Pause pulling a queue when it caches this many body bytes (100 MiB).
    pub pull_threshold_size_for_queue: u64,
    /// Per-topic message limit, spread over every owned queue, of all topics
    /// (`None`: off).
    pub pull_threshold_for_topic: Option<usize>,
    /// Per-topic byte limit, spread over every owned queue, of all topics
    /// (`None`: off).
    pub pull_threshold_size_for_topic: Option<u64>,
    /// Concurrent consumption: pause when a queue's cached offsets span more than
    /// this (2000).
    pub consume_concurrently_max_span: i64,
    /// Pause between pulls of one queue (`pullInterval`, zero).
    pub pull_interval: Duration,
    /// Wait before pulling again after flow control (50 ms).
    pub pull_time_delay_when_flow_control: Duration,
    /// Wait before pulling again after an error (Java's
    /// `pullTimeDelayMillsWhenException`, 1 s: `ClientConfig`'s, which the
    /// push consumer takes over its own field's 3 s).
    pub pull_time_delay_when_exception: Duration,
    /// How long the broker holds a pull with no new message (15 s).
    pub broker_suspend_max_time: Duration,
    /// Messages handed to the listener at once (`consumeMessageBatchMaxSize`, 1).
    pub consume_message_batch_max_size: usize,
    /// Listener calls running at once (`consumeThreadMax`, 20).
    pub consume_thread_max: usize,
    /// Retries before a message goes to the DLQ; `None` means Java's −1: 16 for
    /// concurrent consumption, unbounded for orderly.
    pub max_reconsume_times: Option<i32>,
    /// Orderly consumption: how long a queue pauses after a failed batch (1 s).
    pub suspend_current_queue_time: Duration,
    /// A message consuming longer than this is sent back and dropped from the
    /// process queue (15 min).
    pub consume_timeout: Duration,
    /// Send the subscription with every pull instead of relying on the heartbeat
    /// (`postSubscriptionWhenPull`, false).
    pub post_subscription_when_pull: bool,
    /// The namespace `group` and the subscribed topics are in (names given
    /// here are as the broker knows them, already in it); the listener is
    /// given topics out of it.
    pub namespace: Namespace,
    /// Whether the client allocates queues itself (`clientRebalance`, true).
    /// False leaves it to the brokers (QUERY_ASSIGNMENT), which may also tell
    /// the client to pop its queues rather than pull them; orderly and
    /// broadcasting consumers always allocate themselves, as Java's.
    pub client_rebalance: bool,
    /// Pop mode: how long popped messages stay hidden from the group while
    /// they are consumed (`popInvisibleTime`, 60 s).
    pub pop_invisible_time: Duration,
    /// Pop mode: the most messages one pop asks for (`popBatchNums`, 32).
    pub pop_batch_nums: i32,
    /// Pop mode: a queue pops no more while this many of its messages wait
    /// for their acknowledgement (`popThresholdForQueue`, 96).
    pub pop_threshold_for_queue: usize,
}

impl ConsumerOptions {
    /// The Java defaults for `group`.
    pub fn new(group: impl Into<String>) -> Self {
        ConsumerOptions {
            group: group.into(),
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::LastOffset,
            consume_timestamp: SystemTime::now() - Duration::from_secs(30 * 60),
            pull_batch_size: 32,
            pull_batch_size_in_bytes: 256 * 1024,
            pull_threshold_for_queue: 1000,
            pull_threshold_size_for_queue: 100 * 1024 * 1024,
            pull_threshold_for_topic: None,
            pull_threshold_size_for_topic: None,
            consume_concurrently_max_span: 2000,
            pull_interval: Duration::ZERO,
            pull_time_delay_when_flow_control: Duration::from_millis(50),
            pull_time_delay_when_exception: Duration::from_secs(1),
            broker_suspend_max_time: Duration::from_secs(15),
            consume_message_batch_max_size: 1,
            consume_thread_max: 20,
            max_reconsume_times: None,
            suspend_current_queue_time: Duration::from_secs(1),
            consume_timeout: Duration::from_secs(15 * 60),
            post_subscription_when_pull: false,
            namespace: Namespace::none(),
            client_rebalance: true,
            pop_invisible_time: Duration::from_secs(60),
            pop_batch_nums: 32,
            pop_threshold_for_queue: 96,
        }
    }

    /// The retry limit for concurrent consumption (Java maps −1 to 16).
    pub fn concurrent_max_reconsume_times(&self) -> i32 {
        self.max_reconsume_times.unwrap_or(16)
    }

    /// The retry limit for orderly consumption (Java maps −1 to `i32::MAX`).
    pub fn orderly_max_reconsume_times(&self) -> i32 {
        self.max_reconsume_times.unwrap_or(i32::MAX)
    }

    /// The retry topic of the group, `%RETRY%<group>`.
    pub fn retry_topic(&self) -> String {
        format!("{RETRY_TOPIC_PREFIX}{}", self.group)
    }
}

pub use rocketmq_model::resource::{DLQ_TOPIC_PREFIX, RETRY_TOPIC_PREFIX};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_defaults_and_retry_limits() {
        let options = ConsumerOptions::new("cg");
        assert_eq!(options.pull_batch_size, 32);
        assert_eq!(
            options.pull_time_delay_when_exception,
            Duration::from_secs(1)
        );
        assert_eq!(options.concurrent_max_reconsume_times(), 16);
        assert_eq!(options.orderly_max_reconsume_times(), i32::MAX);
        assert_eq!(options.retry_topic(), "%RETRY%cg");
        let bounded = ConsumerOptions {
            max_reconsume_times: Some(3),
            ..ConsumerOptions::new("cg")
        };
        assert_eq!(bounded.orderly_max_reconsume_times(), 3);
    }
}
