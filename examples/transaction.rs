//! Transactional messages: a message is first stored as a half message,
//! invisible to consumers; the producer then runs its local transaction and
//! commits or rolls the message back. When the outcome is not known yet,
//! the broker checks back later and the listener answers then.
//!
//! Six messages: two commit, two roll back, two answer "unknown" and are
//! resolved by the broker's check-back (one committed, one rolled back). A
//! consumer shows that only the three committed messages arrive.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example transaction
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example transaction
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP whose broker checks back after a second (a real broker
//! checks on its own timers, `transactionTimeOut` and
//! `transactionCheckInterval`: allow up to a minute). It exits non-zero if a
//! rolled-back message arrives or a committed one does not.

use std::any::Any;
use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{
    BoxError, Cluster, Tally, body_text, run_example, unique_name, wait_until,
};
use rocketmq_model::{Message, MessageExt};
use rocketmq_testkit::TestCluster;

const COMMIT: LocalTransactionState = LocalTransactionState::CommitMessage;
const ROLLBACK: LocalTransactionState = LocalTransactionState::RollbackMessage;
const UNKNOWN: LocalTransactionState = LocalTransactionState::Unknown;

/// A payment and what its local transaction answers: when it runs, and when
/// the broker checks back.
#[derive(Clone, Copy)]
struct Plan {
    body: &'static str,
    runs: LocalTransactionState,
    on_check: LocalTransactionState,
}

const fn plan(
    body: &'static str,
    runs: LocalTransactionState,
    on_check: LocalTransactionState,
) -> Plan {
    Plan {
        body,
        runs,
        on_check,
    }
}

const PLANS: [Plan; 6] = [
    plan("pay order 1", COMMIT, COMMIT),
    plan("pay order 2", ROLLBACK, ROLLBACK),
    plan("pay order 3", UNKNOWN, COMMIT),
    plan("pay order 4", UNKNOWN, ROLLBACK),
    plan("pay order 5", COMMIT, COMMIT),
    plan("pay order 6", ROLLBACK, ROLLBACK),
];

impl Plan {
    fn of(body: &str) -> Option<Plan> {
        PLANS.into_iter().find(|p| p.body == body)
    }

    /// Whether the message ends up visible to consumers.
    fn commits(&self) -> bool {
        self.runs == COMMIT || (self.runs == UNKNOWN && self.on_check == COMMIT)
    }
}

/// The application's side of the transactions: it looks up each message's
/// plan by body, and remembers which messages the broker checked back.
#[derive(Default)]
struct Payments {
    checked: Mutex<BTreeSet<String>>,
}

impl Payments {
    fn was_checked(&self, body: &str) -> bool {
        let checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        checked.contains(body)
    }
}

#[async_trait]
impl TransactionListener for Payments {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        _arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        let body = String::from_utf8_lossy(&msg.body);
        let state = Plan::of(&body).map_or(ROLLBACK, |p| p.runs);
        println!("local transaction of {body:?}: {state:?}");
        state
    }

    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let body = body_text(msg).into_owned();
        let state = Plan::of(&body).map_or(ROLLBACK, |p| p.on_check);
        println!("broker checked back {body:?}: {state:?}");
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        checked.insert(body);
        state
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    run_example("transaction", run()).await
}

async fn run() -> Result<(), BoxError> {
    // On the embedded cluster: check half messages a second old, every second.
    let testkit = TestCluster::builder()
        .transaction_timeout(Duration::from_secs(1))
        .transaction_check_interval(Duration::from_secs(1));
    let cluster = Cluster::connect_or_start(testkit).await?;
    let topic = unique_name("TransactionTopic");

    let payments = Arc::new(Payments::default());
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("transaction-producer")
        .build_transactional(Arc::clone(&payments))
        .await?;
    for Plan { body, .. } in PLANS {
        let msg = Message::builder(&topic)
            .body(body)
            .tags("payment")
            .build()?;
        let sent = producer.send_in_transaction(msg, &()).await?;
        println!(
            "sent {body:?} as a half message to queue {}: {:?}",
            sent.send_result.message_queue.queue_id, sent.local_state
        );
    }

    let received = Tally::new();
    let tally = received.clone();
    let consumer = PushConsumer::builder("transaction-consumer", cluster.client_config())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let tally = tally.clone();
            async move {
                for msg in &msgs {
                    println!("consumer received {:?}", body_text(msg));
                    tally.record(msg);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;

    let committed: Vec<&str> = PLANS
        .iter()
        .filter(|p| p.commits())
        .map(|p| p.body)
        .collect();
    let unknown: Vec<&str> = PLANS
        .iter()
        .filter(|p| p.runs == UNKNOWN)
        .map(|p| p.body)
        .collect();
    let resolved = wait_until(cluster.patience(), || {
        received.contains_all(&committed) && unknown.iter().all(|b| payments.was_checked(b))
    })
    .await;
    // A moment more, in case a rolled-back message shows up.
    tokio::time::sleep(Duration::from_secs(1)).await;

    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
    println!(
        "committed {committed:?}; the consumer received {:?}",
        received.bodies()
    );
    if !resolved {
        return Err("not every transaction was resolved and delivered in time".into());
    }
    if received.distinct() != committed.len() {
        return Err("a rolled-back message was delivered".into());
    }
    Ok(())
}
