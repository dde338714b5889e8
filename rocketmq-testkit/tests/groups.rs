//! Heartbeats, membership notifications, consumer lists, unregistration and
//! queue locks.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use rocketmq_model::body::{
    CheckClientRequestBody, ExpressionType, LockBatchRequestBody, MessageModel, SubscriptionData,
    UnlockBatchRequestBody,
};
use rocketmq_model::header::{GetConsumerListByGroupRequestHeader, UnregisterClientRequestHeader};
use rocketmq_model::{MessageQueue, RequestCode, ResponseCode};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{
    CheckClientConfig, GetConsumerList, LockBatchMq, UnlockBatchMq, Unregister,
};
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";
const NOTIFY: i32 = RequestCode::NOTIFY_CONSUMER_IDS_CHANGED.0;

fn notifies(client: &TestClient) -> usize {
    client
        .received_codes()
        .iter()
        .filter(|&&c| c == NOTIFY)
        .count()
}

/// Waits until `client` got `n` notifications, then a little longer, and
/// answers how many it got.
async fn notified(client: &TestClient, n: usize) -> usize {
    within(async {
        while notifies(client) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    notifies(client)
}

fn list(group: &str) -> GetConsumerList {
    GetConsumerList(GetConsumerListByGroupRequestHeader {
        consumer_group: group.into(),
        broker_name: None,
    })
}

#[tokio::test(start_paused = true)]
async fn membership_changes_notify_every_remaining_member() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let first = TestClient::new(&cluster);
    let second = TestClient::new(&cluster);

    first
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    assert_eq!(
        notified(&first, 1).await,
        1,
        "the joining member is told too"
    );
    let notify = first.wait_for(NOTIFY).await;
    assert_eq!(notify.ext_fields["consumerGroup"], "g");
    assert!(notify.is_oneway());

    first
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    assert_eq!(
        notified(&first, 1).await,
        1,
        "an unchanged heartbeat notifies nobody"
    );

    second
        .heartbeat(ADDR, consumer_heartbeat("c2", "g", "T", "*"))
        .await;
    assert_eq!(
        (notified(&first, 2).await, notified(&second, 1).await),
        (2, 1)
    );
    let mut ids = first.call(ADDR, list("g")).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["c1", "c2"]);

    let unregister = Unregister(UnregisterClientRequestHeader {
        client_id: "c2".into(),
        producer_group: None,
        consumer_group: Some("g".into()),
        broker_name: None,
    });
    second.call(ADDR, unregister).await.unwrap();
    assert_eq!(first.call(ADDR, list("g")).await.unwrap(), ["c1"]);
    assert_eq!(notified(&first, 3).await, 3);
    assert_eq!(notifies(&second), 1, "the member that left is not told");

    // A closed connection counts as leaving.
    second
        .heartbeat(ADDR, consumer_heartbeat("c2", "g", "T", "*"))
        .await;
    assert_eq!(notified(&first, 4).await, 4);
    second.remoting.shutdown().await;
    assert_eq!(notified(&first, 5).await, 5);
    assert_eq!(first.call(ADDR, list("g")).await.unwrap(), ["c1"]);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_register_groups_clients_and_retry_topics() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let mut data = consumer_heartbeat("c1", "g", "T", "a || b");
    data.producer_data_set = producer_heartbeat("c1", "pg").producer_data_set;
    client.heartbeat(ADDR, data).await;
    let broker = cluster.broker(0);
    let groups = broker.groups();
    assert_eq!(groups.producers[0].group, "pg");
    assert_eq!(groups.consumers[0].client_ids, ["c1"]);
    assert_eq!(groups.consumers[0].subscriptions[0].sub_string, "a || b");
    let clients = broker.clients();
    assert_eq!(clients.len(), 1);
    assert_eq!(
        (
            clients[0].producer_groups.clone(),
            clients[0].consumer_groups.clone()
        ),
        (vec!["pg".to_owned()], vec!["g".to_owned()])
    );
    assert!(broker.topic("%RETRY%g").is_some());
    assert!(client.route("%RETRY%g").await.is_ok());

    let err = client.call(ADDR, list("other")).await.unwrap_err();
    assert_eq!(err.response_code(), Some(ResponseCode::SYSTEM_ERROR));
}

#[tokio::test(start_paused = true)]
async fn queue_locks_are_exclusive_and_lapse_after_60_seconds() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let queues: BTreeSet<MessageQueue> = (0..2)
        .map(|i| MessageQueue::new("T", "broker-a", i))
        .collect();
    let lock = |client_id: &str, mq_set: BTreeSet<MessageQueue>| {
        LockBatchMq(LockBatchRequestBody {
            client_id: client_id.into(),
            consumer_group: "g".into(),
            mq_set,
            only_this_broker: false,
        })
    };
    assert_eq!(
        client.call(ADDR, lock("c1", queues.clone())).await.unwrap(),
        queues
    );
    assert!(
        client
            .call(ADDR, lock("c2", queues.clone()))
            .await
            .unwrap()
            .is_empty()
    );

    let first: BTreeSet<MessageQueue> = queues.iter().take(1).cloned().collect();
    let unlock = UnlockBatchMq(UnlockBatchRequestBody {
        client_id: "c1".into(),
        consumer_group: "g".into(),
        mq_set: first.clone(),
        only_this_broker: false,
    });
    client.call(ADDR, unlock).await.unwrap();
    assert_eq!(
        client.call(ADDR, lock("c2", queues.clone())).await.unwrap(),
        first
    );

    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        client.call(ADDR, lock("c3", queues.clone())).await.unwrap(),
        queues
    );
    assert_eq!(
        cluster
            .broker(0)
            .lock_holder("g", &queues.iter().next().unwrap().clone())
            .as_deref(),
        Some("c3")
    );
}

#[tokio::test(start_paused = true)]
async fn broadcasting_groups_are_not_notified() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let first = TestClient::new(&cluster);
    let second = TestClient::new(&cluster);
    for (client, id) in [(&first, "c1"), (&second, "c2")] {
        let mut data = consumer_heartbeat(id, "b", "T", "*");
        data.consumer_data_set[0].message_model = MessageModel::Broadcasting;
        client.heartbeat(ADDR, data).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((notifies(&first), notifies(&second)), (0, 0));
    assert_eq!(first.call(ADDR, list("b")).await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn v2_heartbeats_may_leave_out_unchanged_subscriptions() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let send = |data: rocketmq_model::HeartbeatData| {
        let client = client.clone();
        async move {
            let body = data.encode().unwrap();
            let cmd = rocketmq_remoting::RemotingCommand::request(RequestCode::HEART_BEAT)
                .with_body(body);
            let response = client
                .remoting
                .invoke(ADDR, cmd, CALL_TIMEOUT)
                .await
                .unwrap();
            assert_eq!(response.ext_fields["IS_SUPPORT_HEART_BEAT_V2"], "true");
            response.ext_fields["IS_SUB_CHANGE"].clone()
        }
    };
    let mut full = consumer_heartbeat("c1", "g", "T", "a");
    full.heartbeat_fingerprint = 5;
    assert_eq!(send(full.clone()).await, "false");
    let mut light = full.clone();
    light.without_sub = true;
    light.consumer_data_set[0].subscription_data_set.clear();
    assert_eq!(send(light.clone()).await, "false");
    let groups = cluster.broker(0).groups();
    assert_eq!(groups.consumers[0].subscriptions.len(), 1, "kept");
    light.heartbeat_fingerprint = 6;
    assert_eq!(
        send(light).await,
        "true",
        "the client must send its subscriptions"
    );
}

fn check(topic: &str, expression: &str, kind: ExpressionType) -> CheckClientConfig {
    CheckClientConfig(CheckClientRequestBody {
        client_id: "c1".into(),
        group: "g".into(),
        subscription_data: SubscriptionData::from_expression(topic, expression, kind).unwrap(),
    })
}

fn refusal(result: Result<(), RemotingError>, expected: ResponseCode) -> String {
    match result {
        Err(RemotingError::Response { code, remark, .. }) => {
            assert_eq!(code, expected);
            remark
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn check_client_config_answers_like_a_java_broker() {
    let plain = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&plain);
    client
        .call(ADDR, check("T", "a || b", ExpressionType::Tag))
        .await
        .unwrap();
    let remark = refusal(
        client
            .call(ADDR, check("T", "a > 1", ExpressionType::Sql92))
            .await,
        ResponseCode::SYSTEM_ERROR,
    );
    assert_eq!(
        remark,
        "The broker does not support consumer to filter message by SQL92"
    );

    let filtering = TestCluster::builder()
        .topic("T")
        .property_filter(true)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&filtering);
    client
        .call(ADDR, check("T", "a > 1 AND b = 'x'", ExpressionType::Sql92))
        .await
        .unwrap();
    let remark = refusal(
        client
            .call(ADDR, check("T", "a >", ExpressionType::Sql92))
            .await,
        // Java's ClientManageProcessor.checkClientConfig, 4.9 to 5.3.
        ResponseCode::SUBSCRIPTION_PARSE_FAILED,
    );
    assert!(remark.contains("does not compile"), "{remark}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_heartbeating_is_dropped_after_the_expiry() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let alive = TestClient::new(&cluster);
    let silent = TestClient::new(&cluster);
    alive
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    silent
        .heartbeat(ADDR, consumer_heartbeat("c2", "g", "T", "*"))
        .await;
    assert_eq!(notified(&alive, 2).await, 2);
    let (conn, _) = silent.remoting.connection(ADDR).await.unwrap();

    // The live member heartbeats every 30 s, as clients do; the other stops
    // heartbeating but keeps its connection busy (say its heartbeat task
    // died while it pulls), so neither end closes it as idle. Nothing
    // happens before 120 s without a heartbeat.
    let busy = || async { silent.call(ADDR, list("g")).await.unwrap() };
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        alive
            .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
            .await;
        busy().await;
    }
    let mut ids = alive.call(ADDR, list("g")).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["c1", "c2"]);
    assert!(!conn.is_closed());

    // Past 120 s (the next scan, at most 10 s later), the broker drops the
    // silent member and closes its connection, but tells no one: Java's
    // scanNotActiveChannel removes the member before the close, so the
    // close finds nothing to notify about (the rest of the group rebalances
    // at its next periodic rebalance).
    tokio::time::sleep(Duration::from_secs(30)).await;
    alive
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    busy().await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(conn.is_closed(), "the silent client's connection is closed");
    assert_eq!(alive.call(ADDR, list("g")).await.unwrap(), ["c1"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(notifies(&alive), 2, "no notification for an expiry");
}
