//! The typed broker and nameserver API: every request a client sends, as a
//! method of [`BrokerApi`] (taking the broker's address) or [`NameServerApi`].
//!
//! The kernel's services depend on these traits, so their tests run against
//! a fake; [`RemotingBrokerApi`] is the real implementation, over a
//! [`RemotingClient`](rocketmq_remoting::RemotingClient) and a nameserver
//! list, or over any `tower::Service<RemotingCommand>` through a
//! [`Connector`].

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
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
use rocketmq_model::{
    ClusterInfo, HeartbeatData, MessageExt, MessageQueue, ResponseCode, TopicRouteData,
};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{
    EndTransaction, PopResponse, PullResponse, SendBatch, SendMessage, SendResponse,
};

use crate::error::{KernelError, Result};

mod connector;
mod offsets;
mod remoting;

pub use connector::{Connector, PeerService, RemotingConnector, ServiceConnector};
pub use offsets::BrokerOffsetRemote;
pub use remoting::{ApiTimeouts, RemotingBrokerApi};

/// Whether a request waits for the peer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CallMode {
    /// Wait for the answer and report the peer's verdict.
    #[default]
    Sync,
    /// Done once written; the peer does not answer (PROTOCOL.md §2.5).
    Oneway,
}

/// Messages found by [`BrokerApi::query_message`] on one broker.
#[derive(Debug, Clone, Default)]
pub struct QueryMessageResult {
    /// When the broker's index was last updated (for merging the answers of
    /// several brokers).
    pub index_last_update: Option<SystemTime>,
    /// The messages, decoded; the index is hash-based, so the caller still
    /// checks that their keys match.
    pub messages: Vec<MessageExt>,
}

/// The requests a client sends to brokers (PROTOCOL.md §3), one method each,
/// every one naming the broker's address.
///
/// Every method has a default that fails as a broker that does not know the
/// request would (REQUEST_CODE_NOT_SUPPORTED), so a fake implements only what
/// its test uses:
///
/// ```
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use rocketmq_kernel::api::BrokerApi;
/// use rocketmq_kernel::Result;
/// use rocketmq_model::MessageQueue;
///
/// /// A broker whose queues all end at offset 100, recording who asked.
/// #[derive(Default)]
/// struct FakeBroker {
///     asked: Mutex<Vec<String>>,
/// }
///
/// #[async_trait]
/// impl BrokerApi for FakeBroker {
///     async fn max_offset(&self, addr: &str, _mq: &MessageQueue) -> Result<i64> {
///         self.asked.lock().unwrap().push(addr.to_owned());
///         Ok(100)
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let broker = FakeBroker::default();
/// let mq = MessageQueue::new("T", "broker-a", 0);
/// assert_eq!(broker.max_offset("10.0.0.1:10911", &mq).await.unwrap(), 100);
/// assert!(broker.min_offset("10.0.0.1:10911", &mq).await.is_err());
/// # });
/// ```
#[async_trait]
pub trait BrokerApi: Send + Sync {
    /// SEND_MESSAGE(_V2): stores one message, within `timeout` (Java gives
    /// each attempt what is left of the send timeout).
    async fn send_message(
        &self,
        addr: &str,
        request: SendMessage,
        timeout: Duration,
    ) -> Result<SendResponse> {
        let _ = (request, timeout);
        unsupported(addr, "send_message")
    }

    /// SEND_BATCH_MESSAGE: stores a batch, within `timeout`.
    async fn send_batch(
        &self,
        addr: &str,
        request: SendBatch,
        timeout: Duration,
    ) -> Result<SendResponse> {
        let _ = (request, timeout);
        unsupported(addr, "send_batch")
    }

    /// PULL_MESSAGE (long polling when the header's SUSPEND flag is set).
    async fn pull_message(
        &self,
        addr: &str,
        header: PullMessageRequestHeader,
    ) -> Result<PullResponse> {
        let _ = header;
        unsupported(addr, "pull_message")
    }

    /// POP_MESSAGE: pops messages, which stay invisible to the group until
    /// acknowledged or their invisible time passes (long polling for the
    /// header's `pollTime`).
    async fn pop_message(
        &self,
        addr: &str,
        header: PopMessageRequestHeader,
    ) -> Result<PopResponse> {
        let _ = header;
        unsupported(addr, "pop_message")
    }

    /// ACK_MESSAGE: acknowledges one popped message.
    async fn ack_message(&self, addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        let _ = header;
        unsupported(addr, "ack_message")
    }

    /// BATCH_ACK_MESSAGE: acknowledges popped messages of one broker.
    async fn batch_ack_message(&self, addr: &str, body: BatchAckMessageRequestBody) -> Result<()> {
        let _ = body;
        unsupported(addr, "batch_ack_message")
    }

    /// CHANGE_MESSAGE_INVISIBLETIME: gives a popped message a new invisible
    /// time, from now; answers the message's new pop.
    async fn change_invisible_time(
        &self,
        addr: &str,
        header: ChangeInvisibleTimeRequestHeader,
    ) -> Result<ChangeInvisibleTimeResponseHeader> {
        let _ = header;
        unsupported(addr, "change_invisible_time")
    }

    /// QUERY_CONSUMER_OFFSET: the group's stored offset; `None` when the
    /// broker has none (QUERY_NOT_FOUND), never a made-up 0.
    async fn query_consumer_offset(
        &self,
        addr: &str,
        header: QueryConsumerOffsetRequestHeader,
    ) -> Result<Option<i64>> {
        let _ = header;
        unsupported(addr, "query_consumer_offset")
    }

    /// UPDATE_CONSUMER_OFFSET: stores the group's offset.
    async fn update_consumer_offset(
        &self,
        addr: &str,
        header: UpdateConsumerOffsetRequestHeader,
        mode: CallMode,
    ) -> Result<()> {
        let _ = (header, mode);
        unsupported(addr, "update_consumer_offset")
    }

    /// HEART_BEAT: registers the client's groups; answers the broker's
    /// version.
    async fn heartbeat(&self, addr: &str, data: HeartbeatData) -> Result<i32> {
        let _ = data;
        unsupported(addr, "heartbeat")
    }

    /// UNREGISTER_CLIENT: removes the client from a group (at shutdown).
    async fn unregister_client(
        &self,
        addr: &str,
        header: UnregisterClientRequestHeader,
    ) -> Result<()> {
        let _ = header;
        unsupported(addr, "unregister_client")
    }

    /// GET_CONSUMER_LIST_BY_GROUP: the client ids of a group's members.
    async fn consumer_list(&self, addr: &str, group: &str) -> Result<Vec<String>> {
        let _ = group;
        unsupported(addr, "consumer_list")
    }

    /// QUERY_ASSIGNMENT: the queues of a topic the broker assigns this
    /// client, and whether to pull or pop each; `None` when the broker could
    /// not tell (the client keeps what it has).
    async fn query_assignment(
        &self,
        addr: &str,
        body: QueryAssignmentRequestBody,
    ) -> Result<Option<Vec<MessageQueueAssignment>>> {
        let _ = body;
        unsupported(addr, "query_assignment")
    }

    /// SET_MESSAGE_REQUEST_MODE: whether a group's clients pull or pop a
    /// topic (an administrator's request).
    async fn set_message_request_mode(
        &self,
        addr: &str,
        body: SetMessageRequestModeRequestBody,
    ) -> Result<()> {
        let _ = body;
        unsupported(addr, "set_message_request_mode")
    }

    /// CHECK_CLIENT_CONFIG: whether the broker can serve a subscription
    /// (an SQL92 one needs property filtering and must compile).
    async fn check_client_config(&self, addr: &str, body: CheckClientRequestBody) -> Result<()> {
        let _ = body;
        unsupported(addr, "check_client_config")
    }

    /// CONSUMER_SEND_MSG_BACK: returns a failed message for a later retry.
    async fn send_back(&self, addr: &str, header: ConsumerSendMsgBackRequestHeader) -> Result<()> {
        let _ = header;
        unsupported(addr, "send_back")
    }

    /// END_TRANSACTION (oneway): commits or rolls back a half message.
    async fn end_transaction(&self, addr: &str, request: EndTransaction) -> Result<()> {
        let _ = request;
        unsupported(addr, "end_transaction")
    }

    /// RECALL_MESSAGE: takes back a timer message before it is due;
    /// answers its unique id.
    async fn recall_message(
        &self,
        addr: &str,
        header: RecallMessageRequestHeader,
    ) -> Result<String> {
        let _ = header;
        unsupported(addr, "recall_message")
    }

    /// LOCK_BATCH_MQ: locks queues for orderly consumption; answers the queues
    /// actually locked.
    async fn lock_batch(
        &self,
        addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        let _ = body;
        unsupported(addr, "lock_batch")
    }

    /// UNLOCK_BATCH_MQ: releases queue locks.
    async fn unlock_batch(
        &self,
        addr: &str,
        body: UnlockBatchRequestBody,
        mode: CallMode,
    ) -> Result<()> {
        let _ = (body, mode);
        unsupported(addr, "unlock_batch")
    }

    /// GET_MAX_OFFSET: the next offset to be written in `mq`.
    async fn max_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        let _ = mq;
        unsupported(addr, "max_offset")
    }

    /// GET_MIN_OFFSET: the lowest offset still stored in `mq`.
    async fn min_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        let _ = mq;
        unsupported(addr, "min_offset")
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP: the offset of `mq` at `time`.
    async fn search_offset(
        &self,
        addr: &str,
        mq: &MessageQueue,
        time: SystemTime,
        boundary: BoundaryType,
    ) -> Result<i64> {
        let _ = (mq, time, boundary);
        unsupported(addr, "search_offset")
    }

    /// GET_EARLIEST_MSG_STORETIME: the store time of the earliest message
    /// still in `mq`; `None` when it holds none (the broker's -1).
    async fn earliest_store_time(
        &self,
        addr: &str,
        mq: &MessageQueue,
    ) -> Result<Option<SystemTime>> {
        let _ = mq;
        unsupported(addr, "earliest_store_time")
    }

    /// VIEW_MESSAGE_BY_ID: the message at `commit_log_offset` of the broker
    /// at `addr` (both decoded from an offset message id).
    async fn view_message(
        &self,
        addr: &str,
        topic: Option<&str>,
        commit_log_offset: i64,
    ) -> Result<MessageExt> {
        let _ = (topic, commit_log_offset);
        unsupported(addr, "view_message")
    }

    /// QUERY_MESSAGE: messages by key (or unique key) in a time window; an
    /// empty result when the broker found none.
    async fn query_message(
        &self,
        addr: &str,
        header: QueryMessageRequestHeader,
    ) -> Result<QueryMessageResult> {
        let _ = header;
        unsupported(addr, "query_message")
    }

    /// UPDATE_AND_CREATE_TOPIC: creates or updates a topic on one broker.
    async fn create_topic(&self, addr: &str, header: CreateTopicRequestHeader) -> Result<()> {
        let _ = header;
        unsupported(addr, "create_topic")
    }
}

/// The requests a client sends to the nameservers.
///
/// ```
/// use async_trait::async_trait;
/// use rocketmq_kernel::api::NameServerApi;
/// use rocketmq_kernel::{KernelError, Result};
/// use rocketmq_model::TopicRouteData;
///
/// /// A nameserver that knows one topic.
/// struct OneTopic(TopicRouteData);
///
/// #[async_trait]
/// impl NameServerApi for OneTopic {
///     async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
///         if topic == "T" {
///             Ok(self.0.clone())
///         } else {
///             Err(KernelError::NoRoute { topic: topic.to_owned() })
///         }
///     }
/// }
/// ```
#[async_trait]
pub trait NameServerApi: Send + Sync {
    /// GET_ROUTEINFO_BY_TOPIC: the route of `topic`;
    /// [`KernelError::NoRoute`] when the nameserver does not know it.
    async fn topic_route(&self, topic: &str) -> Result<TopicRouteData>;

    /// GET_BROKER_CLUSTER_INFO: every broker and cluster. The default fails
    /// with REQUEST_CODE_NOT_SUPPORTED.
    async fn cluster_info(&self) -> Result<ClusterInfo> {
        unsupported("", "cluster_info")
    }
}

/// The error a peer that does not know a request answers with.
fn unsupported<T>(addr: &str, what: &str) -> Result<T> {
    Err(KernelError::Remoting(RemotingError::Response {
        addr: addr.to_owned(),
        code: ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
        remark: format!("{what} is not supported"),
    }))
}
