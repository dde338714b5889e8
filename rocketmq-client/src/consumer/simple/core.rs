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
use rocketmq_kernel::pop::{PopAcks, popped_messages};
use rocketmq_model::body::property_keys::{
    PROP_CONSUME_ORDERLY, PROP_CONSUME_TYPE, PROP_CONSUMER_START_TIMESTAMP,
};
use rocketmq_model::body::{
    BatchAck, BatchAckMessageRequestBody, ConsumeFromWhere, ConsumeMessageDirectlyResult,
    ConsumeType, ConsumerData,
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
        let mut by_broker: BTreeMap<&str, BatchAcks<'_>> = BTreeMap::new();
        let mut alone = Vec::new();
        for message in messages {
            let handle = message.receipt_handle();
            let bit = (handle.queue_offset)
                .checked_sub(handle.ck_queue_offset)
                .and_then(|distance| u32::try_from(distance).ok())
                .filter(|&distance| distance <= MAX_ACK_BIT);
            match bit {
                Some(bit) => by_broker.entry(&handle.broker_name).or_default().add(
                    &message.wire_topic,
                    handle,
                    bit,
                ),
                // Not a bit of its pop (Java could not send it either).
                None => alone.push(message),
            }
        }
        let mut outcome = Ok(());
        for (broker_name, acks) in by_broker {
            let Some((topic, first)) = acks.first else {
                continue;
            };
            let body = acks.into_body(broker_name, &self.options.group);
            let sent = match self.broker_addr(topic, first).await {
                Ok(addr) => self
                    .api
                    .batch_ack_message(&addr, body)
                    .await
                    .map_err(ClientError::from),
                Err(err) => Err(err),
            };
            if let Err(err) = sent {
                tracing::warn!(group = self.group_name(), broker = broker_name, error = %err, "a batch acknowledgement failed");
                outcome = outcome.and(Err(err));
            }
        }
        for message in alone {
            if let Err(err) = self.ack(message).await {
                outcome = outcome.and(Err(err));
            }
        }
        outcome
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

    /// The master of the broker that popped `handle`'s message (refreshing
    /// `topic`'s route once when it is unknown).
    async fn broker_addr(&self, topic: &str, handle: &ReceiptHandle) -> Result<Arc<str>> {
        let mq = MessageQueue::new(topic, handle.broker_name.as_str(), handle.queue_id);
        Ok(self.instance.routes().master_addr(&mq).await?)
    }

    fn to_user_topic(&self, message: &mut MessageExt) {
        (self.options.namespace).unwrap_in_place(&mut message.message.topic);
    }
}

/// The farthest a message may lie from its pop's start to be acknowledged
/// in a batch: the bit set travels whole, one bit per offset between.
const MAX_ACK_BIT: u32 = 1 << 16;

/// One broker's acknowledgements, one entry per pop of a queue (Java's
/// `batchAckMessageAsync` merge key: topic kind, queue, checkpoint offset,
/// pop time), plus the topic of each entry.
#[derive(Default)]
struct BatchAcks<'a> {
    /// A message of the batch: which topic's route names the broker.
    first: Option<(&'a str, &'a ReceiptHandle)>,
    entries: BTreeMap<(&'a str, &'static str, i32, i64, i64), BatchAck>,
}

impl<'a> BatchAcks<'a> {
    fn add(&mut self, topic: &'a str, handle: &'a ReceiptHandle, bit: u32) {
        self.first.get_or_insert((topic, handle));
        let kind = handle.kind.as_str();
        let key = (
            topic,
            kind,
            handle.queue_id,
            handle.ck_queue_offset,
            handle.pop_time,
        );
        let entry = self.entries.entry(key).or_insert_with(|| BatchAck {
            topic: topic.to_owned(),
            retry: kind.to_owned(),
            start_offset: handle.ck_queue_offset,
            queue_id: handle.queue_id,
            revive_queue_id: handle.revive_qid,
            pop_time: handle.pop_time,
            invisible_time: handle.invisible_time,
            ..BatchAck::default()
        });
        entry.bits.insert(bit);
    }

    fn into_body(self, broker_name: &str, group: &str) -> BatchAckMessageRequestBody {
        BatchAckMessageRequestBody {
            broker_name: broker_name.to_owned(),
            acks: (self.entries.into_values())
                .map(|ack| BatchAck {
                    consumer_group: group.to_owned(),
                    ..ack
                })
                .collect(),
        }
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
