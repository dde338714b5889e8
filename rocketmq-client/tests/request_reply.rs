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
use rocketmq_model::{Message, MessageExt, MessageQueue, RequestCode};
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

/// Java sends a request as an async send, so it is resent after a lost
/// attempt as often as an async send is (`retry_times_when_send_async_failed`),
/// whatever the sync sends' count.
#[tokio::test(start_paused = true)]
async fn a_request_is_resent_as_often_as_an_async_send() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let requester = Producer::builder()
        .client_config(config(&cluster, "resent_requester"))
        .producer_group("req_pg")
        .retry_times_when_send_failed(0)
        .retry_times_when_send_async_failed(1)
        .build()
        .await
        .unwrap();
    let replier = producer(&cluster, "resent_replier", "rep_pg").await;
    // The requester knows broker-a, which then goes away: an attempt
    // there fails to connect, and the request must go on to broker-b.
    requester.fetch_publish_queues("T").await.unwrap();
    cluster.broker_named("broker-a").unwrap().stop().await;
    let broker_b = cluster.broker_named("broker-b").unwrap();
    let stored = || -> Vec<MessageExt> { (0..4).flat_map(|q| broker_b.messages("T", q)).collect() };
    // Round robin over 8 queues, 4 on each broker: some of 8 requests
    // start at broker-a.
    for i in 0..8 {
        let ping = Message::builder("T")
            .body(format!("ping {i}"))
            .build()
            .unwrap();
        let mine = |m: &MessageExt| m.message.body == format!("ping {i}").as_bytes();
        let answer = async {
            wait_until("the request is stored", Duration::from_secs(5), || {
                stored().iter().any(mine)
            })
            .await;
            let request = stored().into_iter().find(mine).unwrap();
            let reply = create_reply_message(&request.message, "pong").unwrap();
            replier.send(reply).await.unwrap();
        };
        let (got, ()) = tokio::join!(requester.request(ping, Duration::from_secs(10)), answer);
        assert_eq!(&got.unwrap().message.body[..], b"pong", "request {i}");
    }
    requester.shutdown().await;
    replier.shutdown().await;
    cluster.shutdown().await;
}

/// A request to a chosen queue, or to a selector's choice, is stored in
/// that queue and gets its reply (Java's `request(msg, mq, timeout)` and
/// `request(msg, selector, arg, timeout)`); a queue of another topic is
/// refused before anything is sent.
#[tokio::test(start_paused = true)]
async fn a_request_to_a_queue_or_a_selectors_choice_lands_there() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let requester = producer(&cluster, "placed_requester", "req_pg").await;
    let replier = producer(&cluster, "placed_replier", "rep_pg").await;
    let chosen = MessageQueue::new("T", "broker-b", 2);
    // The selector sees the 8 queues, 4 a broker, and takes the last.
    let last = |queues: &[MessageQueue], _: &Message| queues.len().checked_sub(1);
    let broker_b = cluster.broker_named("broker-b").unwrap();
    let stored = |queue| broker_b.messages("T", queue);
    for (i, queue_id) in [(0, 2), (1, 3)] {
        let ping = Message::builder("T")
            .body(format!("ping {i}"))
            .build()
            .unwrap();
        let answer = async {
            wait_until("the request is stored", Duration::from_secs(5), || {
                !stored(queue_id).is_empty()
            })
            .await;
            let request = stored(queue_id).remove(0);
            assert_eq!(request.message.body, format!("ping {i}").as_bytes());
            let reply = create_reply_message(&request.message, "pong").unwrap();
            replier.send(reply).await.unwrap();
        };
        let timeout = Duration::from_secs(10);
        let request = async {
            if i == 0 {
                requester.request_to_queue(ping, &chosen, timeout).await
            } else {
                requester.request_with_selector(ping, &last, timeout).await
            }
        };
        let (got, ()) = tokio::join!(request, answer);
        assert_eq!(&got.unwrap().message.body[..], b"pong", "request {i}");
    }
    let elsewhere = MessageQueue::new("U", "broker-b", 2);
    let error = requester
        .request_to_queue(
            Message::builder("T").body("x").build().unwrap(),
            &elsewhere,
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidMessage(_)), "{error}");
    assert_eq!(stored(2).len() + stored(3).len(), 2, "nothing more stored");
    requester.shutdown().await;
    replier.shutdown().await;
    cluster.shutdown().await;
}
