//! The broker's store: a commit log of encoded records and one consume queue
//! per (topic, queue id). Every stored message gets a queue offset and a
//! commit-log offset (the sum of the sizes of the records before it, as on a
//! real broker); each queue has a watch channel that long polls wait on.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use rocketmq_model::body::java_string_hash;
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, encode_record};
use tokio::sync::watch;

/// A message to store: everything but the offsets and the store time.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub(crate) message: Message,
    pub(crate) queue_id: i32,
    pub(crate) sys_flag: i32,
    pub(crate) born_timestamp: i64,
    pub(crate) born_host: SocketAddr,
    pub(crate) reconsume_times: i32,
    pub(crate) prepared_transaction_offset: i64,
}

/// One stored message: its fields and its encoded record.
#[derive(Debug)]
pub(crate) struct StoredMessage {
    pub(crate) ext: MessageExt,
    pub(crate) record: Bytes,
    /// What the consume queue keeps for tag filtering: the tag's Java hash
    /// code, 0 without a tag.
    pub(crate) tags_code: i64,
}

impl StoredMessage {
    /// Its offset message id (§5.6).
    pub(crate) fn offset_msg_id(&self) -> String {
        self.ext.offset_msg_id()
    }
}

/// How a read of a queue went (Java's `GetMessageStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadStatus {
    Found,
    NoMatchedMessage,
    NoMessageInQueue,
    OffsetTooSmall,
    OffsetOverflowOne,
    OffsetOverflowBadly,
    /// Never a read's: the queue's offset was reset server-side, and the
    /// pull is told where to continue (see `server_reset`).
    OffsetReset,
}

impl ReadStatus {
    /// Java's name of the status, which a pull answer carries as its remark
    /// (`PullMessageProcessor.composeResponseHeader`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReadStatus::Found => "FOUND",
            ReadStatus::NoMatchedMessage => "NO_MATCHED_MESSAGE",
            ReadStatus::NoMessageInQueue => "NO_MESSAGE_IN_QUEUE",
            ReadStatus::OffsetTooSmall => "OFFSET_TOO_SMALL",
            ReadStatus::OffsetOverflowOne => "OFFSET_OVERFLOW_ONE",
            ReadStatus::OffsetOverflowBadly => "OFFSET_OVERFLOW_BADLY",
            ReadStatus::OffsetReset => "OFFSET_RESET",
        }
    }
}

/// The result of reading a queue from an offset.
#[derive(Debug)]
pub(crate) struct ReadResult {
    pub(crate) status: ReadStatus,
    pub(crate) next_begin_offset: i64,
    pub(crate) min_offset: i64,
    pub(crate) max_offset: i64,
    pub(crate) messages: Vec<Arc<StoredMessage>>,
}

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    pub(crate) max_count: usize,
    pub(crate) max_bytes: usize,
    /// How many queue entries the read may look at for matches.
    pub(crate) max_scan: usize,
}

#[derive(Debug, Default)]
struct ConsumeQueue {
    entries: Vec<Arc<StoredMessage>>,
    arrivals: Option<watch::Sender<i64>>,
}

impl ConsumeQueue {
    fn max_offset(&self) -> i64 {
        i64::try_from(self.entries.len()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Default)]
struct Tables {
    next_commit_log_offset: i64,
    commit_log: BTreeMap<i64, Arc<StoredMessage>>,
    queues: HashMap<(String, i32), ConsumeQueue>,
    /// `(topic, key)` → commit-log offsets, for KEYS and UNIQ_KEY lookups.
    index: HashMap<(String, String), Vec<i64>>,
    index_last_update: (i64, i64),
}

/// The store. Survives broker restarts, as a real broker's disk does.
#[derive(Debug)]
pub(crate) struct Store {
    store_host: SocketAddr,
    tables: Mutex<Tables>,
}

/// Milliseconds since the Unix epoch, the store's timestamps.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Store {
    pub(crate) fn new(store_host: SocketAddr) -> Self {
        Store {
            store_host,
            tables: Mutex::default(),
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The address written into records and offset message ids.
    pub(crate) fn store_host(&self) -> SocketAddr {
        self.store_host
    }

    /// Appends messages to one queue with consecutive offsets, wakes the long
    /// polls of that queue, and returns what was stored.
    pub(crate) fn put_all(
        &self,
        messages: Vec<NewMessage>,
    ) -> rocketmq_model::Result<Vec<Arc<StoredMessage>>> {
        let mut tables = self.tables();
        let mut stored = Vec::with_capacity(messages.len());
        for message in messages {
            stored.push(self.put_locked(&mut tables, message)?);
        }
        Ok(stored)
    }

    /// Appends one message; see [`put_all`](Self::put_all).
    pub(crate) fn put(&self, message: NewMessage) -> rocketmq_model::Result<Arc<StoredMessage>> {
        let mut tables = self.tables();
        self.put_locked(&mut tables, message)
    }

    fn put_locked(
        &self,
        tables: &mut Tables,
        new: NewMessage,
    ) -> rocketmq_model::Result<Arc<StoredMessage>> {
        let key = (new.message.topic.clone(), new.queue_id);
        let queue = tables.queues.entry(key).or_default();
        let mut ext = MessageExt {
            queue_id: new.queue_id,
            queue_offset: queue.max_offset(),
            commit_log_offset: tables.next_commit_log_offset,
            sys_flag: new.sys_flag,
            born_timestamp: new.born_timestamp,
            born_host: new.born_host,
            store_timestamp: now_millis(),
            store_host: self.store_host,
            reconsume_times: new.reconsume_times,
            prepared_transaction_offset: new.prepared_transaction_offset,
            message: new.message,
            ..MessageExt::default()
        };
        let mut record = BytesMut::new();
        let size = encode_record(&ext, &mut record)?;
        ext.store_size = i32::try_from(size).unwrap_or(i32::MAX);
        ext.body_crc = crc_of(&record);
        let tags_code = ext
            .message
            .tags()
            .map_or(0, |tag| i64::from(java_string_hash(tag)));
        let stored = Arc::new(StoredMessage {
            ext,
            record: record.freeze(),
            tags_code,
        });
        let offset = stored.ext.commit_log_offset;
        queue.entries.push(Arc::clone(&stored));
        if let Some(arrivals) = &queue.arrivals {
            arrivals.send_replace(queue.max_offset());
        }
        tables.next_commit_log_offset += i64::from(stored.ext.store_size);
        tables.commit_log.insert(offset, Arc::clone(&stored));
        index(tables, &stored);
        Ok(stored)
    }

    /// The message at a commit-log offset.
    pub(crate) fn by_commit_log_offset(&self, offset: i64) -> Option<Arc<StoredMessage>> {
        self.tables().commit_log.get(&offset).cloned()
    }

    /// The next offset to be written in a queue (0 for an unknown queue).
    pub(crate) fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.tables()
            .queues
            .get(&(topic.to_owned(), queue_id))
            .map_or(0, ConsumeQueue::max_offset)
    }

    /// The lowest offset still stored: always 0, nothing is ever deleted.
    pub(crate) fn min_offset(&self, _topic: &str, _queue_id: i32) -> i64 {
        0
    }

    /// Every message of a queue, in offset order.
    pub(crate) fn messages(&self, topic: &str, queue_id: i32) -> Vec<Arc<StoredMessage>> {
        self.tables()
            .queues
            .get(&(topic.to_owned(), queue_id))
            .map(|queue| queue.entries.clone())
            .unwrap_or_default()
    }

    /// The message at `offset` of a queue, if there is one.
    pub(crate) fn message_at(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
    ) -> Option<Arc<StoredMessage>> {
        let index = usize::try_from(offset).ok()?;
        let tables = self.tables();
        let queue = tables.queues.get(&(topic.to_owned(), queue_id))?;
        queue.entries.get(index).cloned()
    }

    /// Overwrites the MAGICCODE of the record at `offset` of a queue, so that
    /// no client can decode it (as disk corruption would), keeping its length
    /// so the records after it stay where they are. False when there is no
    /// such message.
    pub(crate) fn corrupt(&self, topic: &str, queue_id: i32, offset: i64) -> bool {
        let mut tables = self.tables();
        let Some(entry) = tables
            .queues
            .get_mut(&(topic.to_owned(), queue_id))
            .and_then(|queue| queue.entries.get_mut(usize::try_from(offset).ok()?))
        else {
            return false;
        };
        let mut record = BytesMut::from(&entry.record[..]);
        // TOTALSIZE (4 bytes), then MAGICCODE (4 bytes).
        record[4..8].copy_from_slice(&0x0BAD_C0DE_i32.to_be_bytes());
        let corrupt = Arc::new(StoredMessage {
            ext: entry.ext.clone(),
            record: record.freeze(),
            tags_code: entry.tags_code,
        });
        *entry = Arc::clone(&corrupt);
        tables
            .commit_log
            .insert(corrupt.ext.commit_log_offset, corrupt);
        true
    }

    /// The store time of the message at `offset` of a queue, if there is one.
    pub(crate) fn store_time_at(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let index = usize::try_from(offset).ok()?;
        let tables = self.tables();
        let queue = tables.queues.get(&(topic.to_owned(), queue_id))?;
        queue.entries.get(index).map(|msg| msg.ext.store_timestamp)
    }

    /// The store time of the first message of a queue, -1 when it is empty.
    pub(crate) fn earliest_store_time(&self, topic: &str, queue_id: i32) -> i64 {
        self.tables()
            .queues
            .get(&(topic.to_owned(), queue_id))
            .and_then(|queue| queue.entries.first())
            .map_or(-1, |first| first.ext.store_timestamp)
    }

    /// A receiver that changes whenever a message is stored in the queue; its
    /// value is the queue's max offset.
    pub(crate) fn arrivals(&self, topic: &str, queue_id: i32) -> watch::Receiver<i64> {
        let mut tables = self.tables();
        let queue = tables
            .queues
            .entry((topic.to_owned(), queue_id))
            .or_default();
        let max = queue.max_offset();
        queue
            .arrivals
            .get_or_insert_with(|| watch::channel(max).0)
            .subscribe()
    }

    /// Reads up to `limits` messages matching `filter` from `offset`, with the
    /// status, offsets and next-offset rules of Java's
    /// `DefaultMessageStore.getMessage` on a master.
    pub(crate) fn read(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        limits: ReadLimits,
        filter: impl Fn(&StoredMessage) -> bool,
    ) -> ReadResult {
        let tables = self.tables();
        let entries: &[Arc<StoredMessage>] = tables
            .queues
            .get(&(topic.to_owned(), queue_id))
            .map_or(&[], |queue| &queue.entries);
        let min_offset = 0;
        let max_offset = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        let (status, next_begin_offset) = if max_offset == 0 {
            (ReadStatus::NoMessageInQueue, 0)
        } else if offset < min_offset {
            (ReadStatus::OffsetTooSmall, min_offset)
        } else if offset == max_offset {
            (ReadStatus::OffsetOverflowOne, offset)
        } else if offset > max_offset {
            // Java 4.9.4 and later (`DefaultMessageStore.getMessage`): the
            // end of the queue, not its start, which would consume it all
            // again.
            (ReadStatus::OffsetOverflowBadly, max_offset)
        } else {
            let (messages, scanned) = scan(entries, offset, limits, &filter);
            let status = if messages.is_empty() {
                ReadStatus::NoMatchedMessage
            } else {
                ReadStatus::Found
            };
            return ReadResult {
                status,
                next_begin_offset: offset + scanned,
                min_offset,
                max_offset,
                messages,
            };
        };
        ReadResult {
            status,
            next_begin_offset,
            min_offset,
            max_offset,
            messages: Vec::new(),
        }
    }

    /// Whether any message from `offset` on matches `filter` (a held pull's
    /// wake-up test).
    pub(crate) fn has_match_from(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        filter: impl Fn(&StoredMessage) -> bool,
    ) -> bool {
        let tables = self.tables();
        let Some(queue) = tables.queues.get(&(topic.to_owned(), queue_id)) else {
            return false;
        };
        let start = usize::try_from(offset.max(0)).unwrap_or(usize::MAX);
        queue.entries.iter().skip(start).any(|m| filter(m))
    }

    /// The queue offset for a store time: for `upper`, the last message
    /// stored at or before `timestamp`, else the first stored at or after it.
    /// An empty queue answers 0; a time past every message answers the max
    /// offset, one before every message the min offset.
    pub(crate) fn search_offset(
        &self,
        topic: &str,
        queue_id: i32,
        timestamp: i64,
        upper: bool,
    ) -> i64 {
        let tables = self.tables();
        let Some(queue) = tables.queues.get(&(topic.to_owned(), queue_id)) else {
            return 0;
        };
        let times: Vec<i64> = queue
            .entries
            .iter()
            .map(|m| m.ext.store_timestamp)
            .collect();
        let position = if upper {
            times.partition_point(|&t| t <= timestamp).saturating_sub(1)
        } else {
            times.partition_point(|&t| t < timestamp)
        };
        i64::try_from(position).unwrap_or(i64::MAX)
    }

    /// Messages of `topic` indexed under `key` (a KEYS entry or a UNIQ_KEY)
    /// stored within `[begin, end]`: the latest `max` of them, in commit-log
    /// order. Java's index walks a key's entries from the newest back and
    /// stops at `max` (`IndexFile.selectPhyOffset`), then the store sorts
    /// the offsets (`DefaultMessageStore.queryMessage`).
    pub(crate) fn query(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> (Vec<Arc<StoredMessage>>, (i64, i64)) {
        let tables = self.tables();
        let mut found: Vec<_> = tables
            .index
            .get(&(topic.to_owned(), key.to_owned()))
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|offset| tables.commit_log.get(offset))
            .filter(|m| (begin..=end).contains(&m.ext.store_timestamp))
            .take(max)
            .cloned()
            .collect();
        found.reverse();
        (found, tables.index_last_update)
    }
}

/// Scans from `offset`: the matching messages within the limits and how many
/// entries were scanned.
fn scan(
    entries: &[Arc<StoredMessage>],
    offset: i64,
    limits: ReadLimits,
    filter: &impl Fn(&StoredMessage) -> bool,
) -> (Vec<Arc<StoredMessage>>, i64) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let mut found = Vec::new();
    let mut bytes = 0;
    let mut scanned = 0;
    for entry in entries.iter().skip(start).take(limits.max_scan) {
        if !found.is_empty()
            && (found.len() >= limits.max_count || bytes + entry.record.len() > limits.max_bytes)
        {
            break;
        }
        scanned += 1;
        if filter(entry) {
            bytes += entry.record.len();
            found.push(Arc::clone(entry));
        }
    }
    (found, scanned)
}

fn index(tables: &mut Tables, stored: &StoredMessage) {
    let message = &stored.ext.message;
    let offset = stored.ext.commit_log_offset;
    let keys = message
        .keys()
        .map(str::to_owned)
        .chain(message.property(property::UNIQ_KEY).map(str::to_owned));
    for key in keys {
        tables
            .index
            .entry((message.topic.clone(), key))
            .or_default()
            .push(offset);
    }
    tables.index_last_update = (stored.ext.store_timestamp, offset);
}

/// The BODYCRC field of an encoded record.
fn crc_of(record: &[u8]) -> i32 {
    record
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, i32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddrV4};

    use rocketmq_model::decode_records;

    use super::*;

    fn host() -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 10911))
    }

    fn new_message(topic: &str, tag: &str) -> NewMessage {
        NewMessage {
            message: Message::builder(topic).body("b").tags(tag).build().unwrap(),
            queue_id: 1,
            sys_flag: 0,
            born_timestamp: 5,
            born_host: host(),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    const ALL: ReadLimits = ReadLimits {
        max_count: 32,
        max_bytes: 1 << 20,
        max_scan: 800,
    };

    #[test]
    fn offsets_are_consecutive_and_records_decode() {
        let store = Store::new(host());
        let a = store.put(new_message("T", "a")).unwrap();
        let b = store.put(new_message("T", "b")).unwrap();
        assert_eq!((a.ext.queue_offset, b.ext.queue_offset), (0, 1));
        assert_eq!(a.ext.commit_log_offset, 0);
        assert_eq!(b.ext.commit_log_offset, i64::from(a.ext.store_size));
        let decoded = decode_records(b.record.clone()).unwrap();
        assert_eq!(decoded[0].commit_log_offset, b.ext.commit_log_offset);
        assert_eq!(decoded[0].tags(), Some("b"));
        assert!(
            store
                .by_commit_log_offset(b.ext.commit_log_offset)
                .is_some()
        );
        assert_eq!(store.max_offset("T", 1), 2);
    }

    #[test]
    fn read_statuses_follow_java() {
        let store = Store::new(host());
        let read = |offset| store.read("T", 1, offset, ALL, |_| true);
        assert_eq!(read(0).status, ReadStatus::NoMessageInQueue);
        store.put(new_message("T", "a")).unwrap();
        store.put(new_message("T", "b")).unwrap();
        let found = read(0);
        assert_eq!(found.status, ReadStatus::Found);
        assert_eq!((found.messages.len(), found.next_begin_offset), (2, 2));
        assert_eq!(read(2).status, ReadStatus::OffsetOverflowOne);
        let bad = read(9);
        assert_eq!(
            (bad.status, bad.next_begin_offset),
            (ReadStatus::OffsetOverflowBadly, 2)
        );
        assert_eq!(read(-1).status, ReadStatus::OffsetTooSmall);
        let none = store.read("T", 1, 0, ALL, |m| m.tags_code == 0);
        assert_eq!(
            (none.status, none.next_begin_offset),
            (ReadStatus::NoMatchedMessage, 2)
        );
    }

    #[test]
    fn keys_and_uniq_keys_are_indexed() {
        let store = Store::new(host());
        let mut new = new_message("T", "a");
        new.message
            .properties
            .insert(property::KEYS, "k1 k2")
            .unwrap();
        new.message
            .properties
            .insert(property::UNIQ_KEY, "U")
            .unwrap();
        store.put(new).unwrap();
        for key in ["k1", "k2", "U"] {
            assert_eq!(store.query("T", key, 32, 0, i64::MAX).0.len(), 1, "{key}");
        }
        assert!(store.query("T", "k3", 32, 0, i64::MAX).0.is_empty());
        assert!(store.query("T", "k1", 32, 0, 1).0.is_empty());
    }

    /// Java's index answers the newest `max` messages of a key, oldest
    /// first; the oldest ones used to be answered.
    #[test]
    fn a_capped_query_keeps_the_latest_messages_in_offset_order() {
        let store = Store::new(host());
        for i in 0..5 {
            let mut new = new_message("T", "a");
            new.message.body = bytes::Bytes::from(i.to_string());
            new.message.properties.insert(property::KEYS, "k").unwrap();
            store.put(new).unwrap();
        }
        let bodies = |max| {
            let (found, _) = store.query("T", "k", max, 0, i64::MAX);
            (found.iter())
                .map(|m| String::from_utf8_lossy(&m.ext.message.body).into_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(2), ["3", "4"]);
        assert_eq!(bodies(32), ["0", "1", "2", "3", "4"]);
    }

    proptest::proptest! {
        #[test]
        fn reads_return_exactly_the_matching_messages_in_offset_order(
            tags in proptest::collection::vec(0u8..4, 0..60),
            wanted in 0u8..4,
            start in 0i64..70,
        ) {
            let store = Store::new(host());
            let mut previous_end = 0;
            for (i, tag) in tags.iter().enumerate() {
                let mut new = new_message("T", &format!("t{tag}"));
                new.message.body = bytes::Bytes::from(i.to_string());
                let stored = store.put(new).unwrap();
                proptest::prop_assert_eq!(stored.ext.commit_log_offset, previous_end);
                previous_end += i64::from(stored.ext.store_size);
                let decoded = decode_records(stored.record.clone()).unwrap();
                proptest::prop_assert_eq!(&decoded[0], &stored.ext);
            }
            let code = i64::from(java_string_hash(&format!("t{wanted}")));
            let result = store.read("T", 1, start, ALL, |m| m.tags_code == code);
            let len = tags.len() as i64;
            let expected: Vec<String> = (start..len)
                .filter(|&i| tags[i as usize] == wanted)
                .take(ALL.max_count)
                .map(|i| i.to_string())
                .collect();
            let got: Vec<String> = result
                .messages
                .iter()
                .map(|m| String::from_utf8_lossy(&m.ext.message.body).into_owned())
                .collect();
            proptest::prop_assert_eq!(&got, &expected);
            if start < len {
                proptest::prop_assert!(result.next_begin_offset > start);
                proptest::prop_assert!(result.next_begin_offset <= len);
                let status = if expected.is_empty() { ReadStatus::NoMatchedMessage } else { ReadStatus::Found };
                proptest::prop_assert_eq!(result.status, status);
            } else {
                proptest::prop_assert!(result.messages.is_empty());
            }
        }
    }
}
