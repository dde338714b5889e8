//! Transactional messages: half messages, commit, rollback and check-back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use rocketmq_model::header::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, TransactionResolution,
};
use rocketmq_model::message::{TransactionType, property, sysflag};
use rocketmq_model::{Message, OffsetMessageId, RequestCode, decode_records};
use rocketmq_remoting::calls::{EndTransaction, SendResponse};
use rocketmq_testkit::TestCluster;

const ADDR: &str = "broker-a:10911";
const CHECK: i32 = RequestCode::CHECK_TRANSACTION_STATE.0;

async fn send_half(client: &TestClient, body: &str) -> SendResponse {
    send_half_with(client, body, &[]).await
}

async fn send_half_with(client: &TestClient, body: &str, extra: &[(&str, &str)]) -> SendResponse {
    // The properties a transaction producer sets (the builder keeps these
    // reserved names for the client).
    let mut half = Message::builder("T").body(body.to_owned()).build().unwrap();
    for (name, value) in [
        (property::TRAN_MSG, "true".to_owned()),
        (property::PGROUP, "pg".to_owned()),
        (property::UNIQ_KEY, format!("TX-{body}")),
    ] {
        half.properties.insert(name, value).unwrap();
    }
    for (name, value) in extra {
        half.properties.insert(*name, *value).unwrap();
    }
    let mut header = send_header(&half, 2);
    header.sys_flag = TransactionType::Prepared.bits();
    client
        .call(
            ADDR,
            rocketmq_remoting::calls::SendMessage::new(header, half.body.clone()),
        )
        .await
        .unwrap()
}

fn end(sent: &SendResponse, resolution: TransactionResolution) -> EndTransaction {
    let offset = OffsetMessageId::parse(&sent.header.msg_id)
        .unwrap()
        .commit_log_offset;
    EndTransaction {
        header: EndTransactionRequestHeader {
            topic: Some("T".into()),
            producer_group: "pg".into(),
            tran_state_table_offset: sent.header.queue_offset,
            commit_log_offset: offset,
            commit_or_rollback: resolution,
            from_transaction_check: false,
            msg_id: sent.header.transaction_id.clone().unwrap_or_default(),
            transaction_id: sent.header.transaction_id.clone(),
            broker_name: None,
        },
        remark: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_committed_half_message_becomes_visible_in_its_queue() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    let sent = send_half(&client, "order").await;
    assert_eq!(sent.header.transaction_id.as_deref(), Some("TX-order"));
    assert_eq!(sent.header.queue_id, 2);
    assert!(
        broker.messages("T", 2).is_empty(),
        "a half message is invisible"
    );
    assert_eq!(broker.pending_transactions(), 1);
    let pulled = client
        .pull(ADDR, pull_header("g", "T", 2, 0, false, Some("*")))
        .await;
    assert!(records(&pulled).is_empty());

    client
        .call(ADDR, end(&sent, TransactionResolution::Commit))
        .await
        .unwrap();
    within(async {
        while broker.messages("T", 2).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let committed = broker.messages("T", 2).remove(0);
    // Java's EndTransactionProcessor clears TRAN_MSG: a consumed message is
    // no half message, and sent again as it is, it must not become one.
    assert_eq!(committed.message.property(property::TRAN_MSG), None);
    assert_eq!(committed.message.property(property::PGROUP), Some("pg"));
    assert_eq!(
        sysflag::transaction_type(committed.sys_flag),
        TransactionType::Commit
    );
    assert_eq!(
        committed.prepared_transaction_offset,
        OffsetMessageId::parse(&sent.header.msg_id)
            .unwrap()
            .commit_log_offset
    );
    assert_eq!(committed.message.uniq_key(), Some("TX-order"));
    assert_eq!(
        committed
            .message
            .property(property::TRANSACTION_CHECK_TIMES),
        None,
        "never checked"
    );
    assert_eq!(broker.pending_transactions(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_half_message_never_shows() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let client = TestClient::new(&cluster);
    client.heartbeat(ADDR, producer_heartbeat("p1", "pg")).await;
    let sent = send_half(&client, "cancelled").await;
    client
        .call(ADDR, end(&sent, TransactionResolution::Rollback))
        .await
        .unwrap();
    within(async {
        while cluster.broker(0).pending_transactions() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(cluster.broker(0).messages("T", 2).is_empty());
    assert!(
        !client.received_codes().contains(&CHECK),
        "a resolved transaction is not checked"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unresolved_half_message_is_checked_back_then_committed() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(30))
        .transaction_timeout(Duration::from_secs(6))
        .build()
        .await
        .unwrap();
    let producer = TestClient::new(&cluster);
    producer
        .heartbeat(ADDR, producer_heartbeat("p1", "pg"))
        .await;
    assert_eq!(
        cluster.broker(0).requests_received(RequestCode::HEART_BEAT),
        1
    );
    let sent = send_half(&producer, "unsure").await;
    assert_eq!(cluster.broker(0).transaction_checks_sent(), 0);
    let start = tokio::time::Instant::now();
    let check = producer.wait_for(CHECK).await;
    let elapsed = start.elapsed();
    assert_eq!(cluster.broker(0).transaction_checks_sent(), 1);
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed <= Duration::from_millis(30_010),
        "checked at the first interval, not {elapsed:?}"
    );
    assert!(check.is_oneway());
    let header: CheckTransactionStateRequestHeader = check.decode_header().unwrap();
    assert_eq!(header.tran_state_table_offset, sent.header.queue_offset);
    assert_eq!(header.msg_id.as_deref(), Some("TX-unsure"));
    assert_eq!(
        header.offset_msg_id.as_deref(),
        Some(sent.header.msg_id.as_str())
    );
    let body = decode_records(check.body.clone()).unwrap();
    assert_eq!(body[0].topic(), "T");
    assert_eq!(body[0].queue_id, 2);
    assert_eq!(
        body[0].message.property(property::TRANSACTION_CHECK_TIMES),
        Some("1")
    );

    let mut answer = end(&sent, TransactionResolution::Commit);
    answer.header.tran_state_table_offset = header.tran_state_table_offset;
    answer.header.commit_log_offset = header.commit_log_offset;
    answer.header.from_transaction_check = true;
    producer.call(ADDR, answer).await.unwrap();
    within(async {
        while cluster.broker(0).messages("T", 2).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // As on a Java broker (and rocketmq-broker 1.0): the committed message
    // keeps the check count of the half message it was made from.
    let committed = cluster.broker(0).messages("T", 2).remove(0);
    assert_eq!(
        committed
            .message
            .property(property::TRANSACTION_CHECK_TIMES),
        Some("1")
    );
}

#[tokio::test(start_paused = true)]
async fn checks_stop_after_the_maximum_and_the_half_message_is_dropped() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(10))
        .transaction_check_max(2)
        .build()
        .await
        .unwrap();
    let producer = TestClient::new(&cluster);
    producer
        .heartbeat(ADDR, producer_heartbeat("p1", "pg"))
        .await;
    send_half(&producer, "never").await;
    tokio::time::sleep(Duration::from_secs(45)).await;
    let checks = producer
        .received_codes()
        .iter()
        .filter(|&&c| c == CHECK)
        .count();
    assert_eq!(checks, 2);
    assert_eq!(cluster.broker(0).transaction_checks_sent(), 2);
    assert_eq!(cluster.broker(0).pending_transactions(), 0);
    let dropped = cluster.broker(0).messages("TRANS_CHECK_MAX_TIME_TOPIC", 0);
    assert_eq!(dropped.len(), 1);
    // Java's resolveDiscardMsg stores the half message as it is: where it
    // was going, still prepared, with the check count it last had.
    let dropped = &dropped[0].message;
    assert_eq!(dropped.property(property::REAL_TOPIC), Some("T"));
    assert_eq!(dropped.property(property::REAL_QID), Some("2"));
    assert_eq!(dropped.property(property::TRAN_MSG), Some("true"));
    assert_eq!(
        dropped.property(property::TRANSACTION_CHECK_TIMES),
        Some("2")
    );
    assert!(cluster.broker(0).messages("T", 2).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_late_resolution_of_a_message_with_its_own_immunity_waits_for_the_check() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = TestClient::new(&cluster);
    let broker = cluster.broker(0);
    // An immunity below the broker's transaction timeout counts as the
    // timeout (Java's getImmunityTime).
    let sent = send_half_with(
        &client,
        "late",
        &[(property::CHECK_IMMUNITY_TIME_IN_SECONDS, "1")],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // (END_TRANSACTION is oneway for producers: the call takes any answer,
    // so the broker's state tells what happened.)
    client
        .call(ADDR, end(&sent, TransactionResolution::Rollback))
        .await
        .unwrap();
    assert_eq!(broker.pending_transactions(), 0, "within the timeout");

    let sent = send_half_with(
        &client,
        "later",
        &[(property::CHECK_IMMUNITY_TIME_IN_SECONDS, "1")],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    client
        .call(ADDR, end(&sent, TransactionResolution::Commit))
        .await
        .unwrap();
    assert!(broker.messages("T", 2).is_empty(), "refused");
    assert_eq!(broker.pending_transactions(), 1);
    // The answer to a check is taken.
    let mut checked = end(&sent, TransactionResolution::Commit);
    checked.header.from_transaction_check = true;
    client.call(ADDR, checked).await.unwrap();
    assert_eq!(bodies(&broker.messages("T", 2)), ["later"]);
}
