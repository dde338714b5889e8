//! Recalling a timer message before it is due (RocketMQ 5.3.1+, Java's
//! `recallMessage`).

use rocketmq_kernel::api::BrokerApi;
use rocketmq_model::header::RecallMessageRequestHeader;
use rocketmq_model::message::{RecallHandle, validate_topic};
use rocketmq_model::resource::{is_dlq_topic, is_retry_topic};
use rocketmq_model::{BrokerData, MessageQueue};

use super::send::Sender;
use super::{Producer, SendResult, TransactionProducer};
use crate::error::{ClientError, Result};

impl Producer {
    /// Takes back a timer message before it is due, by the
    /// [`recall_handle`](super::SendResult::recall_handle) its send
    /// answered (Java's `recallMessage`); answers the message's unique id.
    /// The broker the handle names refuses a recall when it does not allow
    /// them (NO_PERMISSION: `recallMessageEnable` is off by default), when
    /// `topic` is not the message's, or when the message is due or
    /// delivered already (ILLEGAL_OPERATION); see
    /// [`ClientError::response_code`]. A handle that cannot be read is
    /// refused here.
    pub async fn recall_message(&self, topic: &str, recall_handle: &str) -> Result<String> {
        recall(&self.sender, topic, recall_handle).await
    }

    /// [`recall_message`](Self::recall_message) of what `sent` answered:
    /// its topic and recall handle. A result without a handle (not a timer
    /// message, or a broker before 5.3.1) is refused here.
    pub async fn recall(&self, sent: &SendResult) -> Result<String> {
        let Some(handle) = &sent.recall_handle else {
            return Err(ClientError::InvalidCall(format!(
                "message {} of {} has no recall handle: only a timer message a 5.3.1+ broker stored has one",
                sent.msg_id, sent.message_queue.topic
            )));
        };
        recall(&self.sender, &sent.message_queue.topic, handle).await
    }
}

impl TransactionProducer {
    /// [`Producer::recall_message`], for a timer message this producer
    /// sent.
    pub async fn recall_message(&self, topic: &str, recall_handle: &str) -> Result<String> {
        recall(&self.sender, topic, recall_handle).await
    }
}

async fn recall(sender: &Sender, topic: &str, recall_handle: &str) -> Result<String> {
    let topic = sender.namespace.wrap(topic).into_owned();
    validate_topic(&topic).map_err(|e| ClientError::InvalidCall(e.to_string()))?;
    if is_retry_topic(&topic) || is_dlq_topic(&topic) {
        return Err(ClientError::InvalidCall(format!(
            "messages of {topic} cannot be recalled"
        )));
    }
    let handle = RecallHandle::parse(recall_handle)?;
    let addr = broker_addr(sender, &topic, handle.broker_name()).await?;
    let header = RecallMessageRequestHeader {
        producer_group: Some(sender.group().to_owned()),
        topic,
        recall_handle: recall_handle.to_owned(),
        broker_name: Some(handle.broker_name().to_owned()),
    };
    let api = sender.instance.broker_api();
    Ok(api.recall_message(&addr, header).await?)
}

/// Where the recall goes: the master of the broker the handle names, as
/// the topic's route knows it, else (as Java's `findBrokerAddrByTopic`, for
/// a proxy in front of the brokers) a broker of the topic's route.
async fn broker_addr(
    sender: &Sender,
    topic: &str,
    broker_name: &str,
) -> Result<std::sync::Arc<str>> {
    let routes = sender.instance.routes();
    let named = MessageQueue::new(topic, broker_name, 0);
    if let Ok(addr) = routes.master_addr(&named).await {
        return Ok(addr);
    }
    let route = routes.route(topic).await?;
    (route.broker_datas.iter())
        .find_map(BrokerData::any_addr)
        .map(std::sync::Arc::from)
        .ok_or_else(|| ClientError::NoRoute {
            topic: sender.namespace.unwrap(topic).into_owned(),
        })
}
