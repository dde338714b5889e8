//! The pull consumer end to end: subscribe and poll, the stream, auto and
//! manual commits, seeks, pause and resume, assigned queues.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use consumer_support::{config, msg, producer, unique, wait_until};
use futures::StreamExt;
use rocketmq_client::PullConsumer;
use rocketmq_client::consumer::{ConsumeFromWhere, PullConsumerBuilder};
use rocketmq_model::body::ConsumeType;
use rocketmq_model::{MessageExt, MessageQueue, RequestCode};
use rocketmq_testkit::TestCluster;

fn body(m: &MessageExt) -> String {
    String::from_utf8_lossy(m.body()).into_owned()
}

/// Polls until `n` messages came (or panics after a minute of tokio time).
async fn poll_n(consumer: &PullConsumer, n: usize) -> Vec<MessageExt> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n}",
            got.len()
        );
        got.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    got
}

fn q(id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", id)
}

#[tokio::test(start_paused = true)]
async fn subscribe_poll_and_commit() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..20 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("poll")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.assignment().len(), 4);
    let group = cluster
        .broker(0)
        .groups()
        .consumers
        .into_iter()
        .find(|g| g.group == "lg")
        .unwrap();
    assert_eq!(group.consume_type, ConsumeType::ConsumeActively);
    let got = poll_n(&consumer, 20).await;
    let mut bodies: Vec<String> = got.iter().map(body).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 20);
    assert!(
        consumer
            .poll(Duration::from_secs(2))
            .await
            .unwrap()
            .is_empty()
    );
    consumer.commit_sync().await.unwrap();
    let stored: i64 = (0..4)
        .map(|i| cluster.broker(0).committed_offset("lg", &q(i)).unwrap())
        .sum();
    assert_eq!(stored, 20);
    let report = consumer.shutdown().await;
    assert_eq!(report.offsets_committed.values().sum::<i64>(), 20);
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_stream_yields_every_message() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("stream")))
        .subscribe("T", "TagA")
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    for i in 0..10 {
        let tag = if i % 2 == 0 { "TagA" } else { "TagB" };
        producer
            .send(msg("T", &format!("m{i}"), tag))
            .await
            .unwrap();
    }
    let got: Vec<MessageExt> = consumer
        .stream()
        .take(5)
        .map(|m| m.unwrap())
        .collect()
        .await;
    assert!(got.iter().all(|m| m.tags() == Some("TagA")));
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn uncommitted_messages_come_again_and_committed_ones_do_not() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let instance = unique("manual");
    let build = |auto: bool| {
        PullConsumer::builder("lg", config(&cluster, &instance))
            .subscribe("T", "*")
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .auto_commit(auto)
            .build()
    };
    let consumer = build(false).await.unwrap();
    assert_eq!(poll_n(&consumer, 8).await.len(), 8);
    consumer.shutdown().await;
    // Nothing was committed: everything comes again.
    let consumer = build(false).await.unwrap();
    assert_eq!(poll_n(&consumer, 8).await.len(), 8);
    consumer.commit();
    consumer.shutdown().await;
    // Committed: nothing comes again.
    let consumer = build(true).await.unwrap();
    assert!(
        consumer
            .poll(Duration::from_secs(3))
            .await
            .unwrap()
            .is_empty()
    );
    producer.send(msg("T", "new", "x")).await.unwrap();
    let got = poll_n(&consumer, 1).await;
    assert_eq!(body(&got[0]), "new");
    // Auto commit: the next poll commits what was handed out.
    assert!(
        consumer
            .poll(Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty()
    );
    let report = consumer.shutdown().await;
    assert_eq!(report.offsets_committed.values().sum::<i64>(), 9);
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn assigned_queues_seek_and_pause() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for queue in 0..2 {
        for i in 0..10 {
            producer
                .send_to_queue(msg("T", &format!("{queue}-{i}"), "x"), &q(queue))
                .await
                .unwrap();
        }
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("assign")))
        .assign([q(0), q(1)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let got = poll_n(&consumer, 20).await;
    let mut per_queue: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in &got {
        per_queue
            .entry(m.queue_id)
            .or_default()
            .push(m.queue_offset);
    }
    let all: Vec<i64> = (0..10).collect();
    assert_eq!(per_queue[&0], all);
    assert_eq!(per_queue[&1], all);

    consumer.seek(&q(0), 7).await.unwrap();
    let again = poll_n(&consumer, 3).await;
    assert_eq!(
        again.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    consumer.seek_to_begin(&q(1)).await.unwrap();
    assert_eq!(poll_n(&consumer, 10).await[0].queue_offset, 0);
    consumer.seek_to_end(&q(1)).await.unwrap();
    assert!(
        consumer
            .poll(Duration::from_secs(2))
            .await
            .unwrap()
            .is_empty()
    );
    consumer
        .seek_by_timestamp(&q(0), std::time::UNIX_EPOCH)
        .await
        .unwrap();
    assert_eq!(poll_n(&consumer, 10).await.len(), 10);
    assert!(
        matches!(consumer.seek(&q(3), 0).await, Err(rocketmq_client::ClientError::NotAssigned(mq)) if mq == q(3)),
        "not assigned"
    );
    // Java's "Seek offset illegal": the queue holds offsets 0..=10.
    for offset in [-1, 11] {
        let refused = consumer.seek(&q(0), offset).await;
        assert!(
            matches!(
                refused,
                Err(rocketmq_client::ClientError::OffsetOutOfRange { ref queue, offset: o, min: 0, max: 10 })
                    if *queue == q(0) && o == offset
            ),
            "seek to {offset}: {refused:?}"
        );
    }
    consumer.seek(&q(0), 10).await.unwrap();

    consumer.pause([&q(0)]);
    producer
        .send_to_queue(msg("T", "paused", "x"), &q(0))
        .await
        .unwrap();
    producer
        .send_to_queue(msg("T", "running", "x"), &q(1))
        .await
        .unwrap();
    let got = poll_n(&consumer, 1).await;
    assert_eq!(body(&got[0]), "running");
    assert!(
        consumer
            .poll(Duration::from_secs(3))
            .await
            .unwrap()
            .is_empty()
    );
    consumer.resume([&q(0)]);
    let got = poll_n(&consumer, 1).await;
    assert_eq!(body(&got[0]), "paused");

    consumer.assign([q(2)]).await.unwrap();
    assert_eq!(
        consumer.assignment().into_iter().collect::<Vec<_>>(),
        [q(2)]
    );
    producer
        .send_to_queue(msg("T", "q2", "x"), &q(2))
        .await
        .unwrap();
    let got = poll_n(&consumer, 1).await;
    assert_eq!(body(&got[0]), "q2");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn subscribing_members_share_the_queues() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let build = |name: String| {
        PullConsumer::builder("lg", config(&cluster, &name))
            .subscribe("T", "*")
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .build()
    };
    let first = build(unique("share")).await.unwrap();
    assert_eq!(first.assignment().len(), 4);
    let second = build(unique("share")).await.unwrap();
    wait_until(
        "the queues split two and two",
        Duration::from_secs(60),
        || first.assignment().len() == 2 && second.assignment().len() == 2,
    )
    .await;
    assert!(first.assignment().is_disjoint(&second.assignment()));
    for i in 0..12 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let mut bodies = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while bodies.len() < 12 {
        assert!(tokio::time::Instant::now() < deadline, "only {bodies:?}");
        for consumer in [&first, &second] {
            bodies.extend(
                consumer
                    .poll(Duration::from_millis(200))
                    .await
                    .unwrap()
                    .iter()
                    .map(body),
            );
        }
    }
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 12, "each message once");
    first.shutdown().await;
    second.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_broker_offset_reset_moves_the_pull_consumer() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("reset")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    assert_eq!(poll_n(&consumer, 8).await.len(), 8);
    consumer.commit_sync().await.unwrap();
    let pushed = cluster
        .broker(0)
        .reset_offset("lg", "T", 0, true)
        .await
        .unwrap();
    assert_eq!(pushed.len(), 4);
    let again = poll_n(&consumer, 8).await;
    let mut bodies: Vec<String> = again.iter().map(body).collect();
    bodies.sort();
    assert_eq!(bodies, (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let info = cluster
        .broker(0)
        .consumer_running_info("lg", consumer.client_id(), false)
        .await
        .unwrap();
    assert_eq!(info.mq_table.len(), 4);
    assert_eq!(
        info.properties.get("PROP_CONSUME_TYPE").map(String::as_str),
        Some("CONSUME_ACTIVELY")
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A cluster of one broker whose topic `T` has one queue, holding `n`
/// messages.
async fn one_queue_with(n: usize) -> (TestCluster, rocketmq_client::Producer) {
    let cluster = TestCluster::builder()
        .queues(1, 1)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..n {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    (cluster, producer)
}

#[tokio::test(start_paused = true)]
async fn auto_commit_waits_for_the_next_poll() {
    let (cluster, producer) = one_queue_with(10).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("auto")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let got = poll_n(&consumer, 1).await;
    let (first, handed_out) = (got[0].queue_offset, got.last().unwrap().queue_offset + 1);
    // The application is still processing the batch: neither the 5 s
    // persistence timer nor anything else commits it behind its back.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let committed = cluster.broker(0).committed_offset("lg", &q(0));
    assert!(
        committed.is_none_or(|offset| offset <= first),
        "committed {committed:?}, batch {first}..{handed_out}"
    );
    // Asking for more commits it; the timer then persists it.
    consumer.poll(Duration::from_millis(10)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let committed = cluster.broker(0).committed_offset("lg", &q(0)).unwrap();
    assert!(committed >= handed_out, "{committed} < {handed_out}");
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_stream_gives_back_what_it_did_not_yield() {
    let (cluster, producer) = one_queue_with(10).await;
    let instance = unique("stream");
    let build = || {
        PullConsumer::builder("lg", config(&cluster, &instance))
            .subscribe("T", "*")
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .poll_timeout(Duration::from_millis(500))
            .build()
    };
    let consumer = build().await.unwrap();
    let mut seen: Vec<i64> = consumer
        .stream()
        .take(2)
        .map(|m| m.unwrap().queue_offset)
        .collect()
        .await;
    // The stream took a whole batch and yielded two: the rest comes again.
    seen.extend(poll_n(&consumer, 8).await.iter().map(|m| m.queue_offset));
    seen.sort_unstable();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    consumer.commit_sync().await.unwrap();
    consumer.shutdown().await;
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(10));
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn what_a_dropped_stream_gives_back_survives_a_filtered_pull() {
    let (cluster, producer) = one_queue_with(3).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("filtered")))
        .subscribe("T", "x")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut stream = Box::pin(consumer.stream());
    assert_eq!(stream.next().await.unwrap().unwrap().queue_offset, 0);
    // Meanwhile the queue's next pull finds only a message of another tag,
    // and moves the consumed offset past it.
    producer.send(msg("T", "other", "y")).await.unwrap();
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(stream);
    let mut again = Vec::new();
    for _ in 0..5 {
        again.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    let offsets: Vec<i64> = again.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, [1, 2], "the two messages the stream did not yield");
    consumer.commit_sync().await.unwrap();
    consumer.shutdown().await;
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(4));
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_commit_while_streaming_covers_what_was_yielded_only() {
    let (cluster, producer) = one_queue_with(10).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("stream_commit")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    let mut stream = Box::pin(consumer.stream());
    // Process one message, commit it: the stream's batch holds all ten.
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.queue_offset, 0);
    consumer.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(1));
    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(second.queue_offset, 1);
    consumer.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(2));
    drop(stream);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_poll_without_limit_returns_what_is_there() {
    let (cluster, producer) = one_queue_with(1).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("poll_max")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let got = consumer.poll(Duration::MAX).await.unwrap();
    assert_eq!(got.len(), 1);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reading_the_offset_of_a_queue_owned_elsewhere_never_writes_it_back() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let send = |n: std::ops::Range<i32>| {
        let producer = &producer;
        async move {
            for i in n {
                producer
                    .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(1))
                    .await
                    .unwrap();
            }
        }
    };
    send(0..10).await;
    let owner = PullConsumer::builder("lg", config(&cluster, &unique("owner")))
        .assign([q(1)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    poll_n(&owner, 10).await;
    owner.commit_sync().await.unwrap();
    let other = PullConsumer::builder("lg", config(&cluster, &unique("other")))
        .assign([q(0)])
        .build()
        .await
        .unwrap();
    assert_eq!(other.committed(&q(1)).await.unwrap(), Some(10));
    assert!(!other.committed_offsets().contains_key(&q(1)));

    send(10..15).await;
    poll_n(&owner, 5).await;
    owner.commit_sync().await.unwrap();
    // Past the other member's offset persistence (every 5 s).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let broker = cluster.broker(0);
    assert_eq!(broker.committed_offset("lg", &q(1)), Some(15));
    other.shutdown().await;
    owner.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Panics on its first allocation, then gives every queue.
#[derive(Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl rocketmq_kernel::AllocateStrategy for PanicsOnce {
    fn allocate(
        &self,
        _group: &str,
        _own_client_id: &str,
        queues: &[MessageQueue],
        _client_ids: &[String],
    ) -> Vec<MessageQueue> {
        assert!(
            self.0.swap(true, std::sync::atomic::Ordering::SeqCst),
            "a buggy strategy"
        );
        queues.to_vec()
    }

    fn name(&self) -> &str {
        "PANICS_ONCE"
    }
}

#[tokio::test(start_paused = true)]
async fn a_strategy_that_panics_once_does_not_stop_the_rebalancing() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("panics")))
        .subscribe("T", "*")
        .allocate_strategy(std::sync::Arc::new(PanicsOnce::default()))
        .build()
        .await
        .unwrap();
    // The build's round met the panic and kept no queue; the instance's next
    // round (every 20 s) allocates.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while consumer.assignment().len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "never rebalanced");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    consumer.shutdown().await;
    cluster.shutdown().await;
}

/// CONSUME_MESSAGE_DIRECTLY names a group whose consumer here has no
/// listener: Java answers SYSTEM_ERROR ("The Consumer Group <g> not exist in
/// this consumer") for anything but a push consumer. This client answered
/// SUCCESS with no result, which an admin tool shows as a success.
#[tokio::test(start_paused = true)]
async fn direct_consumption_by_a_pull_consumer_is_refused_as_java_does() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    let sent = producer.send(msg("T", "m", "x")).await.unwrap();
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("direct")))
        .subscribe("T", "*")
        .build()
        .await
        .unwrap();
    let answer = cluster
        .broker(0)
        .consume_message_directly("lg", consumer.client_id(), &sent.offset_msg_id)
        .await;
    let err = answer.unwrap_err().to_string();
    assert!(err.contains("The Consumer Group <lg> not exist"), "{err}");
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A consumer of queue 0 of `T` from its first offset, committing by hand.
fn manual_on_q0(cluster: &TestCluster, instance: &str) -> PullConsumerBuilder {
    PullConsumer::builder("lg", config(cluster, instance))
        .assign([q(0)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
}

/// Everything `rounds` one-second polls return.
async fn poll_for(consumer: &PullConsumer, rounds: usize) -> Vec<MessageExt> {
    let mut got = Vec::new();
    for _ in 0..rounds {
        got.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    got
}

/// A cluster whose topic `T` has two queues on broker-a, `n` messages in
/// the first.
async fn two_queues_with(n: usize) -> (TestCluster, rocketmq_client::Producer) {
    let cluster = TestCluster::builder()
        .queues(2, 2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    for i in 0..n {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    (cluster, producer)
}

/// A queue given up and taken again: the batches fetched for its first
/// assignment (still in the poll buffer) must not be handed out; Java drops
/// them with the old ProcessQueue (`isDropped`).
#[tokio::test(start_paused = true)]
async fn a_queue_assigned_again_does_not_hand_out_its_old_buffer() {
    let (cluster, producer) = two_queues_with(20).await;
    let consumer = manual_on_q0(&cluster, &unique("reassigned"))
        .build()
        .await
        .unwrap();
    // Two seconds of paused time: the fetch task buffers the queue's 20
    // messages (2 batches).
    tokio::time::sleep(Duration::from_secs(2)).await;
    consumer.assign([q(1)]).await.unwrap();
    consumer.assign([q(0)]).await.unwrap();
    let got = poll_for(&consumer, 10).await;
    let offsets: Vec<i64> = got.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "each message once");
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// The stored offset is past the queue's end (a wiped store, a recreated
/// topic, or a seek past the end): the broker answers OFFSET_MOVED to the
/// max offset; messages polled after that must be committable. Java commits
/// with `updateOffset(mq, offset, false)` (DefaultLitePullConsumerImpl
/// `updateConsumeOffset`), so the committed offset follows what was polled.
#[tokio::test(start_paused = true)]
async fn commits_after_the_broker_moved_the_offset_back_are_kept() {
    let (cluster, producer) = two_queues_with(5).await;
    let instance = unique("moved_back");
    let build = || manual_on_q0(&cluster, &instance).build();
    // A previous life committed 1000 (a seek there is refused: "Seek
    // offset illegal", as in Java; a commit of chosen offsets is not).
    let first = build().await.unwrap();
    first
        .commit_offsets(BTreeMap::from([(q(0), 1000)]), true)
        .await
        .unwrap();
    first.shutdown().await;
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(1000));

    let consumer = build().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 5..10 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    let got = poll_for(&consumer, 5).await;
    let offsets: Vec<i64> = got.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, (5..10).collect::<Vec<_>>());
    consumer.commit_sync().await.unwrap();
    let committed = cluster.broker(0).committed_offset("lg", &q(0));
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!(committed, Some(10), "what was polled is committed");
}

/// A queue released and assigned again, then sought at once (the usual
/// assign-then-seek): its commits must still reach the broker.
#[tokio::test(start_paused = true)]
async fn commits_after_assigning_again_and_seeking_are_kept() {
    let (cluster, producer) = two_queues_with(5).await;
    let consumer = manual_on_q0(&cluster, &unique("reseek"))
        .build()
        .await
        .unwrap();
    assert_eq!(poll_for(&consumer, 3).await.len(), 5);
    consumer.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(5));
    consumer.assign([q(1)]).await.unwrap();
    consumer.assign([q(0)]).await.unwrap();
    consumer.seek(&q(0), 0).await.unwrap();
    let re: Vec<i64> = poll_for(&consumer, 3)
        .await
        .iter()
        .map(|m| m.queue_offset)
        .collect();
    assert_eq!(re, (0..5).collect::<Vec<_>>());
    for i in 5..10 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    let more: Vec<i64> = poll_for(&consumer, 10)
        .await
        .iter()
        .map(|m| m.queue_offset)
        .collect();
    assert_eq!(more, (5..10).collect::<Vec<_>>());
    consumer.commit_sync().await.unwrap();
    let in_memory = consumer.committed_offsets().get(&q(0)).copied();
    let committed = cluster.broker(0).committed_offset("lg", &q(0));
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!(in_memory, Some(10), "in memory");
    assert_eq!(committed, Some(10), "on the broker");
}

/// A stream yields one message of a 10-message batch; the queue is paused
/// and the stream dropped: the nine messages never yielded must come again
/// after resume (they do without the pause).
#[tokio::test(start_paused = true)]
async fn pausing_while_streaming_keeps_what_was_not_yielded() {
    let (cluster, producer) = two_queues_with(10).await;
    let consumer = manual_on_q0(&cluster, &unique("pause_stream"))
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut stream = Box::pin(consumer.stream());
    assert_eq!(stream.next().await.unwrap().unwrap().queue_offset, 0);
    consumer.pause([&q(0)]);
    // The doc: "A commit covers the messages the stream has yielded, not
    // the rest of its batch".
    consumer.commit_sync().await.unwrap();
    let committed = cluster.broker(0).committed_offset("lg", &q(0));
    drop(stream);
    consumer.resume([&q(0)]);
    let again: Vec<i64> = poll_for(&consumer, 5)
        .await
        .iter()
        .map(|m| m.queue_offset)
        .collect();
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!(
        again,
        (1..10).collect::<Vec<_>>(),
        "committed {committed:?}"
    );
    assert_eq!(committed, Some(1));
}

/// Java's `commit(offsets, persist)`: an application that finishes queues
/// at its own pace commits each when it is done with it, and only that.
#[tokio::test(start_paused = true)]
async fn chosen_offsets_are_committed_queue_by_queue() {
    let (cluster, producer) = two_queues_with(5).await;
    for i in 0..5 {
        producer
            .send_to_queue(msg("T", &format!("n{i}"), "x"), &q(1))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("by_queue")))
        .assign([q(0), q(1)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    assert_eq!(poll_for(&consumer, 3).await.len(), 10);
    consumer.commit_offsets([(q(0), 3)], true).await.unwrap();
    let broker = cluster.broker(0);
    assert_eq!(broker.committed_offset("lg", &q(0)), Some(3));
    assert_eq!(broker.committed_offset("lg", &q(1)), None, "q1 is not done");

    let elsewhere = MessageQueue::new("T", "broker-a", 7);
    let refused = consumer
        .commit_offsets([(q(1), 5), (elsewhere.clone(), 1)], true)
        .await;
    assert!(
        matches!(&refused, Err(rocketmq_client::ClientError::NotAssigned(mq)) if *mq == elsewhere),
        "{refused:?}"
    );
    assert_eq!(
        broker.committed_offset("lg", &q(1)),
        None,
        "nothing committed"
    );
    assert!(consumer.commit_offsets([(q(1), -1)], false).await.is_err());
    consumer.commit_offsets([(q(1), 5)], false).await.unwrap();
    assert_eq!(consumer.committed_offsets().get(&q(1)), Some(&5));
    consumer.shutdown().await;
    assert_eq!(
        broker.committed_offset("lg", &q(1)),
        Some(5),
        "persisted at shutdown"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A queue paused while a stream is part way through its batch: the stream
/// stops yielding that batch (the queue restarts where it stopped after the
/// resume), so nothing comes twice and a commit covers what was yielded.
#[tokio::test(start_paused = true)]
async fn a_stream_stops_yielding_a_queue_paused_under_it() {
    let (cluster, producer) = two_queues_with(10).await;
    let consumer = manual_on_q0(&cluster, &unique("pause_mid"))
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut offsets = Vec::new();
    {
        let mut stream = Box::pin(consumer.stream());
        offsets.push(stream.next().await.unwrap().unwrap().queue_offset);
        consumer.pause([&q(0)]);
        let more = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
        assert!(more.is_err(), "nothing from a paused queue: {more:?}");
        consumer.commit_sync().await.unwrap();
        assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(1));
        consumer.resume([&q(0)]);
        while offsets.len() < 10 {
            offsets.push(stream.next().await.unwrap().unwrap().queue_offset);
        }
    }
    assert_eq!(offsets, (0..10).collect::<Vec<_>>(), "each once, in order");
    consumer.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(10));
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A stream part way through an older batch of a queue whose latest batch
/// `poll` took: a pause rewinds only the latest batch (nothing fetches the
/// older one again), so the stream yields its batch to the end. Stopping it
/// lost the rest.
#[tokio::test(start_paused = true)]
async fn a_pause_after_a_later_poll_leaves_the_streams_older_batch_alone() {
    let (cluster, producer) = two_queues_with(20).await;
    let consumer = manual_on_q0(&cluster, &unique("older_batch"))
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut offsets = Vec::new();
    let mut stream = Box::pin(consumer.stream());
    offsets.push(stream.next().await.unwrap().unwrap().queue_offset);
    let polled = consumer.poll(Duration::from_secs(1)).await.unwrap();
    assert_eq!(polled.first().map(|m| m.queue_offset), Some(10));
    offsets.extend(polled.iter().map(|m| m.queue_offset));
    consumer.pause([&q(0)]);
    consumer.resume([&q(0)]);
    for _ in 1..10 {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        offsets.push(
            next.expect("the batch's rest")
                .unwrap()
                .unwrap()
                .queue_offset,
        );
    }
    drop(stream);
    offsets.sort_unstable();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "each once");
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Two streams: the second takes the latest batch, yields one message and
/// is dropped, giving the rest back; the first goes on with its older batch
/// to the end, and the rest given back comes again. Nothing is lost.
#[tokio::test(start_paused = true)]
async fn a_stream_dropped_beside_another_loses_nothing_of_either() {
    let (cluster, producer) = two_queues_with(20).await;
    let consumer = manual_on_q0(&cluster, &unique("two_streams"))
        .poll_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    let mut offsets = Vec::new();
    let mut first = Box::pin(consumer.stream());
    offsets.push(first.next().await.unwrap().unwrap().queue_offset);
    {
        let mut second = Box::pin(consumer.stream());
        offsets.push(second.next().await.unwrap().unwrap().queue_offset);
    }
    while offsets.len() < 20 {
        let next = tokio::time::timeout(Duration::from_secs(10), first.next()).await;
        offsets.push(next.expect("more to come").unwrap().unwrap().queue_offset);
    }
    drop(first);
    offsets.sort_unstable();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "each once");
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// `assign` given up on while it releases a queue (under a timeout): the
/// queue left the table, so its offset must leave the store too, or the
/// periodic persistence writes it over whoever reads the queue next.
#[tokio::test(start_paused = true)]
async fn an_assign_given_up_on_does_not_keep_persisting_the_released_queue() {
    let (cluster, producer) = two_queues_with(5).await;
    let first = manual_on_q0(&cluster, &unique("first"))
        .build()
        .await
        .unwrap();
    poll_n(&first, 5).await;
    first.commit_sync().await.unwrap();
    let _ = tokio::time::timeout(Duration::ZERO, first.assign([q(1)])).await;
    assert!(!first.assignment().contains(&q(0)));
    for i in 5..10 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    let second = manual_on_q0(&cluster, &unique("second"))
        .build()
        .await
        .unwrap();
    assert_eq!(poll_n(&second, 5).await[0].queue_offset, 5);
    second.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(10));
    // Past two periodic persists of `first`'s instance.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(10));
    first.shutdown().await;
    second.shutdown().await;
    producer.shutdown().await;
}

/// A build given up on (a timeout around `build`) after its heartbeat, while
/// the instance's rebalance starts fetching for the half-built consumer:
/// nothing is left running once everything is shut down.
#[tokio::test(start_paused = true)]
async fn a_build_given_up_on_leaves_no_fetch_task_behind() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let mut shared = config(&cluster, &unique("given_up"));
    shared.rebalance_interval = Duration::from_secs(1);
    let producer = rocketmq_client::Producer::builder()
        .client_config(shared.clone())
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    cluster.delay_responses(
        rocketmq_model::RequestCode::GET_CONSUMER_LIST_BY_GROUP,
        Duration::from_millis(2500),
    );
    let build = PullConsumer::builder("lg", shared)
        .subscribe("T", "*")
        .build();
    assert!(
        tokio::time::timeout(Duration::from_secs(2), build)
            .await
            .is_err()
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    producer.shutdown().await;
    cluster.shutdown().await;
    let runtime = tokio::runtime::Handle::current().metrics();
    wait_until("every task ended", Duration::from_secs(60), || {
        runtime.num_alive_tasks() == 0
    })
    .await;
}

/// A seek while the queue's fetch task still reads its start offset from
/// the broker: the answer, older than the seek, must not undo it.
#[tokio::test(start_paused = true)]
async fn a_seek_while_the_start_offset_is_read_stands() {
    let (cluster, producer) = two_queues_with(10).await;
    let first = manual_on_q0(&cluster, &unique("first"))
        .build()
        .await
        .unwrap();
    first.commit_offsets([(q(0), 3)], true).await.unwrap();
    first.shutdown().await;
    cluster.delay_responses(
        rocketmq_model::RequestCode::QUERY_CONSUMER_OFFSET,
        Duration::from_millis(500),
    );
    let second = manual_on_q0(&cluster, &unique("second"))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    second.seek(&q(0), 7).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(second.committed_offsets().get(&q(0)), Some(&7));
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(7));
    second.shutdown().await;
    producer.shutdown().await;
}

/// The release an `assign` given up on goes on (its persist waits on a
/// slow broker) while the application assigns the queue again: the queue's
/// new offset must not be removed by the old release, or every later commit
/// is dropped.
#[tokio::test(start_paused = true)]
async fn a_release_that_outlives_its_assign_leaves_the_next_assignment_alone() {
    let (cluster, producer, consumer) =
        q0_released_slowly_and_assigned_again("outlived", Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.delay_responses(RequestCode::UPDATE_CONSUMER_OFFSET, Duration::ZERO);
    for i in 5..10 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    assert_eq!(poll_n(&consumer, 5).await[0].queue_offset, 5);
    consumer.commit_sync().await.unwrap();
    assert_eq!(cluster.broker(0).committed_offset("lg", &q(0)), Some(10));
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Two releases of one queue overlap: the first (given up on) still
/// persists on a slow broker when the queue, assigned again and its new
/// reads committed, is released a second time. Only the latest release may
/// forget the queue's offset, after persisting the new commit.
#[tokio::test(start_paused = true)]
async fn overlapping_releases_of_a_queue_keep_the_later_commit() {
    let (cluster, producer, consumer) =
        q0_released_slowly_and_assigned_again("overlap", Duration::from_secs(60)).await;
    for i in 5..10 {
        producer
            .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
            .await
            .unwrap();
    }
    assert_eq!(poll_n(&consumer, 5).await[0].queue_offset, 5);
    consumer.commit();
    let _ = tokio::time::timeout(Duration::from_millis(100), consumer.assign([q(1)])).await;
    tokio::time::sleep(Duration::from_secs(200)).await;
    cluster.delay_responses(RequestCode::UPDATE_CONSUMER_OFFSET, Duration::ZERO);
    wait_until(
        "the later commit persisted",
        Duration::from_secs(30),
        || cluster.broker(0).committed_offset("lg", &q(0)) == Some(10),
    )
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// q0's five messages read and committed; then, with the broker answering
/// offset updates after `persist_delay`, an `assign` releasing q0 given up
/// on (its release goes on) and q0 assigned again.
async fn q0_released_slowly_and_assigned_again(
    name: &str,
    persist_delay: Duration,
) -> (TestCluster, rocketmq_client::Producer, PullConsumer) {
    let (cluster, producer) = two_queues_with(5).await;
    let consumer = manual_on_q0(&cluster, &unique(name)).build().await.unwrap();
    poll_n(&consumer, 5).await;
    consumer.commit_sync().await.unwrap();
    cluster.delay_responses(RequestCode::UPDATE_CONSUMER_OFFSET, persist_delay);
    let given_up = tokio::time::timeout(Duration::from_millis(100), consumer.assign([q(1)])).await;
    assert!(given_up.is_err());
    consumer.assign([q(0)]).await.unwrap();
    (cluster, producer, consumer)
}

/// Java's way to read chosen queues: start in assign mode with none, fetch
/// the topic's queues, assign them.
#[tokio::test(start_paused = true)]
async fn queues_fetched_after_start_can_be_assigned() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("fetching", config(&cluster, &unique("fetch")))
        .assign([])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    assert!(consumer.assignment().is_empty());
    let queues = consumer.fetch_message_queues("T").await.unwrap();
    assert_eq!(queues, (0..4).map(q).collect::<Vec<_>>());
    assert_eq!(producer.fetch_publish_queues("T").await.unwrap(), queues);
    let error = consumer.fetch_message_queues("Nope").await.unwrap_err();
    assert!(
        matches!(&error, rocketmq_client::ClientError::NoRoute { topic } if topic == "Nope"),
        "{error}"
    );
    consumer.assign(queues[..2].to_vec()).await.unwrap();
    let got = poll_n(&consumer, 4).await;
    assert!(
        got.iter().all(|m| m.queue_id < 2),
        "only the assigned queues"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's topic queue change listener: a topic that gains queues is seen
/// at the next check, and the watch ends with the consumer.
#[tokio::test(start_paused = true)]
async fn a_watched_topic_that_gains_queues_is_seen_at_the_next_check() {
    use rocketmq_testkit::TopicConfig;

    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let consumer = PullConsumer::builder("watching", config(&cluster, &unique("watch")))
        .assign([])
        .build()
        .await
        .unwrap();
    let mut queues = consumer.watch_message_queues("T").await.unwrap();
    assert_eq!(
        *queues.borrow_and_update(),
        (0..4).map(q).collect::<Vec<_>>()
    );
    cluster.create_topic("T", TopicConfig::new(8, 8));
    tokio::time::timeout(Duration::from_secs(60), queues.changed())
        .await
        .expect("seen within two checks")
        .unwrap();
    assert_eq!(
        *queues.borrow_and_update(),
        (0..8).map(q).collect::<Vec<_>>()
    );
    assert!(consumer.watch_message_queues("Nope").await.is_err());
    consumer.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(60), queues.changed()).await;
    assert!(
        matches!(ended, Ok(Err(_))),
        "the watch ends with the consumer"
    );
    cluster.shutdown().await;
}

/// Java's `MessageQueueListener` of a subscribing lite pull consumer: a
/// member sees its queues change when another joins the group.
#[tokio::test(start_paused = true)]
async fn a_member_sees_its_queues_change_when_another_joins() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let first = PullConsumer::builder("sharing", config(&cluster, &unique("first")))
        .subscribe("T", "*")
        .build()
        .await
        .unwrap();
    let mut assignment = first.watch_assignment();
    assert_eq!(assignment.borrow_and_update().len(), 4);
    let second = PullConsumer::builder("sharing", config(&cluster, &unique("second")))
        .subscribe("T", "*")
        .build()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        while assignment.borrow_and_update().len() != 2 {
            assignment.changed().await.unwrap();
        }
    })
    .await
    .expect("half the queues within a rebalance");
    assert_eq!(*assignment.borrow(), first.assignment());
    second.shutdown().await;
    first.shutdown().await;
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while assignment.changed().await.is_ok() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch ends with the consumer");
    cluster.shutdown().await;
}

/// Records the offsets of the messages the consume hooks were told of.
#[derive(Clone, Default)]
struct HandedOut(std::sync::Arc<std::sync::Mutex<Vec<i64>>>);

impl rocketmq_client::consumer::ConsumeHook for HandedOut {
    fn before_consume(
        &self,
        ctx: &rocketmq_client::consumer::ConsumeHookContext<'_>,
    ) -> Option<Box<dyn rocketmq_client::consumer::ConsumeSpan>> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(ctx.msgs.iter().map(|m| m.queue_offset));
        None
    }
}

/// A stream's hooks hear of the messages it yields, not of the batch it
/// took: what a dropped stream gives back is reported once, when it is
/// handed out again (a trace would show it consumed twice otherwise).
#[tokio::test(start_paused = true)]
async fn the_hooks_hear_once_of_what_a_dropped_stream_gives_back() {
    let (cluster, producer) = one_queue_with(10).await;
    let hook = HandedOut::default();
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("stream_hooks")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .poll_timeout(Duration::from_millis(500))
        .consume_hook(hook.clone())
        .build()
        .await
        .unwrap();
    let yielded: Vec<i64> = (consumer.stream().take(2))
        .map(|m| m.unwrap().queue_offset)
        .collect()
        .await;
    assert_eq!(yielded, [0, 1]);
    assert_eq!(*hook.0.lock().unwrap(), [0, 1], "only what was yielded");
    poll_n(&consumer, 8).await;
    assert_eq!(*hook.0.lock().unwrap(), (0..10).collect::<Vec<_>>());
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn fetching_pauses_at_the_threshold_for_all_queues() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster).await;
    for i in 0..400 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("all")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .pull_batch_size(10)
        .pull_threshold_for_all(20)
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.assignment().len(), 4);
    // Nobody polls: the fetches fill the buffer and wait (a minute of
    // paused time is many pull rounds).
    tokio::time::sleep(Duration::from_secs(60)).await;
    let report = consumer.shutdown().await;
    // Two batches in the buffer, and one more waiting per queue.
    assert!(
        (20..=60).contains(&report.messages_left),
        "{} messages fetched ahead of the polls",
        report.messages_left
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's lite pull consumer may subscribe and unsubscribe after `start`.
#[tokio::test(start_paused = true)]
async fn a_running_consumer_subscribes_and_unsubscribes() {
    let cluster = TestCluster::builder()
        .topic("T")
        .topic("U")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("resub")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let topics = |consumer: &PullConsumer| -> BTreeSet<String> {
        consumer
            .assignment()
            .into_iter()
            .map(|mq| mq.topic)
            .collect()
    };
    assert_eq!(topics(&consumer), BTreeSet::from(["T".to_owned()]));

    consumer.subscribe("U", "TagA").await.unwrap();
    assert_eq!(consumer.assignment().len(), 8);
    let subscribed = || -> BTreeSet<String> {
        let groups = cluster.broker(0).groups().consumers;
        let group = groups.into_iter().find(|g| g.group == "lg").unwrap();
        group.subscriptions.into_iter().map(|s| s.topic).collect()
    };
    assert!(subscribed().contains("U"), "{:?}", subscribed());
    producer.send(msg("U", "u-b", "TagB")).await.unwrap();
    producer.send(msg("U", "u-a", "TagA")).await.unwrap();
    assert_eq!(body(&poll_n(&consumer, 1).await[0]), "u-a");

    producer.send(msg("T", "t0", "x")).await.unwrap();
    assert_eq!(body(&poll_n(&consumer, 1).await[0]), "t0");
    consumer.commit();
    consumer.unsubscribe("T").await.unwrap();
    assert_eq!(topics(&consumer), BTreeSet::from(["U".to_owned()]));
    assert!(!subscribed().contains("T"), "{:?}", subscribed());
    // What was committed of T was persisted on release.
    let committed: i64 = (0..4)
        .filter_map(|id| cluster.broker(0).committed_offset("lg", &q(id)))
        .sum();
    assert_eq!(committed, 1);
    producer.send(msg("T", "t1", "x")).await.unwrap();
    producer.send(msg("U", "u-a2", "TagA")).await.unwrap();
    let got: Vec<String> = poll_for(&consumer, 10).await.iter().map(body).collect();
    assert_eq!(got, ["u-a2"]);
    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_assigning_consumer_may_not_subscribe() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let consumer = manual_on_q0(&cluster, &unique("assigned"))
        .build()
        .await
        .unwrap();
    let error = consumer.subscribe("T", "*").await.unwrap_err();
    assert!(
        matches!(error, rocketmq_client::ClientError::InvalidCall(_)),
        "{error}"
    );
    let error = consumer.unsubscribe("T").await.unwrap_err();
    assert!(
        matches!(error, rocketmq_client::ClientError::InvalidCall(_)),
        "{error}"
    );
    consumer.shutdown().await;
    cluster.shutdown().await;
}

/// "No limit" said with the largest number builds (tokio bounds a channel).
#[tokio::test(start_paused = true)]
async fn an_unbounded_threshold_for_all_is_taken() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("unbounded")))
        .subscribe("T", "*")
        .pull_batch_size(1)
        .pull_threshold_for_all(usize::MAX)
        .build()
        .await
        .unwrap();
    consumer.shutdown().await;
    cluster.shutdown().await;
}
