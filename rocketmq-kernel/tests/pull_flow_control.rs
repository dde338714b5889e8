//! Flow control: with a consume side that never finishes, the cached
//! messages stay within the thresholds (per queue, per topic, span) and the
//! pull task waits instead of pulling; it pulls again once the cache drains.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::Arc;
use std::time::Duration;

use rebalance_support::*;
use rocketmq_kernel::ConsumerOptions;
use rocketmq_model::MessageQueue;
use tokio::time::Instant;

fn queues() -> [MessageQueue; 2] {
    [
        MessageQueue::new(TOPIC, "broker-a", 0),
        MessageQueue::new(TOPIC, "broker-b", 0),
    ]
}

/// c1 over a topic with one queue per broker, 1000 messages of 10 bytes
/// each, and a consume side that never consumes.
async fn stalled_client(options: ConsumerOptions) -> (Arc<Cluster>, Arc<StalledConsume>, Client) {
    let cluster = Cluster::new();
    for mq in queues() {
        cluster.append(&mq, 1000, "t");
    }
    cluster.set_clients(&["c1"]);
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    let stalled = Arc::new(StalledConsume::default());
    let consume = stalled.clone();
    let client = start_client(
        &cluster,
        &ns,
        "c1",
        options,
        move |_| consume,
        &[sub_all(TOPIC)],
    );
    client.rebalancer.rebalance().await;
    (cluster, stalled, client)
}

#[tokio::test(start_paused = true)]
async fn cached_bytes_stay_under_the_queue_threshold_while_nothing_is_consumed() {
    let mut options = options();
    options.pull_batch_size = 4; // 40 bytes a pull
    options.pull_threshold_size_for_queue = 100;
    let (cluster, stalled, c1) = stalled_client(options).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    for mq in queues() {
        let pq = c1.rebalancer.process_queue(&mq).unwrap();
        // Pulls happen while at most 100 bytes are cached: 0, 40, 80.
        assert_eq!(pq.cached_bytes(), 120, "{mq}");
        assert_eq!(cluster.pulls_of(&mq).len(), 3, "{mq}: waiting, not pulling");
        assert!(
            pq.last_pull() > Instant::now() - Duration::from_millis(100),
            "the task keeps checking"
        );
    }
    assert_eq!(stalled.requests.lock().unwrap().len(), 6);

    // The consume side catches up on broker-a's queue: pulling resumes there.
    let [a, b] = queues();
    let pq = c1.rebalancer.process_queue(&a).unwrap();
    pq.remove(&(0..12).collect::<Vec<_>>(), Instant::now());
    eventually("pulling resumes", || cluster.pulls_of(&a).len() == 6).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(cluster.pulls_of(&a).len(), 6);
    assert_eq!(cluster.pulls_of(&b).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn cached_count_is_bounded_per_topic_divided_over_its_queues() {
    let mut options = options();
    options.pull_batch_size = 3;
    options.pull_threshold_for_topic = Some(8); // 4 per queue over 2 queues
    let (cluster, _stalled, c1) = stalled_client(options).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    for mq in queues() {
        let pq = c1.rebalancer.process_queue(&mq).unwrap();
        assert_eq!(
            pq.cached_count(),
            6,
            "{mq}: pulled at 0 and 3 cached, not at 6"
        );
        assert_eq!(cluster.pulls_of(&mq).len(), 2, "{mq}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_topic_threshold_is_divided_over_every_owned_queue_of_every_topic() {
    // T and the retry topic, one queue per broker each: Java divides the
    // per-topic threshold by the size of the whole process queue table.
    const RETRY: &str = "%RETRY%cg";
    let cluster = Cluster::new();
    let retry_queues = [
        MessageQueue::new(RETRY, "broker-a", 0),
        MessageQueue::new(RETRY, "broker-b", 0),
    ];
    for mq in queues().iter().chain(&retry_queues) {
        cluster.append(mq, 1000, "t");
    }
    cluster.set_clients(&["c1"]);
    let ns = FakeNameServer::with(&[(TOPIC, route(1)), (RETRY, route(1))]);
    let mut options = options();
    options.pull_batch_size = 3;
    options.pull_threshold_for_topic = Some(8); // 2 per queue over 4 queues
    let consume = Arc::new(StalledConsume::default());
    let c1 = start_client(
        &cluster,
        &ns,
        "c1",
        options,
        move |_| consume,
        &[sub_all(TOPIC), sub_all(RETRY)],
    );
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 4);
    tokio::time::sleep(Duration::from_secs(60)).await;
    for mq in queues().iter().chain(&retry_queues) {
        let pq = c1.rebalancer.process_queue(mq).unwrap();
        assert_eq!(pq.cached_count(), 3, "{mq}: pulled at 0 cached, not at 3");
        assert_eq!(cluster.pulls_of(mq).len(), 1, "{mq}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_wide_span_stops_concurrent_pulls() {
    let mut options = options();
    options.pull_batch_size = 10;
    options.consume_concurrently_max_span = 25;
    let (cluster, _stalled, c1) = stalled_client(options).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let [a, _] = queues();
    let pq = c1.rebalancer.process_queue(&a).unwrap();
    // Offsets 0..=29 are cached: span 29 > 25 after the third pull.
    assert_eq!(pq.span(), 29);
    assert_eq!(cluster.pulls_of(&a).len(), 3);
    // Consuming the oldest narrows the span (the count stays high).
    pq.remove(&(0..10).collect::<Vec<_>>(), Instant::now());
    eventually("pulling resumes", || cluster.pulls_of(&a).len() == 4).await;
}
