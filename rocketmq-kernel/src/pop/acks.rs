//! What a consumer sends back about popped messages: acknowledgements (one
//! by one, or many in one request), new invisible times, and the move of a
//! message delivered too often to the group's dead-letter topic. Each goes
//! to the master of the broker that popped the message, named by its
//! receipt handle.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ConsumerSendMsgBackRequestHeader,
};
use rocketmq_model::message::ReceiptHandle;
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_remoting::RemotingError;

use super::batch_body::{BatchBody, ack_bit};
use super::batch_refusals::{self, BatchRefusals};
use crate::api::BrokerApi;
use crate::error::{KernelError, Result};
use crate::route::Routes;

/// A message to acknowledge: the topic it was popped from (the subscribed
/// topic as the broker knows it) and its receipt handle.
pub type AckTarget<'a> = (&'a str, &'a ReceiptHandle);

/// The broker calls about popped messages of one consumer group.
#[derive(Clone)]
pub struct PopAcks {
    api: Arc<dyn BrokerApi>,
    routes: Routes,
    group: String,
    /// Brokers that cannot take batches of acknowledgements.
    refusals: Arc<BatchRefusals>,
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
            refusals: Arc::default(),
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

    /// Acknowledges every message of `targets`, answering one outcome each,
    /// in order: with one BATCH_ACK_MESSAGE a broker, and one ACK_MESSAGE for
    /// a message alone at its broker or too far from its pop's start to be a
    /// bit of it. A batch the broker answers with an error is sent again one
    /// by one, each message with its own outcome (acknowledging twice does no
    /// harm); a broker that cannot take batches (older than
    /// BATCH_ACK_MESSAGE, or reading it differently) gets single ones only
    /// for a while. A batch without an answer (a timeout, a closed
    /// connection) is not sent again: each of its messages fails with
    /// [`KernelError::Shared`], and comes back if the broker did not take it.
    pub async fn ack_batch(&self, targets: &[AckTarget<'_>]) -> Vec<Result<()>> {
        let mut by_broker: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, (_, handle)) in targets.iter().enumerate() {
            by_broker
                .entry(handle.broker_name.as_str())
                .or_default()
                .push(index);
        }
        let mut outcomes: Vec<Option<Result<()>>> = targets.iter().map(|_| None).collect();
        let brokers = by_broker.into_iter().map(|(broker, indexes)| async move {
            let outcome = self.ack_at_broker(broker, targets, &indexes).await;
            (indexes, outcome)
        });
        for (indexes, outcome) in join_all(brokers).await {
            for (index, result) in indexes.into_iter().zip(outcome) {
                outcomes[index] = Some(result);
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Ok(())))
            .collect()
    }

    /// [`ack_batch`](Self::ack_batch) for the `indexes` of `targets`, all
    /// popped from `broker`.
    async fn ack_at_broker(
        &self,
        broker: &str,
        targets: &[AckTarget<'_>],
        indexes: &[usize],
    ) -> Vec<Result<()>> {
        let mut body = BatchBody::default();
        let (mut bits, mut alone) = (Vec::new(), Vec::new());
        for (at, &index) in indexes.iter().enumerate() {
            let (topic, handle) = targets[index];
            match ack_bit(handle) {
                Some(bit) => {
                    body.add(topic, handle, bit);
                    bits.push(at);
                }
                None => alone.push(at),
            }
        }
        if bits.len() < 2 || self.refusals.refuses(broker) {
            return self.ack_each(targets, indexes).await;
        }
        let (topic, first) = targets[indexes[bits[0]]];
        let batch = async {
            let addr = self.broker_addr(topic, first).await?;
            let body = body.into_body(broker, &self.group);
            self.api.batch_ack_message(&addr, body).await
        };
        let alone_indexes: Vec<usize> = alone.iter().map(|&at| indexes[at]).collect();
        let (batched, singles) = tokio::join!(batch, self.ack_each(targets, &alone_indexes));
        let mut outcome: Vec<Result<()>> = indexes.iter().map(|_| Ok(())).collect();
        for (at, single) in alone.into_iter().zip(singles) {
            outcome[at] = single;
        }
        let err = match batched {
            Ok(()) => {
                self.refusals.accepted(broker);
                return outcome;
            }
            Err(KernelError::Remoting(RemotingError::Response { code, .. })) => code,
            Err(err) => {
                // No answer (a timeout, a closed connection): single ones
                // would most likely fare the same, and the batch may have
                // been taken. The messages come back if it was not.
                let err = Arc::new(err);
                for at in bits {
                    outcome[at] = Err(KernelError::Shared(Arc::clone(&err)));
                }
                return outcome;
            }
        };
        let bit_indexes: Vec<usize> = bits.iter().map(|&at| indexes[at]).collect();
        let again = self.ack_each(targets, &bit_indexes).await;
        let taken = again.iter().all(Result::is_ok);
        for (at, single) in bits.into_iter().zip(again) {
            outcome[at] = single;
        }
        if self.refusals.answered(broker, err, taken) {
            tracing::warn!(broker, code = %err,
                "the broker refuses batches of acknowledgements but takes them one by one; \
                 acknowledging one by one there for the next {} s", batch_refusals::KEPT.as_secs());
        } else {
            tracing::debug!(broker, code = %err, "a batch of acknowledgements was refused; sent one by one");
        }
        outcome
    }

    /// One ACK_MESSAGE for each of the `indexes` of `targets`, together.
    async fn ack_each(&self, targets: &[AckTarget<'_>], indexes: &[usize]) -> Vec<Result<()>> {
        join_all(indexes.iter().map(|&index| {
            let (topic, handle) = targets[index];
            self.ack(topic, handle)
        }))
        .await
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
