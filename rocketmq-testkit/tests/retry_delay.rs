//! Send-back to the retry topic with growing delays, dead-lettering, delay
//! levels and `TIMER_DELIVER_MS`, all on paused tokio time.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rocketmq_model::header::ConsumerSendMsgBackRequestHeader;
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, ResponseCode};
use rocketmq_remoting::calls::{ConsumerSendMsgBack, PullStatus};
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";

fn send_back(message: &MessageExt, delay_level: i32) -> ConsumerSendMsgBack {
    ConsumerSendMsgBack(ConsumerSendMsgBackRequestHeader {
        offset: message.commit_log_offset,
        group: "g".into(),
        delay_level,
        origin_msg_id: Some(message.msg_id().into_owned()),
        origin_topic: Some(message.topic().to_owned()),
        unit_mode: false,
        max_reconsume_times: None,
        broker_name: None,
    })
}

#[tokio::test(start_paused = true)]
async fn failed_messages_are_retried_with_growing_delays_then_dead_lettered() {
    let cluster = TestCluster::builder()
        .topic("T")
        .retry_max_times("g", 2)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    client.send(ADDR, &message("T", "fails", "a"), 0).await;
    let original = broker.messages("T", 0).remove(0);

    client.call(ADDR, send_back(&original, 0)).await.unwrap();
    assert!(
        broker.messages("%RETRY%g", 0).is_empty(),
        "level 3 waits 10 s"
    );
    assert_eq!(broker.scheduled_count(), 1);
    let parked = broker.messages("SCHEDULE_TOPIC_XXXX", 2);
    assert_eq!(
        parked[0].message.property(property::REAL_TOPIC),
        Some("%RETRY%g")
    );
    tokio::time::sleep(Duration::from_millis(9_999)).await;
    assert!(broker.messages("%RETRY%g", 0).is_empty());
    tokio::time::sleep(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    let retried = broker.messages("%RETRY%g", 0);
    assert_eq!(retried.len(), 1, "delivered after exactly 10 s");
    let first_retry = &retried[0];
    assert_eq!(first_retry.reconsume_times, 1);
    assert_eq!(
        first_retry.message.property(property::RETRY_TOPIC),
        Some("T")
    );
    assert_eq!(
        first_retry.message.property(property::ORIGIN_MESSAGE_ID),
        Some(original.offset_msg_id().as_str())
    );
    assert_eq!(first_retry.message.property(property::DELAY), None);
    assert_eq!(first_retry.message.uniq_key(), Some("UNIQ-fails"));
    let pulled = client
        .pull(ADDR, pull_header("g", "%RETRY%g", 0, 0, false, Some("*")))
        .await;
    assert_eq!(pulled.status, PullStatus::Found);

    // Second failure: level 3 + 1 = 30 s.
    client.call(ADDR, send_back(first_retry, 0)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(broker.messages("%RETRY%g", 0).len(), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    let second_retry = broker.messages("%RETRY%g", 0).remove(1);
    assert_eq!(second_retry.reconsume_times, 2);
    assert_eq!(
        second_retry.message.property(property::ORIGIN_MESSAGE_ID),
        Some(original.offset_msg_id().as_str()),
        "the first id is kept"
    );

    // Third failure: the group's limit (2) is reached.
    client
        .call(ADDR, send_back(&second_retry, 0))
        .await
        .unwrap();
    let dead = broker.messages("%DLQ%g", 0);
    assert_eq!(dead.len(), 1, "dead-lettered at once");
    assert_eq!(dead[0].reconsume_times, 3);
    assert_eq!(broker.scheduled_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_negative_level_dead_letters_and_unknown_offsets_fail() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    client.send(ADDR, &message("T", "poison", "a"), 0).await;
    let original = cluster.broker(0).messages("T", 0).remove(0);
    client.call(ADDR, send_back(&original, -1)).await.unwrap();
    assert_eq!(cluster.broker(0).messages("%DLQ%g", 0).len(), 1);
    let mut missing = original.clone();
    missing.commit_log_offset = 999_999;
    let err = client.call(ADDR, send_back(&missing, 0)).await.unwrap_err();
    assert_eq!(err.response_code(), Some(ResponseCode::SYSTEM_ERROR));
}

#[tokio::test(start_paused = true)]
async fn a_retry_topic_send_over_the_limit_goes_to_the_dlq() {
    let cluster = TestCluster::builder()
        .retry_max_times("g", 1)
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    for (reconsume_times, body) in [(1, "at the limit"), (2, "over the limit")] {
        let m = message("%RETRY%g", body, "a");
        let mut header = send_header(&m, 0);
        header.reconsume_times = Some(reconsume_times);
        client
            .call(
                ADDR,
                rocketmq_remoting::calls::SendMessage::new(header, m.body.clone()),
            )
            .await
            .unwrap();
    }
    assert_eq!(bodies(&broker.messages("%RETRY%g", 0)), ["at the limit"]);
    assert_eq!(bodies(&broker.messages("%DLQ%g", 0)), ["over the limit"]);
}

#[tokio::test(start_paused = true)]
async fn delay_level_3_is_delivered_after_10_seconds_and_wakes_a_held_pull() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let start = tokio::time::Instant::now();
    let held = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .pull(ADDR, pull_header("g", "T", 1, 0, true, Some("*")))
                .await
        })
    };
    let delayed: Message = Message::builder("T")
        .body("later")
        .delay_level(3)
        .build()
        .unwrap();
    let sent = client.send(ADDR, &delayed, 1).await;
    assert_eq!(sent.header.queue_id, 1);
    assert!(cluster.broker(0).messages("T", 1).is_empty());
    let pulled = within(held).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    let messages = records(&pulled);
    assert_eq!(bodies(&messages), ["later"]);
    assert_eq!(
        messages[0].message.property(property::REAL_TOPIC),
        Some("T")
    );
    assert_eq!(messages[0].message.property(property::DELAY), None);
}

#[tokio::test(start_paused = true)]
async fn timer_messages_are_delivered_at_their_time() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    // Half a second past a whole second 6 s ahead: the broker rounds down to
    // its 1 s precision, so delivery is 5 to 6 s from now.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at_ms = (now_ms / 1000 + 6) * 1000 + 500;
    let timed = Message::builder("T")
        .body("timed")
        .deliver_at(UNIX_EPOCH + Duration::from_millis(at_ms))
        .build()
        .unwrap();
    client.send(ADDR, &timed, 0).await;
    let broker = cluster.broker(0);
    let parked = broker.messages("rmq_sys_wheel_timer", 0);
    let out = (at_ms - 500).to_string();
    assert_eq!(
        parked[0].message.property(property::TIMER_OUT_MS),
        Some(out.as_str())
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(broker.messages("T", 0).is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    let delivered = broker.messages("T", 0);
    assert_eq!(bodies(&delivered), ["timed"]);
    let delivered = &delivered[0].message;
    assert_eq!(delivered.property(property::REAL_TOPIC), None);
    assert!(delivered.property(property::TIMER_DEQUEUE_MS).is_some());
    assert_eq!(delivered.property(property::WAIT), Some("false"));

    let past = UNIX_EPOCH + Duration::from_secs(1);
    let due = Message::builder("T")
        .body("due")
        .deliver_at(past)
        .build()
        .unwrap();
    client.send(ADDR, &due, 0).await;
    assert_eq!(
        broker.messages("T", 0).len(),
        2,
        "a past time is delivered at once"
    );

    let too_far = SystemTime::now() + Duration::from_secs(4 * 24 * 3600);
    let far = Message::builder("T")
        .body("far")
        .deliver_at(too_far)
        .build()
        .unwrap();
    let header = send_header(&far, 0);
    let err = client
        .call(
            ADDR,
            rocketmq_remoting::calls::SendMessage::new(header, far.body.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.response_code(), Some(ResponseCode::MESSAGE_ILLEGAL));
}

#[tokio::test(start_paused = true)]
async fn delayed_messages_survive_a_restart() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let delayed = Message::builder("T")
        .body("x")
        .delay_level(1)
        .build()
        .unwrap();
    client.send(ADDR, &delayed, 0).await;
    cluster.broker(0).restart().await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(cluster.broker(0).messages("T", 0).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_level_above_the_longest_waits_the_longest() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    // As another client may write it: Java reads the level as an int and
    // delays anything above 18 by level 18 (2 h).
    let mut delayed = Message::new("T", "much later");
    delayed.properties.insert(property::DELAY, "300").unwrap();
    client.send(ADDR, &delayed, 0).await;
    assert!(broker.messages("T", 0).is_empty());
    assert_eq!(broker.scheduled_count(), 1);
    tokio::time::sleep(Duration::from_secs(2 * 3600 - 1)).await;
    assert!(broker.messages("T", 0).is_empty(), "before 2 h");
    tokio::time::sleep(Duration::from_secs(2)).await;
    within(async {
        while broker.messages("T", 0).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    cluster.shutdown().await;
}

/// A reconsume count at `i32::MAX` (any value a client may send) wraps as
/// Java's int does: the copy goes to the DLQ with the count past the top,
/// and the broker answers instead of failing the request's task.
#[tokio::test(start_paused = true)]
async fn a_send_back_of_the_largest_reconsume_count_is_dead_lettered() {
    let cluster = TestCluster::builder().build().await.unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    let m = message("%RETRY%g", "worn out", "a");
    let mut header = send_header(&m, 0);
    header.reconsume_times = Some(i32::MAX);
    header.max_reconsume_times = Some(i32::MAX);
    client
        .call(
            ADDR,
            rocketmq_remoting::calls::SendMessage::new(header, m.body.clone()),
        )
        .await
        .unwrap();
    let stored = broker.messages("%RETRY%g", 0).remove(0);
    assert_eq!(stored.reconsume_times, i32::MAX);

    let dead = within(client.call(ADDR, send_back(&stored, 0))).await;
    assert!(dead.is_ok(), "{dead:?}");
    let dead = broker.messages("%DLQ%g", 0);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reconsume_times, i32::MIN);
}
