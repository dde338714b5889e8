//! Producer sends against the testkit: what is stored is what was sent.

#![allow(clippy::unwrap_used)]

#[path = "waiting/mod.rs"]
#[allow(dead_code)]
mod waiting;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rocketmq_client::producer::{SendContext, SendHook, SendResult, SendStatus};
use rocketmq_client::{ClientConfig, ClientError, Producer};
use rocketmq_kernel::select::SelectByKey;
use rocketmq_model::message::{compression, property, sysflag};
use rocketmq_model::{Message, MessageExt, MessageQueue, OffsetMessageId};
use rocketmq_testkit::TestCluster;
use waiting::wait_until;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

/// A cluster of `brokers` brokers serving topic `T`.
async fn cluster_with_topic_t(brokers: usize) -> TestCluster {
    TestCluster::builder()
        .brokers(brokers)
        .topic("T")
        .build()
        .await
        .unwrap()
}

/// A message to topic `T`.
fn to_t(body: impl Into<bytes::Bytes>) -> Message {
    Message::builder("T").body(body).build().unwrap()
}

async fn producer(cluster: &TestCluster, instance: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("pg")
        .build()
        .await
        .unwrap()
}

/// Every message stored for `topic` on every broker.
fn stored(cluster: &TestCluster, topic: &str) -> Vec<MessageExt> {
    let mut all = Vec::new();
    for broker in cluster.brokers() {
        for queue_id in 0..8 {
            all.extend(broker.messages(topic, queue_id));
        }
    }
    all
}

fn stored_one(cluster: &TestCluster, result: &SendResult) -> MessageExt {
    let broker = cluster
        .broker_named(&result.message_queue.broker_name)
        .unwrap();
    let queue = broker.messages(&result.message_queue.topic, result.message_queue.queue_id);
    let offset = usize::try_from(result.queue_offset).unwrap();
    queue[offset].clone()
}

#[tokio::test(start_paused = true)]
async fn a_sync_send_is_stored_as_sent() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "sync_send").await;
    let msg = Message::builder("T")
        .body("hello")
        .tags("TagA")
        .keys(["k1", "k2"])
        .property("custom", "v")
        .build()
        .unwrap();
    let result = producer.send(msg).await.unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    assert_eq!(result.message_queue.topic, "T");
    let got = stored_one(&cluster, &result);
    assert_eq!(&got.message.body[..], b"hello");
    assert_eq!(got.message.tags(), Some("TagA"));
    assert_eq!(got.message.keys().collect::<Vec<_>>(), ["k1", "k2"]);
    assert_eq!(got.message.property("custom"), Some("v"));
    assert_eq!(got.message.uniq_key(), Some(result.msg_id.as_str()));
    assert_eq!(got.sys_flag & sysflag::COMPRESSED_FLAG, 0);
    let offset_id = OffsetMessageId::parse(&result.offset_msg_id).unwrap();
    assert_eq!(offset_id.commit_log_offset, got.commit_log_offset);
    assert_eq!(result.region_id, "DefaultRegion");
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bodies_of_4_kib_and_more_are_zlib_compressed() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "compression").await;
    let big = "x".repeat(4096);
    let result = producer.send(to_t(big.clone())).await.unwrap();
    let got = stored_one(&cluster, &result);
    assert_ne!(
        got.sys_flag & sysflag::COMPRESSED_FLAG,
        0,
        "compressed flag"
    );
    let body = compression::decompress(
        &got.message.body,
        compression::CompressionType::Zlib,
        1 << 20,
    )
    .unwrap();
    assert_eq!(body, big.as_bytes());

    let small = producer
        .send(
            Message::builder("T")
                .body("x".repeat(4095))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let got = stored_one(&cluster, &small);
    assert_eq!(got.sys_flag & sysflag::COMPRESSED_FLAG, 0);
    assert_eq!(got.message.body.len(), 4095);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn async_sends_at_high_load_all_succeed() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "async_load"))
        .producer_group("pg")
        .max_in_flight_async_sends(8)
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for i in 0..500 {
        let msg = to_t(format!("m{i}"));
        handles.push(producer.send_async(msg).await.unwrap());
    }
    let mut ids = HashSet::new();
    for handle in handles {
        let result = handle.await.unwrap();
        assert!(ids.insert(result.msg_id));
    }
    assert_eq!(stored(&cluster, "T").len(), 500);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// As Java's `backPressureForAsyncSendSize`: the bodies in flight are
/// bounded too, not only their count.
#[tokio::test(start_paused = true)]
async fn async_sends_wait_for_room_for_their_bodies() {
    let cluster = cluster_with_topic_t(1).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "async_bytes"))
        .producer_group("pg")
        .max_in_flight_async_bytes(1000) // raised to 1 MiB, Java's floor
        .build()
        .await
        .unwrap();
    // Every send takes a second to be answered.
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(1),
    );
    let started = tokio::time::Instant::now();
    let mut handles = Vec::new();
    let mut queued_at = Vec::new();
    // 600 + 600 KiB do not fit in 1 MiB: the second waits for the first;
    // 2 MiB, more than the limit, go alone once both are done. Bodies are
    // counted as given (these compress to nearly nothing).
    for size in [600 << 10, 600 << 10, 2 << 20, 10] {
        handles.push(producer.send_async(to_t("x".repeat(size))).await.unwrap());
        queued_at.push(started.elapsed().as_secs());
    }
    assert_eq!(queued_at, [0, 1, 2, 3]);
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(stored(&cluster, "T").len(), 4);
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// "No limit" said with the largest number builds and sends.
#[tokio::test(start_paused = true)]
async fn unbounded_async_limits_are_taken() {
    let cluster = cluster_with_topic_t(1).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "async_unbounded"))
        .producer_group("pg")
        .max_in_flight_async_sends(usize::MAX)
        .max_in_flight_async_bytes(usize::MAX)
        .build()
        .await
        .unwrap();
    let handle = producer.send_async(to_t("x")).await.unwrap();
    handle.await.unwrap();
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_oneway_send_is_stored() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "oneway").await;
    let msg = Message::builder("T")
        .body("fire")
        .tags("F")
        .build()
        .unwrap();
    producer.send_oneway(msg).await.unwrap();
    wait_until("the oneway send is stored", Duration::from_secs(10), || {
        !stored(&cluster, "T").is_empty()
    })
    .await;
    let got = stored(&cluster, "T").remove(0);
    assert_eq!(got.message.tags(), Some("F"));
    assert!(got.message.uniq_key().is_some());
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_stored_with_a_uniq_key_per_message() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "batch").await;
    let msgs: Vec<Message> = (0..3)
        .map(|i| {
            Message::builder("T")
                .body("y".repeat(5000))
                .tags(format!("t{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let result = producer.send_batch(msgs).await.unwrap();
    let ids: Vec<&str> = result.msg_id.split(',').collect();
    assert_eq!(ids.len(), 3);
    let queue = cluster
        .broker(0)
        .messages("T", result.message_queue.queue_id);
    assert_eq!(queue.len(), 3);
    for (i, got) in queue.iter().enumerate() {
        assert_eq!(got.message.uniq_key(), Some(ids[i]));
        assert_eq!(got.message.tags(), Some(format!("t{i}").as_str()));
        assert_eq!(
            got.sys_flag & sysflag::COMPRESSED_FLAG,
            0,
            "batches are not compressed"
        );
        assert_eq!(got.message.body.len(), 5000);
    }
    let mixed = vec![to_t("a"), Message::builder("U").body("b").build().unwrap()];
    assert!(matches!(
        producer.send_batch(mixed).await,
        Err(ClientError::Model(_))
    ));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_topic_is_created_through_tbw102() {
    let cluster = TestCluster::builder().build().await.unwrap();
    let producer = producer(&cluster, "auto_create").await;
    assert!(cluster.broker(0).topic("NEW").is_none());
    let result = producer
        .send(Message::builder("NEW").body("first").build().unwrap())
        .await
        .unwrap();
    let config = cluster.broker(0).topic("NEW").unwrap();
    assert_eq!(config.write_queue_nums, 4);
    assert_eq!(stored_one(&cluster, &result).message.topic, "NEW");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Counts send attempts and remembers their brokers and outcomes.
#[derive(Default)]
struct Attempts {
    before: AtomicUsize,
    brokers: std::sync::Mutex<Vec<String>>,
    outcomes: std::sync::Mutex<Vec<(String, u32, bool)>>,
    oneway: std::sync::Mutex<Vec<(String, bool)>>,
}

impl SendHook for Attempts {
    fn before_send(&self, ctx: &SendContext<'_>) {
        self.before.fetch_add(1, Ordering::SeqCst);
        self.brokers
            .lock()
            .unwrap()
            .push(ctx.message_queue.broker_name.clone());
    }

    fn after_send(&self, ctx: &SendContext<'_>, result: Result<&SendResult, &ClientError>) {
        self.outcomes.lock().unwrap().push((
            ctx.broker_addr.to_owned(),
            ctx.attempt,
            result.is_ok(),
        ));
    }

    fn after_oneway(&self, ctx: &SendContext<'_>, result: Result<(), &ClientError>) {
        self.oneway
            .lock()
            .unwrap()
            .push((ctx.message_queue.broker_name.clone(), result.is_ok()));
    }
}

#[tokio::test(start_paused = true)]
async fn a_busy_broker_is_retried_on_the_other_one() {
    let cluster = cluster_with_topic_t(2).await;
    let attempts = Arc::new(Attempts::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, "busy_retry"))
        .producer_group("pg")
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    cluster.broker_named("broker-a").unwrap().fail_requests(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        rocketmq_model::ResponseCode::SYSTEM_BUSY,
        1000,
    );
    for i in 0..6 {
        let msg = to_t(format!("m{i}"));
        let result = producer.send(msg).await.unwrap();
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    let brokers = attempts.brokers.lock().unwrap().clone();
    assert!(brokers.len() > 6, "some sends were retried: {brokers:?}");
    for pair in brokers.windows(2) {
        if pair[0] == "broker-a" {
            assert_eq!(pair[1], "broker-b", "a retry avoids the failed broker");
        }
    }
    assert_eq!(stored(&cluster, "T").len(), 6);
    let outcomes = attempts.outcomes.lock().unwrap().clone();
    assert_eq!(
        outcomes.len(),
        brokers.len(),
        "after_send follows every attempt"
    );
    let addr_a = cluster.broker_named("broker-a").unwrap().addr().to_owned();
    for (addr, attempt, ok) in outcomes {
        assert_eq!(ok, addr != addr_a, "{addr} attempt {attempt}");
        if addr == addr_a {
            assert_eq!(attempt, 0, "a retry never returns to the busy broker");
        }
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn retries_stay_within_the_send_timeout() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "timeout_budget").await;
    producer.send(to_t("warm")).await.unwrap();
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(5),
    );
    let started = tokio::time::Instant::now();
    let error = producer.send(to_t("slow")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(
        elapsed,
        Duration::from_secs(3),
        "the whole budget, not more"
    );
    assert!(matches!(error, ClientError::SendTimeout { .. }), "{error}");
    assert!(error.is_retriable());
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Each attempt may use what is left of the send timeout, as in Java, not a
/// fixed per-call timeout: a broker answering in 5 s serves a producer whose
/// budget is 10 s at the first attempt.
#[tokio::test(start_paused = true)]
async fn one_slow_answer_within_a_long_send_timeout_is_not_retried() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "long_budget"))
        .producer_group("pg")
        .send_msg_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    producer.send(to_t("warm")).await.unwrap();
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(5),
    );
    let started = tokio::time::Instant::now();
    let result = producer.send(to_t("slow")).await.unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(5),
        "one attempt, answered"
    );
    let slow: Vec<_> = stored(&cluster, "T")
        .into_iter()
        .filter(|m| &m.message.body[..] == b"slow")
        .collect();
    assert_eq!(slow.len(), 1, "stored once: no retry");
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java gives up before an attempt once the send timeout is spent: no hook
/// runs, nothing is written, and the broker stores nothing it was not asked
/// to wait for.
#[tokio::test(start_paused = true)]
async fn no_attempt_starts_once_the_budget_is_spent() {
    let cluster = cluster_with_topic_t(1).await;
    // A producer on the same client instance learns the route first, so the
    // spent budget is met at the attempt, not at the route lookup.
    let warm = producer(&cluster, "spent").await;
    warm.send(to_t("warm")).await.unwrap();
    let attempts = Arc::new(Attempts::default());
    let spent = Producer::builder()
        .client_config(config(&cluster, "spent"))
        .producer_group("pg-spent")
        .send_msg_timeout(Duration::ZERO)
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    let err = spent.send(to_t("late")).await.unwrap_err();
    assert!(
        matches!(err, ClientError::SendTimeout { attempts: 0, .. }),
        "{err}"
    );
    assert_eq!(attempts.before.load(Ordering::SeqCst), 0, "no hook ran");
    // The warm producer's next message follows, on the one connection to the
    // one broker, anything the spent producer could have written.
    warm.send(to_t("after")).await.unwrap();
    let bodies: Vec<_> = stored(&cluster, "T")
        .into_iter()
        .map(|m| m.message.body.clone())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.iter().all(|b| &b[..] != b"late"), "{bodies:?}");
    spent.shutdown().await;
    warm.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn every_broker_busy_gives_up_after_three_attempts() {
    let cluster = cluster_with_topic_t(2).await;
    let attempts = Arc::new(Attempts::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, "all_busy"))
        .producer_group("pg")
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    cluster.fail_requests(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        rocketmq_model::ResponseCode::SYSTEM_BUSY,
        1000,
    );
    let error = producer.send(to_t("busy")).await.unwrap_err();
    assert_eq!(
        attempts.before.load(Ordering::SeqCst),
        3,
        "1 + retry_times_when_send_failed"
    );
    assert!(error.is_retriable(), "{error}");
    assert!(
        error.to_string().contains("SYSTEM_BUSY") || error.to_string().contains("(2)"),
        "{error}"
    );
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_over_4_mib_fails_before_any_request() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let attempts = Arc::new(Attempts::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, "too_large"))
        .producer_group("pg")
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    let body = vec![b'z'; 4 * 1024 * 1024 + 1];
    let error = producer.send(to_t(body)).await.unwrap_err();
    assert!(
        matches!(
            error,
            ClientError::MessageTooLarge {
                size: 4_194_305,
                limit: 4_194_304
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("exceeds the maximum message size")
    );
    assert_eq!(attempts.before.load(Ordering::SeqCst), 0);
    assert!(stored(&cluster, "T").is_empty());
    let forbidden = producer
        .send(Message::new("SCHEDULE_TOPIC_XXXX", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(forbidden, ClientError::InvalidMessage(_)),
        "{forbidden}"
    );
    let empty = producer.send(Message::new("T", "")).await.unwrap_err();
    assert!(matches!(empty, ClientError::InvalidMessage(_)), "{empty}");
    assert_eq!(attempts.before.load(Ordering::SeqCst), 0);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn queue_choice_by_queue_selector_and_sharding_key() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "selectors").await;
    let mq = MessageQueue::new("T", "broker-a", 3);
    let to_queue = producer.send_to_queue(to_t("q"), &mq).await.unwrap();
    assert_eq!(to_queue.message_queue, mq);

    let by_key = |key: &str| SelectByKey(key.to_owned());
    let first = producer
        .send_with_selector(to_t("a"), &by_key("order-7"))
        .await
        .unwrap();
    let second = producer
        .send_with_selector(to_t("b"), &by_key("order-7"))
        .await
        .unwrap();
    assert_eq!(first.message_queue, second.message_queue);

    let sharded = |body: &str| {
        Message::builder("T")
            .body(body.to_owned())
            .sharding_key("user-1")
            .build()
            .unwrap()
    };
    let s1 = producer.send(sharded("1")).await.unwrap();
    let s2 = producer.send(sharded("2")).await.unwrap();
    let s3 = producer.send(sharded("3")).await.unwrap();
    assert_eq!(s1.message_queue, s2.message_queue);
    assert_eq!(s2.message_queue, s3.message_queue);
    assert_eq!(s3.queue_offset, s2.queue_offset + 1);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn delayed_messages_are_scheduled_by_the_broker() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "delay").await;
    let msg = Message::builder("T")
        .body("later")
        .delay_level(3)
        .build()
        .unwrap();
    let result = producer.send(msg).await.unwrap();
    assert_eq!(result.status, SendStatus::SendOk);
    assert_eq!(cluster.broker(0).scheduled_count(), 1);
    assert!(
        stored(&cluster, "T").is_empty(),
        "not visible before its delay"
    );
    wait_until(
        "the delayed message is delivered",
        Duration::from_secs(30),
        || !stored(&cluster, "T").is_empty(),
    )
    .await;
    let delivered = stored(&cluster, "T");
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].message.uniq_key(),
        Some(result.msg_id.as_str())
    );
    assert_eq!(
        delivered[0].message.property(property::REAL_TOPIC),
        Some("T")
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sends_move_off_a_stopped_broker_and_come_back_when_it_returns() {
    let cluster = cluster_with_topic_t(2).await;
    let attempts = Arc::new(Attempts::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, "failover"))
        .producer_group("pg")
        .send_latency_fault_enable(true)
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    producer.send(to_t("warm")).await.unwrap();
    let broker_a = cluster.broker_named("broker-a").unwrap();
    broker_a.stop().await;
    attempts.brokers.lock().unwrap().clear();
    for i in 0..20 {
        let msg = to_t(format!("m{i}"));
        let result = producer.send(msg).await.unwrap();
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    let tried_a = attempts
        .brokers
        .lock()
        .unwrap()
        .iter()
        .filter(|b| *b == "broker-a")
        .count();
    assert!(
        tried_a <= 1,
        "an isolated broker is avoided ({tried_a} attempts)"
    );

    broker_a.restart().await.unwrap();
    tokio::time::sleep(Duration::from_secs(700)).await;
    let mut brokers = HashSet::new();
    for i in 0..20 {
        let msg = to_t(format!("n{i}"));
        brokers.insert(producer.send(msg).await.unwrap().message_queue.broker_name);
    }
    assert!(brokers.contains("broker-a"), "traffic returns: {brokers:?}");
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn oneway_sends_move_off_a_stopped_broker_too() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "oneway_failover"))
        .producer_group("pg")
        .send_latency_fault_enable(true)
        .build()
        .await
        .unwrap();
    producer.send(to_t("warm")).await.unwrap();
    cluster.broker_named("broker-a").unwrap().stop().await;
    let mut failed = 0;
    for i in 0..20 {
        if producer.send_oneway(to_t(format!("m{i}"))).await.is_err() {
            failed += 1;
        }
    }
    assert!(
        failed <= 1,
        "an unreachable broker is avoided ({failed} failed)"
    );
    let broker_b = cluster.broker_named("broker-b").unwrap();
    let on_b: usize = (0..8).map(|q| broker_b.messages("T", q).len()).sum();
    assert!(on_b >= 19, "{on_b} stored on broker-b");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java calls its send hooks for oneway sends too; a hook that traces or
/// audits sends must not miss them, written or not.
#[tokio::test(start_paused = true)]
async fn hooks_see_oneway_sends_written_or_not() {
    let cluster = cluster_with_topic_t(2).await;
    let attempts = Arc::new(Attempts::default());
    let producer = Producer::builder()
        .client_config(config(&cluster, "oneway_hooks"))
        .producer_group("pg")
        .send_hook(attempts.clone())
        .build()
        .await
        .unwrap();
    for i in 0..4 {
        producer.send_oneway(to_t(format!("m{i}"))).await.unwrap();
    }
    cluster.broker_named("broker-a").unwrap().stop().await;
    // Round robin over both brokers' 16 queues reaches the stopped one.
    let mut failed = 0;
    let mut sent = 4;
    while failed == 0 && sent < 4 + 16 {
        if producer
            .send_oneway(to_t(format!("m{sent}")))
            .await
            .is_err()
        {
            failed += 1;
        }
        sent += 1;
    }
    assert_eq!(failed, 1, "round robin reaches the stopped broker");
    assert_eq!(attempts.before.load(Ordering::SeqCst), sent);
    assert!(
        attempts.outcomes.lock().unwrap().is_empty(),
        "a oneway send has no answer for after_send"
    );
    let oneway = attempts.oneway.lock().unwrap().clone();
    assert_eq!(oneway.len(), sent, "{oneway:?}");
    let hooks_failed: Vec<_> = oneway.iter().filter(|(_, ok)| !ok).collect();
    assert_eq!(hooks_failed.len(), failed, "{oneway:?}");
    assert!(hooks_failed.iter().all(|(broker, _)| broker == "broker-a"));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_names_its_reply_target_and_times_out_without_a_reply() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "request_reply").await;
    let started = tokio::time::Instant::now();
    let error = producer
        .request(to_t("ping"), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RequestTimeout { .. }),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let request = stored(&cluster, "T").remove(0);
    let props = &request.message;
    assert!(props.property(property::CORRELATION_ID).is_some());
    assert_eq!(
        props.property(property::REPLY_TO_CLIENT),
        Some(producer.instance().client_id())
    );
    assert_eq!(props.property(property::TTL), Some("2000"));
    assert_eq!(props.property(property::CLUSTER), Some("DefaultCluster"));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_times_out_in_time_while_its_route_is_looked_up() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = producer(&cluster, "request_slow_route").await;
    // The nameserver answers route lookups only after 5 s.
    cluster.delay_responses(
        rocketmq_model::RequestCode::GET_ROUTEINFO_BY_TOPIC,
        Duration::from_secs(5),
    );
    let started = tokio::time::Instant::now();
    let error = producer
        .request(to_t("ping"), Duration::from_secs(1))
        .await
        .unwrap_err();
    // Nothing was sent, so no reply was missed: the send's own error.
    assert!(
        matches!(error, ClientError::SendTimeout { attempts: 0, .. }),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_request_topic_registers_the_client_with_every_broker_first() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "request_heartbeat").await;
    let error = producer
        .request(to_t("ping"), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RequestTimeout { .. }),
        "{error}"
    );
    // Whichever broker gets the reply, it knows where to push it.
    let me = producer.instance().client_id();
    for broker in cluster.brokers() {
        assert!(
            broker.clients().iter().any(|c| c.client_id == me),
            "{} does not know the requester",
            broker.name()
        );
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_sends_within_its_own_timeout_not_the_send_timeout() {
    let cluster = cluster_with_topic_t(1).await;
    let producer = producer(&cluster, "request_budget").await;
    producer.send(to_t("warm")).await.unwrap();
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(4),
    );
    // 4 s to store, past the 3 s send timeout but within the request's 10 s:
    // stored, then no reply.
    let started = tokio::time::Instant::now();
    let error = producer
        .request(to_t("slow"), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::RequestTimeout { .. }),
        "{error}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    // Within 2 s the send itself does not finish: its error, not a missed reply.
    let error = producer
        .request(to_t("slower"), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::SendTimeout { .. }), "{error}");
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_stays_balanced_whatever_its_messages_keys() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "keyed_batch").await;
    for broker in cluster.brokers() {
        // Each broker refuses one batch: only a balanced send, retried on
        // the other broker, gets every batch through.
        broker.fail_requests(
            rocketmq_model::RequestCode::SEND_BATCH_MESSAGE,
            rocketmq_model::ResponseCode::SYSTEM_BUSY,
            1,
        );
    }
    for round in 0..4 {
        let batch: Vec<Message> = ["k1", "k2"]
            .iter()
            .map(|key| {
                Message::builder("T")
                    .body(format!("{round}-{key}"))
                    .sharding_key(*key)
                    .build()
                    .unwrap()
            })
            .collect();
        producer.send_batch(batch).await.unwrap();
    }
    assert_eq!(stored(&cluster, "T").len(), 8);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_sharding_key_picks_one_queue_in_every_send_mode() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "sharding_modes").await;
    let keyed = |body: String| {
        Message::builder("T")
            .body(body)
            .sharding_key("order-42")
            .build()
            .unwrap()
    };
    let mut handles = Vec::new();
    for i in 0..8 {
        handles.push(
            producer
                .send_async(keyed(format!("async-{i}")))
                .await
                .unwrap(),
        );
    }
    for handle in handles {
        handle.await.unwrap();
    }
    for i in 0..4 {
        producer
            .send_oneway(keyed(format!("oneway-{i}")))
            .await
            .unwrap();
        producer.send(keyed(format!("sync-{i}"))).await.unwrap();
    }
    let queues: std::collections::BTreeSet<(String, i32)> = cluster
        .brokers()
        .iter()
        .flat_map(|broker| {
            (0..8)
                .filter(move |&queue_id| !broker.messages("T", queue_id).is_empty())
                .map(move |queue_id| (broker.name().to_owned(), queue_id))
        })
        .collect();
    assert_eq!(queues.len(), 1, "{queues:?}");
    assert_eq!(stored(&cluster, "T").len(), 16);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A producer that resends a message stored without SEND_OK to another
/// broker, once.
async fn resending_producer(cluster: &TestCluster, instance: &str) -> Producer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("pg")
        .retry_times_when_send_failed(1)
        .retry_another_broker_when_not_store_ok(true)
        .build()
        .await
        .unwrap()
}

fn answer_sends(cluster: &TestCluster, broker: &str, code: rocketmq_model::ResponseCode) {
    cluster.broker_named(broker).unwrap().fail_requests(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        code,
        1000,
    );
}

#[tokio::test(start_paused = true)]
async fn a_result_stored_without_send_ok_is_resent_to_another_broker() {
    use rocketmq_model::ResponseCode;
    let cluster = cluster_with_topic_t(2).await;
    let producer = resending_producer(&cluster, "resend_not_ok").await;
    answer_sends(&cluster, "broker-a", ResponseCode::FLUSH_DISK_TIMEOUT);

    // Round robin over broker-a's and broker-b's 4 queues each picks
    // broker-a first at least once in 8 sends, wherever it starts.
    for i in 0..8 {
        let result = producer.send(to_t(format!("m{i}"))).await.unwrap();
        // broker-b stores it with SEND_OK, first or after broker-a.
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    // Java's semantics: what broker-a stored stays stored, so a message it
    // took first is on both brokers.
    let on_a = cluster.broker_named("broker-a").unwrap();
    let stored_on_a: usize = (0..4).map(|q| on_a.messages("T", q).len()).sum();
    assert!(stored_on_a > 0, "round robin never picked broker-a first");
    assert_eq!(stored(&cluster, "T").len(), 8 + stored_on_a);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_stored_result_is_the_answer_when_a_later_retry_fails() {
    use rocketmq_model::ResponseCode;
    let cluster = cluster_with_topic_t(2).await;
    let producer = resending_producer(&cluster, "stored_then_failed").await;
    answer_sends(&cluster, "broker-a", ResponseCode::FLUSH_DISK_TIMEOUT);
    answer_sends(&cluster, "broker-b", ResponseCode::SYSTEM_BUSY);

    for i in 0..6 {
        // Whichever broker comes first, the message is stored on broker-a
        // without SEND_OK, and broker-b refuses it: the stored result is
        // the answer, not broker-b's refusal, or the caller would send it
        // a third time.
        let result = producer.send(to_t(format!("m{i}"))).await.unwrap();
        assert_eq!(result.status, SendStatus::FlushDiskTimeout);
        assert_eq!(result.message_queue.broker_name, "broker-a");
    }
    assert_eq!(stored(&cluster, "T").len(), 6);
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_async_send_stored_without_send_ok_is_not_resent() {
    use rocketmq_model::ResponseCode;
    let cluster = cluster_with_topic_t(2).await;
    let producer = resending_producer(&cluster, "async_not_ok").await;
    answer_sends(&cluster, "broker-a", ResponseCode::FLUSH_DISK_TIMEOUT);
    answer_sends(&cluster, "broker-b", ResponseCode::FLUSH_DISK_TIMEOUT);

    for i in 0..4 {
        let handle = producer.send_async(to_t(format!("m{i}"))).await.unwrap();
        let result = handle.await.unwrap();
        assert_eq!(result.status, SendStatus::FlushDiskTimeout);
    }
    // As Java's async path: the callback gets the stored result, nothing is
    // sent again. (A sync send would have resent each one.)
    assert_eq!(stored(&cluster, "T").len(), 4);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// `Duration::MAX` is a common way to say "no limit": it is taken as a
/// very long wait, not an overflow (which panicked before).
#[tokio::test(start_paused = true)]
async fn duration_max_means_a_long_wait_not_a_panic() {
    let cluster = cluster_with_topic_t(1).await;
    let mut config = config(&cluster, "no_limit");
    config.rebalance_interval = Duration::MAX;
    config.persist_consumer_offset_interval = Duration::MAX;
    config.poll_name_server_interval = Duration::MAX;
    config.heartbeat_broker_interval = Duration::MAX;
    let producer = Producer::builder()
        .client_config(config)
        .producer_group("pg")
        .send_msg_timeout(Duration::MAX)
        .build()
        .await
        .unwrap();
    producer.send(to_t("sync")).await.unwrap();
    producer
        .send_async(to_t("async"))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.send_oneway(to_t("oneway")).await.unwrap();
    // No reply ever comes: the request waits (here cut short at 10 s).
    let waiting = producer.request(to_t("ping"), Duration::MAX);
    assert!(
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .is_err()
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// As Java's async sends (`MQClientAPIImpl.sendMessageAsync`): a broker's
/// refusal is the answer, not resent elsewhere (a sync send resends it), while
/// a request that could not reach its broker is still sent to another.
#[tokio::test(start_paused = true)]
async fn an_async_send_a_broker_refuses_is_not_resent() {
    use rocketmq_model::{RequestCode, ResponseCode};
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "async_refused").await;
    answer_sends(&cluster, "broker-a", ResponseCode::SYSTEM_BUSY);
    let mut refused = 0;
    // Round robin over the 8 queues starts at broker-a for some of them.
    for i in 0..8 {
        let handle = producer.send_async(to_t(format!("m{i}"))).await.unwrap();
        match handle.await {
            Ok(result) => assert_eq!(result.message_queue.broker_name, "broker-b"),
            Err(error) => {
                assert!(
                    matches!(&error, ClientError::Kernel(rocketmq_kernel::KernelError::Remoting(
                        rocketmq_remoting::RemotingError::Response { code, .. }
                    )) if *code == ResponseCode::SYSTEM_BUSY),
                    "{error:?}"
                );
                refused += 1;
            }
        }
    }
    let broker_a = cluster.broker_named("broker-a").unwrap();
    assert!(refused > 0, "round robin never picked broker-a");
    assert_eq!(
        broker_a.requests_received(RequestCode::SEND_MESSAGE_V2),
        refused,
        "each refusal ended its send"
    );
    assert_eq!(stored(&cluster, "T").len(), 8 - refused as usize);

    // A broker that cannot be reached: sent to the other one.
    cluster.clear_faults();
    broker_a.stop().await;
    for i in 0..8 {
        let handle = producer.send_async(to_t(format!("n{i}"))).await.unwrap();
        let result = handle.await.unwrap();
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// GO_AWAY (a broker shutting down gracefully) means the request was not
/// processed: an async send goes on to another broker, as after a lost
/// attempt (Java's client resends it on a new connection), though a
/// refusal would end it.
#[tokio::test(start_paused = true)]
async fn an_async_send_answered_go_away_goes_to_another_broker() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "async_go_away").await;
    answer_sends(&cluster, "broker-a", rocketmq_model::ResponseCode::GO_AWAY);
    // Round robin over the 8 queues starts at broker-a for some of them.
    for i in 0..8 {
        let handle = producer.send_async(to_t(format!("m{i}"))).await.unwrap();
        let result = handle.await.unwrap();
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    let broker_a = cluster.broker_named("broker-a").unwrap();
    assert!(
        broker_a.requests_received(rocketmq_model::RequestCode::SEND_MESSAGE_V2) > 0,
        "round robin never picked broker-a"
    );
    assert_eq!(stored(&cluster, "T").len(), 8);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A send to a chosen queue answered GO_AWAY goes again to that queue, on a
/// new connection, as Java's `invokeImpl` resends any request answered so
/// (once): the broker did not process it. A second GO_AWAY is the error.
#[tokio::test(start_paused = true)]
async fn a_send_to_a_queue_answered_go_away_goes_again_to_that_queue() {
    use rocketmq_model::{RequestCode, ResponseCode};
    let cluster = cluster_with_topic_t(1).await;
    let producer = producer(&cluster, "queue_go_away").await;
    let broker = cluster.broker_named("broker-a").unwrap();
    let mq = MessageQueue::new("T", "broker-a", 2);
    broker.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::GO_AWAY, 1);
    let result = producer.send_to_queue(to_t("sync"), &mq).await.unwrap();
    assert_eq!(result.message_queue, mq);
    broker.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::GO_AWAY, 1);
    let handle = producer
        .send_async_to_queue(to_t("async"), &mq)
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap().message_queue, mq);
    broker.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::GO_AWAY, 1);
    let selected = producer
        .send_with_selector(to_t("selected"), &SelectByKey("k".into()))
        .await
        .unwrap();
    assert_eq!(selected.message_queue.broker_name, "broker-a");
    assert_eq!(stored(&cluster, "T").len(), 3);
    assert_eq!(broker.requests_received(RequestCode::SEND_MESSAGE_V2), 6);

    broker.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::GO_AWAY, 2);
    let error = producer
        .send_to_queue(to_t("twice"), &mq)
        .await
        .unwrap_err();
    assert_eq!(
        error.response_code(),
        Some(ResponseCode::GO_AWAY),
        "{error:?}"
    );
    assert_eq!(stored(&cluster, "T").len(), 3);
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// As Java's `sendDefaultImpl`, which looks the route up once before its
/// attempts: a topic the nameserver has no route for fails at once, not
/// after a lookup per attempt.
#[tokio::test(start_paused = true)]
async fn a_topic_without_a_route_fails_after_one_lookup() {
    let cluster = TestCluster::builder()
        .topic("T")
        .auto_create_topics(false)
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster, "no_route_once").await;
    // Each lookup (the topic's, then the template's) takes a second.
    cluster.delay_responses(
        rocketmq_model::RequestCode::GET_ROUTEINFO_BY_TOPIC,
        Duration::from_secs(1),
    );
    let started = tokio::time::Instant::now();
    let error = producer
        .send(Message::new("Nowhere", "x"))
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::NoRoute { .. }), "{error}");
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_sent_to_a_queue_is_stored_there_in_order() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "batch_to_queue").await;
    let broker_b = cluster.broker_named("broker-b").unwrap();
    let mq = MessageQueue::new("T", "broker-b", 3);
    for round in 0..2 {
        let msgs = (0..3).map(|i| to_t(format!("r{round}-m{i}"))).collect();
        let result = producer.send_batch_to_queue(msgs, &mq).await.unwrap();
        assert_eq!(result.message_queue, mq);
    }
    let bodies: Vec<String> = broker_b
        .messages("T", 3)
        .iter()
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        ["r0-m0", "r0-m1", "r0-m2", "r1-m0", "r1-m1", "r1-m2"]
    );
    let elsewhere = MessageQueue::new("U", "broker-b", 0);
    let error = producer
        .send_batch_to_queue(vec![to_t("x")], &elsewhere)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::InvalidMessage(_)), "{error}");
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn async_and_oneway_sends_to_a_queue_land_there() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "modes_to_queue").await;
    let broker_b = cluster.broker_named("broker-b").unwrap();
    let mq = MessageQueue::new("T", "broker-b", 1);
    let mut handles = Vec::new();
    for i in 0..3 {
        let msg = to_t(format!("async-{i}"));
        handles.push(producer.send_async_to_queue(msg, &mq).await.unwrap());
    }
    for handle in handles {
        assert_eq!(handle.await.unwrap().message_queue, mq);
    }
    producer
        .send_oneway_to_queue(to_t("oneway"), &mq)
        .await
        .unwrap();
    let stored = || -> Vec<String> {
        (broker_b.messages("T", 1).iter())
            .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
            .collect()
    };
    wait_until("the four sends are stored", Duration::from_secs(10), || {
        stored().len() == 4
    })
    .await;
    let mut bodies = stored();
    bodies.sort();
    assert_eq!(bodies, ["async-0", "async-1", "async-2", "oneway"]);
    let elsewhere = MessageQueue::new("U", "broker-b", 1);
    for error in [
        producer
            .send_async_to_queue(to_t("x"), &elsewhere)
            .await
            .err(),
        producer
            .send_oneway_to_queue(to_t("x"), &elsewhere)
            .await
            .err(),
    ] {
        assert!(
            matches!(error, Some(ClientError::InvalidMessage(_))),
            "{error:?}"
        );
    }
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Async and oneway sends through a selector go to its choice (Java's
/// `send(msg, selector, arg, callback)` and `sendOneway(msg, selector,
/// arg)`); a selector that chooses nothing fails the call itself.
#[tokio::test(start_paused = true)]
async fn async_and_oneway_sends_through_a_selector_land_on_its_choice() {
    let cluster = cluster_with_topic_t(2).await;
    let producer = producer(&cluster, "modes_by_selector").await;
    let broker_b = cluster.broker_named("broker-b").unwrap();
    // 8 queues, 4 a broker: the sixth is broker-b's queue 1.
    let sixth = |_: &[MessageQueue], _: &Message| Some(5);
    let mut handles = Vec::new();
    for i in 0..3 {
        let msg = to_t(format!("async-{i}"));
        handles.push(
            producer
                .send_async_with_selector(msg, &sixth)
                .await
                .unwrap(),
        );
    }
    let mq = MessageQueue::new("T", "broker-b", 1);
    for handle in handles {
        assert_eq!(handle.await.unwrap().message_queue, mq);
    }
    producer
        .send_oneway_with_selector(to_t("oneway"), &sixth)
        .await
        .unwrap();
    wait_until("the four sends are stored", Duration::from_secs(10), || {
        broker_b.messages("T", 1).len() == 4
    })
    .await;
    let none = |_: &[MessageQueue], _: &Message| None;
    let out_of_range = |queues: &[MessageQueue], _: &Message| Some(queues.len());
    for error in [
        producer
            .send_async_with_selector(to_t("x"), &none)
            .await
            .err(),
        producer
            .send_oneway_with_selector(to_t("x"), &out_of_range)
            .await
            .err(),
    ] {
        assert!(
            matches!(error, Some(ClientError::NoQueueSelected { .. })),
            "{error:?}"
        );
    }
    assert_eq!(stored(&cluster, "T").len(), 4, "nothing more stored");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// A broker answer outside Java's retry codes ends a sync send, unless the
/// producer added it (Java's `addRetryResponseCode`): then the send goes on
/// to the other broker.
#[tokio::test(start_paused = true)]
async fn an_added_retry_code_sends_on_to_another_broker() {
    let cluster = cluster_with_topic_t(2).await;
    let try_elsewhere = rocketmq_model::ResponseCode(4321);
    cluster.broker_named("broker-a").unwrap().fail_requests(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        try_elsewhere,
        1000,
    );
    let plain = producer(&cluster, "plain_codes").await;
    let retrying = Producer::builder()
        .client_config(config(&cluster, "added_code"))
        .producer_group("pg")
        .retry_response_code(try_elsewhere)
        .build()
        .await
        .unwrap();
    // Round robin over 8 queues, 4 a broker: some of 8 sends start at
    // broker-a.
    let mut refused = 0;
    for i in 0..8 {
        match plain.send(to_t(format!("plain {i}"))).await {
            Ok(result) => assert_eq!(result.message_queue.broker_name, "broker-b"),
            Err(error) => {
                assert_eq!(error.response_code(), Some(try_elsewhere), "{error}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "a plain producer takes the code as the answer");
    for i in 0..8 {
        let result = retrying.send(to_t(format!("retried {i}"))).await.unwrap();
        assert_eq!(result.message_queue.broker_name, "broker-b");
    }
    assert_eq!(stored(&cluster, "T").len(), 8 - refused + 8);
    plain.shutdown().await;
    retrying.shutdown().await;
    cluster.shutdown().await;
}

/// Panics in every `before_send`.
struct Panics;

impl SendHook for Panics {
    fn before_send(&self, _ctx: &SendContext<'_>) {
        panic!("a send hook that panics (on purpose)");
    }
}

/// An asynchronous send runs on a task of the producer's: a panic there
/// (a send hook's) reaches the caller as `Panicked` with its message. It
/// used to read "asynchronous send is shut down".
#[tokio::test(start_paused = true)]
async fn a_panic_in_an_asynchronous_send_is_reported_as_one() {
    let cluster = cluster_with_topic_t(1).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, "panicking_hook"))
        .producer_group("pg")
        .send_hook(Panics)
        .build()
        .await
        .unwrap();
    let handle = producer.send_async(to_t("m")).await.unwrap();
    match handle.await {
        Err(ClientError::Panicked { what, message }) => {
            assert_eq!(what, "an asynchronous send");
            assert_eq!(message, "a send hook that panics (on purpose)");
        }
        other => panic!("{other:?}"),
    }
    producer.shutdown().await;
}
