//! A Java 5 broker's server-side offset reset (`useServerSideResetOffset`,
//! on by default), end to end on the testkit: no request reaches the
//! clients; the broker answers the group's next pull of each queue
//! PULL_OFFSET_MOVED with the reset offset, and starts its next pop there.
//! A push consumer pulling (it drops the queue, persists the offset it was
//! given and takes the queue again from there), concurrently or orderly,
//! with its own rebalance or the broker's, a push consumer popping and the
//! lite pull consumer each consume everything again, once.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::BTreeMap;
use std::time::Duration;

use consumer_support::{Seen, msg, producer, recording, unique, wait_assigned, wait_until};
use rocketmq_client::consumer::{
    ConsumeFromWhere, MessageRequestMode, OrderlyContext, OrderlyResult,
};
use rocketmq_client::{Producer, PullConsumer, PushConsumer};
use rocketmq_model::{MessageExt, MessageQueue};
use rocketmq_testkit::TestCluster;

const MESSAGES: usize = 12;

/// How long to look for a message coming a third time: past a held pull's
/// suspend time and the hold check after it (15 s + 5 s, 20 s + 5 s for the
/// lite consumer), several offset persistence rounds (5 s), and a popped
/// message's invisible time (60 s) with Java's first pop retry delay.
const SETTLE: Duration = Duration::from_secs(180);

fn queue(id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", id)
}

/// A cluster with topic `T` (one broker, four queues) holding twelve
/// messages, and its producer.
async fn cluster_with_messages() -> (TestCluster, Producer) {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..MESSAGES {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    (cluster, producer)
}

/// Whether the broker holds `group`'s offset of every queue at its end.
fn committed_at_ends(cluster: &TestCluster, group: &str) -> bool {
    let broker = cluster.broker(0);
    (0..4).all(|id| broker.committed_offset(group, &queue(id)) == Some(broker.max_offset("T", id)))
}

/// Resets `group` server-side to the first offset of each queue, and checks
/// that the broker took it so: committed, and pending.
fn reset_to_first(cluster: &TestCluster, group: &str) {
    let broker = cluster.broker(0);
    let table = broker.reset_offset_server_side(group, "T", 0).unwrap();
    assert_eq!(table.len(), 4, "{table:?}");
    assert!(table.values().all(|&offset| offset == 0), "{table:?}");
    assert!((0..4).all(|id| broker.pending_offset_reset(group, &queue(id)) == Some(0)));
    assert!((0..4).all(|id| broker.committed_offset(group, &queue(id)) == Some(0)));
}

/// Every queue's reset was taken by the group's pull or pop.
fn resets_taken(cluster: &TestCluster, group: &str) -> bool {
    let broker = cluster.broker(0);
    (0..4).all(|id| broker.pending_offset_reset(group, &queue(id)).is_none())
}

fn assert_each_twice(counts: &BTreeMap<String, usize>) {
    assert_eq!(counts.len(), MESSAGES, "every message: {counts:?}");
    assert!(
        counts.values().all(|&n| n == 2),
        "each once more: {counts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pulling_push_consumer_consumes_everything_again_once() {
    pulling_consumes_everything_again_once(true).await;
}

/// The same with the queues to pull assigned by the broker
/// (`client_rebalance(false)`, QUERY_ASSIGNMENT in pull mode).
#[tokio::test(start_paused = true)]
async fn a_push_consumer_pulling_what_the_broker_assigns_consumes_everything_again_once() {
    pulling_consumes_everything_again_once(false).await;
}

/// Waits until every message was consumed and the queue ends committed,
/// resets group "cg" to the first offsets on the broker, and waits until
/// every message came again.
async fn consume_reset_and_again(cluster: &TestCluster, seen: &Seen) {
    wait_until("every message", Duration::from_secs(60), || {
        seen.len() == MESSAGES
    })
    .await;
    wait_until("the ends committed", Duration::from_secs(60), || {
        committed_at_ends(cluster, "cg")
    })
    .await;
    reset_to_first(cluster, "cg");
    wait_until("everything again", Duration::from_secs(120), || {
        seen.len() == 2 * MESSAGES
    })
    .await;
}

async fn pulling_consumes_everything_again_once(client_rebalance: bool) {
    let (cluster, producer) = cluster_with_messages().await;
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("ssr-push"), "cg", "T", &seen)
        .client_rebalance(client_rebalance)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    consume_reset_and_again(&cluster, &seen).await;
    assert!(
        resets_taken(&cluster, "cg"),
        "each queue's pull took its reset"
    );
    tokio::time::sleep(SETTLE).await;
    assert_each_twice(&seen.counts());
    assert!(committed_at_ends(&cluster, "cg"), "committed to the ends");
    wait_assigned(&consumer, 4).await;
    let report = consumer.shutdown().await;
    let committed: i64 = (report.offsets_committed.iter())
        .filter(|(mq, _)| mq.topic == "T")
        .map(|(_, offset)| offset)
        .sum();
    assert_eq!(committed, 12, "{report:?}");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Orderly: the rebalance that takes back a queue dropped on
/// PULL_OFFSET_MOVED holds its lock again, and each queue's messages come
/// again in their order.
#[tokio::test(start_paused = true)]
async fn an_orderly_push_consumer_consumes_each_queue_again_in_order() {
    let (cluster, producer) = cluster_with_messages().await;
    let seen = Seen::default();
    let seen_in = seen.clone();
    let config = consumer_support::config(&cluster, &unique("ssr-orderly"));
    let consumer = PushConsumer::builder("cg", config)
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_orderly(move |msgs: Vec<MessageExt>, _ctx: OrderlyContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                OrderlyResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    consume_reset_and_again(&cluster, &seen).await;
    tokio::time::sleep(SETTLE).await;
    assert_each_twice(&seen.counts());
    let mut by_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in seen.all() {
        by_queue.entry(m.queue_id).or_default().push(m.queue_offset);
    }
    for (id, offsets) in &by_queue {
        let once: Vec<i64> = (0..cluster.broker(0).max_offset("T", *id)).collect();
        let twice: Vec<i64> = once.iter().chain(&once).copied().collect();
        assert_eq!(offsets, &twice, "queue {id} in order, twice");
    }
    assert!(committed_at_ends(&cluster, "cg"), "committed to the ends");
    let broker = cluster.broker(0);
    let client_id = consumer.client_id().to_owned();
    assert!(
        (0..4).all(|id| broker.lock_holder("cg", &queue(id)).as_deref() == Some(&client_id)),
        "locked again"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_popping_push_consumer_consumes_everything_again_once() {
    let (cluster, producer) = cluster_with_messages().await;
    (producer.admin())
        .set_message_request_mode("T", "cg", MessageRequestMode::Pop, 0)
        .await
        .unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("ssr-pop"), "cg", "T", &seen)
        .client_rebalance(false)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    wait_until("every message", Duration::from_secs(60), || {
        seen.len() == MESSAGES
    })
    .await;
    let broker = cluster.broker(0);
    wait_until(
        "every message acknowledged",
        Duration::from_secs(60),
        || broker.in_flight_pops("cg").is_empty(),
    )
    .await;
    assert!(
        committed_at_ends(&cluster, "cg"),
        "pops commit past themselves"
    );

    reset_to_first(&cluster, "cg");
    wait_until("everything again", Duration::from_secs(120), || {
        seen.len() == 2 * MESSAGES
    })
    .await;
    assert!(
        resets_taken(&cluster, "cg"),
        "each queue's pop took its reset"
    );
    tokio::time::sleep(SETTLE).await;
    assert_each_twice(&seen.counts());
    assert!(broker.in_flight_pops("cg").is_empty(), "all acknowledged");
    assert!(committed_at_ends(&cluster, "cg"));
    let report = consumer.shutdown().await;
    assert!(
        report.offsets_committed.keys().all(|mq| mq.topic != "T"),
        "popped queues keep no offsets in the client: {report:?}"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Polls into `seen` until `done` holds; panics naming `what` after
/// `limit`.
async fn poll_until(
    consumer: &PullConsumer,
    seen: &Seen,
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() {
        let now = tokio::time::Instant::now();
        assert!(now < deadline, "timed out after {limit:?} waiting: {what}");
        seen.push(&consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
}

/// Polls into `seen` for `limit`.
async fn poll_for(consumer: &PullConsumer, seen: &Seen, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        seen.push(&consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn the_lite_pull_consumer_consumes_everything_again_once() {
    let (cluster, producer) = cluster_with_messages().await;
    let consumer = PullConsumer::builder("lg", consumer_support::config(&cluster, &unique("ssr")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let minute = Duration::from_secs(60);
    poll_until(&consumer, &seen, "every message", minute, || {
        seen.len() == MESSAGES
    })
    .await;
    // Auto commit on the next polls, persisted every 5 s.
    poll_until(&consumer, &seen, "the ends committed", minute, || {
        committed_at_ends(&cluster, "lg")
    })
    .await;

    reset_to_first(&cluster, "lg");
    let limit = Duration::from_secs(120);
    poll_until(&consumer, &seen, "everything again", limit, || {
        seen.len() == 2 * MESSAGES
    })
    .await;
    assert!(
        resets_taken(&cluster, "lg"),
        "each queue's pull took its reset"
    );
    poll_for(&consumer, &seen, SETTLE).await;
    assert_each_twice(&seen.counts());
    assert!(committed_at_ends(&cluster, "lg"), "committed to the ends");
    let report = consumer.shutdown().await;
    assert_eq!(report.offsets_committed.values().sum::<i64>(), 12);
    producer.shutdown().await;
    cluster.shutdown().await;
}
