//! Recalling timer messages (Java's `recallMessage`, RocketMQ 5.3.1+)
//! against the testkit, on paused time.

#![allow(clippy::unwrap_used)]

#[path = "waiting/mod.rs"]
#[allow(dead_code)]
mod waiting;

use std::time::Duration;

use rocketmq_client::{ClientConfig, ClientError, Producer};
use rocketmq_model::message::RecallHandle;
use rocketmq_model::{Message, MessageExt, ResponseCode};
use rocketmq_testkit::TestCluster;
use waiting::wait_until;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    // A fixed address: looking the host's up takes real time, which paused
    // time would jump over.
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

async fn cluster(recall: bool) -> TestCluster {
    TestCluster::builder()
        .brokers(2)
        .topic("T")
        .topic("ns%T")
        .recall_messages(recall)
        .build()
        .await
        .unwrap()
}

async fn producer(cluster: &TestCluster, instance: &str, namespace: Option<&str>) -> Producer {
    let mut builder = Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("pg");
    if let Some(namespace) = namespace {
        builder = builder.namespace(namespace);
    }
    builder.build().await.unwrap()
}

fn in_a_minute(body: &str) -> Message {
    due_in(body, 60)
}

fn due_in(body: &str, secs: u64) -> Message {
    Message::builder("T")
        .body(body.to_owned())
        .delay_time_sec(secs)
        .build()
        .unwrap()
}

/// Every message delivered to `topic` on every broker.
fn delivered(cluster: &TestCluster, topic: &str) -> Vec<MessageExt> {
    let mut all = Vec::new();
    for broker in cluster.brokers() {
        for queue_id in 0..4 {
            all.extend(broker.messages(topic, queue_id));
        }
    }
    all
}

async fn recalls_before_due(namespace: Option<&str>, stored_topic: &str) {
    let cluster = cluster(true).await;
    // One instance name a test: tests of one process share an instance by
    // name, and each runs on a runtime of its own.
    let instance = format!("recall_{stored_topic}");
    let producer = producer(&cluster, &instance, namespace).await;
    let recalled = producer.send(in_a_minute("recalled")).await.unwrap();
    // Due after the recalled one: once it arrives, the recalled one's time
    // has passed.
    let kept = producer.send(due_in("kept", 90)).await.unwrap();
    let handle = recalled.recall_handle.as_deref().unwrap();
    let parsed = RecallHandle::parse(handle).unwrap();
    assert_eq!(parsed.topic(), stored_topic);
    assert_eq!(parsed.broker_name(), recalled.message_queue.broker_name);
    assert!(kept.recall_handle.is_some());

    let msg_id = producer.recall_message("T", handle).await.unwrap();
    assert_eq!(msg_id, recalled.msg_id);
    // The same from the send result alone (its topic as the producer
    // names it, its handle).
    assert_eq!(producer.recall(&recalled).await.unwrap(), recalled.msg_id);

    wait_until("the kept message", Duration::from_secs(120), || {
        !delivered(&cluster, stored_topic).is_empty()
    })
    .await;
    let bodies: Vec<_> = (delivered(&cluster, stored_topic).iter())
        .map(|m| m.message.body.clone())
        .collect();
    assert_eq!(bodies, ["kept"], "the recalled message never arrives");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_timer_message_is_recalled_before_it_is_due() {
    recalls_before_due(None, "T").await;
}

#[tokio::test(start_paused = true)]
async fn a_namespaced_producer_recalls_by_its_own_topic_name() {
    recalls_before_due(Some("ns"), "ns%T").await;
}

#[tokio::test(start_paused = true)]
async fn plain_sends_have_no_handle_and_bad_recalls_are_refused() {
    let cluster = cluster(false).await;
    let producer = producer(&cluster, "refused", None).await;
    let plain = producer.send(Message::new("T", "now")).await.unwrap();
    assert_eq!(plain.recall_handle, None);
    let err = producer.recall(&plain).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidCall(_)), "{err}");
    let timed = producer.send(in_a_minute("m")).await.unwrap();
    let handle = timed.recall_handle.unwrap();

    // Checked here: the topic, and that the handle reads.
    let err = producer
        .recall_message("%RETRY%g", &handle)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidCall(_)), "{err}");
    let err = producer
        .recall_message("T", "not a handle")
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Model(_)), "{err}");
    // Checked by the broker: recalls are off by default, as Java's.
    let err = producer.recall_message("T", &handle).await.unwrap_err();
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::NO_PERMISSION),
        "{err}"
    );
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_handle_of_an_unknown_broker_goes_to_a_broker_of_the_topic() {
    let cluster = cluster(true).await;
    let producer = producer(&cluster, "unknown_broker", None).await;
    let timed = producer.send(in_a_minute("m")).await.unwrap();
    let parsed = RecallHandle::parse(timed.recall_handle.as_deref().unwrap()).unwrap();
    let elsewhere = RecallHandle::new("T", "broker-z", parsed.deliver_ms().unwrap(), "ID");
    // As Java's (for a proxy in front of the brokers): a broker of the topic
    // is asked, and refuses a handle of another broker.
    let err = producer
        .recall_message("T", &elsewhere.encode())
        .await
        .unwrap_err();
    assert_eq!(
        err.response_code(),
        Some(ResponseCode::ILLEGAL_OPERATION),
        "{err}"
    );
    assert!(
        err.to_string().contains("broker service not available"),
        "{err}"
    );
    producer.shutdown().await;
}
