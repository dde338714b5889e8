//! Wrappers that measure what passes through them: the broker API given to
//! the kernel (pull latency and found messages, the broker's max offset per
//! queue; it also tells a broker new to the client of its heartbeat when
//! that broker says the group has no consumer, and asks again) and the user's listener (consume latency and
//! results, messages sent to the dead-letter queue).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rocketmq_kernel::Result;
use rocketmq_kernel::api::{BrokerApi, CallMode, QueryMessageResult};
use rocketmq_kernel::consume::acked_count;
use rocketmq_model::body::{
    BatchAckMessageRequestBody, CheckClientRequestBody, LockBatchRequestBody,
    MessageQueueAssignment, QueryAssignmentRequestBody, SetMessageRequestModeRequestBody,
    UnlockBatchRequestBody,
};
use rocketmq_model::header::{
    AckMessageRequestHeader, BoundaryType, ChangeInvisibleTimeRequestHeader,
    ChangeInvisibleTimeResponseHeader, ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader,
    PopMessageRequestHeader, PullMessageRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryMessageRequestHeader, RecallMessageRequestHeader, UnregisterClientRequestHeader,
    UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::{HeartbeatData, MessageExt, MessageQueue};
use rocketmq_remoting::calls::{
    EndTransaction, PopResponse, PopStatus, PullResponse, PullStatus, SendBatch, SendMessage,
    SendResponse,
};
use tokio::time::Instant;

use super::listener::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, OrderlyContext, OrderlyListener,
    OrderlyResult,
};
use super::stats::{self, BatchFacts, PullStats};
use crate::instance::ClientInstance;
use crate::metrics::ConsumeSeries;

/// A [`BrokerApi`] that records every pull in [`PullStats`] and the pull
/// latency metric, and passes every call on (every one: a method left to
/// the trait's default would answer "unsupported").
pub(crate) struct MeteredBrokerApi {
    inner: Arc<dyn BrokerApi>,
    group: String,
    stats: Arc<PullStats>,
    instance: ClientInstance,
}

impl MeteredBrokerApi {
    pub(crate) fn new(instance: ClientInstance, group: String, stats: Arc<PullStats>) -> Self {
        MeteredBrokerApi {
            inner: instance.broker_api().clone(),
            group,
            stats,
            instance,
        }
    }
}

/// How many messages a FOUND answer holds, counted without decoding them:
/// each record starts with its total size (PROTOCOL.md §5.1).
fn count_records(response: &PullResponse) -> u64 {
    if response.status != PullStatus::Found {
        return 0;
    }
    count_in(&response.body)
}

/// How many records `body` holds.
fn count_in(body: &[u8]) -> u64 {
    let mut count = 0;
    let mut at = 0usize;
    while let Some(size) = body.get(at..at + 4) {
        let size = i32::from_be_bytes([size[0], size[1], size[2], size[3]]);
        let Ok(size) = usize::try_from(size) else {
            break;
        };
        if size == 0 {
            break;
        }
        count += 1;
        at += size;
    }
    count
}

#[async_trait]
impl BrokerApi for MeteredBrokerApi {
    async fn send_message(
        &self,
        addr: &str,
        request: SendMessage,
        timeout: Duration,
    ) -> Result<SendResponse> {
        self.inner.send_message(addr, request, timeout).await
    }

    async fn send_batch(
        &self,
        addr: &str,
        request: SendBatch,
        timeout: Duration,
    ) -> Result<SendResponse> {
        self.inner.send_batch(addr, request, timeout).await
    }

    async fn pull_message(
        &self,
        addr: &str,
        header: PullMessageRequestHeader,
    ) -> Result<PullResponse> {
        let mq = MessageQueue::new(
            header.topic.clone(),
            header.broker_name.clone().unwrap_or_default(),
            header.queue_id,
        );
        let started = Instant::now();
        let response = self.inner.pull_message(addr, header).await;
        let elapsed = started.elapsed();
        stats::record_pull(&self.group, &mq.topic, response.is_ok(), elapsed);
        match &response {
            Ok(response) => {
                let found = count_records(response);
                self.stats
                    .record(&mq, elapsed, found, response.header.max_offset);
            }
            Err(_) => self.stats.record_failure(&mq, Instant::now()),
        }
        response
    }

    async fn query_consumer_offset(
        &self,
        addr: &str,
        header: QueryConsumerOffsetRequestHeader,
    ) -> Result<Option<i64>> {
        self.inner.query_consumer_offset(addr, header).await
    }

    async fn update_consumer_offset(
        &self,
        addr: &str,
        header: UpdateConsumerOffsetRequestHeader,
        mode: CallMode,
    ) -> Result<()> {
        self.inner.update_consumer_offset(addr, header, mode).await
    }

    async fn heartbeat(&self, addr: &str, data: HeartbeatData) -> Result<i32> {
        self.inner.heartbeat(addr, data).await
    }

    async fn unregister_client(
        &self,
        addr: &str,
        header: UnregisterClientRequestHeader,
    ) -> Result<()> {
        self.inner.unregister_client(addr, header).await
    }

    async fn consumer_list(&self, addr: &str, group: &str) -> Result<Vec<String>> {
        let known = self.instance.heartbeated(addr);
        match self.inner.consumer_list(addr, group).await {
            // A broker a route just named may not have had this client's
            // heartbeat when asked, and answers that the group has no
            // consumer: tell it (unless a heartbeat went meanwhile), and ask
            // again. (Waiting for the heartbeat on every round would hold
            // rounds up on a broker slow to answer one.)
            Err(_) if !known => {
                self.instance.ensure_heartbeat(addr).await;
                self.inner.consumer_list(addr, group).await
            }
            answer => answer,
        }
    }

    async fn query_assignment(
        &self,
        addr: &str,
        body: QueryAssignmentRequestBody,
    ) -> Result<Option<Vec<MessageQueueAssignment>>> {
        let known = self.instance.heartbeated(addr);
        match self.inner.query_assignment(addr, body.clone()).await {
            // As for the consumer list: a broker that has not had this
            // client's heartbeat cannot assign it anything yet.
            Ok(None) if !known => {
                self.instance.ensure_heartbeat(addr).await;
                self.inner.query_assignment(addr, body).await
            }
            answer => answer,
        }
    }

    async fn set_message_request_mode(
        &self,
        addr: &str,
        body: SetMessageRequestModeRequestBody,
    ) -> Result<()> {
        self.inner.set_message_request_mode(addr, body).await
    }

    /// Counted as a pull of its topic (Java's `popMessage` counts pull
    /// times and messages as its pulls do).
    async fn pop_message(
        &self,
        addr: &str,
        header: PopMessageRequestHeader,
    ) -> Result<PopResponse> {
        let topic = header.topic.clone();
        let started = Instant::now();
        let response = self.inner.pop_message(addr, header).await;
        let elapsed = started.elapsed();
        stats::record_pull(&self.group, &topic, response.is_ok(), elapsed);
        if let Ok(response) = &response {
            let found = match response.status {
                PopStatus::Found => count_in(&response.body),
                PopStatus::NoNewMsg | PopStatus::PollingFull => 0,
            };
            self.stats.record_topic(&topic, elapsed, found);
        }
        response
    }

    async fn ack_message(&self, addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        self.inner.ack_message(addr, header).await
    }

    async fn batch_ack_message(&self, addr: &str, body: BatchAckMessageRequestBody) -> Result<()> {
        self.inner.batch_ack_message(addr, body).await
    }

    async fn change_invisible_time(
        &self,
        addr: &str,
        header: ChangeInvisibleTimeRequestHeader,
    ) -> Result<ChangeInvisibleTimeResponseHeader> {
        self.inner.change_invisible_time(addr, header).await
    }

    async fn recall_message(
        &self,
        addr: &str,
        header: RecallMessageRequestHeader,
    ) -> Result<String> {
        self.inner.recall_message(addr, header).await
    }

    async fn check_client_config(&self, addr: &str, body: CheckClientRequestBody) -> Result<()> {
        self.inner.check_client_config(addr, body).await
    }

    async fn send_back(&self, addr: &str, header: ConsumerSendMsgBackRequestHeader) -> Result<()> {
        self.inner.send_back(addr, header).await
    }

    async fn end_transaction(&self, addr: &str, request: EndTransaction) -> Result<()> {
        self.inner.end_transaction(addr, request).await
    }

    async fn lock_batch(
        &self,
        addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        self.inner.lock_batch(addr, body).await
    }

    async fn unlock_batch(
        &self,
        addr: &str,
        body: UnlockBatchRequestBody,
        mode: CallMode,
    ) -> Result<()> {
        self.inner.unlock_batch(addr, body, mode).await
    }

    async fn max_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        self.inner.max_offset(addr, mq).await
    }

    async fn min_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        self.inner.min_offset(addr, mq).await
    }

    async fn search_offset(
        &self,
        addr: &str,
        mq: &MessageQueue,
        time: SystemTime,
        boundary: BoundaryType,
    ) -> Result<i64> {
        self.inner.search_offset(addr, mq, time, boundary).await
    }

    async fn earliest_store_time(
        &self,
        addr: &str,
        mq: &MessageQueue,
    ) -> Result<Option<SystemTime>> {
        self.inner.earliest_store_time(addr, mq).await
    }

    async fn view_message(
        &self,
        addr: &str,
        topic: Option<&str>,
        commit_log_offset: i64,
    ) -> Result<MessageExt> {
        self.inner
            .view_message(addr, topic, commit_log_offset)
            .await
    }

    async fn query_message(
        &self,
        addr: &str,
        header: QueryMessageRequestHeader,
    ) -> Result<QueryMessageResult> {
        self.inner.query_message(addr, header).await
    }

    async fn create_topic(&self, addr: &str, header: CreateTopicRequestHeader) -> Result<()> {
        self.inner.create_topic(addr, header).await
    }
}

/// The user's concurrent listener, measured.
pub(crate) struct MeteredConcurrent {
    pub(crate) inner: Arc<dyn ConcurrentListener>,
    pub(crate) group: String,
    pub(crate) series: ConsumeSeries,
    /// Clustering only: failed messages at this reconsume count go to the
    /// DLQ (`None` when failures are dropped, broadcasting).
    pub(crate) max_reconsume_times: Option<i32>,
}

#[async_trait]
impl ConcurrentListener for MeteredConcurrent {
    async fn consume(
        &self,
        msgs: Vec<MessageExt>,
        ctx: &mut ConcurrentContext,
    ) -> ConcurrentResult {
        let batch = BatchFacts::of(&msgs, self.max_reconsume_times);
        let started = Instant::now();
        let result = self.inner.consume(msgs, ctx).await;
        let acked = acked_count(result, ctx.ack_index, batch.len());
        stats::record_consume(&self.series, &batch, acked, started.elapsed());
        if self.max_reconsume_times.is_some() {
            if ctx.delay_level_when_next_consume < 0 {
                // The listener sent every failed message to the DLQ.
                for topic in batch.topics().skip(acked) {
                    stats::record_dlq(&self.group, topic);
                }
            } else {
                for topic in batch.at_max_from(acked) {
                    stats::record_dlq(&self.group, topic);
                }
            }
        }
        result
    }
}

/// The user's orderly listener, measured.
pub(crate) struct MeteredOrderly {
    pub(crate) inner: Arc<dyn OrderlyListener>,
    pub(crate) group: String,
    pub(crate) series: ConsumeSeries,
    /// Messages suspended at this reconsume count go to the DLQ.
    pub(crate) max_reconsume_times: i32,
}

#[async_trait]
impl OrderlyListener for MeteredOrderly {
    async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult {
        let batch = BatchFacts::of(&msgs, Some(self.max_reconsume_times));
        let started = Instant::now();
        let result = self.inner.consume(msgs, ctx).await;
        let elapsed = started.elapsed();
        match result {
            OrderlyResult::Success => {
                stats::record_consume(&self.series, &batch, batch.len(), elapsed)
            }
            OrderlyResult::SuspendCurrentQueue => {
                stats::record_consume(&self.series, &batch, 0, elapsed);
                for topic in batch.at_max_from(0) {
                    stats::record_dlq(&self.group, topic);
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rocketmq_model::Message;
    use rocketmq_model::header::PullMessageResponseHeader;
    use rocketmq_model::message::encode_record;

    use super::*;

    #[test]
    fn counts_records_by_their_size_prefix() {
        let mut body = BytesMut::new();
        for text in ["a", "bb", "ccc"] {
            let msg = MessageExt::from(Message::new("T", text));
            encode_record(&msg, &mut body).unwrap();
        }
        let mut response = PullResponse {
            status: PullStatus::Found,
            header: PullMessageResponseHeader::default(),
            body: body.freeze(),
        };
        assert_eq!(count_records(&response), 3);
        response.status = PullStatus::NoNewMsg;
        assert_eq!(count_records(&response), 0);
    }
}
