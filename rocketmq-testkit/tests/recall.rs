//! Recalling timer messages (RECALL_MESSAGE, Java 5.3.1+): the handle a
//! timer message's send answers, and each answer of Java's
//! `RecallMessageProcessor`, on paused tokio time.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rocketmq_model::header::RecallMessageRequestHeader;
use rocketmq_model::message::{RecallHandle, property};
use rocketmq_model::{Message, ResponseCode};
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::calls::RecallMessage;
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";

fn timer_message(topic: &str, body: &str, secs: u64) -> Message {
    let mut message = Message::builder(topic)
        .body(body.to_owned())
        .delay_time_sec(secs)
        .build()
        .unwrap();
    message
        .properties
        .insert(property::UNIQ_KEY, format!("UNIQ-{body}"))
        .unwrap();
    message
}

fn recall(topic: &str, handle: &str) -> RecallMessage {
    RecallMessage(RecallMessageRequestHeader {
        producer_group: Some("pg".into()),
        topic: topic.into(),
        recall_handle: handle.into(),
        broker_name: Some("broker-a".into()),
    })
}

/// The code and remark a refused call answered.
fn refusal<T: std::fmt::Debug>(result: Result<T, RemotingError>) -> (ResponseCode, String) {
    match result {
        Err(RemotingError::Response { code, remark, .. }) => (code, remark),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_timer_message_answers_a_handle_that_recalls_it() {
    let cluster = TestCluster::builder()
        .topic("T")
        .recall_messages(true)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);

    let sent = client
        .send(ADDR, &timer_message("T", "recalled", 60), 0)
        .await;
    let handle = RecallHandle::parse(sent.header.recall_handle.as_deref().unwrap()).unwrap();
    let parked = &broker.messages("rmq_sys_wheel_timer", 0)[0].message;
    let out: i64 = parked
        .property(property::TIMER_OUT_MS)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        (handle.topic(), handle.broker_name(), handle.message_id()),
        ("T", "broker-a", "UNIQ-recalled")
    );
    assert_eq!(
        handle.deliver_ms(),
        Some(out + 1),
        "Java's floor: one ms past"
    );
    // Due after the recalled one: once it arrives, the recalled one's time
    // has passed.
    let kept = client.send(ADDR, &timer_message("T", "kept", 90), 0).await;
    assert!(kept.header.recall_handle.is_some());
    for plain in [message("T", "now", "a"), {
        let mut leveled = message("T", "level", "a");
        leveled.properties.insert(property::DELAY, "2").unwrap();
        leveled
    }] {
        let sent = client.send(ADDR, &plain, 0).await;
        assert_eq!(sent.header.recall_handle, None, "not a timer message");
    }
    assert_eq!(broker.scheduled_count(), 3);

    let encoded = handle.encode();
    let msg_id = client.call(ADDR, recall("T", &encoded)).await.unwrap();
    assert_eq!(msg_id, "UNIQ-recalled");
    assert_eq!(broker.scheduled_count(), 2);
    // As Java's: a second recall of the same message is answered the same.
    let again = client.call(ADDR, recall("T", &encoded)).await.unwrap();
    assert_eq!(again, "UNIQ-recalled");

    within(async {
        while !bodies(&broker.messages("T", 0)).contains(&"kept".to_owned()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let delivered = bodies(&broker.messages("T", 0));
    assert_eq!(
        delivered,
        ["now", "level", "kept"],
        "the recalled one never arrives"
    );

    // Once delivered, the message is past recalling.
    let kept = kept.header.recall_handle.unwrap();
    let (code, remark) = refusal(client.call(ADDR, recall("T", &kept)).await);
    assert_eq!(code, ResponseCode::ILLEGAL_OPERATION);
    assert_eq!(remark, "recall failed, timestamp invalid");
}

#[tokio::test(start_paused = true)]
async fn recalls_are_refused_as_java_refuses_them() {
    let cluster = TestCluster::builder()
        .topic("T")
        .topic("U")
        .recall_messages(true)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let sent = client.send(ADDR, &timer_message("T", "m", 60), 0).await;
    let handle = sent.header.recall_handle.unwrap();
    let parsed = RecallHandle::parse(&handle).unwrap();
    let deliver_ms = parsed.deliver_ms().unwrap();

    let cases = [
        (
            recall("Nowhere", &handle),
            ResponseCode::TOPIC_NOT_EXIST,
            "recall failed, the topic[Nowhere] not exist",
        ),
        (
            recall("T", "%%%"),
            ResponseCode::ILLEGAL_OPERATION,
            "recall handle is invalid",
        ),
        (
            recall("U", &handle),
            ResponseCode::ILLEGAL_OPERATION,
            "recall failed, topic not match",
        ),
        (
            recall(
                "T",
                &RecallHandle::new("T", "broker-b", deliver_ms, "UNIQ-m").encode(),
            ),
            ResponseCode::ILLEGAL_OPERATION,
            "recall failed, broker service not available",
        ),
        (
            recall(
                "T",
                &RecallHandle::new("T", "broker-a", 1, "UNIQ-m").encode(),
            ),
            ResponseCode::ILLEGAL_OPERATION,
            "recall failed, timestamp invalid",
        ),
        (
            recall(
                "T",
                &RecallHandle::new("T", "broker-a", i64::MAX, "UNIQ-m").encode(),
            ),
            ResponseCode::ILLEGAL_OPERATION,
            "recall failed, timestamp invalid",
        ),
    ];
    for (call, code, remark) in cases {
        let (got, got_remark) = refusal(client.call(ADDR, call).await);
        assert_eq!((got, got_remark.as_str()), (code, remark));
    }
    assert_eq!(cluster.broker(0).scheduled_count(), 1, "nothing recalled");
}

#[tokio::test(start_paused = true)]
async fn recalls_are_forbidden_unless_enabled() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let sent = client.send(ADDR, &timer_message("T", "m", 60), 0).await;
    // Java's broker answers the handle whether or not recalls are allowed.
    let handle = sent.header.recall_handle.unwrap();
    let (code, remark) = refusal(client.call(ADDR, recall("T", &handle)).await);
    assert_eq!(code, ResponseCode::NO_PERMISSION);
    assert_eq!(remark, "recall failed, operation is forbidden");
    assert_eq!(cluster.broker(0).scheduled_count(), 1);
}
