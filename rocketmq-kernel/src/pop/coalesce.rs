//! A push consumer's acknowledgements of popped messages, gathered while one
//! request is on its way. Each message is consumed on its own, and Java's
//! push consumer sends an ACK_MESSAGE for each: one request and one answer
//! a message, half of what consuming in pop mode costs. Here, at most one
//! request a broker is on its way; the acknowledgements that come while it
//! is go together in the next one (a BATCH_ACK_MESSAGE, [`PopAcks::ack_batch`]).
//! No acknowledgement waits for a timer: a sender lets the tasks that are
//! ready in the same turn of the scheduler (listener calls ending together)
//! join it, then sends; an acknowledgement alone goes as an ACK_MESSAGE.
//!
//! There is no task: the first caller to find a broker's lane idle sends,
//! the others wait in the lane; when its answer is in, the sender hands the
//! lane to the first of them, which sends everything waiting by then. A
//! sender dropped before its answer hands the lane on all the same, and the
//! callers it carried acknowledge their own messages.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rocketmq_model::message::ReceiptHandle;
use tokio::sync::oneshot;

use super::acks::{AckTarget, PopAcks};
use crate::error::Result;

/// Acknowledgements gathered per broker; see the module documentation.
#[derive(Clone)]
pub struct CoalescedAcks {
    acks: PopAcks,
    lanes: Arc<Mutex<Lanes>>,
}

impl fmt::Debug for CoalescedAcks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoalescedAcks")
            .field("acks", &self.acks)
            .finish_non_exhaustive()
    }
}

/// The lanes by broker name: a few, looked up by name on every
/// acknowledgement (no key to allocate, unlike a map's entry).
#[derive(Default)]
struct Lanes(Vec<(String, Lane)>);

impl Lanes {
    fn get_mut(&mut self, broker: &str) -> Option<&mut Lane> {
        (self.0.iter_mut())
            .find(|(name, _)| name == broker)
            .map(|(_, lane)| lane)
    }

    fn get_or_add(&mut self, broker: &str) -> &mut Lane {
        let at = match self.0.iter().position(|(name, _)| name == broker) {
            Some(at) => at,
            None => {
                self.0.push((broker.to_owned(), Lane::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[at].1
    }
}

/// One broker's acknowledgements.
#[derive(Default)]
struct Lane {
    /// A request is on its way.
    sending: bool,
    /// What goes in the next one.
    waiting: Vec<Waiting>,
}

struct Waiting {
    topic: String,
    handle: ReceiptHandle,
    turn: oneshot::Sender<Turn>,
}

enum Turn {
    /// The acknowledgement went, with this outcome.
    Done(Result<()>),
    /// The lane is yours: send what waits.
    Send,
}

impl CoalescedAcks {
    /// Acknowledgements through `acks`.
    pub fn new(acks: PopAcks) -> Self {
        CoalescedAcks {
            acks,
            lanes: Arc::default(),
        }
    }

    /// The calls underneath, for what is not gathered (new invisible times,
    /// dead letters).
    pub fn acks(&self) -> &PopAcks {
        &self.acks
    }

    /// Acknowledges the message `handle` names, popped from `topic` (the
    /// subscribed topic as the broker knows it), with others of its broker
    /// if a request to that broker is on its way; answers once the broker
    /// has answered.
    pub async fn ack(&self, topic: &str, handle: &ReceiptHandle) -> Result<()> {
        let broker = handle.broker_name.as_str();
        let waiting = {
            let mut lanes = self.lock();
            let lane = lanes.get_or_add(broker);
            if lane.sending {
                let (turn, waiting) = oneshot::channel();
                lane.waiting.push(Waiting {
                    topic: topic.to_owned(),
                    handle: handle.clone(),
                    turn,
                });
                Some(WaitingTurn {
                    coalesced: self,
                    broker,
                    turn: waiting,
                })
            } else {
                lane.sending = true;
                None
            }
        };
        if let Some(mut waiting) = waiting {
            match (&mut waiting.turn).await {
                Ok(Turn::Done(outcome)) => return outcome,
                Ok(Turn::Send) => {}
                // The sender that took it was dropped before the answer.
                Err(_) => return self.acks.ack(topic, handle).await,
            }
        }
        self.send(broker, (topic, handle)).await
    }

    /// Sends `own` and everything waiting in `broker`'s lane, which this
    /// caller holds, then hands the lane on.
    async fn send(&self, broker: &str, own: AckTarget<'_>) -> Result<()> {
        let _holding = Holding {
            coalesced: self,
            broker,
        };
        // Let the tasks that are ready now (other listener calls ending in
        // the same turn of the scheduler) join this request.
        tokio::task::yield_now().await;
        let taken = (self.lock().get_mut(broker))
            .map(|lane| std::mem::take(&mut lane.waiting))
            .unwrap_or_default();
        let targets: Vec<AckTarget<'_>> = std::iter::once(own)
            .chain(taken.iter().map(|w| (w.topic.as_str(), &w.handle)))
            .collect();
        let mut outcomes = self.acks.ack_batch(&targets).await.into_iter();
        let own_outcome = outcomes.next().unwrap_or(Ok(()));
        for (waiting, outcome) in taken.into_iter().zip(outcomes) {
            // A caller that went away needs no answer.
            let _ = waiting.turn.send(Turn::Done(outcome));
        }
        own_outcome
    }

    /// Gives `broker`'s lane to the first caller waiting in it that is still
    /// there, or leaves it idle.
    fn hand_on(&self, broker: &str) {
        let mut lanes = self.lock();
        let Some(lane) = lanes.get_mut(broker) else {
            return;
        };
        while !lane.waiting.is_empty() {
            let next = lane.waiting.remove(0);
            if next.turn.send(Turn::Send).is_ok() {
                return;
            }
        }
        lane.sending = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A caller's hold on a lane: handed on when it ends, answered or dropped.
struct Holding<'a> {
    coalesced: &'a CoalescedAcks,
    broker: &'a str,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.coalesced.hand_on(self.broker);
    }
}

/// A caller's wait for its turn. Dropped after the lane was handed to it but
/// before it took the lane, it hands the lane on.
struct WaitingTurn<'a> {
    coalesced: &'a CoalescedAcks,
    broker: &'a str,
    turn: oneshot::Receiver<Turn>,
}

impl Drop for WaitingTurn<'_> {
    fn drop(&mut self) {
        // Closed first: a lane handed on from another thread from now on
        // fails to reach this caller and goes to the next; one handed
        // before is read here.
        self.turn.close();
        if let Ok(Turn::Send) = self.turn.try_recv() {
            self.coalesced.hand_on(self.broker);
        }
    }
}
