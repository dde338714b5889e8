//! What producers and consumers register with a
//! [`ClientInstance`](super::ClientInstance), so that its background tasks and
//! the requests brokers send reach them.

use std::collections::HashMap;

use async_trait::async_trait;
use rocketmq_model::body::{ConsumeMessageDirectlyResult, ConsumerData};
use rocketmq_model::header::CheckTransactionStateRequestHeader;
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue};

/// A consumer registered with a client instance. The instance calls it from
/// its background tasks (rebalance every 20 s and on
/// NOTIFY_CONSUMER_IDS_CHANGED, offset persistence every 5 s) and for the
/// broker's requests about the consumer's group.
///
/// Calls are made from the instance's tasks; a slow call delays only the
/// task making it, never a connection's reader.
#[async_trait]
pub trait ConsumerHandle: Send + Sync + 'static {
    /// The consumer group (unique within one client instance).
    fn group(&self) -> &str;

    /// The group's entry in the heartbeat: subscriptions, consume type,
    /// message model, where to start.
    fn heartbeat_data(&self) -> ConsumerData;

    /// The topics whose routes the instance keeps fresh for this consumer;
    /// a changed route triggers [`rebalance`](Self::rebalance).
    fn subscribed_topics(&self) -> Vec<String>;

    /// Rebalances the group's queues among its members.
    async fn rebalance(&self);

    /// Persists the consumed offsets (every
    /// `persist_consumer_offset_interval`).
    async fn persist_offsets(&self);

    /// RESET_CONSUMER_CLIENT_OFFSET: moves the consumer of `topic` to these
    /// offsets and persists them.
    async fn reset_offset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>);

    /// GET_CONSUMER_RUNNING_INFO: the consumer's figures (the instance adds
    /// the client-level properties).
    fn running_info(&self) -> ConsumerRunningInfo;

    /// GET_CONSUMER_STATUS_FROM_CLIENT: the consumer's offsets of `topic`.
    fn consumer_status(&self, topic: &str) -> HashMap<MessageQueue, i64>;

    /// CONSUME_MESSAGE_DIRECTLY: consumes `msg` now with the listener;
    /// `None` for a consumer without one (a pull consumer), which the broker
    /// is told is not here, as Java tells it of anything but a push consumer.
    async fn consume_directly(
        &self,
        msg: MessageExt,
        broker_name: Option<String>,
    ) -> Option<ConsumeMessageDirectlyResult>;
}

/// A producer registered with a client instance: its group is reported in
/// heartbeats, and CHECK_TRANSACTION_STATE for its group reaches it.
#[async_trait]
pub trait ProducerHandle: Send + Sync + 'static {
    /// The producer group (unique within one client instance).
    fn group(&self) -> &str;

    /// Answers a broker's transaction check of `msg`, a half message this
    /// group sent, by sending END_TRANSACTION to `broker_addr`. Producers
    /// that send no transactions keep the default, which logs and ignores the
    /// check (as Java does when the group has no listener).
    async fn check_transaction(
        &self,
        broker_addr: String,
        header: CheckTransactionStateRequestHeader,
        msg: MessageExt,
    ) {
        tracing::warn!(
            addr = %broker_addr,
            group = self.group(),
            msg_id = ?header.msg_id,
            "transaction check for a producer without a transaction listener"
        );
        let _ = msg;
    }
}
