//! The offset stores: offsets never go backwards except by a forced update,
//! "not found" is `None`, a dropped queue never commits, and the local file
//! survives a crash at any point of a write.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_kernel::offset::{
    LocalFileOffsetStore, MemoryOffsetStore, OffsetRemote, OffsetStore, ReadOffsetType,
    RemoteOffsetStore,
};
use rocketmq_kernel::{KernelError, Result};
use rocketmq_model::MessageQueue;
use tokio::sync::Notify;

fn mq(id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", id)
}

/// A broker that keeps offsets and records every update it is sent.
#[derive(Default)]
struct FakeBroker {
    offsets: Mutex<HashMap<MessageQueue, i64>>,
    updates: Mutex<Vec<(MessageQueue, i64, bool)>>,
    failing: Mutex<HashSet<MessageQueue>>,
    queries: AtomicUsize,
    /// When set, the next update waits for this notification.
    hold_next_update: Mutex<Option<Arc<Notify>>>,
    /// When set, the next query waits for this notification.
    hold_next_query: Mutex<Option<Arc<Notify>>>,
}

impl FakeBroker {
    fn with(offsets: &[(MessageQueue, i64)]) -> Arc<Self> {
        let broker = FakeBroker::default();
        broker
            .offsets
            .lock()
            .unwrap()
            .extend(offsets.iter().cloned());
        Arc::new(broker)
    }

    fn fail(&self, mq: &MessageQueue) {
        self.failing.lock().unwrap().insert(mq.clone());
    }

    fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }

    fn updates(&self) -> Vec<(MessageQueue, i64, bool)> {
        let mut updates = self.updates.lock().unwrap().clone();
        updates.sort();
        updates
    }

    fn check(&self, mq: &MessageQueue) -> Result<()> {
        if self.failing.lock().unwrap().contains(mq) {
            return Err(KernelError::NoBrokerAddress {
                broker_name: mq.broker_name.clone(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl OffsetRemote for FakeBroker {
    async fn query_offset(&self, group: &str, mq: &MessageQueue) -> Result<Option<i64>> {
        assert_eq!(group, "G");
        self.queries.fetch_add(1, Ordering::SeqCst);
        let hold = self.hold_next_query.lock().unwrap().take();
        if let Some(hold) = hold {
            hold.notified().await;
        }
        self.check(mq)?;
        Ok(self.offsets.lock().unwrap().get(mq).copied())
    }

    async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
        oneway: bool,
    ) -> Result<()> {
        assert_eq!(group, "G");
        let hold = self.hold_next_update.lock().unwrap().take();
        if let Some(hold) = hold {
            hold.notified().await;
        }
        self.check(mq)?;
        self.updates
            .lock()
            .unwrap()
            .push((mq.clone(), offset, oneway));
        self.offsets.lock().unwrap().insert(mq.clone(), offset);
        Ok(())
    }
}

fn remote_store(broker: &Arc<FakeBroker>) -> RemoteOffsetStore {
    RemoteOffsetStore::new("G", broker.clone())
}

#[tokio::test]
async fn remote_reads_memory_then_store_and_caches() {
    let broker = FakeBroker::with(&[(mq(0), 100)]);
    let store = remote_store(&broker);
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        None
    );
    assert_eq!(broker.queries.load(Ordering::SeqCst), 0);
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        Some(100)
    );
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        Some(100)
    );
    assert_eq!(broker.queries.load(Ordering::SeqCst), 1);
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        Some(100)
    );
    assert_eq!(store.snapshot(), BTreeMap::from([(mq(0), 100)]));
}

#[tokio::test]
async fn remote_not_found_is_none_never_zero() {
    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker);
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Store).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        None
    );
    assert!(store.snapshot().is_empty());
    // Nothing in memory: persisting sends nothing (and never a 0).
    store.persist(&mq(0)).await.unwrap();
    store.persist_all().await.unwrap();
    assert!(broker.updates().is_empty());
}

#[tokio::test]
async fn remote_store_read_replaces_memory() {
    let broker = FakeBroker::with(&[(mq(0), 50)]);
    let store = remote_store(&broker);
    assert!(store.update(&mq(0), 80, true));
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Store).await.unwrap(),
        Some(50)
    );
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        Some(50)
    );
}

/// A seek (or an offset reset) while the queue's offset is being read from
/// the broker: the answer, older than the seek, must not replace it.
#[tokio::test]
async fn a_store_read_does_not_undo_an_offset_forced_while_it_ran() {
    let broker = FakeBroker::with(&[(mq(0), 3)]);
    let store = Arc::new(remote_store(&broker));
    let hold = Arc::new(Notify::new());
    *broker.hold_next_query.lock().unwrap() = Some(Arc::clone(&hold));
    let read = tokio::spawn({
        let store = Arc::clone(&store);
        async move { store.read(&mq(0), ReadOffsetType::Store).await }
    });
    while broker.queries.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert!(store.force(&mq(0), 7));
    hold.notify_one();
    assert_eq!(
        read.await.unwrap().unwrap(),
        Some(3),
        "what the broker holds"
    );
    assert_eq!(store.snapshot().get(&mq(0)), Some(&7), "the seek stands");
}

/// A persist of the local file given up on by its caller (a timeout, a
/// cancelled rebalance round) must not let the next one write the same
/// temporary file while its own write still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_file_persists_given_up_on_do_not_overlap_the_next() {
    let dir = TempDir::new("given-up");
    let store = file_store(&dir);
    for round in 0..100_i64 {
        for q in 0..64 {
            // Long and short offsets in turn, so that two writes differ.
            let offset = if round % 2 == 0 { 1 << 40 } else { round };
            store.update(&mq(q), offset, false);
        }
        let _ = tokio::time::timeout(Duration::ZERO, store.persist_all()).await;
        for q in 0..64 {
            store.update(&mq(q), round + 1, false);
        }
        store.persist_all().await.unwrap();
    }
    let _ = std::fs::remove_file(bak(&store));
    let reloaded = LocalFileOffsetStore::at_path(store.path());
    reloaded.load().await.unwrap();
    assert_eq!(reloaded.snapshot().len(), 64);
    assert!(reloaded.snapshot().values().all(|offset| *offset == 100));
}

#[tokio::test]
async fn offsets_never_go_backwards_unless_forced() {
    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker);
    assert!(store.update(&mq(0), 10, true));
    assert!(store.update(&mq(0), 12, true));
    assert!(!store.update(&mq(0), 11, true));
    assert!(!store.update(&mq(0), -1, false));
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        Some(12)
    );
    assert!(store.update(&mq(0), 3, false));
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        Some(3)
    );
}

#[tokio::test]
async fn remote_persists_oneway_by_default_and_two_way_when_asked() {
    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker);
    store.update(&mq(0), 7, true);
    store.update(&mq(1), 9, true);
    store.persist(&mq(0)).await.unwrap();
    assert_eq!(broker.updates(), [(mq(0), 7, true)]);
    store.persist_all().await.unwrap();
    assert_eq!(
        broker.updates(),
        [(mq(0), 7, true), (mq(0), 7, true), (mq(1), 9, true)]
    );

    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker).oneway(false);
    store.update(&mq(2), 1, true);
    store.persist_all().await.unwrap();
    assert_eq!(broker.updates(), [(mq(2), 1, false)]);
}

#[tokio::test]
async fn a_dropped_queue_never_commits_until_it_is_added_again() {
    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker);
    store.update(&mq(0), 10, true);
    store.update(&mq(1), 20, true);
    // Rebalance drops mq(0): persist, then remove.
    store.persist(&mq(0)).await.unwrap();
    store.remove(&mq(0));
    // A consume batch of the dropped queue finishes late.
    assert!(!store.update(&mq(0), 15, true));
    assert!(!store.update(&mq(0), 15, false));
    store.persist(&mq(0)).await.unwrap();
    store.persist_all().await.unwrap();
    assert_eq!(
        broker.updates(),
        [(mq(0), 10, true), (mq(1), 20, true)],
        "the dropped queue was committed after its removal"
    );
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        None
    );
    // Assigned again: the start offset comes from the broker, updates resume.
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        Some(10)
    );
    assert!(store.update(&mq(0), 11, true));
    store.persist(&mq(0)).await.unwrap();
    assert_eq!(broker.offsets.lock().unwrap()[&mq(0)], 11);
}

#[tokio::test]
async fn a_periodic_persist_in_flight_never_overwrites_the_persist_before_a_drop() {
    let broker = FakeBroker::with(&[]);
    let store = Arc::new(remote_store(&broker).oneway(false));
    store.update(&mq(0), 10, true);
    let hold = Arc::new(Notify::new());
    *broker.hold_next_update.lock().unwrap() = Some(hold.clone());
    // The periodic persist sends 10 and stalls on the way.
    let periodic = tokio::spawn({
        let store = store.clone();
        async move { store.persist_all().await }
    });
    while broker.hold_next_update.lock().unwrap().is_some() {
        tokio::task::yield_now().await;
    }
    // Meanwhile 12 is consumed and the queue is dropped: persist, remove.
    store.update(&mq(0), 12, true);
    let drop_queue = tokio::spawn({
        let store = store.clone();
        async move {
            store.persist(&mq(0)).await.unwrap();
            store.remove(&mq(0));
        }
    });
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    hold.notify_one();
    periodic.await.unwrap().unwrap();
    drop_queue.await.unwrap();
    assert_eq!(broker.offsets.lock().unwrap()[&mq(0)], 12);
    assert_eq!(broker.updates(), [(mq(0), 10, false), (mq(0), 12, false)]);
}

#[tokio::test]
async fn a_failed_store_read_does_not_re_add_a_dropped_queue() {
    let broker = FakeBroker::with(&[(mq(0), 5)]);
    let store = remote_store(&broker);
    store.update(&mq(0), 6, true);
    store.remove(&mq(0));
    broker.fail(&mq(0));
    assert!(store.read(&mq(0), ReadOffsetType::Store).await.is_err());
    assert!(!store.update(&mq(0), 7, true));
    broker.heal();
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Store).await.unwrap(),
        Some(5)
    );
    assert!(store.update(&mq(0), 7, true));
}

#[tokio::test]
async fn persist_all_tries_every_queue_and_reports_a_failure() {
    let broker = FakeBroker::with(&[]);
    let store = remote_store(&broker);
    for id in 0..40 {
        store.update(&mq(id), i64::from(id) + 1, true);
    }
    broker.fail(&mq(3));
    assert!(store.persist_all().await.is_err());
    let sent: Vec<i32> = broker
        .updates()
        .iter()
        .map(|(q, _, _)| q.queue_id)
        .collect();
    let expected: Vec<i32> = (0..40).filter(|id| *id != 3).collect();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort_unstable();
    assert_eq!(sent_sorted, expected);
}

#[tokio::test]
async fn memory_store_resumes_a_re_added_queue_from_its_persisted_offset() {
    let store = MemoryOffsetStore::new();
    store.update(&mq(0), 10, true);
    store.persist(&mq(0)).await.unwrap();
    store.update(&mq(0), 12, true);
    store.remove(&mq(0));
    assert!(!store.update(&mq(0), 13, true));
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Memory).await.unwrap(),
        None
    );
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Store).await.unwrap(),
        Some(10)
    );
    assert!(store.update(&mq(0), 13, true));
    assert_eq!(
        store
            .read(&mq(1), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        None
    );
    store.persist_all().await.unwrap();
    store.remove(&mq(0));
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        Some(13)
    );
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "rocketmq-kernel-offset-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_store(dir: &TempDir) -> LocalFileOffsetStore {
    LocalFileOffsetStore::new(&dir.0, "10.0.0.1@1#0", "G")
}

fn bak(store: &LocalFileOffsetStore) -> PathBuf {
    PathBuf::from(format!("{}.bak", store.path().display()))
}

#[tokio::test]
async fn local_file_round_trips_in_javas_layout_and_shape() {
    let dir = TempDir::new("round-trip");
    let store = file_store(&dir);
    assert_eq!(
        store.path(),
        dir.0.join("10.0.0.1@1#0").join("G").join("offsets.json")
    );
    store.load().await.unwrap();
    assert!(store.snapshot().is_empty());
    assert_eq!(
        store.read(&mq(0), ReadOffsetType::Store).await.unwrap(),
        None
    );
    store.update(&mq(0), 5, true);
    store.update(&mq(1), 6, true);
    store.persist_all().await.unwrap();
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert_eq!(
        text,
        r#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5,{"brokerName":"broker-a","queueId":1,"topic":"T"}:6}}"#
    );
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(
        reopened.snapshot(),
        BTreeMap::from([(mq(0), 5), (mq(1), 6)])
    );
}

#[tokio::test]
async fn local_file_keeps_the_previous_file_as_backup() {
    let dir = TempDir::new("backup");
    let store = file_store(&dir);
    store.update(&mq(0), 1, true);
    store.persist(&mq(0)).await.unwrap();
    assert!(!bak(&store).exists());
    store.update(&mq(0), 2, true);
    store.persist(&mq(0)).await.unwrap();
    let backup = std::fs::read_to_string(bak(&store)).unwrap();
    assert!(backup.ends_with(":1}}"), "{backup}");
    assert!(
        std::fs::read_to_string(store.path())
            .unwrap()
            .ends_with(":2}}")
    );
}

#[tokio::test]
async fn local_file_falls_back_to_the_backup() {
    let dir = TempDir::new("fallback");
    let store = file_store(&dir);
    store.update(&mq(0), 1, true);
    store.persist_all().await.unwrap();
    store.update(&mq(0), 2, true);
    store.persist_all().await.unwrap();

    // Crash between the two renames: the main file is gone.
    std::fs::remove_file(store.path()).unwrap();
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(reopened.snapshot(), BTreeMap::from([(mq(0), 1)]));

    // A corrupt (half-written by someone else) main file.
    std::fs::write(store.path(), b"{\"offsetTable\":{{\"brokerName\"").unwrap();
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(reopened.snapshot(), BTreeMap::from([(mq(0), 1)]));
    // The next write replaces the corrupt file but keeps the good backup.
    reopened.update(&mq(0), 3, true);
    reopened.persist_all().await.unwrap();
    assert!(
        std::fs::read_to_string(bak(&store))
            .unwrap()
            .ends_with(":1}}")
    );
    assert!(
        std::fs::read_to_string(store.path())
            .unwrap()
            .ends_with(":3}}")
    );
    // Then the backup follows the good file again.
    reopened.update(&mq(0), 4, true);
    reopened.persist_all().await.unwrap();
    assert!(
        std::fs::read_to_string(bak(&store))
            .unwrap()
            .ends_with(":3}}")
    );
}

#[tokio::test]
async fn local_file_ignores_a_leftover_temp_file_and_empty_main() {
    let dir = TempDir::new("leftover");
    let store = file_store(&dir);
    store.update(&mq(0), 8, true);
    store.persist_all().await.unwrap();
    store.update(&mq(0), 9, true);
    store.persist_all().await.unwrap();
    // Crash while writing the temp file.
    let temp = PathBuf::from(format!("{}.tmp", store.path().display()));
    std::fs::write(&temp, b"{\"offsetTa").unwrap();
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(reopened.snapshot(), BTreeMap::from([(mq(0), 9)]));
    // An empty main file reads the backup, as Java does.
    std::fs::write(store.path(), b"").unwrap();
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(reopened.snapshot(), BTreeMap::from([(mq(0), 8)]));
}

#[tokio::test]
async fn local_file_with_corrupt_backup_and_no_main_is_an_error() {
    let dir = TempDir::new("corrupt-backup");
    let store = file_store(&dir);
    std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
    std::fs::write(bak(&store), b"not json").unwrap();
    assert!(store.load().await.is_err());
}

#[tokio::test]
async fn local_file_reads_javas_pretty_file() {
    let dir = TempDir::new("java-pretty");
    let store = file_store(&dir);
    std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
    let java = "{\n\t\"offsetTable\":{{\n\t\t\t\"brokerName\":\"broker-a\",\n\t\t\t\"queueId\":2,\n\t\t\t\"topic\":\"T\"\n\t\t}:33\n\t}\n}";
    std::fs::write(store.path(), java).unwrap();
    store.load().await.unwrap();
    assert_eq!(store.snapshot(), BTreeMap::from([(mq(2), 33)]));
}

#[tokio::test]
async fn local_file_keeps_removed_queues_and_re_adds_them_from_the_file() {
    let dir = TempDir::new("removed");
    let store = file_store(&dir);
    store.update(&mq(0), 10, true);
    store.update(&mq(1), 20, true);
    store.persist_all().await.unwrap();
    store.update(&mq(0), 11, true);
    store.remove(&mq(0));
    assert!(!store.update(&mq(0), 12, true));
    store.update(&mq(1), 21, true);
    store.persist_all().await.unwrap();
    let reopened = file_store(&dir);
    reopened.load().await.unwrap();
    assert_eq!(
        reopened.snapshot(),
        BTreeMap::from([(mq(0), 10), (mq(1), 21)])
    );
    assert_eq!(
        store
            .read(&mq(0), ReadOffsetType::MemoryThenStore)
            .await
            .unwrap(),
        Some(10)
    );
    assert!(store.update(&mq(0), 12, true));
}
