//! Transactional sends against the testkit: commit, rollback, and an unknown
//! outcome resolved by the broker's check-back.

#![allow(clippy::unwrap_used)]

#[path = "waiting/mod.rs"]
#[allow(dead_code)]
mod waiting;

use std::any::Any;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
use rocketmq_client::{ClientConfig, Producer, TransactionProducer};
use rocketmq_model::message::{TransactionType, property, sysflag};
use rocketmq_model::{Message, MessageExt, RequestCode};
use rocketmq_testkit::TestCluster;
use waiting::wait_until;

fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

/// Answers from the message's body: "commit", "rollback", or anything else
/// (unknown); check-backs answer `on_check` and are recorded.
struct Bank {
    on_check: LocalTransactionState,
    executed: Mutex<Vec<(String, String)>>,
    checked: Mutex<Vec<MessageExt>>,
}

impl Bank {
    fn new(on_check: LocalTransactionState) -> Arc<Self> {
        Arc::new(Bank {
            on_check,
            executed: Mutex::new(Vec::new()),
            checked: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl TransactionListener for Bank {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        let arg = arg
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .unwrap_or_default();
        self.executed.lock().unwrap().push((body.clone(), arg));
        match body.as_str() {
            "commit" => LocalTransactionState::CommitMessage,
            "rollback" => LocalTransactionState::RollbackMessage,
            _ => LocalTransactionState::Unknown,
        }
    }

    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        self.checked.lock().unwrap().push(msg.clone());
        self.on_check
    }
}

async fn tx_producer(
    cluster: &TestCluster,
    instance: &str,
    bank: &Arc<Bank>,
) -> TransactionProducer {
    Producer::builder()
        .client_config(config(cluster, instance))
        .producer_group("tx-group")
        .build_transactional(bank.clone())
        .await
        .unwrap()
}

async fn visible(cluster: &TestCluster) -> Vec<MessageExt> {
    let broker = cluster.broker(0);
    (0..4).flat_map(|q| broker.messages("T", q)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_committed_transaction_becomes_visible() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let bank = Bank::new(LocalTransactionState::RollbackMessage);
    let producer = tx_producer(&cluster, "tx_commit", &bank).await;
    let msg = Message::builder("T")
        .body("commit")
        .delay_level(2)
        .build()
        .unwrap();
    let result = producer.send_in_transaction(msg, &"order-1").await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::CommitMessage);
    assert!(result.send_result.transaction_id.is_some());
    assert_eq!(
        bank.executed.lock().unwrap().clone(),
        [("commit".to_owned(), "order-1".to_owned())]
    );
    tokio::time::timeout(Duration::from_secs(10), async {
        while cluster.broker(0).pending_transactions() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let stored = visible(&cluster).await;
    assert_eq!(stored.len(), 1);
    let committed = &stored[0];
    assert_eq!(
        committed.message.uniq_key(),
        Some(result.send_result.msg_id.as_str())
    );
    assert_eq!(
        committed.message.property(property::PGROUP),
        Some("tx-group")
    );
    assert_eq!(
        committed.message.property(property::DELAY),
        None,
        "no delay in transactions"
    );
    assert_eq!(
        sysflag::transaction_type(committed.sys_flag),
        TransactionType::Commit
    );
    assert!(bank.checked.lock().unwrap().is_empty());
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_transaction_never_shows() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    let bank = Bank::new(LocalTransactionState::CommitMessage);
    let producer = tx_producer(&cluster, "tx_rollback", &bank).await;
    let msg = Message::builder("T").body("rollback").build().unwrap();
    let result = producer.send_in_transaction(msg, &()).await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::RollbackMessage);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(cluster.broker(0).pending_transactions(), 0);
    assert!(visible(&cluster).await.is_empty());
    assert!(
        bank.checked.lock().unwrap().is_empty(),
        "a resolved half is not checked"
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unknown_outcome_is_resolved_by_the_check_back() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(5))
        .transaction_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let bank = Bank::new(LocalTransactionState::CommitMessage);
    let producer = tx_producer(&cluster, "tx_unknown", &bank).await;
    let msg = Message::builder("T").body("later").build().unwrap();
    let result = producer.send_in_transaction(msg, &()).await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::Unknown);
    assert_eq!(cluster.broker(0).pending_transactions(), 1);
    assert!(visible(&cluster).await.is_empty());

    tokio::time::timeout(Duration::from_secs(60), async {
        while visible(&cluster).await.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the check-back committed the message");
    let checked = bank.checked.lock().unwrap().clone();
    assert!(!checked.is_empty());
    assert_eq!(
        checked[0].message.uniq_key(),
        Some(result.send_result.msg_id.as_str())
    );
    assert_eq!(&checked[0].message.body[..], b"later");
    assert_eq!(cluster.broker(0).pending_transactions(), 0);
    let stored = visible(&cluster).await;
    assert_eq!(
        stored[0].message.uniq_key(),
        Some(result.send_result.msg_id.as_str())
    );
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Commits, but first makes the nameserver forget the broker holding the
/// half message, and waits for the client's next route refresh to drop it.
struct LosesTheBroker {
    cluster: Arc<TestCluster>,
}

#[async_trait]
impl TransactionListener for LosesTheBroker {
    async fn execute_local_transaction(
        &self,
        _msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        let holder = self
            .cluster
            .brokers()
            .iter()
            .find(|broker| broker.pending_transactions() > 0)
            .map(|broker| broker.name().to_owned())
            .unwrap();
        assert!(self.cluster.forget_broker(&holder));
        tokio::time::sleep(Duration::from_secs(31)).await;
        LocalTransactionState::CommitMessage
    }

    async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        LocalTransactionState::CommitMessage
    }
}

#[tokio::test(start_paused = true)]
async fn the_local_outcome_is_the_answer_when_end_transaction_cannot_be_sent() {
    let cluster = Arc::new(
        TestCluster::builder()
            .brokers(2)
            .topic("T")
            .build()
            .await
            .unwrap(),
    );
    let listener = Arc::new(LosesTheBroker {
        cluster: Arc::clone(&cluster),
    });
    let producer = Producer::builder()
        .client_config(config(&cluster, "tx_lost_broker"))
        .producer_group("tx-group")
        .build_transactional(listener)
        .await
        .unwrap();
    let msg = Message::builder("T").body("commit").build().unwrap();
    // The local transaction committed; END_TRANSACTION has no address to go
    // to. As Java: the outcome is returned (and logged), not an error that
    // would make the application run its transaction again.
    let result = producer.send_in_transaction(msg, &()).await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::CommitMessage);
    producer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn producers_need_a_group_of_their_own() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let plain = Producer::builder()
        .client_config(config(&cluster, "default_group"))
        .build()
        .await;
    let transactional = Producer::builder()
        .client_config(config(&cluster, "tx_default_group"))
        .build_transactional(Bank::new(LocalTransactionState::CommitMessage))
        .await;
    for refused in [plain.err(), transactional.err()] {
        match refused {
            Some(rocketmq_client::ClientError::Config(reason)) => {
                assert!(reason.contains("DEFAULT_PRODUCER"), "{reason}");
            }
            other => panic!("the default group was not refused: {other:?}"),
        }
    }
    cluster.shutdown().await;
}

/// Panics in the local transaction when the body says "panic", and in every
/// check; anything else is left unknown.
struct Panicking;

#[async_trait]
impl TransactionListener for Panicking {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        assert_ne!(&msg.body[..], b"panic", "the local transaction failed");
        LocalTransactionState::Unknown
    }

    async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
        panic!("the check failed");
    }
}

/// Java's `sendMessageInTransaction` catches the local transaction's
/// exception: the outcome is UNKNOW, END_TRANSACTION says so (with the
/// exception as its remark) and the caller gets its result, not the
/// exception; the broker checks back.
#[tokio::test(start_paused = true)]
async fn a_panicking_local_transaction_is_an_unknown_outcome() {
    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let producer = Producer::builder()
        .client_config(config(&cluster, "tx_execute_panics"))
        .producer_group("tx-group")
        .build_transactional(Panicking)
        .await
        .unwrap();
    let msg = Message::builder("T").body("panic").build().unwrap();
    let result = producer.send_in_transaction(msg, &()).await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::Unknown);
    let broker = cluster.broker(0);
    wait_until("END_TRANSACTION sent", Duration::from_secs(10), || {
        broker.requests_received(RequestCode::END_TRANSACTION) == 1
    })
    .await;
    assert_eq!(broker.pending_transactions(), 1, "left for the check");
    producer.shutdown().await;
    cluster.shutdown().await;
}

/// Java's check executor catches the listener's exception and answers
/// UNKNOW (with the exception as the remark), so that every check is
/// answered.
#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_answered_unknown() {
    let cluster = TestCluster::builder()
        .topic("T")
        .transaction_check_interval(Duration::from_secs(5))
        .transaction_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let producer = Producer::builder()
        .client_config(config(&cluster, "tx_check_panics"))
        .producer_group("tx-group")
        .build_transactional(Panicking)
        .await
        .unwrap();
    let msg = Message::builder("T").body("later").build().unwrap();
    let result = producer.send_in_transaction(msg, &()).await.unwrap();
    assert_eq!(result.local_state, LocalTransactionState::Unknown);
    let broker = cluster.broker(0);
    wait_until("a check sent", Duration::from_secs(30), || {
        broker.transaction_checks_sent() >= 1
    })
    .await;
    wait_until("the check answered", Duration::from_secs(30), || {
        broker.requests_received(RequestCode::END_TRANSACTION) >= 2
    })
    .await;
    assert_eq!(broker.pending_transactions(), 1, "still unknown");
    producer.shutdown().await;
    cluster.shutdown().await;
}
