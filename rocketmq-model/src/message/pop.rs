//! Pop consumption's bookkeeping strings (Java's `ExtraInfoUtil`).
//!
//! A popped message's receipt handle (its `POP_CK` property, a request's
//! `extraInfo`) is eight space-separated fields: where the pop began in the
//! message's queue, when it was made, its invisible time, its revive queue,
//! which topic it came from, the broker, the queue and the message's offset.
//! The client writes it from the POP_MESSAGE answer's `startOffsetInfo` and
//! `msgOffsetInfo` (per queue: `kind queueId value`, `;`-separated); a broker
//! writes it itself on a redelivered message. ACK_MESSAGE and
//! CHANGE_MESSAGE_INVISIBLETIME send it back.

use std::collections::HashMap;
use std::fmt;

use crate::error::{ModelError, Result};
use crate::resource::{RETRY_TOPIC_PREFIX, pop_retry_topic_v1, pop_retry_topic_v2};

/// The revive queue of an orderly pop (Java's `POP_ORDER_REVIVE_QUEUE`).
pub const ORDERLY_REVIVE_QUEUE: i32 = 999;

/// Which topic a popped message was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopTopicKind {
    /// The subscribed topic itself (`0`).
    Normal,
    /// The group's pop retry topic, `%RETRY%<group>_<topic>` (`1`).
    RetryV1,
    /// The group's pop retry topic, `%RETRY%<group>+<topic>` (`2`).
    RetryV2,
}

impl PopTopicKind {
    /// The kind of a topic a broker popped from, by its name (Java's
    /// `ExtraInfoUtil.getRetry`).
    pub fn of_topic(topic: &str) -> Self {
        if topic.starts_with(RETRY_TOPIC_PREFIX) {
            if topic.contains('+') {
                PopTopicKind::RetryV2
            } else {
                PopTopicKind::RetryV1
            }
        } else {
            PopTopicKind::Normal
        }
    }

    /// The digit the bookkeeping strings write.
    pub fn as_str(self) -> &'static str {
        match self {
            PopTopicKind::Normal => "0",
            PopTopicKind::RetryV1 => "1",
            PopTopicKind::RetryV2 => "2",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "0" => Some(PopTopicKind::Normal),
            "1" => Some(PopTopicKind::RetryV1),
            "2" => Some(PopTopicKind::RetryV2),
            _ => None,
        }
    }

    /// The topic to acknowledge a message of `topic` popped by `group` in:
    /// the topic itself, or the group's pop retry topic for it.
    pub fn real_topic(self, topic: &str, group: &str) -> String {
        match self {
            PopTopicKind::Normal => topic.to_owned(),
            PopTopicKind::RetryV1 => pop_retry_topic_v1(topic, group),
            PopTopicKind::RetryV2 => pop_retry_topic_v2(topic, group),
        }
    }
}

/// A popped message's receipt handle: what acknowledges it, or changes how
/// long it stays invisible.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReceiptHandle {
    /// Where the pop began in the message's queue (its checkpoint).
    pub ck_queue_offset: i64,
    /// When the broker made the pop (epoch ms).
    pub pop_time: i64,
    /// How long the message stays invisible from `pop_time`, in ms.
    pub invisible_time: i64,
    /// The broker's revive queue for the pop ([`ORDERLY_REVIVE_QUEUE`] for an
    /// orderly one).
    pub revive_qid: i32,
    /// Which topic the message was read from.
    pub kind: PopTopicKind,
    /// The broker that popped it.
    pub broker_name: String,
    /// The queue it was read from.
    pub queue_id: i32,
    /// Its offset in that queue.
    pub queue_offset: i64,
}

impl ReceiptHandle {
    /// Reads a handle as Java's `ExtraInfoUtil` does: space-separated, the
    /// first eight fields used.
    pub fn parse(text: &str) -> Result<Self> {
        let invalid = |reason: String| ModelError::malformed("receipt handle", reason);
        let fields: Vec<&str> = text.split(' ').collect();
        let [
            ck,
            pop_time,
            invisible,
            revive,
            kind,
            broker,
            queue,
            offset,
            ..,
        ] = fields[..]
        else {
            return Err(invalid(format!(
                "{text:?} has {} fields, expected 8",
                fields.len()
            )));
        };
        let number = |name: &str, value: &str| {
            value
                .parse::<i64>()
                .map_err(|_| invalid(format!("{name} {value:?} is not a number")))
        };
        let queue_id = queue
            .parse::<i32>()
            .map_err(|_| invalid(format!("queue id {queue:?} is not a number")))?;
        let revive_qid = revive
            .parse::<i32>()
            .map_err(|_| invalid(format!("revive queue {revive:?} is not a number")))?;
        if broker.is_empty() {
            return Err(invalid(format!("{text:?} names no broker")));
        }
        Ok(ReceiptHandle {
            ck_queue_offset: number("checkpoint offset", ck)?,
            pop_time: number("pop time", pop_time)?,
            invisible_time: number("invisible time", invisible)?,
            revive_qid,
            kind: PopTopicKind::parse(kind)
                .ok_or_else(|| invalid(format!("topic kind {kind:?} is not 0, 1 or 2")))?,
            broker_name: broker.to_owned(),
            queue_id,
            queue_offset: number("queue offset", offset)?,
        })
    }

    /// The handle as it travels.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// Whether the handle is of an orderly pop.
    pub fn is_orderly(&self) -> bool {
        self.revive_qid == ORDERLY_REVIVE_QUEUE
    }

    /// When the message becomes visible again unless acknowledged (epoch ms).
    pub fn visible_at_ms(&self) -> i64 {
        self.pop_time.saturating_add(self.invisible_time)
    }

    /// The handle after CHANGE_MESSAGE_INVISIBLETIME answered a new pop: the
    /// broker made it a checkpoint of this message alone.
    pub fn renewed(&self, pop_time: i64, invisible_time: i64, revive_qid: i32) -> Self {
        ReceiptHandle {
            ck_queue_offset: self.queue_offset,
            pop_time,
            invisible_time,
            revive_qid,
            ..self.clone()
        }
    }
}

impl fmt::Display for ReceiptHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {} {}",
            self.ck_queue_offset,
            self.pop_time,
            self.invisible_time,
            self.revive_qid,
            self.kind.as_str(),
            self.broker_name,
            self.queue_id,
            self.queue_offset
        )
    }
}

/// A queue a pop read from, as the bookkeeping strings key it.
pub type PopQueueKey = (PopTopicKind, i32);

/// Reads a POP_MESSAGE answer's `startOffsetInfo`: where the pop began in
/// each queue it read.
pub fn parse_start_offset_info(text: &str) -> Result<HashMap<PopQueueKey, i64>> {
    parse_info("startOffsetInfo", text, |value| value.parse().ok())
}

/// Reads a POP_MESSAGE answer's `msgOffsetInfo`: the offsets answered from
/// each queue, in the answer's order.
///
/// Java separates a queue's offsets with `,`; rocketmq-broker 1.0 with `;`,
/// the entries' separator (`0 7 100;200;300`). No Java entry is a bare
/// number, so one is read as continuing the entry before it.
pub fn parse_msg_offset_info(text: &str) -> Result<HashMap<PopQueueKey, Vec<i64>>> {
    let mut joined = String::with_capacity(text.len());
    for entry in text.split(';') {
        let continues = !joined.is_empty() && !entry.is_empty() && !entry.contains(' ');
        if continues {
            joined.push(',');
        } else if !joined.is_empty() {
            joined.push(';');
        }
        joined.push_str(entry);
    }
    parse_info("msgOffsetInfo", &joined, |value| {
        value.split(',').map(|offset| offset.parse().ok()).collect()
    })
}

/// What an `orderCountInfo` entry counts for: every message answered from
/// a queue, or one message of it (`qo<queueId>%<offset>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderCountKey {
    /// The queue.
    Queue(i32),
    /// One message of the queue, by its offset.
    Message(i32, i64),
}

/// How often an orderly pop's messages were answered before, by
/// `orderCountInfo` entry.
pub type OrderCounts = HashMap<(PopTopicKind, OrderCountKey), i32>;

impl OrderCountKey {
    fn parse(text: &str) -> Option<Self> {
        match text.strip_prefix("qo") {
            Some(rest) => {
                let (queue, offset) = rest.split_once('%')?;
                Some(OrderCountKey::Message(
                    queue.parse().ok()?,
                    offset.parse().ok()?,
                ))
            }
            None => text.parse().ok().map(OrderCountKey::Queue),
        }
    }
}

/// Reads an orderly POP_MESSAGE answer's `orderCountInfo`: `kind key
/// count` entries, `;`-separated, the key a queue id or `qo<queueId>%<offset>`
/// (Java's `buildQueueIdOrderCountInfo` and `buildQueueOffsetOrderCountInfo`).
pub fn parse_order_count_info(text: &str) -> Result<OrderCounts> {
    let mut counts = HashMap::new();
    if text.is_empty() {
        return Ok(counts);
    }
    for entry in text.split(';') {
        let invalid =
            |reason: &str| ModelError::malformed("orderCountInfo", format!("{entry:?} {reason}"));
        let [kind, key, count] = entry.split(' ').collect::<Vec<_>>()[..] else {
            return Err(invalid("is not three space-separated fields"));
        };
        let kind = PopTopicKind::parse(kind).ok_or_else(|| invalid("has no topic kind"))?;
        let key = OrderCountKey::parse(key).ok_or_else(|| invalid("has no queue key"))?;
        let count = count
            .parse::<i32>()
            .map_err(|_| invalid("has a count that is not a number"))?;
        if counts.insert((kind, key), count).is_some() {
            return Err(invalid("repeats a key"));
        }
    }
    Ok(counts)
}

/// The reconsume times an orderly pop's answer gives the message at
/// `offset` of queue `key` (Java's client: the message's own entry, else its
/// queue's; none when neither is above 0).
pub fn order_count(counts: &OrderCounts, key: PopQueueKey, offset: i64) -> Option<i32> {
    let (kind, queue) = key;
    counts
        .get(&(kind, OrderCountKey::Message(queue, offset)))
        .or_else(|| counts.get(&(kind, OrderCountKey::Queue(queue))))
        .copied()
        .filter(|&count| count > 0)
}

fn parse_info<T>(
    what: &'static str,
    text: &str,
    value: impl Fn(&str) -> Option<T>,
) -> Result<HashMap<PopQueueKey, T>> {
    let mut info = HashMap::new();
    if text.is_empty() {
        return Ok(info);
    }
    for entry in text.split(';') {
        let invalid = |reason: &str| ModelError::malformed(what, format!("{entry:?} {reason}"));
        let [kind, queue, rest] = entry.split(' ').collect::<Vec<_>>()[..] else {
            return Err(invalid("is not three space-separated fields"));
        };
        let kind = PopTopicKind::parse(kind).ok_or_else(|| invalid("has no topic kind"))?;
        let queue = queue
            .parse::<i32>()
            .map_err(|_| invalid("has no queue id"))?;
        let rest = value(rest).ok_or_else(|| invalid("has an offset that is not a number"))?;
        if info.insert((kind, queue), rest).is_some() {
            return Err(invalid("repeats a queue"));
        }
    }
    Ok(info)
}

/// Appends one queue's entry to a `startOffsetInfo` being written.
pub fn write_start_offset_info(info: &mut String, key: PopQueueKey, start_offset: i64) {
    separate(info);
    info.push_str(&format!("{} {} {start_offset}", key.0.as_str(), key.1));
}

/// Appends one queue's entry to a `msgOffsetInfo` being written.
pub fn write_msg_offset_info(info: &mut String, key: PopQueueKey, offsets: &[i64]) {
    separate(info);
    let offsets: Vec<String> = offsets.iter().map(i64::to_string).collect();
    info.push_str(&format!(
        "{} {} {}",
        key.0.as_str(),
        key.1,
        offsets.join(",")
    ));
}

/// Appends one message's entry to an orderly pop's `orderCountInfo` being
/// written (Java's `ExtraInfoUtil.buildQueueOffsetOrderCountInfo`): how
/// often the message at `offset` of the queue was answered before, as
/// `kind qo<queueId>%<offset> count` (`0 qo1%5 2`).
pub fn write_order_count_of_offset(info: &mut String, key: PopQueueKey, offset: i64, count: i32) {
    separate(info);
    info.push_str(&format!("{} qo{}%{offset} {count}", key.0.as_str(), key.1));
}

/// Appends one queue's entry to an orderly pop's `orderCountInfo` being
/// written (Java's `ExtraInfoUtil.buildQueueIdOrderCountInfo`): the count a
/// client without a message's own entry reads for it, as `kind queueId
/// count` (`0 1 0`).
pub fn write_order_count_of_queue(info: &mut String, key: PopQueueKey, count: i32) {
    separate(info);
    info.push_str(&format!("{} {} {count}", key.0.as_str(), key.1));
}

fn separate(info: &mut String) {
    if !info.is_empty() {
        info.push(';');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_and_writes_javas_extra_info() {
        // ExtraInfoUtil.buildExtraInfo(5, 1700000000000, 60000, 3, "T", "broker-a", 1, 7)
        let text = "5 1700000000000 60000 3 0 broker-a 1 7";
        let handle = ReceiptHandle::parse(text).unwrap();
        assert_eq!(handle.kind, PopTopicKind::Normal);
        assert_eq!((handle.queue_id, handle.queue_offset), (1, 7));
        assert_eq!(handle.visible_at_ms(), 1_700_000_060_000);
        assert!(!handle.is_orderly());
        assert_eq!(handle.encode(), text);
        let renewed = handle.renewed(1_700_000_001_000, 5_000, 4);
        assert_eq!(renewed.encode(), "7 1700000001000 5000 4 0 broker-a 1 7");
    }

    #[test]
    fn the_kind_names_the_topic_to_acknowledge_in() {
        assert_eq!(PopTopicKind::of_topic("T"), PopTopicKind::Normal);
        assert_eq!(PopTopicKind::of_topic("%RETRY%g_T"), PopTopicKind::RetryV1);
        assert_eq!(PopTopicKind::of_topic("%RETRY%g+T"), PopTopicKind::RetryV2);
        assert_eq!(PopTopicKind::Normal.real_topic("T", "g"), "T");
        assert_eq!(PopTopicKind::RetryV1.real_topic("T", "g"), "%RETRY%g_T");
        assert_eq!(PopTopicKind::RetryV2.real_topic("T", "g"), "%RETRY%g+T");
    }

    #[test]
    fn refuses_a_handle_a_broker_could_not_read() {
        for bad in [
            "",
            "5 1 2 3 0 b 1",
            "x 1 2 3 0 b 1 7",
            "5 1 2 3 9 b 1 7",
            "5 1 2 3 0  1 7",
            "5 1 2 3 0 b q 7",
        ] {
            let err = ReceiptHandle::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("receipt handle: "), "{err}");
        }
    }

    #[test]
    fn reads_the_offset_infos_of_a_pop() {
        let starts = parse_start_offset_info("0 1 5;1 0 2").unwrap();
        assert_eq!(starts[&(PopTopicKind::Normal, 1)], 5);
        assert_eq!(starts[&(PopTopicKind::RetryV1, 0)], 2);
        let offsets = parse_msg_offset_info("0 1 5,6,9").unwrap();
        assert_eq!(offsets[&(PopTopicKind::Normal, 1)], [5, 6, 9]);
        assert!(parse_start_offset_info("").unwrap().is_empty());
        for bad in ["0 1", "0 1 x", "0 1 5;0 1 6", "7 1 5"] {
            assert!(parse_start_offset_info(bad).is_err(), "{bad}");
        }
        assert!(parse_msg_offset_info("0 1 5,,6").is_err());
        // rocketmq-broker 1.0 separates a queue's offsets with `;`.
        let rust_broker = parse_msg_offset_info("0 1 5;6;9;1 0 2;3").unwrap();
        assert_eq!(rust_broker[&(PopTopicKind::Normal, 1)], [5, 6, 9]);
        assert_eq!(rust_broker[&(PopTopicKind::RetryV1, 0)], [2, 3]);
        assert!(parse_msg_offset_info("5;0 1 6").is_err());
        assert!(parse_msg_offset_info("0 1 5;;6").is_err());
    }

    #[test]
    fn reads_order_counts_by_message_then_queue() {
        let counts = parse_order_count_info("0 qo1%5 2;0 1 1;1 0 3").unwrap();
        assert_eq!(order_count(&counts, (PopTopicKind::Normal, 1), 5), Some(2));
        assert_eq!(order_count(&counts, (PopTopicKind::Normal, 1), 6), Some(1));
        assert_eq!(order_count(&counts, (PopTopicKind::RetryV1, 0), 9), Some(3));
        assert_eq!(order_count(&counts, (PopTopicKind::Normal, 2), 5), None);
        let zero = parse_order_count_info("0 qo1%5 0").unwrap();
        assert_eq!(order_count(&zero, (PopTopicKind::Normal, 1), 5), None);
        assert!(parse_order_count_info("").unwrap().is_empty());
        for bad in [
            "0 qo1 2",
            "0 qo1%x 2",
            "0 1 x",
            "0 1",
            "0 1 1;0 1 2",
            "5 1 1",
        ] {
            assert!(parse_order_count_info(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(text in ".*") {
            let _ = parse_order_count_info(&text);
            let _ = ReceiptHandle::parse(&text);
            let _ = parse_start_offset_info(&text);
            let _ = parse_msg_offset_info(&text);
        }

        #[test]
        fn handles_round_trip(
            ck in any::<i64>(), pop in any::<i64>(), invisible in any::<i64>(),
            revive in any::<i32>(), kind in 0..3u8, broker in "[A-Za-z0-9_-]{1,20}",
            queue in any::<i32>(), offset in any::<i64>(),
        ) {
            let kind = PopTopicKind::parse(&kind.to_string()).unwrap();
            let handle = ReceiptHandle {
                ck_queue_offset: ck, pop_time: pop, invisible_time: invisible,
                revive_qid: revive, kind, broker_name: broker, queue_id: queue,
                queue_offset: offset,
            };
            prop_assert_eq!(ReceiptHandle::parse(&handle.encode()).unwrap(), handle);
        }

        #[test]
        fn offset_infos_round_trip(
            queues in proptest::collection::btree_map(
                (0..3u8, 0..64i32),
                (any::<i64>(), proptest::collection::vec(any::<i64>(), 1..5)),
                0..6,
            ),
        ) {
            let (mut starts, mut offsets) = (String::new(), String::new());
            for (&(kind, queue), (start, list)) in &queues {
                let key = (PopTopicKind::parse(&kind.to_string()).unwrap(), queue);
                write_start_offset_info(&mut starts, key, *start);
                write_msg_offset_info(&mut offsets, key, list);
            }
            let starts = parse_start_offset_info(&starts).unwrap();
            let offsets = parse_msg_offset_info(&offsets).unwrap();
            prop_assert_eq!(starts.len(), queues.len());
            for (&(kind, queue), (start, list)) in &queues {
                let key = (PopTopicKind::parse(&kind.to_string()).unwrap(), queue);
                prop_assert_eq!(starts[&key], *start);
                prop_assert_eq!(&offsets[&key], list);
            }
        }
    }
}
