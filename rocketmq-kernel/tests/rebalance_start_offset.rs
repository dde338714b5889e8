//! Where a newly assigned queue starts: Java's `computePullFromWhere`, for
//! every ConsumeFromWhere, a new group or an existing offset, and a normal
//! or a `%RETRY%` topic.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use rebalance_support::*;
use rocketmq_kernel::offset::RemoteOffsetStore;
use rocketmq_kernel::rebalance::start_offset;
use rocketmq_kernel::route::Routes;
use rocketmq_model::MessageQueue;
use rocketmq_model::body::ConsumeFromWhere;

const MAX: i64 = 100;
const AT_TIMESTAMP: i64 = 55;
const STORED: i64 = 7;

/// The start offset of `mq` for `from`, with or without a stored offset.
async fn start(
    cluster: &std::sync::Arc<Cluster>,
    mq: &MessageQueue,
    from: ConsumeFromWhere,
    stored: bool,
) -> rocketmq_kernel::Result<i64> {
    cluster.offsets.lock().unwrap().clear();
    if stored {
        cluster.offsets.lock().unwrap().insert(mq.clone(), STORED);
    }
    let ns = FakeNameServer::with(&[(TOPIC, route(2)), ("%RETRY%cg", route(1))]);
    let routes = Routes::new(ns);
    let store = RemoteOffsetStore::new(GROUP, cluster.clone());
    let broker = ClientBroker {
        cluster: cluster.clone(),
        client_id: "c1".into(),
    };
    let mut options = options();
    options.consume_from_where = from;
    options.consume_timestamp = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    start_offset(mq, &options, &store, &broker, &routes).await
}

#[tokio::test]
async fn compute_pull_from_where_table() {
    let cluster = Cluster::new();
    *cluster.max_offset.lock().unwrap() = MAX;
    *cluster.search_offset.lock().unwrap() = AT_TIMESTAMP;
    let normal = MessageQueue::new(TOPIC, "broker-a", 1);
    let retry = MessageQueue::new("%RETRY%cg", "broker-b", 0);
    let last_family = [
        ConsumeFromWhere::LastOffset,
        ConsumeFromWhere::LastOffsetAndFromMinWhenBootFirst,
        ConsumeFromWhere::MinOffset,
        ConsumeFromWhere::MaxOffset,
    ];
    // (from, new group on a normal topic, new group on a %RETRY% topic)
    let mut table: Vec<(ConsumeFromWhere, i64, i64)> =
        last_family.iter().map(|from| (*from, MAX, 0)).collect();
    table.push((ConsumeFromWhere::FirstOffset, 0, 0));
    table.push((ConsumeFromWhere::Timestamp, AT_TIMESTAMP, MAX));
    for (from, new_normal, new_retry) in table {
        assert_eq!(
            start(&cluster, &normal, from, false).await.unwrap(),
            new_normal,
            "{from:?}, new group"
        );
        assert_eq!(
            start(&cluster, &retry, from, false).await.unwrap(),
            new_retry,
            "{from:?}, new group, retry topic"
        );
        for mq in [&normal, &retry] {
            assert_eq!(
                start(&cluster, mq, from, true).await.unwrap(),
                STORED,
                "{from:?}, existing offset of {mq}"
            );
        }
    }
    let searched = cluster.searched_at.lock().unwrap().clone();
    assert_eq!(
        searched,
        [UNIX_EPOCH + Duration::from_secs(1_700_000_000)],
        "only the normal topic searches by time"
    );
}

#[tokio::test]
async fn an_unreachable_store_or_broker_is_an_error_not_an_offset() {
    let cluster = Cluster::new();
    let mq = MessageQueue::new(TOPIC, "broker-a", 0);
    cluster.broker_down.store(true, Ordering::SeqCst);
    for from in [
        ConsumeFromWhere::LastOffset,
        ConsumeFromWhere::FirstOffset,
        ConsumeFromWhere::Timestamp,
    ] {
        assert!(
            start(&cluster, &mq, from, true).await.is_err(),
            "{from:?}: the store cannot be read"
        );
    }
    // The store answers "no offset" but the broker's max offset is unknown.
    let store_up = Cluster::new();
    store_up.broker_down.store(false, Ordering::SeqCst);
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    let routes = Routes::new(ns);
    let store = RemoteOffsetStore::new(GROUP, store_up);
    let broker = ClientBroker {
        cluster: cluster.clone(),
        client_id: "c1".into(),
    };
    let result = start_offset(
        &mq,
        &options_from(ConsumeFromWhere::LastOffset),
        &store,
        &broker,
        &routes,
    )
    .await;
    assert!(result.is_err());
    // An unknown broker is an error too.
    let unknown = MessageQueue::new(TOPIC, "broker-z", 0);
    let result = start_offset(
        &unknown,
        &options_from(ConsumeFromWhere::LastOffset),
        &store,
        &broker,
        &routes,
    )
    .await;
    assert!(result.is_err());
}

fn options_from(from: ConsumeFromWhere) -> rocketmq_kernel::ConsumerOptions {
    let mut options = options();
    options.consume_from_where = from;
    options
}

/// A queue whose start offset could not be computed (the broker did not
/// answer the offset query) is tried again soon, not at the next timer
/// (20 s by default; a day here): Java 5's `RebalanceService` runs again
/// after its 1 s `minInterval` when a round left the assignment short of
/// the allocation.
#[tokio::test(start_paused = true)]
async fn a_queue_without_a_start_offset_is_tried_again_soon() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    cluster.broker_down.store(true, Ordering::SeqCst);
    let c1 = start_client(
        &cluster,
        &ns,
        "c1",
        options(),
        |_| Arc::new(StalledConsume::default()),
        &[sub_all(TOPIC)],
    );
    c1.rebalancer.rebalance().await;
    assert!(c1.rebalancer.assigned().is_empty(), "no start offset yet");
    cluster.broker_down.store(false, Ordering::SeqCst);
    let answered = tokio::time::Instant::now();
    eventually("the queues are added by a round of their own", || {
        c1.rebalancer.assigned().len() == 4
    })
    .await;
    assert!(answered.elapsed() <= Duration::from_millis(1_100));
}
