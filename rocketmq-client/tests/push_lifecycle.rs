//! Push consumers coming and going: members joining and leaving under
//! load, a clean shutdown and restart, a broker restart mid-stream.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use consumer_support::{Seen, msg, owned, producer, recording, unique, wait_assigned, wait_until};
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_model::MessageQueue;
use rocketmq_testkit::{TestCluster, TopicConfig};

#[tokio::test(start_paused = true)]
async fn members_joining_and_leaving_under_load_lose_nothing_and_settle_apart() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic_with("T", TopicConfig::new(4, 4))
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let producer = producer(&cluster).await;
    let first = recording(&cluster, &unique("m1"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    wait_assigned(&first, 8).await;
    let mut sent = HashSet::new();
    let mut members = vec![first];
    for round in 0..6 {
        for i in 0..20 {
            let body = format!("r{round}-{i}");
            producer.send(msg("T", &body, "x")).await.unwrap();
            sent.insert(body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match round {
            0 | 1 | 3 => {
                let member = recording(&cluster, &unique("m"), "cg", "T", &seen)
                    .consume_from_where(ConsumeFromWhere::FirstOffset)
                    .build()
                    .await
                    .unwrap();
                members.push(member);
            }
            _ => {
                let leaving = members.remove(0);
                leaving.shutdown().await;
            }
        }
    }
    wait_until(
        "every acknowledged send consumed",
        Duration::from_secs(300),
        || {
            let got: HashSet<String> = seen.bodies().into_iter().collect();
            sent.is_subset(&got)
        },
    )
    .await;
    // Let the rebalance settle, then no queue is owned twice and all are owned.
    tokio::time::sleep(Duration::from_secs(45)).await;
    for member in &members {
        member.rebalance().await;
    }
    let mut all: Vec<MessageQueue> = members.iter().flat_map(owned).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "a queue owned by two members");
    assert_eq!(total, 8, "every queue owned");
    for member in members {
        member.shutdown().await;
    }
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_clean_shutdown_and_restart_consume_nothing_twice() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let instance = unique("restart");
    let consumer = recording(&cluster, &instance, "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    for i in 0..20 {
        producer
            .send(msg("T", &format!("a{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("20 messages", Duration::from_secs(60), || seen.len() == 20).await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    let broker = cluster.broker(0);
    let stored: i64 = (0..4)
        .map(|q| {
            broker
                .committed_offset("cg", &MessageQueue::new("T", "broker-a", q))
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(stored, 20, "offsets persisted on the broker at shutdown");
    assert!(
        broker
            .groups()
            .consumers
            .iter()
            .all(|g| g.group != "cg" || g.client_ids.is_empty())
    );
    for i in 0..20 {
        producer
            .send(msg("T", &format!("b{i}"), "x"))
            .await
            .unwrap();
    }
    let consumer = recording(&cluster, &instance, "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    wait_until("40 messages", Duration::from_secs(60), || seen.len() >= 40).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let counts = seen.counts();
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("bounce"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let mut sent = BTreeSet::new();
    for i in 0..10 {
        let body = format!("before-{i}");
        producer.send(msg("T", &body, "x")).await.unwrap();
        sent.insert(body);
    }
    wait_until("some consumed", Duration::from_secs(60), || seen.len() >= 5).await;
    let broker = cluster.broker(0);
    broker.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    broker.restart().await.unwrap();
    for i in 0..10 {
        let body = format!("after-{i}");
        let mut tries = 0;
        while producer.send(msg("T", &body, "x")).await.is_err() {
            tries += 1;
            assert!(tries < 20, "the broker never came back");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        sent.insert(body);
    }
    wait_until("everything consumed", Duration::from_secs(300), || {
        let got: BTreeSet<String> = seen.bodies().into_iter().collect();
        sent.is_subset(&got)
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_waits_for_in_flight_consumption_up_to_the_drain_timeout() {
    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    producer.send(msg("T", "quick", "x")).await.unwrap();
    producer.send(msg("T", "stuck", "x")).await.unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("drain")),
    )
    .subscribe("T", "*")
    .consume_from_where(ConsumeFromWhere::FirstOffset)
    .shutdown_drain_timeout(Duration::from_secs(2))
    .consume_concurrently(
        move |msgs: Vec<rocketmq_model::MessageExt>,
              _ctx: rocketmq_client::consumer::ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                if msgs[0].body().as_ref() == b"stuck" {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                rocketmq_client::consumer::ConcurrentResult::Success
            }
        },
    )
    .build()
    .await
    .unwrap();
    wait_until("both started", Duration::from_secs(60), || seen.len() == 2).await;
    let started = tokio::time::Instant::now();
    let report = consumer.shutdown().await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "waited the drain timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "did not wait for the listener: {took:?}"
    );
    assert_eq!(report.batches_left, 1, "{report:?}");
    assert_eq!(report.messages_left, 1, "{report:?}");
    let mq = MessageQueue::new("T", "broker-a", 0);
    assert_eq!(
        report.offsets_committed.get(&mq),
        Some(&1),
        "not past the stuck message"
    );
    assert_eq!(cluster.broker(0).committed_offset("cg", &mq), Some(1));
    producer.shutdown().await;
}

/// A pull task waiting to hand pulled messages to a busy listener when the
/// shutdown stops pulling still hands them over: the drain consumes them
/// all, and the report is clean (they were left cached, for the queue's
/// next owner to consume again, before).
#[tokio::test(start_paused = true)]
async fn shutdown_drains_what_a_waiting_pull_task_had_pulled() {
    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..10 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let seen = Seen::default();
    let seen_in = seen.clone();
    // One worker, two queued batches: a pull of ten messages waits to hand
    // over the fourth while the listener takes a second a message.
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("handover")),
    )
    .subscribe("T", "*")
    .consume_from_where(ConsumeFromWhere::FirstOffset)
    .consume_thread_max(1)
    .consume_message_batch_max_size(1)
    .shutdown_drain_timeout(Duration::from_secs(60))
    .consume_concurrently(
        move |msgs: Vec<rocketmq_model::MessageExt>,
              _ctx: rocketmq_client::consumer::ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                tokio::time::sleep(Duration::from_secs(1)).await;
                rocketmq_client::consumer::ConcurrentResult::Success
            }
        },
    )
    .build()
    .await
    .unwrap();
    wait_until("the first consumed", Duration::from_secs(60), || {
        !seen.is_empty()
    })
    .await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(seen.len(), 10, "every pulled message consumed");
    let mq = MessageQueue::new("T", "broker-a", 0);
    assert_eq!(report.offsets_committed.get(&mq), Some(&10));
    assert_eq!(cluster.broker(0).committed_offset("cg", &mq), Some(10));
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_sql92_subscription_the_broker_cannot_serve_fails_the_start() {
    use rocketmq_client::ClientError;
    use rocketmq_client::consumer::MessageSelector;

    let start = |cluster: &TestCluster, expression: &str| {
        recording(cluster, "sql-instance", "cg", "T", &Seen::default())
            .subscribe("T", MessageSelector::sql92(expression))
            .build()
    };
    // No property filtering on this broker: Java's consumer refuses to start.
    let plain = TestCluster::builder().topic("T").build().await.unwrap();
    match start(&plain, "a > 1").await {
        Err(ClientError::SubscriptionRefused {
            topic,
            expression,
            reason,
            ..
        }) => {
            assert_eq!((topic.as_str(), expression.as_str()), ("T", "a > 1"));
            assert!(reason.contains("does not support"), "{reason}");
        }
        other => panic!("expected SubscriptionRefused, got {:?}", other.err()),
    }

    // A filtering broker refuses an expression that does not compile, and
    // accepts one that does; the failed start left nothing registered.
    let filtering = TestCluster::builder()
        .topic("T")
        .property_filter(true)
        .build()
        .await
        .unwrap();
    let err = start(&filtering, "a >").await.err();
    assert!(
        matches!(err, Some(ClientError::SubscriptionRefused { .. })),
        "{err:?}"
    );
    let consumer = start(&filtering, "a > 1").await.unwrap();
    consumer.shutdown().await;
}

/// A `build()` given up on (a timeout around it) on an instance another
/// client keeps running leaves no member behind: the group is not
/// heartbeated with queues no one consumes, and a new build succeeds.
#[tokio::test(start_paused = true)]
async fn a_build_given_up_on_leaves_no_member_behind() {
    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(4, 4))
        .build()
        .await
        .unwrap();
    let shared = unique("shared");
    let keeper = rocketmq_client::Producer::builder()
        .client_config(consumer_support::config(&cluster, &shared))
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    keeper.send(msg("T", "warm", "x")).await.unwrap();
    // The build's heartbeat takes 2 s; the caller waits 1.
    cluster.delay_responses(
        rocketmq_model::RequestCode::HEART_BEAT,
        Duration::from_secs(2),
    );
    let seen = Seen::default();
    let build = recording(&cluster, &shared, "cg", "T", &seen).build();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), build)
            .await
            .is_err()
    );
    cluster.clear_faults();
    assert!(keeper.instance().consumer("cg").is_none(), "unregistered");

    // Another member of the group gets every queue (no ghost holds half).
    let other = recording(&cluster, &unique("other"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(150)).await;
    other.rebalance().await;
    assert_eq!(owned(&other).len(), 4);
    // And the build can be tried again on the shared instance.
    let again = recording(&cluster, &shared, "cg", "T", &seen)
        .build()
        .await
        .unwrap();
    again.shutdown().await;
    other.shutdown().await;
    keeper.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_shutdown_report_counts_what_was_pulled_and_not_consumed() {
    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..40 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let seen = Seen::default();
    let recorded = seen.clone();
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("slow")),
    )
    .subscribe("T", "*")
    .consume_from_where(ConsumeFromWhere::FirstOffset)
    .consume_thread_max(1)
    .consume_concurrently(move |msgs: Vec<rocketmq_model::MessageExt>, _ctx| {
        let seen = recorded.clone();
        async move {
            seen.push(&msgs);
            tokio::time::sleep(Duration::from_secs(1)).await;
            rocketmq_client::consumer::ConcurrentResult::Success
        }
    })
    .build()
    .await
    .unwrap();
    wait_until("the first message", Duration::from_secs(60), || {
        !seen.is_empty()
    })
    .await;
    let report = consumer.shutdown().await;
    let committed = report
        .offsets_committed
        .get(&MessageQueue::new("T", "broker-a", 0))
        .copied()
        .unwrap_or(0);
    assert!(
        !report.is_clean() || committed == 40,
        "a clean report with {committed} of 40 committed: {report:?}"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A shutdown the caller stops waiting for (a timeout shorter than the
/// drain, while one listener call is slow) still runs to its end: the
/// offsets of what was consumed and acknowledged reach the broker.
#[tokio::test(start_paused = true)]
async fn a_shutdown_given_up_on_still_persists_the_offsets() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult};
    use rocketmq_model::MessageExt;

    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let q = |id| MessageQueue::new("T", "broker-a", id);
    producer
        .send_to_queue(msg("T", "slow", "x"), &q(0))
        .await
        .unwrap();
    for i in 0..9 {
        producer
            .send_to_queue(msg("T", &format!("fast{i}"), "x"), &q(1 + i % 3))
            .await
            .unwrap();
    }
    let fast = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fast);
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("given_up")),
    )
    .subscribe("T", "*")
    .consume_from_where(ConsumeFromWhere::FirstOffset)
    .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
        let counted = Arc::clone(&counted);
        async move {
            for m in &msgs {
                if m.body() == &b"slow"[..] {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                } else {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
            }
            ConcurrentResult::Success
        }
    })
    .build()
    .await
    .unwrap();
    wait_until("the fast nine", Duration::from_secs(60), || {
        fast.load(Ordering::SeqCst) == 9
    })
    .await;
    let given_up = tokio::time::timeout(Duration::from_secs(3), consumer.shutdown()).await;
    assert!(
        given_up.is_err(),
        "the drain outlasts the caller's patience"
    );
    wait_until("the offsets persisted", Duration::from_secs(60), || {
        (1..4).all(|i| cluster.broker(0).committed_offset("cg", &q(i)) == Some(3))
    })
    .await;
    producer.shutdown().await;
}

/// A broker of the client's routes that never answers a heartbeat (here one
/// serving only a producer's topic) must not hold up the rebalance of a
/// topic it does not serve: a round asks one broker of the topic for the
/// group's members, and heartbeats only that one first, when it needs to.
#[tokio::test(start_paused = true)]
async fn a_broker_silent_to_heartbeats_does_not_hold_up_other_topics_rounds() {
    use rocketmq_client::consumer::ConcurrentResult;
    use rocketmq_model::RequestCode;

    let cluster = TestCluster::builder()
        .brokers(2)
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    cluster.broker(0).create_topic("T", TopicConfig::new(4, 4));
    cluster.broker(1).create_topic("U", TopicConfig::new(4, 4));
    cluster
        .broker(1)
        .delay_responses(RequestCode::HEART_BEAT, Duration::from_secs(3600));
    let name = unique("silent");
    let producer = rocketmq_client::Producer::builder()
        .client_config(consumer_support::config(&cluster, &name))
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    producer.send(msg("U", "u", "x")).await.unwrap();
    let consumer =
        rocketmq_client::PushConsumer::builder("cg", consumer_support::config(&cluster, &name))
            .subscribe("T", "*")
            .consume_concurrently(|_, _| async { ConcurrentResult::Success })
            .build()
            .await
            .unwrap();
    wait_assigned(&consumer, 4).await;
    for round in 0..3 {
        let done = tokio::time::timeout(Duration::from_secs(1), consumer.rebalance()).await;
        assert!(done.is_ok(), "round {round} waited on broker-b");
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A shutdown while the expiry scan sends a message back (its listener
/// call is stuck): the broker stored the send-back, so the message must
/// also leave its process queue and the committed offset move past it.
/// Abandoned half way, the queue's next owner consumes the message again
/// from its queue, besides its retry copy.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_an_expiry_send_back_does_not_deliver_the_message_twice() {
    use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult};
    use rocketmq_model::{MessageExt, RequestCode};

    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    producer.send(msg("T", "stuck", "x")).await.unwrap();
    let started = Seen::default();
    let started_in = started.clone();
    let consumer = rocketmq_client::PushConsumer::builder(
        "cg",
        consumer_support::config(&cluster, &unique("expiry-cut")),
    )
    .subscribe("T", "*")
    .consume_from_where(ConsumeFromWhere::FirstOffset)
    .consume_timeout(Duration::from_secs(60))
    .shutdown_drain_timeout(Duration::from_secs(1))
    .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
        let started = started_in.clone();
        async move {
            started.push(&msgs);
            // Never finishes: the message expires after the consume timeout.
            std::future::pending::<()>().await;
            ConcurrentResult::Success
        }
    })
    .build()
    .await
    .unwrap();
    wait_until(
        "the message being consumed",
        Duration::from_secs(60),
        || !started.is_empty(),
    )
    .await;
    // The broker stores the send-back at once and answers 2 s later (well
    // within the request timeout).
    cluster.delay_responses(RequestCode::CONSUMER_SEND_MSG_BACK, Duration::from_secs(2));
    wait_until(
        "the expired message sent back",
        Duration::from_secs(200),
        || cluster.broker(0).scheduled_count() == 1,
    )
    .await;
    let started = tokio::time::Instant::now();
    let report = consumer.shutdown().await;
    let took = started.elapsed();
    // The send-back's last 2 s and the 1 s drain of the stuck listener
    // overlap: the shutdown waits for the longer, not for both.
    assert!(
        took < Duration::from_millis(2_500),
        "the send-back and the drain overlap: {took:?}"
    );
    let mq = MessageQueue::new("T", "broker-a", 0);
    assert_eq!(
        cluster.broker(0).committed_offset("cg", &mq),
        Some(1),
        "the sent-back message is committed past ({report:?})"
    );
    cluster.clear_faults();

    // The queue's next owner gets the message once: its retry copy.
    let seen = Seen::default();
    let next = recording(&cluster, &unique("expiry-next"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    wait_until("the retry copy", Duration::from_secs(60), || {
        seen.all().iter().any(|m| m.reconsume_times == 1)
    })
    .await;
    assert_eq!(seen.counts().get("stuck"), Some(&1), "delivered once");
    next.shutdown().await;
    producer.shutdown().await;
}

/// A shutdown right after a broker came back, while this client's dial
/// backoff still fails its calls to it at once, persists its offsets all
/// the same (once more after the backoff), so the group's next owner does
/// not consume them again.
#[tokio::test(start_paused = true)]
async fn a_shutdown_just_after_a_broker_returns_persists_its_offsets() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    // The producer shares the consumer's client instance, so its
    // connections and their dial backoff.
    let instance = unique("back");
    let producer = rocketmq_client::Producer::builder()
        .client_config(consumer_support::config(&cluster, &instance))
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    let consumer = recording(&cluster, &instance, "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    for i in 0..12 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("12 consumed", Duration::from_secs(60), || seen.len() == 12).await;
    let broker = cluster.broker(0);
    broker.stop().await;
    // A call while it is down: the failed dial starts the backoff.
    let mq = MessageQueue::new("T", broker.name(), 0);
    assert!(producer.admin().max_offset(&mq).await.is_err());
    broker.restart().await.unwrap();
    let report = consumer.shutdown().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let committed: i64 = (0..4)
        .map(|q| {
            let mq = MessageQueue::new("T", broker.name(), q);
            broker.committed_offset("cg", &mq).unwrap_or(0)
        })
        .sum();
    assert_eq!(committed, 12);
    producer.shutdown().await;
    cluster.shutdown().await;
}
