//! Request-reply end to end against the testkit: a replier answers a
//! request with `create_reply_message`, and the requester gets the reply.

#![allow(clippy::unwrap_used)]

#[path = "waiting/mod.rs"]
#[allow(dead_code)]
mod waiting;

use std::time::Duration;

use rocketmq_client::producer::create_reply_message;
use rocketmq_client::{ClientConfig, ClientError, Producer};
use rocketmq_model::message::{property, sysflag};
use rocketmq_model::{Message, MessageExt, RequestCode};
use rocketmq_testkit::TestCluster;
use waiting::wait_until;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

async fn producer(cluster: &TestCluster, instance: &str, group: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group(group)
        .build()
        .await
        .unwrap()
}

/// The requests stored for topic `T`.
fn requests(cluster: &TestCluster) -> Vec<MessageExt> {
    let broker = cluster.broker_named("broker-a").unwrap();
    (0..4)
        .flat_map(|queue| broker.messages("T", queue))
        .collect()
}

/// Sends a request with `ping` and answers it, as a replier would, with
/// `pong`: the request and the reply the requester got. The clients'
/// instance names start with `name`.
async fn round_trip(cluster: &TestCluster, name: &str, pong: &[u8]) -> (MessageExt, MessageExt) {
    let requester = producer(cluster, &format!("{name}_requester"), "req_pg").await;
    let replier = producer(cluster, &format!("{name}_replier"), "rep_pg").await;
    let ping = Message::builder("T").body("ping").build().unwrap();
    let answer = async {
        wait_until("the request is stored", Duration::from_secs(5), || {
            !requests(cluster).is_empty()
        })
        .await;
        let request = requests(cluster).remove(0);
        let reply = create_reply_message(&request.message, pong.to_vec()).unwrap();
        assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
        replier.send(reply).await.unwrap();
        request
    };
    let (got, request) = tokio::join!(requester.request(ping, Duration::from_secs(10)), answer);
    let got = got.unwrap();
    requester.shutdown().await;
    replier.shutdown().await;
    (request, got)
}

#[tokio::test(start_paused = true)]
async fn a_reply_made_from_the_request_reaches_the_requester() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let (request, reply) = round_trip(&cluster, "plain", b"pong").await;
    assert_eq!(&reply.message.body[..], b"pong");
    assert_eq!(reply.message.topic, "DefaultCluster_REPLY_TOPIC");
    assert_eq!(
        reply.message.property(property::CORRELATION_ID),
        request.message.property(property::CORRELATION_ID)
    );
    assert_eq!(
        reply.message.property(property::MSG_TYPE),
        Some(property::MSG_TYPE_REPLY)
    );
    let broker = cluster.broker_named("broker-a").unwrap();
    assert_eq!(reply.store_host, broker.store_host());
    assert!(!reply.born_host.ip().is_unspecified());
    // Sent as Java sends a reply, so the broker pushed it.
    assert_eq!(
        broker.requests_received(RequestCode::SEND_REPLY_MESSAGE_V2),
        1
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_compressed_reply_arrives_inflated() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let body = "a compressible reply ".repeat(1024);
    let (_, reply) = round_trip(&cluster, "zipped", body.as_bytes()).await;
    assert_eq!(&reply.message.body[..], body.as_bytes());
    assert!(!sysflag::has(reply.sys_flag, sysflag::COMPRESSED_FLAG));
    let stored = cluster
        .broker_named("broker-a")
        .unwrap()
        .messages("DefaultCluster_REPLY_TOPIC", 0);
    assert!(
        sysflag::has(stored[0].sys_flag, sysflag::COMPRESSED_FLAG),
        "the replier compressed it"
    );
    cluster.shutdown().await;
}

#[test]
fn only_a_request_can_be_replied_to() {
    let plain = Message::builder("T").body("x").build().unwrap();
    let error = create_reply_message(&plain, "pong").unwrap_err();
    assert!(matches!(error, ClientError::InvalidMessage(_)), "{error}");
}
