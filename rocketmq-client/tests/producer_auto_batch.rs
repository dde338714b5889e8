//! Automatic batching (Java 5.x's `autoBatch`) against the testkit, on
//! paused time: which sends share a SEND_BATCH_MESSAGE, what each sender
//! gets back, and what goes alone.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures::future::join_all;
use rocketmq_client::{ClientConfig, ClientError, Producer, ProducerBuilder};
use rocketmq_model::message::{batch_entry_len, property, sysflag};
use rocketmq_model::{Message, MessageExt, MessageQueue, RequestCode, ResponseCode};
use rocketmq_testkit::TestCluster;
use tokio::time::Instant;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    // A fixed address: looking the host's up takes real time, which paused
    // time would jump over.
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

async fn cluster() -> TestCluster {
    TestCluster::builder().topic("T").build().await.unwrap()
}

/// A batching producer; `tune` sets more. One instance name a test: tests
/// of one process share an instance by name.
async fn producer(
    cluster: &TestCluster,
    instance: &str,
    tune: impl FnOnce(ProducerBuilder) -> ProducerBuilder,
) -> Producer {
    let builder = Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("pg")
        .auto_batch(true);
    tune(builder).build().await.unwrap()
}

fn to_t(body: &str) -> Message {
    Message::new("T", body.to_owned())
}

/// What a one-byte message takes in a batch, encoded: its body, and
/// properties with the 32-character UNIQ_KEY the producer gives it.
fn entry_len_of_one_byte_body() -> usize {
    let mut sample = to_t("1");
    (sample.properties)
        .insert(property::UNIQ_KEY, "0".repeat(32))
        .unwrap();
    batch_entry_len(&sample)
}

fn requests(cluster: &TestCluster, code: RequestCode) -> u64 {
    cluster.broker(0).requests_received(code)
}

fn bodies_of(cluster: &TestCluster, queue_id: i32) -> Vec<String> {
    (cluster.broker(0).messages("T", queue_id).iter())
        .map(|m| String::from_utf8_lossy(&m.message.body).into_owned())
        .collect()
}

fn stored_at(cluster: &TestCluster, mq: &MessageQueue, offset: i64) -> MessageExt {
    let queue = cluster.broker(0).messages(&mq.topic, mq.queue_id);
    queue[usize::try_from(offset).unwrap()].clone()
}

#[tokio::test(start_paused = true)]
async fn concurrent_sends_share_one_batch_and_each_gets_its_own_result() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "shared_batch", |b| b).await;
    let bodies = ["a", "b", "c", "d", "e"];
    let results = join_all(bodies.iter().map(|body| producer.send(to_t(body)))).await;

    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 1);
    assert_eq!(requests(&cluster, RequestCode::SEND_MESSAGE_V2), 0);
    let first = results[0].as_ref().unwrap();
    for (index, (body, result)) in bodies.iter().zip(&results).enumerate() {
        let result = result.as_ref().unwrap();
        assert_eq!(
            result.message_queue, first.message_queue,
            "one batch, one queue"
        );
        assert_eq!(result.queue_offset, first.queue_offset + index as i64);
        let stored = stored_at(&cluster, &result.message_queue, result.queue_offset);
        assert_eq!(stored.message.body, body.as_bytes());
        assert_eq!(stored.message.uniq_key(), Some(result.msg_id.as_str()));
        assert_eq!(stored.offset_msg_id(), result.offset_msg_id);
    }
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_goes_when_full_without_waiting_for_its_delay() {
    let cluster = cluster().await;
    // A batch exactly two messages big.
    let two = 2 * entry_len_of_one_byte_body();
    let producer = producer(&cluster, "full_batch", |b| {
        b.batch_max_bytes(two)
            .batch_max_delay(Duration::from_secs(30))
    })
    .await;
    let started = Instant::now();
    let firsts = join_all(["1", "2"].map(|body| producer.send(to_t(body)))).await;
    assert!(firsts.iter().all(Result::is_ok), "{firsts:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a full batch does not wait"
    );
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 1);
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lone_message_waits_the_delay_and_goes_as_a_plain_send() {
    let cluster = cluster().await;
    let delay = Duration::from_millis(200);
    let producer = producer(&cluster, "lone", |b| b.batch_max_delay(delay)).await;
    let started = Instant::now();
    let result = producer.send(to_t("alone")).await.unwrap();
    assert!(started.elapsed() >= delay, "it waited for company");
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 0);
    assert_eq!(requests(&cluster, RequestCode::SEND_MESSAGE_V2), 1);
    let stored = stored_at(&cluster, &result.message_queue, result.queue_offset);
    assert_eq!(stored.message.uniq_key(), Some(result.msg_id.as_str()));
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn delayed_keyed_and_big_messages_go_alone_at_once() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "declined", |b| {
        b.batch_max_delay(Duration::from_secs(30))
    })
    .await;
    let started = Instant::now();
    let delayed = Message::builder("T")
        .body("d")
        .delay_level(1)
        .build()
        .unwrap();
    let keyed = Message::builder("T")
        .body("k")
        .sharding_key("order-1")
        .build()
        .unwrap();
    // Compressible and bigger than a batch may be: sent alone, compressed.
    let big = Message::new("T", "z".repeat(64 * 1024));
    for msg in [delayed, keyed, big] {
        producer.send(msg).await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(30), "none waited");
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 0);
    assert_eq!(requests(&cluster, RequestCode::SEND_MESSAGE_V2), 3);
    let stored: Vec<MessageExt> = (0..4)
        .flat_map(|queue_id| cluster.broker(0).messages("T", queue_id))
        .collect();
    let compressed = (stored.iter()).filter(|m| m.sys_flag & sysflag::COMPRESSED_FLAG != 0);
    assert_eq!(compressed.count(), 1, "the big one, sent alone, compressed");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn async_sends_and_sends_to_a_queue_batch_too() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "async_batch", |b| b).await;
    let mut handles = Vec::new();
    for body in ["x", "y", "z"] {
        handles.push(producer.send_async(to_t(body)).await.unwrap());
    }
    let results = join_all(handles).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 1);

    let queues = [
        MessageQueue::new("T", "broker-a", 1),
        MessageQueue::new("T", "broker-a", 2),
    ];
    let sends = [
        (&queues[0], "q1-a"),
        (&queues[0], "q1-b"),
        (&queues[1], "q2-a"),
    ];
    let results = join_all(
        sends
            .iter()
            .map(|(mq, body)| producer.send_to_queue(to_t(body), mq)),
    )
    .await;
    for ((mq, _), result) in sends.iter().zip(&results) {
        assert_eq!(&result.as_ref().unwrap().message_queue, *mq);
    }
    // One batch for queue 1's two messages; queue 2's one goes plain.
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 2);
    let bodies: Vec<_> = (cluster.broker(0).messages("T", 1).iter())
        .map(|m| m.message.body.clone())
        .filter(|body| body.starts_with(b"q1"))
        .collect();
    assert_eq!(bodies, ["q1-a", "q1-b"], "in the order sent");
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sends_through_a_selector_batch_to_the_queue_it_chose() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "selector_batch", |b| b).await;
    let pick_3 = |queues: &[MessageQueue], _: &Message| queues.iter().position(|q| q.queue_id == 3);
    let sends = ["s1", "s2", "s3"].map(|body| producer.send_with_selector(to_t(body), &pick_3));
    let results = join_all(sends).await;
    for result in &results {
        assert_eq!(result.as_ref().unwrap().message_queue.queue_id, 3);
    }
    let handle = producer
        .send_async_with_selector(to_t("s4"), &pick_3)
        .await
        .unwrap();
    assert_eq!(handle.await.unwrap().message_queue.queue_id, 3);
    assert_eq!(
        requests(&cluster, RequestCode::SEND_BATCH_MESSAGE),
        1,
        "s1..s3"
    );
    assert_eq!(
        bodies_of(&cluster, 3),
        ["s1", "s2", "s3", "s4"],
        "in the order sent"
    );
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_namespaced_producer_batches_under_the_namespace() {
    let cluster = TestCluster::builder().topic("ns%T").build().await.unwrap();
    let producer = producer(&cluster, "namespaced_batch", |b| b.namespace("ns")).await;
    let mq = MessageQueue::new("T", "broker-a", 2);
    let sends = [producer.send(to_t("n1")), producer.send(to_t("n2"))];
    let results = join_all(sends).await;
    let to_queue = join_all([
        producer.send_to_queue(to_t("q1"), &mq),
        producer.send_to_queue(to_t("q2"), &mq),
    ])
    .await;
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 2);
    for result in results.iter().chain(&to_queue) {
        let result = result.as_ref().unwrap();
        assert_eq!(
            result.message_queue.topic, "T",
            "named as the application names it"
        );
        let stored = cluster
            .broker(0)
            .messages("ns%T", result.message_queue.queue_id);
        let stored = &stored[usize::try_from(result.queue_offset).unwrap()];
        assert_eq!(stored.message.uniq_key(), Some(result.msg_id.as_str()));
    }
    assert!(
        to_queue
            .iter()
            .all(|r| r.as_ref().unwrap().message_queue == mq)
    );
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_batch_fails_each_of_its_messages() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "failed_batch", |b| b).await;
    // Not a code a send is retried after: the batch fails at once.
    cluster.fail_requests(
        RequestCode::SEND_BATCH_MESSAGE,
        ResponseCode::MESSAGE_ILLEGAL,
        1,
    );
    let results = join_all(["1", "2"].map(|body| producer.send(to_t(body)))).await;
    for result in results {
        let err = result.unwrap_err();
        assert!(matches!(err, ClientError::BatchFailed(_)), "{err}");
        assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
    }
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_sends_what_is_still_waiting() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "shutdown_flush", |b| {
        b.batch_max_delay(Duration::from_secs(30))
    })
    .await;
    let started = Instant::now();
    let first = producer.send_async(to_t("1")).await.unwrap();
    let second = producer.send_async(to_t("2")).await.unwrap();
    producer.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(30), "sent at once");
    assert!(first.await.is_ok() && second.await.is_ok());
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 1);
}

#[tokio::test(start_paused = true)]
async fn batch_settings_out_of_javas_ranges_are_refused() {
    let cluster = cluster().await;
    let refused = [
        Producer::builder().batch_max_delay(Duration::ZERO),
        Producer::builder().batch_max_delay(Duration::from_secs(31)),
        Producer::builder().batch_max_bytes(0),
        Producer::builder().batch_max_bytes(3 * 1024 * 1024),
        Producer::builder().total_batch_max_bytes(0),
    ];
    for builder in refused {
        let err = builder
            .client_config(config(&cluster, "refused_settings"))
            .producer_group("pg")
            .auto_batch(true)
            .build()
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
    }
}

/// A producer dropped without `shutdown` releases its client instance at
/// once, so what it still had to send fails (as an async send in flight
/// does); what waited in a batch is answered then too, not after the
/// batch's delay.
#[tokio::test(start_paused = true)]
async fn a_producer_dropped_unshut_answers_what_waits_at_once() {
    let cluster = cluster().await;
    let producer = producer(&cluster, "drop_flush", |b| {
        b.batch_max_delay(Duration::from_secs(30))
    })
    .await;
    let started = Instant::now();
    let handle = producer.send_async(to_t("left")).await.unwrap();
    drop(producer);
    let result = handle.await;
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "answered at the drop: {result:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_message_whose_properties_a_batch_cannot_carry_goes_alone() {
    let cluster = cluster().await;
    // Batches big enough to take a message with 40 KB of properties, more
    // than a batch entry's 16-bit properties length can say.
    let producer = producer(&cluster, "long_properties", |b| {
        b.batch_max_bytes(1024 * 1024)
    })
    .await;
    let long = Message::builder("T")
        .body("long")
        .property("note", "n".repeat(40_000))
        .build()
        .unwrap();
    let (plain, long) = tokio::join!(producer.send(to_t("plain")), producer.send(long));
    plain.unwrap();
    // Whatever the broker makes of it, it is the message's own answer.
    if let Err(err) = long {
        assert!(!matches!(err, ClientError::BatchFailed(_)), "{err}");
    }
    assert_eq!(requests(&cluster, RequestCode::SEND_BATCH_MESSAGE), 0);
    producer.shutdown().await;
}

/// Panics in its first `before_send`.
#[derive(Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl rocketmq_client::producer::SendHook for PanicsOnce {
    fn before_send(&self, _ctx: &rocketmq_client::producer::SendContext<'_>) {
        if !self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            panic!("a send hook that panics (on purpose)");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_whose_send_panicked_gives_its_bytes_back() {
    let cluster = cluster().await;
    // Room for two messages: with those two held, the next goes alone.
    let two = 2 * entry_len_of_one_byte_body();
    let producer = producer(&cluster, "panicked_batch", |b| {
        b.total_batch_max_bytes(two)
            .send_hook(PanicsOnce::default())
    })
    .await;
    let lost = join_all(["1", "2"].map(|body| producer.send(to_t(body)))).await;
    for result in &lost {
        // Each message is told: the batch's send panicked.
        let Err(ClientError::BatchFailed(err)) = result else {
            panic!("{result:?}");
        };
        assert!(
            matches!(&**err, ClientError::Panicked { message, .. }
                if message == "a send hook that panics (on purpose)"),
            "{err}"
        );
    }
    let sent = join_all(["3", "4"].map(|body| producer.send(to_t(body)))).await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    assert_eq!(
        requests(&cluster, RequestCode::SEND_BATCH_MESSAGE),
        1,
        "they batch again"
    );
    producer.shutdown().await;
}
