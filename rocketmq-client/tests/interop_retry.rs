//! Interop against a real broker: delayed messages (levels 1 and 2, and a
//! 5.x timer), consume retries through `%RETRY%<group>` (level 3, 10 s on
//! the broker) and the dead-letter queue after a small maximum.
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use interop_support::{
    config, create_topic, msg, namesrv, producer, secs, unique, wait_assigned, wait_for, wait_until,
};
use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, PullConsumer,
};
use rocketmq_client::{PushConsumer, SendStatus};
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, MessageQueue};

/// Every delivery of each body: (reconsume times, topic, msg id, when).
type Deliveries = Arc<Mutex<HashMap<String, Vec<(i32, String, String, SystemTime)>>>>;

/// A push consumer of `topic` that records every delivery and answers
/// `verdict(attempt)` (attempt 0 is the first delivery).
fn judging(
    ns: &str,
    group: &str,
    topic: &str,
    deliveries: &Deliveries,
    verdict: fn(usize) -> ConcurrentResult,
) -> rocketmq_client::consumer::PushConsumerBuilder {
    let deliveries = Arc::clone(deliveries);
    PushConsumer::builder(group, config(ns))
        .subscribe(topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let deliveries = Arc::clone(&deliveries);
            async move {
                let mut deliveries = deliveries.lock().unwrap();
                let mut result = ConcurrentResult::Success;
                for m in &msgs {
                    let body = String::from_utf8_lossy(m.body()).into_owned();
                    let seen = deliveries.entry(body).or_default();
                    let record = (
                        m.reconsume_times,
                        m.topic().to_owned(),
                        m.msg_id().into_owned(),
                        SystemTime::now(),
                    );
                    seen.push(record);
                    if verdict(seen.len() - 1) == ConcurrentResult::RetryLater {
                        result = ConcurrentResult::RetryLater;
                    }
                }
                result
            }
        })
}

fn count(deliveries: &Deliveries, body: &str) -> usize {
    deliveries.lock().unwrap().get(body).map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_levels_hold_messages_back() {
    let Some(ns) = namesrv("delay_levels_hold_messages_back") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_delay");
    create_topic(&producer, &topic, 2).await;
    let deliveries = Deliveries::default();
    let consumer = judging(&ns, &unique("cg"), &topic, &deliveries, |_| {
        ConcurrentResult::Success
    })
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 2).await;
    let mut sent_at = HashMap::new();
    for (body, level) in [("now", 0), ("level1", 1), ("level2", 2)] {
        let mut builder = Message::builder(topic.as_str()).body(body);
        if level > 0 {
            builder = builder.delay_level(level);
        }
        sent_at.insert(body, SystemTime::now());
        let result = producer.send(builder.build().unwrap()).await.unwrap();
        assert_eq!(result.status, SendStatus::SendOk);
    }
    wait_until("the delayed messages", secs(20), || {
        ["now", "level1", "level2"]
            .iter()
            .all(|b| count(&deliveries, b) >= 1)
    })
    .await;
    let deliveries = deliveries.lock().unwrap().clone();
    let waited = |body: &str| {
        let (.., at) = &deliveries[body][0];
        at.duration_since(sent_at[body]).unwrap_or_default()
    };
    assert!(
        waited("now") < Duration::from_secs(1),
        "{:?}",
        waited("now")
    );
    // Levels 1 and 2 are 1 s and 5 s (a little slack for the broker's timer tick).
    assert!(
        waited("level1") >= Duration::from_millis(900),
        "{:?}",
        waited("level1")
    );
    assert!(
        waited("level2") >= Duration::from_millis(4_500),
        "{:?}",
        waited("level2")
    );
    for body in ["level1", "level2"] {
        let (reconsume, topic_seen, ..) = &deliveries[body][0];
        assert_eq!((*reconsume, topic_seen.as_str()), (0, topic.as_str()));
    }
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_message_is_delivered_at_its_time() {
    let Some(ns) = namesrv("a_timer_message_is_delivered_at_its_time") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_timer");
    create_topic(&producer, &topic, 1).await;
    let deliveries = Deliveries::default();
    let consumer = judging(&ns, &unique("cg"), &topic, &deliveries, |_| {
        ConcurrentResult::Success
    })
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 1).await;
    let due = SystemTime::now() + Duration::from_secs(3);
    let message = Message::builder(topic.as_str())
        .body("timer")
        .deliver_at(due)
        .build()
        .unwrap();
    assert!(message.property(property::TIMER_DELIVER_MS).is_some());
    producer.send(message).await.unwrap();
    wait_until("the timer message", secs(20), || {
        count(&deliveries, "timer") >= 1
    })
    .await;
    let at = deliveries.lock().unwrap()["timer"][0].3;
    // The timer wheel ticks in whole seconds: allow one tick early.
    assert!(
        at + Duration::from_secs(1) >= due,
        "delivered {:?} before its time",
        due.duration_since(at).unwrap_or_default()
    );
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recalled_timer_message_is_never_delivered() {
    let Some(ns) = namesrv("a_recalled_timer_message_is_never_delivered") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_recall");
    create_topic(&producer, &topic, 1).await;
    let deliveries = Deliveries::default();
    let consumer = judging(&ns, &unique("cg"), &topic, &deliveries, |_| {
        ConcurrentResult::Success
    })
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 1).await;
    let timed = |body: &str, secs: u64| {
        Message::builder(topic.as_str())
            .body(body.to_owned())
            .deliver_at(SystemTime::now() + Duration::from_secs(secs))
            .build()
            .unwrap()
    };
    let recalled = producer.send(timed("recalled", 3)).await.unwrap();
    producer.send(timed("kept", 5)).await.unwrap();
    let handle = recalled
        .recall_handle
        .expect("a timer message's recall handle");
    let msg_id = producer.recall_message(&topic, &handle).await.unwrap();
    assert_eq!(msg_id, recalled.msg_id);
    // The one due later arrives; the recalled one, due first, never does.
    wait_until("the kept timer message", secs(20), || {
        count(&deliveries, "kept") >= 1
    })
    .await;
    assert_eq!(count(&deliveries, "recalled"), 0);
    consumer.shutdown().await;
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_message_comes_back_through_the_retry_topic() {
    let Some(ns) = namesrv("a_failed_message_comes_back_through_the_retry_topic") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_retry");
    create_topic(&producer, &topic, 2).await;
    let deliveries = Deliveries::default();
    let group = unique("cg");
    let consumer = judging(&ns, &group, &topic, &deliveries, |attempt| {
        if attempt == 0 {
            ConcurrentResult::RetryLater
        } else {
            ConcurrentResult::Success
        }
    })
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 2).await;
    let sent = producer.send(msg(&topic, "flaky", "x")).await.unwrap();
    // The first retry is level 3: 10 s on the broker.
    wait_until("the retry", secs(40), || count(&deliveries, "flaky") >= 2).await;
    let got = deliveries.lock().unwrap()["flaky"].clone();
    assert_eq!(got[0].0, 0);
    assert_eq!(got[1].0, 1, "the retry counts one reconsume");
    assert_eq!(got[1].1, topic, "the original topic is restored");
    assert_eq!(got[1].2, sent.msg_id, "the message id survives the retry");
    let waited = got[1].3.duration_since(got[0].3).unwrap_or_default();
    assert!(waited >= Duration::from_secs(9), "retried after {waited:?}");
    let retry_mq = MessageQueue::new(
        format!("%RETRY%{group}"),
        sent.message_queue.broker_name.clone(),
        0,
    );
    let admin = producer.admin();
    assert!(
        admin.max_offset(&retry_mq).await.unwrap() >= 1,
        "stored in the retry topic"
    );
    let report = consumer.shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        count(&deliveries, "flaky"),
        2,
        "acknowledged: no third delivery"
    );
    producer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_past_the_maximum_goes_to_the_dlq() {
    let Some(ns) = namesrv("a_message_failing_past_the_maximum_goes_to_the_dlq") else {
        return;
    };
    let producer = producer(&ns).await;
    let topic = unique("it_dlq");
    create_topic(&producer, &topic, 1).await;
    let deliveries = Deliveries::default();
    let group = unique("cg");
    let consumer = judging(&ns, &group, &topic, &deliveries, |_| {
        ConcurrentResult::RetryLater
    })
    .max_reconsume_times(1)
    .build()
    .await
    .unwrap();
    wait_assigned(&consumer, 1).await;
    let sent = producer.send(msg(&topic, "poison", "x")).await.unwrap();
    wait_until("the one retry", secs(40), || {
        count(&deliveries, "poison") >= 2
    })
    .await;

    let dlq = MessageQueue::new(format!("%DLQ%{group}"), sent.message_queue.broker_name, 0);
    let admin = producer.admin();
    wait_for("a dead letter", secs(30), || {
        let (admin, dlq) = (admin.clone(), dlq.clone());
        async move { admin.max_offset(&dlq).await.is_ok_and(|max| max >= 1) }
    })
    .await;
    let reader = PullConsumer::builder(unique("dlq-reader"), config(&ns))
        .assign([dlq.clone()])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let mut dead = Vec::new();
    let deadline = tokio::time::Instant::now() + secs(20);
    while dead.is_empty() && tokio::time::Instant::now() < deadline {
        dead = reader.poll(secs(2)).await.unwrap();
    }
    assert_eq!(dead.len(), 1, "one dead letter");
    assert_eq!(dead[0].body().as_ref(), b"poison");
    assert_eq!(
        dead[0].msg_id(),
        sent.msg_id,
        "the dead letter keeps its id"
    );
    reader.shutdown().await;
    consumer.shutdown().await;
    assert_eq!(
        count(&deliveries, "poison"),
        2,
        "the first delivery and one retry"
    );
    producer.shutdown().await;
}
