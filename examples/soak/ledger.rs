//! The soak's books: every acknowledged send, every delivery to a listener
//! and every fault, with the time it happened; and the verdict drawn from
//! them (lost, duplicates and what explains each duplicate).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rocketmq_model::MessageExt;
use tokio::time::Instant;

/// A duplicate delivered within this long after a fault is put down to it.
pub(crate) const FAULT_WINDOW: Duration = Duration::from_secs(30);

/// Where a message was stored: the broker's store host, queue and offset.
pub(crate) type Location = (SocketAddr, i32, i64);

/// One delivery of a message to a listener.
#[derive(Debug, Clone)]
struct Delivery {
    at: Duration,
    consumer: String,
    location: Location,
}

/// Something the soak did to the system under test.
#[derive(Debug, Clone)]
pub(crate) struct FaultEvent {
    /// Time since the start of the run.
    pub(crate) at: Duration,
    /// What happened, e.g. "join c1" or "stop broker-b".
    pub(crate) what: String,
}

#[derive(Debug, Default)]
struct Books {
    /// UNIQ_KEY -> when the send was acknowledged.
    acked: HashMap<String, Duration>,
    send_failures: u64,
    deliveries: HashMap<String, Vec<Delivery>>,
    faults: Vec<FaultEvent>,
}

/// The shared books of one run.
#[derive(Debug)]
pub(crate) struct Ledger {
    start: Instant,
    books: Mutex<Books>,
}

/// Why a message was delivered more than once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Duplicates {
    /// Extra deliveries in all.
    pub(crate) total: u64,
    /// Extra deliveries of a message stored twice (a send retried after
    /// the first attempt was stored but its answer lost).
    pub(crate) stored_twice: u64,
    /// Extra deliveries of the same stored message (its offset was not yet
    /// committed when its queue changed hands or its consumer restarted).
    pub(crate) redelivered: u64,
    /// Redeliveries within [`FAULT_WINDOW`] after a fault, by that fault.
    pub(crate) near_fault: BTreeMap<String, u64>,
    /// Redeliveries with no fault in the window before them.
    pub(crate) unexplained: u64,
    /// Redeliveries by the store host of the message's broker.
    pub(crate) by_broker: BTreeMap<String, u64>,
}

/// The verdict of a run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Verdict {
    /// Sends acknowledged by a broker.
    pub(crate) acked: u64,
    /// Sends that ended in an error (not required to be consumed).
    pub(crate) send_failures: u64,
    /// Distinct acknowledged messages consumed at least once.
    pub(crate) consumed: u64,
    /// Acknowledged messages never consumed: must be 0.
    pub(crate) lost: u64,
    /// Up to ten lost ids, for the report.
    pub(crate) lost_sample: Vec<String>,
    /// Messages consumed whose send reported failure (stored after all).
    pub(crate) consumed_unacked: u64,
    /// Every delivery, duplicates included.
    pub(crate) deliveries: u64,
    /// Extra deliveries and their causes.
    pub(crate) duplicates: Duplicates,
}

impl Ledger {
    /// Empty books; times count from now.
    pub(crate) fn new() -> Self {
        Ledger {
            start: Instant::now(),
            books: Mutex::new(Books::default()),
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time since the start of the run.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// A send of `msg_id` was acknowledged.
    pub(crate) fn acked(&self, msg_id: String) {
        let at = self.elapsed();
        self.books().acked.insert(msg_id, at);
    }

    /// A send failed.
    pub(crate) fn send_failed(&self) {
        self.books().send_failures += 1;
    }

    /// `consumer` was handed `msgs`.
    pub(crate) fn delivered(&self, consumer: &str, msgs: &[MessageExt]) {
        let at = self.elapsed();
        let mut books = self.books();
        for msg in msgs {
            let delivery = Delivery {
                at,
                consumer: consumer.to_owned(),
                location: (msg.store_host, msg.queue_id, msg.queue_offset),
            };
            books
                .deliveries
                .entry(msg.msg_id().into_owned())
                .or_default()
                .push(delivery);
        }
    }

    /// Records a fault (or membership change) happening now.
    pub(crate) fn fault(&self, what: impl Into<String>) {
        let event = FaultEvent {
            at: self.elapsed(),
            what: what.into(),
        };
        // As it happens, so that a run that hangs shows how far it got.
        tracing::info!(target: "soak", at = event.at.as_secs_f64(), "{}", event.what);
        self.books().faults.push(event);
    }

    /// The faults so far, in order.
    pub(crate) fn faults(&self) -> Vec<FaultEvent> {
        self.books().faults.clone()
    }

    /// Acknowledged messages not consumed yet.
    pub(crate) fn missing(&self) -> u64 {
        let books = self.books();
        let missing = books
            .acked
            .keys()
            .filter(|id| !books.deliveries.contains_key(*id))
            .count();
        u64::try_from(missing).unwrap_or(u64::MAX)
    }

    /// Up to `limit` acknowledged messages not consumed yet.
    pub(crate) fn missing_ids(&self, limit: usize) -> Vec<String> {
        let books = self.books();
        books
            .acked
            .keys()
            .filter(|id| !books.deliveries.contains_key(*id))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Total deliveries so far.
    pub(crate) fn delivery_count(&self) -> u64 {
        let books = self.books();
        let n: usize = books.deliveries.values().map(Vec::len).sum();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Deliveries of messages acknowledged before `mark` that happened
    /// after `mark`: redeliveries across a point in the run.
    pub(crate) fn redelivered_after(&self, mark: Duration) -> u64 {
        let books = self.books();
        let n = books
            .deliveries
            .iter()
            .filter(|(id, _)| books.acked.get(*id).is_some_and(|at| *at < mark))
            .flat_map(|(_, deliveries)| deliveries)
            .filter(|d| d.at >= mark)
            .count();
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    /// Where the first few of the redeliveries [`redelivered_after`]
    /// counts were stored ("host queue offset"), so a failed run says which
    /// queues they came from.
    ///
    /// [`redelivered_after`]: Self::redelivered_after
    pub(crate) fn redelivered_after_sample(&self, mark: Duration) -> Vec<String> {
        let books = self.books();
        let mut sample: Vec<String> = books
            .deliveries
            .iter()
            .filter(|(id, _)| books.acked.get(*id).is_some_and(|at| *at < mark))
            .flat_map(|(_, deliveries)| deliveries)
            .filter(|d| d.at >= mark)
            .map(|d| {
                let (host, queue, offset) = d.location;
                format!("{host} queue {queue} offset {offset}")
            })
            .collect();
        sample.sort();
        sample.truncate(10);
        sample
    }

    /// Draws the verdict from the books.
    pub(crate) fn verdict(&self) -> Verdict {
        let books = self.books();
        let mut verdict = Verdict {
            acked: count(books.acked.len()),
            send_failures: books.send_failures,
            ..Verdict::default()
        };
        for id in books.acked.keys() {
            if books.deliveries.contains_key(id) {
                verdict.consumed += 1;
            } else {
                verdict.lost += 1;
                if verdict.lost_sample.len() < 10 {
                    verdict.lost_sample.push(id.clone());
                }
            }
        }
        for (id, deliveries) in &books.deliveries {
            verdict.deliveries += count(deliveries.len());
            if !books.acked.contains_key(id) {
                verdict.consumed_unacked += 1;
            }
            classify(deliveries, &books.faults, &mut verdict.duplicates);
        }
        verdict
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Adds the extra deliveries of one message to `dups`: a delivery at a
/// location seen before is a redelivery (put down to the latest fault
/// within the window before it); a delivery at a new location after the
/// first is a second copy of the message.
fn classify(deliveries: &[Delivery], faults: &[FaultEvent], dups: &mut Duplicates) {
    let mut seen: Vec<&Location> = Vec::new();
    for (i, delivery) in deliveries.iter().enumerate() {
        let known = seen.contains(&&delivery.location);
        if !known {
            seen.push(&delivery.location);
        }
        if i == 0 {
            continue;
        }
        dups.total += 1;
        if !known {
            dups.stored_twice += 1;
            continue;
        }
        dups.redelivered += 1;
        *dups
            .by_broker
            .entry(delivery.location.0.to_string())
            .or_default() += 1;
        let cause = faults
            .iter()
            .rev()
            .find(|f| f.at <= delivery.at && delivery.at - f.at <= FAULT_WINDOW);
        match cause {
            Some(fault) => {
                let label = format!("{} @{:.1}s", fault.what, fault.at.as_secs_f64());
                *dups.near_fault.entry(label).or_default() += 1;
            }
            None => {
                dups.unexplained += 1;
                tracing::warn!(consumer = %delivery.consumer, at = ?delivery.at, "a redelivery far from any fault");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(at: u64, offset: i64) -> Delivery {
        Delivery {
            at: Duration::from_secs(at),
            consumer: "c".into(),
            location: (SocketAddr::from(([127, 0, 0, 1], 1)), 0, offset),
        }
    }

    #[test]
    fn redeliveries_go_to_the_latest_fault_in_the_window() {
        let faults = vec![
            FaultEvent {
                at: Duration::from_secs(10),
                what: "join c1".into(),
            },
            FaultEvent {
                at: Duration::from_secs(20),
                what: "stop broker-b".into(),
            },
        ];
        let mut dups = Duplicates::default();
        classify(
            &[
                delivery(5, 7),
                delivery(22, 7),
                delivery(100, 7),
                delivery(101, 8),
            ],
            &faults,
            &mut dups,
        );
        assert_eq!(dups.total, 3);
        assert_eq!(dups.redelivered, 2);
        assert_eq!(dups.stored_twice, 1);
        assert_eq!(dups.unexplained, 1);
        assert_eq!(dups.near_fault.get("stop broker-b @20.0s"), Some(&1));
    }
}
