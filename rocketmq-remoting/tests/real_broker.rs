//! Against a real nameserver and broker: route, send, pull back, with the typed
//! calls, in both header serializations.
//!
//! Skipped (and says so) unless `ROCKETMQ_NAMESRV_ADDR` names a nameserver, e.g.
//! after `scripts/real-cluster.sh start`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use rocketmq_model::message::sysflag::pull as pull_sys_flag;
use rocketmq_model::message::{Message, UniqueIdGenerator, decode_records, property};
use rocketmq_model::route::{AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};
use rocketmq_remoting::call::execute;
use rocketmq_remoting::calls::{GetRouteInfo, PullMessage, PullStatus, SendMessage, SendStatus};
use rocketmq_remoting::client::RemotingClient;
use rocketmq_remoting::{RemotingError, SerializeType};

const DEADLINE: Duration = Duration::from_secs(20);

fn namesrv_addrs() -> Option<Vec<String>> {
    let addrs = std::env::var("ROCKETMQ_NAMESRV_ADDR").ok()?;
    let addrs: Vec<String> = addrs
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

fn now_millis() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

#[tokio::test]
async fn route_send_and_pull_back_json() {
    round_trip(SerializeType::Json).await;
}

#[tokio::test]
async fn route_send_and_pull_back_rocketmq_binary() {
    round_trip(SerializeType::RocketMq).await;
}

async fn round_trip(serialize_type: SerializeType) {
    let Some(addrs) = namesrv_addrs() else {
        // Straight to stderr: the test harness hides `eprintln!` output of passing tests.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: ROCKETMQ_NAMESRV_ADDR is not set (run scripts/real-cluster.sh start)"
        );
        return;
    };
    let client = RemotingClient::builder()
        .serialize_type(serialize_type)
        .build();
    let mut namesrv = client.name_server_service(addrs);

    // The auto-create template route names a broker to send to.
    let template = execute(&mut namesrv, GetRouteInfo::new(AUTO_CREATE_TOPIC))
        .await
        .expect("route of TBW102");
    let broker = template
        .broker_datas
        .first()
        .expect("TBW102 is served by at least one broker");
    let broker_addr = broker.master_addr().expect("a master address").to_owned();

    // Send through auto-creation: the topic exists once the broker stores it.
    let topic = format!("RustRemotingInterop_{}", serialize_type.name());
    let uniq_key = UniqueIdGenerator::new(None).next_id();
    let body = format!("hello over {}", serialize_type.name());
    let mut message = Message::builder(topic.as_str())
        .body(body.clone())
        .tags("TagA")
        .keys(["order-1", "order-2"])
        .build()
        .expect("a valid message");
    // Set as a producer does (the builder keeps reserved names for the
    // client).
    message
        .properties
        .insert(property::UNIQ_KEY, uniq_key.as_str())
        .expect("a valid UNIQ_KEY");
    let header = SendMessageRequestHeader {
        producer_group: "rust-remoting-interop".into(),
        topic: topic.as_str().into(),
        default_topic: AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
        queue_id: 0,
        born_timestamp: now_millis(),
        properties: Some(message.properties.encode()),
        ..Default::default()
    };
    let sent = client
        .invoke_call(
            &broker_addr,
            SendMessage::new(header, message.body().clone()),
            DEADLINE,
        )
        .await
        .expect("send to the broker");
    assert_eq!(sent.status, SendStatus::SendOk);
    assert_eq!(sent.header.queue_id, 0);

    // Pull it back from the offset the broker gave it.
    let found = pull_until_found(&client, &broker_addr, &topic, sent.header.queue_offset).await;
    let ours = found
        .iter()
        .find(|m| m.property(property::UNIQ_KEY) == Some(uniq_key.as_str()))
        .expect("the pulled batch holds the sent message");
    assert_eq!(ours.body().as_ref(), body.as_bytes());
    assert_eq!(ours.topic(), topic);
    assert_eq!(ours.tags(), Some("TagA"));
    assert_eq!(ours.keys().collect::<Vec<_>>(), ["order-1", "order-2"]);
    assert_eq!(ours.queue_offset, sent.header.queue_offset);
    assert_eq!(ours.offset_msg_id(), sent.header.msg_id);

    // The new topic's route reaches the nameserver with the broker's next registration.
    let route = wait_for_route(&mut namesrv, &topic).await;
    assert!(
        route
            .queue_datas
            .iter()
            .any(|q| q.broker_name == broker.broker_name)
    );
    client.shutdown().await;
}

async fn pull_until_found(
    client: &RemotingClient,
    broker_addr: &str,
    topic: &str,
    offset: i64,
) -> Vec<rocketmq_model::message::MessageExt> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let header = PullMessageRequestHeader {
            consumer_group: "rust-remoting-interop-cg".into(),
            topic: topic.into(),
            queue_id: 0,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: pull_sys_flag::SUBSCRIPTION | pull_sys_flag::SUSPEND,
            suspend_timeout_millis: 1_000,
            subscription: Some("*".into()),
            sub_version: now_millis(),
            expression_type: Some("TAG".into()),
            ..Default::default()
        };
        let pulled = client
            .invoke_call(broker_addr, PullMessage(header), DEADLINE)
            .await
            .expect("pull from the broker");
        if pulled.status == PullStatus::Found {
            return decode_records(pulled.body).expect("pulled records decode");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message at offset {offset} within {DEADLINE:?}: last status {:?}",
            pulled.status
        );
    }
}

async fn wait_for_route(
    namesrv: &mut rocketmq_remoting::client::NameServerService,
    topic: &str,
) -> rocketmq_model::route::TopicRouteData {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    // Not registered until the broker's next registration: poll until the deadline.
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    loop {
        poll.tick().await;
        match execute(namesrv, GetRouteInfo::new(topic)).await {
            Ok(route) => return route,
            Err(RemotingError::Response { .. }) if tokio::time::Instant::now() < deadline => {}
            Err(err) => panic!("route of {topic}: {err}"),
        }
    }
}
