//! [`RemotingBrokerApi`]: the broker and nameserver API over remoting
//! commands, with a timeout per kind of call and a debug span per call.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::time::epoch_millis;

use async_trait::async_trait;
use rocketmq_model::body::{
    BatchAckMessageRequestBody, CheckClientRequestBody, ConsumeStats, LockBatchRequestBody,
    MessageQueueAssignment, QueryAssignmentRequestBody, SetMessageRequestModeRequestBody,
    UnlockBatchRequestBody,
};
use rocketmq_model::header::{
    AckMessageRequestHeader, BoundaryType, ChangeInvisibleTimeRequestHeader,
    ChangeInvisibleTimeResponseHeader, ConsumerSendMsgBackRequestHeader, CreateTopicRequestHeader,
    GetConsumeStatsRequestHeader, GetConsumerListByGroupRequestHeader,
    GetEarliestMsgStoretimeRequestHeader, GetMaxOffsetRequestHeader, GetMinOffsetRequestHeader,
    PopMessageRequestHeader, PullMessageRequestHeader, QueryConsumerOffsetRequestHeader,
    QueryMessageRequestHeader, RecallMessageRequestHeader, SearchOffsetRequestHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader,
};
use rocketmq_model::message::sysflag;
use rocketmq_model::{
    ClusterInfo, HeartbeatData, MessageExt, MessageQueue, ResponseCode, TopicRouteData,
};
use rocketmq_remoting::call::{Call, Oneway, execute_at};
use rocketmq_remoting::calls::{
    AckMessage, BatchAckMessage, ChangeInvisibleTime, CheckClientConfig, ConsumerSendMsgBack,
    CreateTopic, EndTransaction, GetClusterInfo, GetConsumeStats, GetConsumerList,
    GetEarliestMsgStoreTime, GetMaxOffset, GetMinOffset, GetRouteInfo, Heartbeat, LockBatchMq,
    PopMessage, PopResponse, PullMessage, PullResponse, QueryAssignment, QueryConsumerOffset,
    QueryMessage, RecallMessage, SearchOffset, SendBatch, SendMessage, SendResponse,
    SetMessageRequestMode, UnlockBatchMq, Unregister, UpdateConsumerOffset, ViewMessage,
};
use rocketmq_remoting::client::NameServerService;
use rocketmq_remoting::{RemotingClient, RemotingError};
use tracing::{Instrument, Span};

use super::connector::{Connector, PeerService, RemotingConnector};
use super::{BrokerApi, CallMode, NameServerApi, QueryMessageResult};
use crate::error::{KernelError, Result};

/// How much longer than its service the API waits for a nameserver call.
const NAME_SERVER_SLACK: Duration = Duration::from_millis(100);

/// How long each kind of call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiTimeouts {
    /// Every call not listed below (Java's `mqClientApiTimeout`, 3 s). Sends
    /// carry their own timeout: what is left of the producer's budget.
    pub call: Duration,
    /// Pulls (Java's push consumer waits 30 s). A long-polling pull waits at
    /// least its suspend time plus 5 s (the broker's hold check, which may
    /// answer that late) plus [`call`](Self::call), so the broker's "nothing
    /// new" answer always arrives before the timeout (§8.6).
    pub pull: Duration,
    /// Queue locks and unlocks of orderly consumption (Java's
    /// `RebalanceImpl` gives them 1 s: a round that renews locks goes on
    /// soon past a broker that does not answer).
    pub lock: Duration,
}

impl Default for ApiTimeouts {
    fn default() -> Self {
        ApiTimeouts {
            call: Duration::from_secs(3),
            pull: Duration::from_secs(30),
            lock: Duration::from_secs(1),
        }
    }
}

/// How late a Java broker may answer a held pull: its
/// `PullRequestHoldService` looks at suspend times only every 5 s.
const BROKER_HOLD_CHECK: Duration = Duration::from_secs(5);

impl ApiTimeouts {
    /// The timeout of the pull `header` describes: [`pull`](Self::pull), but
    /// never less than the suspend time plus the broker's 5 s hold check
    /// plus [`call`](Self::call) when the broker may hold the request.
    pub fn pull_timeout(&self, header: &PullMessageRequestHeader) -> Duration {
        if header.sys_flag & sysflag::pull::SUSPEND == 0 {
            return self.pull;
        }
        let suspend =
            Duration::from_millis(u64::try_from(header.suspend_timeout_millis).unwrap_or(0));
        let answered_by = suspend.saturating_add(BROKER_HOLD_CHECK);
        self.pull.max(answered_by.saturating_add(self.call))
    }

    /// The timeout of the pop `header` describes: [`call`](Self::call), or
    /// for a long-polling pop its poll time plus 10 s, as Java's client
    /// gives it ("fix the too earlier timeout of client when long polling").
    pub fn pop_timeout(&self, header: &PopMessageRequestHeader) -> Duration {
        let poll = Duration::from_millis(u64::try_from(header.poll_time).unwrap_or(0));
        if poll.is_zero() {
            return self.call;
        }
        self.call.max(poll.saturating_add(POP_POLL_MARGIN))
    }
}

/// What Java's client adds to a pop's poll time for its timeout.
const POP_POLL_MARGIN: Duration = Duration::from_secs(10);

/// [`BrokerApi`] and [`NameServerApi`] over remoting commands.
///
/// Cheap to clone; clones share the connector.
///
/// ```no_run
/// use rocketmq_kernel::api::{NameServerApi, RemotingBrokerApi};
/// use rocketmq_remoting::RemotingClient;
///
/// # async fn run() -> rocketmq_kernel::Result<()> {
/// let api = RemotingBrokerApi::new(RemotingClient::new(), vec!["127.0.0.1:9876".into()]);
/// let route = api.topic_route("orders").await?;
/// println!("{} brokers", route.broker_datas.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RemotingBrokerApi {
    connector: Arc<dyn Connector>,
    timeouts: ApiTimeouts,
    /// The nameservers, when this API made their service: errors of
    /// nameserver calls name them as the peer ("a;b", as Java writes the
    /// list), and [`set_name_server_addrs`](Self::set_name_server_addrs)
    /// replaces them.
    name_servers: Option<NameServerService>,
}

impl fmt::Debug for RemotingBrokerApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingBrokerApi")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl RemotingBrokerApi {
    /// Brokers through `client`; nameservers `name_servers` ("host:port"),
    /// with failover.
    pub fn new(client: RemotingClient, name_servers: Vec<String>) -> Self {
        let connector = RemotingConnector::new(client, name_servers);
        RemotingBrokerApi {
            name_servers: Some(connector.name_servers().clone()),
            ..Self::with_connector(connector)
        }
    }

    /// The nameserver addresses in use, when this API was made with a list
    /// of them ([`new`](Self::new)).
    pub fn name_server_addrs(&self) -> Option<Arc<[String]>> {
        self.name_servers.as_ref().map(NameServerService::addrs)
    }

    /// Replaces the nameserver addresses (Java's
    /// `updateNameServerAddressList`): the next nameserver call uses the new
    /// list. False, and nothing changed, when this API was made over a
    /// connector of its own, whose nameservers it does not know.
    pub fn set_name_server_addrs(&self, addrs: Vec<String>) -> bool {
        match &self.name_servers {
            Some(service) => {
                service.set_addrs(addrs);
                true
            }
            None => false,
        }
    }

    /// Requests travel through `connector` (e.g. a
    /// [`ServiceConnector`](super::ServiceConnector) over any service).
    pub fn with_connector(connector: impl Connector) -> Self {
        RemotingBrokerApi {
            connector: Arc::new(connector),
            timeouts: ApiTimeouts::default(),
            name_servers: None,
        }
    }

    /// The same API with other timeouts.
    pub fn with_timeouts(mut self, timeouts: ApiTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// The timeouts in use.
    pub fn timeouts(&self) -> ApiTimeouts {
        self.timeouts
    }

    /// GET_CONSUME_STATS to the broker at `addr`: the group's offsets there
    /// against its queues' ends. Within three call timeouts, as Java's admin
    /// (the broker reads every queue of every topic asked).
    pub async fn consume_stats(
        &self,
        addr: &str,
        header: GetConsumeStatsRequestHeader,
    ) -> Result<ConsumeStats> {
        let span = span("consume_stats", addr, header.topic.as_deref(), None);
        let timeout = self.timeouts.call.saturating_mul(3);
        self.broker_call(addr, GetConsumeStats(header), timeout, span)
            .await
    }

    /// [`BrokerApi::send_message`] without the box the trait puts its
    /// future in: what a producer calls for every message.
    pub async fn send_message(
        &self,
        addr: &str,
        request: SendMessage,
        timeout: Duration,
    ) -> Result<SendResponse> {
        let h = &request.header;
        let span = span("send_message", addr, Some(&h.topic), Some(h.queue_id));
        self.broker_call(addr, request, timeout, span).await
    }

    /// [`BrokerApi::send_batch`], unboxed as
    /// [`send_message`](Self::send_message) is.
    pub async fn send_batch(
        &self,
        addr: &str,
        request: SendBatch,
        timeout: Duration,
    ) -> Result<SendResponse> {
        let h = &request.header;
        let span = span("send_batch", addr, Some(&h.topic), Some(h.queue_id));
        self.broker_call(addr, request, timeout, span).await
    }

    /// Runs `call` against the broker at `addr` within `timeout`.
    async fn broker_call<C>(
        &self,
        addr: &str,
        call: C,
        timeout: Duration,
        span: Span,
    ) -> Result<C::Response>
    where
        C: Call + Send,
        C::Response: Send,
    {
        let call = async {
            finish(match self.connector.broker_client() {
                Some(client) => client.invoke_call(addr, call, timeout).await,
                None => run(self.connector.broker(addr, timeout), addr, call, timeout).await,
            })
        };
        call.instrument(span).await
    }

    /// [`broker_call`](Self::broker_call) with the default call timeout.
    async fn call<C>(&self, addr: &str, call: C, span: Span) -> Result<C::Response>
    where
        C: Call + Send,
        C::Response: Send,
    {
        self.broker_call(addr, call, self.timeouts.call, span).await
    }

    /// Runs `call` against the nameservers.
    async fn name_server_call<C>(&self, call: C, span: Span) -> Result<C::Response>
    where
        C: Call + Send,
        C::Response: Send,
    {
        let timeout = self.timeouts.call;
        let svc = self.connector.name_server(timeout);
        // The nameserver service bounds the call itself and passes over a
        // nameserver that did not answer: this timer, a little later, only
        // guards services that do not.
        let listed = self.name_server_addrs();
        let addr = listed
            .as_deref()
            .map_or_else(|| "nameserver".into(), |addrs| addrs.join(";"));
        let call = async {
            finish(run(svc, &addr, call, timeout.saturating_add(NAME_SERVER_SLACK)).await)
        };
        call.instrument(span).await
    }
}

/// Executes `call` over `svc` within `timeout`; a call that takes longer is a
/// [`RemotingError::Timeout`].
async fn run<C>(
    mut svc: PeerService,
    addr: &str,
    call: C,
    timeout: Duration,
) -> std::result::Result<C::Response, RemotingError>
where
    C: Call + Send,
    C::Response: Send,
{
    match tokio::time::timeout(timeout, execute_at(&mut svc, addr, call)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(RemotingError::Timeout {
            addr: addr.to_owned(),
            after: timeout,
        }),
    }
}

/// A call's outcome as the API reports it; failures are logged at debug, in
/// the call's span.
fn finish<T>(result: std::result::Result<T, RemotingError>) -> Result<T> {
    if let Err(error) = &result {
        tracing::debug!(%error, "call failed");
    }
    result.map_err(KernelError::from)
}

/// The debug span of a broker call.
fn span(request: &'static str, addr: &str, topic: Option<&str>, queue_id: Option<i32>) -> Span {
    let span = tracing::debug_span!(
        "broker_call",
        request,
        addr,
        topic = tracing::field::Empty,
        queue_id = tracing::field::Empty,
    );
    if let Some(topic) = topic {
        span.record("topic", topic);
    }
    if let Some(queue_id) = queue_id {
        span.record("queue_id", queue_id);
    }
    span
}

fn queue_span(request: &'static str, addr: &str, mq: &MessageQueue) -> Span {
    span(request, addr, Some(&mq.topic), Some(mq.queue_id))
}

fn time_from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

#[async_trait]
impl BrokerApi for RemotingBrokerApi {
    async fn send_message(
        &self,
        addr: &str,
        request: SendMessage,
        timeout: Duration,
    ) -> Result<SendResponse> {
        RemotingBrokerApi::send_message(self, addr, request, timeout).await
    }

    async fn send_batch(
        &self,
        addr: &str,
        request: SendBatch,
        timeout: Duration,
    ) -> Result<SendResponse> {
        RemotingBrokerApi::send_batch(self, addr, request, timeout).await
    }

    async fn pull_message(
        &self,
        addr: &str,
        header: PullMessageRequestHeader,
    ) -> Result<PullResponse> {
        let span = span(
            "pull_message",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        let timeout = self.timeouts.pull_timeout(&header);
        self.broker_call(addr, PullMessage(header), timeout, span)
            .await
    }

    async fn pop_message(
        &self,
        addr: &str,
        header: PopMessageRequestHeader,
    ) -> Result<PopResponse> {
        let span = span(
            "pop_message",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        let timeout = self.timeouts.pop_timeout(&header);
        self.broker_call(addr, PopMessage(header), timeout, span)
            .await
    }

    async fn ack_message(&self, addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        let span = span(
            "ack_message",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        self.call(addr, AckMessage(header), span).await
    }

    async fn batch_ack_message(&self, addr: &str, body: BatchAckMessageRequestBody) -> Result<()> {
        let topic = body.acks.first().map(|ack| ack.topic.clone());
        let span = span("batch_ack_message", addr, topic.as_deref(), None);
        self.call(addr, BatchAckMessage(body), span).await
    }

    async fn change_invisible_time(
        &self,
        addr: &str,
        header: ChangeInvisibleTimeRequestHeader,
    ) -> Result<ChangeInvisibleTimeResponseHeader> {
        let span = span(
            "change_invisible_time",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        self.call(addr, ChangeInvisibleTime(header), span).await
    }

    async fn query_consumer_offset(
        &self,
        addr: &str,
        header: QueryConsumerOffsetRequestHeader,
    ) -> Result<Option<i64>> {
        let span = span(
            "query_consumer_offset",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        self.call(addr, QueryConsumerOffset(header), span).await
    }

    async fn update_consumer_offset(
        &self,
        addr: &str,
        header: UpdateConsumerOffsetRequestHeader,
        mode: CallMode,
    ) -> Result<()> {
        let span = span(
            "update_consumer_offset",
            addr,
            Some(&header.topic),
            Some(header.queue_id),
        );
        let call = UpdateConsumerOffset(header);
        match mode {
            CallMode::Sync => self.call(addr, call, span).await,
            CallMode::Oneway => self.call(addr, Oneway(call), span).await,
        }
    }

    async fn heartbeat(&self, addr: &str, data: HeartbeatData) -> Result<i32> {
        self.call(addr, Heartbeat(data), span("heartbeat", addr, None, None))
            .await
    }

    async fn unregister_client(
        &self,
        addr: &str,
        header: UnregisterClientRequestHeader,
    ) -> Result<()> {
        self.call(
            addr,
            Unregister(header),
            span("unregister_client", addr, None, None),
        )
        .await
    }

    async fn consumer_list(&self, addr: &str, group: &str) -> Result<Vec<String>> {
        let header = GetConsumerListByGroupRequestHeader {
            consumer_group: group.to_owned(),
            broker_name: None,
        };
        let span = span("consumer_list", addr, None, None);
        self.call(addr, GetConsumerList(header), span).await
    }

    async fn query_assignment(
        &self,
        addr: &str,
        body: QueryAssignmentRequestBody,
    ) -> Result<Option<Vec<MessageQueueAssignment>>> {
        let span = span("query_assignment", addr, Some(&body.topic), None);
        self.call(addr, QueryAssignment(body), span).await
    }

    async fn set_message_request_mode(
        &self,
        addr: &str,
        body: SetMessageRequestModeRequestBody,
    ) -> Result<()> {
        let span = span("set_message_request_mode", addr, Some(&body.topic), None);
        self.call(addr, SetMessageRequestMode(body), span).await
    }

    async fn check_client_config(&self, addr: &str, body: CheckClientRequestBody) -> Result<()> {
        let topic = body.subscription_data.topic.clone();
        let span = span("check_client_config", addr, Some(&topic), None);
        self.call(addr, CheckClientConfig(body), span).await
    }

    async fn send_back(&self, addr: &str, header: ConsumerSendMsgBackRequestHeader) -> Result<()> {
        let span = span("send_back", addr, header.origin_topic.as_deref(), None);
        self.call(addr, ConsumerSendMsgBack(header), span).await
    }

    async fn end_transaction(&self, addr: &str, request: EndTransaction) -> Result<()> {
        let span = span(
            "end_transaction",
            addr,
            request.header.topic.as_deref(),
            None,
        );
        self.call(addr, request, span).await
    }

    async fn recall_message(
        &self,
        addr: &str,
        header: RecallMessageRequestHeader,
    ) -> Result<String> {
        let span = span("recall_message", addr, Some(&header.topic), None);
        self.call(addr, RecallMessage(header), span).await
    }

    async fn lock_batch(
        &self,
        addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        let topic = body.mq_set.first().map(|mq| mq.topic.clone());
        let span = span("lock_batch", addr, topic.as_deref(), None);
        let timeout = self.timeouts.lock;
        self.broker_call(addr, LockBatchMq(body), timeout, span)
            .await
    }

    async fn unlock_batch(
        &self,
        addr: &str,
        body: UnlockBatchRequestBody,
        mode: CallMode,
    ) -> Result<()> {
        let topic = body.mq_set.first().map(|mq| mq.topic.clone());
        let span = span("unlock_batch", addr, topic.as_deref(), None);
        let call = UnlockBatchMq(body);
        let timeout = self.timeouts.lock;
        match mode {
            CallMode::Sync => self.broker_call(addr, call, timeout, span).await,
            CallMode::Oneway => self.broker_call(addr, Oneway(call), timeout, span).await,
        }
    }

    async fn max_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        let header = GetMaxOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            committed: true,
            broker_name: Some(mq.broker_name.clone()),
        };
        self.call(
            addr,
            GetMaxOffset(header),
            queue_span("max_offset", addr, mq),
        )
        .await
    }

    async fn min_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        let header = GetMinOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            broker_name: Some(mq.broker_name.clone()),
        };
        self.call(
            addr,
            GetMinOffset(header),
            queue_span("min_offset", addr, mq),
        )
        .await
    }

    async fn search_offset(
        &self,
        addr: &str,
        mq: &MessageQueue,
        time: SystemTime,
        boundary: BoundaryType,
    ) -> Result<i64> {
        let header = SearchOffsetRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            timestamp: epoch_millis(time),
            boundary_type: Some(boundary),
            broker_name: Some(mq.broker_name.clone()),
        };
        self.call(
            addr,
            SearchOffset(header),
            queue_span("search_offset", addr, mq),
        )
        .await
    }

    async fn earliest_store_time(
        &self,
        addr: &str,
        mq: &MessageQueue,
    ) -> Result<Option<SystemTime>> {
        let header = GetEarliestMsgStoretimeRequestHeader {
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            broker_name: Some(mq.broker_name.clone()),
        };
        let span = queue_span("earliest_store_time", addr, mq);
        let millis = self
            .call(addr, GetEarliestMsgStoreTime(header), span)
            .await?;
        Ok((millis >= 0).then(|| time_from_millis(millis)))
    }

    async fn view_message(
        &self,
        addr: &str,
        topic: Option<&str>,
        commit_log_offset: i64,
    ) -> Result<MessageExt> {
        let header = ViewMessageRequestHeader {
            topic: topic.map(str::to_owned),
            offset: commit_log_offset,
        };
        let span = span("view_message", addr, topic, None);
        let mut body = self.call(addr, ViewMessage(header), span).await?;
        Ok(rocketmq_model::message::decode_record(&mut body)?)
    }

    async fn query_message(
        &self,
        addr: &str,
        header: QueryMessageRequestHeader,
    ) -> Result<QueryMessageResult> {
        let span = span("query_message", addr, Some(&header.topic), None);
        // A broker searches its index files: Java gives it three times the
        // call timeout (MQAdminImpl.queryMessage).
        let timeout = self.timeouts.call.saturating_mul(3);
        let Some(found) = self
            .broker_call(addr, QueryMessage(header), timeout, span)
            .await?
        else {
            return Ok(QueryMessageResult::default());
        };
        // What decodes is kept: a query's answer may pass the decompression
        // total (or break off) where a pull's would be pulled again.
        let decoded = rocketmq_model::message::decode_records_prefix(found.body);
        if let Some(error) = &decoded.malformed {
            tracing::warn!(%addr, %error, kept = decoded.messages.len(), "a query answer breaks off at a malformed record");
        } else if decoded.reached_total {
            tracing::warn!(%addr, kept = decoded.messages.len(), "a query answer passes the decompression total; the rest is left out");
        }
        Ok(QueryMessageResult {
            index_last_update: Some(time_from_millis(found.header.index_last_update_timestamp)),
            messages: decoded.messages,
        })
    }

    async fn create_topic(&self, addr: &str, header: CreateTopicRequestHeader) -> Result<()> {
        let span = span("create_topic", addr, Some(&header.topic), None);
        self.call(addr, CreateTopic(header), span).await
    }
}

#[async_trait]
impl NameServerApi for RemotingBrokerApi {
    async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        let span = tracing::debug_span!("name_server_call", request = "topic_route", topic);
        match self.name_server_call(GetRouteInfo::new(topic), span).await {
            Err(KernelError::Remoting(error))
                if error.response_code() == Some(ResponseCode::TOPIC_NOT_EXIST) =>
            {
                Err(KernelError::NoRoute {
                    topic: topic.to_owned(),
                })
            }
            other => other,
        }
    }

    async fn cluster_info(&self) -> Result<ClusterInfo> {
        let span = tracing::debug_span!("name_server_call", request = "cluster_info");
        self.name_server_call(GetClusterInfo, span).await
    }
}
