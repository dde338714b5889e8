//! Offset stores: where a consumer keeps, per queue, the offset of the next
//! message to consume.
//!
//! Three stores implement [`OffsetStore`]: [`RemoteOffsetStore`] (clustering:
//! the broker keeps the group's offsets, cached here and persisted
//! periodically, on queue removal and at shutdown), [`LocalFileOffsetStore`]
//! (broadcasting: one JSON file per client and group, written atomically) and
//! [`MemoryOffsetStore`] (tests, or consumers that track offsets themselves).
//!
//! Rules every built-in store keeps, the ones whose violation loses messages
//! or delivers them twice:
//! - "No offset" is `None`, never 0 and never −1.
//! - An offset only moves forward unless the update is forced
//!   (`increase_only == false`).
//! - A removed (dropped) queue never commits: after [`OffsetStore::remove`]
//!   every update for it is ignored and it is not persisted, until it is
//!   added again by reading its offset from the store
//!   ([`ReadOffsetType::Store`], or [`ReadOffsetType::MemoryThenStore`] with
//!   nothing in memory), which is what a rebalance does when it is assigned
//!   the queue again. Whoever drops a queue persists it first, then removes it.

mod local_file;
mod memory;
mod persist_log;
mod remote;
mod table;

use std::collections::BTreeMap;

use async_trait::async_trait;
use rocketmq_model::MessageQueue;

use crate::error::Result;

pub use local_file::LocalFileOffsetStore;
pub use memory::MemoryOffsetStore;
pub use persist_log::PersistLog;
pub use remote::{OffsetRemote, RemoteOffsetStore};

/// Where [`OffsetStore::read`] looks for an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadOffsetType {
    /// Only the in-memory table.
    Memory,
    /// Only the store (the broker, the file); what it finds replaces the
    /// in-memory offset, and a removed queue is added again.
    Store,
    /// The in-memory table, or the store when memory has nothing.
    MemoryThenStore,
}

/// Keeps the consume offsets of one consumer group: the offset of the next
/// message to consume, per queue.
///
/// Updates land in memory (cheap, called after every consumed batch);
/// `persist` and `persist_all` write them to the store. See the [module
/// docs](self) for the rules an implementation must keep.
///
/// # Plugging in a custom store
///
/// ```
/// use std::collections::{BTreeMap, HashMap};
/// use std::sync::Mutex;
///
/// use async_trait::async_trait;
/// use rocketmq_kernel::offset::{OffsetStore, ReadOffsetType};
/// use rocketmq_kernel::Result;
/// use rocketmq_model::MessageQueue;
///
/// /// Keeps offsets in memory and "persists" them into another map, standing
/// /// in for a database.
/// #[derive(Default)]
/// struct DatabaseStore {
///     memory: Mutex<HashMap<MessageQueue, i64>>,
///     database: Mutex<HashMap<MessageQueue, i64>>,
/// }
///
/// #[async_trait]
/// impl OffsetStore for DatabaseStore {
///     async fn load(&self) -> Result<()> {
///         Ok(())
///     }
///
///     fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool {
///         let mut memory = self.memory.lock().unwrap();
///         let current = memory.entry(mq.clone()).or_insert(offset);
///         if increase_only && offset < *current {
///             return false;
///         }
///         *current = offset;
///         true
///     }
///
///     async fn read(&self, mq: &MessageQueue, from: ReadOffsetType) -> Result<Option<i64>> {
///         let in_memory = self.memory.lock().unwrap().get(mq).copied();
///         match (from, in_memory) {
///             (ReadOffsetType::Memory, found) => Ok(found),
///             (ReadOffsetType::MemoryThenStore, Some(found)) => Ok(Some(found)),
///             _ => Ok(self.database.lock().unwrap().get(mq).copied()),
///         }
///     }
///
///     async fn persist(&self, mq: &MessageQueue) -> Result<()> {
///         if let Some(offset) = self.memory.lock().unwrap().get(mq).copied() {
///             self.database.lock().unwrap().insert(mq.clone(), offset);
///         }
///         Ok(())
///     }
///
///     async fn persist_all(&self) -> Result<()> {
///         let snapshot = self.snapshot();
///         self.database.lock().unwrap().extend(snapshot);
///         Ok(())
///     }
///
///     fn remove(&self, mq: &MessageQueue) {
///         self.memory.lock().unwrap().remove(mq);
///     }
///
///     fn snapshot(&self) -> BTreeMap<MessageQueue, i64> {
///         self.memory.lock().unwrap().iter().map(|(q, o)| (q.clone(), *o)).collect()
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = DatabaseStore::default();
/// let mq = MessageQueue::new("orders", "broker-a", 0);
/// assert!(store.update(&mq, 42, true));
/// assert!(!store.update(&mq, 41, true));
/// store.persist(&mq).await?;
/// assert_eq!(store.read(&mq, ReadOffsetType::Store).await?, Some(42));
/// # Ok::<(), rocketmq_kernel::KernelError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// Loads the stored offsets into memory (the local file store reads its
    /// file; the others have nothing to load). Called once at start.
    async fn load(&self) -> Result<()>;

    /// Sets the in-memory offset of `mq`. With `increase_only`, an offset
    /// lower than the current one is ignored; `false` forces it (an offset
    /// reset). Returns whether the offset was taken: `false` when it would
    /// go backwards, is negative, or `mq` was removed.
    fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) -> bool;

    /// The offset of `mq`, `None` when there is none. Reading from the store
    /// may fail (the broker is unreachable); "not found" is `Ok(None)`.
    async fn read(&self, mq: &MessageQueue, from: ReadOffsetType) -> Result<Option<i64>>;

    /// Writes the in-memory offset of `mq` to the store (nothing when there
    /// is none, e.g. after a removal).
    async fn persist(&self, mq: &MessageQueue) -> Result<()>;

    /// Writes every in-memory offset to the store. Tries them all; returns
    /// the first error.
    async fn persist_all(&self) -> Result<()>;

    /// Forgets `mq`: its offset leaves memory without being persisted, and
    /// updates are ignored until it is read from the store again. Persist
    /// first.
    fn remove(&self, mq: &MessageQueue);

    /// Sets the in-memory offset of `mq` whatever it was, a removed queue
    /// included: an offset reset the broker asked for, to be persisted next.
    /// The default is `update(mq, offset, false)`, which a removed queue
    /// ignores; this crate's stores take it.
    fn force(&self, mq: &MessageQueue, offset: i64) -> bool {
        self.update(mq, offset, false)
    }

    /// A copy of the in-memory offsets.
    fn snapshot(&self) -> BTreeMap<MessageQueue, i64>;
}
