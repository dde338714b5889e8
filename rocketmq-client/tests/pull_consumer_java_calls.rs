//! The pull consumer's calls that Java's `DefaultLitePullConsumer` has and
//! an application ported from it looks for: `commit(Set, persist)`,
//! `offsetForTimestamp`, `updateNameServerAddress`,
//! `setSubExpressionForAssign`, and the refusal of an empty topic.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consumer_support::{config, msg, producer, unique};
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_client::{ClientConfig, ClientError, PullConsumer};
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

fn q(id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", id)
}

/// Everything `rounds` one-second polls return.
async fn poll_for(consumer: &PullConsumer, rounds: usize) -> Vec<MessageExt> {
    let mut got = Vec::new();
    for _ in 0..rounds {
        got.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    got
}

/// A cluster whose topic `T` has two queues on broker-a, with the messages
/// `tags` (one each, in order) in the first and `in_q1` in the second.
async fn two_queues(tags: &[&str], in_q1: usize) -> (TestCluster, rocketmq_client::Producer) {
    let cluster = TestCluster::builder()
        .queues(2, 2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for (i, tag) in tags.iter().enumerate() {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), tag), &q(0))
            .await
            .unwrap();
    }
    for i in 0..in_q1 {
        producer
            .send_to_queue(msg("T", &format!("n{i}"), "x"), &q(1))
            .await
            .unwrap();
    }
    (cluster, producer)
}

/// Java's `commit(Set<MessageQueue>, persist)`: what was handed out of the
/// chosen queues is committed (and persisted), the other queues' not yet; a
/// queue the consumer does not read commits nothing.
#[tokio::test(start_paused = true)]
async fn the_chosen_queues_commit_what_was_handed_out() {
    let (cluster, producer) = two_queues(&["x"; 5], 5).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("commit_set")))
        .assign([q(0), q(1)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    assert_eq!(poll_for(&consumer, 3).await.len(), 10);
    // Where q1 started (what the broker answered for the new group).
    let q1_before = consumer.committed_offsets().get(&q(1)).copied();
    consumer.commit_queues([&q(0)], true).await.unwrap();
    let broker = cluster.broker(0);
    assert_eq!(broker.committed_offset("lg", &q(0)), Some(5));
    assert_eq!(broker.committed_offset("lg", &q(1)), None);
    assert_eq!(consumer.committed_offsets().get(&q(1)).copied(), q1_before);

    let elsewhere = MessageQueue::new("T", "broker-a", 7);
    let refused = consumer.commit_queues([&q(1), &elsewhere], true).await;
    assert!(
        matches!(&refused, Err(ClientError::NotAssigned(mq)) if *mq == elsewhere),
        "{refused:?}"
    );
    assert_eq!(
        consumer.committed_offsets().get(&q(1)).copied(),
        q1_before,
        "nothing committed"
    );
    consumer.commit_queues([&q(1)], false).await.unwrap();
    assert_eq!(consumer.committed_offsets().get(&q(1)), Some(&5));
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's `offsetForTimestamp`: the broker's answer for any queue, read by
/// the consumer or not, and the consumer does not move.
#[tokio::test(start_paused = true)]
async fn the_offset_for_a_time_is_the_brokers_answer() {
    let (cluster, producer) = two_queues(&["x"; 3], 0).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("for_time")))
        .assign([q(0)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    let later = SystemTime::now() + Duration::from_secs(24 * 3600);
    assert_eq!(
        consumer
            .offset_for_timestamp(&q(0), UNIX_EPOCH)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        consumer.offset_for_timestamp(&q(0), later).await.unwrap(),
        3
    );
    assert_eq!(
        consumer.offset_for_timestamp(&q(1), later).await.unwrap(),
        0
    );
    assert_eq!(poll_for(&consumer, 2).await.len(), 3, "nothing moved");
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's `updateNameServerAddress`: a consumer started against a
/// nameserver that is gone finds routes once told the new one.
#[tokio::test(start_paused = true)]
async fn new_nameservers_are_asked_for_routes() {
    let (cluster, producer) = two_queues(&[], 0).await;
    let mut config = config(&cluster, &unique("namesrv"));
    config.namesrv_addrs = vec!["10.9.9.9:9876".to_owned()];
    config.request_timeout = Duration::from_secs(1);
    let consumer = PullConsumer::builder("lg", config)
        .assign([])
        .build()
        .await
        .unwrap();
    assert!(consumer.fetch_message_queues("T").await.is_err());
    let none: [&str; 0] = [];
    assert!(matches!(
        consumer.update_namesrv_addrs(none),
        Err(ClientError::Config(_))
    ));
    consumer
        .update_namesrv_addrs(cluster.namesrv_addrs())
        .unwrap();
    let mut queues = consumer.fetch_message_queues("T").await.unwrap();
    queues.sort();
    assert_eq!(queues, [q(0), q(1)]);
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's `setSubExpressionForAssign`: assigned queues of a topic hand out
/// only the messages its selector selects.
#[tokio::test(start_paused = true)]
async fn an_assigned_topic_is_filtered_by_its_selector() {
    let (cluster, producer) = two_queues(&["a", "b", "a", "b", "a"], 0).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("assign_sel")))
        .assign_selector("T", "a")
        .assign([q(0)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let offsets: Vec<i64> = (poll_for(&consumer, 3).await.iter())
        .map(|m| m.queue_offset)
        .collect();
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
    assert_eq!(offsets, [0, 2, 4]);
}

/// A selector for assigned queues makes the consumer an assigning one: not
/// with `subscribe` (Java: "Subscribe and assign are mutually exclusive").
/// Nothing is started, so no cluster is needed.
#[tokio::test]
async fn an_assign_selector_does_not_go_with_subscribe() {
    let built = PullConsumer::builder("lg", ClientConfig::new(["127.0.0.1:9876"]))
        .subscribe("T", "*")
        .assign_selector("U", "a")
        .build()
        .await;
    assert!(matches!(built, Err(ClientError::Config(_))), "{built:?}");
}

/// An empty topic is refused, as Java's `subscribe` does, at build and
/// while running, with a namespace too (which would make it `ns%`).
#[tokio::test(start_paused = true)]
async fn an_empty_topic_is_refused() {
    let mut with_namespace = ClientConfig::new(["127.0.0.1:9876"]);
    with_namespace.namespace = Some("ns".to_owned());
    for config in [ClientConfig::new(["127.0.0.1:9876"]), with_namespace] {
        let built = PullConsumer::builder("lg", config)
            .subscribe("", "*")
            .build()
            .await;
        assert!(matches!(built, Err(ClientError::Config(_))), "{built:?}");
    }

    let (cluster, producer) = two_queues(&[], 0).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("empty_topic")))
        .subscribe("T", "*")
        .build()
        .await
        .unwrap();
    let refused = consumer.subscribe("", "*").await;
    assert!(
        matches!(refused, Err(ClientError::InvalidCall(_))),
        "{refused:?}"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}
