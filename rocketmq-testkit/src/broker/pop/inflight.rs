//! What a broker keeps of its pops: the checkpoints of messages popped and
//! not yet acknowledged (Java writes them to its revive topic,
//! `rmq_sys_REVIVE_LOG_<cluster>`, and matches the acknowledgements written
//! there against them), the counters Java turns into revive queues and
//! random choices, and the pops held by long polling.
//!
//! Like the revive topic, the checkpoints outlive a broker's restart, and so
//! do the orderly pops ([`Orders`]), as Java's `consumerOrderInfo.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::super::store::now_millis;
use super::orderly::Orders;

/// Java's `reviveQueueNum`: a non-orderly pop's revive queue is the
/// broker's pop counter modulo this.
const REVIVE_QUEUE_NUM: u64 = 8;
/// Java's `popPollingSize`: a pop is not held when more than this many are
/// held for its topic, group and queue already.
pub(crate) const POP_POLLING_SIZE: usize = 1024;
/// Java's `maxPopPollingSize`: no pop is held when this many are held.
pub(crate) const MAX_POP_POLLING_SIZE: usize = 100_000;

/// One pop of one queue (Java's `PopCheckPoint`): the messages it answered
/// and which of them were acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) group: String,
    /// The topic read: the subscribed one or the group's pop retry topic.
    pub(crate) topic: String,
    pub(crate) queue_id: i32,
    /// Where the pop began in the queue.
    pub(crate) start_offset: i64,
    /// When the pop was made (epoch ms).
    pub(crate) pop_time: i64,
    pub(crate) invisible_time: i64,
    pub(crate) revive_qid: i32,
    pub(crate) broker_name: String,
    /// The queue offsets answered, each with whether it was acknowledged.
    pub(crate) offsets: Vec<(i64, bool)>,
}

impl Checkpoint {
    /// The offsets still unacknowledged.
    pub(crate) fn unacked(&self) -> impl Iterator<Item = i64> + '_ {
        (self.offsets.iter())
            .filter(|(_, acked)| !acked)
            .map(|(offset, _)| *offset)
    }
}

/// What an acknowledgement names (Java's `AckMsg`): the checkpoint by its
/// merge key (topic, group, queue, start offset, pop time, broker) in the
/// revive queue it is written to, and the offset acknowledged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack<'a> {
    pub(crate) group: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) queue_id: i32,
    pub(crate) start_offset: i64,
    pub(crate) pop_time: i64,
    pub(crate) broker_name: &'a str,
    pub(crate) revive_qid: i32,
    pub(crate) offset: i64,
}

impl Ack<'_> {
    fn names(&self, ck: &Checkpoint) -> bool {
        ck.group == self.group
            && ck.topic == self.topic
            && ck.queue_id == self.queue_id
            && ck.start_offset == self.start_offset
            && ck.pop_time == self.pop_time
            && ck.broker_name == self.broker_name
            && ck.revive_qid == self.revive_qid
    }
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    checkpoints: BTreeMap<u64, Checkpoint>,
    due: BTreeSet<(Instant, u64)>,
}

/// A queue a pop is reading; see [`PopState::lock_queue`].
pub(crate) struct QueueLock<'a> {
    state: &'a PopState,
    key: (String, String, i32),
}

impl Drop for QueueLock<'_> {
    fn drop(&mut self) {
        let mut reading = (self.state.reading)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reading.remove(&self.key);
    }
}

/// A broker's pop bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct PopState {
    table: Mutex<Table>,
    /// Wakes the revive task when a checkpoint is added.
    pub(crate) wake: Notify,
    /// Java's `ckMessageNumber`.
    pops: AtomicU64,
    /// Pops per (group, topic): which queue a pop of every queue starts at,
    /// and whether it reads the retry topic first.
    rounds: Mutex<HashMap<(String, String), u64>>,
    /// The (topic, group, queue) a pop is reading now (Java's
    /// `QueueLockManager`).
    reading: Mutex<HashSet<(String, String, i32)>>,
    /// Pops held per (topic, group, queue id of the request).
    held: Mutex<HashMap<(String, String, i32), usize>>,
    held_total: AtomicUsize,
    /// The last pop time handed out (epoch ms).
    last_pop_time: AtomicI64,
    /// The orderly pops (Java's `ConsumerOrderInfoManager`).
    pub(crate) orders: Orders,
}

impl PopState {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The time of a new pop (epoch ms): the wall clock, but never the time
    /// of an earlier pop. A checkpoint is found by its pop time, so a change
    /// of invisible time in the millisecond of its pop (which tests under
    /// paused time make) must not make a checkpoint the old handle names.
    pub(crate) fn next_pop_time(&self) -> i64 {
        let now = now_millis();
        let mut last = self.last_pop_time.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.last_pop_time.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(current) => last = current,
            }
        }
    }

    /// Takes `queue_id` of `topic` for `group`'s pop, or `None` when
    /// another pop is reading it: Java's `QueueLockManager.tryLock`, where a
    /// pop skips a queue another one holds, so no two pops answer the same
    /// offset. Released when the guard drops.
    pub(crate) fn lock_queue<'a>(
        &'a self,
        topic: &str,
        group: &str,
        queue_id: i32,
    ) -> Option<QueueLock<'a>> {
        let key = (topic.to_owned(), group.to_owned(), queue_id);
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        if !reading.insert(key.clone()) {
            return None;
        }
        Some(QueueLock { state: self, key })
    }

    /// The revive queue of the next non-orderly pop (Java:
    /// `ckMessageNumber.getAndIncrement() % reviveQueueNum`).
    pub(crate) fn next_revive_qid(&self) -> i32 {
        let n = self.pops.fetch_add(1, Ordering::Relaxed);
        i32::try_from(n % REVIVE_QUEUE_NUM).unwrap_or(0)
    }

    /// This pop's number among the pops of `group` on `topic`, from 0.
    pub(crate) fn next_round(&self, group: &str, topic: &str) -> u64 {
        let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        let round = rounds
            .entry((group.to_owned(), topic.to_owned()))
            .or_default();
        let this = *round;
        *round = round.wrapping_add(1);
        this
    }

    /// Keeps a checkpoint until `due`, when its unacknowledged messages are
    /// revived.
    pub(crate) fn add(&self, due: Instant, checkpoint: Checkpoint) {
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        table.checkpoints.insert(id, checkpoint);
        table.due.insert((due, id));
        drop(table);
        self.wake.notify_one();
    }

    /// Marks an offset of the checkpoint `ack` names as acknowledged; false
    /// when no checkpoint in flight has it (revived, acknowledged, or never
    /// popped so). A checkpoint whose messages are all acknowledged is done.
    pub(crate) fn ack(&self, ack: &Ack<'_>) -> bool {
        let mut table = self.table();
        let found = table.checkpoints.iter_mut().find_map(|(id, ck)| {
            if !ack.names(ck) {
                return None;
            }
            let entry = ck
                .offsets
                .iter_mut()
                .find(|(o, acked)| *o == ack.offset && !acked)?;
            entry.1 = true;
            Some((*id, ck.offsets.iter().all(|(_, acked)| *acked)))
        });
        let Some((id, done)) = found else {
            return false;
        };
        if done {
            table.checkpoints.remove(&id);
            table.due.retain(|(_, due_id)| *due_id != id);
        }
        true
    }

    /// Takes the checkpoints due at `now`.
    pub(crate) fn take_due(&self, now: Instant) -> Vec<Checkpoint> {
        let mut table = self.table();
        let later = table.due.split_off(&(now, u64::MAX));
        let ready = std::mem::replace(&mut table.due, later);
        (ready.into_iter())
            .filter_map(|(_, id)| table.checkpoints.remove(&id))
            .collect()
    }

    /// When the next checkpoint is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.table().due.first().map(|(at, _)| *at)
    }

    /// The checkpoints in flight, in the order they were made.
    pub(crate) fn in_flight(&self) -> Vec<Checkpoint> {
        self.table().checkpoints.values().cloned().collect()
    }

    /// Counts a pop as held for its key, unless Java's polling limits refuse
    /// it (POLLING_FULL): the count drops with the returned guard.
    pub(crate) fn hold(&self, topic: &str, group: &str, queue_id: i32) -> Option<HeldPop<'_>> {
        if self.held_total.load(Ordering::Relaxed) >= MAX_POP_POLLING_SIZE {
            return None;
        }
        let key = (topic.to_owned(), group.to_owned(), queue_id);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key.clone()).or_default();
        // Java compares the size before adding: `size > popPollingSize`.
        if *count > POP_POLLING_SIZE {
            return None;
        }
        *count += 1;
        self.held_total.fetch_add(1, Ordering::Relaxed);
        Some(HeldPop { state: self, key })
    }

    /// Pops held right now.
    pub(crate) fn held(&self) -> usize {
        self.held_total.load(Ordering::Relaxed)
    }
}

/// A pop counted as held while it lives.
#[derive(Debug)]
pub(crate) struct HeldPop<'a> {
    state: &'a PopState,
    key: (String, String, i32),
}

impl Drop for HeldPop<'_> {
    fn drop(&mut self) {
        let mut held = (self.state.held)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
        self.state.held_total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn checkpoint(offsets: &[i64]) -> Checkpoint {
        Checkpoint {
            group: "g".into(),
            topic: "T".into(),
            queue_id: 1,
            start_offset: offsets[0],
            pop_time: 100,
            invisible_time: 1000,
            revive_qid: 3,
            broker_name: "b".into(),
            offsets: offsets.iter().map(|&o| (o, false)).collect(),
        }
    }

    fn ack(offset: i64) -> Ack<'static> {
        Ack {
            group: "g",
            topic: "T",
            queue_id: 1,
            start_offset: 5,
            pop_time: 100,
            broker_name: "b",
            revive_qid: 3,
            offset,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn acks_match_by_javas_merge_key_and_checkpoints_fall_due() {
        let state = PopState::default();
        let due = Instant::now() + Duration::from_secs(1);
        state.add(due, checkpoint(&[5, 7]));
        assert!(
            !state.ack(&Ack {
                pop_time: 101,
                ..ack(5)
            }),
            "another pop"
        );
        assert!(
            !state.ack(&Ack {
                revive_qid: 4,
                ..ack(5)
            }),
            "another revive queue"
        );
        assert!(!state.ack(&ack(6)), "not answered by that pop");
        assert!(state.ack(&ack(5)));
        assert!(!state.ack(&ack(5)), "acknowledged already");
        assert!(state.take_due(Instant::now()).is_empty());
        let revived = state.take_due(due);
        assert_eq!(revived.len(), 1);
        assert_eq!(revived[0].unacked().collect::<Vec<_>>(), [7]);
        assert!(!state.ack(&ack(7)), "revived already");

        state.add(due, checkpoint(&[5]));
        assert!(state.ack(&ack(5)));
        assert_eq!(state.next_due(), None, "all acknowledged: done");
    }

    #[test]
    fn a_queue_is_read_by_one_pop_at_a_time() {
        let state = PopState::default();
        let first = state.lock_queue("T", "g", 0).expect("free");
        assert!(
            state.lock_queue("T", "g", 0).is_none(),
            "held by the first pop"
        );
        assert!(state.lock_queue("T", "g", 1).is_some(), "another queue");
        assert!(state.lock_queue("T", "h", 0).is_some(), "another group");
        drop(first);
        assert!(state.lock_queue("T", "g", 0).is_some(), "free again");
    }

    #[test]
    fn pop_times_never_repeat() {
        let state = PopState::default();
        let times: Vec<i64> = (0..1_000).map(|_| state.next_pop_time()).collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(times[0] >= now_millis() - 60_000);
    }

    #[test]
    fn revive_queues_rotate_and_holds_are_limited_per_key() {
        let state = PopState::default();
        let qids: Vec<i32> = (0..10).map(|_| state.next_revive_qid()).collect();
        assert_eq!(qids, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
        let held: Vec<_> = (0..=POP_POLLING_SIZE)
            .map(|_| state.hold("T", "g", -1).unwrap())
            .collect();
        assert!(state.hold("T", "g", -1).is_none());
        assert!(state.hold("T", "g", 0).is_some());
        assert_eq!(state.held(), POP_POLLING_SIZE + 1);
        drop(held);
        assert_eq!(state.held(), 0);
        assert!(state.hold("T", "g", -1).is_some());
    }
}
