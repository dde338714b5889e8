//! Interop against a real broker: orderly consumption under broker queue
//! locks, broadcasting, rebalance as members join and leave, a clean
//! shutdown and restart without duplicates, and the pull consumer.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use interop_support::{
    Seen, config, create_topic, holds_within, msg, namesrv, owned, producer, queues, recording,
    secs, unique, wait_assigned, wait_until,
};
use rocketmq_client::consumer::{MessageModel, OrderlyContext, OrderlyResult, PullConsumer};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_kernel::BrokerApi;
use rocketmq_model::body::LockBatchRequestBody;
use rocketmq_model::{MessageExt, MessageQueue};

/// Asks the broker, as another client of `group`, to lock `mqs`; answers
/// the queues it got.
async fn lock_as_stranger(
    producer: &Producer,
    group: &str,
    mqs: &[MessageQueue],
) -> BTreeSet<MessageQueue> {
    let instance = producer.instance();
    let addr = instance
        .routes()
        .table()
        .master_addr(&mqs[0].broker_name)
        .unwrap();
    let body = LockBatchRequestBody {
        client_id: format!("127.0.0.9@{}", unique("stranger")),
        consumer_group: group.to_owned(),
        mq_set: mqs.iter().cloned().collect(),
        only_this_broker: false,
    };
    instance.broker_api().lock_batch(&addr, body).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_consumption_keeps_queue_order_under_broker_locks() {
    let Some(ns) = namesrv("orderly_consumption_keeps_queue_order_under_broker_locks") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_order");
    create_topic(&producer, &topic, 2).await;
    let mqs = queues(&producer, &topic).await;
    for mq in &mqs {
        for i in 0..10 {
            let body = format!("{}-{i}", mq.queue_id);
            producer
                .send_to_queue(msg(&topic, &body, "x"), mq)
                .await
                .unwrap();
        }
    }
    let group = unique("cg");
    let consumed: Arc<Mutex<BTreeMap<i32, Vec<i64>>>> = Arc::default();
    let failed_once = Arc::new(Mutex::new(false));
    let (consumed_in, failed_in) = (Arc::clone(&consumed), Arc::clone(&failed_once));
    let consumer = PushConsumer::builder(group.as_str(), config(&ns))
        .subscribe(topic.as_str(), "*")
        .consume_from_where(rocketmq_client::consumer::ConsumeFromWhere::FirstOffset)
        .suspend_current_queue_time(std::time::Duration::from_millis(200))
        .consume_orderly(move |msgs: Vec<MessageExt>, _ctx: OrderlyContext| {
            let (consumed, failed) = (Arc::clone(&consumed_in), Arc::clone(&failed_in));
            async move {
                let m = &msgs[0];
                let mut failed = failed.lock().unwrap();
                if m.queue_id == 0 && m.queue_offset == 5 && !*failed {
                    *failed = true;
                    return OrderlyResult::SuspendCurrentQueue;
                }
                let mut consumed = consumed.lock().unwrap();
                for m in &msgs {
                    consumed.entry(m.queue_id).or_default().push(m.queue_offset);
                }
                OrderlyResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_until("20 messages in order", secs(30), || {
        consumed
            .lock()
            .unwrap()
            .values()
            .map(Vec::len)
            .sum::<usize>()
            >= 20
    })
    .await;
    assert!(*failed_once.lock().unwrap(), "the failing message was seen");
    let expected: Vec<i64> = (0..10).collect();
    for (queue, offsets) in consumed.lock().unwrap().iter() {
        assert_eq!(
            offsets, &expected,
            "queue {queue}: in order, no gap, no duplicate"
        );
    }
    assert!(
        lock_as_stranger(&producer, &group, &mqs).await.is_empty(),
        "the broker keeps the queues locked for the consumer"
    );
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        report.offsets_committed.values().sum::<i64>(),
        20,
        "{report:?}"
    );
    // Shutdown unlocked the queues: another client gets them at once.
    let locked = lock_as_stranger(&producer, &group, &mqs).await;
    assert_eq!(locked.len(), mqs.len(), "unlocked at shutdown: {locked:?}");
    producer.shutdown().await;
}

/// Prints a note about `test` (stderr, uncaptured).
fn skip_note(test: &str, note: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "note {test}: {note}");
}

fn offsets_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(unique(&format!("rocketmq-interop-{name}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_delivers_everything_to_every_member() {
    let Some(ns) = namesrv("broadcasting_delivers_everything_to_every_member") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_bcast");
    create_topic(&producer, &topic, 2).await;
    let group = unique("cg");
    let dir = offsets_dir("bcast");
    let (seen_a, seen_b) = (Seen::default(), Seen::default());
    let mut consumers = Vec::new();
    for seen in [&seen_a, &seen_b] {
        let consumer = recording(config(&ns), &group, &topic, seen)
            .message_model(MessageModel::Broadcasting)
            .offset_store_dir(&dir)
            .build()
            .await
            .unwrap();
        wait_assigned(&consumer, 2).await;
        assert_eq!(
            consumer.assigned().len(),
            2,
            "no retry topic when broadcasting"
        );
        consumers.push(consumer);
    }
    for i in 0..12 {
        producer
            .send(msg(&topic, &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("both got all 12", secs(30), || {
        seen_a.distinct() == 12 && seen_b.distinct() == 12
    })
    .await;
    assert_eq!(seen_a.counts(), seen_b.counts());
    for consumer in consumers {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_move_as_consumers_join_and_leave() {
    let Some(ns) = namesrv("queues_move_as_consumers_join_and_leave") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_rebal");
    create_topic(&producer, &topic, 4).await;
    let group = unique("cg");
    let seen = Seen::default();
    let first = recording(config(&ns), &group, &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&first, 4).await;
    for i in 0..20 {
        producer
            .send(msg(&topic, &format!("before-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("20 consumed by one member", secs(30), || {
        seen.distinct() >= 20
    })
    .await;
    // Offsets reach the broker every 5 s, on pulls and when a queue is
    // dropped; the joining member reads them at once, so without this a
    // message consumed just before the join may be consumed again (at least
    // once, as with Java).
    wait_until("offsets committed in memory", secs(10), || {
        first.committed_offsets().values().sum::<i64>() == 20
    })
    .await;
    first.persist_offsets().await.unwrap();

    // A second member joins: the broker notifies, both rebalance to 2 + 2.
    let second = recording(config(&ns), &group, &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&second, 2).await;
    wait_assigned(&first, 2).await;
    let (a, b): (BTreeSet<_>, BTreeSet<_>) = (
        owned(&first).into_iter().collect(),
        owned(&second).into_iter().collect(),
    );
    assert!(a.is_disjoint(&b), "{a:?} and {b:?} overlap");
    for i in 0..20 {
        producer
            .send(msg(&topic, &format!("during-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("40 consumed by two members", secs(30), || {
        seen.distinct() >= 40
    })
    .await;

    // The second leaves cleanly: the first takes all four queues back. A
    // Java broker notifies the remaining member at once; rocketmq-broker 1.0
    // does not (docs/interop.md), leaving it to the 20 s rebalance timer, so
    // after a short wait the test rebalances by hand and says so.
    let report = second.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    if !holds_within(secs(3), || owned(&first).len() == 4).await {
        skip_note(
            "queues_move_as_consumers_join_and_leave",
            "no NOTIFY_CONSUMER_IDS_CHANGED after a member unregistered (broker deviation); rebalancing by hand",
        );
        first.rebalance().await;
    }
    wait_assigned(&first, 4).await;
    for i in 0..20 {
        producer
            .send(msg(&topic, &format!("after-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("60 consumed", secs(30), || seen.distinct() >= 60).await;
    let duplicates: Vec<_> = seen.counts().into_iter().filter(|(_, n)| *n > 1).collect();
    assert!(duplicates.is_empty(), "clean hand-overs: {duplicates:?}");
    first.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_consumer_resumes_without_duplicates() {
    let Some(ns) = namesrv("a_restarted_consumer_resumes_without_duplicates") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_restart");
    create_topic(&producer, &topic, 4).await;
    let group = unique("cg");
    let seen = Seen::default();
    let consumer = recording(config(&ns), &group, &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    for i in 0..16 {
        producer
            .send(msg(&topic, &format!("first-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("the first 16", secs(30), || seen.distinct() >= 16).await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        report.offsets_committed.values().sum::<i64>(),
        16,
        "{report:?}"
    );

    for i in 0..8 {
        producer
            .send(msg(&topic, &format!("second-{i}"), "x"))
            .await
            .unwrap();
    }
    let again = Seen::default();
    let restarted = recording(config(&ns), &group, &topic, &again)
        .build()
        .await
        .unwrap();
    wait_until("the second 8 and all offsets committed", secs(30), || {
        again.distinct() >= 8 && restarted.committed_offsets().values().sum::<i64>() == 24
    })
    .await;
    let bodies: BTreeSet<String> = again.bodies().into_iter().collect();
    let expected: BTreeSet<String> = (0..8).map(|i| format!("second-{i}")).collect();
    assert_eq!(bodies, expected, "resumed at the persisted offsets");
    assert_eq!(again.len(), 8, "no duplicates: {:?}", again.counts());
    restarted.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_consumer_polls_commits_and_resumes() {
    let Some(ns) = namesrv("the_pull_consumer_polls_commits_and_resumes") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_pull");
    create_topic(&producer, &topic, 2).await;
    for i in 0..10 {
        producer
            .send(msg(&topic, &format!("p{i}"), "x"))
            .await
            .unwrap();
    }
    let group = unique("cg");
    let build = || {
        PullConsumer::builder(group.as_str(), config(&ns))
            .subscribe(topic.as_str(), "*")
            .consume_from_where(rocketmq_client::consumer::ConsumeFromWhere::FirstOffset)
            .auto_commit(false)
            .build()
    };
    let consumer = build().await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(30);
    while got.len() < 10 && tokio::time::Instant::now() < deadline {
        got.extend(consumer.poll(secs(1)).await.unwrap());
    }
    let bodies: BTreeSet<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    assert_eq!(bodies.len(), 10, "{bodies:?}");
    consumer.commit_sync().await.unwrap();
    consumer.shutdown().await;

    producer.send(msg(&topic, "later", "x")).await.unwrap();
    let resumed = build().await.unwrap();
    let mut next = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(30);
    while next.is_empty() && tokio::time::Instant::now() < deadline {
        next = resumed.poll(secs(1)).await.unwrap();
    }
    let bodies: Vec<_> = next
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    assert_eq!(bodies, ["later"], "resumed after the committed offsets");
    resumed.shutdown().await;
    producer.shutdown().await;
}

/// A running lite pull consumer takes up a topic it subscribes to and lets
/// go of one it unsubscribes from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_consumer_subscribes_while_running() {
    let Some(ns) = namesrv("the_pull_consumer_subscribes_while_running") else {
        return;
    };
    let producer = producer(&ns).await;
    let first = unique("it_resub");
    let second = unique("it_resub");
    create_topic(&producer, &first, 2).await;
    create_topic(&producer, &second, 2).await;
    let consumer = PullConsumer::builder(unique("cg").as_str(), config(&ns))
        .subscribe(first.as_str(), "*")
        .consume_from_where(rocketmq_client::consumer::ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    consumer.subscribe(second.as_str(), "TagA").await.unwrap();
    let topics = || -> BTreeSet<String> {
        consumer
            .assignment()
            .into_iter()
            .map(|mq| mq.topic)
            .collect()
    };
    assert_eq!(topics(), BTreeSet::from([first.clone(), second.clone()]));
    producer.send(msg(&second, "b", "TagB")).await.unwrap();
    producer.send(msg(&second, "a", "TagA")).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(30);
    while got.is_empty() && tokio::time::Instant::now() < deadline {
        got = consumer.poll(secs(1)).await.unwrap();
    }
    let bodies: Vec<_> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    assert_eq!(bodies, ["a"], "the broker filters by the new subscription");
    consumer.unsubscribe(&first).await.unwrap();
    assert_eq!(topics(), BTreeSet::from([second.clone()]));
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A consumer started before its topic exists takes the topic up once it
/// is created, at the next route refresh rather than the next rebalance
/// (set far off here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_after_its_consumer_started_is_consumed() {
    let Some(ns) = namesrv("a_topic_created_after_its_consumer_started_is_consumed") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_late");
    let mut early = config(&ns);
    early.poll_name_server_interval = secs(1);
    early.rebalance_interval = secs(600);
    let seen = Seen::default();
    let consumer = recording(early, &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    assert!(owned(&consumer).is_empty(), "no topic yet");
    create_topic(&producer, &topic, 2).await;
    for i in 0..4 {
        producer
            .send(msg(&topic, &format!("late{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("the late topic's messages", secs(30), || seen.len() == 4).await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Seeking the pull consumer: within the queue's bounds as the broker
/// reports them it moves the queue; outside them it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_consumer_seeks_within_the_brokers_bounds_only() {
    let Some(ns) = namesrv("the_pull_consumer_seeks_within_the_brokers_bounds_only") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_seek");
    create_topic(&producer, &topic, 1).await;
    for i in 0..5 {
        producer
            .send(msg(&topic, &format!("s{i}"), "x"))
            .await
            .unwrap();
    }
    let mq = queues(&producer, &topic).await.remove(0);
    let consumer = PullConsumer::builder(unique("cg").as_str(), config(&ns))
        .assign([mq.clone()])
        .consume_from_where(rocketmq_client::consumer::ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    let refused = consumer.seek(&mq, 6).await;
    assert!(
        matches!(
            refused,
            Err(rocketmq_client::ClientError::OffsetOutOfRange { max: 5, .. })
        ),
        "{refused:?}"
    );
    consumer.seek(&mq, 3).await.unwrap();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(30);
    while got.len() < 2 && tokio::time::Instant::now() < deadline {
        got.extend(consumer.poll(secs(1)).await.unwrap());
    }
    let offsets: Vec<i64> = got.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [3, 4]);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reads_a_groups_lag_from_the_brokers() {
    let Some(ns) = namesrv("an_admin_reads_a_groups_lag_from_the_brokers") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_stats");
    create_topic(&producer, &topic, 4).await;
    let group = unique("cg");
    let seen = Seen::default();
    let consumer = recording(config(&ns), &group, &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    for i in 0..16 {
        producer
            .send(msg(&topic, &format!("read-{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until("the 16 consumed", secs(30), || seen.distinct() >= 16).await;
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    for i in 0..5 {
        producer
            .send(msg(&topic, &format!("unread-{i}"), "x"))
            .await
            .unwrap();
    }
    let stats = producer
        .admin()
        .consume_stats(&group, Some(&topic))
        .await
        .unwrap();
    assert_eq!(stats.offset_table.len(), 4, "{stats:?}");
    let stored: i64 = stats.offset_table.values().map(|q| q.broker_offset).sum();
    let committed: i64 = stats.offset_table.values().map(|q| q.consumer_offset).sum();
    assert_eq!((stored, committed), (21, 16), "{stats:?}");
    assert_eq!(stats.total_lag(), 5);
    producer.shutdown().await;
}
