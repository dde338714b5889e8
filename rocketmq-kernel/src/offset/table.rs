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
    offsets: HashMap<MessageQueue, i64>,
    removed: HashSet<MessageQueue>,
}

impl OffsetTable {
    fn state(&self) -> MutexGuard<'_, TableState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The in-memory offset of `mq`.
    pub(crate) fn get(&self, mq: &MessageQueue) -> Option<i64> {
        self.state().offsets.get(mq).copied()
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
        match state.offsets.get_mut(mq) {
            Some(current) if increase_only && offset < *current => false,
            Some(current) => {
                *current = offset;
                true
            }
            None => {
                state.offsets.insert(mq.clone(), offset);
                true
            }
        }
    }

    /// Adds `mq` again with what the store holds for it (forced).
    pub(crate) fn restore(&self, mq: &MessageQueue, stored: Option<i64>) {
        let mut state = self.state();
        state.removed.remove(mq);
        if let Some(offset) = stored.filter(|offset| *offset >= 0) {
            state.offsets.insert(mq.clone(), offset);
        }
    }

    /// Sets the offset of `mq` whatever it was, a removed queue included.
    pub(crate) fn force(&self, mq: &MessageQueue, offset: i64) -> bool {
        if offset < 0 {
            return false;
        }
        let mut state = self.state();
        state.removed.remove(mq);
        state.offsets.insert(mq.clone(), offset);
        true
    }

    /// Replaces the offsets of the given queues (a load at start).
    pub(crate) fn load(&self, offsets: impl IntoIterator<Item = (MessageQueue, i64)>) {
        let mut state = self.state();
        for (mq, offset) in offsets {
            if offset >= 0 && !state.removed.contains(&mq) {
                state.offsets.insert(mq, offset);
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
            .map(|(mq, offset)| (mq.clone(), *offset))
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
        table.restore(&mq(), None);
        assert_eq!(table.get(&mq()), None);
        assert!(table.update(&mq(), 20, true));
        table.restore(&mq(), Some(15));
        assert_eq!(table.get(&mq()), Some(15));
    }
}
