//! Fakes shared by the rebalance and pull tests: brokers in memory (queues
//! with messages and long polling, the group's client list, stored offsets,
//! queue locks, scripted pull answers), a nameserver, consume services, and
//! a helper to await a condition on paused time.

#![allow(dead_code, unreachable_pub)] // each test file uses a part
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::BytesMut;
use rocketmq_kernel::api::{BrokerApi, CallMode, NameServerApi};
use rocketmq_kernel::consume::{ConsumeRequest, ConsumeService};
use rocketmq_kernel::offset::{OffsetRemote, OffsetStore, RemoteOffsetStore};
use rocketmq_kernel::rebalance::{ConsumerParts, Rebalancer, RebalancerBuilder};
use rocketmq_kernel::route::Routes;
use rocketmq_kernel::{ConsumerOptions, KernelError, Result};
use rocketmq_model::body::{ExpressionType, LockBatchRequestBody, UnlockBatchRequestBody};
use rocketmq_model::header::{
    BoundaryType, PullMessageRequestHeader, PullMessageResponseHeader,
    QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::message::sysflag::pull as pull_flag;
use rocketmq_model::route::perm;
use rocketmq_model::{
    BrokerData, Message, MessageExt, MessageQueue, QueueData, ResponseCode, SubscriptionData,
    TopicRouteData, encode_record, property,
};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{PullResponse, PullStatus};
use tokio::sync::Notify;
use tokio::time::Instant;

pub const GROUP: &str = "cg";
pub const TOPIC: &str = "T";

/// Two brokers (`broker-a` at `a:10911`, `broker-b` at `b:10911`), each with
/// `queues_per_broker` queues.
pub fn route(queues_per_broker: i32) -> TopicRouteData {
    let queue = |name: &str| QueueData {
        broker_name: name.into(),
        read_queue_nums: queues_per_broker,
        write_queue_nums: queues_per_broker,
        perm: perm::READ | perm::WRITE,
        topic_sys_flag: 0,
    };
    let broker = |name: &str, addr: &str| BrokerData {
        cluster: "c".into(),
        broker_name: name.into(),
        broker_addrs: [(0, addr.to_owned())].into(),
        ..BrokerData::default()
    };
    TopicRouteData {
        queue_datas: vec![queue("broker-a"), queue("broker-b")],
        broker_datas: vec![broker("broker-a", "a:10911"), broker("broker-b", "b:10911")],
        ..TopicRouteData::default()
    }
}

/// A nameserver knowing the topics it was given.
#[derive(Default)]
pub struct FakeNameServer {
    routes: Mutex<HashMap<String, TopicRouteData>>,
}

impl FakeNameServer {
    pub fn with(routes: &[(&str, TopicRouteData)]) -> Arc<Self> {
        let ns = FakeNameServer::default();
        for (topic, route) in routes {
            ns.routes
                .lock()
                .unwrap()
                .insert((*topic).to_owned(), route.clone());
        }
        Arc::new(ns)
    }

    /// Sets (or changes) the route of `topic`.
    pub fn set(&self, topic: &str, route: TopicRouteData) {
        self.routes.lock().unwrap().insert(topic.to_owned(), route);
    }
}

#[async_trait]
impl NameServerApi for FakeNameServer {
    async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        self.routes
            .lock()
            .unwrap()
            .get(topic)
            .cloned()
            .ok_or_else(|| KernelError::NoRoute {
                topic: topic.to_owned(),
            })
    }
}

/// A pull a broker received.
#[derive(Debug, Clone)]
pub struct PullRecord {
    pub at: Instant,
    pub client: String,
    pub addr: String,
    pub header: PullMessageRequestHeader,
}

impl PullRecord {
    pub fn mq(&self) -> MessageQueue {
        MessageQueue::new(
            self.header.topic.clone(),
            self.header.broker_name.clone().unwrap(),
            self.header.queue_id,
        )
    }
}

/// The brokers' state, shared by every client of a test.
#[derive(Default)]
pub struct Cluster {
    messages: Mutex<BTreeMap<MessageQueue, Vec<MessageExt>>>,
    appended: Notify,
    pub clients: Mutex<Vec<String>>,
    pub offsets: Mutex<BTreeMap<MessageQueue, i64>>,
    /// Every UPDATE_CONSUMER_OFFSET and pull commit: (queue, offset).
    pub commits: Mutex<Vec<(MessageQueue, i64)>>,
    pub locks: Mutex<BTreeMap<MessageQueue, String>>,
    pub refused_locks: Mutex<BTreeSet<MessageQueue>>,
    pub lock_requests: AtomicUsize,
    pub unlocks: Mutex<Vec<(String, MessageQueue, CallMode)>>,
    pub pulls: Mutex<Vec<PullRecord>>,
    scripts: Mutex<HashMap<MessageQueue, VecDeque<Result<PullResponse>>>>,
    /// Answers of GET_MAX_OFFSET and SEARCH_OFFSET_BY_TIMESTAMP.
    pub max_offset: Mutex<i64>,
    pub search_offset: Mutex<i64>,
    pub searched_at: Mutex<Vec<SystemTime>>,
    pub broker_down: AtomicBool,
    /// Whether the offset a pull carries (COMMIT_OFFSET) is ignored, so that
    /// only explicit persists move the stored offsets.
    pub ignore_pull_commits: AtomicBool,
    pub consumer_list_calls: AtomicUsize,
    /// When set, GET_CONSUMER_LIST_BY_GROUP waits for it (to hold a round).
    pub hold_consumer_list: Mutex<Option<Arc<Notify>>>,
    pub rounds_in_progress: AtomicUsize,
    pub max_rounds_at_once: AtomicUsize,
}

impl Cluster {
    pub fn new() -> Arc<Self> {
        Arc::new(Cluster::default())
    }

    /// Appends `count` messages with tag `tag` to `mq`.
    pub fn append(&self, mq: &MessageQueue, count: usize, tag: &str) {
        let mut messages = self.messages.lock().unwrap();
        let queue = messages.entry(mq.clone()).or_default();
        for _ in 0..count {
            let offset = queue.len() as i64;
            queue.push(message(mq, offset, tag, b"0123456789"));
        }
        drop(messages);
        self.appended.notify_waiters();
    }

    /// The next pull of `mq` gets `answer` instead of the stored messages.
    pub fn script(&self, mq: &MessageQueue, answer: Result<PullResponse>) {
        self.scripts
            .lock()
            .unwrap()
            .entry(mq.clone())
            .or_default()
            .push_back(answer);
    }

    pub fn pulls_of(&self, mq: &MessageQueue) -> Vec<PullRecord> {
        self.pulls
            .lock()
            .unwrap()
            .iter()
            .filter(|pull| pull.mq() == *mq)
            .cloned()
            .collect()
    }

    pub fn set_clients(&self, clients: &[&str]) {
        *self.clients.lock().unwrap() = clients.iter().map(|c| (*c).to_owned()).collect();
    }

    fn scripted(&self, mq: &MessageQueue) -> Option<Result<PullResponse>> {
        self.scripts.lock().unwrap().get_mut(mq)?.pop_front()
    }

    /// The stored messages of `mq` from `offset`, or `None` when there are
    /// none yet.
    fn found(&self, mq: &MessageQueue, offset: i64, max: i32) -> Option<PullResponse> {
        let messages = self.messages.lock().unwrap();
        let queue = messages.get(mq)?;
        let end = queue.len() as i64;
        if offset > end {
            return Some(answer(PullStatus::OffsetMoved, end, 0, end, &[]));
        }
        if offset == end {
            return None;
        }
        let take = (end - offset).min(i64::from(max));
        let found: Vec<MessageExt> = queue[offset as usize..(offset + take) as usize].to_vec();
        Some(answer(PullStatus::Found, offset + take, 0, end, &found))
    }
}

/// A stored message of `mq` at `offset`.
pub fn message(mq: &MessageQueue, offset: i64, tag: &str, body: &'static [u8]) -> MessageExt {
    let mut msg = Message::new(mq.topic.clone(), body);
    msg.properties.insert(property::TAGS, tag).unwrap();
    MessageExt {
        message: msg,
        queue_id: mq.queue_id,
        queue_offset: offset,
        ..MessageExt::default()
    }
}

/// A pull answer holding `msgs`.
pub fn answer(
    status: PullStatus,
    next_begin: i64,
    min: i64,
    max: i64,
    msgs: &[MessageExt],
) -> PullResponse {
    let mut body = BytesMut::new();
    for msg in msgs {
        encode_record(msg, &mut body).unwrap();
    }
    PullResponse {
        status,
        header: PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: next_begin,
            min_offset: min,
            max_offset: max,
            ..PullMessageResponseHeader::default()
        },
        body: body.freeze(),
    }
}

/// A broker's refusal with `code`.
pub fn refusal(code: ResponseCode) -> KernelError {
    KernelError::Remoting(RemotingError::Response {
        addr: "a:10911".into(),
        code,
        remark: "refused".into(),
    })
}

#[async_trait]
impl OffsetRemote for Cluster {
    async fn query_offset(&self, _group: &str, mq: &MessageQueue) -> Result<Option<i64>> {
        if self.broker_down.load(Ordering::SeqCst) {
            return Err(refusal(ResponseCode::SYSTEM_ERROR));
        }
        Ok(self.offsets.lock().unwrap().get(mq).copied())
    }

    async fn update_offset(
        &self,
        _group: &str,
        mq: &MessageQueue,
        offset: i64,
        _oneway: bool,
    ) -> Result<()> {
        self.offsets.lock().unwrap().insert(mq.clone(), offset);
        self.commits.lock().unwrap().push((mq.clone(), offset));
        Ok(())
    }
}

/// The brokers as one client sees them.
pub struct ClientBroker {
    pub cluster: Arc<Cluster>,
    pub client_id: String,
}

#[async_trait]
impl BrokerApi for ClientBroker {
    async fn consumer_list(&self, _addr: &str, group: &str) -> Result<Vec<String>> {
        assert_eq!(group, GROUP);
        let cluster = &self.cluster;
        cluster.consumer_list_calls.fetch_add(1, Ordering::SeqCst);
        let running = cluster.rounds_in_progress.fetch_add(1, Ordering::SeqCst) + 1;
        cluster
            .max_rounds_at_once
            .fetch_max(running, Ordering::SeqCst);
        let hold = cluster.hold_consumer_list.lock().unwrap().clone();
        if let Some(hold) = hold {
            hold.notified().await;
        }
        cluster.rounds_in_progress.fetch_sub(1, Ordering::SeqCst);
        Ok(cluster.clients.lock().unwrap().clone())
    }

    async fn query_consumer_offset(
        &self,
        _addr: &str,
        header: QueryConsumerOffsetRequestHeader,
    ) -> Result<Option<i64>> {
        let mq = MessageQueue::new(header.topic, header.broker_name.unwrap(), header.queue_id);
        self.cluster.query_offset(GROUP, &mq).await
    }

    async fn update_consumer_offset(
        &self,
        _addr: &str,
        header: UpdateConsumerOffsetRequestHeader,
        _mode: CallMode,
    ) -> Result<()> {
        let mq = MessageQueue::new(header.topic, header.broker_name.unwrap(), header.queue_id);
        self.cluster
            .update_offset(GROUP, &mq, header.commit_offset, true)
            .await
    }

    async fn pull_message(
        &self,
        addr: &str,
        header: PullMessageRequestHeader,
    ) -> Result<PullResponse> {
        let cluster = &self.cluster;
        let record = PullRecord {
            at: Instant::now(),
            client: self.client_id.clone(),
            addr: addr.to_owned(),
            header: header.clone(),
        };
        let mq = record.mq();
        cluster.pulls.lock().unwrap().push(record);
        if header.sys_flag & pull_flag::COMMIT_OFFSET != 0
            && !cluster.ignore_pull_commits.load(Ordering::SeqCst)
        {
            cluster
                .update_offset(GROUP, &mq, header.commit_offset, true)
                .await?;
        }
        if let Some(scripted) = cluster.scripted(&mq) {
            return scripted;
        }
        let deadline = Instant::now() + Duration::from_millis(header.suspend_timeout_millis as u64);
        loop {
            let appended = cluster.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            if let Some(found) = cluster.found(&mq, header.queue_offset, header.max_msg_nums) {
                return Ok(found);
            }
            tokio::select! {
                () = appended => {}
                () = tokio::time::sleep_until(deadline) => {
                    let offset = header.queue_offset;
                    return Ok(answer(PullStatus::NoNewMsg, offset, 0, offset, &[]));
                }
            }
        }
    }

    async fn lock_batch(
        &self,
        _addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        let cluster = &self.cluster;
        cluster.lock_requests.fetch_add(1, Ordering::SeqCst);
        if cluster.broker_down.load(Ordering::SeqCst) {
            return Err(refusal(ResponseCode::SYSTEM_ERROR));
        }
        let refused = cluster.refused_locks.lock().unwrap().clone();
        let mut locks = cluster.locks.lock().unwrap();
        let mut granted = BTreeSet::new();
        for mq in body.mq_set {
            let free = locks.get(&mq).is_none_or(|owner| *owner == body.client_id);
            if free && !refused.contains(&mq) {
                locks.insert(mq.clone(), body.client_id.clone());
                granted.insert(mq);
            }
        }
        Ok(granted)
    }

    async fn unlock_batch(
        &self,
        _addr: &str,
        body: UnlockBatchRequestBody,
        mode: CallMode,
    ) -> Result<()> {
        let mut locks = self.cluster.locks.lock().unwrap();
        for mq in body.mq_set {
            if locks.get(&mq).is_some_and(|owner| *owner == body.client_id) {
                locks.remove(&mq);
            }
            self.cluster
                .unlocks
                .lock()
                .unwrap()
                .push((body.client_id.clone(), mq, mode));
        }
        Ok(())
    }

    async fn max_offset(&self, _addr: &str, _mq: &MessageQueue) -> Result<i64> {
        if self.cluster.broker_down.load(Ordering::SeqCst) {
            return Err(refusal(ResponseCode::SYSTEM_ERROR));
        }
        Ok(*self.cluster.max_offset.lock().unwrap())
    }

    async fn search_offset(
        &self,
        _addr: &str,
        _mq: &MessageQueue,
        time: SystemTime,
        boundary: BoundaryType,
    ) -> Result<i64> {
        assert_eq!(boundary, BoundaryType::Lower);
        self.cluster.searched_at.lock().unwrap().push(time);
        Ok(*self.cluster.search_offset.lock().unwrap())
    }
}

/// One consumed message: (client, queue, offset).
pub type Consumed = (String, MessageQueue, i64);

/// Consumes every batch at once: logs it, removes it from the process
/// queue and commits the offset, unless the queue was dropped.
pub struct ImmediateConsume {
    pub client: String,
    pub store: Arc<dyn OffsetStore>,
    pub log: Arc<Mutex<Vec<Consumed>>>,
    pub orderly: bool,
}

#[async_trait]
impl ConsumeService for ImmediateConsume {
    async fn submit(&self, request: ConsumeRequest) {
        if request.pq.is_dropped() {
            return;
        }
        let offsets: Vec<i64> = request.msgs.iter().map(|m| m.queue_offset).collect();
        {
            let mut log = self.log.lock().unwrap();
            for offset in &offsets {
                log.push((self.client.clone(), request.mq.clone(), *offset));
            }
        }
        if let Some(commit) = request.pq.remove(&offsets, Instant::now()) {
            if !request.pq.is_dropped() {
                self.store.update(&request.mq, commit, true);
            }
        }
    }

    fn is_orderly(&self) -> bool {
        self.orderly
    }
}

/// Keeps every batch and never consumes (a listener that never returns).
#[derive(Default)]
pub struct StalledConsume {
    pub requests: Mutex<Vec<ConsumeRequest>>,
    pub orderly: bool,
}

#[async_trait]
impl ConsumeService for StalledConsume {
    async fn submit(&self, request: ConsumeRequest) {
        self.requests.lock().unwrap().push(request);
    }

    fn is_orderly(&self) -> bool {
        self.orderly
    }
}

/// A subscription to every message of `topic`.
pub fn sub_all(topic: &str) -> SubscriptionData {
    SubscriptionData::from_expression(topic, "*", ExpressionType::Tag).unwrap()
}

/// One consumer client of the test's cluster.
pub struct Client {
    pub id: String,
    pub rebalancer: Rebalancer,
    pub store: Arc<RemoteOffsetStore>,
    pub routes: Routes,
}

/// Starts client `id` of [`GROUP`] subscribed to `subscriptions`, with the
/// rebalance timer effectively off (rounds only on request).
pub fn start_client(
    cluster: &Arc<Cluster>,
    ns: &Arc<FakeNameServer>,
    id: &str,
    options: ConsumerOptions,
    consume: impl FnOnce(Arc<RemoteOffsetStore>) -> Arc<dyn ConsumeService>,
    subscriptions: &[SubscriptionData],
) -> Client {
    start_client_with_strategy(cluster, ns, id, options, consume, subscriptions, None)
}

/// [`start_client`] with an allocation strategy of the test's own.
pub fn start_client_with_strategy(
    cluster: &Arc<Cluster>,
    ns: &Arc<FakeNameServer>,
    id: &str,
    options: ConsumerOptions,
    consume: impl FnOnce(Arc<RemoteOffsetStore>) -> Arc<dyn ConsumeService>,
    subscriptions: &[SubscriptionData],
    strategy: Option<Arc<dyn rocketmq_kernel::AllocateStrategy>>,
) -> Client {
    start_client_with(
        cluster,
        ns,
        id,
        options,
        consume,
        subscriptions,
        |builder| match strategy {
            Some(strategy) => builder.strategy(strategy),
            None => builder,
        },
    )
}

/// [`start_client`] with the rebalancer's builder set up further by
/// `configure`.
pub fn start_client_with(
    cluster: &Arc<Cluster>,
    ns: &Arc<FakeNameServer>,
    id: &str,
    options: ConsumerOptions,
    consume: impl FnOnce(Arc<RemoteOffsetStore>) -> Arc<dyn ConsumeService>,
    subscriptions: &[SubscriptionData],
    configure: impl FnOnce(RebalancerBuilder) -> RebalancerBuilder,
) -> Client {
    let store = Arc::new(RemoteOffsetStore::new(GROUP, cluster.clone()));
    let routes = Routes::new(ns.clone());
    let parts = ConsumerParts {
        broker: Arc::new(ClientBroker {
            cluster: cluster.clone(),
            client_id: id.to_owned(),
        }),
        routes: routes.clone(),
        store: store.clone(),
        consume: consume(store.clone()),
    };
    let mut builder =
        configure(Rebalancer::builder(id, options, parts).interval(Duration::from_secs(86_400)));
    for subscription in subscriptions {
        builder = builder.subscribe(subscription.clone());
    }
    Client {
        id: id.to_owned(),
        rebalancer: builder.start(),
        store,
        routes,
    }
}

/// Waits (on tokio time, in 10 ms steps) until `condition` holds; panics
/// naming `what` after a minute of tokio time.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The options of [`GROUP`] (consume from the first offset, so that new
/// queues start at 0).
pub fn options() -> ConsumerOptions {
    let mut options = ConsumerOptions::new(GROUP);
    options.consume_from_where = rocketmq_model::body::ConsumeFromWhere::FirstOffset;
    options
}
