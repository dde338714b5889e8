//! The GET_CONSUME_STATS answer (Java's `ConsumeStats` and
//! `OffsetWrapper`): a consumer group's committed offset in each queue of a
//! broker against the queue's end, i.e. how far behind the group is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nonstandard_json::{JavaJsonWriter, decode_lenient, mq_keyed_map};
use crate::error::Result;
use crate::queue::MessageQueue;

/// A group's offsets in one queue (Java's `OffsetWrapper`; fields in
/// fastjson's order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueOffsets {
    /// Where the next message will be stored (the queue's max offset).
    #[serde(default)]
    pub broker_offset: i64,
    /// The group's committed offset (0 when it has none).
    #[serde(default)]
    pub consumer_offset: i64,
    /// When the last consumed message (the one before the committed
    /// offset) was stored, in ms since the epoch; 0 when unknown.
    #[serde(default)]
    pub last_timestamp: i64,
    /// How far the group has pulled, at least its committed offset (5.x
    /// brokers; 0 from older ones).
    #[serde(default)]
    pub pull_offset: i64,
}

impl QueueOffsets {
    /// Messages stored and not yet consumed (committed) by the group:
    /// `broker_offset - consumer_offset`, never below 0.
    pub fn lag(&self) -> i64 {
        self.broker_offset
            .saturating_sub(self.consumer_offset)
            .max(0)
    }
}

/// A consumer group's offsets per queue, and its consume rate (Java's
/// `ConsumeStats`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeStats {
    /// Queue → the group's offsets there.
    #[serde(default, deserialize_with = "mq_keyed_map")]
    pub offset_table: BTreeMap<MessageQueue, QueueOffsets>,
    /// Messages the group consumed per second, as the brokers count them.
    #[serde(default)]
    pub consume_tps: f64,
}

impl ConsumeStats {
    /// The lag of all queues together (Java's `computeTotalDiff`).
    pub fn total_lag(&self) -> i64 {
        self.offset_table
            .values()
            .fold(0_i64, |sum, offsets| sum.saturating_add(offsets.lag()))
    }

    /// Adds another broker's answer to this one (queues merged, rates
    /// summed), as Java's admin merges the brokers of a group.
    pub fn merge(&mut self, other: ConsumeStats) {
        self.offset_table.extend(other.offset_table);
        self.consume_tps += other.consume_tps;
    }

    /// Decodes the body (raw object keys, as Java writes them, or standard
    /// JSON).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_lenient("ConsumeStats", bytes)
    }

    /// Encodes the body as Java does, with raw MessageQueue object keys.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut writer = JavaJsonWriter::new("ConsumeStats");
        writer.field("consumeTps", &self.consume_tps)?;
        writer.mq_map_field("offsetTable", &self.offset_table)?;
        Ok(writer.finish())
    }
}

json_body_trait!(ConsumeStats);

#[cfg(test)]
mod tests {
    use super::*;

    /// As a Java 5 broker writes it (fastjson, raw object keys).
    const FROM_JAVA: &str = concat!(
        r#"{"consumeTps":1.5,"offsetTable":{"#,
        r#"{"brokerName":"broker-a","queueId":0,"topic":"T"}:"#,
        r#"{"brokerOffset":10,"consumerOffset":4,"lastTimestamp":1700000000000,"pullOffset":6},"#,
        r#"{"brokerName":"broker-a","queueId":1,"topic":"T"}:"#,
        r#"{"brokerOffset":3,"consumerOffset":3,"lastTimestamp":0,"pullOffset":3}}}"#
    );

    #[test]
    fn a_java_answer_decodes_and_sums_its_lag() {
        let stats = ConsumeStats::decode(FROM_JAVA.as_bytes()).unwrap();
        let q0 = MessageQueue::new("T", "broker-a", 0);
        assert_eq!(
            stats.offset_table[&q0],
            QueueOffsets {
                broker_offset: 10,
                consumer_offset: 4,
                pull_offset: 6,
                last_timestamp: 1_700_000_000_000,
            }
        );
        assert_eq!(stats.offset_table[&q0].lag(), 6);
        assert_eq!(stats.total_lag(), 6);
        assert!((stats.consume_tps - 1.5).abs() < f64::EPSILON);
        assert_eq!(
            String::from_utf8(stats.encode().unwrap()).unwrap(),
            FROM_JAVA
        );
    }

    #[test]
    fn a_4x_answer_without_pull_offsets_decodes() {
        let json = r#"{"consumeTps":0,"offsetTable":{"{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"T\"}":{"brokerOffset":5,"consumerOffset":7}}}"#;
        let stats = ConsumeStats::decode(json.as_bytes()).unwrap();
        let offsets = stats.offset_table[&MessageQueue::new("T", "b", 2)];
        assert_eq!(offsets.pull_offset, 0);
        assert_eq!(
            offsets.lag(),
            0,
            "a committed offset past the end is no lag"
        );
    }

    #[test]
    fn merging_brokers_adds_queues_and_rates() {
        let mut all = ConsumeStats::decode(FROM_JAVA.as_bytes()).unwrap();
        let mut other = ConsumeStats {
            consume_tps: 2.0,
            ..ConsumeStats::default()
        };
        other.offset_table.insert(
            MessageQueue::new("T", "broker-b", 0),
            QueueOffsets {
                broker_offset: 9,
                consumer_offset: 1,
                ..QueueOffsets::default()
            },
        );
        all.merge(other);
        assert_eq!(all.offset_table.len(), 3);
        assert_eq!(all.total_lag(), 14);
        assert!((all.consume_tps - 3.5).abs() < f64::EPSILON);
    }
}
