//! Acknowledgements of popped messages in batches, against a fake broker in
//! paused tokio time: `PopAcks::ack_batch` sends one BATCH_ACK_MESSAGE a
//! broker and falls back to ACK_MESSAGEs when a batch fails (remembering a
//! broker that refuses batches for a while); `CoalescedAcks` gathers the
//! acknowledgements that come while one is on its way, and hands its broker
//! on when a sender goes away.

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use consume_fakes::{popped_handle as handle, routes_for, until};
use futures::poll;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::pop::{AckTarget, CoalescedAcks, PopAcks};
use rocketmq_kernel::{KernelError, Result, Routes};
use rocketmq_model::ResponseCode;
use rocketmq_model::body::BatchAckMessageRequestBody;
use rocketmq_model::header::AckMessageRequestHeader;
use rocketmq_model::message::ReceiptHandle;
use rocketmq_remoting::RemotingError;
use tokio::sync::Semaphore;

const MASTER_A: &str = "10.0.0.1:10911";
const MASTER_B: &str = "10.0.0.2:10911";

/// How a batch is answered.
#[derive(Clone, Copy, PartialEq)]
enum Batches {
    Taken,
    /// Answered with an error (a broker that cannot read them).
    Refused,
    /// Answered SYSTEM_BUSY (a Java broker's ack pool is full).
    Busy,
    /// No answer (the call timed out).
    Lost,
}

/// A broker that records acknowledgements; single ones and batches can be
/// held at a gate.
struct Broker {
    batches: Mutex<Batches>,
    /// Offsets whose single acknowledgement fails.
    failing: Mutex<Vec<i64>>,
    singles: Mutex<Vec<(String, AckMessageRequestHeader)>>,
    bodies: Mutex<Vec<(String, BatchAckMessageRequestBody)>>,
    gated: AtomicBool,
    /// Single acknowledgements and batches asked for, answered or not.
    single_calls: AtomicUsize,
    batch_calls: AtomicUsize,
    single_gate: Semaphore,
    batch_gate: Semaphore,
}

impl Broker {
    fn new(batches: Batches) -> Arc<Self> {
        Arc::new(Broker {
            batches: Mutex::new(batches),
            failing: Mutex::default(),
            singles: Mutex::default(),
            bodies: Mutex::default(),
            gated: AtomicBool::new(false),
            single_calls: AtomicUsize::new(0),
            batch_calls: AtomicUsize::new(0),
            single_gate: Semaphore::new(0),
            batch_gate: Semaphore::new(0),
        })
    }

    fn single_offsets(&self) -> Vec<i64> {
        let mut offsets: Vec<i64> = (self.singles.lock().unwrap().iter())
            .map(|(_, header)| header.offset)
            .collect();
        offsets.sort_unstable();
        offsets
    }

    /// Per batch: its address, and per entry the acknowledged offsets.
    fn batches(&self) -> Vec<(String, Vec<Vec<i64>>)> {
        (self.bodies.lock().unwrap().iter())
            .map(|(addr, body)| {
                let entries = (body.acks.iter())
                    .map(|ack| {
                        ack.bits
                            .iter()
                            .map(|bit| ack.start_offset + i64::from(bit))
                            .collect()
                    })
                    .collect();
                (addr.clone(), entries)
            })
            .collect()
    }
}

async fn pass(gate: &Semaphore, gated: bool) {
    if gated {
        gate.acquire().await.unwrap().forget();
    }
}

#[async_trait]
impl BrokerApi for Broker {
    async fn ack_message(&self, addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        self.single_calls.fetch_add(1, Ordering::SeqCst);
        pass(&self.single_gate, self.gated.load(Ordering::SeqCst)).await;
        if self.failing.lock().unwrap().contains(&header.offset) {
            return Err(KernelError::Remoting(RemotingError::Timeout {
                addr: addr.to_owned(),
                after: Duration::from_secs(3),
            }));
        }
        self.singles.lock().unwrap().push((addr.to_owned(), header));
        Ok(())
    }

    async fn batch_ack_message(&self, addr: &str, body: BatchAckMessageRequestBody) -> Result<()> {
        self.batch_calls.fetch_add(1, Ordering::SeqCst);
        pass(&self.batch_gate, self.gated.load(Ordering::SeqCst)).await;
        let answer = *self.batches.lock().unwrap();
        match answer {
            Batches::Taken => {
                self.bodies.lock().unwrap().push((addr.to_owned(), body));
                Ok(())
            }
            Batches::Refused => Err(KernelError::Remoting(RemotingError::Response {
                addr: addr.to_owned(),
                code: ResponseCode::SYSTEM_ERROR,
                remark: "invalid type: string, expected a sequence".to_owned(),
            })),
            Batches::Busy => Err(KernelError::Remoting(RemotingError::Response {
                addr: addr.to_owned(),
                code: ResponseCode::SYSTEM_BUSY,
                remark: "too many requests and system thread pool busy".to_owned(),
            })),
            Batches::Lost => Err(KernelError::Remoting(RemotingError::Timeout {
                addr: addr.to_owned(),
                after: Duration::from_secs(3),
            })),
        }
    }
}

/// Topic "T" on broker-a and broker-b.
fn routes() -> Routes {
    routes_for("T", &[("broker-a", MASTER_A), ("broker-b", MASTER_B)])
}

fn acks(broker: &Arc<Broker>) -> PopAcks {
    PopAcks::new(Arc::clone(broker) as Arc<dyn BrokerApi>, routes(), "cg")
}

fn targets(handles: &[ReceiptHandle]) -> Vec<AckTarget<'_>> {
    handles.iter().map(|handle| ("T", handle)).collect()
}

#[tokio::test(start_paused = true)]
async fn one_batch_goes_to_each_broker_and_a_message_outside_its_pop_goes_alone() {
    let broker = Broker::new(Batches::Taken);
    let handles = [
        handle("broker-a", 100),
        handle("broker-b", 101),
        handle("broker-a", 103),
        handle("broker-a", 99), // before its pop's start: no bit
        handle("broker-b", 102),
        handle("broker-a", 100 + 70_000), // too far from it
    ];
    let outcomes = acks(&broker).ack_batch(&targets(&handles)).await;

    assert_eq!(outcomes.len(), handles.len());
    assert!(outcomes.iter().all(Result::is_ok));
    let mut batches = broker.batches();
    batches.sort();
    assert_eq!(
        batches,
        [
            (MASTER_A.to_owned(), vec![vec![100, 103]]),
            (MASTER_B.to_owned(), vec![vec![101, 102]]),
        ]
    );
    assert_eq!(broker.single_offsets(), [99, 100 + 70_000]);
    let body = &broker.bodies.lock().unwrap()[0].1;
    let ack = &body.acks[0];
    assert_eq!(ack.consumer_group, "cg");
    assert_eq!((ack.topic.as_str(), ack.retry.as_str()), ("T", "0"));
    assert_eq!((ack.queue_id, ack.revive_queue_id), (1, 3));
    assert_eq!(
        (ack.pop_time, ack.invisible_time),
        (1_700_000_000_000, 60_000)
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_message_at_a_broker_is_acknowledged_alone() {
    let broker = Broker::new(Batches::Taken);
    let handles = [handle("broker-a", 100), handle("broker-b", 100)];
    let outcomes = acks(&broker).ack_batch(&targets(&handles)).await;
    assert!(outcomes.iter().all(Result::is_ok));
    assert!(broker.batches().is_empty());
    assert_eq!(broker.single_offsets(), [100, 100]);
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_refuses_two_batches_in_a_row_gets_single_acks_for_a_while() {
    let broker = Broker::new(Batches::Refused);
    let acks = acks(&broker);
    broker.failing.lock().unwrap().push(101);
    let handles = [handle("broker-a", 100), handle("broker-a", 101)];
    let outcomes = acks.ack_batch(&targets(&handles)).await;
    assert!(outcomes[0].is_ok(), "taken one by one");
    assert!(outcomes[1].is_err(), "its own outcome: {:?}", outcomes[1]);
    assert_eq!(broker.single_offsets(), [100]);
    broker.failing.lock().unwrap().clear();

    // A refusal whose single acknowledgements failed too says nothing; the
    // first refusal that the broker then takes one by one may be chance.
    for first in [102, 104] {
        let handles = [handle("broker-a", first), handle("broker-a", first + 1)];
        let outcomes = acks.ack_batch(&targets(&handles)).await;
        assert!(outcomes.iter().all(Result::is_ok), "taken one by one");
    }
    assert_eq!(broker.batch_calls.load(Ordering::SeqCst), 3);

    // Two in a row: the next ones go one by one without a batch first,
    // even though the broker would take a batch now.
    *broker.batches.lock().unwrap() = Batches::Taken;
    let handles = [handle("broker-a", 106), handle("broker-a", 107)];
    acks.ack_batch(&targets(&handles)).await;
    assert_eq!(broker.batch_calls.load(Ordering::SeqCst), 3);
    assert_eq!(broker.single_offsets(), [100, 102, 103, 104, 105, 106, 107]);

    // Ten minutes later (the broker may have been upgraded), a batch again.
    tokio::time::advance(Duration::from_secs(601)).await;
    let handles = [handle("broker-a", 108), handle("broker-a", 109)];
    acks.ack_batch(&targets(&handles)).await;
    assert_eq!(
        broker.batches(),
        [(MASTER_A.to_owned(), vec![vec![108, 109]])]
    );
}

#[tokio::test(start_paused = true)]
async fn a_busy_broker_keeps_getting_batches() {
    let broker = Broker::new(Batches::Busy);
    let acks = acks(&broker);
    for first in [100, 102, 104] {
        let handles = [handle("broker-a", first), handle("broker-a", first + 1)];
        let outcomes = acks.ack_batch(&targets(&handles)).await;
        assert!(outcomes.iter().all(Result::is_ok), "taken one by one");
    }
    assert_eq!(broker.batch_calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_batch_without_an_answer_fails_for_each_message_and_is_not_sent_again() {
    let broker = Broker::new(Batches::Lost);
    let acks = acks(&broker);
    let handles = [
        handle("broker-a", 100),
        handle("broker-a", 101),
        handle("broker-a", 99), // no bit: alone, and taken
    ];
    let outcomes = acks.ack_batch(&targets(&handles)).await;
    for outcome in &outcomes[..2] {
        match outcome {
            Err(KernelError::Shared(err)) => assert!(
                matches!(**err, KernelError::Remoting(RemotingError::Timeout { .. })),
                "{err}"
            ),
            other => panic!("the batch's failure: {other:?}"),
        }
    }
    assert!(outcomes[2].is_ok());
    assert_eq!(
        broker.single_offsets(),
        [99],
        "single ones would most likely time out too"
    );

    *broker.batches.lock().unwrap() = Batches::Taken;
    let handles = [handle("broker-a", 103), handle("broker-a", 104)];
    acks.ack_batch(&targets(&handles)).await;
    assert_eq!(
        broker.batches(),
        [(MASTER_A.to_owned(), vec![vec![103, 104]])],
        "a batch without an answer says nothing of the broker"
    );
}

/// The outcome of the acknowledgement on task `ack`, which must come within a
/// minute (of paused time: at once, unless something waits for ever).
async fn answered(ack: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    tokio::time::timeout(Duration::from_secs(60), ack)
        .await
        .expect("the acknowledgement is answered")
        .unwrap()
}

/// Acknowledges `offset` of broker-a through `coalesced` on a task of its own.
fn spawn_ack(coalesced: &CoalescedAcks, offset: i64) -> tokio::task::JoinHandle<Result<()>> {
    let coalesced = coalesced.clone();
    tokio::spawn(async move { coalesced.ack("T", &handle("broker-a", offset)).await })
}

#[tokio::test(start_paused = true)]
async fn acknowledgements_that_come_while_one_is_on_its_way_go_together() {
    let broker = Broker::new(Batches::Taken);
    broker.gated.store(true, Ordering::SeqCst);
    let coalesced = CoalescedAcks::new(acks(&broker));

    let first = spawn_ack(&coalesced, 100);
    until(|| broker.single_calls.load(Ordering::SeqCst) == 1).await;
    let rest: Vec<_> = (101..=103)
        .map(|offset| spawn_ack(&coalesced, offset))
        .collect();
    tokio::task::yield_now().await;
    broker.single_gate.add_permits(1);
    broker.batch_gate.add_permits(1);
    answered(first).await.unwrap();
    for ack in rest {
        answered(ack).await.unwrap();
    }
    assert_eq!(broker.single_offsets(), [100], "alone, sent at once");
    assert_eq!(
        broker.batches(),
        [(MASTER_A.to_owned(), vec![vec![101, 102, 103]])]
    );

    // Idle again: the next one goes at once, alone.
    broker.gated.store(false, Ordering::SeqCst);
    answered(spawn_ack(&coalesced, 104)).await.unwrap();
    assert_eq!(broker.single_offsets(), [100, 104]);
}

#[tokio::test(start_paused = true)]
async fn acknowledgements_made_in_the_same_turn_go_together_from_the_first() {
    let broker = Broker::new(Batches::Taken);
    let coalesced = CoalescedAcks::new(acks(&broker));
    // Listener calls ending together: none of the three has run yet when
    // the last is made.
    let acks: Vec<_> = (100..=102)
        .map(|offset| spawn_ack(&coalesced, offset))
        .collect();
    for ack in acks {
        answered(ack).await.unwrap();
    }
    assert!(broker.single_offsets().is_empty());
    assert_eq!(
        broker.batches(),
        [(MASTER_A.to_owned(), vec![vec![100, 101, 102]])]
    );
}

#[tokio::test(start_paused = true)]
async fn a_sender_that_goes_away_hands_its_broker_on_and_what_it_carried_goes_alone() {
    let broker = Broker::new(Batches::Taken);
    broker.gated.store(true, Ordering::SeqCst);
    let coalesced = CoalescedAcks::new(acks(&broker));

    // 100 is on its way; 101 and 102 wait for it.
    let first = spawn_ack(&coalesced, 100);
    until(|| broker.single_calls.load(Ordering::SeqCst) == 1).await;
    let carrier = spawn_ack(&coalesced, 101);
    tokio::task::yield_now().await;
    let carried = spawn_ack(&coalesced, 102);
    tokio::task::yield_now().await;
    // 100 is answered: 101 sends itself and 102 as a batch, held at the gate.
    broker.single_gate.add_permits(1);
    answered(first).await.unwrap();
    until(|| broker.batch_calls.load(Ordering::SeqCst) == 1).await;
    // 103 waits behind that batch; then its sender goes away.
    let behind = spawn_ack(&coalesced, 103);
    tokio::task::yield_now().await;
    carrier.abort();
    assert!(carrier.await.unwrap_err().is_cancelled());

    // 102 acknowledges itself; 103 has the broker and sends alone.
    broker.gated.store(false, Ordering::SeqCst);
    broker.single_gate.add_permits(2);
    answered(carried).await.unwrap();
    answered(behind).await.unwrap();
    assert_eq!(broker.single_offsets(), [100, 102, 103]);
    assert!(broker.batches().is_empty(), "the batch never went");
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_goes_away_is_skipped() {
    let broker = Broker::new(Batches::Taken);
    broker.gated.store(true, Ordering::SeqCst);
    let coalesced = CoalescedAcks::new(acks(&broker));

    let first = spawn_ack(&coalesced, 100);
    until(|| broker.single_calls.load(Ordering::SeqCst) == 1).await;
    let gone = spawn_ack(&coalesced, 101);
    tokio::task::yield_now().await;
    let next = spawn_ack(&coalesced, 102);
    tokio::task::yield_now().await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());

    broker.gated.store(false, Ordering::SeqCst);
    broker.single_gate.add_permits(1);
    answered(first).await.unwrap();
    answered(next).await.unwrap();
    assert_eq!(broker.single_offsets(), [100, 102]);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_as_the_broker_is_handed_to_it_hands_it_on() {
    let broker = Broker::new(Batches::Taken);
    broker.gated.store(true, Ordering::SeqCst);
    let coalesced = CoalescedAcks::new(acks(&broker));
    let (h100, h101, h102) = (
        handle("broker-a", 100),
        handle("broker-a", 101),
        handle("broker-a", 102),
    );
    let mut first = pin!(coalesced.ack("T", &h100));
    for _ in 0..10 {
        if broker.single_calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        assert!(poll!(first.as_mut()).is_pending(), "held at the gate");
    }
    assert_eq!(broker.single_calls.load(Ordering::SeqCst), 1, "on its way");
    let mut handed = Box::pin(coalesced.ack("T", &h101));
    assert!(poll!(handed.as_mut()).is_pending(), "waiting");
    let mut last = pin!(coalesced.ack("T", &h102));
    assert!(poll!(last.as_mut()).is_pending(), "waiting");

    broker.gated.store(false, Ordering::SeqCst);
    broker.single_gate.add_permits(1);
    assert!(matches!(poll!(first.as_mut()), Poll::Ready(Ok(()))));
    // The broker is 101's now, but 101 goes away before it sends.
    drop(handed);
    let mut answer = Poll::Pending;
    for _ in 0..10 {
        answer = poll!(last.as_mut());
        if answer.is_ready() {
            break;
        }
    }
    assert!(matches!(answer, Poll::Ready(Ok(()))), "{answer:?}");
    assert_eq!(broker.single_offsets(), [100, 102]);
}
