//! The simple (pop) consumer end to end on the testkit: receive and
//! acknowledge, a message left unacknowledged coming back through the pop
//! retry topic, a changed invisible duration, the dead-letter topic after
//! the last delivery, namespaces, subscriptions changed while running, and
//! the calls it refuses.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::BTreeSet;
use std::time::Duration;

use consumer_support::{config, msg, producer, unique};
use rocketmq_client::consumer::{
    ConsumeFromWhere, MAX_INVISIBLE_DURATION, MessageSelector, ReceivedMessage, SimpleConsumer,
    SimpleConsumerBuilder,
};
use rocketmq_client::{ClientError, Producer};
use rocketmq_kernel::KernelError;
use rocketmq_model::RequestCode;
use rocketmq_model::body::ConsumeType;
use rocketmq_model::message::PopTopicKind;
use rocketmq_remoting::RemotingError;
use rocketmq_testkit::{TestCluster, TopicConfig};
use tokio::time::Instant;

const GROUP: &str = "sg";
const INVISIBLE: Duration = Duration::from_secs(30);

fn body(received: &ReceivedMessage) -> String {
    String::from_utf8_lossy(&received.message().message.body).into_owned()
}

fn builder(cluster: &TestCluster, topic: &str) -> SimpleConsumerBuilder {
    SimpleConsumer::builder(GROUP, config(cluster, &unique("simple")))
        .subscribe(topic, MessageSelector::all())
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(Duration::from_secs(2))
}

async fn cluster(topics: &[&str]) -> TestCluster {
    let mut builder = TestCluster::builder();
    for topic in topics {
        builder = builder.topic(*topic);
    }
    builder.build().await.unwrap()
}

async fn send(producer: &Producer, topic: &str, bodies: &[&str]) {
    for body in bodies {
        producer.send(msg(topic, body, "a")).await.unwrap();
    }
}

/// Sends `n` messages to `topic`, bodies "m0" to "m<n-1>", and answers the
/// bodies.
async fn send_numbered(producer: &Producer, topic: &str, n: usize) -> Vec<String> {
    let bodies: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    for body in &bodies {
        producer.send(msg(topic, body, "a")).await.unwrap();
    }
    bodies
}

/// Receives (each with `invisible`) until `n` messages came, failing after
/// `within` of tokio time.
async fn receive_n(
    consumer: &SimpleConsumer,
    n: usize,
    invisible: Duration,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n}", got.len());
        got.extend(consumer.receive(32, invisible).await.unwrap());
    }
    got
}

/// Receives for `span` of tokio time, answering everything that came.
async fn receive_during(consumer: &SimpleConsumer, span: Duration) -> Vec<ReceivedMessage> {
    let end = Instant::now() + span;
    let mut got = Vec::new();
    while Instant::now() < end {
        got.extend(consumer.receive(32, INVISIBLE).await.unwrap());
    }
    got
}

#[tokio::test(start_paused = true)]
async fn received_messages_are_acknowledged_and_never_come_back() {
    let cluster = cluster(&["T"]).await;
    let producer = producer(&cluster).await;
    let bodies = send_numbered(&producer, "T", 10).await;
    let consumer = builder(&cluster, "T").build().await.unwrap();
    let group = (cluster.broker(0).groups().consumers.into_iter())
        .find(|g| g.group == GROUP)
        .expect("the group heartbeats");
    assert_eq!(group.consume_type, ConsumeType::ConsumePop);

    let got = receive_n(&consumer, 10, INVISIBLE, Duration::from_secs(60)).await;
    let received: BTreeSet<String> = got.iter().map(body).collect();
    assert_eq!(received, bodies.iter().cloned().collect());
    for message in &got {
        assert_eq!(message.message().message.topic, "T");
        assert_eq!(message.delivery_attempt(), 1);
        let handle = message.receipt_handle();
        assert_eq!(handle.kind, PopTopicKind::Normal);
        assert_eq!(handle.queue_offset, message.message().queue_offset);
        consumer.ack(message).await.unwrap();
    }
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    // Past the invisible duration: nothing comes back.
    let again = receive_during(&consumer, INVISIBLE * 2).await;
    assert!(
        again.is_empty(),
        "{:?}",
        again.iter().map(body).collect::<Vec<_>>()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_acknowledges_messages_of_several_pops_and_queues() {
    let cluster = cluster(&["T"]).await;
    let producer = producer(&cluster).await;
    send_numbered(&producer, "T", 12).await;
    let consumer = builder(&cluster, "T").build().await.unwrap();
    // Two receives: two pops, each of several queues.
    let mut got = consumer.receive(6, INVISIBLE).await.unwrap();
    got.extend(
        receive_n(
            &consumer,
            12 - got.len(),
            INVISIBLE,
            Duration::from_secs(60),
        )
        .await,
    );
    let pops: BTreeSet<i64> = got.iter().map(|m| m.receipt_handle().pop_time).collect();
    let queues: BTreeSet<i32> = got.iter().map(|m| m.receipt_handle().queue_id).collect();
    assert!(pops.len() >= 2 && queues.len() == 4, "{pops:?} {queues:?}");
    // One left out of the batch comes back; the rest do not.
    let (kept, acked) = got.split_first().unwrap();
    consumer.ack_batch(acked).await.unwrap();
    let in_flight = cluster.broker(0).in_flight_pops(GROUP);
    assert_eq!(in_flight.len(), 1, "{in_flight:?}");
    assert_eq!(
        in_flight[0].queue_offset,
        kept.receipt_handle().queue_offset
    );
    let back = receive_n(&consumer, 1, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(body(&back[0]), body(kept));
    consumer.ack_batch(&back).await.unwrap();
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    let rest = receive_during(&consumer, INVISIBLE * 2).await;
    assert!(
        rest.is_empty(),
        "{:?}",
        rest.iter().map(body).collect::<Vec<_>>()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_message_comes_back_once_more() {
    let cluster = cluster(&["T"]).await;
    let producer = producer(&cluster).await;
    send(&producer, "T", &["lost"]).await;
    let consumer = builder(&cluster, "T").build().await.unwrap();
    let first = receive_n(
        &consumer,
        1,
        Duration::from_secs(10),
        Duration::from_secs(60),
    )
    .await;
    let received_at = Instant::now();
    let again = receive_n(&consumer, 1, INVISIBLE, Duration::from_secs(60)).await;
    assert!(received_at.elapsed() >= Duration::from_secs(10));
    let (was, now) = (&first[0], &again[0]);
    assert_eq!(body(now), "lost");
    assert_eq!(now.message().message.topic, "T");
    assert_eq!(
        now.message().message.uniq_key(),
        was.message().message.uniq_key()
    );
    assert_eq!(now.delivery_attempt(), 2);
    assert_eq!(now.receipt_handle().kind, PopTopicKind::RetryV1);
    consumer.ack(now).await.unwrap();
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    let later = receive_during(&consumer, INVISIBLE * 2).await;
    assert!(
        later.is_empty(),
        "{:?}",
        later.iter().map(body).collect::<Vec<_>>()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_invisible_duration_moves_the_return_and_renews_the_handle() {
    let cluster = cluster(&["T"]).await;
    let producer = producer(&cluster).await;
    send(&producer, "T", &["sooner", "later"]).await;
    let consumer = builder(&cluster, "T").build().await.unwrap();
    let got = receive_n(
        &consumer,
        2,
        Duration::from_secs(60),
        Duration::from_secs(60),
    )
    .await;
    let received_at = Instant::now();
    let (mut sooner, mut later): (Vec<_>, Vec<_>) =
        got.into_iter().partition(|m| body(m) == "sooner");
    let (sooner, later) = (&mut sooner[0], &mut later[0]);
    let old = sooner.receipt_handle().clone();
    let too_long = MAX_INVISIBLE_DURATION + Duration::from_millis(1);
    let err = (consumer.change_invisible_duration(sooner, too_long))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidCall(_)), "{err}");
    assert_eq!(sooner.receipt_handle(), &old);
    consumer
        .change_invisible_duration(sooner, Duration::from_secs(5))
        .await
        .unwrap();
    assert_ne!(sooner.receipt_handle(), &old);
    assert_eq!(sooner.receipt_handle().invisible_time, 5_000);
    // "later" gets more time, then is acknowledged with its new handle.
    consumer
        .change_invisible_duration(later, Duration::from_secs(90))
        .await
        .unwrap();
    consumer.ack(later).await.unwrap();

    let back = receive_n(&consumer, 1, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(body(&back[0]), "sooner");
    assert!(
        received_at.elapsed() < Duration::from_secs(60),
        "back after {:?}, not at its first invisible duration",
        received_at.elapsed()
    );
    consumer.ack(&back[0]).await.unwrap();
    let rest = receive_during(&consumer, Duration::from_secs(120)).await;
    assert!(
        rest.is_empty(),
        "{:?}",
        rest.iter().map(body).collect::<Vec<_>>()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_delivered_too_often_goes_to_the_dead_letter_topic() {
    let cluster = cluster(&["T"]).await;
    let producer = producer(&cluster).await;
    send(&producer, "T", &["poison"]).await;
    let consumer = builder(&cluster, "T")
        .max_delivery_attempts(2)
        .build()
        .await
        .unwrap();
    let short = Duration::from_secs(5);
    let first = receive_n(&consumer, 1, short, Duration::from_secs(60)).await;
    let second = receive_n(&consumer, 1, short, Duration::from_secs(60)).await;
    assert_eq!(second[0].delivery_attempt(), 2);
    // The third delivery is not made: the message goes to the DLQ instead.
    let third = receive_during(&consumer, Duration::from_secs(30)).await;
    assert!(
        third.is_empty(),
        "{:?}",
        third.iter().map(body).collect::<Vec<_>>()
    );
    let dead = cluster.broker(0).messages(&format!("%DLQ%{GROUP}"), 0);
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].message.uniq_key(),
        first[0].message().message.uniq_key()
    );
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_namespaced_consumer_names_topics_without_the_namespace() {
    let cluster = cluster(&["ns%T"]).await;
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("ns-producer")))
        .namespace("ns")
        .producer_group("pg")
        .build()
        .await
        .unwrap();
    send(&producer, "T", &["a", "b"]).await;
    let consumer = builder(&cluster, "T")
        .namespace("ns")
        .build()
        .await
        .unwrap();
    assert_eq!(consumer.group(), GROUP);
    assert_eq!(consumer.topics(), ["T"]);
    let groups = cluster.broker(0).groups().consumers;
    assert!(groups.iter().any(|g| g.group == format!("ns%{GROUP}")));
    let got = receive_n(
        &consumer,
        2,
        Duration::from_secs(5),
        Duration::from_secs(60),
    )
    .await;
    for message in &got {
        assert_eq!(message.message().message.topic, "T");
    }
    consumer.ack(&got[0]).await.unwrap();
    // The other comes back, through the namespaced group's retry topic.
    let back = receive_n(&consumer, 1, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(body(&back[0]), body(&got[1]));
    assert_eq!(back[0].message().message.topic, "T");
    consumer.ack(&back[0]).await.unwrap();
    assert!(
        cluster
            .broker(0)
            .in_flight_pops(&format!("ns%{GROUP}"))
            .is_empty()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn subscriptions_change_while_receiving() {
    let cluster = cluster(&["T", "U"]).await;
    let producer = producer(&cluster).await;
    send(&producer, "T", &["t1"]).await;
    producer.send(msg("U", "u-no", "b")).await.unwrap();
    producer.send(msg("U", "u-yes", "a")).await.unwrap();
    let consumer = builder(&cluster, "T").build().await.unwrap();
    consumer
        .subscribe("U", MessageSelector::tag("a"))
        .await
        .unwrap();
    assert_eq!(consumer.topics(), ["T", "U"]);
    let got = receive_n(&consumer, 2, INVISIBLE, Duration::from_secs(60)).await;
    let bodies: BTreeSet<String> = got.iter().map(body).collect();
    assert_eq!(bodies, ["t1", "u-yes"].map(String::from).into());
    for message in &got {
        consumer.ack(message).await.unwrap();
    }
    consumer.unsubscribe("T");
    send(&producer, "T", &["t2"]).await;
    let rest = receive_during(&consumer, Duration::from_secs(10)).await;
    assert!(
        rest.is_empty(),
        "{:?}",
        rest.iter().map(body).collect::<Vec<_>>()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn calls_it_cannot_make_are_refused() {
    let cluster = cluster(&["T"]).await;
    let no_topic = SimpleConsumer::builder(GROUP, config(&cluster, &unique("simple")))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(no_topic, ClientError::Config(_)), "{no_topic}");
    let endless = builder(&cluster, "T")
        .await_duration(Duration::MAX)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(endless, ClientError::Config(_)), "{endless}");
    let no_attempts = builder(&cluster, "T")
        .max_delivery_attempts(0)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(no_attempts, ClientError::Config(_)),
        "{no_attempts}"
    );

    let consumer = builder(&cluster, "T").build().await.unwrap();
    // Past 12 hours (Java's proxy's most) a Java broker's revive time would
    // be the pop time plus up to `i64::MAX` ms: wrapped, so the message
    // came back at once.
    let too_long = MAX_INVISIBLE_DURATION + Duration::from_millis(1);
    for (max, invisible) in [
        (0, INVISIBLE),
        (33, INVISIBLE),
        (1, Duration::ZERO),
        (1, too_long),
        (1, Duration::MAX),
    ] {
        let err = consumer.receive(max, invisible).await.unwrap_err();
        assert!(matches!(err, ClientError::InvalidCall(_)), "{err}");
    }
    assert!(cluster.broker(0).in_flight_pops(GROUP).is_empty());
    consumer.unsubscribe("T");
    let err = consumer.receive(1, INVISIBLE).await.unwrap_err();
    assert!(matches!(err, ClientError::InvalidCall(_)), "{err}");
    consumer.shutdown().await;
}

/// A cluster whose topic "O" has one queue, so that its order is the
/// topic's.
async fn one_queue_cluster() -> TestCluster {
    TestCluster::builder()
        .topic_with("O", TopicConfig::new(1, 1))
        .build()
        .await
        .unwrap()
}

/// A one-queue topic "O" holding `bodies`, in order, and an orderly
/// consumer of it (with the producer that sent them).
async fn orderly_queue(bodies: &[&str]) -> (TestCluster, Producer, SimpleConsumer) {
    let cluster = one_queue_cluster().await;
    let producer = producer(&cluster).await;
    send(&producer, "O", bodies).await;
    let consumer = builder(&cluster, "O").orderly(true).build().await.unwrap();
    (cluster, producer, consumer)
}

fn bodies_of(messages: &[ReceivedMessage]) -> Vec<String> {
    messages.iter().map(body).collect()
}

#[tokio::test(start_paused = true)]
async fn an_orderly_consumer_gets_a_queue_batch_by_batch_in_order() {
    let cluster = one_queue_cluster().await;
    let producer = producer(&cluster).await;
    send_numbered(&producer, "O", 8).await;
    let consumer = builder(&cluster, "O").orderly(true).build().await.unwrap();
    let first = consumer.receive(4, INVISIBLE).await.unwrap();
    assert_eq!(bodies_of(&first), ["m0", "m1", "m2", "m3"]);
    assert!(first.iter().all(|m| m.receipt_handle().is_orderly()));
    // The queue waits for this batch.
    let blocked = receive_during(&consumer, Duration::from_secs(5)).await;
    assert!(blocked.is_empty(), "{:?}", bodies_of(&blocked));
    consumer.ack_batch(&first[..2]).await.unwrap();
    for message in &first[2..] {
        consumer.ack(message).await.unwrap();
    }
    let next = receive_n(&consumer, 4, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(bodies_of(&next), ["m4", "m5", "m6", "m7"]);
    assert!(next.iter().all(|m| m.delivery_attempt() == 1));
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_orderly_batch_comes_back_whole_and_in_order() {
    let (_cluster, producer, consumer) = orderly_queue(&["a", "b", "c", "d"]).await;
    let first = consumer.receive(3, Duration::from_secs(10)).await.unwrap();
    assert_eq!(bodies_of(&first), ["a", "b", "c"]);
    // Past the invisible duration the pop reads the queue again from the
    // batch's start: the batch again, then what follows (Java's re-read).
    let mut again = receive_n(&consumer, 4, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(bodies_of(&again), ["a", "b", "c", "d"]);
    let attempts: Vec<u32> = again
        .iter()
        .map(ReceivedMessage::delivery_attempt)
        .collect();
    assert_eq!(attempts, [2, 2, 2, 1]);
    // A changed invisible duration of an orderly message, then the batch
    // acknowledged: nothing is left.
    consumer
        .change_invisible_duration(&mut again[0], Duration::from_secs(60))
        .await
        .unwrap();
    consumer.ack_batch(&again).await.unwrap();
    let rest = receive_during(&consumer, INVISIBLE * 2).await;
    assert!(rest.is_empty(), "{:?}", bodies_of(&rest));
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// Whether `err` is a call that got no answer in time.
fn timed_out(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::Kernel(KernelError::Remoting(RemotingError::Timeout { .. }))
    )
}

#[tokio::test(start_paused = true)]
async fn an_orderly_batch_whose_answer_was_lost_comes_with_the_next_receive() {
    let (cluster, producer, consumer) = orderly_queue(&["a", "b", "c", "d"]).await;
    // The broker pops a batch (which blocks the queue) and its answer
    // comes too late for the receive.
    let broker = cluster.broker(0);
    broker.delay_responses(RequestCode::POP_MESSAGE, Duration::from_secs(300));
    let err = consumer.receive(3, INVISIBLE).await.unwrap_err();
    assert!(timed_out(&err), "{err}");
    broker.clear_faults();

    // The next receive repeats that pop and gets its batch, well within
    // its invisible duration, as first delivered.
    let again = consumer.receive(3, INVISIBLE).await.unwrap();
    assert_eq!(bodies_of(&again), ["a", "b", "c"]);
    assert!(again.iter().all(|m| m.delivery_attempt() == 1));
    // That answer ends the attempt: the queue waits for the batch again.
    let blocked = receive_during(&consumer, Duration::from_secs(5)).await;
    assert!(blocked.is_empty(), "{:?}", bodies_of(&blocked));
    // The repeat's handles are the batch's.
    consumer.ack_batch(&again).await.unwrap();
    let rest = receive_n(&consumer, 1, INVISIBLE, Duration::from_secs(60)).await;
    assert_eq!(bodies_of(&rest), ["d"]);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_orderly_receive_given_up_on_leaves_its_batch_to_the_next() {
    let (cluster, producer, consumer) = orderly_queue(&["a", "b"]).await;
    let broker = cluster.broker(0);
    broker.delay_responses(RequestCode::POP_MESSAGE, Duration::from_secs(300));
    let gave_up =
        tokio::time::timeout(Duration::from_secs(5), consumer.receive(2, INVISIBLE)).await;
    assert!(gave_up.is_err(), "the answer is held");
    broker.clear_faults();

    let again = consumer.receive(2, INVISIBLE).await.unwrap();
    assert_eq!(bodies_of(&again), ["a", "b"]);
    assert!(again.iter().all(|m| m.delivery_attempt() == 1));
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_orderly_batch_redelivered_keeps_its_delivery_attempt_when_repeated() {
    let (cluster, producer, consumer) = orderly_queue(&["a", "b"]).await;
    let first = consumer.receive(2, Duration::from_secs(10)).await.unwrap();
    assert_eq!(bodies_of(&first), ["a", "b"]);
    // Past its invisible duration the batch comes again, and that answer
    // is lost.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let broker = cluster.broker(0);
    broker.delay_responses(RequestCode::POP_MESSAGE, Duration::from_secs(300));
    let err = consumer.receive(2, INVISIBLE).await.unwrap_err();
    assert!(timed_out(&err), "{err}");
    broker.clear_faults();

    let again = consumer.receive(2, INVISIBLE).await.unwrap();
    assert_eq!(bodies_of(&again), ["a", "b"]);
    let attempts: Vec<u32> = again
        .iter()
        .map(ReceivedMessage::delivery_attempt)
        .collect();
    assert_eq!(attempts, [2, 2], "a repeat is not a delivery");
    consumer.shutdown().await;
    producer.shutdown().await;
}
