//! [`MemoryOffsetStore`]: offsets that live only in this process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use rocketmq_model::MessageQueue;

use super::table::OffsetTable;
use super::{OffsetStore, ReadOffsetType};
use crate::error::Result;

/// Offsets kept in this process only: the "store" is a second in-memory map
/// that `persist` writes, so a queue removed and later assigned again resumes
/// from its persisted offset, while a restart starts over. For tests, and for
/// consumers that track their offsets themselves.
#[derive(Debug, Default)]
pub struct MemoryOffsetStore {
    table: OffsetTable,
    stored: Mutex<HashMap<MessageQueue, i64>>,
}

impl MemoryOffsetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn stored(&self) -> MutexGuard<'_, HashMap<MessageQueue, i64>> {
        self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl OffsetStore for MemoryOffsetStore {
    async fn load(&self) -> Result<()> {
        let stored: Vec<(MessageQueue, i64)> = self
            .stored()
            .iter()
            .map(|(mq, o)| (mq.clone(), *o))
            .collect();
        self.table.load(stored);
        Ok(())
    }

    fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool {
        self.table.update(mq, offset, increase_only)
    }

    async fn read(&self, mq: &MessageQueue, from: ReadOffsetType) -> Result<Option<i64>> {
        if from != ReadOffsetType::Store {
            let in_memory = self.table.get(mq);
            if in_memory.is_some() || from == ReadOffsetType::Memory {
                return Ok(in_memory);
            }
        }
        let mark = self.table.mark();
        let stored = self.stored().get(mq).copied();
        self.table.restore(mq, stored, mark);
        Ok(stored)
    }

    async fn persist(&self, mq: &MessageQueue) -> Result<()> {
        if let Some(offset) = self.table.get(mq) {
            self.stored().insert(mq.clone(), offset);
        }
        Ok(())
    }

    async fn persist_all(&self) -> Result<()> {
        let snapshot = self.table.snapshot();
        self.stored().extend(snapshot);
        Ok(())
    }

    fn remove(&self, mq: &MessageQueue) {
        self.table.remove(mq);
    }

    fn force(&self, mq: &MessageQueue, offset: i64) -> bool {
        self.table.force(mq, offset)
    }

    fn snapshot(&self) -> BTreeMap<MessageQueue, i64> {
        self.table.snapshot()
    }
}
