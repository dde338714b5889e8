//! Returning failed messages to the broker: CONSUMER_SEND_MSG_BACK, and the
//! fallback of sending a copy to the group's retry topic (PROTOCOL.md §3.7).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rocketmq_model::time::epoch_millis;

use rocketmq_model::header::{ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader};
use rocketmq_model::route::{AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};
use rocketmq_model::{Message, MessageExt, MessageQueue, property};
use rocketmq_remoting::calls::{SendMessage, SendResponse};

use crate::api::BrokerApi;
use crate::consumer_options::RETRY_TOPIC_PREFIX;
use crate::error::{KernelError, Result};
use crate::route::Routes;

/// The producer group of the client's inner producer, which sends retry
/// copies (Java `MixAll.CLIENT_INNER_PRODUCER_GROUP`).
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// How many queues a retry copy is tried on (Java's producer: one attempt
/// plus `retryTimesWhenSendFailed` = 2).
const RETRY_COPY_ATTEMPTS: usize = 3;

/// The timeout of each retry-copy send: Java's inner producer sends with its
/// default `sendMsgTimeout`, 3 s.
const RETRY_COPY_TIMEOUT: Duration = Duration::from_secs(3);

/// The copy of a failed message that goes to `%RETRY%<group>` when
/// CONSUMER_SEND_MSG_BACK fails, or when an orderly message reached its
/// maximum reconsume count (Java `sendMessageBackAsNormalMessage`): the same
/// body, flag and properties, ORIGIN_MESSAGE_ID (kept, or the message id),
/// RETRY_TOPIC (the message's topic), RECONSUME_TIME, MAX_RECONSUME_TIMES,
/// DELAY 3 + the reconsume count, and no TRAN_MSG.
pub fn retry_copy(
    msg: &MessageExt,
    group: &str,
    reconsume_time: i32,
    max_reconsume_times: i32,
) -> Result<Message> {
    let mut copy = Message::new(format!("{RETRY_TOPIC_PREFIX}{group}"), msg.body().clone());
    copy.flag = msg.message.flag;
    copy.properties = msg.message.properties.clone();
    let origin = match msg.property(property::ORIGIN_MESSAGE_ID) {
        Some(origin) if !origin.trim().is_empty() => origin.to_owned(),
        _ => msg.msg_id().into_owned(),
    };
    let props = &mut copy.properties;
    props.insert(property::ORIGIN_MESSAGE_ID, origin)?;
    props.insert(property::RETRY_TOPIC, msg.topic())?;
    props.insert(property::RECONSUME_TIME, reconsume_time.to_string())?;
    props.insert(
        property::MAX_RECONSUME_TIMES,
        max_reconsume_times.to_string(),
    )?;
    props.remove(property::TRAN_MSG);
    props.insert(property::DELAY, (3 + msg.reconsume_times).to_string())?;
    Ok(copy)
}

/// The SEND_MESSAGE_V2 request of the inner producer for a retry copy to
/// `queue`. As Java's producer does for `%RETRY%` topics, the reconsume
/// counts also travel in the header (the properties keep them too).
pub(crate) fn retry_send_request(copy: &Message, queue: &MessageQueue) -> SendMessage {
    let parse = |name| copy.property(name).and_then(|v| v.parse::<i32>().ok());
    let header = SendMessageRequestHeader {
        producer_group: CLIENT_INNER_PRODUCER_GROUP.into(),
        topic: copy.topic.as_str().into(),
        default_topic: AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
        queue_id: queue.queue_id,
        sys_flag: 0,
        born_timestamp: epoch_millis(SystemTime::now()),
        flag: copy.flag,
        properties: Some(copy.properties.encode()),
        reconsume_times: Some(parse(property::RECONSUME_TIME).unwrap_or(0)),
        unit_mode: Some(false),
        max_reconsume_times: parse(property::MAX_RECONSUME_TIMES),
        batch: Some(false),
        broker_name: Some(queue.broker_name.as_str().into()),
    };
    SendMessage::new(header, copy.body.clone())
}

/// Returns failed messages of one consumer group to the broker.
#[derive(Clone)]
pub struct SendBack {
    api: Arc<dyn BrokerApi>,
    routes: Routes,
    group: String,
}

impl fmt::Debug for SendBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBack")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl SendBack {
    /// Sends back for `group` through `api`, finding brokers in `routes`.
    pub fn new(api: Arc<dyn BrokerApi>, routes: Routes, group: impl Into<String>) -> Self {
        SendBack {
            api,
            routes,
            group: group.into(),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Returns `msg` (consumed from `mq`) for a retry at `delay_level` (0:
    /// the broker's choice, negative: the DLQ): CONSUMER_SEND_MSG_BACK to
    /// the master of `mq`'s broker, and when that fails a
    /// [retry copy](retry_copy) sent to `%RETRY%<group>` (Java's
    /// `sendMessageBack`). `Ok` when either stored the message.
    pub async fn send_back(
        &self,
        msg: &MessageExt,
        mq: &MessageQueue,
        delay_level: i32,
        max_reconsume_times: i32,
    ) -> Result<()> {
        let err = match self
            .consumer_send_back(msg, mq, delay_level, max_reconsume_times)
            .await
        {
            Ok(()) => return Ok(()),
            Err(err) => err,
        };
        tracing::warn!(group = %self.group, %mq, offset = msg.queue_offset, error = %err,
            "send-back failed; sending the message to the retry topic");
        let copy = retry_copy(
            msg,
            &self.group,
            msg.reconsume_times + 1,
            max_reconsume_times,
        )?;
        self.send_to_retry_topic(&copy).await.map(drop)
    }

    async fn consumer_send_back(
        &self,
        msg: &MessageExt,
        mq: &MessageQueue,
        delay_level: i32,
        max_reconsume_times: i32,
    ) -> Result<()> {
        let addr = self.routes.table().master_addr(&mq.broker_name)?;
        let header = ConsumerSendMsgBackRequestHeader {
            offset: msg.commit_log_offset,
            group: self.group.clone(),
            delay_level,
            origin_msg_id: Some(msg.msg_id().into_owned()),
            origin_topic: Some(msg.topic().to_owned()),
            unit_mode: false,
            max_reconsume_times: Some(max_reconsume_times),
            broker_name: Some(mq.broker_name.clone()),
        };
        self.api.send_back(&addr, header).await
    }

    /// Sends a [retry copy](retry_copy) to a queue of `%RETRY%<group>`
    /// through the inner producer, trying up to three queues.
    pub async fn send_to_retry_topic(&self, copy: &Message) -> Result<SendResponse> {
        let publish = self.routes.publish_info(&copy.topic).await?;
        let mut last_err = None;
        for _ in 0..RETRY_COPY_ATTEMPTS {
            let Some(queue) = publish.next_queue() else {
                break;
            };
            let result = match self.routes.table().master_addr(&queue.broker_name) {
                Ok(addr) => {
                    let request = retry_send_request(copy, queue);
                    self.api
                        .send_message(&addr, request, RETRY_COPY_TIMEOUT)
                        .await
                }
                Err(err) => Err(err),
            };
            match result {
                Ok(response) => return Ok(response),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| KernelError::NoRoute {
            topic: copy.topic.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retried(topic: &str) -> MessageExt {
        let mut msg = MessageExt::from(Message::new(topic, "body"));
        msg.message
            .properties
            .insert(property::RETRY_TOPIC, "T")
            .unwrap();
        msg.message
            .properties
            .insert(property::TRAN_MSG, "true")
            .unwrap();
        msg.message.flag = 7;
        msg.reconsume_times = 2;
        msg
    }

    #[test]
    fn retry_copy_carries_the_java_properties() {
        let mut msg = retried("%RETRY%cg");
        crate::consume::restore_retry_topic(&mut msg, "%RETRY%cg");
        let copy = retry_copy(&msg, "cg", 3, 16).unwrap();
        assert_eq!(copy.topic, "%RETRY%cg");
        assert_eq!(copy.flag, 7);
        assert_eq!(copy.property(property::RETRY_TOPIC), Some("T"));
        assert_eq!(copy.property(property::RECONSUME_TIME), Some("3"));
        assert_eq!(copy.property(property::MAX_RECONSUME_TIMES), Some("16"));
        assert_eq!(copy.property(property::DELAY), Some("5"));
        assert_eq!(copy.property(property::TRAN_MSG), None);
        assert_eq!(
            copy.property(property::ORIGIN_MESSAGE_ID),
            Some(msg.msg_id().as_ref())
        );
        let request = retry_send_request(&copy, &MessageQueue::new("%RETRY%cg", "b", 0));
        assert_eq!(request.header.reconsume_times, Some(3));
        assert_eq!(request.header.max_reconsume_times, Some(16));
        assert_eq!(request.header.producer_group, CLIENT_INNER_PRODUCER_GROUP);
        assert_eq!(request.header.broker_name.as_deref(), Some("b"));
    }

    #[test]
    fn retry_copy_keeps_an_existing_origin_id() {
        let mut msg = retried("T");
        msg.message
            .properties
            .insert(property::ORIGIN_MESSAGE_ID, "FIRST")
            .unwrap();
        let copy = retry_copy(&msg, "cg", 1, 16).unwrap();
        assert_eq!(copy.property(property::ORIGIN_MESSAGE_ID), Some("FIRST"));
    }
}
