//! Failed consumption end to end: retries through `%RETRY%<group>`, the
//! dead-letter queue after the maximum, and partial acknowledgement.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{Seen, config, msg, producer, unique, wait_assigned, wait_until};
use rocketmq_client::PushConsumer;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_model::MessageExt;
use rocketmq_testkit::{TestCluster, TopicConfig};

#[tokio::test(start_paused = true)]
async fn a_message_failing_twice_succeeds_the_third_time() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let attempts: Arc<Mutex<HashMap<String, Vec<i32>>>> = Arc::default();
    let recorded = Arc::clone(&attempts);
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("retry")))
        .subscribe("T", "*")
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let attempts = Arc::clone(&recorded);
            async move {
                let mut attempts = attempts.lock().unwrap();
                let mut result = ConcurrentResult::Success;
                for m in &msgs {
                    let body = String::from_utf8_lossy(m.body()).into_owned();
                    let tries = attempts.entry(body).or_default();
                    tries.push(m.reconsume_times);
                    assert_eq!(m.topic(), "T", "the original topic is restored");
                    if tries.len() < 3 {
                        result = ConcurrentResult::RetryLater;
                    }
                }
                result
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    producer.send(msg("T", "flaky", "x")).await.unwrap();
    wait_until("three attempts", Duration::from_secs(120), || {
        attempts
            .lock()
            .unwrap()
            .get("flaky")
            .is_some_and(|t| t.len() == 3)
    })
    .await;
    // Nothing more comes: the third attempt succeeded.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(attempts.lock().unwrap()["flaky"], [0, 1, 2]);
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_that_always_fails_reaches_the_dlq() {
    let cluster = TestCluster::builder()
        .topic("T")
        .retry_max_times("cg", 2)
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("dlq")))
        .subscribe("T", "*")
        .max_reconsume_times(2)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::RetryLater
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    producer.send(msg("T", "poison", "x")).await.unwrap();
    let broker = cluster.broker(0);
    wait_until("a dead letter", Duration::from_secs(600), || {
        !broker.messages("%DLQ%cg", 0).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(seen.len(), 3, "the first delivery and two retries");
    let dead = broker.messages("%DLQ%cg", 0);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body().as_ref(), b"poison");
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn partial_ack_retries_only_the_messages_after_the_ack_index() {
    let cluster = TestCluster::builder()
        .topic_with("T", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..4 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let seen = Seen::default();
    let batches: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (seen_in, batches_in) = (seen.clone(), Arc::clone(&batches));
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("ack")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_message_batch_max_size(4)
        .consume_concurrently(move |msgs: Vec<MessageExt>, mut ctx: ConcurrentContext| {
            let (seen, batches) = (seen_in.clone(), Arc::clone(&batches_in));
            async move {
                seen.push(&msgs);
                batches.lock().unwrap().push(msgs.len());
                if msgs.len() == 4 {
                    ctx.ack_index = 1;
                }
                (ConcurrentResult::Success, ctx)
            }
        })
        .build()
        .await
        .unwrap();
    wait_until("the retried messages", Duration::from_secs(120), || {
        seen.len() == 6
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let counts = seen.counts();
    assert_eq!(counts["m0"], 1);
    assert_eq!(counts["m1"], 1);
    assert_eq!(counts["m2"], 2, "after the ack index: retried");
    assert_eq!(counts["m3"], 2);
    let retried: Vec<i32> = seen.all()[4..].iter().map(|m| m.reconsume_times).collect();
    assert_eq!(retried, [1, 1]);
    assert_eq!(batches.lock().unwrap()[0], 4);
    let report = consumer.shutdown().await;
    let mq = rocketmq_model::MessageQueue::new("T", "broker-a", 0);
    assert_eq!(report.offsets_committed.get(&mq), Some(&4), "{report:?}");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_consumed_past_the_consume_timeout_is_sent_back_in_about_that_time() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("expiry")))
        .subscribe("T", "*")
        .consume_timeout(Duration::from_secs(60))
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                if msgs.iter().any(|m| m.reconsume_times == 0) {
                    // The first delivery never finishes.
                    std::future::pending::<()>().await;
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    producer.send(msg("T", "stuck", "x")).await.unwrap();
    // Scanned every minute (the consume timeout), not every 15: expired
    // within two, sent back with delay level 3 (10 s), delivered again.
    wait_until(
        "the expired message again",
        Duration::from_secs(150),
        || seen.all().iter().any(|m| m.reconsume_times == 1),
    )
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn max_reconsume_times_minus_one_means_the_default_retries() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    // Java's -1: the default (16 retries), not "dead-letter at once".
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("minus_one")))
        .subscribe("T", "*")
        .max_reconsume_times(-1)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::RetryLater
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    producer.send(msg("T", "failing", "x")).await.unwrap();
    wait_until("a second retry", Duration::from_secs(300), || {
        seen.all().iter().any(|m| m.reconsume_times == 2)
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
}
