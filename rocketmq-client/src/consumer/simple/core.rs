//! The consumer behind a [`SimpleConsumer`](super::SimpleConsumer): what it
//! subscribes to, where it pops, and its registration with the client
//! instance (heartbeats as a CONSUME_POP consumer).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rocketmq_kernel::ConsumerOptions;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::pop::{AckTarget, PopAcks, popped_messages};
use rocketmq_model::body::property_keys::{
    PROP_CONSUME_ORDERLY, PROP_CONSUME_TYPE, PROP_CONSUMER_START_TIMESTAMP,
};
use rocketmq_model::body::{
    ConsumeFromWhere, ConsumeMessageDirectlyResult, ConsumeType, ConsumerData,
};
use rocketmq_model::header::PopMessageRequestHeader;
use rocketmq_model::message::ReceiptHandle;
use rocketmq_model::time::epoch_millis;
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue, ResponseCode, route};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::PopStatus;

use super::attempt::AttemptIds;
use super::received::ReceivedMessage;
use super::{MAX_INVISIBLE_DURATION, MAX_RECEIVE_MESSAGES};
use crate::consumer::selector::MessageSelector;
use crate::consumer::subscriptions::Subscriptions;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle};

/// Java's `ConsumeInitMode`: where a group without an offset starts popping.
const INIT_MODE_MIN: i32 = 0;
const INIT_MODE_MAX: i32 = 1;

pub(super) struct SimpleCore {
    pub(super) options: ConsumerOptions,
    pub(super) instance: ClientInstance,
    pub(super) api: Arc<dyn BrokerApi>,
    pub(super) subscriptions: Subscriptions,
    pub(super) await_duration: Duration,
    /// Deliveries after which a message goes to the dead-letter topic.
    pub(super) max_delivery_attempts: u32,
    /// Orderly (FIFO) pops.
    pub(super) orderly: bool,
    /// Acknowledgements, new invisible times and dead-lettering by handle.
    pub(super) acks: PopAcks,
    /// The ids of orderly pops whose answers were lost, to repeat them.
    pub(super) attempt_ids: AttemptIds,
    pub(super) started_at: SystemTime,
    /// The subscribed topic the next receive pops from (taken in turn).
    pub(super) next_topic: AtomicUsize,
    /// Per topic, the broker its next receive pops from (taken in turn).
    pub(super) next_broker: Mutex<HashMap<String, usize>>,
}

impl SimpleCore {
    pub(super) fn group_name(&self) -> &str {
        &self.options.group
    }

    pub(super) fn client_id(&self) -> &str {
        self.instance.client_id()
    }

    pub(super) fn instance(&self) -> &ClientInstance {
        &self.instance
    }

    pub(super) fn user_group(&self) -> String {
        self.options
            .namespace
            .unwrap(&self.options.group)
            .into_owned()
    }

    pub(super) fn user_topics(&self) -> Vec<String> {
        (self.subscriptions.topics().iter())
            .map(|topic| self.options.namespace.unwrap(topic).into_owned())
            .collect()
    }

    pub(super) async fn receive(
        &self,
        max_messages: usize,
        invisible: Duration,
    ) -> Result<Vec<ReceivedMessage>> {
        if !(1..=MAX_RECEIVE_MESSAGES).contains(&max_messages) {
            return Err(ClientError::InvalidCall(format!(
                "receive asks for {max_messages} messages; from 1 to {MAX_RECEIVE_MESSAGES}"
            )));
        }
        let invisible_ms = invisible_millis(invisible)?;
        let topic = self.next_topic()?;
        let Some(subscription) = self.subscriptions.get(&topic) else {
            return Ok(Vec::new()); // unsubscribed meanwhile
        };
        let (broker_name, addr) = self.next_broker(&topic).await?;
        let attempt = (self.orderly).then(|| {
            (self.attempt_ids).begin(&topic, &broker_name, self.await_duration, invisible)
        });
        let header = PopMessageRequestHeader {
            consumer_group: self.options.group.clone(),
            topic: topic.clone(),
            queue_id: -1,
            max_msg_nums: i32::try_from(max_messages).unwrap_or(i32::MAX),
            invisible_time: invisible_ms,
            poll_time: millis(self.await_duration),
            born_time: epoch_millis(SystemTime::now()),
            init_mode: init_mode(self.options.consume_from_where),
            exp_type: Some(subscription.expression_type.as_str().to_owned()),
            exp: Some(subscription.sub_string.clone()),
            order: self.orderly,
            attempt_id: attempt.as_ref().map(|attempt| attempt.id().to_owned()),
            broker_name: Some(broker_name.clone()),
        };
        let response = self.api.pop_message(&addr, header).await;
        if let Some(attempt) = attempt {
            attempt.finish(&response);
        }
        let response = response?;
        match response.status {
            PopStatus::Found => {}
            PopStatus::NoNewMsg => return Ok(Vec::new()),
            PopStatus::PollingFull => {
                return Err(ClientError::Remoting(RemotingError::Response {
                    addr: addr.to_string(),
                    code: ResponseCode::POLLING_FULL,
                    remark: "the broker holds too many waiting pop requests".into(),
                }));
            }
        }
        let popped = popped_messages(&broker_name, &response, &subscription)?;
        for handle in popped.filtered_out {
            // A tag whose hash collides with a subscribed one's: not wanted,
            // so acknowledged, as Java does, rather than left to come back.
            if let Err(err) = self.ack_handle(&topic, &handle).await {
                tracing::debug!(%topic, handle = %handle, error = %err, "acknowledging a filtered-out message failed");
            }
        }
        let mut received = Vec::with_capacity(popped.messages.len());
        for popped in popped.messages {
            let attempts = u32::try_from(popped.message.reconsume_times).unwrap_or(0);
            if attempts >= self.max_delivery_attempts {
                self.to_dead_letters(&topic, &popped.message, &popped.handle)
                    .await;
                continue;
            }
            let mut message = popped.message;
            self.to_user_topic(&mut message);
            received.push(ReceivedMessage::new(message, popped.handle, topic.clone()));
        }
        Ok(received)
    }

    /// Moves a message delivered `max_delivery_attempts` times to the
    /// group's dead-letter topic and acknowledges it, as Java's proxy does
    /// for its simple consumers: a send-back with delay level -1 (straight
    /// to `%DLQ%<group>`), then the ack. Either failing leaves the message
    /// to come back and be tried again.
    async fn to_dead_letters(&self, topic: &str, message: &MessageExt, handle: &ReceiptHandle) {
        match self.acks.to_dead_letters(topic, message, handle).await {
            Ok(()) => tracing::info!(group = self.group_name(), %topic,
                id = message.message.uniq_key().unwrap_or_default(),
                attempts = message.reconsume_times, "message moved to the dead-letter topic"),
            Err(err) => tracing::warn!(group = self.group_name(), %topic, error = %err,
                "moving a message to the dead-letter topic failed; it comes back"),
        }
    }

    pub(super) async fn ack(&self, message: &ReceivedMessage) -> Result<()> {
        self.ack_handle(&message.wire_topic, message.receipt_handle())
            .await
    }

    pub(super) async fn ack_batch(&self, messages: &[ReceivedMessage]) -> Result<()> {
        let targets: Vec<AckTarget<'_>> = (messages.iter())
            .map(|message| (message.wire_topic.as_str(), message.receipt_handle()))
            .collect();
        let outcomes = self.acks.ack_batch(&targets).await;
        match outcomes.into_iter().find_map(Result::err) {
            Some(err) => {
                tracing::warn!(group = self.group_name(), error = %err, "a batch acknowledgement failed");
                Err(err.into())
            }
            None => Ok(()),
        }
    }

    async fn ack_handle(&self, topic: &str, handle: &ReceiptHandle) -> Result<()> {
        Ok(self.acks.ack(topic, handle).await?)
    }

    pub(super) async fn change_invisible_duration(
        &self,
        message: &mut ReceivedMessage,
        invisible: Duration,
    ) -> Result<()> {
        invisible_millis(invisible)?;
        let renewed = (self.acks)
            .change_invisible_time(&message.wire_topic, message.receipt_handle(), invisible)
            .await?;
        message.renew(renewed);
        Ok(())
    }

    pub(super) async fn subscribe(&self, topic: String, selector: MessageSelector) -> Result<()> {
        if topic.is_empty() {
            return Err(ClientError::Config("a topic is empty".into()));
        }
        let topic = self.options.namespace.wrap(&topic).into_owned();
        self.subscriptions
            .insert_latest(selector.subscription(&topic)?);
        if let Err(err) = self.instance.routes().refresh(&topic).await {
            tracing::warn!(group = self.group_name(), %topic, error = %err, "no route for the topic yet");
        }
        self.instance.heartbeat_soon();
        Ok(())
    }

    pub(super) fn unsubscribe(&self, topic: &str) {
        let topic = self.options.namespace.wrap(topic);
        self.subscriptions.remove(&topic);
        self.instance.heartbeat_soon();
    }

    /// The subscribed topic this receive pops from: each in turn.
    fn next_topic(&self) -> Result<String> {
        let topics = self.subscriptions.topics();
        if topics.is_empty() {
            return Err(ClientError::InvalidCall(
                "the consumer subscribes to no topic".into(),
            ));
        }
        let turn = self.next_topic.fetch_add(1, Ordering::Relaxed);
        Ok(topics[turn % topics.len()].clone())
    }

    /// The broker of `topic` this receive pops from: each broker with a
    /// readable queue of it, in turn, by its master.
    async fn next_broker(&self, topic: &str) -> Result<(String, Arc<str>)> {
        let route = self.instance.routes().route(topic).await?;
        let mut brokers: Vec<&str> = (route.queue_datas.iter())
            .filter(|qd| route::perm::is_readable(qd.perm) && qd.read_queue_nums > 0)
            .map(|qd| qd.broker_name.as_str())
            .filter(|name| route.master_addr(name).is_some())
            .collect();
        brokers.sort_unstable();
        brokers.dedup();
        if brokers.is_empty() {
            return Err(ClientError::NoRoute {
                topic: self.options.namespace.unwrap(topic).into_owned(),
            });
        }
        let turn = {
            let mut next = self
                .next_broker
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let turn = next.entry(topic.to_owned()).or_default();
            let this = *turn;
            *turn = turn.wrapping_add(1);
            this
        };
        let name = brokers[turn % brokers.len()];
        let addr = route.master_addr(name).unwrap_or_default();
        Ok((name.to_owned(), Arc::from(addr)))
    }

    fn to_user_topic(&self, message: &mut MessageExt) {
        (self.options.namespace).unwrap_in_place(&mut message.message.topic);
    }
}

/// Where a group without an offset starts: the queue's first message for
/// `FirstOffset`, else its end (Java's push consumer in pop mode).
fn init_mode(from: ConsumeFromWhere) -> i32 {
    match from {
        ConsumeFromWhere::FirstOffset => INIT_MODE_MIN,
        _ => INIT_MODE_MAX,
    }
}

/// An invisible duration as the broker takes it: from 1 ms to
/// [`MAX_INVISIBLE_DURATION`].
fn invisible_millis(invisible: Duration) -> Result<i64> {
    let ms = millis(invisible);
    if ms < 1 || invisible > MAX_INVISIBLE_DURATION {
        return Err(ClientError::InvalidCall(format!(
            "the invisible duration is {invisible:?}; from 1 ms to {MAX_INVISIBLE_DURATION:?}"
        )));
    }
    Ok(ms)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[async_trait]
impl ConsumerHandle for SimpleCore {
    fn group(&self) -> &str {
        &self.options.group
    }

    fn heartbeat_data(&self) -> ConsumerData {
        self.subscriptions
            .consumer_data(&self.options, ConsumeType::ConsumePop)
    }

    fn subscribed_topics(&self) -> Vec<String> {
        self.subscriptions.topics()
    }

    /// Nothing to do: the broker hands out the messages.
    async fn rebalance(&self) {}

    /// Nothing to do: the broker keeps the group's offsets as messages are
    /// acknowledged.
    async fn persist_offsets(&self) {}

    async fn reset_offset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        // The broker pops from its own offsets, which the reset has moved.
        tracing::info!(group = self.group_name(), %topic, queues = offsets.len(),
            "offsets reset; the broker pops from them");
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        let mut properties = BTreeMap::new();
        properties.insert("consumerGroup".to_owned(), self.group_name().to_owned());
        properties.insert("messageModel".to_owned(), "CLUSTERING".to_owned());
        properties.insert(PROP_CONSUME_ORDERLY.to_owned(), self.orderly.to_string());
        properties.insert(
            PROP_CONSUME_TYPE.to_owned(),
            ConsumeType::ConsumePop.as_str().to_owned(),
        );
        properties.insert(
            PROP_CONSUMER_START_TIMESTAMP.to_owned(),
            epoch_millis(self.started_at).to_string(),
        );
        ConsumerRunningInfo {
            properties,
            subscription_set: self.subscriptions.list(),
            ..ConsumerRunningInfo::default()
        }
    }

    fn consumer_status(&self, _topic: &str) -> HashMap<MessageQueue, i64> {
        HashMap::new()
    }

    async fn consume_directly(
        &self,
        _msg: MessageExt,
        _broker_name: Option<String>,
    ) -> Option<ConsumeMessageDirectlyResult> {
        None
    }
}
