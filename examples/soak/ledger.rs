//! The soak's books: every acknowledged send, every delivery to a listener
//! (or receive of a pop consumer) and every fault, with the time it
//! happened; and the verdict drawn from them (lost, duplicates and what
//! explains each duplicate).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rocketmq_model::MessageExt;
use tokio::time::Instant;

/// A duplicate delivered within this long after a fault is put down to it.
pub(crate) const FAULT_WINDOW: Duration = Duration::from_secs(30);
/// Releases of the same text within this long of the first are one event
/// (a broker stop fails the acknowledgements of many messages, one by one).
const RELEASE_MERGE: Duration = Duration::from_secs(1);

/// Where a message was stored: the broker's store host, queue and offset.
pub(crate) type Location = (SocketAddr, i32, i64);

/// One delivery of a message to a listener.
#[derive(Debug, Clone)]
struct Delivery {
    at: Duration,
    consumer: String,
    location: Location,
    /// Delivered from the broker's retry topic (reconsume times above 0: a
    /// pop the group did not acknowledge, revived): its location is in the
    /// retry topic, not where the message was first stored.
    retried: bool,
    /// The pop that handed it out (its pop time, unique per pop on a
    /// broker); `None` for a push consumer.
    pop_time: Option<i64>,
}

/// Something the soak did to the system under test.
#[derive(Debug, Clone)]
pub(crate) struct FaultEvent {
    /// Time since the start of the run.
    pub(crate) at: Duration,
    /// What happened, e.g. "join c1" or "stop broker-b".
    pub(crate) what: String,
    /// What kind of event it is, for the pop rules of [`classify`].
    kind: FaultKind,
}

/// Kinds of [`FaultEvent`] that the pop rules of [`classify`] tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// A membership change or broker stop.
    Other,
    /// A stopped broker serves again.
    BrokerBack,
    /// Messages a pop consumer left unacknowledged (see [`Ledger::released`]).
    Release,
}

#[derive(Debug, Default)]
struct Books {
    /// UNIQ_KEY -> when the send was acknowledged.
    acked: HashMap<String, Duration>,
    send_failures: u64,
    deliveries: HashMap<String, Vec<Delivery>>,
    faults: Vec<FaultEvent>,
    /// UNIQ_KEY -> the release events (indices into `faults`, in order)
    /// that left the message unacknowledged at a pop consumer.
    releases: HashMap<String, Vec<usize>>,
}

/// How a redelivery is put down to a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attribution {
    /// Push consumers: to the latest fault within [`FAULT_WINDOW`] before
    /// it (queues change hands with offsets not yet committed).
    LatestFault,
    /// Pop consumers: only to a release of that very message; see
    /// [`classify`].
    Releases {
        /// The invisible duration the members receive with.
        invisible: Duration,
    },
}

/// The shared books of one run.
#[derive(Debug)]
pub(crate) struct Ledger {
    start: Instant,
    attribution: Attribution,
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
    /// committed when its queue changed hands or its consumer restarted; in
    /// pop mode: left unacknowledged, revived from the retry topic).
    pub(crate) redelivered: u64,
    /// Pop mode: extra deliveries of the same queue offset by another pop,
    /// no revive between: the broker handed the offset out twice (the
    /// broker's duplicate, as `lost_by_broker` is the broker's loss).
    pub(crate) popped_twice: u64,
    /// Up to ten of those, "host queue offset: consumer pop time, ...".
    pub(crate) popped_twice_sample: Vec<String>,
    /// Redeliveries within [`FAULT_WINDOW`] after a fault, by that fault
    /// (in pop mode: by the release of the message that explains it).
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
    /// Messages first delivered from the retry topic: popped, and nobody
    /// got that pop's answer (a pop cut short by a leave or a broker stop);
    /// revived, not duplicated.
    pub(crate) first_revived: u64,
    /// Every delivery, duplicates included.
    pub(crate) deliveries: u64,
    /// Extra deliveries and their causes.
    pub(crate) duplicates: Duplicates,
}

impl Ledger {
    /// Empty books; times count from now; redeliveries are explained as
    /// `attribution` says.
    pub(crate) fn new(attribution: Attribution) -> Self {
        Ledger {
            start: Instant::now(),
            attribution,
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
        self.record_deliveries(at, consumer, msgs.iter().map(|msg| (msg, None)));
    }

    /// Pop consumer `consumer` received `msgs`, each with the pop time of
    /// the pop that handed it out.
    pub(crate) fn received<'a>(
        &self,
        consumer: &str,
        msgs: impl IntoIterator<Item = (&'a MessageExt, i64)>,
    ) {
        self.received_releasing(consumer, msgs, String::new(), Vec::new());
    }

    /// As [`received`](Self::received), and releases `late` among them,
    /// as `what`, at the same instant: they may come back although the
    /// consumer acknowledges them (see [`released`](Self::released)).
    pub(crate) fn received_releasing<'a>(
        &self,
        consumer: &str,
        msgs: impl IntoIterator<Item = (&'a MessageExt, i64)>,
        what: String,
        late: Vec<String>,
    ) {
        let at = self.elapsed();
        if !late.is_empty() {
            self.record(at, what, FaultKind::Release, late);
        }
        let msgs = msgs
            .into_iter()
            .map(|(msg, pop_time)| (msg, Some(pop_time)));
        self.record_deliveries(at, consumer, msgs);
    }

    fn record_deliveries<'a>(
        &self,
        at: Duration,
        consumer: &str,
        msgs: impl IntoIterator<Item = (&'a MessageExt, Option<i64>)>,
    ) {
        let mut books = self.books();
        for (msg, pop_time) in msgs {
            let delivery = Delivery {
                at,
                consumer: consumer.to_owned(),
                location: (msg.store_host, msg.queue_id, msg.queue_offset),
                retried: msg.reconsume_times > 0,
                pop_time,
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
        self.record(self.elapsed(), what.into(), FaultKind::Other, Vec::new());
    }

    /// Records that a stopped broker serves again.
    pub(crate) fn broker_back(&self, what: impl Into<String>) {
        self.record(
            self.elapsed(),
            what.into(),
            FaultKind::BrokerBack,
            Vec::new(),
        );
    }

    /// Records that a pop consumer left the messages `ids` unacknowledged
    /// (an acknowledgement or change of invisible duration failed, or a
    /// leaving member dropped them): the broker delivers them again when
    /// their invisible duration ends, and such a redelivery is put down to
    /// this event ([`Attribution::Releases`]).
    pub(crate) fn released(&self, what: impl Into<String>, ids: impl IntoIterator<Item = String>) {
        let ids = ids.into_iter().collect();
        self.record(self.elapsed(), what.into(), FaultKind::Release, ids);
    }

    /// Records an event happening at `at` (now), a release of `ids`; a
    /// release is added to one of the same text less than
    /// [`RELEASE_MERGE`] old.
    fn record(&self, at: Duration, what: String, kind: FaultKind, ids: Vec<String>) {
        if kind == FaultKind::Release {
            let mut books = self.books();
            let merge = (books.faults.iter().enumerate().rev())
                .take_while(|(_, f)| at.saturating_sub(f.at) < RELEASE_MERGE)
                .find(|(_, f)| f.kind == kind && f.what == what)
                .map(|(index, _)| index);
            if let Some(index) = merge {
                for id in ids {
                    let releases = books.releases.entry(id).or_default();
                    releases.push(index);
                    releases.sort_unstable();
                    releases.dedup();
                }
                return;
            }
        }
        let event = FaultEvent { at, what, kind };
        // As it happens, so that a run that hangs shows how far it got.
        tracing::info!(target: "soak", at = event.at.as_secs_f64(), "{}", event.what);
        let mut books = self.books();
        let index = books.faults.len();
        books.faults.push(event);
        for id in ids {
            books.releases.entry(id).or_default().push(index);
        }
    }

    /// Released messages (see [`released`](Self::released)) not delivered
    /// since their latest release: all of them (`within` `None`), or those
    /// released less than `within` ago, which may still come back.
    pub(crate) fn unreturned(&self, within: Option<Duration>) -> u64 {
        let now = self.elapsed();
        let books = self.books();
        let n = (books.releases.iter())
            .filter_map(|(id, releases)| {
                let at = books.faults[*releases.last()?].at;
                let back =
                    (books.deliveries.get(id)).is_some_and(|ds| ds.iter().any(|d| d.at > at));
                (!back).then_some(at)
            })
            .filter(|at| within.is_none_or(|within| now.saturating_sub(*at) < within))
            .count();
        count(n)
    }

    /// The messages `consumer` was handed at or after `since`.
    pub(crate) fn delivered_since(&self, consumer: &str, since: Duration) -> Vec<String> {
        let books = self.books();
        (books.deliveries.iter())
            .filter(|(_, ds)| (ds.iter()).any(|d| d.consumer == consumer && d.at >= since))
            .map(|(id, _)| id.clone())
            .collect()
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
            if let Some(first) = deliveries.first().filter(|d| d.retried) {
                verdict.first_revived += 1;
                tracing::debug!(target: "soak", %id, acked = ?books.acked.get(id),
                    at = ?first.at, consumer = %first.consumer, "first delivered revived");
            }
            let causes = match self.attribution {
                Attribution::LatestFault => Causes::LatestFault(&books.faults),
                Attribution::Releases { invisible } => Causes::Releases {
                    faults: &books.faults,
                    releases: books.releases.get(id).map_or(&[], Vec::as_slice),
                    invisible,
                },
            };
            classify(deliveries, &causes, &mut verdict.duplicates);
        }
        verdict
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What may explain the redeliveries of one message.
enum Causes<'a> {
    /// Any fault (push consumers).
    LatestFault(&'a [FaultEvent]),
    /// The releases of this message (pop consumers).
    Releases {
        faults: &'a [FaultEvent],
        /// Indices into `faults`, in order.
        releases: &'a [usize],
        invisible: Duration,
    },
}

impl Causes<'_> {
    /// The fault a redelivery at `at` is put down to, if any.
    ///
    /// Push ([`Causes::LatestFault`]): the latest fault within
    /// [`FAULT_WINDOW`] before it.
    ///
    /// Pop ([`Causes::Releases`]): the window rule, stretched by what pop
    /// delivery takes, and narrowed to the message itself. A popped message
    /// comes back only when its consumer did not acknowledge it (the broker
    /// keeps no client offsets and hands out no queues, so joins, leaves and
    /// broker stops alone redeliver nothing), and then not before its
    /// invisible duration ends. So the cause is the latest release of this
    /// very message ([`Ledger::released`]: a failed ack or change of
    /// invisible duration, or its drop by a leaving member) at or before
    /// the redelivery, if it lies within the invisible duration plus
    /// [`FAULT_WINDOW`] before it, or if a broker served again within
    /// [`FAULT_WINDOW`] before the redelivery and after the release (the
    /// message waited for its stopped broker to revive it). A receive whose
    /// answer was lost hands nobody anything: what it popped comes back as
    /// a first delivery, or, for a released message, within the stretched
    /// window of its release (one invisible duration more).
    fn cause(&self, at: Duration) -> Option<&FaultEvent> {
        let before = |f: &&FaultEvent, window: Duration| f.at <= at && at - f.at <= window;
        match self {
            Causes::LatestFault(faults) => faults.iter().rev().find(|f| before(f, FAULT_WINDOW)),
            Causes::Releases {
                faults,
                releases,
                invisible,
            } => {
                let release = (releases.iter().rev())
                    .filter_map(|i| faults.get(*i))
                    .find(|f| f.at <= at)?;
                let waited = || {
                    faults.iter().any(|f| {
                        f.kind == FaultKind::BrokerBack
                            && f.at >= release.at
                            && before(&f, FAULT_WINDOW)
                    })
                };
                (before(&release, *invisible + FAULT_WINDOW) || waited()).then_some(release)
            }
        }
    }
}

/// Adds the extra deliveries of one message to `dups`. A delivery at a
/// new location of the topic after one at another is a second copy of the
/// message (stored twice). One from the retry topic (a revive) is a
/// redelivery, put down to a fault by [`Causes::cause`]; so is one at a
/// location seen before, except in pop mode: there another pop of the same
/// location (no revive between: revives come from the retry topic) is the
/// broker handing the offset out twice, and the same pop twice the
/// client's duplicate (unexplained); and so is the first delivery from the
/// topic after revives only (a pop consumed late, after its revive was).
fn classify(deliveries: &[Delivery], causes: &Causes<'_>, dups: &mut Duplicates) {
    let mut seen: Vec<&Delivery> = Vec::new();
    for (i, delivery) in deliveries.iter().enumerate() {
        let earlier = (seen.iter())
            .find(|d| d.retried == delivery.retried && d.location == delivery.location)
            .copied();
        if earlier.is_none() {
            seen.push(delivery);
        }
        if i == 0 {
            continue;
        }
        dups.total += 1;
        let from_the_topic_before = || deliveries[..i].iter().any(|d| !d.retried);
        if earlier.is_none() && !delivery.retried && from_the_topic_before() {
            dups.stored_twice += 1;
            continue;
        }
        let (host, queue, offset) = delivery.location;
        let cause = match (earlier, causes) {
            (Some(earlier), Causes::Releases { .. }) => {
                let same_pop = deliveries[..i].iter().any(|d| {
                    d.retried == delivery.retried
                        && d.location == delivery.location
                        && d.pop_time == delivery.pop_time
                });
                if !same_pop {
                    dups.popped_twice += 1;
                    if dups.popped_twice_sample.len() < 10 {
                        dups.popped_twice_sample.push(format!(
                            "{host} queue {queue} offset {offset}: {} pop {:?} at {:.3}s, {} pop {:?} at {:.3}s",
                            earlier.consumer,
                            earlier.pop_time,
                            earlier.at.as_secs_f64(),
                            delivery.consumer,
                            delivery.pop_time,
                            delivery.at.as_secs_f64()
                        ));
                    }
                    continue;
                }
                None
            }
            _ => causes.cause(delivery.at),
        };
        dups.redelivered += 1;
        *dups.by_broker.entry(host.to_string()).or_default() += 1;
        match cause {
            Some(fault) => {
                let label = format!("{} @{:.1}s", fault.what, fault.at.as_secs_f64());
                *dups.near_fault.entry(label).or_default() += 1;
            }
            None => {
                dups.unexplained += 1;
                let earlier: Vec<String> = (deliveries[..i].iter())
                    .map(|d| {
                        let (host, queue, offset) = d.location;
                        format!(
                            "{} at {:?} {host}#{queue}@{offset} pop {:?}",
                            d.consumer, d.at, d.pop_time
                        )
                    })
                    .collect();
                tracing::warn!(consumer = %delivery.consumer, at = ?delivery.at, %host, queue, offset,
                    retried = delivery.retried, pop_time = ?delivery.pop_time, ?earlier,
                    "a redelivery far from any fault");
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
            retried: false,
            pop_time: None,
        }
    }

    fn popped(at: u64, offset: i64, pop_time: i64) -> Delivery {
        Delivery {
            pop_time: Some(pop_time),
            ..delivery(at, offset)
        }
    }

    fn revived(at: u64, offset: i64) -> Delivery {
        Delivery {
            retried: true,
            pop_time: Some(i64::try_from(at).unwrap_or(0) * 1000),
            ..delivery(at, offset)
        }
    }

    fn event(at: u64, what: &str, kind: FaultKind) -> FaultEvent {
        FaultEvent {
            at: Duration::from_secs(at),
            what: what.into(),
            kind,
        }
    }

    #[test]
    fn redeliveries_go_to_the_latest_fault_in_the_window() {
        let faults = vec![
            event(10, "join c1", FaultKind::Other),
            event(20, "stop broker-b", FaultKind::Other),
        ];
        let mut dups = Duplicates::default();
        classify(
            &[
                delivery(5, 7),
                delivery(22, 7),
                delivery(100, 7),
                delivery(101, 8),
            ],
            &Causes::LatestFault(&faults),
            &mut dups,
        );
        assert_eq!(dups.total, 3);
        assert_eq!(dups.redelivered, 2);
        assert_eq!(dups.stored_twice, 1);
        assert_eq!(dups.unexplained, 1);
        assert_eq!(dups.near_fault.get("stop broker-b @20.0s"), Some(&1));
    }

    #[test]
    fn pop_redeliveries_go_to_a_release_of_the_message() {
        let faults = vec![
            event(10, "stop broker-b", FaultKind::Other),
            event(11, "c1 ack failed", FaultKind::Release),
            event(60, "broker-b serves again", FaultKind::BrokerBack),
            event(70, "join c2", FaultKind::Other),
        ];
        let causes = Causes::Releases {
            faults: &faults,
            releases: &[1],
            invisible: Duration::from_secs(8),
        };
        let mut dups = Duplicates::default();
        classify(
            &[
                popped(5, 7, 5000),
                // Within the invisible duration plus the window.
                revived(40, 0),
                // Long after, but soon after its broker served again.
                revived(65, 1),
                // Nothing but a join before it: unexplained.
                revived(100, 2),
                // The topic's offset again, by another pop: the broker's.
                popped(101, 7, 101_000),
                // The same pop twice: the client's.
                popped(102, 7, 101_000),
                // Another offset of the topic: a second copy.
                popped(103, 8, 103_000),
            ],
            &causes,
            &mut dups,
        );
        assert_eq!(dups.total, 6);
        assert_eq!(dups.redelivered, 4);
        assert_eq!(dups.popped_twice, 1);
        assert_eq!(dups.popped_twice_sample.len(), 1);
        assert_eq!(dups.stored_twice, 1);
        assert_eq!(dups.unexplained, 2);
        assert_eq!(dups.near_fault.get("c1 ack failed @11.0s"), Some(&2));
        // A message never released: nothing explains its redelivery.
        let mut dups = Duplicates::default();
        let causes = Causes::Releases {
            faults: &faults,
            releases: &[],
            invisible: Duration::from_secs(8),
        };
        classify(&[popped(5, 7, 5000), revived(12, 0)], &causes, &mut dups);
        assert_eq!(dups.unexplained, 1);
    }

    #[test]
    fn a_pop_consumed_after_its_revive_is_a_redelivery() {
        let faults = vec![event(20, "c1 got messages late", FaultKind::Release)];
        let causes = Causes::Releases {
            faults: &faults,
            releases: &[0],
            invisible: Duration::from_secs(10),
        };
        let mut dups = Duplicates::default();
        // Revived and consumed by c2 while c1 still held its pop.
        classify(&[revived(19, 0), popped(20, 7, 5000)], &causes, &mut dups);
        assert_eq!((dups.redelivered, dups.stored_twice), (1, 0));
        assert_eq!(dups.unexplained, 0);
    }

    #[test]
    fn releases_of_one_text_within_a_second_are_one_event() {
        let ledger = Ledger::new(Attribution::Releases {
            invisible: Duration::from_secs(8),
        });
        ledger.released("ack failed", ["a".to_owned()]);
        ledger.released("ack failed", ["b".to_owned()]);
        ledger.released("other", ["a".to_owned()]);
        assert_eq!(ledger.faults().len(), 2);
        assert_eq!(ledger.unreturned(None), 2);
    }

    #[test]
    fn unreturned_counts_releases_not_delivered_since() {
        let ledger = Ledger::new(Attribution::Releases {
            invisible: Duration::from_secs(8),
        });
        ledger.released("c0 leaves", ["a".to_owned(), "b".to_owned()]);
        assert_eq!(ledger.unreturned(None), 2);
        assert_eq!(ledger.unreturned(Some(Duration::from_secs(60))), 2);
        assert_eq!(ledger.unreturned(Some(Duration::ZERO)), 0);
    }
}
