//! Interop against a real broker: pop consumption with the
//! [`SimpleConsumer`] — receive, acknowledge, tag filtering, and pops over a
//! client that uses ROCKETMQ binary headers — and a push consumer that
//! takes its queues from the broker, in pull and in pop mode. rocketmq-broker 1.0 never
//! redelivers an unacknowledged message and refuses every change of
//! invisible time (docs/interop.md), so those are tested on the testkit.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::collections::BTreeSet;
use std::time::Duration;

use interop_support::{
    Seen, config, config_with, create_topic, msg, namesrv, owned, producer, recording, secs,
    unique, wait_until,
};
use rocketmq_client::consumer::{
    ConsumeFromWhere, MessageRequestMode, MessageSelector, ReceivedMessage, SimpleConsumer,
};
use rocketmq_model::ResponseCode;
use rocketmq_remoting::SerializeType;
use tokio::time::Instant;

fn body(received: &ReceivedMessage) -> String {
    String::from_utf8_lossy(&received.message().message.body).into_owned()
}

/// Receives until `want` messages arrived or `within` passed.
async fn receive_n(
    consumer: &SimpleConsumer,
    want: usize,
    invisible: Duration,
    within: Duration,
) -> Vec<ReceivedMessage> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(consumer.receive(32, invisible).await.unwrap());
    }
    got
}

async fn consumer(ns: &str, topic: &str, selector: MessageSelector) -> SimpleConsumer {
    SimpleConsumer::builder(unique("cg"), config(ns))
        .subscribe(topic, selector)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(secs(2))
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popped_messages_come_once_with_handles_the_broker_acknowledges() {
    let Some(ns) = namesrv("popped_messages_come_once_with_handles_the_broker_acknowledges") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_pop");
    create_topic(&producer, &topic, 2).await;
    for i in 0..6 {
        producer
            .send(msg(&topic, &format!("m{i}"), "a"))
            .await
            .unwrap();
    }
    let consumer = consumer(&ns, &topic, MessageSelector::all()).await;
    let got = receive_n(&consumer, 6, secs(60), secs(60)).await;
    let bodies: BTreeSet<String> = got.iter().map(body).collect();
    assert_eq!((got.len(), bodies.len()), (6, 6), "{bodies:?}");
    let queues: BTreeSet<i32> = got.iter().map(|r| r.receipt_handle().queue_id).collect();
    assert_eq!(queues.len(), 2, "both queues popped");
    for received in &got {
        let (message, handle) = (received.message(), received.receipt_handle());
        assert_eq!(message.message.topic, topic);
        assert_eq!(received.delivery_attempt(), 1);
        assert_eq!(
            (handle.queue_id, handle.queue_offset),
            (message.queue_id, message.queue_offset)
        );
        assert_eq!(handle.invisible_time, 60_000);
    }
    // Half one by one, half in a batch: rocketmq-broker 1.0 cannot read
    // BATCH_ACK_MESSAGE's bit set (docs/interop.md), so the batch goes
    // again as single acknowledgements.
    let (single, batched) = got.split_at(3);
    for received in single {
        consumer.ack(received).await.unwrap();
    }
    consumer.ack_batch(batched).await.unwrap();
    let last = got.last().cloned();
    // Invisible or acknowledged: none is answered again.
    let again = receive_n(&consumer, 1, secs(60), secs(6)).await;
    assert!(
        again.is_empty(),
        "{:?}",
        again.iter().map(body).collect::<Vec<_>>()
    );
    // rocketmq-broker 1.0 refuses every change of invisible time (it writes
    // the absolute revive time as a relative timer delay; docs/interop.md).
    let mut last = last.unwrap();
    match consumer
        .change_invisible_duration(&mut last, secs(30))
        .await
    {
        Ok(()) => assert_eq!(last.receipt_handle().invisible_time, 30_000),
        Err(err) => {
            assert_eq!(
                err.response_code(),
                Some(ResponseCode::SYSTEM_ERROR),
                "{err}"
            );
            assert!(err.to_string().contains("WheelTimerMsgIllegal"), "{err}");
        }
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pops_filter_by_tag_and_travel_as_json_from_a_binary_client() {
    let Some(ns) = namesrv("pops_filter_by_tag_and_travel_as_json_from_a_binary_client") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_pop_tag");
    create_topic(&producer, &topic, 1).await;
    for (i, tag) in ["a", "b", "a", "c"].iter().enumerate() {
        producer
            .send(msg(&topic, &format!("m{i}"), tag))
            .await
            .unwrap();
    }
    let consumer = SimpleConsumer::builder(unique("cg"), config_with(&ns, SerializeType::RocketMq))
        .subscribe(topic.as_str(), MessageSelector::tag("a || c"))
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(secs(2))
        .build()
        .await
        .unwrap();
    let got = receive_n(&consumer, 3, secs(30), secs(60)).await;
    let bodies: BTreeSet<String> = got.iter().map(body).collect();
    assert_eq!(bodies, ["m0", "m2", "m3"].map(String::from).into());
    for received in &got {
        consumer.ack(received).await.unwrap();
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderly_pop_holds_a_queue_until_its_batch_is_acknowledged() {
    let Some(ns) = namesrv("an_orderly_pop_holds_a_queue_until_its_batch_is_acknowledged") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_pop_fifo");
    create_topic(&producer, &topic, 1).await;
    for body in ["a", "b", "c", "d", "e", "f"] {
        producer.send(msg(&topic, body, "x")).await.unwrap();
    }
    let consumer = SimpleConsumer::builder(unique("cg"), config(&ns))
        .subscribe(topic.as_str(), MessageSelector::all())
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(secs(2))
        .orderly(true)
        .build()
        .await
        .unwrap();
    let deadline = Instant::now() + secs(60);
    let mut first = Vec::new();
    while first.is_empty() && Instant::now() < deadline {
        first = consumer.receive(3, secs(20)).await.unwrap();
    }
    let bodies: Vec<String> = first.iter().map(body).collect();
    assert_eq!(bodies, ["a", "b", "c"]);
    assert!(first.iter().all(|m| m.receipt_handle().is_orderly()));
    // The queue's next messages wait for this batch.
    let blocked = consumer.receive(3, secs(60)).await.unwrap();
    assert!(
        blocked.is_empty(),
        "{:?}",
        blocked.iter().map(body).collect::<Vec<_>>()
    );
    for received in &first {
        consumer.ack(received).await.unwrap();
    }
    // A Java broker answers the next batch once the last ack lands;
    // rocketmq-broker 1.0 keeps the queue blocked until the batch's
    // invisible time (20 s) passes (docs/interop.md), then goes on from the
    // acknowledged offset.
    let next = receive_n(&consumer, 3, secs(60), secs(90)).await;
    let bodies: Vec<String> = next.iter().map(body).collect();
    assert_eq!(bodies, ["d", "e", "f"]);
    for received in &next {
        consumer.ack(received).await.unwrap();
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

/// A push consumer that leaves rebalancing to the broker
/// (`client_rebalance(false)`): the broker's default mode pulls, and after
/// SET_MESSAGE_REQUEST_MODE the consumer pops every queue of the broker
/// (queue -1) and acknowledges what it consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_consumer_takes_the_brokers_assignment_in_pull_and_pop_mode() {
    let Some(ns) = namesrv("a_push_consumer_takes_the_brokers_assignment_in_pull_and_pop_mode")
    else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_assign");
    create_topic(&producer, &topic, 4).await;
    let group = unique("cg");
    let seen = Seen::default();
    let consumer = recording(config(&ns), &group, &topic, &seen)
        .client_rebalance(false)
        .build()
        .await
        .unwrap();
    wait_until("the broker assigns the 4 queues to pull", secs(30), || {
        let queues = owned(&consumer);
        queues.len() == 4 && queues.iter().all(|mq| mq.queue_id >= 0)
    })
    .await;
    for i in 0..8 {
        producer
            .send(msg(&topic, &format!("pulled{i}"), "a"))
            .await
            .unwrap();
    }
    wait_until("8 pulled", secs(30), || seen.len() >= 8).await;

    producer
        .admin()
        .set_message_request_mode(&topic, &group, MessageRequestMode::Pop, 0)
        .await
        .unwrap();
    // The next rebalance (every 20 s) takes the new mode.
    wait_until("the broker's one queue -1 to pop", secs(60), || {
        let queues = owned(&consumer);
        queues.len() == 1 && queues[0].queue_id == -1
    })
    .await;
    for i in 0..8 {
        producer
            .send(msg(&topic, &format!("popped{i}"), "a"))
            .await
            .unwrap();
    }
    wait_until("8 popped", secs(30), || {
        seen.bodies()
            .iter()
            .filter(|b| b.starts_with("popped"))
            .count()
            >= 8
    })
    .await;
    let popped = seen.all();
    let popped: Vec<_> = popped
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.message.body).starts_with("popped"))
        .collect();
    assert!(
        popped
            .iter()
            .all(|m| m.message.property("POP_CK").is_some()),
        "popped messages carry their handles"
    );
    let counts = seen.counts();
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    consumer.shutdown().await;
    producer.shutdown().await;
}
