//! A stored message no client can decode (the testkit corrupts its record)
//! is skipped alone, after a few tries, by both consumers: the messages
//! around it are delivered and the queue's offset moves past it.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::time::Duration;

use consumer_support::{Seen, config, msg, producer, recording, unique, wait_until};
use rocketmq_client::PullConsumer;
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

fn q0() -> MessageQueue {
    MessageQueue::new("T", "broker-a", 0)
}

/// A one-queue topic holding m0..m5, the record of m2 corrupted.
async fn queue_with_a_bad_record() -> TestCluster {
    let cluster = TestCluster::builder()
        .topic_with("T", rocketmq_testkit::TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..6 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    producer.shutdown().await;
    assert!(cluster.broker(0).corrupt_message("T", 0, 2));
    cluster
}

fn bodies(msgs: &[MessageExt]) -> Vec<String> {
    let mut bodies: Vec<String> = msgs
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test(start_paused = true)]
async fn the_push_consumer_skips_the_bad_record_alone() {
    let cluster = queue_with_a_bad_record().await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("push"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let broker = cluster.broker(0);
    wait_until("past the bad record", Duration::from_secs(120), || {
        seen.len() == 5 && consumer.committed_offsets().get(&q0()) == Some(&6)
    })
    .await;
    assert_eq!(bodies(&seen.all()), ["m0", "m1", "m3", "m4", "m5"]);
    consumer.shutdown().await;
    assert_eq!(broker.committed_offset("cg", &q0()), Some(6));
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_pull_consumer_skips_the_bad_record_alone() {
    let cluster = queue_with_a_bad_record().await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("lite")))
        .assign([q0()])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut got = Vec::new();
    while got.len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "only {got:?}");
        got.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    assert_eq!(bodies(&got), ["m0", "m1", "m3", "m4", "m5"]);
    consumer.shutdown().await;
    cluster.shutdown().await;
}
