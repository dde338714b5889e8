//! Helpers shared by the protocol-level tests: a client on the cluster's
//! transport that records (and answers) what brokers send it, and typed
//! shortcuts for the requests the tests make.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rocketmq_model::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, ExpressionType, MessageModel, ProducerData,
};
use rocketmq_model::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use rocketmq_model::message::sysflag::pull;
use rocketmq_model::{
    HeartbeatData, Message, MessageExt, ResponseCode, SubscriptionData, decode_records,
};
use rocketmq_remoting::calls::{
    GetRouteInfo, Heartbeat, PullMessage, PullResponse, SendMessage, SendResponse,
};
use rocketmq_remoting::connection::{Connection, InboundService};
use rocketmq_remoting::{Call, RemotingClient, RemotingCommand, RemotingError};
use rocketmq_testkit::TestCluster;

/// Long enough for any call under paused time (time only advances when idle).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `fut`, failing instead of hanging.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("awaited condition never came")
}

/// What a fake client answers to a broker's request.
pub type Answer = Arc<dyn Fn(&RemotingCommand) -> RemotingCommand + Send + Sync>;

/// A client of the cluster that records the requests brokers send it.
#[derive(Clone)]
pub struct TestClient {
    pub remoting: RemotingClient,
    pub received: Arc<Mutex<Vec<RemotingCommand>>>,
    pub namesrv: String,
}

impl TestClient {
    /// A client answering every broker request with SUCCESS.
    pub fn new(cluster: &TestCluster) -> Self {
        Self::answering(
            cluster,
            Arc::new(|_| RemotingCommand::response(ResponseCode::SUCCESS, 0)),
        )
    }

    /// A client answering broker requests with `answer`.
    pub fn answering(cluster: &TestCluster, answer: Answer) -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let remoting = RemotingClient::builder()
            .shared_transport(cluster.transport())
            .request_timeout(CALL_TIMEOUT)
            .inbound(move |_conn: &Connection| {
                let log = Arc::clone(&log);
                let answer = Arc::clone(&answer);
                InboundService::new(tower::service_fn(move |req: RemotingCommand| {
                    log.lock().unwrap().push(req.clone());
                    let reply = answer(&req);
                    async move { Ok::<_, RemotingError>(reply) }
                }))
            })
            .build();
        TestClient {
            remoting,
            received,
            namesrv: cluster.namesrv_addr().to_owned(),
        }
    }

    pub async fn call<C: Call>(&self, addr: &str, call: C) -> Result<C::Response, RemotingError> {
        self.remoting.invoke_call(addr, call, CALL_TIMEOUT).await
    }

    /// The codes of the requests received so far.
    pub fn received_codes(&self) -> Vec<i32> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.code)
            .collect()
    }

    /// Waits until a request with `code` has arrived; returns it.
    pub async fn wait_for(&self, code: i32) -> RemotingCommand {
        within(async {
            loop {
                let found = self
                    .received
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|r| r.code == code)
                    .cloned();
                if let Some(found) = found {
                    return found;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    pub async fn send(&self, addr: &str, message: &Message, queue_id: i32) -> SendResponse {
        self.call(
            addr,
            SendMessage::new(send_header(message, queue_id), message.body.clone()),
        )
        .await
        .unwrap()
    }

    pub async fn pull(&self, addr: &str, header: PullMessageRequestHeader) -> PullResponse {
        self.call(addr, PullMessage(header)).await.unwrap()
    }

    pub async fn heartbeat(&self, addr: &str, data: HeartbeatData) {
        self.call(addr, Heartbeat(data)).await.unwrap();
    }

    pub async fn route(
        &self,
        topic: &str,
    ) -> Result<rocketmq_model::TopicRouteData, RemotingError> {
        self.call(&self.namesrv.clone(), GetRouteInfo::new(topic))
            .await
    }
}

/// The send header Java would build for `message` to `queue_id`.
pub fn send_header(message: &Message, queue_id: i32) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: message.topic.as_str().into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: message.flag,
        properties: Some(message.properties.encode()),
        ..SendMessageRequestHeader::default()
    }
}

/// A message with a tag and a UNIQ_KEY.
pub fn message(topic: &str, body: &str, tag: &str) -> Message {
    let mut message = Message::builder(topic)
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .tags(tag)
        .build()
        .unwrap();
    // As a producer sets it (the builder keeps reserved names for the client).
    message
        .properties
        .insert("UNIQ_KEY", format!("UNIQ-{body}"))
        .unwrap();
    message
}

/// A pull header of `group` for a queue; `expression` set means the
/// SUBSCRIPTION flag with that tag expression.
pub fn pull_header(
    group: &str,
    topic: &str,
    queue_id: i32,
    offset: i64,
    suspend: bool,
    expression: Option<&str>,
) -> PullMessageRequestHeader {
    let mut sys_flag = 0;
    if suspend {
        sys_flag |= pull::SUSPEND;
    }
    if expression.is_some() {
        sys_flag |= pull::SUBSCRIPTION;
    }
    PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag,
        commit_offset: 0,
        suspend_timeout_millis: 15_000,
        subscription: expression.map(str::to_owned),
        sub_version: 0,
        expression_type: expression.map(|_| "TAG".to_owned()),
        ..PullMessageRequestHeader::default()
    }
}

/// Heartbeat data of one push consumer of `group` subscribing `topic` with
/// a tag expression.
pub fn consumer_heartbeat(
    client_id: &str,
    group: &str,
    topic: &str,
    expression: &str,
) -> HeartbeatData {
    HeartbeatData {
        client_id: client_id.into(),
        consumer_data_set: vec![ConsumerData {
            consume_from_where: ConsumeFromWhere::LastOffset,
            consume_type: ConsumeType::ConsumePassively,
            group_name: group.into(),
            message_model: MessageModel::Clustering,
            subscription_data_set: vec![
                SubscriptionData::from_expression(topic, expression, ExpressionType::Tag).unwrap(),
            ],
            unit_mode: false,
        }],
        ..HeartbeatData::default()
    }
}

/// Heartbeat data of a producer of `group`.
pub fn producer_heartbeat(client_id: &str, group: &str) -> HeartbeatData {
    HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![ProducerData {
            group_name: group.into(),
        }],
        ..HeartbeatData::default()
    }
}

/// The messages of a pull answer.
pub fn records(response: &PullResponse) -> Vec<MessageExt> {
    decode_records(response.body.clone()).unwrap()
}

/// The bodies of messages, as text.
pub fn bodies(messages: &[MessageExt]) -> Vec<String> {
    messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}
