//! `RemotingBrokerApi` over a `RemotingClient` talking to fake brokers and a
//! fake nameserver (`Server` over a `MemoryNetwork`), with paused time.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::BytesMut;
use rocketmq_kernel::KernelError;
use rocketmq_kernel::api::{ApiTimeouts, BrokerApi, CallMode, NameServerApi, RemotingBrokerApi};
use rocketmq_model::body::{LockBatchRequestBody, UnlockBatchRequestBody};
use rocketmq_model::header::{
    BoundaryType, PopMessageRequestHeader, PullMessageRequestHeader,
    QueryConsumerOffsetRequestHeader, SendMessageRequestHeader, UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::message::sysflag;
use rocketmq_model::{Message, MessageExt, MessageQueue, RequestCode, ResponseCode, encode_record};
use rocketmq_remoting::calls::{PullStatus, SendMessage, SendStatus};
use rocketmq_remoting::connection::{Connection, ConnectionConfig, InboundService};
use rocketmq_remoting::server::Server;
use rocketmq_remoting::transport::MemoryNetwork;
use rocketmq_remoting::{RemotingClient, RemotingCommand, RemotingError};

const BROKER: &str = "broker-a:10911";
const NAMESRV: &str = "ns:9876";
const ROUTE: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"broker-a:10911"},"brokerName":"broker-a","cluster":"c"}],"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"writeQueueNums":4}]}"#;

/// Every request a fake peer received.
type Log = Arc<Mutex<Vec<RemotingCommand>>>;

fn ok() -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SUCCESS, 0)
}

fn with_fields(mut cmd: RemotingCommand, fields: &[(&str, &str)]) -> RemotingCommand {
    for (key, value) in fields {
        cmd.ext_fields.insert(*key, *value);
    }
    cmd
}

fn stored_record() -> bytes::Bytes {
    let ext = MessageExt {
        message: Message::new("T", "hello"),
        queue_offset: 7,
        commit_log_offset: 4096,
        ..MessageExt::default()
    };
    let mut out = BytesMut::new();
    encode_record(&ext, &mut out).unwrap();
    out.freeze()
}

/// The canned answer of the fake broker and nameserver to `req`.
async fn answer(req: RemotingCommand) -> RemotingCommand {
    let field = |key: &str| req.ext_fields.get(key).unwrap_or_default().to_owned();
    match req.request_code() {
        RequestCode::GET_ROUTEINFO_BY_TOPIC if field("topic") == "T" => ok().with_body(ROUTE),
        RequestCode::GET_ROUTEINFO_BY_TOPIC => {
            RemotingCommand::response(ResponseCode::TOPIC_NOT_EXIST, 0).with_remark("no route")
        }
        RequestCode::PULL_MESSAGE => {
            // Long polling: hold the request for the suspend time.
            let suspend: u64 = field("suspendTimeoutMillis").parse().unwrap();
            tokio::time::sleep(Duration::from_millis(suspend)).await;
            let fields = [
                ("suggestWhichBrokerId", "1"),
                ("nextBeginOffset", "100"),
                ("minOffset", "0"),
                ("maxOffset", "100"),
            ];
            with_fields(
                RemotingCommand::response(ResponseCode::PULL_NOT_FOUND, 0),
                &fields,
            )
        }
        RequestCode::QUERY_CONSUMER_OFFSET if field("queueId") == "0" => {
            with_fields(ok(), &[("offset", "42")])
        }
        RequestCode::QUERY_CONSUMER_OFFSET => {
            RemotingCommand::response(ResponseCode::QUERY_NOT_FOUND, 0)
        }
        RequestCode::GET_MAX_OFFSET => with_fields(ok(), &[("offset", "1000")]),
        RequestCode::GET_MIN_OFFSET => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            with_fields(ok(), &[("offset", "0")])
        }
        RequestCode::SEARCH_OFFSET_BY_TIMESTAMP => {
            let millis: i64 = field("timestamp").parse().unwrap();
            with_fields(ok(), &[("offset", &(millis / 1000).to_string())])
        }
        RequestCode::GET_EARLIEST_MSG_STORETIME => {
            with_fields(ok(), &[("timestamp", "1700000000123")])
        }
        RequestCode::VIEW_MESSAGE_BY_ID => ok().with_body(stored_record()),
        RequestCode::GET_CONSUMER_LIST_BY_GROUP => {
            ok().with_body(r#"{"consumerIdList":["c1","c2"]}"#)
        }
        RequestCode::LOCK_BATCH_MQ | RequestCode::UNLOCK_BATCH_MQ
            if String::from_utf8_lossy(&req.body).contains("\"slow\"") =>
        {
            // A broker slower than a lock's 1 s, faster than a call's 3 s.
            tokio::time::sleep(Duration::from_secs(2)).await;
            ok()
        }
        RequestCode::LOCK_BATCH_MQ => {
            let body = LockBatchRequestBody::decode(&req.body).unwrap();
            let locked: Vec<_> = body.mq_set.iter().take(1).collect();
            let json = serde_json::json!({ "lockOKMQSet": locked });
            ok().with_body(json.to_string())
        }
        RequestCode::SEND_MESSAGE_V2 => with_fields(
            ok(),
            &[
                ("msgId", "0A00000100002A9F0000000000001000"),
                ("queueId", &field("e")),
                ("queueOffset", "5"),
            ],
        ),
        _ => ok(),
    }
}

fn fake_peer(log: Log) -> impl Fn(&Connection) -> InboundService + Send + Sync + 'static {
    move |_conn| {
        let log = Arc::clone(&log);
        InboundService::new(tower::service_fn(move |req: RemotingCommand| {
            log.lock().unwrap().push(req.clone());
            async move { Ok::<_, RemotingError>(answer(req).await) }
        }))
    }
}

struct Cluster {
    api: RemotingBrokerApi,
    log: Log,
    _servers: Vec<Server>,
}

fn cluster() -> Cluster {
    let net = MemoryNetwork::new();
    let log = Log::default();
    let servers = [BROKER, NAMESRV]
        .into_iter()
        .map(|addr| {
            let listener = net.bind(addr).unwrap();
            Server::spawn(
                listener,
                ConnectionConfig::default(),
                fake_peer(Arc::clone(&log)),
            )
        })
        .collect();
    let client = RemotingClient::builder().transport(net).build();
    Cluster {
        api: RemotingBrokerApi::new(client, vec![NAMESRV.into()]),
        log,
        _servers: servers,
    }
}

impl Cluster {
    fn last(&self, code: RequestCode) -> RemotingCommand {
        let log = self.log.lock().unwrap();
        log.iter()
            .rev()
            .find(|c| c.request_code() == code)
            .cloned()
            .unwrap()
    }

    /// Waits until the peers received a request with `code`.
    async fn received(&self, code: RequestCode) -> RemotingCommand {
        tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let found = {
                    let log = self.log.lock().unwrap();
                    log.iter().rev().find(|c| c.request_code() == code).cloned()
                };
                if let Some(cmd) = found {
                    return cmd;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("request never arrived")
    }
}

fn mq(queue_id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", queue_id)
}

fn pull_header(suspend_ms: i64) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: "cg".into(),
        topic: "T".into(),
        queue_id: 1,
        queue_offset: 100,
        max_msg_nums: 32,
        sys_flag: sysflag::pull::SUSPEND,
        suspend_timeout_millis: suspend_ms,
        sub_version: 1,
        ..PullMessageRequestHeader::default()
    }
}

#[tokio::test(start_paused = true)]
async fn route_and_unknown_topic() {
    let cluster = cluster();
    let route = cluster.api.topic_route("T").await.unwrap();
    assert_eq!(route.master_addr("broker-a"), Some(BROKER));
    assert_eq!(
        cluster.last(RequestCode::GET_ROUTEINFO_BY_TOPIC).ext_fields["topic"],
        "T"
    );
    let err = cluster.api.topic_route("nope").await.unwrap_err();
    assert!(
        matches!(&err, KernelError::NoRoute { topic } if topic == "nope"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn long_poll_outlives_the_default_call_timeout() {
    let cluster = cluster();
    let started = tokio::time::Instant::now();
    let pulled = cluster
        .api
        .pull_message(BROKER, pull_header(15_000))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(15));
    assert_eq!(pulled.status, PullStatus::NoNewMsg);
    assert_eq!(pulled.header.suggest_which_broker_id, 1);
    assert_eq!(pulled.header.next_begin_offset, 100);
}

#[tokio::test(start_paused = true)]
async fn pull_timeout_grows_with_a_long_suspend() {
    let cluster = cluster();
    // 40 s of suspension exceeds the 30 s pull timeout: the call waits 48 s
    // (a Java broker may answer at its hold check up to 5 s after).
    let pulled = cluster.api.pull_message(BROKER, pull_header(40_000)).await;
    assert_eq!(pulled.unwrap().status, PullStatus::NoNewMsg);
    let timeouts = ApiTimeouts::default();
    assert_eq!(
        timeouts.pull_timeout(&pull_header(15_000)),
        Duration::from_secs(30)
    );
    assert_eq!(
        timeouts.pull_timeout(&pull_header(40_000)),
        Duration::from_secs(48)
    );
    let mut not_suspended = pull_header(40_000);
    not_suspended.sys_flag = 0;
    assert_eq!(
        timeouts.pull_timeout(&not_suspended),
        Duration::from_secs(30)
    );
}

#[test]
fn pop_timeout_leaves_javas_margin_over_the_poll_time() {
    let timeouts = ApiTimeouts::default();
    let pop = |poll_time| PopMessageRequestHeader {
        poll_time,
        ..PopMessageRequestHeader::default()
    };
    assert_eq!(timeouts.pop_timeout(&pop(20_000)), Duration::from_secs(30));
    assert_eq!(timeouts.pop_timeout(&pop(0)), Duration::from_secs(3));
    assert_eq!(timeouts.pop_timeout(&pop(-5)), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn slow_calls_time_out_after_the_call_timeout() {
    let cluster = cluster();
    let started = tokio::time::Instant::now();
    let err = cluster.api.min_offset(BROKER, &mq(0)).await.unwrap_err();
    assert!(
        matches!(&err, KernelError::Remoting(RemotingError::Timeout { addr, .. }) if addr == BROKER),
        "{err:?}"
    );
    assert!(err.is_retriable());
    assert!(started.elapsed() < Duration::from_secs(4));

    let patient = cluster.api.clone().with_timeouts(ApiTimeouts {
        call: Duration::from_secs(20),
        ..ApiTimeouts::default()
    });
    assert_eq!(patient.min_offset(BROKER, &mq(0)).await.unwrap(), 0);
}

#[tokio::test(start_paused = true)]
async fn consumer_offsets_found_missing_and_updated() {
    let cluster = cluster();
    let query = |queue_id| QueryConsumerOffsetRequestHeader {
        consumer_group: "cg".into(),
        topic: "T".into(),
        queue_id,
        set_zero_if_not_found: Some(false),
        broker_name: Some("broker-a".into()),
    };
    assert_eq!(
        cluster
            .api
            .query_consumer_offset(BROKER, query(0))
            .await
            .unwrap(),
        Some(42)
    );
    assert_eq!(
        cluster
            .api
            .query_consumer_offset(BROKER, query(1))
            .await
            .unwrap(),
        None
    );

    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "cg".into(),
        topic: "T".into(),
        queue_id: 3,
        commit_offset: 77,
        broker_name: Some("broker-a".into()),
    };
    cluster
        .api
        .update_consumer_offset(BROKER, update.clone(), CallMode::Sync)
        .await
        .unwrap();
    assert!(
        !cluster
            .last(RequestCode::UPDATE_CONSUMER_OFFSET)
            .is_oneway()
    );
    cluster.log.lock().unwrap().clear();
    cluster
        .api
        .update_consumer_offset(BROKER, update, CallMode::Oneway)
        .await
        .unwrap();
    let sent = cluster.received(RequestCode::UPDATE_CONSUMER_OFFSET).await;
    assert!(sent.is_oneway());
    assert_eq!(sent.ext_fields["commitOffset"], "77");
}

#[tokio::test(start_paused = true)]
async fn queue_bounds_and_time_lookups_carry_the_broker_name() {
    let cluster = cluster();
    assert_eq!(cluster.api.max_offset(BROKER, &mq(2)).await.unwrap(), 1000);
    let sent = cluster.last(RequestCode::GET_MAX_OFFSET);
    assert_eq!(sent.ext_fields["queueId"], "2");
    assert_eq!(sent.ext_fields["bname"], "broker-a");
    assert_eq!(sent.ext_fields["committed"], "true");

    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let offset = cluster
        .api
        .search_offset(BROKER, &mq(1), at, BoundaryType::Upper)
        .await
        .unwrap();
    assert_eq!(offset, 1_700_000_000);
    let sent = cluster.last(RequestCode::SEARCH_OFFSET_BY_TIMESTAMP);
    assert_eq!(sent.ext_fields["timestamp"], "1700000000000");
    assert!(sent.ext_fields["boundaryType"].eq_ignore_ascii_case("upper"));

    let earliest = cluster
        .api
        .earliest_store_time(BROKER, &mq(1))
        .await
        .unwrap();
    assert_eq!(
        earliest,
        Some(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123))
    );
}

#[tokio::test(start_paused = true)]
async fn view_decodes_the_record_and_send_reads_the_answer() {
    let cluster = cluster();
    let ext = cluster
        .api
        .view_message(BROKER, Some("T"), 4096)
        .await
        .unwrap();
    assert_eq!(ext.message.topic, "T");
    assert_eq!(&ext.message.body[..], b"hello");
    assert_eq!(ext.queue_offset, 7);
    assert_eq!(
        cluster.last(RequestCode::VIEW_MESSAGE_BY_ID).ext_fields["offset"],
        "4096"
    );

    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "T".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 3,
        ..SendMessageRequestHeader::default()
    };
    let sent = cluster
        .api
        .send_message(
            BROKER,
            SendMessage::new(header, "body"),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    assert_eq!(sent.status, SendStatus::SendOk);
    assert_eq!(sent.header.queue_id, 3);
    assert_eq!(sent.header.queue_offset, 5);
}

#[tokio::test(start_paused = true)]
async fn group_members_and_queue_locks() {
    let cluster = cluster();
    assert_eq!(
        cluster.api.consumer_list(BROKER, "cg").await.unwrap(),
        ["c1", "c2"]
    );
    assert_eq!(
        cluster
            .last(RequestCode::GET_CONSUMER_LIST_BY_GROUP)
            .ext_fields["consumerGroup"],
        "cg"
    );
    let body = LockBatchRequestBody {
        client_id: "c1".into(),
        consumer_group: "cg".into(),
        mq_set: [mq(0), mq(1)].into(),
        only_this_broker: false,
    };
    let locked = cluster.api.lock_batch(BROKER, body).await.unwrap();
    assert_eq!(locked, BTreeSet::from([mq(0)]));
}

/// Java's `RebalanceImpl` gives queue locks and unlocks 1 s, not the 3 s of
/// other calls.
#[tokio::test(start_paused = true)]
async fn queue_locks_and_unlocks_time_out_after_a_second() {
    let cluster = cluster();
    let lock = LockBatchRequestBody {
        client_id: "c1".into(),
        consumer_group: "slow".into(),
        mq_set: [mq(0)].into(),
        only_this_broker: false,
    };
    let timed_out = |err: KernelError| matches!(err, KernelError::Remoting(RemotingError::Timeout { after, .. }) if after == Duration::from_secs(1));
    let err = cluster.api.lock_batch(BROKER, lock).await.unwrap_err();
    assert!(timed_out(err));
    let unlock = UnlockBatchRequestBody {
        client_id: "c1".into(),
        consumer_group: "slow".into(),
        mq_set: [mq(0)].into(),
        only_this_broker: false,
    };
    let err = (cluster.api)
        .unlock_batch(BROKER, unlock, CallMode::Sync)
        .await
        .unwrap_err();
    assert!(timed_out(err));
}

#[tokio::test(start_paused = true)]
async fn unreachable_broker_is_a_retriable_connection_error() {
    let cluster = cluster();
    let err = cluster
        .api
        .max_offset("nobody:10911", &mq(0))
        .await
        .unwrap_err();
    assert!(err.is_retriable(), "{err:?}");
    assert!(matches!(err, KernelError::Remoting(e) if e.is_connection_error()));
}

/// Dials every address on a memory network but one, whose dials never end
/// (a host that drops packets).
struct DeadAddr {
    net: MemoryNetwork,
    dead: &'static str,
}

impl rocketmq_remoting::transport::Transport for DeadAddr {
    fn connect<'a>(
        &'a self,
        addr: &'a str,
    ) -> futures::future::BoxFuture<'a, std::io::Result<rocketmq_remoting::transport::BoxedIo>>
    {
        if addr == self.dead {
            Box::pin(std::future::pending())
        } else {
            self.net.connect(addr)
        }
    }
}

/// Nameservers that drop packets or never answer: a route lookup has one
/// budget for all of them, and one that did not answer is passed over by
/// the next call, which goes straight to the one that answers. The
/// nameserver service used to give each address a whole timeout, so the
/// API's own timer cut it short before it could pass the silent one over,
/// and every call waited on it again.
#[tokio::test(start_paused = true)]
async fn a_silent_nameserver_behind_a_dead_one_is_passed_over() {
    const DEAD: &str = "ns-dead:9876";
    const HUNG: &str = "ns-hung:9876";
    let net = MemoryNetwork::new();
    let log = Log::default();
    let _good = Server::spawn(
        net.bind(NAMESRV).unwrap(),
        ConnectionConfig::default(),
        fake_peer(Arc::clone(&log)),
    );
    let _hung = Server::spawn(
        net.bind(HUNG).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| {
                std::future::pending::<Result<RemotingCommand, RemotingError>>()
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(DeadAddr { net, dead: DEAD })
        .build();
    let connector = rocketmq_kernel::api::RemotingConnector::new(
        client,
        vec![DEAD.into(), HUNG.into(), NAMESRV.into()],
    );
    let _ = connector.name_servers().clone().starting_at(0);
    let api = RemotingBrokerApi::with_connector(connector);

    let start = tokio::time::Instant::now();
    assert!(api.topic_route("T").await.is_err());
    assert!(
        start.elapsed() <= Duration::from_millis(3_100),
        "{:?}",
        start.elapsed()
    );
    let start = tokio::time::Instant::now();
    let route = api.topic_route("T").await.unwrap();
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "straight to the nameserver that answers"
    );
}
