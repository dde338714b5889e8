//! Push consumers end to end against the testkit: tag filtering, both
//! header serializations, compressed bodies, delayed messages.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::time::Duration;

use consumer_support::{Seen, config, msg, producer, recording, unique, wait_assigned, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_model::MessageExt;
use rocketmq_model::message::compression::CompressionType;
use rocketmq_model::message::sysflag::{self, COMPRESSED_FLAG};
use rocketmq_remoting::SerializeType;
use rocketmq_testkit::TestCluster;

#[tokio::test(start_paused = true)]
async fn tag_expressions_deliver_only_the_named_tags() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("c1")))
        .subscribe("T", "TagA || TagB")
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    for i in 0..30 {
        let tag = ["TagA", "TagB", "TagC"][i % 3];
        producer
            .send(msg("T", &format!("{tag}-{i}"), tag))
            .await
            .unwrap();
    }
    wait_until("20 messages", Duration::from_secs(60), || seen.len() >= 20).await;
    // Time for a wrongly delivered TagC to show up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let bodies = seen.bodies();
    assert_eq!(bodies.len(), 20, "{bodies:?}");
    assert!(bodies.iter().all(|b| !b.starts_with("TagC")), "{bodies:?}");
    assert!(
        seen.all()
            .iter()
            .all(|m| matches!(m.tags(), Some("TagA" | "TagB")))
    );
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    let committed: i64 = report
        .offsets_committed
        .iter()
        .filter(|(mq, _)| mq.topic == "T")
        .map(|(_, o)| *o)
        .sum();
    assert_eq!(
        committed, 30,
        "filtered messages count as consumed: {report:?}"
    );
    producer.shutdown().await;
}

/// Sends `bodies` with properties and keys, and checks that a consumer on
/// `serialize_type` gets them intact.
async fn round_trip(serialize_type: SerializeType) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let mut consumer_config = config(&cluster, &unique("c1"));
    consumer_config.serialize_type = serialize_type;
    let seen_in = seen.clone();
    let consumer = PushConsumer::builder("cg", consumer_config)
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    let mut producer_config = config(&cluster, &unique("producer"));
    producer_config.serialize_type = serialize_type;
    let producer = Producer::builder()
        .client_config(producer_config)
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    for i in 0..8 {
        let message = rocketmq_model::Message::builder("T")
            .body(format!("body-{i}"))
            .tags("t")
            .key(format!("key-{i}"))
            .property("color", "blue")
            .build()
            .unwrap();
        producer.send(message).await.unwrap();
    }
    wait_until("8 messages", Duration::from_secs(60), || seen.len() == 8).await;
    for m in seen.all() {
        assert_eq!(m.property("color"), Some("blue"));
        let body = String::from_utf8_lossy(m.body()).into_owned();
        let key = m.keys().next().unwrap().to_owned();
        assert_eq!(key.replace("key", "body"), body);
        assert!(m.message.uniq_key().is_some());
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn json_headers_end_to_end() {
    round_trip(SerializeType::Json).await;
}

#[tokio::test(start_paused = true)]
async fn rocketmq_binary_headers_end_to_end() {
    round_trip(SerializeType::RocketMq).await;
}

async fn compressed_round_trip(kind: CompressionType) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("c1"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("producer")))
        .producer_group("pg")
        .compress_msg_body_over_howmuch(64)
        .compress_type(kind)
        .build()
        .await
        .unwrap();
    let big = "abcdefgh".repeat(2048);
    producer.send(msg("T", &big, "z")).await.unwrap();
    producer.send(msg("T", "small", "z")).await.unwrap();
    let stored = cluster
        .broker(0)
        .messages("T", 0)
        .into_iter()
        .chain((1..4).flat_map(|q| cluster.broker(0).messages("T", q)))
        .collect::<Vec<_>>();
    assert_eq!(stored.len(), 2);
    let compressed: Vec<_> = stored
        .iter()
        .filter(|m| m.sys_flag & COMPRESSED_FLAG != 0)
        .collect();
    assert_eq!(compressed.len(), 1, "the large body is stored compressed");
    assert_eq!(
        sysflag::compression_type(compressed[0].sys_flag).unwrap(),
        Some(kind)
    );
    wait_until("2 messages", Duration::from_secs(60), || seen.len() == 2).await;
    let mut bodies = seen.bodies();
    bodies.sort();
    assert_eq!(bodies, [big, "small".to_owned()]);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn zlib_bodies_arrive_decompressed() {
    compressed_round_trip(CompressionType::Zlib).await;
}

#[tokio::test(start_paused = true)]
async fn lz4_bodies_arrive_decompressed() {
    compressed_round_trip(CompressionType::Lz4).await;
}

#[tokio::test(start_paused = true)]
async fn zstd_bodies_arrive_decompressed() {
    compressed_round_trip(CompressionType::Zstd).await;
}

#[tokio::test(start_paused = true)]
async fn delayed_messages_arrive_after_their_delay() {
    consumer_support::init_logs();
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("c1"), "cg", "T", &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    let delayed = rocketmq_model::Message::builder("T")
        .body("later")
        .delay_level(3)
        .build()
        .unwrap();
    let sent_at = tokio::time::Instant::now();
    producer.send(delayed).await.unwrap();
    producer.send(msg("T", "now", "x")).await.unwrap();
    wait_until("the undelayed message", Duration::from_secs(30), || {
        seen.len() == 1
    })
    .await;
    assert_eq!(seen.bodies(), ["now"]);
    wait_until("the delayed message", Duration::from_secs(60), || {
        seen.len() == 2
    })
    .await;
    let waited = sent_at.elapsed();
    assert!(
        waited >= Duration::from_secs(10),
        "level 3 is 10 s, got {waited:?}"
    );
    assert_eq!(seen.bodies()[1], "later");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn builders_refuse_incomplete_settings_and_duplicate_groups() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let no_listener = PushConsumer::builder("cg", config(&cluster, &unique("bad")))
        .subscribe("T", "*")
        .build()
        .await;
    assert!(matches!(
        no_listener,
        Err(rocketmq_client::ClientError::Config(_))
    ));
    let bad_tags = recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
        .subscribe("T", "||")
        .build()
        .await;
    assert!(bad_tags.is_err());
    for (what, builder) in [
        (
            "max_reconsume_times(-2)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
                .max_reconsume_times(-2),
        ),
        (
            "consume_timeout(0)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
                .consume_timeout(Duration::ZERO),
        ),
        (
            "consume_concurrently_max_span(-1)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
                .consume_concurrently_max_span(-1),
        ),
        (
            "pull_batch_size(2048)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default()).pull_batch_size(2048),
        ),
        (
            "consume_message_batch_max_size(0)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
                .consume_message_batch_max_size(0),
        ),
        (
            "consume_thread_max(0)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default()).consume_thread_max(0),
        ),
        (
            "consume_thread_max(1001)",
            recording(&cluster, &unique("bad"), "cg", "T", &Seen::default())
                .consume_thread_max(1001),
        ),
    ] {
        let refused = builder.build().await;
        assert!(
            matches!(refused, Err(rocketmq_client::ClientError::Config(_))),
            "{what} was accepted"
        );
    }
    let instance = unique("dup");
    let first = recording(&cluster, &instance, "cg", "T", &Seen::default())
        .build()
        .await
        .unwrap();
    let second = recording(&cluster, &instance, "cg", "T", &Seen::default())
        .build()
        .await;
    assert!(matches!(
        second,
        Err(rocketmq_client::ClientError::GroupAlreadyRegistered { .. })
    ));
    let pull = rocketmq_client::PullConsumer::builder("lg", config(&cluster, &unique("bad")))
        .build()
        .await;
    assert!(matches!(pull, Err(rocketmq_client::ClientError::Config(_))));
    first.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn topics_can_be_subscribed_and_unsubscribed_while_running() {
    let cluster = TestCluster::builder()
        .topic("T")
        .topic("U")
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("resub"), "cg", "T", &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    consumer.subscribe("U", "only").await.unwrap();
    wait_assigned(&consumer, 8).await;
    let group = cluster
        .broker(0)
        .groups()
        .consumers
        .into_iter()
        .find(|g| g.group == "cg")
        .unwrap();
    let topics: Vec<&str> = group
        .subscriptions
        .iter()
        .map(|s| s.topic.as_str())
        .collect();
    assert!(
        topics.contains(&"U"),
        "the heartbeat carries it: {topics:?}"
    );
    let producer = producer(&cluster).await;
    producer.send(msg("U", "skipped", "other")).await.unwrap();
    producer.send(msg("U", "wanted", "only")).await.unwrap();
    wait_until("the U message", Duration::from_secs(60), || seen.len() == 1).await;
    assert_eq!(seen.bodies(), ["wanted"]);
    consumer.unsubscribe("U").await;
    wait_assigned(&consumer, 4).await;
    assert!(
        consumer_support::owned(&consumer)
            .iter()
            .all(|mq| mq.topic == "T")
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A broker filters a group's pulls with the subscription of the highest
/// version any member sent it (ROCKETMQ-175). A member whose queues a
/// rebalance changed gives its subscription a new version and heartbeats at
/// once, as Java's `messageQueueChanged` does, so a member that left does
/// not go on filtering for those that stay: here the B messages would be
/// filtered out by the broker, and lost, for as long as the group lives.
#[tokio::test(start_paused = true)]
async fn a_rebalance_makes_the_remaining_members_subscription_the_brokers() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let tagged = |selector: &str, seen: &Seen| {
        let seen = seen.clone();
        PushConsumer::builder("cg", config(&cluster, &unique("tagged")))
            .subscribe("T", selector)
            .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
                let seen = seen.clone();
                async move {
                    seen.push(&msgs);
                    ConcurrentResult::Success
                }
            })
    };
    let seen = Seen::default();
    let wide = tagged("A || B", &seen).build().await.unwrap();
    wait_assigned(&wide, 4).await;
    // Made later, the narrower subscription has the higher version.
    let narrow = tagged("A", &Seen::default()).build().await.unwrap();
    wait_assigned(&narrow, 2).await;
    wait_assigned(&wide, 2).await;
    narrow.shutdown().await;
    wait_assigned(&wide, 4).await;
    let brokers_subscription = || {
        cluster
            .broker(0)
            .groups()
            .consumers
            .into_iter()
            .find(|g| g.group == "cg")
            .and_then(|g| g.subscriptions.into_iter().find(|s| s.topic == "T"))
            .map(|s| s.sub_string)
    };
    wait_until(
        "the broker filters with the remaining member's subscription",
        Duration::from_secs(10),
        || brokers_subscription().as_deref() == Some("A || B"),
    )
    .await;
    let producer = producer(&cluster).await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("B-{i}"), "B"))
            .await
            .unwrap();
    }
    wait_until("every B message", Duration::from_secs(60), || {
        seen.len() == 8
    })
    .await;
    wide.shutdown().await;
    producer.shutdown().await;
}
