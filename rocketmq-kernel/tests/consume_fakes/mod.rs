//! Fakes shared by the consume and expiry tests: a scriptable broker, a
//! route table for topic "T" and the retry topic of group "cg", and
//! messages.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses a part

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rocketmq_kernel::api::{BrokerApi, NameServerApi};
use rocketmq_kernel::consume::{ConsumeEnv, ConsumeStats};
use rocketmq_kernel::offset::MemoryOffsetStore;
use rocketmq_kernel::{ConsumerOptions, KernelError, ProcessQueue, Result, RouteTable, Routes};
use rocketmq_model::body::LockBatchRequestBody;
use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    ConsumerSendMsgBackRequestHeader, SendMessageResponseHeader,
};
use rocketmq_model::message::{PopTopicKind, ReceiptHandle};
use rocketmq_model::{Message, MessageExt, MessageQueue, Namespace, ResponseCode, TopicRouteData};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{SendMessage, SendResponse, SendStatus};
use tokio::time::Instant;

pub(crate) const GROUP: &str = "cg";
pub(crate) const MASTER: &str = "10.0.0.1:10911";

/// A broker whose send-back, send and lock answers the test decides, and
/// that records every request.
#[derive(Default)]
pub(crate) struct FakeBroker {
    pub(crate) send_back_fails: AtomicBool,
    pub(crate) send_fails: AtomicBool,
    pub(crate) refuse_locks: AtomicBool,
    pub(crate) sent_back: Mutex<Vec<(String, ConsumerSendMsgBackRequestHeader)>>,
    pub(crate) sent: Mutex<Vec<(String, SendMessage)>>,
    pub(crate) lock_requests: Mutex<Vec<(String, LockBatchRequestBody)>>,
    pub(crate) failed_sends: AtomicUsize,
    pub(crate) acks: Mutex<Vec<(String, AckMessageRequestHeader)>>,
    pub(crate) changes: Mutex<Vec<(String, ChangeInvisibleTimeRequestHeader)>>,
}

fn broker_error(addr: &str) -> KernelError {
    KernelError::Remoting(RemotingError::Response {
        addr: addr.to_owned(),
        code: ResponseCode::SYSTEM_ERROR,
        remark: "scripted failure".to_owned(),
    })
}

impl FakeBroker {
    /// The queue offsets of the sent-back messages, in order.
    pub(crate) fn sent_back_offsets(&self) -> Vec<i64> {
        self.sent_back
            .lock()
            .unwrap()
            .iter()
            .map(|(_, header)| header.offset)
            .collect()
    }

    pub(crate) fn sent_back_count(&self) -> usize {
        self.sent_back.lock().unwrap().len()
    }

    pub(crate) fn sent_count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

#[async_trait]
impl BrokerApi for FakeBroker {
    async fn send_back(&self, addr: &str, header: ConsumerSendMsgBackRequestHeader) -> Result<()> {
        if self.send_back_fails.load(Ordering::SeqCst) {
            return Err(broker_error(addr));
        }
        self.sent_back
            .lock()
            .unwrap()
            .push((addr.to_owned(), header));
        Ok(())
    }

    async fn send_message(
        &self,
        addr: &str,
        request: SendMessage,
        _timeout: std::time::Duration,
    ) -> Result<SendResponse> {
        if self.send_fails.load(Ordering::SeqCst) {
            self.failed_sends.fetch_add(1, Ordering::SeqCst);
            return Err(broker_error(addr));
        }
        let header = SendMessageResponseHeader {
            msg_id: "ID".to_owned(),
            queue_id: request.header.queue_id,
            queue_offset: 0,
            transaction_id: None,
            batch_uniq_id: None,
            recall_handle: None,
            msg_region: None,
            trace_on: None,
        };
        self.sent.lock().unwrap().push((addr.to_owned(), request));
        Ok(SendResponse {
            status: SendStatus::SendOk,
            header,
        })
    }

    async fn ack_message(&self, addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        self.acks.lock().unwrap().push((addr.to_owned(), header));
        Ok(())
    }

    async fn change_invisible_time(
        &self,
        addr: &str,
        header: ChangeInvisibleTimeRequestHeader,
    ) -> Result<ChangeInvisibleTimeResponseHeader> {
        let answer = ChangeInvisibleTimeResponseHeader {
            pop_time: 1,
            invisible_time: header.invisible_time,
            revive_qid: 0,
        };
        self.changes.lock().unwrap().push((addr.to_owned(), header));
        Ok(answer)
    }

    async fn lock_batch(
        &self,
        addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        let granted = if self.refuse_locks.load(Ordering::SeqCst) {
            BTreeSet::new()
        } else {
            body.mq_set.clone()
        };
        self.lock_requests
            .lock()
            .unwrap()
            .push((addr.to_owned(), body));
        Ok(granted)
    }
}

/// A nameserver that knows nothing (the table is filled up front).
pub(crate) struct NoNameServer;

#[async_trait]
impl NameServerApi for NoNameServer {
    async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        Err(KernelError::NoRoute {
            topic: topic.to_owned(),
        })
    }
}

/// Message `offset` of queue 1 of `broker_name`, popped from offset 100.
pub(crate) fn popped_handle(broker_name: &str, offset: i64) -> ReceiptHandle {
    ReceiptHandle {
        ck_queue_offset: 100,
        pop_time: 1_700_000_000_000,
        invisible_time: 60_000,
        revive_qid: 3,
        kind: PopTopicKind::Normal,
        broker_name: broker_name.to_owned(),
        queue_id: 1,
        queue_offset: offset,
    }
}

/// A route over `brokers` (name, master address), four queues each.
pub(crate) fn route_of(brokers: &[(&str, &str)]) -> TopicRouteData {
    let broker_datas: Vec<String> = (brokers.iter())
        .map(|(name, addr)| {
            format!(r#"{{"brokerAddrs":{{0:"{addr}"}},"brokerName":"{name}","cluster":"c"}}"#)
        })
        .collect();
    let queue_datas: Vec<String> = (brokers.iter())
        .map(|(name, _)| {
            format!(r#"{{"brokerName":"{name}","perm":6,"readQueueNums":4,"writeQueueNums":4}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"brokerDatas":[{}],"queueDatas":[{}]}}"#,
        broker_datas.join(","),
        queue_datas.join(",")
    );
    TopicRouteData::decode(json.as_bytes()).unwrap()
}

fn route() -> TopicRouteData {
    route_of(&[("broker-a", MASTER)])
}

/// Routes knowing only `topic`, over `brokers` (name, master address).
pub(crate) fn routes_for(topic: &str, brokers: &[(&str, &str)]) -> Routes {
    let table = Arc::new(RouteTable::new());
    table.update(topic, route_of(brokers));
    Routes::with_table(table, Arc::new(NoNameServer))
}

/// Routes knowing topic "T" and "%RETRY%cg" on broker-a, and their names
/// in namespace [`NS`].
pub(crate) fn routes() -> Routes {
    let table = Arc::new(RouteTable::new());
    for topic in ["T", "%RETRY%cg", "ns%T", "%RETRY%ns%cg"] {
        table.update(topic, route());
    }
    Routes::with_table(table, Arc::new(NoNameServer))
}

/// The namespace of [`in_namespace`].
pub(crate) const NS: &str = "ns";

/// `options` of a consumer in namespace [`NS`]: group "ns%cg" (the
/// consumer builders hand the kernel names already in the namespace).
pub(crate) fn in_namespace(mut options: ConsumerOptions) -> ConsumerOptions {
    options.group = format!("{NS}%{GROUP}");
    options.namespace = Namespace::new(NS).unwrap();
    options
}

pub(crate) struct Fixture {
    pub(crate) broker: Arc<FakeBroker>,
    pub(crate) offsets: Arc<MemoryOffsetStore>,
    pub(crate) stats: Arc<ConsumeStats>,
    pub(crate) env: ConsumeEnv,
}

/// An environment over a fresh fake broker and memory offset store.
pub(crate) fn fixture(options: ConsumerOptions) -> Fixture {
    let broker = Arc::new(FakeBroker::default());
    let offsets = Arc::new(MemoryOffsetStore::new());
    let stats = Arc::new(ConsumeStats::new());
    let env = ConsumeEnv {
        options: Arc::new(options),
        client_id: "10.0.0.9@1".to_owned(),
        api: Arc::clone(&broker) as Arc<dyn BrokerApi>,
        routes: routes(),
        offsets: Arc::clone(&offsets) as _,
        stats: Arc::clone(&stats),
        hooks: Default::default(),
    };
    Fixture {
        broker,
        offsets,
        stats,
        env,
    }
}

pub(crate) fn options() -> ConsumerOptions {
    ConsumerOptions::new(GROUP)
}

pub(crate) fn mq(queue_id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", queue_id)
}

/// A message of `mq` at `offset` whose body is the offset.
pub(crate) fn msg(mq: &MessageQueue, offset: i64) -> Arc<MessageExt> {
    Arc::new(MessageExt {
        message: Message::new(mq.topic.clone(), offset.to_string()),
        queue_id: mq.queue_id,
        queue_offset: offset,
        commit_log_offset: 1000 + offset,
        ..MessageExt::default()
    })
}

/// A process queue holding messages `offsets` of `mq`, and the request that
/// hands them to a consume service.
pub(crate) fn queue_with(
    mq: &MessageQueue,
    offsets: std::ops::Range<i64>,
) -> (Arc<ProcessQueue>, rocketmq_kernel::ConsumeRequest) {
    let pq = Arc::new(ProcessQueue::new(Instant::now()));
    let msgs: Vec<_> = offsets.map(|offset| msg(mq, offset)).collect();
    let dispatch = pq.put(&msgs);
    let request = rocketmq_kernel::ConsumeRequest {
        mq: mq.clone(),
        pq: Arc::clone(&pq),
        msgs,
        dispatch,
    };
    (pq, request)
}

/// Waits (in paused tokio time) until `done` holds, failing after an hour.
pub(crate) async fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + std::time::Duration::from_secs(3600);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}
