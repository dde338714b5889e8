//! Message lookup (view by id, query by key, topic creation) and the admin
//! calls a broker makes toward its clients.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use rocketmq_model::body::{
    ConsumeMessageDirectlyResult, ConsumeResult, GetConsumerStatusBody, ResetOffsetBody,
};
use rocketmq_model::header::{
    CreateTopicRequestHeader, GetConsumerRunningInfoRequestHeader, QueryMessageRequestHeader,
    UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader,
};
use rocketmq_model::{
    ConsumerRunningInfo, Message, MessageQueue, OffsetMessageId, RequestCode, ResponseCode,
    decode_records,
};
use rocketmq_remoting::RemotingCommand;
use rocketmq_remoting::calls::{CreateTopic, QueryMessage, UpdateConsumerOffset, ViewMessage};
use rocketmq_testkit::{TestCluster, TestkitError};

const ADDR: &str = "broker-a:10911";

#[tokio::test(start_paused = true)]
async fn messages_are_found_by_offset_id_and_by_key() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let mut keyed = Message::builder("T")
        .body("k")
        .keys(["order-1", "customer-7"])
        .build()
        .unwrap();
    keyed.properties.insert("UNIQ_KEY", "U1").unwrap();
    client
        .send("broker-b:10911", &message("T", "padding", "a"), 0)
        .await;
    let sent = client.send("broker-b:10911", &keyed, 0).await;

    // The offset id names the store host; in memory mode that address reaches the broker too.
    let id = OffsetMessageId::parse(&sent.header.msg_id).unwrap();
    let view = ViewMessage(ViewMessageRequestHeader {
        topic: Some("T".into()),
        offset: id.commit_log_offset,
    });
    let body = client
        .call(&id.store_host.to_string(), view.clone())
        .await
        .unwrap();
    assert_eq!(bodies(&decode_records(body).unwrap()), ["k"]);
    let missing = ViewMessage(ViewMessageRequestHeader {
        topic: None,
        offset: 1,
    });
    let err = client.call("broker-b:10911", missing).await.unwrap_err();
    assert_eq!(err.response_code(), Some(ResponseCode::SYSTEM_ERROR));

    let query = |key: &str, unique| {
        QueryMessage(QueryMessageRequestHeader {
            topic: "T".into(),
            key: key.into(),
            max_num: 32,
            begin_timestamp: 0,
            end_timestamp: i64::MAX,
            unique_key_query: unique,
            broker_name: None,
        })
    };
    for (key, unique) in [("order-1", false), ("customer-7", false), ("U1", true)] {
        let found = client
            .call("broker-b:10911", query(key, unique))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bodies(&decode_records(found.body).unwrap()), ["k"], "{key}");
        assert!(found.header.index_last_update_phyoffset >= id.commit_log_offset);
    }
    assert!(
        client
            .call("broker-b:10911", query("nothing", false))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        client
            .call(ADDR, query("order-1", false))
            .await
            .unwrap()
            .is_none(),
        "another broker's index"
    );
}

#[tokio::test(start_paused = true)]
async fn an_admin_creates_topics_that_are_routed_at_once() {
    let cluster = TestCluster::builder()
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let header = CreateTopicRequestHeader::new("Created", 2);
    client.call(ADDR, CreateTopic(header)).await.unwrap();
    let route = client.route("Created").await.unwrap();
    assert_eq!(route.queue_datas[0].write_queue_nums, 2);
    client.send(ADDR, &message("Created", "x", "a"), 1).await;
}

/// Java's `AdminBrokerProcessor.updateAndCreateTopic`: an invalid name and
/// a system topic (5.1+, `validateSystemTopicWhenUpdateTopic`) are refused
/// with INVALID_PARAMETER and never routed.
#[tokio::test(start_paused = true)]
async fn an_admin_may_not_create_invalid_or_system_topics() {
    let cluster = TestCluster::builder().build().await.unwrap();
    let client = TestClient::new(&cluster);
    for topic in [
        "bad topic",
        "RMQ_SYS_TRACE_TOPIC",
        "rmq_sys_mine",
        "SCHEDULE_TOPIC_XXXX",
        "DefaultCluster",
        "broker-a",
        "DefaultCluster_REPLY_TOPIC",
    ] {
        let header = CreateTopicRequestHeader::new(topic, 2);
        let refused = client.call(ADDR, CreateTopic(header)).await.unwrap_err();
        assert_eq!(
            refused.response_code(),
            Some(ResponseCode::INVALID_PARAMETER),
            "{topic}: {refused}"
        );
    }
    assert!(client.route("RMQ_SYS_TRACE_TOPIC").await.is_err());
    assert!(cluster.broker(0).topic("rmq_sys_mine").is_none());
}

/// A consumer answering the admin requests as a client would.
fn consumer(cluster: &TestCluster) -> TestClient {
    let answer = Arc::new(|req: &RemotingCommand| {
        let ok = RemotingCommand::response(ResponseCode::SUCCESS, 0);
        match req.request_code() {
            RequestCode::GET_CONSUMER_RUNNING_INFO => {
                let mut info = ConsumerRunningInfo::default();
                info.properties
                    .insert("PROP_CONSUME_TYPE".into(), "CONSUME_PASSIVELY".into());
                ok.with_body(info.encode().unwrap())
            }
            RequestCode::GET_CONSUMER_STATUS_FROM_CLIENT => {
                let mut body = GetConsumerStatusBody::default();
                body.message_queue_table
                    .insert(MessageQueue::new("T", "broker-a", 0), 5);
                ok.with_body(body.encode().unwrap())
            }
            RequestCode::CONSUME_MESSAGE_DIRECTLY => {
                let records = decode_records(req.body.clone()).unwrap();
                let result = ConsumeMessageDirectlyResult {
                    consume_result: Some(ConsumeResult::Success),
                    remark: Some(String::from_utf8_lossy(&records[0].message.body).into_owned()),
                    ..ConsumeMessageDirectlyResult::default()
                };
                ok.with_body(result.encode().unwrap())
            }
            _ => ok,
        }
    });
    TestClient::answering(cluster, answer)
}

#[tokio::test(start_paused = true)]
async fn admin_calls_reach_the_client_over_its_connection() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = consumer(&cluster);
    client
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    let broker = cluster.broker(0);

    let info = broker
        .consumer_running_info("g", "c1", false)
        .await
        .unwrap();
    assert_eq!(info.properties["PROP_CONSUME_TYPE"], "CONSUME_PASSIVELY");
    let asked = client
        .wait_for(RequestCode::GET_CONSUMER_RUNNING_INFO.0)
        .await;
    let header: GetConsumerRunningInfoRequestHeader = asked.decode_header().unwrap();
    assert_eq!(
        (header.consumer_group.as_str(), header.client_id.as_str()),
        ("g", "c1")
    );
    let missing = broker
        .consumer_running_info("g", "c9", false)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, TestkitError::ClientNotFound { .. }),
        "{missing:?}"
    );

    let status = broker.consumer_status("g", "T").await.unwrap();
    assert_eq!(status["c1"][&MessageQueue::new("T", "broker-a", 0)], 5);

    let sent = client.send(ADDR, &message("T", "direct", "a"), 0).await;
    let result = broker
        .consume_message_directly("g", "c1", &sent.header.msg_id)
        .await
        .unwrap();
    assert_eq!(result.consume_result, Some(ConsumeResult::Success));
    assert_eq!(result.remark.as_deref(), Some("direct"));
}

#[tokio::test(start_paused = true)]
async fn a_reset_pushes_offsets_to_every_consumer() {
    let cluster = TestCluster::builder()
        .queues(2, 2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let client = consumer(&cluster);
    client
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    for body in ["a", "b", "c"] {
        client.send(ADDR, &message("T", body, "a"), 0).await;
    }
    let commit = |queue_id| {
        UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
            consumer_group: "g".into(),
            topic: "T".into(),
            queue_id,
            commit_offset: 1,
            broker_name: None,
        })
    };
    client.call(ADDR, commit(0)).await.unwrap();
    let broker = cluster.broker(0);
    let err = broker.reset_offset("g", "T", -1, true).await.unwrap_err();
    assert!(
        matches!(err, TestkitError::NoCommittedOffset { queue_id: 1, .. }),
        "{err:?}"
    );
    client.call(ADDR, commit(1)).await.unwrap();
    let table = broker.reset_offset("g", "T", -1, true).await.unwrap();
    let expected: BTreeMap<MessageQueue, i64> = [
        (MessageQueue::new("T", "broker-a", 0), 3),
        (MessageQueue::new("T", "broker-a", 1), 0),
    ]
    .into();
    assert_eq!(table, expected);
    let pushed = client
        .wait_for(RequestCode::RESET_CONSUMER_CLIENT_OFFSET.0)
        .await;
    assert!(pushed.is_oneway());
    assert_eq!(pushed.ext_fields["isForce"], "true");
    assert_eq!(
        ResetOffsetBody::decode(&pushed.body).unwrap().offset_table,
        expected
    );

    let unforced = broker.reset_offset("g", "T", 0, false).await.unwrap();
    assert_eq!(
        unforced[&MessageQueue::new("T", "broker-a", 0)],
        0,
        "earlier than the committed offset"
    );
    let err = broker
        .reset_offset("nobody", "T", -1, true)
        .await
        .unwrap_err();
    assert!(matches!(err, TestkitError::GroupNotOnline(_)));
}
