//! A push consumer that leaves rebalancing to the brokers
//! (`client_rebalance(false)`, Java 5's broker-side rebalance) on the
//! testkit: pull assignments as the broker allocates them, pop mode once an
//! administrator switches the group to it (every member popping every
//! queue, each message consumed once and acknowledged), a failed popped
//! message back after Java's pop retry delay, the dead-letter topic after
//! the last retry, the switch back to pulling (a message left in the pop
//! retry topic then pulled from there), a listener that never returns
//! holding up neither a switch nor the shutdown, and the settings the
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
use rocketmq_model::{MessageExt, MessageQueue, RequestCode};
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

/// Waits until `consumer` pops the topic's queue -1 on each of the two
/// brokers.
async fn wait_popping(consumer: &PushConsumer) {
    wait_until("pops assigned", Duration::from_secs(60), || {
        let queues = owned(consumer);
        queues.len() == 2 && queues.iter().all(|mq| mq.queue_id == -1)
    })
    .await;
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

/// Waits until `n` messages were consumed, then moves paused time past the
/// invisible time (60 s), the first retry delay and the offset persistence:
/// a message left unacknowledged, or popped again from an offset written
/// back, would have come again by then. Each must have come once.
async fn consumed_once_each(seen: &Seen, n: usize) {
    wait_until("all consumed", Duration::from_secs(120), || seen.len() >= n).await;
    tokio::time::sleep(Duration::from_secs(180)).await;
    let counts = seen.counts();
    assert_eq!(counts.len(), n, "every message");
    assert!(
        counts.values().all(|&count| count == 1),
        "each consumed once and acknowledged: {counts:?}"
    );
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
    // The settings, as Java's running info reports its consumer's fields.
    let props = first.running_info().properties;
    let prop = |name: &str| props.get(name).map(String::as_str);
    assert_eq!(prop("clientRebalance"), Some("false"));
    assert_eq!(prop("popInvisibleTime"), Some("60000"));
    assert_eq!(prop("popBatchNums"), Some("32"));
    assert_eq!(prop("popThresholdForQueue"), Some("96"));
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
    consumed_once_each(&seen, 100).await;
    // The pops count as the topic's pulls in the status table, as Java's.
    let pull_tps: f64 = [&first, &second]
        .iter()
        .map(|consumer| consumer.running_info().status_table["T"].pull_tps)
        .sum();
    assert!(pull_tps > 0.0, "pull TPS {pull_tps}");
    for consumer in [first, second] {
        let report = consumer.shutdown().await;
        assert!(
            report.offsets_committed.keys().all(|mq| mq.topic != "T"),
            "popped queues keep no offsets in the client: {report:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn acknowledgements_that_come_while_one_is_on_its_way_go_in_one_batch() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    send(&cluster, 100).await;
    let seen = Seen::default();
    let consumer = consumer(&cluster, &seen).await;
    consumed_once_each(&seen, 100).await;
    // Popped 32 at a time and consumed together, most were acknowledged
    // while another acknowledgement was on its way: with it, in a batch.
    let received = |code| -> u64 {
        (cluster.brokers().iter())
            .map(|broker| broker.requests_received(code))
            .sum()
    };
    let (single, batched) = (
        received(RequestCode::ACK_MESSAGE),
        received(RequestCode::BATCH_ACK_MESSAGE),
    );
    assert!(
        batched > 0 && single + batched < 50,
        "{single} ACK_MESSAGE and {batched} BATCH_ACK_MESSAGE for 100 messages"
    );
    consumer.shutdown().await;
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
    wait_popping(&consumer).await;
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
    wait_popping(&consumer).await;
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
    wait_popping(&consumer).await;
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

#[tokio::test(start_paused = true)]
async fn a_message_failed_in_pop_mode_is_pulled_from_the_pop_retry_topic_once_pulling_again() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    // Each delivery's topic (as the listener sees it) and reconsume times;
    // the first delivery fails.
    let deliveries: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let seen = Arc::clone(&deliveries);
    let consumer = PushConsumer::builder(GROUP, config(&cluster, &unique("retry")))
        .subscribe("T", "*")
        .client_rebalance(false)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = Arc::clone(&seen);
            async move {
                let mut seen = seen.lock().unwrap();
                seen.extend(
                    msgs.iter()
                        .map(|m| (m.topic().to_owned(), m.reconsume_times)),
                );
                if msgs.iter().any(|m| m.reconsume_times == 0) {
                    ConcurrentResult::RetryLater
                } else {
                    ConcurrentResult::Success
                }
            }
        })
        .build()
        .await
        .unwrap();
    wait_popping(&consumer).await;
    send(&cluster, 1).await;
    wait_until("the first delivery", Duration::from_secs(60), || {
        !deliveries.lock().unwrap().is_empty()
    })
    .await;
    // Back to pulling before the failed message's retry is due (10 s): it
    // is revived into the pop retry topic, which nothing pops any more.
    set_mode(&cluster, MessageRequestMode::Pull, 0).await;
    consumer.rebalance().await;
    assert!(
        owned(&consumer).iter().all(|mq| mq.queue_id >= 0),
        "pulling: {:?}",
        owned(&consumer)
    );
    wait_until("the retry consumed", Duration::from_secs(300), || {
        deliveries.lock().unwrap().len() >= 2
    })
    .await;
    let got = deliveries.lock().unwrap().clone();
    // A pop still long-polling on the broker when its task stopped may
    // take the revived message once more (hidden for its invisible time,
    // then revived again): reconsumed once or twice.
    assert!(
        got.len() == 2 && got[0] == ("T".to_owned(), 0) && got[1].0 == "T" && got[1].1 >= 1,
        "pulled from %RETRY%{GROUP}_T, shown under the topic it was sent to: {got:?}"
    );
    let retry_topic = format!("%RETRY%{GROUP}_T");
    let assigned = consumer.assigned();
    assert!(
        assigned.iter().any(|mq| mq.topic == retry_topic),
        "{assigned:?}"
    );
    let follows_retry_topic =
        || (consumer.running_info().subscription_set.iter()).any(|s| s.topic == retry_topic);
    assert!(
        follows_retry_topic(),
        "the brokers are told of the pop retry subscription"
    );
    // Popping again, the pops read the pop retry topic themselves.
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    consumer.rebalance().await;
    assert!(!follows_retry_topic());
    set_mode(&cluster, MessageRequestMode::Pull, 0).await;
    consumer.rebalance().await;
    assert!(follows_retry_topic());
    // It goes with the topic.
    consumer.unsubscribe("T").await;
    assert!(!follows_retry_topic());
    consumer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_never_returns_holds_up_neither_a_switch_to_pulling_nor_the_shutdown() {
    let cluster = cluster().await;
    set_mode(&cluster, MessageRequestMode::Pop, 0).await;
    let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls = Arc::clone(&started);
    let consumer = PushConsumer::builder(GROUP, config(&cluster, &unique("stuck")))
        .subscribe("T", "*")
        .client_rebalance(false)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_thread_max(1)
        .shutdown_drain_timeout(Duration::from_secs(1))
        .consume_concurrently(move |_msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            calls.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            std::future::pending::<ConcurrentResult>()
        })
        .build()
        .await
        .unwrap();
    wait_popping(&consumer).await;
    // One listener call never ends; the consume queue fills up, and each
    // pop task waits for room to hand over the rest of its answer.
    send(&cluster, 20).await;
    wait_until("the listener stuck", Duration::from_secs(60), || {
        started.load(std::sync::atomic::Ordering::Acquire) == 1
    })
    .await;
    set_mode(&cluster, MessageRequestMode::Pull, 0).await;
    let round = tokio::time::timeout(Duration::from_secs(60), consumer.rebalance()).await;
    assert!(round.is_ok(), "a round that drops the popped queues ends");
    assert!(owned(&consumer).iter().all(|mq| mq.queue_id >= 0));
    let shutdown = tokio::time::timeout(Duration::from_secs(60), consumer.shutdown()).await;
    assert!(shutdown.is_ok(), "the shutdown ends");
}

/// A broker's RESET_CONSUMER_CLIENT_OFFSET names every queue of the topic,
/// those a member pops too (with `popShareQueueNum` 1 and three members the
/// brokers assign popped queues by their ids). Java's `resetOffset`
/// restarts only pulled queues; a popped queue keeps no offset in the
/// client. Restarting one wrote the reset offset to the broker after
/// other members had popped from it again, so messages came a third time.
#[tokio::test(start_paused = true)]
async fn an_offset_reset_leaves_popped_queues_alone() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    set_mode(&cluster, MessageRequestMode::Pop, 1).await;
    send(&cluster, 12).await;
    let seen = Seen::default();
    let mut members = Vec::new();
    for _ in 0..3 {
        members.push(consumer(&cluster, &seen).await);
    }
    wait_until("queues popped by id", Duration::from_secs(60), || {
        members.iter().all(|member| {
            let queues = owned(member);
            !queues.is_empty() && queues.iter().all(|mq| mq.queue_id >= 0)
        })
    })
    .await;
    wait_until("12 consumed", Duration::from_secs(60), || seen.len() >= 12).await;

    let pushed = cluster
        .broker(0)
        .reset_offset(GROUP, "T", 0, true)
        .await
        .unwrap();
    assert_eq!(pushed.len(), 4, "the reset names each queue");
    consumed_once_each(&seen, 12).await;
    for member in members {
        let popped = member.running_info().mq_pop_table.unwrap_or_default();
        assert!(!popped.is_empty(), "still popping");
        let report = member.shutdown().await;
        assert!(
            report.offsets_committed.keys().all(|mq| mq.topic != "T"),
            "popped queues keep no offsets in the client: {report:?}"
        );
    }
}
