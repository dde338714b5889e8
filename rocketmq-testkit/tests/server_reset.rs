//! Java 5's server-side offset reset (`useServerSideResetOffset`) on the
//! wire: the reset offset committed at once and pending until the group's
//! next pull (answered PULL_OFFSET_MOVED with it, once) or pop (which starts
//! there) of the queue; UPDATE_CONSUMER_OFFSET ignored and orderly
//! acknowledgements committing nothing meanwhile; everything as before once
//! it was taken.

#![allow(clippy::unwrap_used)]

mod common;
mod pop_support;

use std::time::Duration;

use common::*;
use pop_support::{ADDR, GROUP, ack_call, committed, orderly, pop, pop_header, send_all};
use rocketmq_model::header::UpdateConsumerOffsetRequestHeader;
use rocketmq_model::message::sysflag::pull;
use rocketmq_model::{MessageQueue, RequestCode, ResponseCode};
use rocketmq_remoting::Call;
use rocketmq_remoting::calls::{PopStatus, PullMessage, PullStatus, UpdateConsumerOffset};
use rocketmq_testkit::{TestCluster, TestkitError};
use tokio::time::Instant;

fn mq(queue_id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", queue_id)
}

fn update(queue_id: i32, offset: i64) -> UpdateConsumerOffset {
    UpdateConsumerOffset(UpdateConsumerOffsetRequestHeader {
        consumer_group: GROUP.into(),
        topic: "T".into(),
        queue_id,
        commit_offset: offset,
        broker_name: None,
    })
}

/// A cluster with topic "T" (4 queues), a client whose group [`GROUP`] the
/// broker knows (by heartbeat) and has consumed four messages of queue 1,
/// committing offset 4.
async fn consumed_four() -> (TestCluster, TestClient) {
    let cluster = pop_support::cluster().await;
    let client = TestClient::new(&cluster);
    client
        .heartbeat(ADDR, consumer_heartbeat("c1", GROUP, "T", "*"))
        .await;
    send_all(&client, 1, &["m0", "m1", "m2", "m3"]).await;
    client.call(ADDR, update(1, 4)).await.unwrap();
    assert_eq!(committed(&client, "T", 1).await, 4);
    (cluster, client)
}

/// A pull of queue 1 at `offset`, committing `offset` as a push consumer's
/// pull does.
fn pull_committing(offset: i64, suspend: bool) -> PullMessage {
    let mut header = pull_header(GROUP, "T", 1, offset, suspend, Some("*"));
    header.sys_flag |= pull::COMMIT_OFFSET;
    header.commit_offset = offset;
    PullMessage(header)
}

#[tokio::test(start_paused = true)]
async fn the_next_pull_is_told_the_reset_offset_once() {
    let (cluster, client) = consumed_four().await;
    let broker = cluster.broker(0);
    let table = broker.reset_offset_server_side(GROUP, "T", 0).unwrap();
    assert_eq!(table.len(), 4, "every readable queue: {table:?}");
    assert!(table.values().all(|&offset| offset == 0), "{table:?}");
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(0), "committed");
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), Some(0));
    let reset_request = RequestCode::RESET_CONSUMER_CLIENT_OFFSET.0;
    assert!(
        !client.received_codes().contains(&reset_request),
        "nothing sent to clients"
    );

    let cmd = pull_committing(4, false).into_command().unwrap();
    let response = (client.remoting.invoke(ADDR, cmd, CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(response.response_code(), ResponseCode::PULL_OFFSET_MOVED);
    assert_eq!(response.remark.as_deref(), Some("OFFSET_RESET"));
    let moved = PullMessage::parse_response(response).unwrap();
    assert_eq!(moved.status, PullStatus::OffsetMoved);
    assert_eq!(moved.header.next_begin_offset, 0);
    assert_eq!((moved.header.min_offset, moved.header.max_offset), (0, 4));
    assert!(moved.body.is_empty());
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), None, "taken");
    // As Java's `tryCommitOffset`, that pull's commit flag still counts.
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(4));

    // Once: the same pull again is an ordinary one.
    let again = client.pull(ADDR, pull_committing(4, false).0).await;
    assert_eq!(again.status, PullStatus::NoNewMsg);
    let from_start = client.pull(ADDR, pull_committing(0, false).0).await;
    assert_eq!(bodies(&records(&from_start)), ["m0", "m1", "m2", "m3"]);
    // The other queues' resets wait for their own pulls.
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(0)), Some(0));
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_pull_held_before_the_reset_is_told_it_once_woken() {
    let (cluster, client) = consumed_four().await;
    let broker = cluster.broker(0);
    let start = Instant::now();
    let held = tokio::spawn({
        let client = client.clone();
        async move { client.pull(ADDR, pull_committing(4, true).0).await }
    });
    within(async {
        while broker.held_pulls() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    broker.reset_offset_server_side(GROUP, "T", 0).unwrap();
    // A reset wakes no held pull (nor does Java's): it is answered at the
    // first check (every 5 s) after its suspend time (15 s), as the woken
    // pull Java runs again.
    let moved = within(held).await.unwrap();
    assert_eq!(moved.status, PullStatus::OffsetMoved);
    assert_eq!(moved.header.next_begin_offset, 0);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(15) && waited <= Duration::from_secs(20),
        "{waited:?}"
    );
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), None);
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn offset_updates_are_ignored_while_the_reset_is_pending() {
    let (cluster, client) = consumed_four().await;
    let broker = cluster.broker(0);
    broker
        .reset_queue_offset_server_side(GROUP, &mq(1), 1)
        .unwrap();
    // A consumer that has not heard of the reset commits its old offset.
    let cmd = update(1, 4).into_command().unwrap();
    let response = (client.remoting.invoke(ADDR, cmd, CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(response.response_code(), ResponseCode::SUCCESS);
    assert_eq!(
        response.remark.as_deref(),
        Some("Offset has been previously reset")
    );
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(1), "ignored");
    assert_eq!(committed(&client, "T", 1).await, 1, "queried: the reset");
    // Other queues are not held.
    client.call(ADDR, update(2, 0)).await.unwrap();
    assert_eq!(broker.committed_offset(GROUP, &mq(2)), Some(0));

    // Taken by a pull, updates count again.
    let moved = client.pull(ADDR, pull_committing(4, false).0).await;
    assert_eq!(moved.status, PullStatus::OffsetMoved);
    assert_eq!(moved.header.next_begin_offset, 1);
    client.call(ADDR, update(1, 1)).await.unwrap();
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(1));
    client.call(ADDR, update(1, 3)).await.unwrap();
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(3));
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_next_pop_starts_at_the_reset_offset() {
    let cluster = pop_support::cluster().await;
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    send_all(&client, 1, &["m0", "m1", "m2", "m3"]).await;
    let first = pop(&client, pop_header(1, 32, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1", "m2", "m3"]);
    for handle in &first.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    assert_eq!(committed(&client, "T", 1).await, 4);

    let table = broker
        .reset_queue_offset_server_side(GROUP, &mq(1), 2)
        .unwrap();
    assert_eq!(table.into_iter().collect::<Vec<_>>(), [(mq(1), 2)]);
    let again = pop(&client, pop_header(-1, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["m2", "m3"]);
    assert_eq!(again.header().start_offset_info.as_deref(), Some("0 1 2"));
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), None, "taken");
    for handle in &again.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    // Taken once: the next pop goes on from where that one stopped.
    let none = pop(&client, pop_header(1, 32, 0)).await;
    assert_eq!(none.response.status, PopStatus::NoNewMsg);
    assert_eq!(committed(&client, "T", 1).await, 4);
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn orderly_acks_commit_nothing_while_pending_and_the_pop_unblocks_the_queue() {
    let cluster = pop_support::cluster().await;
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    send_all(&client, 1, &["m0", "m1", "m2", "m3"]).await;
    let first = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&first.messages), ["m0", "m1", "m2", "m3"]);
    client
        .call(ADDR, ack_call(&first.handles[0]))
        .await
        .unwrap();
    assert_eq!(committed(&client, "T", 1).await, 1);

    broker
        .reset_queue_offset_server_side(GROUP, &mq(1), 0)
        .unwrap();
    // Java's `ackOrderly`: marked acknowledged, nothing committed.
    client
        .call(ADDR, ack_call(&first.handles[1]))
        .await
        .unwrap();
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(0));
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), Some(0));

    // m2 and m3 are neither acknowledged nor visible again, which would
    // block the queue; the pop that takes the reset forgets that pop.
    let again = pop(&client, orderly(1, 32, 0)).await;
    assert_eq!(bodies(&again.messages), ["m0", "m1", "m2", "m3"]);
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), None);
    for handle in &again.handles {
        client.call(ADDR, ack_call(handle)).await.unwrap();
    }
    assert_eq!(committed(&client, "T", 1).await, 4);
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_reset_is_refused_as_javas_and_forgotten_by_a_restart() {
    let (cluster, client) = consumed_four().await;
    let broker = cluster.broker(0);
    assert!(matches!(
        broker.reset_offset_server_side(GROUP, "NOPE", 0),
        Err(TestkitError::TopicNotFound(topic)) if topic == "NOPE"
    ));
    assert!(matches!(
        broker.reset_offset_server_side("unknown", "T", 0),
        Err(TestkitError::SubscriptionGroupNotFound(group)) if group == "unknown"
    ));
    match broker.reset_queue_offset_server_side(GROUP, &mq(1), 6) {
        Err(TestkitError::ResetRefused(remark)) => {
            assert_eq!(remark, "Target offset 6 not in consume queue range [0-4]");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(4), "untouched");
    // One past the max offset is taken, as Java's check lets it.
    broker
        .reset_queue_offset_server_side(GROUP, &mq(1), 5)
        .unwrap();
    // A negative time: the max offset.
    let table = broker.reset_offset_server_side(GROUP, "T", -1).unwrap();
    assert_eq!(table[&mq(1)], 4);
    assert_eq!(table[&mq(0)], 0);
    // A queue the topic does not have.
    assert!(matches!(
        broker.reset_queue_offset_server_side(GROUP, &mq(-1), 0),
        Err(TestkitError::ResetRefused(_))
    ));

    // The last reset, pending at the restart: the restart forgets that it
    // is pending, and keeps what it committed.
    broker
        .reset_queue_offset_server_side(GROUP, &mq(1), 5)
        .unwrap();
    broker.restart().await.unwrap();
    assert_eq!(broker.pending_offset_reset(GROUP, &mq(1)), None);
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(5), "kept");
    client.call(ADDR, update(1, 2)).await.unwrap();
    assert_eq!(broker.committed_offset(GROUP, &mq(1)), Some(2));
    cluster.shutdown().await;
}
