//! A push consumer that leaves rebalancing to the brokers
//! (`client_rebalance(false)`, Java 5's broker-side rebalance) on the
//! testkit: pull assignments as the broker allocates them, pop mode once an
//! administrator switches the group to it (every member popping every
//! queue, each message consumed once and acknowledged), a failed popped
//! message back after Java's pop retry delay, the dead-letter topic after
//! the last retry, the switch back to pulling, and the settings the
//! builder refuses.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{Seen, config, msg, owned, producer, recording, unique, wait_until};
use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, MessageRequestMode,
};
use rocketmq_client::{ClientError, PushConsumer};
use rocketmq_kernel::allocate::ConsistentHash;
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;
use tokio::time::Instant;

const GROUP: &str = "pg";

async fn cluster() -> TestCluster {
    TestCluster::builder()
        .brokers(2)
        .topic("T")
        .build()
        .await
        .unwrap()
}

async fn set_mode(cluster: &TestCluster, mode: MessageRequestMode, share: i32) {
    let producer = producer(cluster).await;
    producer
        .admin()
        .set_message_request_mode("T", GROUP, mode, share)
        .await
        .unwrap();
    producer.shutdown().await;
}

async fn consumer(cluster: &TestCluster, seen: &Seen) -> PushConsumer {
    recording(cluster, &unique("pop"), GROUP, "T", seen)
        .client_rebalance(false)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap()
}

async fn send(cluster: &TestCluster, n: usize) {
    let producer = producer(cluster).await;
    for i in 0..n {
        producer
            .send(msg("T", &format!("m{i}"), "a"))
            .await
            .unwrap();
    }
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn in_pull_mode_the_brokers_allocation_is_taken_and_pulled() {
    let cluster = cluster().await;
    let seen = Seen::default();
    let first = consumer(&cluster, &seen).await;
    let second = consumer(&cluster, &seen).await;
    wait_until(
        "the brokers share the 8 queues out",
        Duration::from_secs(60),
        || {
            let (a, b) = (owned(&first), owned(&second));
            a.len() + b.len() == 8 && a.iter().all(|mq| !b.contains(mq))
        },
    )
    .await;
    assert!(
        (owned(&first).iter().chain(&owned(&second))).all(|mq| mq.queue_id >= 0),
        "pulled queues, not pops"
    );
    send(&cluster, 40).await;
    wait_until("40 consumed", Duration::from_secs(60), || seen.len() >= 40).await;
    let reports = [first.shutdown().await, second.shutdown().await];
    // The second may take the first's queues over once it has left: per
    // queue, the offset last committed.
    let mut by_queue = BTreeMap::new();
    for report in &reports {
        for (mq, offset) in &report.offsets_committed {
            if mq.topic == "T" {
                by_queue.insert(mq.clone(), *offset);
            }
        }
    }
    let committed: i64 = by_queue.values().sum();
    assert_eq!(committed, 40, "pulled queues commit their offsets");
    assert_eq!(seen.len(), 40);
}

#[tokio::test(start_paused = true)]
async fn in_pop_mode_every_member_pops_every_broker_and_each_message_is_consumed_once() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    let seen = Seen::default();
    let first = consumer(&cluster, &seen).await;
    let second = consumer(&cluster, &seen).await;
    let pops: BTreeSet<MessageQueue> = ["broker-a", "broker-b"]
        .into_iter()
        .map(|broker| MessageQueue::new("T", broker, -1))
        .collect();
    wait_until(
        "each member pops both brokers",
        Duration::from_secs(60),
        || {
            let a: BTreeSet<_> = owned(&first).into_iter().collect();
            let b: BTreeSet<_> = owned(&second).into_iter().collect();
            a == pops && b == pops
        },
    )
    .await;
    send(&cluster, 100).await;
    wait_until("100 consumed", Duration::from_secs(120), || {
        seen.len() >= 100
    })
    .await;
    // Paused time moved past the invisible time (60 s) and the first retry
    // delay: a message left unacknowledged would have come back by then.
    tokio::time::sleep(Duration::from_secs(180)).await;
    let counts = seen.counts();
    assert_eq!(counts.len(), 100, "every message");
    assert!(
        counts.values().all(|&n| n == 1),
        "each consumed once and acknowledged: {counts:?}"
    );
    for consumer in [first, second] {
        let report = consumer.shutdown().await;
        assert!(
            report.offsets_committed.keys().all(|mq| mq.topic != "T"),
            "popped queues keep no offsets in the client: {report:?}"
        );
    }
}

/// Each delivery: the body, its reconsume times, when it came.
type Deliveries = Arc<Mutex<Vec<(String, i32, Instant)>>>;

/// A listener that fails each message's first `failures` deliveries and
/// records when each delivery came, with its reconsume times.
fn failing(
    cluster: &TestCluster,
    failures: i32,
    deliveries: &Deliveries,
) -> rocketmq_client::consumer::PushConsumerBuilder {
    let deliveries = Arc::clone(deliveries);
    PushConsumer::builder(GROUP, config(cluster, &unique("fail")))
        .subscribe("T", "*")
        .client_rebalance(false)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let deliveries = Arc::clone(&deliveries);
            async move {
                let mut result = ConcurrentResult::Success;
                for msg in &msgs {
                    let body = String::from_utf8_lossy(&msg.message.body).into_owned();
                    deliveries
                        .lock()
                        .unwrap()
                        .push((body, msg.reconsume_times, Instant::now()));
                    if msg.reconsume_times < failures {
                        result = ConcurrentResult::RetryLater;
                    }
                }
                result
            }
        })
}

#[tokio::test(start_paused = true)]
async fn a_failed_popped_message_comes_back_after_javas_pop_delay() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    let deliveries = Deliveries::default();
    let consumer = failing(&cluster, 2, &deliveries).build().await.unwrap();
    wait_until("pops assigned", Duration::from_secs(60), || {
        owned(&consumer).len() == 2
    })
    .await;
    send(&cluster, 1).await;
    wait_until("three deliveries", Duration::from_secs(300), || {
        deliveries.lock().unwrap().len() >= 3
    })
    .await;
    let got = deliveries.lock().unwrap().clone();
    let times: Vec<i32> = got.iter().map(|(_, times, _)| *times).collect();
    assert_eq!(times, [0, 1, 2], "{got:?}");
    // Java's pop delay table: 10 s after the first failure, 30 s after the
    // second (the broker revives at the deadline, the pop comes at once).
    let gap = |i: usize| got[i + 1].2.duration_since(got[i].2);
    assert!(gap(0) >= Duration::from_secs(10), "{:?}", gap(0));
    assert!(gap(0) < Duration::from_secs(30), "{:?}", gap(0));
    assert!(gap(1) >= Duration::from_secs(30), "{:?}", gap(1));
    assert!(gap(1) < Duration::from_secs(60), "{:?}", gap(1));
    consumer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_out_of_retries_goes_to_the_dead_letter_topic() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    let deliveries = Deliveries::default();
    let consumer = failing(&cluster, i32::MAX, &deliveries)
        .max_reconsume_times(1)
        .build()
        .await
        .unwrap();
    wait_until("pops assigned", Duration::from_secs(60), || {
        owned(&consumer).len() == 2
    })
    .await;
    send(&cluster, 1).await;
    let dead = || {
        cluster
            .brokers()
            .iter()
            .map(|broker| broker.messages(&format!("%DLQ%{GROUP}"), 0).len())
            .sum::<usize>()
    };
    wait_until("dead-lettered", Duration::from_secs(300), || dead() == 1).await;
    let times: Vec<i32> = (deliveries.lock().unwrap().iter())
        .map(|(_, times, _)| *times)
        .collect();
    assert_eq!(times, [0, 1], "one retry, then the dead-letter topic");
    consumer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn switched_back_to_pull_mode_the_members_pull_again() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    let seen = Seen::default();
    let consumer = consumer(&cluster, &seen).await;
    wait_until("pops assigned", Duration::from_secs(60), || {
        owned(&consumer).iter().all(|mq| mq.queue_id == -1) && owned(&consumer).len() == 2
    })
    .await;
    set_mode(&cluster, MessageRequestMode::Pull, 0).await;
    wait_until("pulling the 8 queues", Duration::from_secs(60), || {
        let queues = owned(&consumer);
        queues.len() == 8 && queues.iter().all(|mq| mq.queue_id >= 0)
    })
    .await;
    send(&cluster, 10).await;
    wait_until("10 consumed", Duration::from_secs(60), || seen.len() >= 10).await;
    let by_body: BTreeMap<String, usize> = seen.counts();
    assert_eq!(by_body.len(), 10);
    consumer.shutdown().await;
}

#[tokio::test]
async fn the_builder_refuses_what_a_broker_cannot_do_and_javas_ranges() {
    let cluster = cluster().await;
    let seen = Seen::default();
    let strategy = recording(&cluster, &unique("x"), GROUP, "T", &seen)
        .client_rebalance(false)
        .allocate_strategy(Arc::new(ConsistentHash::default()))
        .build()
        .await;
    assert!(
        matches!(&strategy, Err(ClientError::Config(text)) if text.contains("AVG_BY_CIRCLE")),
        "{strategy:?}"
    );
    // Allocating itself, the strategy is its own business.
    recording(&cluster, &unique("x"), GROUP, "T", &seen)
        .allocate_strategy(Arc::new(ConsistentHash::default()))
        .build()
        .await
        .unwrap()
        .shutdown()
        .await;
    for (builder, name) in [
        (
            recording(&cluster, &unique("x"), GROUP, "T", &seen)
                .pop_invisible_time(Duration::from_secs(1)),
            "pop_invisible_time",
        ),
        (
            recording(&cluster, &unique("x"), GROUP, "T", &seen).pop_batch_nums(33),
            "pop_batch_nums",
        ),
        (
            recording(&cluster, &unique("x"), GROUP, "T", &seen).pop_threshold_for_queue(0),
            "pop_threshold_for_queue",
        ),
    ] {
        let built = builder.build().await;
        assert!(
            matches!(&built, Err(ClientError::Config(text)) if text.contains(name)),
            "{name}: {built:?}"
        );
    }
}
