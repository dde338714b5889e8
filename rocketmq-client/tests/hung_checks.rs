//! Transaction checks that never finish (a database that hangs) must not
//! stop a client instance from answering its brokers' other requests. Java's
//! ClientRemotingProcessor hands a check to the producer's check executor
//! and returns; this client's handler used to wait for a free work slot, so
//! hung checks filled the connection's request slots and the broker's
//! running-info queries were refused while its offset resets were lost.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use consumer_support::{Seen, config, msg, producer, recording, wait_until};
use rocketmq_client::Producer;
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
use rocketmq_model::{Message, MessageExt};
use rocketmq_testkit::TestCluster;

/// Leaves every transaction unknown; its checks never return. Counts the
/// checks that started.
struct HungChecks(Arc<AtomicUsize>);

#[async_trait]
impl TransactionListener for HungChecks {
    async fn execute_local_transaction(
        &self,
        _msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }

    async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        self.0.fetch_add(1, Ordering::SeqCst);
        futures::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn hung_checks_leave_the_consumer_on_the_same_instance_answering() {
    const CHECK_INTERVAL: Duration = Duration::from_secs(5);
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(CHECK_INTERVAL)
        .transaction_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let instance = "shared";
    let seen = Seen::default();
    let consumer = recording(&cluster, instance, "cg", "T", &seen)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let transactions = Producer::builder()
        .client_config(config(&cluster, instance))
        .producer_group("tpg")
        .build_transactional(HungChecks(Arc::clone(&started)))
        .await
        .unwrap();
    let plain = producer(&cluster).await;
    for i in 0..4 {
        plain.send(msg("T", &format!("m{i}"), "x")).await.unwrap();
    }
    wait_until("4 consumed", Duration::from_secs(60), || seen.len() == 4).await;

    // 140 unresolved halves: each check round asks about every one of them,
    // more than the connection's 64 request slots.
    for i in 0..140 {
        let half = Message::builder("T").body(format!("h{i}")).build().unwrap();
        transactions.send_in_transaction(half, &()).await.unwrap();
    }
    wait_until("checks hang", Duration::from_secs(60), || {
        started.load(Ordering::SeqCst) >= 64
    })
    .await;
    // Two more check rounds of the 140 pile on.
    let broker = cluster.broker(0);
    let checks = broker.transaction_checks_sent();
    wait_until("two more check rounds", Duration::from_secs(60), || {
        broker.transaction_checks_sent() >= checks + 2 * 140
    })
    .await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        64,
        "64 checks run at once; the rest wait in their lane"
    );

    let info = broker
        .consumer_running_info("cg", consumer.client_id(), false)
        .await;
    assert!(info.is_ok(), "running info answered: {info:?}");
    broker.reset_offset("cg", "T", 0, true).await.unwrap();
    wait_until(
        "the reset re-delivers the 4 messages",
        Duration::from_secs(60),
        || seen.len() == 8,
    )
    .await;

    // Shutdown does not wait on the hung checks.
    transactions.shutdown().await;
    consumer.shutdown().await;
    plain.shutdown().await;
    cluster.shutdown().await;
}
