//! RESET_CONSUMER_CLIENT_OFFSET and GET_CONSUMER_STATUS_FROM_CLIENT bodies
//! (PROTOCOL.md §7.4): maps keyed by MessageQueue objects.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::Deserializer;
use serde_json::Value;

use super::nonstandard_json::{JavaJsonWriter, decode_lenient, mq_keyed_map};
use crate::error::Result;
use crate::queue::MessageQueue;

/// New offsets for a consumer group's queues (RESET_CONSUMER_CLIENT_OFFSET).
///
/// Decoding accepts Java's `ResetOffsetBody` (a map keyed by raw MessageQueue
/// objects, or by their JSON text) and `ResetOffsetBodyForC` (a list of
/// `{brokerName, offset, queueId, topic}`), which the broker sends when the
/// admin tool was a C++ client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResetOffsetBody {
    /// Queue → new offset.
    #[serde(default, deserialize_with = "offset_table")]
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

/// One entry of `ResetOffsetBodyForC` (Java `MessageQueueForC`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageQueueForC {
    broker_name: String,
    offset: i64,
    queue_id: i32,
    topic: String,
}

fn offset_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<MessageQueue, i64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Array(entries) => entries
            .into_iter()
            .map(|entry| {
                let entry =
                    MessageQueueForC::deserialize(entry).map_err(serde::de::Error::custom)?;
                Ok((
                    MessageQueue::new(entry.topic, entry.broker_name, entry.queue_id),
                    entry.offset,
                ))
            })
            .collect(),
        other => mq_keyed_map(other).map_err(serde::de::Error::custom),
    }
}

impl ResetOffsetBody {
    /// Decodes either Java form.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_lenient("ResetOffsetBody", bytes)
    }

    /// Encodes as Java's `ResetOffsetBody`: `{"offsetTable":{{mq}:offset}}`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut writer = JavaJsonWriter::new("ResetOffsetBody");
        writer.mq_map_field("offsetTable", &self.offset_table)?;
        Ok(writer.finish())
    }
}

json_body_trait!(ResetOffsetBody);

/// The reply to GET_CONSUMER_STATUS_FROM_CLIENT (deprecated request).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConsumerStatusBody {
    /// Client id → (queue → offset), filled by the broker when aggregating.
    #[serde(default, deserialize_with = "consumer_table")]
    pub consumer_table: BTreeMap<String, BTreeMap<MessageQueue, i64>>,
    /// Queue → consumed offset, as this client reports it.
    #[serde(default, deserialize_with = "mq_keyed_map")]
    pub message_queue_table: BTreeMap<MessageQueue, i64>,
}

/// A MessageQueue-keyed offset map, for nesting inside another map.
#[derive(Deserialize)]
struct OffsetMap(#[serde(deserialize_with = "mq_keyed_map")] BTreeMap<MessageQueue, i64>);

fn consumer_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, BTreeMap<MessageQueue, i64>>, D::Error> {
    let raw = Option::<BTreeMap<String, OffsetMap>>::deserialize(deserializer)?.unwrap_or_default();
    Ok(raw
        .into_iter()
        .map(|(client, OffsetMap(map))| (client, map))
        .collect())
}

impl GetConsumerStatusBody {
    /// Decodes the body (raw object keys or standard JSON).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_lenient("GetConsumerStatusBody", bytes)
    }

    /// Encodes the body as Java does, with raw MessageQueue object keys.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut writer = JavaJsonWriter::new("GetConsumerStatusBody");
        writer.nested_mq_map_field("consumerTable", &self.consumer_table)?;
        writer.mq_map_field("messageQueueTable", &self.message_queue_table)?;
        Ok(writer.finish())
    }
}

json_body_trait!(GetConsumerStatusBody);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ModelError;
    use proptest::prelude::*;

    const JAVA: &str = r#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:123,{"brokerName":"b","queueId":1,"topic":"t"}:-1}}"#;

    #[test]
    fn java_object_keyed_form_round_trips_byte_for_byte() {
        let body = ResetOffsetBody::decode(JAVA.as_bytes()).unwrap();
        assert_eq!(body.offset_table[&MessageQueue::new("t", "b", 0)], 123);
        assert_eq!(body.offset_table[&MessageQueue::new("t", "b", 1)], -1);
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), JAVA);
    }

    #[test]
    fn reads_the_c_list_form_and_standard_json() {
        let for_c = br#"{"offsetTable":[{"brokerName":"b","offset":9,"queueId":3,"topic":"t"}]}"#;
        let body = ResetOffsetBody::decode(for_c).unwrap();
        assert_eq!(body.offset_table[&MessageQueue::new("t", "b", 3)], 9);
        let standard = br#"{"offsetTable":{"MessageQueue [topic=t, brokerName=b, queueId=4]":5}}"#;
        assert_eq!(
            ResetOffsetBody::decode(standard).unwrap().offset_table
                [&MessageQueue::new("t", "b", 4)],
            5
        );
        assert!(ResetOffsetBody::decode(br#"{"offsetTable":[{"brokerName":"b"}]}"#).is_err());
        let err = ResetOffsetBody::decode(
            br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:"x"}}"#,
        )
        .unwrap_err();
        assert!(matches!(err, ModelError::Json { .. }), "{err}");
    }

    #[test]
    fn consumer_status_java_sample() {
        let java = r#"{"consumerTable":{"c1":{{"brokerName":"b","queueId":0,"topic":"t"}:4}},"messageQueueTable":{{"brokerName":"b","queueId":0,"topic":"t"}:5}}"#;
        let body = GetConsumerStatusBody::decode(java.as_bytes()).unwrap();
        assert_eq!(body.message_queue_table[&MessageQueue::new("t", "b", 0)], 5);
        assert_eq!(
            body.consumer_table["c1"][&MessageQueue::new("t", "b", 0)],
            4
        );
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), java);
        let empty = GetConsumerStatusBody::default().encode().unwrap();
        assert_eq!(empty, br#"{"consumerTable":{},"messageQueueTable":{}}"#);
    }

    fn arb_offsets() -> impl Strategy<Value = BTreeMap<MessageQueue, i64>> {
        prop::collection::btree_map(
            ("\\PC{0,6}", "\\PC{0,6}", any::<i32>())
                .prop_map(|(t, b, q)| MessageQueue::new(t, b, q)),
            any::<i64>(),
            0..4,
        )
    }

    proptest! {
        #[test]
        fn reset_offset_round_trips(offset_table in arb_offsets()) {
            let body = ResetOffsetBody { offset_table };
            prop_assert_eq!(ResetOffsetBody::decode(&body.encode().unwrap()).unwrap(), body);
        }

        #[test]
        fn consumer_status_round_trips(
            consumer_table in prop::collection::btree_map("\\PC{0,8}", arb_offsets(), 0..3),
            message_queue_table in arb_offsets(),
        ) {
            let body = GetConsumerStatusBody { consumer_table, message_queue_table };
            prop_assert_eq!(GetConsumerStatusBody::decode(&body.encode().unwrap()).unwrap(), body);
        }

        #[test]
        fn decode_never_panics(input in "\\PC{0,64}") {
            let _ = ResetOffsetBody::decode(input.as_bytes());
            let _ = GetConsumerStatusBody::decode(input.as_bytes());
        }
    }
}
