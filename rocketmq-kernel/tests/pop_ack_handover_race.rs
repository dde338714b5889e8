//! A race of `CoalescedAcks`'s hand-over, on two threads: one answers the
//! acknowledgement on its way, which hands the broker's lane to the caller
//! waiting behind it, while the other drops that caller's future. Whatever
//! the interleaving, the lane must end idle or held by someone who sends:
//! a new acknowledgement is then sent at once. (A waiter that read its turn
//! before closing its channel could miss a hand-over made in between, and
//! every later acknowledgement to the broker waited for ever.)

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::task::noop_waker;
use rocketmq_kernel::Result;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::pop::{CoalescedAcks, PopAcks};
use rocketmq_model::body::BatchAckMessageRequestBody;
use rocketmq_model::header::AckMessageRequestHeader;
use tokio::sync::Semaphore;

struct Broker {
    gate: Semaphore,
    singles: AtomicUsize,
}

#[async_trait]
impl BrokerApi for Broker {
    async fn ack_message(&self, _addr: &str, header: AckMessageRequestHeader) -> Result<()> {
        self.singles.fetch_add(1, Ordering::SeqCst);
        if header.offset == 100 {
            // The first acknowledgement of each round is held until released.
            self.gate.acquire().await.unwrap().forget();
        }
        Ok(())
    }

    async fn batch_ack_message(&self, _: &str, _: BatchAckMessageRequestBody) -> Result<()> {
        Ok(())
    }
}

type Ack = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

fn ack(coalesced: &CoalescedAcks, offset: i64) -> Ack {
    let coalesced = coalesced.clone();
    Box::pin(async move {
        coalesced
            .ack("T", &consume_fakes::popped_handle("broker-a", offset))
            .await
    })
}

fn poll(fut: &mut Ack) -> Poll<Result<()>> {
    let waker = noop_waker();
    fut.as_mut().poll(&mut Context::from_waker(&waker))
}

fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

#[test]
fn a_waiter_dropped_as_the_lane_is_handed_to_it_from_another_thread_leaves_it_usable() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _entered = rt.enter();
    // The unguarded window was hit within 200 to 56,000 rounds.
    let rounds: u32 = 100_000;
    // Two threads kept for all rounds: x answers 100 (its hand_on gives the
    // lane to 101), y drops 101's future; both start together.
    let start = Arc::new(Barrier::new(3));
    let end = Arc::new(Barrier::new(3));
    let slot_x: Arc<std::sync::Mutex<Option<(Ack, u32)>>> = Arc::default();
    let slot_y: Arc<std::sync::Mutex<Option<(Ack, u32)>>> = Arc::default();
    let x = {
        let (start, end, slot) = (Arc::clone(&start), Arc::clone(&end), Arc::clone(&slot_x));
        std::thread::spawn(move || {
            loop {
                start.wait();
                let Some((mut first, delay)) = slot.lock().unwrap().take() else {
                    return;
                };
                spin(delay);
                let answer = poll(&mut first);
                assert!(matches!(answer, Poll::Ready(Ok(()))));
                end.wait();
            }
        })
    };
    let y = {
        let (start, end, slot) = (Arc::clone(&start), Arc::clone(&end), Arc::clone(&slot_y));
        std::thread::spawn(move || {
            loop {
                start.wait();
                let Some((waiter, delay)) = slot.lock().unwrap().take() else {
                    return;
                };
                spin(delay);
                drop(waiter);
                end.wait();
            }
        })
    };
    for round in 0..rounds {
        let broker = Arc::new(Broker {
            gate: Semaphore::new(0),
            singles: AtomicUsize::new(0),
        });
        let api: Arc<dyn BrokerApi> = broker.clone();
        let coalesced = CoalescedAcks::new(PopAcks::new(api, consume_fakes::routes(), "cg"));

        // 100 on its way (held at the gate), 101 waiting in the lane.
        let mut first = ack(&coalesced, 100);
        for _ in 0..4 {
            assert!(poll(&mut first).is_pending());
        }
        assert_eq!(broker.singles.load(Ordering::SeqCst), 1);
        let mut waiter = ack(&coalesced, 101);
        assert!(poll(&mut waiter).is_pending());
        broker.gate.add_permits(1);

        let shift = round / 2 % 200;
        let (dx, dy) = if round % 2 == 0 {
            (shift, 0)
        } else {
            (0, shift)
        };
        *slot_x.lock().unwrap() = Some((first, dx));
        *slot_y.lock().unwrap() = Some((waiter, dy));
        start.wait();
        end.wait();

        // The lane must be idle now (or held by someone who will send):
        // a new acknowledgement goes at once.
        let before = broker.singles.load(Ordering::SeqCst);
        let mut next = ack(&coalesced, 102);
        let mut answered = false;
        for _ in 0..8 {
            if poll(&mut next).is_ready() {
                answered = true;
                break;
            }
        }
        if !answered {
            *slot_x.lock().unwrap() = None;
            *slot_y.lock().unwrap() = None;
            start.wait();
            let _ = (x.join(), y.join());
            panic!(
                "round {round} (dx {dx}, dy {dy}): the lane is stuck 'sending' with nobody holding it \
                 (singles before {before}, after {})",
                broker.singles.load(Ordering::SeqCst)
            );
        }
    }
    *slot_x.lock().unwrap() = None;
    *slot_y.lock().unwrap() = None;
    start.wait();
    x.join().unwrap();
    y.join().unwrap();
}
