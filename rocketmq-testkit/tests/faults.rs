//! Fault injection: failed and delayed responses, dropped connections,
//! forgotten brokers, and broker stop and restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rocketmq_model::header::{QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader};
use rocketmq_model::{MessageQueue, RequestCode, ResponseCode};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::{
    PullMessage, PullStatus, QueryConsumerOffset, SendMessage, UpdateConsumerOffset,
};
use rocketmq_testkit::TestCluster;
use tokio::time::Instant;

const ADDR: &str = "broker-a:10911";

async fn try_send(client: &TestClient, addr: &str, body: &str) -> Result<i64, RemotingError> {
    let m = message("T", body, "a");
    let sent = client
        .call(addr, SendMessage::new(send_header(&m, 0), m.body.clone()))
        .await?;
    Ok(sent.header.queue_offset)
}

#[tokio::test(start_paused = true)]
async fn requests_fail_with_the_chosen_code_n_times() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    cluster
        .broker(0)
        .fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 2);
    for _ in 0..2 {
        let err = try_send(&client, ADDR, "x").await.unwrap_err();
        assert_eq!(err.response_code(), Some(ResponseCode::SYSTEM_BUSY));
    }
    assert_eq!(
        try_send(&client, ADDR, "x").await.unwrap(),
        0,
        "the failed sends stored nothing"
    );
    assert_eq!(
        try_send(&client, "broker-b:10911", "y").await.unwrap(),
        0,
        "other brokers unaffected"
    );

    cluster.fail_requests(
        RequestCode::SEND_MESSAGE_V2,
        ResponseCode::SERVICE_NOT_AVAILABLE,
        1,
    );
    let err = try_send(&client, "broker-b:10911", "z").await.unwrap_err();
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::SERVICE_NOT_AVAILABLE)
    );
    assert!(
        try_send(&client, ADDR, "w").await.is_ok(),
        "a cluster-wide fault is used once"
    );

    cluster.fail_namesrv_requests(
        RequestCode::GET_ROUTEINFO_BY_TOPIC,
        ResponseCode::SYSTEM_ERROR,
        1,
    );
    assert_eq!(
        client.route("T").await.unwrap_err().response_code(),
        Some(ResponseCode::SYSTEM_ERROR)
    );
    assert!(client.route("T").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn responses_to_a_code_are_delayed() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    cluster
        .broker(0)
        .delay_responses(RequestCode::SEND_MESSAGE_V2, Duration::from_secs(2));
    let start = Instant::now();
    try_send(&client, ADDR, "slow").await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    let start = Instant::now();
    client.route("T").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    cluster.broker(0).clear_faults();
    let start = Instant::now();
    try_send(&client, ADDR, "fast").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn dropped_connections_fail_held_calls_and_clients_reconnect() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call(
                    ADDR,
                    rocketmq_remoting::calls::PullMessage(pull_header(
                        "g",
                        "T",
                        0,
                        0,
                        true,
                        Some("*"),
                    )),
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.broker(0).drop_connections().await;
    let err = within(held).await.unwrap().unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    assert_eq!(
        try_send(&client, ADDR, "again").await.unwrap(),
        0,
        "a new connection works"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_one_clients_connections_is_a_member_leaving() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let stays = TestClient::new(&cluster);
    let dropped = TestClient::new(&cluster);
    stays
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    dropped
        .heartbeat(ADDR, consumer_heartbeat("c2", "g", "T", "*"))
        .await;
    assert_eq!(cluster.broker(0).drop_client_connections("c2"), 1);
    within(async {
        while cluster.broker(0).groups().consumers[0].client_ids.len() > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let notify = RequestCode::NOTIFY_CONSUMER_IDS_CHANGED.0;
    within(async {
        while stays
            .received_codes()
            .iter()
            .filter(|&&c| c == notify)
            .count()
            < 3
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_forgotten_broker_leaves_the_routes_until_it_restarts() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    assert!(cluster.forget_broker("broker-a"));
    let route = client.route("T").await.unwrap();
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].broker_name, "broker-b");
    assert!(
        try_send(&client, ADDR, "still serving").await.is_ok(),
        "the broker itself still runs"
    );
    cluster.broker(0).restart().await.unwrap();
    assert_eq!(client.route("T").await.unwrap().broker_datas.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_messages_and_offsets_but_not_connections() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    try_send(&client, ADDR, "kept").await.unwrap();
    client
        .heartbeat(ADDR, consumer_heartbeat("c1", "g", "T", "*"))
        .await;
    let update = UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "T".into(),
        queue_id: 0,
        commit_offset: 1,
        broker_name: None,
    });
    client.call(ADDR, update).await.unwrap();

    let broker = cluster.broker(0);
    broker.stop().await;
    assert!(!broker.is_running().await);
    let err = try_send(&client, ADDR, "refused").await.unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    assert!(
        client.route("T").await.is_err(),
        "the nameserver drops the route of a broker whose connection closed"
    );
    assert_eq!(broker.messages("T", 0).len(), 1);

    broker.restart().await.unwrap();
    assert!(client.route("T").await.is_ok(), "registered again");
    assert!(
        broker.groups().consumers.is_empty(),
        "registrations are gone"
    );
    let pulled = within(async {
        loop {
            // The client may fail fast until its reconnect backoff ends.
            let pull = PullMessage(pull_header("g", "T", 0, 0, false, Some("*")));
            if let Ok(pulled) = client.call(ADDR, pull).await {
                return pulled;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(pulled.status, PullStatus::Found);
    assert_eq!(bodies(&records(&pulled)), ["kept"]);
    let query = QueryConsumerOffset(QueryConsumerOffsetRequestHeader {
        consumer_group: "g".into(),
        topic: "T".into(),
        queue_id: 0,
        set_zero_if_not_found: Some(false),
        broker_name: None,
    });
    assert_eq!(client.call(ADDR, query).await.unwrap(), Some(1));
    assert_eq!(
        try_send(&client, ADDR, "after").await.unwrap(),
        1,
        "offsets continue"
    );
    assert_eq!(
        broker.committed_offset("g", &MessageQueue::new("T", "broker-a", 0)),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_broker_restarts_on_its_port_and_refuses_while_stopped() {
    let cluster = TestCluster::builder().topic("T").start_tcp().await.unwrap();
    let client = TestClient::new(&cluster);
    let addr = cluster.broker(0).addr().to_owned();
    assert_eq!(try_send(&client, &addr, "before").await.unwrap(), 0);
    cluster.broker(0).stop().await;
    let err = try_send(&client, &addr, "refused").await.unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    cluster.broker(0).restart().await.unwrap();
    assert_eq!(cluster.broker(0).addr(), addr);
    let offset = within(async {
        loop {
            // The client re-dials after its backoff.
            if let Ok(offset) = try_send(&client, &addr, "after").await {
                return offset;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(offset, 1);
    cluster.shutdown().await;
}
