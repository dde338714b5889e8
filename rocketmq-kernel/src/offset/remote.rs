//! [`RemoteOffsetStore`]: the broker keeps the group's offsets (clustering).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use rocketmq_model::MessageQueue;

use super::table::OffsetTable;
use super::{OffsetStore, ReadOffsetType};
use crate::error::Result;

/// How many queues `persist_all` writes at once.
const PERSIST_CONCURRENCY: usize = 16;

/// The broker calls the remote offset store needs. The client implements it
/// over the typed broker API; tests use a fake.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// use async_trait::async_trait;
/// use rocketmq_kernel::offset::{OffsetRemote, OffsetStore, ReadOffsetType, RemoteOffsetStore};
/// use rocketmq_kernel::Result;
/// use rocketmq_model::MessageQueue;
///
/// /// A broker in memory.
/// #[derive(Default)]
/// struct FakeBroker(Mutex<HashMap<(String, MessageQueue), i64>>);
///
/// #[async_trait]
/// impl OffsetRemote for FakeBroker {
///     async fn query_offset(&self, group: &str, mq: &MessageQueue) -> Result<Option<i64>> {
///         Ok(self.0.lock().unwrap().get(&(group.to_string(), mq.clone())).copied())
///     }
///
///     async fn update_offset(&self, group: &str, mq: &MessageQueue, offset: i64, _oneway: bool) -> Result<()> {
///         self.0.lock().unwrap().insert((group.to_string(), mq.clone()), offset);
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let broker = Arc::new(FakeBroker::default());
/// let mq = MessageQueue::new("orders", "broker-a", 0);
/// let store = RemoteOffsetStore::new("group", broker.clone());
/// assert_eq!(store.read(&mq, ReadOffsetType::Store).await?, None); // QUERY_NOT_FOUND
/// store.update(&mq, 17, true);
/// store.persist_all().await?;
/// let restarted = RemoteOffsetStore::new("group", broker);
/// assert_eq!(restarted.read(&mq, ReadOffsetType::MemoryThenStore).await?, Some(17));
/// # Ok::<(), rocketmq_kernel::KernelError>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait OffsetRemote: Send + Sync {
    /// QUERY_CONSUMER_OFFSET to the master of mq's broker; Ok(None) on QUERY_NOT_FOUND.
    async fn query_offset(&self, group: &str, mq: &MessageQueue) -> Result<Option<i64>>;

    /// UPDATE_CONSUMER_OFFSET to the master of mq's broker (oneway when `oneway`).
    async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
        oneway: bool,
    ) -> Result<()>;
}

/// The offsets of a clustering consumer group: updated in memory, persisted
/// to the broker that holds each queue (periodically, when a queue is
/// dropped, and at shutdown — the caller schedules those), read from it when
/// a queue is assigned. QUERY_NOT_FOUND means "no offset" (`None`), never 0.
///
/// Persisting is oneway by default, as in Java (the offset is re-sent every
/// period anyway); [`RemoteOffsetStore::oneway`]`(false)` waits for each
/// broker's answer, e.g. for the final persist at shutdown.
pub struct RemoteOffsetStore {
    group: String,
    remote: Arc<dyn OffsetRemote>,
    table: OffsetTable,
    oneway: bool,
    /// Serialises persists (held across the broker calls, intended), so a
    /// periodic `persist_all` in flight cannot overwrite a later `persist`
    /// (the one before a removal) with an older offset.
    persisting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RemoteOffsetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOffsetStore")
            .field("group", &self.group)
            .field("oneway", &self.oneway)
            .finish_non_exhaustive()
    }
}

impl RemoteOffsetStore {
    /// The offsets of `group`, persisted through `remote`.
    pub fn new(group: impl Into<String>, remote: Arc<dyn OffsetRemote>) -> Self {
        RemoteOffsetStore {
            group: group.into(),
            remote,
            table: OffsetTable::default(),
            oneway: true,
            persisting: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether persisting sends UPDATE_CONSUMER_OFFSET oneway (default) or
    /// waits for the broker's answer.
    pub fn oneway(mut self, oneway: bool) -> Self {
        self.oneway = oneway;
        self
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    async fn send(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        self.remote
            .update_offset(&self.group, mq, offset, self.oneway)
            .await
    }
}

#[async_trait]
impl OffsetStore for RemoteOffsetStore {
    async fn load(&self) -> Result<()> {
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
        let stored = self.remote.query_offset(&self.group, mq).await?;
        self.table.restore(mq, stored, mark);
        Ok(stored)
    }

    async fn persist(&self, mq: &MessageQueue) -> Result<()> {
        let _persisting = self.persisting.lock().await;
        // A failure is the caller's to report: each says what the offset
        // was for (a removed queue, a reset, a correction, a user's commit).
        match self.table.get(mq) {
            Some(offset) => self.send(mq, offset).await,
            None => Ok(()),
        }
    }

    async fn persist_all(&self) -> Result<()> {
        let _persisting = self.persisting.lock().await;
        let queues: Vec<MessageQueue> = self.table.snapshot().into_keys().collect();
        let mut results = futures::stream::iter(queues)
            .map(|mq| async move {
                // The offset as of the send; a queue removed meanwhile is skipped.
                let Some(offset) = self.table.get(&mq) else {
                    return Ok(());
                };
                let sent = self.send(&mq, offset).await;
                // Per queue at debug only: the caller reports the round once
                // (a broker that is down fails every one of its queues, every
                // round; a line per queue was hundreds of lines a minute).
                if let Err(err) = &sent {
                    tracing::debug!(group = %self.group, %mq, offset, error = %err, "persisting the consume offset failed");
                }
                sent
            })
            .buffer_unordered(PERSIST_CONCURRENCY);
        let mut first_error = None;
        let mut failed = 0usize;
        while let Some(result) = results.next().await {
            if let Err(err) = result {
                failed += 1;
                first_error.get_or_insert(err);
            }
        }
        if failed > 0 {
            tracing::debug!(group = %self.group, failed, "persisting consume offsets failed");
        }
        first_error.map_or(Ok(()), Err)
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
