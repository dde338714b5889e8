//! BATCH_ACK_MESSAGE (200151) body: acknowledgements of popped messages,
//! grouped by the pop they came from (Java's `BatchAckMessageRequestBody`
//! and `BatchAck`).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// BATCH_ACK_MESSAGE request body: every acknowledgement for one broker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchAckMessageRequestBody {
    /// The broker the messages were popped from.
    #[serde(default)]
    pub broker_name: String,
    /// One entry per pop (and queue) acknowledged.
    #[serde(default)]
    pub acks: Vec<BatchAck>,
}

/// The acknowledged messages of one pop of one queue. Java writes the short
/// keys and reads either.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BatchAck {
    /// Consumer group.
    #[serde(rename = "c", alias = "consumerGroup", default)]
    pub consumer_group: String,
    /// The subscribed topic (for a redelivered message too: `retry` says
    /// whether the pop retry topic is meant).
    #[serde(rename = "t", alias = "topic", default)]
    pub topic: String,
    /// The topic kind of the receipt handles: `0`, `1` (retry v1), `2`.
    #[serde(rename = "r", alias = "retry", default)]
    pub retry: String,
    /// Where the pop began in the queue (the handles' checkpoint offset).
    #[serde(rename = "so", alias = "startOffset", default)]
    pub start_offset: i64,
    /// The queue.
    #[serde(rename = "q", alias = "queueId", default)]
    pub queue_id: i32,
    /// The pop's revive queue.
    #[serde(rename = "rq", alias = "reviveQueueId", default)]
    pub revive_queue_id: i32,
    /// The pop's time (epoch ms).
    #[serde(rename = "pt", alias = "popTime", default)]
    pub pop_time: i64,
    /// The pop's invisible time (ms).
    #[serde(rename = "it", alias = "invisibleTime", default)]
    pub invisible_time: i64,
    /// The acknowledged offsets, as distances from `start_offset`.
    #[serde(rename = "b", alias = "bitSet", default)]
    pub bits: AckBits,
}

/// Offsets as distances from a start: Java's `BitSet`, which travels as the
/// Base64 of its `toByteArray` (little-endian, bit `i` in byte `i / 8`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckBits(BTreeSet<u32>);

impl AckBits {
    /// Sets bit `index`.
    pub fn insert(&mut self, index: u32) {
        self.0.insert(index);
    }

    /// The set bits, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().copied()
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Java's `BitSet.toByteArray`: up to the byte of the highest set bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let Some(&highest) = self.0.last() else {
            return Vec::new();
        };
        let mut bytes = vec![0u8; usize::try_from(highest / 8).unwrap_or(0) + 1];
        for &bit in &self.0 {
            let byte = usize::try_from(bit / 8).unwrap_or(0);
            bytes[byte] |= 1 << (bit % 8);
        }
        bytes
    }

    /// Java's `BitSet.valueOf(bytes)`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut bits = BTreeSet::new();
        for (at, byte) in bytes.iter().enumerate() {
            for bit in 0..8u32 {
                if byte & (1 << bit) != 0 {
                    let index = u32::try_from(at)
                        .ok()
                        .and_then(|at| at.checked_mul(8))
                        .and_then(|base| base.checked_add(bit));
                    if let Some(index) = index {
                        bits.insert(index);
                    }
                }
            }
        }
        AckBits(bits)
    }
}

impl FromIterator<u32> for AckBits {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        AckBits(iter.into_iter().collect())
    }
}

impl Serialize for AckBits {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(self.to_bytes()))
    }
}

impl<'de> Deserialize<'de> for AckBits {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("bit set is not Base64"))?;
        Ok(AckBits::from_bytes(&bytes))
    }
}

standard_json_body!(BatchAckMessageRequestBody);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn encodes_javas_keys_and_bit_set() {
        // Java: BitSet {0, 2, 9} .toByteArray() = [5, 2] -> "BQI=" (fastjson
        // sorts the keys; the order does not matter to a reader).
        let body = BatchAckMessageRequestBody {
            broker_name: "broker-a".into(),
            acks: vec![BatchAck {
                consumer_group: "g".into(),
                topic: "T".into(),
                retry: "0".into(),
                start_offset: 10,
                queue_id: 1,
                revive_queue_id: 3,
                pop_time: 1_700_000_000_000,
                invisible_time: 30_000,
                bits: [0, 2, 9].into_iter().collect(),
            }],
        };
        let json = String::from_utf8(body.encode().unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"brokerName":"broker-a","acks":[{"c":"g","t":"T","r":"0","so":10,"q":1,"rq":3,"pt":1700000000000,"it":30000,"b":"BQI="}]}"#
        );
        assert_eq!(
            BatchAckMessageRequestBody::decode(json.as_bytes()).unwrap(),
            body
        );
        // Java also reads the long names.
        let long = r#"{"brokerName":"b","acks":[{"consumerGroup":"g","topic":"T","retry":"1","startOffset":3,"queueId":0,"reviveQueueId":2,"popTime":5,"invisibleTime":6,"bitSet":"AQ=="}]}"#;
        let read = BatchAckMessageRequestBody::decode(long.as_bytes()).unwrap();
        assert_eq!(read.acks[0].bits.iter().collect::<Vec<_>>(), [0]);
        assert_eq!(read.acks[0].retry, "1");
        assert!(BatchAckMessageRequestBody::decode(br#"{"acks":[{"b":"not base64!"}]}"#).is_err());
    }

    proptest! {
        #[test]
        fn bits_round_trip(bits in proptest::collection::btree_set(0u32..4096, 0..64)) {
            let set: AckBits = bits.iter().copied().collect();
            let back = AckBits::from_bytes(&set.to_bytes());
            prop_assert_eq!(back.iter().collect::<BTreeSet<_>>(), bits);
        }

        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = BatchAckMessageRequestBody::decode(&bytes);
            let _ = AckBits::from_bytes(&bytes);
        }
    }
}
