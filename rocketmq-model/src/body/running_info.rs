//! GET_CONSUMER_RUNNING_INFO reply body (PROTOCOL.md §7.3).

use std::collections::BTreeMap;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::heartbeat::SubscriptionData;
use super::nonstandard_json::{JavaJsonWriter, decode_lenient, mq_keyed_map};
use crate::error::Result;
use crate::queue::MessageQueue;

/// Keys of [`ConsumerRunningInfo::properties`] (Java `ConsumerRunningInfo.PROP_*`).
pub mod property_keys {
    /// Name-server addresses, "a;b;".
    pub const PROP_NAMESERVER_ADDR: &str = "PROP_NAMESERVER_ADDR";
    /// Consume thread-pool core size.
    pub const PROP_THREADPOOL_CORE_SIZE: &str = "PROP_THREADPOOL_CORE_SIZE";
    /// "true" for an orderly consumer (the Java value has no underscore).
    pub const PROP_CONSUME_ORDERLY: &str = "PROP_CONSUMEORDERLY";
    /// The ConsumeType enum name.
    pub const PROP_CONSUME_TYPE: &str = "PROP_CONSUME_TYPE";
    /// Client version, e.g. "V5_3_3".
    pub const PROP_CLIENT_VERSION: &str = "PROP_CLIENT_VERSION";
    /// Consumer start time in ms.
    pub const PROP_CONSUMER_START_TIMESTAMP: &str = "PROP_CONSUMER_START_TIMESTAMP";
}

/// What a consumer reports about itself to admin tools.
///
/// Decoding accepts `mqTable`/`mqPopTable` keyed by raw MessageQueue objects
/// (Java) or by their JSON text; encoding writes raw object keys, as fastjson
/// does.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerRunningInfo {
    /// Consumer configuration and the `PROP_*` entries ([`property_keys`]).
    #[serde(default, deserialize_with = "lenient_string_map")]
    pub properties: BTreeMap<String, String>,
    /// Subscriptions.
    #[serde(default)]
    pub subscription_set: Vec<SubscriptionData>,
    /// Process-queue state per assigned queue.
    #[serde(default, deserialize_with = "mq_keyed_map")]
    pub mq_table: BTreeMap<MessageQueue, ProcessQueueInfo>,
    /// 5.x pop consumption state per queue; `None` when absent.
    #[serde(default, deserialize_with = "opt_mq_keyed_map")]
    pub mq_pop_table: Option<BTreeMap<MessageQueue, PopProcessQueueInfo>>,
    /// Consumption statistics per topic.
    #[serde(default)]
    pub status_table: BTreeMap<String, ConsumeStatus>,
    /// Free-form user information.
    #[serde(default, deserialize_with = "lenient_string_map")]
    pub user_consumer_info: BTreeMap<String, String>,
    /// A thread dump, when asked for.
    #[serde(default)]
    pub jstack: Option<String>,
}

fn opt_mq_keyed_map<'de, D>(
    deserializer: D,
) -> Result<Option<BTreeMap<MessageQueue, PopProcessQueueInfo>>, D::Error>
where
    D: Deserializer<'de>,
{
    mq_keyed_map(deserializer).map(Some)
}

/// A string map whose values may be written as numbers or booleans by other
/// clients; those are kept as their JSON text, and nulls are dropped.
fn lenient_string_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Value>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .filter_map(|(key, value)| match value {
            Value::Null => None,
            Value::String(text) => Some((key, text)),
            other => Some((key, other.to_string())),
        })
        .collect())
}

impl ConsumerRunningInfo {
    /// Decodes the body (Java's raw object keys or standard JSON).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_lenient("ConsumerRunningInfo", bytes)
    }

    /// Encodes the body as Java does, keys sorted and `mqTable` keyed by raw
    /// MessageQueue objects.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut writer = JavaJsonWriter::new("ConsumerRunningInfo");
        writer.opt_field("jstack", self.jstack.as_ref())?;
        if let Some(pop_table) = &self.mq_pop_table {
            writer.mq_map_field("mqPopTable", pop_table)?;
        }
        writer.mq_map_field("mqTable", &self.mq_table)?;
        writer.field("properties", &self.properties)?;
        writer.field("statusTable", &self.status_table)?;
        writer.field("subscriptionSet", &self.subscription_set)?;
        writer.field("userConsumerInfo", &self.user_consumer_info)?;
        Ok(writer.finish())
    }
}

json_body_trait!(ConsumerRunningInfo);

/// The state of one process queue (Java `ProcessQueueInfo`).
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProcessQueueInfo {
    /// Messages cached.
    pub cached_msg_count: i32,
    /// Highest cached offset.
    pub cached_msg_max_offset: i64,
    /// Lowest cached offset.
    pub cached_msg_min_offset: i64,
    /// Cached bytes, in MiB.
    #[serde(rename = "cachedMsgSizeInMiB")]
    pub cached_msg_size_in_mib: i32,
    /// Offset to commit.
    pub commit_offset: i64,
    /// Whether the queue was dropped; the Java key is misspelt `droped` (the Go
    /// client's `dropped` is accepted on read).
    #[serde(rename = "droped", alias = "dropped")]
    pub dropped: bool,
    /// Last consumption time, ms.
    pub last_consume_timestamp: i64,
    /// Last lock time, ms.
    pub last_lock_timestamp: i64,
    /// Last pull time, ms.
    pub last_pull_timestamp: i64,
    /// Orderly: whether the broker lock is held.
    pub locked: bool,
    /// Messages in the orderly consuming map.
    pub transaction_msg_count: i32,
    /// Highest offset in the orderly consuming map.
    pub transaction_msg_max_offset: i64,
    /// Lowest offset in the orderly consuming map.
    pub transaction_msg_min_offset: i64,
    /// Orderly: failed unlock attempts.
    pub try_unlock_times: i64,
}

/// The state of one pop process queue (Java `PopProcessQueueInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PopProcessQueueInfo {
    /// Whether the queue was dropped (Java key `droped`).
    #[serde(rename = "droped", alias = "dropped")]
    pub dropped: bool,
    /// Last pop time, ms.
    pub last_pop_timestamp: i64,
    /// Messages popped but not acknowledged.
    pub wait_ack_count: i32,
}

/// Consumption statistics of one topic (Java `ConsumeStatus`).
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumeStatus {
    /// Messages that failed in the last hour.
    #[serde(rename = "consumeFailedMsgs")]
    pub consume_failed_msgs: i64,
    /// Failed messages per second.
    #[serde(rename = "consumeFailedTPS", deserialize_with = "f64_or_null")]
    pub consume_failed_tps: f64,
    /// Consumed messages per second.
    #[serde(rename = "consumeOKTPS", deserialize_with = "f64_or_null")]
    pub consume_ok_tps: f64,
    /// Mean consumption time, ms.
    #[serde(rename = "consumeRT", deserialize_with = "f64_or_null")]
    pub consume_rt: f64,
    /// Mean pull time, ms.
    #[serde(rename = "pullRT", deserialize_with = "f64_or_null")]
    pub pull_rt: f64,
    /// Pulled messages per second.
    #[serde(rename = "pullTPS", deserialize_with = "f64_or_null")]
    pub pull_tps: f64,
}

/// fastjson (and serde_json) write a non-finite double as `null`.
fn f64_or_null<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::heartbeat::tests::arb_subscription;
    use crate::error::ModelError;
    use proptest::prelude::*;

    const JAVA: &str = r#"{"jstack":"main","mqPopTable":{},"mqTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:{"cachedMsgCount":2,"cachedMsgMaxOffset":11,"cachedMsgMinOffset":10,"cachedMsgSizeInMiB":0,"commitOffset":10,"droped":false,"lastConsumeTimestamp":1700000000002,"lastLockTimestamp":0,"lastPullTimestamp":1700000000001,"locked":false,"transactionMsgCount":0,"transactionMsgMaxOffset":0,"transactionMsgMinOffset":0,"tryUnlockTimes":0},{"brokerName":"broker-a","queueId":1,"topic":"T"}:{"cachedMsgCount":0,"cachedMsgMaxOffset":0,"cachedMsgMinOffset":0,"cachedMsgSizeInMiB":0,"commitOffset":7,"droped":true,"lastConsumeTimestamp":0,"lastLockTimestamp":0,"lastPullTimestamp":0,"locked":true,"transactionMsgCount":0,"transactionMsgMaxOffset":0,"transactionMsgMinOffset":0,"tryUnlockTimes":1}},"properties":{"PROP_CONSUMEORDERLY":"false","PROP_CONSUME_TYPE":"CONSUME_PASSIVELY","PROP_NAMESERVER_ADDR":"127.0.0.1:9876;"},"statusTable":{"T":{"consumeFailedMsgs":3,"consumeFailedTPS":0.0,"consumeOKTPS":12.5,"consumeRT":1.25,"pullRT":2.0,"pullTPS":12.5}},"subscriptionSet":[{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1700000000000,"tagsSet":[],"topic":"T"}],"userConsumerInfo":{}}"#;

    #[test]
    fn java_sample_with_raw_object_keys_round_trips_byte_for_byte() {
        let info = ConsumerRunningInfo::decode(JAVA.as_bytes()).unwrap();
        let q0 = &info.mq_table[&MessageQueue::new("T", "broker-a", 0)];
        assert_eq!((q0.cached_msg_count, q0.commit_offset), (2, 10));
        let q1 = &info.mq_table[&MessageQueue::new("T", "broker-a", 1)];
        assert!(q1.dropped && q1.locked);
        assert_eq!(
            info.properties[property_keys::PROP_CONSUME_ORDERLY],
            "false"
        );
        assert_eq!(info.status_table["T"].consume_ok_tps, 12.5);
        assert_eq!(info.mq_pop_table, Some(BTreeMap::new()));
        assert_eq!(String::from_utf8(info.encode().unwrap()).unwrap(), JAVA);
    }

    #[test]
    fn reads_standard_json_and_go_spellings() {
        let json = r#"{"mqTable":{"{\"brokerName\":\"b\",\"queueId\":2,\"topic\":\"t\"}":{"dropped":true}},"properties":{"PROP_THREADPOOL_CORE_SIZE":20,"x":null},"statusTable":{"t":{"pullRT":null}}}"#;
        let info = ConsumerRunningInfo::decode(json.as_bytes()).unwrap();
        assert!(info.mq_table[&MessageQueue::new("t", "b", 2)].dropped);
        assert_eq!(
            info.properties
                .get("PROP_THREADPOOL_CORE_SIZE")
                .map(String::as_str),
            Some("20")
        );
        assert!(!info.properties.contains_key("x"));
        assert_eq!(info.status_table["t"].pull_rt, 0.0);
        assert_eq!(info.mq_pop_table, None);
        assert_eq!(info.jstack, None);
    }

    #[test]
    fn rejects_keys_that_are_not_queues() {
        let err = ConsumerRunningInfo::decode(br#"{"mqTable":{"nope":{}}}"#).unwrap_err();
        assert!(matches!(err, ModelError::Json { .. }), "{err}");
        assert!(ConsumerRunningInfo::decode(br#"{"mqTable":{{"topic":"t"}:{}}}"#).is_err());
        assert!(ConsumerRunningInfo::decode(b"{\"mqTable\":{").is_err());
    }

    fn arb_mq() -> impl Strategy<Value = MessageQueue> {
        ("\\PC{0,6}", "\\PC{0,6}", any::<i32>()).prop_map(|(t, b, q)| MessageQueue::new(t, b, q))
    }

    fn arb_pq() -> impl Strategy<Value = ProcessQueueInfo> {
        (
            any::<(i32, i64, i64, i32, i64, bool, i64)>(),
            any::<(i64, i64, bool, i32, i64, i64, i64)>(),
        )
            .prop_map(
                |((a, b, c, d, e, f, g), (h, i, j, k, l, m, n))| ProcessQueueInfo {
                    cached_msg_count: a,
                    cached_msg_max_offset: b,
                    cached_msg_min_offset: c,
                    cached_msg_size_in_mib: d,
                    commit_offset: e,
                    dropped: f,
                    last_consume_timestamp: g,
                    last_lock_timestamp: h,
                    last_pull_timestamp: i,
                    locked: j,
                    transaction_msg_count: k,
                    transaction_msg_max_offset: l,
                    transaction_msg_min_offset: m,
                    try_unlock_times: n,
                },
            )
    }

    fn arb_status() -> impl Strategy<Value = ConsumeStatus> {
        let finite = -1e12_f64..1e12;
        (
            any::<i64>(),
            finite.clone(),
            finite.clone(),
            finite.clone(),
            finite.clone(),
            finite,
        )
            .prop_map(|(msgs, failed, ok, rt, pull_rt, pull_tps)| ConsumeStatus {
                consume_failed_msgs: msgs,
                consume_failed_tps: failed,
                consume_ok_tps: ok,
                consume_rt: rt,
                pull_rt,
                pull_tps,
            })
    }

    fn arb_pop() -> impl Strategy<Value = PopProcessQueueInfo> {
        any::<(bool, i64, i32)>().prop_map(|(dropped, last_pop_timestamp, wait_ack_count)| {
            PopProcessQueueInfo {
                dropped,
                last_pop_timestamp,
                wait_ack_count,
            }
        })
    }

    proptest! {
        #[test]
        fn round_trips(
            properties in prop::collection::btree_map("\\PC{0,8}", "\\PC{0,8}", 0..4),
            subscription_set in prop::collection::vec(arb_subscription(), 0..2),
            mq_table in prop::collection::btree_map(arb_mq(), arb_pq(), 0..4),
            mq_pop_table in prop::option::of(prop::collection::btree_map(arb_mq(), arb_pop(), 0..3)),
            status_table in prop::collection::btree_map("\\PC{0,8}", arb_status(), 0..3),
            user_consumer_info in prop::collection::btree_map("\\PC{0,8}", "\\PC{0,8}", 0..3),
            jstack in prop::option::of("\\PC{0,16}"),
        ) {
            let info = ConsumerRunningInfo {
                properties, subscription_set, mq_table, mq_pop_table, status_table, user_consumer_info, jstack,
            };
            prop_assert_eq!(ConsumerRunningInfo::decode(&info.encode().unwrap()).unwrap(), info);
        }

        #[test]
        fn decode_never_panics(input in "\\PC{0,64}") {
            let _ = ConsumerRunningInfo::decode(input.as_bytes());
        }
    }
}
