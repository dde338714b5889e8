//! Message traces against the testkit: what a producer, a push consumer and
//! a transaction producer with tracing on write to the trace topic, read
//! back with the model's decoder of Java's trace format.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use consumer_support::{Seen, config, producer, recording, unique, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
use rocketmq_client::{Producer, PullConsumer, PushConsumer};
use rocketmq_model::body::trace::{TRACE_TOPIC, TraceMessageType, TraceRecord};
use rocketmq_model::{Message, MessageExt};
use rocketmq_testkit::TestCluster;

async fn cluster(topic: &str) -> TestCluster {
    TestCluster::builder()
        .topic(topic)
        .topic(TRACE_TOPIC)
        .build()
        .await
        .unwrap()
}

/// The trace messages stored so far, and their records.
fn traces(cluster: &TestCluster) -> (Vec<MessageExt>, Vec<TraceRecord>) {
    let broker = cluster.broker(0);
    let messages: Vec<MessageExt> = (0..4)
        .flat_map(|q| broker.messages(TRACE_TOPIC, q))
        .collect();
    let records = messages
        .iter()
        .flat_map(|m| TraceRecord::decode_all(std::str::from_utf8(m.body()).unwrap()).unwrap())
        .collect();
    (messages, records)
}

#[tokio::test(start_paused = true)]
async fn a_producer_traces_each_message_it_sent() {
    let cluster = cluster("tenant%T").await;
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("traced-producer")))
        .namespace("tenant")
        .producer_group("pg")
        .enable_trace(true)
        .build()
        .await
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..3 {
        let msg = Message::builder("T")
            .body(format!("m{i}"))
            .tags("TagA")
            .keys([format!("order-{i}")])
            .build()
            .unwrap();
        sent.push(producer.send(msg).await.unwrap());
    }
    // A compressed body and a batch, traced as Java traces what it sends.
    let big = "compressible ".repeat(1000);
    let zipped = producer.send(Message::new("T", big.clone())).await.unwrap();
    let batch = [Message::new("T", "b1"), Message::new("T", "b2")];
    let batch = batch.map(|mut m| {
        m.properties.insert("TAGS", "TagB").unwrap();
        m
    });
    let batched = producer.send_batch(batch.to_vec()).await.unwrap();
    producer.shutdown().await;

    let (messages, mut records) = traces(&cluster);
    assert_eq!(records.len(), 5, "{records:?}");
    let batch_record = records.pop().unwrap();
    let TraceRecord::Pub(b) = batch_record else {
        panic!("a Pub record")
    };
    assert_eq!(b.msg_id, batched.msg_id, "the ids of the batch's messages");
    assert!(b.msg_id.contains(','));
    assert_eq!(
        (b.tags, b.keys),
        (None, None),
        "a batch has none of its own"
    );
    assert!(b.body_length > 4, "the encoded batch: {}", b.body_length);
    let TraceRecord::Pub(z) = records.pop().unwrap() else {
        panic!("a Pub record")
    };
    assert_eq!(z.msg_id, zipped.msg_id);
    let length = usize::try_from(z.body_length).unwrap();
    assert!(length < big.len() / 4, "the compressed length: {length}");
    let broker_addr = cluster.broker(0).addr().to_owned();
    for (record, result) in records.iter().zip(&sent) {
        let TraceRecord::Pub(p) = record else {
            panic!("a Pub record: {record:?}")
        };
        assert_eq!(p.msg_id, result.msg_id);
        assert_eq!(
            p.offset_msg_id.as_deref(),
            Some(result.offset_msg_id.as_str())
        );
        assert_eq!(p.topic, "T", "out of the namespace");
        assert_eq!(p.group, "pg");
        assert_eq!(p.tags.as_deref(), Some("TagA"));
        assert_eq!(p.store_host, broker_addr);
        assert_eq!(p.region_id, "DefaultRegion");
        assert_eq!(p.body_length, 2);
        assert_eq!(p.msg_type, TraceMessageType::Normal);
        assert!(p.success);
    }
    // Found by message id and by business key.
    let keys: Vec<&str> = messages.iter().flat_map(MessageExt::keys).collect();
    assert!(keys.contains(&sent[0].msg_id.as_str()), "{keys:?}");
    assert!(keys.contains(&"order-2"), "{keys:?}");
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_push_consumer_traces_before_and_after_each_listener_call() {
    let cluster = cluster("T").await;
    let producer = producer(&cluster).await;
    let ok = producer.send(Message::new("T", "fine")).await.unwrap();
    let failing = producer
        .send(Message::new("T", "fails-once"))
        .await
        .unwrap();
    let redelivered = Arc::new(AtomicBool::new(false));
    let seen_again = Arc::clone(&redelivered);
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("traced-consumer")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .enable_trace(true)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen_again = Arc::clone(&seen_again);
            async move {
                let failing: Vec<&MessageExt> = (msgs.iter())
                    .filter(|m| &m.body()[..] == b"fails-once")
                    .collect();
                if failing.iter().any(|m| m.reconsume_times == 0) {
                    return ConcurrentResult::RetryLater;
                }
                if !failing.is_empty() {
                    seen_again.store(true, Ordering::Release);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap();
    wait_until(
        "the redelivery is consumed",
        Duration::from_secs(120),
        || redelivered.load(Ordering::Acquire),
    )
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;

    let (_, records) = traces(&cluster);
    let befores: Vec<_> = (records.iter())
        .filter_map(|r| match r {
            TraceRecord::SubBefore(b) => Some(b),
            _ => None,
        })
        .collect();
    let afters: Vec<_> = (records.iter())
        .filter_map(|r| match r {
            TraceRecord::SubAfter(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(befores.len(), 3, "fine, fails-once twice: {records:?}");
    assert_eq!(afters.len(), 3, "{records:?}");
    for before in &befores {
        let after = afters
            .iter()
            .find(|a| a.request_id == before.request_id)
            .expect("every call's after has its before's request id");
        assert_eq!(after.msg_id, before.msg_id);
        assert_eq!(before.group, "cg");
        assert_eq!(before.region_id, "DefaultRegion");
        let first_failure = before.msg_id == failing.msg_id && before.retry_times == 0;
        assert_eq!(after.success, !first_failure, "{before:?} {after:?}");
        assert_eq!(after.context_code, if first_failure { 4 } else { 0 });
    }
    assert!(befores.iter().any(|b| b.msg_id == ok.msg_id));
    assert!(
        befores
            .iter()
            .any(|b| b.msg_id == failing.msg_id && b.retry_times == 1),
        "the redelivery is traced with its retry count"
    );
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_trace_topic_does_not_keep_a_stopping_consumer_in_its_group() {
    let cluster = cluster("T").await;
    let producer = producer(&cluster).await;
    producer.send(Message::new("T", "traced")).await.unwrap();
    let seen = Seen::default();
    let consumer = recording(&cluster, &unique("traced-consumer"), "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .enable_trace(true)
        .build()
        .await
        .unwrap();
    wait_until("the message is consumed", Duration::from_secs(60), || {
        seen.len() == 1
    })
    .await;
    // The consume traces wait for their flush; the brokers now answer
    // sends slowly.
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(60),
    );
    let stopping = tokio::spawn(consumer.shutdown());
    let members = || -> Vec<String> {
        let groups = cluster.broker(0).groups();
        (groups.consumers.into_iter())
            .filter(|g| g.group == "cg")
            .flat_map(|g| g.client_ids)
            .collect()
    };
    // The traces' sends take a minute: the group is left well before.
    wait_until("the group is left", Duration::from_secs(30), || {
        members().is_empty()
    })
    .await;
    assert!(
        !stopping.is_finished(),
        "the group is left before the traces are sent: {:?}",
        members()
    );
    stopping.await.unwrap();
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_backlog_of_records_goes_out_as_concurrent_sends() {
    let cluster = cluster("T").await;
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("backlog-producer")))
        .producer_group("pg")
        .enable_trace(true)
        .build()
        .await
        .unwrap();
    // Every send takes a second, the trace messages' too: 200 records, 10
    // trace messages of 20, would take 10 s sent one after another.
    cluster.delay_responses(
        rocketmq_model::RequestCode::SEND_MESSAGE_V2,
        Duration::from_secs(1),
    );
    let mut handles = Vec::new();
    for i in 0..200 {
        let msg = Message::new("T", format!("m{i}"));
        handles.push(producer.send_async(msg).await.unwrap());
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let sent = tokio::time::Instant::now();
    wait_until("every send is traced", Duration::from_secs(60), || {
        traces(&cluster).1.len() == 200
    })
    .await;
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "the backlog took {took:?}: its trace messages went one at a time"
    );
    cluster.clear_faults();
    producer.shutdown().await;
    cluster.shutdown().await;
}

struct CommitAll;

#[async_trait]
impl TransactionListener for CommitAll {
    async fn execute_local_transaction(
        &self,
        _msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }

    async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }
}

#[tokio::test(start_paused = true)]
async fn a_transaction_is_traced_as_a_half_message_and_its_end() {
    let cluster = cluster("T").await;
    let producer = Producer::builder()
        .client_config(config(&cluster, &unique("traced-tx")))
        .producer_group("txg")
        .trace_topic(TRACE_TOPIC)
        .build_transactional(CommitAll)
        .await
        .unwrap();
    let result = producer
        .send_in_transaction(Message::new("T", "tx"), &())
        .await
        .unwrap();
    producer.shutdown().await;

    let (_, records) = traces(&cluster);
    let half = records
        .iter()
        .find_map(|r| match r {
            TraceRecord::Pub(p) => Some(p),
            _ => None,
        })
        .unwrap();
    assert_eq!(half.msg_type, TraceMessageType::TransactionHalf);
    let end = records
        .iter()
        .find_map(|r| match r {
            TraceRecord::EndTransaction(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!(end.msg_id, result.send_result.msg_id);
    assert_eq!(end.topic, "T");
    assert_eq!(end.group, "txg");
    assert_eq!(end.state, "COMMIT_MESSAGE");
    assert_eq!(end.transaction_id, result.send_result.transaction_id);
    assert!(!end.from_transaction_check);
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_lite_pull_consumer_traces_what_a_poll_hands_out() {
    let cluster = cluster("T").await;
    let producer = producer(&cluster).await;
    let sent = producer.send(Message::new("T", "polled")).await.unwrap();
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("traced-pull")))
        .subscribe("T", "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .enable_trace(true)
        .build()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing polled");
        got = consumer.poll(Duration::from_secs(1)).await.unwrap();
    }
    consumer.shutdown().await;
    producer.shutdown().await;

    let (_, records) = traces(&cluster);
    let (before, after) = match records.as_slice() {
        [TraceRecord::SubBefore(before), TraceRecord::SubAfter(after)] => (before, after),
        other => panic!("a SubBefore and its SubAfter: {other:?}"),
    };
    assert_eq!(before.msg_id, sent.msg_id);
    assert_eq!(before.group, "lg");
    assert_eq!(after.request_id, before.request_id);
    assert!(after.success);
    assert_eq!(after.context_code, 0);
    cluster.shutdown().await;
}
