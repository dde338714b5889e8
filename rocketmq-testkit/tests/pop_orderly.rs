//! Orderly (FIFO) pop consumption against the fake broker: POP_MESSAGE with
//! `order`, and ACK_MESSAGE, CHANGE_MESSAGE_INVISIBLETIME and
//! BATCH_ACK_MESSAGE of its handles (revive queue 999), as Java's
//! `ConsumerOrderInfoManager` serves them, on paused tokio time.

#![allow(clippy::unwrap_used)]

mod common;
mod pop_support;

use std::time::Duration;

use common::*;
use pop_support::*;
use rocketmq_model::ResponseCode;
use rocketmq_model::body::{BatchAck, BatchAckMessageRequestBody};
use rocketmq_model::header::PopMessageRequestHeader;
use rocketmq_model::message::pop::{ORDERLY_REVIVE_QUEUE, PopTopicKind, ReceiptHandle};
use rocketmq_model::message::pop::{parse_msg_offset_info, parse_start_offset_info};
use rocketmq_remoting::calls::{BatchAckMessage, PopStatus};
use rocketmq_remoting::{Call, RemotingError};

fn with_attempt(mut header: PopMessageRequestHeader, attempt: &str) -> PopMessageRequestHeader {
    header.attempt_id = Some(attempt.into());
    header
}

/// A batch entry acknowledging `bits` (distances from the pop's start) of
/// the pop `handle` came from.
fn batch_entry(handle: &ReceiptHandle, bits: &[u32]) -> BatchAck {
    BatchAck {
        consumer_group: GROUP.into(),
        topic: "T".into(),
        retry: "0".into(),
        start_offset: handle.ck_queue_offset,
        queue_id: handle.queue_id,
        revive_queue_id: handle.revive_qid,
        pop_time: handle.pop_time,
        invisible_time: handle.invisible_time,
        bits: bits.iter().copied().collect(),
    }
}

fn batch(acks: Vec<BatchAck>) -> BatchAckMessage {
    BatchAckMessage(BatchAckMessageRequestBody {
        broker_name: "broker-a".into(),
        acks,
    })
}

#[tokio::test(start_paused = true)]
async fn a_queue_answers_in_order_and_its_next_messages_wait_for_the_batch() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1", "m2", "m3"]).await;

    let first = pop(&client, orderly(1, 2, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1"]);
    let header = first.header();
    assert_eq!(header.revive_qid, ORDERLY_REVIVE_QUEUE);
    assert_eq!(header.start_offset_info.as_deref(), Some("0 1 0"));
    assert_eq!(header.msg_offset_info.as_deref(), Some("0 1 0,1"));
    assert_eq!(
        first.order_count_info(),
        "0 1 0",
        "answered for the first time"
    );
    assert_eq!(first.reconsume_times, [0, 0]);
    assert_eq!(header.rest_num, 2);
    assert_eq!(
        committed(&client, "T", 1).await,
        0,
        "committed where it began"
    );
    assert!(
        cluster.broker(0).in_flight_pops(GROUP).is_empty(),
        "no checkpoint"
    );

    let blocked = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(blocked.response.status, PopStatus::NoNewMsg);
    let header = blocked.header();
    // Java sends an empty `orderCountInfo`, which reads as none.
    assert_eq!(header.order_count_info.as_deref().unwrap_or_default(), "");
    assert_eq!(
        header.rest_num, 0,
        "a blocked queue's backlog is not counted"
    );

    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 1);
    let still = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(
        still.response.status,
        PopStatus::NoNewMsg,
        "m1 is in flight"
    );

    client
        .call(ADDR, ack_call(&first.handles[1]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 2);
    let next = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&next.messages), ["m2", "m3"]);
    assert_eq!(next.reconsume_times, [0, 0]);
    // An ack below the committed offset is answered and does nothing; one
    // of an offset the pop did not answer is refused.
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 2);
    let mut stranger = next.handles[0].clone();
    stranger.queue_offset = 4;
    client.send(ADDR, &message("T", "m4", "a"), 1).await;
    match client.call(ADDR, ack_call(&stranger)).await {
        Err(RemotingError::Response { code, remark, .. }) => {
            assert_eq!(code, ResponseCode::MESSAGE_ILLEGAL);
            assert!(
                remark.starts_with("offset is illegal, key:T@cg@1, old:2, commit:4, next:-1, /"),
                "{remark}"
            );
        }
        other => panic!("expected MESSAGE_ILLEGAL, got {other:?}"),
    }
    assert!(
        cluster.broker(0).topic(RETRY).is_none(),
        "no retry topic is made"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_batch_comes_back_whole_with_its_order_counts() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1", "m2"]).await;
    let first = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1", "m2"]);

    tokio::time::advance(INVISIBLE - Duration::from_millis(1)).await;
    let early = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(early.response.status, PopStatus::NoNewMsg, "not yet");
    tokio::time::advance(Duration::from_millis(1)).await;
    let again = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["m0", "m1", "m2"]);
    assert_eq!(
        again.order_count_info(),
        "0 qo1%0 1;0 qo1%1 1;0 qo1%2 1;0 1 1"
    );
    assert_eq!(again.reconsume_times, [1, 1, 1]);
    assert!(again.header().pop_time > first.header().pop_time);
    assert!(
        cluster.broker(0).messages(RETRY, 0).is_empty(),
        "nothing revived"
    );

    // The old pop's handles no longer commit anything.
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 0);

    tokio::time::advance(INVISIBLE).await;
    let third = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(third.reconsume_times, [2, 2, 2]);
    assert_eq!(
        third.order_count_info(),
        "0 qo1%0 2;0 qo1%1 2;0 qo1%2 2;0 1 2"
    );
}

#[tokio::test(start_paused = true)]
async fn a_partial_acknowledgement_commits_up_to_the_first_unacknowledged_message() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1", "m2", "m3"]).await;
    let first = pop(&client, orderly(1, 32, 0)).await;
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    client
        .call(ADDR, ack_call(&first.handles[2]))
        .await
        .unwrap();
    assert_eq!(
        committed(&client, "T", 1).await,
        1,
        "m1 is not acknowledged"
    );

    tokio::time::advance(INVISIBLE).await;
    let again = pop(&client, orderly(1, 32, 0)).await;
    // Java reads on from the committed offset: m2 comes back though it was
    // acknowledged.
    assert_eq!(bodies(&again.messages), ["m1", "m2", "m3"]);
    assert_eq!(again.header().start_offset_info.as_deref(), Some("0 1 1"));
    assert_eq!(again.reconsume_times, [1, 1, 1]);
    for handle in &again.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    assert_eq!(committed(&client, "T", 1).await, 4);
    client.send(ADDR, &message("T", "m4", "a"), 1).await;
    let next = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&next.messages), ["m4"]);
    assert_eq!(next.order_count_info(), "0 1 0");
}

#[tokio::test(start_paused = true)]
async fn changing_the_invisible_time_of_an_orderly_handle_delays_the_return() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 0, &["m0", "m1"]).await;
    let first = pop(&client, orderly(0, 32, 0)).await;
    tokio::time::advance(Duration::from_secs(10)).await;
    let answer = client
        .call(
            ADDR,
            change_call(&first.handles[1], Duration::from_secs(60)),
        )
        .await
        .unwrap();
    // Java answers the handle's pop, and the time from it to the new
    // visible time.
    assert_eq!(answer.pop_time, first.handles[1].pop_time);
    assert_eq!(answer.revive_qid, ORDERLY_REVIVE_QUEUE);
    assert!(
        (70_000..70_100).contains(&answer.invisible_time),
        "{}",
        answer.invisible_time
    );

    tokio::time::advance(INVISIBLE).await;
    let blocked = pop(&client, orderly(0, 32, 0)).await;
    assert_eq!(
        blocked.response.status,
        PopStatus::NoNewMsg,
        "m0 is visible, m1 not"
    );
    tokio::time::advance(Duration::from_secs(31)).await;
    let again = pop(&client, orderly(0, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["m0", "m1"]);
    assert_eq!(again.reconsume_times, [1, 1]);

    // A change of a message below the committed offset answers SUCCESS
    // with no header, as Java's.
    client
        .call(ADDR, ack_call(&again.handles[0]))
        .await
        .unwrap();
    let command = change_call(&again.handles[0], INVISIBLE)
        .into_command()
        .unwrap();
    let raw = (client.remoting)
        .invoke(ADDR, command, CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(raw.code, ResponseCode::SUCCESS.0);
    assert!(!raw.ext_fields.contains_key("popTime"), "{raw:?}");
}

#[tokio::test(start_paused = true)]
async fn a_blocked_queue_does_not_block_the_others() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 0, &["a0", "a1"]).await;
    send_all(&client, 1, &["b0"]).await;
    let queue0 = pop(&client, orderly(0, 32, 0)).await;
    assert_eq!(bodies(&queue0.messages), ["a0", "a1"]);

    let all = pop(&client, orderly(-1, 32, 0)).await;
    assert_eq!(bodies(&all.messages), ["b0"]);
    let header = all.header();
    let starts = parse_start_offset_info(header.start_offset_info.as_deref().unwrap()).unwrap();
    assert_eq!(starts.len(), 1, "queue 0 is not read");
    let offsets = parse_msg_offset_info(header.msg_offset_info.as_deref().unwrap()).unwrap();
    assert_eq!(offsets[&(PopTopicKind::Normal, 1)], [0]);
    assert_eq!(all.order_count_info(), "0 1 0");

    send_all(&client, 0, &["a2"]).await;
    for handle in &queue0.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    let after = pop(&client, orderly(-1, 32, 0)).await;
    assert_eq!(bodies(&after.messages), ["a2"], "queue 1 is blocked by b0");
    assert_eq!(after.order_count_info(), "0 0 0");
}

#[tokio::test(start_paused = true)]
async fn a_held_orderly_pop_wakes_when_its_batch_is_acknowledged_or_visible() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    send_all(&client, 2, &["m0", "m1"]).await;
    let first = pop(&client, orderly(2, 1, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0"]);

    let held = tokio::spawn({
        let client = client.clone();
        async move { pop(&client, orderly(-1, 32, 20_000)).await }
    });
    within(async {
        while broker.held_pops() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    let woken = within(held).await.unwrap();
    assert_eq!(bodies(&woken.messages), ["m1"]);

    // Not acknowledged: a held pop wakes when the invisible time ends.
    let started = tokio::time::Instant::now();
    let again = pop(&client, orderly(2, 32, 40_000)).await;
    assert_eq!(bodies(&again.messages), ["m1"]);
    assert_eq!(again.reconsume_times, [1]);
    let waited = started.elapsed();
    assert!(
        waited > INVISIBLE - Duration::from_secs(1) && waited <= INVISIBLE,
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_batch_ack_of_orderly_entries_acknowledges_each_offset() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1", "m2", "m3", "m4"]).await;
    let first = pop(&client, orderly(1, 3, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1", "m2"]);
    client
        .call(ADDR, batch(vec![batch_entry(&first.handles[0], &[0, 2])]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 1);
    client
        .call(ADDR, batch(vec![batch_entry(&first.handles[0], &[1])]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 3);

    let second = pop(&client, orderly(1, 1, 0)).await;
    assert_eq!(bodies(&second.messages), ["m3"]);
    // Offset 4 (bit 1) was not answered by that pop: MESSAGE_ILLEGAL, after
    // offset 3 (bit 0) was acknowledged.
    let result = client
        .call(ADDR, batch(vec![batch_entry(&second.handles[0], &[0, 1])]))
        .await;
    match result {
        Err(RemotingError::Response { code, remark, .. }) => {
            assert_eq!(code, ResponseCode::MESSAGE_ILLEGAL);
            assert!(
                remark.starts_with("offset is illegal, key:T@cg@1, old:4, commit:4, next:-1"),
                "{remark}"
            );
        }
        other => panic!("expected MESSAGE_ILLEGAL, got {other:?}"),
    }
    assert_eq!(committed(&client, "T", 1).await, 4);
    let third = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&third.messages), ["m4"]);
}

#[tokio::test(start_paused = true)]
async fn a_pop_repeating_the_attempt_id_reads_the_blocked_batch_again() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1"]).await;
    let first = pop(&client, with_attempt(orderly(1, 32, 0), "a1")).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1"]);
    let other = pop(&client, with_attempt(orderly(1, 32, 0), "a2")).await;
    assert_eq!(other.response.status, PopStatus::NoNewMsg);
    let plain = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(plain.response.status, PopStatus::NoNewMsg);

    let retried = pop(&client, with_attempt(orderly(1, 32, 0), "a1")).await;
    assert_eq!(bodies(&retried.messages), ["m0", "m1"]);
    assert_eq!(
        retried.order_count_info(),
        "0 1 0",
        "the same attempt is not counted again"
    );
    assert_eq!(retried.reconsume_times, [0, 0]);
    // The first pop's handles name a pop the queue no longer keeps.
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 0);
    for handle in &retried.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    assert_eq!(committed(&client, "T", 1).await, 2);
}

#[tokio::test(start_paused = true)]
async fn an_orderly_pop_survives_a_broker_restart() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 0, &["kept"]).await;
    pop(&client, orderly(0, 32, 0)).await;
    cluster.broker(0).restart().await.unwrap();
    let blocked = pop(&client, orderly(0, 32, 0)).await;
    assert_eq!(blocked.response.status, PopStatus::NoNewMsg);
    tokio::time::advance(INVISIBLE).await;
    let again = pop(&client, orderly(0, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["kept"]);
    assert_eq!(again.reconsume_times, [1]);
}

#[tokio::test(start_paused = true)]
async fn a_repeated_attempt_keeps_the_counts_of_a_batch_answered_again() {
    let cluster = cluster().await;
    let client = TestClient::new(&cluster);
    send_all(&client, 1, &["m0", "m1"]).await;
    let first = pop(&client, with_attempt(orderly(1, 32, 0), "a1")).await;
    assert_eq!(first.reconsume_times, [0, 0]);
    tokio::time::advance(INVISIBLE).await;

    // Answered again under a new attempt: counted once more.
    let again = pop(&client, with_attempt(orderly(1, 32, 0), "a2")).await;
    assert_eq!(bodies(&again.messages), ["m0", "m1"]);
    assert_eq!(again.order_count_info(), "0 qo1%0 1;0 qo1%1 1;0 1 1");
    assert_eq!(again.reconsume_times, [1, 1]);
    // Its repeat keeps those counts (Java's `mergeOffsetConsumedCount`
    // takes the previous pop's), neither raised nor reset.
    let repeated = pop(&client, with_attempt(orderly(1, 32, 0), "a2")).await;
    assert_eq!(bodies(&repeated.messages), ["m0", "m1"]);
    assert_eq!(repeated.order_count_info(), again.order_count_info());
    assert_eq!(repeated.reconsume_times, [1, 1]);
    // The repeat is the queue's batch now: the others still wait for it.
    let other = pop(&client, with_attempt(orderly(1, 32, 0), "a3")).await;
    assert_eq!(other.response.status, PopStatus::NoNewMsg);
    let plain = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(plain.response.status, PopStatus::NoNewMsg);

    tokio::time::advance(INVISIBLE).await;
    let third = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&third.messages), ["m0", "m1"]);
    assert_eq!(third.reconsume_times, [2, 2]);
    // A pop without an attempt id never repeats another: not even one
    // without an id.
    let unnamed = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(unnamed.response.status, PopStatus::NoNewMsg);
}
