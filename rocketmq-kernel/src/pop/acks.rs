//! What a consumer sends back about popped messages: acknowledgements, new
//! invisible times, and the move of a message delivered too often to the
//! group's dead-letter topic. Each goes to the master of the broker that
//! popped the message, named by its receipt handle.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ConsumerSendMsgBackRequestHeader,
};
use rocketmq_model::message::ReceiptHandle;
use rocketmq_model::{MessageExt, MessageQueue};

use crate::api::BrokerApi;
use crate::error::Result;
use crate::route::Routes;

/// The broker calls about popped messages of one consumer group.
#[derive(Clone)]
pub struct PopAcks {
    api: Arc<dyn BrokerApi>,
    routes: Routes,
    group: String,
}

impl fmt::Debug for PopAcks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PopAcks")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl PopAcks {
    /// The calls of `group` (as the broker knows it), to the brokers `routes`
    /// find.
    pub fn new(api: Arc<dyn BrokerApi>, routes: Routes, group: impl Into<String>) -> Self {
        PopAcks {
            api,
            routes,
            group: group.into(),
        }
    }

    /// Acknowledges the message `handle` names, popped from `topic` (the
    /// subscribed topic as the broker knows it).
    pub async fn ack(&self, topic: &str, handle: &ReceiptHandle) -> Result<()> {
        let addr = self.broker_addr(topic, handle).await?;
        let header = AckMessageRequestHeader {
            consumer_group: self.group.clone(),
            topic: handle.kind.real_topic(topic, &self.group),
            queue_id: handle.queue_id,
            extra_info: handle.encode(),
            offset: handle.queue_offset,
            broker_name: Some(handle.broker_name.clone()),
        };
        self.api.ack_message(&addr, header).await
    }

    /// Hides the message `handle` names for `invisible` from now on, and
    /// answers the handle that acknowledges it from then on.
    pub async fn change_invisible_time(
        &self,
        topic: &str,
        handle: &ReceiptHandle,
        invisible: Duration,
    ) -> Result<ReceiptHandle> {
        let addr = self.broker_addr(topic, handle).await?;
        let header = ChangeInvisibleTimeRequestHeader {
            consumer_group: self.group.clone(),
            topic: handle.kind.real_topic(topic, &self.group),
            queue_id: handle.queue_id,
            extra_info: handle.encode(),
            offset: handle.queue_offset,
            invisible_time: i64::try_from(invisible.as_millis()).unwrap_or(i64::MAX),
            broker_name: Some(handle.broker_name.clone()),
        };
        let answer = self.api.change_invisible_time(&addr, header).await?;
        Ok(handle.renewed(answer.pop_time, answer.invisible_time, answer.revive_qid))
    }

    /// Moves `message` to `%DLQ%<group>` and acknowledges it, as Java's proxy
    /// does for a message delivered too often: a send-back with delay level
    /// -1 (straight to the dead-letter topic), then the acknowledgement.
    /// Either failing leaves the message to come back.
    pub async fn to_dead_letters(
        &self,
        topic: &str,
        message: &MessageExt,
        handle: &ReceiptHandle,
    ) -> Result<()> {
        let addr = self.broker_addr(topic, handle).await?;
        let header = ConsumerSendMsgBackRequestHeader {
            offset: message.commit_log_offset,
            group: self.group.clone(),
            delay_level: -1,
            origin_msg_id: message.message.uniq_key().map(str::to_owned),
            origin_topic: Some(handle.kind.real_topic(topic, &self.group)),
            unit_mode: false,
            max_reconsume_times: Some(0),
            broker_name: Some(handle.broker_name.clone()),
        };
        self.api.send_back(&addr, header).await?;
        self.ack(topic, handle).await
    }

    /// The master of the broker that popped `handle`'s message (refreshing
    /// `topic`'s route once when the broker is unknown).
    async fn broker_addr(&self, topic: &str, handle: &ReceiptHandle) -> Result<Arc<str>> {
        let mq = MessageQueue::new(topic, handle.broker_name.as_str(), handle.queue_id);
        self.routes.master_addr(&mq).await
    }
}
