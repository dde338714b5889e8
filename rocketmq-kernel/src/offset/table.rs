//! The in-memory offset table the built-in stores share.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::MessageQueue;

/// Offsets per queue, with the set of removed queues whose updates are
/// ignored until they are restored from the store.
#[derive(Debug, Default)]
pub(crate) struct OffsetTable {
    state: Mutex<TableState>,
}

#[derive(Debug, Default)]
struct TableState {
    offsets: HashMap<MessageQueue, Slot>,
    removed: HashSet<MessageQueue>,
    /// Writes so far: what [`ReadMark`]s and [`Slot::written`] count in.
    writes: u64,
}

/// One queue's offset, and when it was last written.
#[derive(Debug, Clone, Copy)]
struct Slot {
    offset: i64,
    written: u64,
}

/// Taken before reading a queue's offset from the store, so that what was
/// read does not replace an offset written while the read was under way
/// (a seek, a reset, a commit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadMark(u64);

impl TableState {
    fn write(&mut self, mq: &MessageQueue, offset: i64) {
        self.writes += 1;
        let slot = Slot {
            offset,
            written: self.writes,
        };
        match self.offsets.get_mut(mq) {
            Some(current) => *current = slot,
            None => {
                self.offsets.insert(mq.clone(), slot);
            }
        }
    }
}

impl OffsetTable {
    fn state(&self) -> MutexGuard<'_, TableState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The in-memory offset of `mq`.
    pub(crate) fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.state().offsets.get(mq).map(|slot| slot.offset)
    }

    /// Sets the offset of `mq` (see [`OffsetStore::update`](super::OffsetStore::update)).
    pub(crate) fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool {
        if offset < 0 {
            return false;
        }
        let mut state = self.state();
        if state.removed.contains(mq) {
            return false;
        }
        if increase_only
            && state
                .offsets
                .get(mq)
                .is_some_and(|slot| offset < slot.offset)
        {
            return false;
        }
        state.write(mq, offset);
        true
    }

    /// Marks the start of a read from the store (see [`restore`](Self::restore)).
    pub(crate) fn mark(&self) -> ReadMark {
        ReadMark(self.state().writes)
    }

    /// Adds `mq` again with what the store holds for it (forced), unless
    /// its offset was written since `mark`, which is then newer than what
    /// was read.
    pub(crate) fn restore(&self, mq: &MessageQueue, stored: Option<i64>, mark: ReadMark) {
        let mut state = self.state();
        if state
            .offsets
            .get(mq)
            .is_some_and(|slot| slot.written > mark.0)
        {
            return;
        }
        state.removed.remove(mq);
        if let Some(offset) = stored.filter(|offset| *offset >= 0) {
            state.write(mq, offset);
        }
    }

    /// Sets the offset of `mq` whatever it was, a removed queue included.
    pub(crate) fn force(&self, mq: &MessageQueue, offset: i64) -> bool {
        if offset < 0 {
            return false;
        }
        let mut state = self.state();
        state.removed.remove(mq);
        state.write(mq, offset);
        true
    }

    /// Replaces the offsets of the given queues (a load at start).
    pub(crate) fn load(&self, offsets: impl IntoIterator<Item = (MessageQueue, i64)>) {
        let mut state = self.state();
        for (mq, offset) in offsets {
            if offset >= 0 && !state.removed.contains(&mq) {
                state.write(&mq, offset);
            }
        }
    }

    /// Forgets `mq` and ignores its updates until it is restored.
    pub(crate) fn remove(&self, mq: &MessageQueue) {
        let mut state = self.state();
        state.offsets.remove(mq);
        state.removed.insert(mq.clone());
    }

    /// A copy of the offsets.
    pub(crate) fn snapshot(&self) -> BTreeMap<MessageQueue, i64> {
        self.state()
            .offsets
            .iter()
            .map(|(mq, slot)| (mq.clone(), slot.offset))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq() -> MessageQueue {
        MessageQueue::new("t", "b", 0)
    }

    #[test]
    fn only_forward_unless_forced() {
        let table = OffsetTable::default();
        assert!(table.update(&mq(), 10, true));
        assert!(!table.update(&mq(), 9, true));
        assert_eq!(table.get(&mq()), Some(10));
        assert!(table.update(&mq(), 10, true));
        assert!(table.update(&mq(), 3, false));
        assert_eq!(table.get(&mq()), Some(3));
        assert!(!table.update(&mq(), -1, false));
        assert_eq!(table.get(&mq()), Some(3));
    }

    #[test]
    fn removed_queue_ignores_updates_until_restored() {
        let table = OffsetTable::default();
        table.update(&mq(), 10, true);
        table.remove(&mq());
        assert_eq!(table.get(&mq()), None);
        assert!(!table.update(&mq(), 20, true));
        assert!(!table.update(&mq(), 20, false));
        table.load([(mq(), 30)]);
        assert!(table.snapshot().is_empty());
        assert!(table.force(&mq(), 25), "a forced offset is taken");
        assert_eq!(table.get(&mq()), Some(25));
        table.remove(&mq());
        table.restore(&mq(), None, table.mark());
        assert_eq!(table.get(&mq()), None);
        assert!(table.update(&mq(), 20, true));
        table.restore(&mq(), Some(15), table.mark());
        assert_eq!(table.get(&mq()), Some(15));
    }

    /// A seek or a reset while the store was being read: what was read is
    /// older than what was written meanwhile, and must not replace it.
    #[test]
    fn a_read_does_not_replace_what_was_written_while_it_ran() {
        let table = OffsetTable::default();
        table.update(&mq(), 3, true);
        table.remove(&mq());
        let mark = table.mark();
        assert!(table.force(&mq(), 7), "a seek while reading");
        table.restore(&mq(), Some(3), mark);
        assert_eq!(table.get(&mq()), Some(7));
        let mark = table.mark();
        table.restore(&mq(), Some(5), mark);
        assert_eq!(
            table.get(&mq()),
            Some(5),
            "nothing written since this read began"
        );
        let mark = table.mark();
        assert!(table.update(&mq(), 9, false));
        table.restore(&mq(), Some(5), mark);
        assert_eq!(table.get(&mq()), Some(9));
    }
}
