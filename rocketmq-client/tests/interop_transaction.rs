//! Interop against a real broker: transactional messages committed, rolled
//! back, and resolved by the broker's check-back (scripts/real-cluster.sh
//! sets `transactionCheckInterval` to 1 s and `transactionTimeout` to 5 s,
//! so a check comes within seconds instead of Java's 30 s + 6 s).
//!
//! Skipped unless `ROCKETMQ_NAMESRV_ADDR` is set (`scripts/real-cluster.sh start`).

#![allow(clippy::unwrap_used)]

mod interop_support;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use interop_support::{
    Seen, config, create_topic, msg, namesrv, producer, recording, secs, unique, wait_assigned,
    wait_until,
};
use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
use rocketmq_client::{Producer, SendStatus};
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt};

/// Decides by body prefix: `commit-`, `rollback-`, `unknown-` (then commit
/// when checked); records what was checked.
#[derive(Default)]
struct ByPrefix {
    checked: Mutex<Vec<(String, Option<String>)>>,
}

fn body(msg: &Message) -> String {
    String::from_utf8_lossy(msg.body()).into_owned()
}

#[async_trait]
impl TransactionListener for ByPrefix {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        let body = body(msg);
        if body.starts_with("commit-") {
            LocalTransactionState::CommitMessage
        } else if body.starts_with("rollback-") {
            LocalTransactionState::RollbackMessage
        } else {
            LocalTransactionState::Unknown
        }
    }

    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let body = body(&msg.message);
        let group = msg.property(property::PGROUP).map(str::to_owned);
        self.checked.lock().unwrap().push((body.clone(), group));
        // Consistent with the first answer (a broker may check a resolved
        // half message again: checks are at least once); unknown commits.
        if body.starts_with("rollback-") {
            LocalTransactionState::RollbackMessage
        } else {
            LocalTransactionState::CommitMessage
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_check_back() {
    let Some(ns) = namesrv("commit_rollback_and_check_back") else {
        return;
    };
    let plain = producer(&ns).await;
    let topic = unique("it_tx");
    create_topic(&plain, &topic, 1).await;
    let listener = Arc::new(ByPrefix::default());
    let group = unique("txpg");
    let producer = Producer::builder()
        .client_config(config(&ns))
        .producer_group(group.as_str())
        .send_msg_timeout(secs(10))
        .build_transactional(Arc::clone(&listener))
        .await
        .unwrap();
    let seen = Seen::default();
    let consumer = recording(config(&ns), &unique("cg"), &topic, &seen)
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 1).await;

    for (i, prefix) in ["rollback", "commit", "unknown", "rollback", "commit"]
        .iter()
        .enumerate()
    {
        let sent = producer
            .send_in_transaction(msg(&topic, &format!("{prefix}-{i}"), "tx"), &())
            .await
            .unwrap();
        assert_eq!(sent.send_result.status, SendStatus::SendOk);
        assert!(sent.send_result.transaction_id.is_some(), "{sent:?}");
    }
    wait_until("the two commits", secs(20), || seen.distinct() >= 2).await;
    // The unknown one waits for the broker's check-back, then commits.
    wait_until("the checked-back commit", secs(60), || seen.distinct() >= 3).await;
    // A plain message after everything: once it is here, a rolled-back one
    // that leaked would have been delivered before it (one queue).
    plain.send(msg(&topic, "marker", "x")).await.unwrap();
    wait_until("the marker", secs(20), || seen.distinct() >= 4).await;
    let bodies: BTreeSet<String> = seen.bodies().into_iter().collect();
    let expected: BTreeSet<String> = ["commit-1", "unknown-2", "commit-4", "marker"]
        .map(str::to_owned)
        .into();
    assert_eq!(bodies, expected, "no rolled-back message is delivered");
    let committed = seen.all();
    for m in committed.iter().filter(|m| m.tags() == Some("tx")) {
        assert_eq!(m.topic(), topic, "the real topic, not the half topic");
        assert_eq!(m.property(property::PGROUP), Some(group.as_str()));
        // Java's EndTransactionProcessor clears TRAN_MSG on the committed
        // message, and so does rocketmq-broker 1.0.
        assert_eq!(m.property(property::TRAN_MSG), None);
    }
    let resolved_by_check = committed
        .iter()
        .find(|m| m.body().as_ref() == b"unknown-2")
        .unwrap();
    assert!(
        resolved_by_check
            .property(property::TRANSACTION_CHECK_TIMES)
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 1)),
        "the committed message keeps its check count: {:?}",
        resolved_by_check.message.properties
    );
    let checked = listener.checked.lock().unwrap().clone();
    assert!(
        checked.iter().any(|(b, _)| b == "unknown-2"),
        "the broker checked the unknown transaction back: {checked:?}"
    );
    assert!(
        checked
            .iter()
            .all(|(_, g)| g.as_deref() == Some(group.as_str())),
        "a checked message names its producer group: {checked:?}"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    plain.shutdown().await;
}
