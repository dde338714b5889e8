//! Send headers (PROTOCOL.md §3.3): SEND_MESSAGE (10) with long keys, and
//! SEND_MESSAGE_V2 (310) / SEND_BATCH_MESSAGE (320) with the same fields under
//! one-letter keys.

use compact_str::CompactString;

use super::value::{FieldValue, required};
use super::{CommandHeader, FieldKey, FieldReader, FieldWriter};
use crate::error::Result;
use crate::field_key;

/// SEND_MESSAGE request header (v1 keys). [`SendMessageRequestHeaderV2`]
/// carries the same fields under the short keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeader {
    /// Producer group.
    pub producer_group: CompactString,
    /// Topic.
    pub topic: CompactString,
    /// Auto-create template topic ("TBW102").
    pub default_topic: CompactString,
    /// Queue count for auto-creation (4 by default).
    pub default_topic_queue_nums: i32,
    /// Target queue.
    pub queue_id: i32,
    /// Message system flag bits (§5.2).
    pub sys_flag: i32,
    /// Born time in ms.
    pub born_timestamp: i64,
    /// User flag.
    pub flag: i32,
    /// Properties string (§6).
    pub properties: Option<String>,
    /// Reconsume count (retry topics).
    pub reconsume_times: Option<i32>,
    /// Unit mode.
    pub unit_mode: Option<bool>,
    /// Max reconsume count (retry topics).
    pub max_reconsume_times: Option<i32>,
    /// True for SEND_BATCH_MESSAGE.
    pub batch: Option<bool>,
    /// Broker name (5.x `bname`).
    pub broker_name: Option<CompactString>,
}

/// SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE request header: the v1 header written
/// with the keys `a`..`n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendMessageRequestHeaderV2(pub SendMessageRequestHeader);

/// The wire keys of one key set.
struct SendKeys {
    producer_group: FieldKey,
    topic: FieldKey,
    default_topic: FieldKey,
    default_topic_queue_nums: FieldKey,
    queue_id: FieldKey,
    sys_flag: FieldKey,
    born_timestamp: FieldKey,
    flag: FieldKey,
    properties: FieldKey,
    reconsume_times: FieldKey,
    unit_mode: FieldKey,
    max_reconsume_times: FieldKey,
    batch: FieldKey,
    broker_name: FieldKey,
}

const V1_KEYS: SendKeys = SendKeys {
    producer_group: field_key!("producerGroup"),
    topic: field_key!("topic"),
    default_topic: field_key!("defaultTopic"),
    default_topic_queue_nums: field_key!("defaultTopicQueueNums"),
    queue_id: field_key!("queueId"),
    sys_flag: field_key!("sysFlag"),
    born_timestamp: field_key!("bornTimestamp"),
    flag: field_key!("flag"),
    properties: field_key!("properties"),
    reconsume_times: field_key!("reconsumeTimes"),
    unit_mode: field_key!("unitMode"),
    max_reconsume_times: field_key!("maxReconsumeTimes"),
    batch: field_key!("batch"),
    broker_name: field_key!("bname"),
};

const V2_KEYS: SendKeys = SendKeys {
    producer_group: field_key!("a"),
    topic: field_key!("b"),
    default_topic: field_key!("c"),
    default_topic_queue_nums: field_key!("d"),
    queue_id: field_key!("e"),
    sys_flag: field_key!("f"),
    born_timestamp: field_key!("g"),
    flag: field_key!("h"),
    properties: field_key!("i"),
    reconsume_times: field_key!("j"),
    unit_mode: field_key!("k"),
    max_reconsume_times: field_key!("l"),
    batch: field_key!("m"),
    broker_name: field_key!("n"),
};

fn put_opt<T: FieldValue>(fields: &mut FieldWriter<'_>, key: FieldKey, value: &Option<T>) {
    if let Some(value) = value {
        value.write(fields, key);
    }
}

impl SendMessageRequestHeader {
    fn write_with(&self, keys: &SendKeys, fields: &mut FieldWriter<'_>) {
        fields.put_str_at(keys.producer_group, &self.producer_group);
        fields.put_str_at(keys.topic, &self.topic);
        fields.put_str_at(keys.default_topic, &self.default_topic);
        fields.put_int_at(keys.default_topic_queue_nums, self.default_topic_queue_nums);
        fields.put_int_at(keys.queue_id, self.queue_id);
        fields.put_int_at(keys.sys_flag, self.sys_flag);
        fields.put_int_at(keys.born_timestamp, self.born_timestamp);
        fields.put_int_at(keys.flag, self.flag);
        put_opt(fields, keys.properties, &self.properties);
        put_opt(fields, keys.reconsume_times, &self.reconsume_times);
        put_opt(fields, keys.unit_mode, &self.unit_mode);
        put_opt(fields, keys.max_reconsume_times, &self.max_reconsume_times);
        put_opt(fields, keys.batch, &self.batch);
        put_opt(fields, keys.broker_name, &self.broker_name);
    }

    fn read_with(keys: &SendKeys, fields: &FieldReader<'_>) -> Result<Self> {
        Ok(SendMessageRequestHeader {
            producer_group: required(fields, keys.producer_group.name())?,
            topic: required(fields, keys.topic.name())?,
            default_topic: required(fields, keys.default_topic.name())?,
            default_topic_queue_nums: required(fields, keys.default_topic_queue_nums.name())?,
            queue_id: required(fields, keys.queue_id.name())?,
            sys_flag: required(fields, keys.sys_flag.name())?,
            born_timestamp: required(fields, keys.born_timestamp.name())?,
            flag: required(fields, keys.flag.name())?,
            properties: FieldValue::read(fields, keys.properties.name())?,
            reconsume_times: FieldValue::read(fields, keys.reconsume_times.name())?,
            unit_mode: FieldValue::read(fields, keys.unit_mode.name())?,
            max_reconsume_times: FieldValue::read(fields, keys.max_reconsume_times.name())?,
            batch: FieldValue::read(fields, keys.batch.name())?,
            broker_name: FieldValue::read(fields, keys.broker_name.name())?,
        })
    }
}

impl CommandHeader for SendMessageRequestHeader {
    const NAME: &'static str = "SendMessageRequestHeader";

    fn write_fields(&self, fields: &mut FieldWriter<'_>) {
        self.write_with(&V1_KEYS, fields);
    }

    fn read_fields(fields: &FieldReader<'_>) -> Result<Self> {
        SendMessageRequestHeader::read_with(&V1_KEYS, fields)
    }
}

impl CommandHeader for SendMessageRequestHeaderV2 {
    const NAME: &'static str = "SendMessageRequestHeaderV2";

    fn write_fields(&self, fields: &mut FieldWriter<'_>) {
        self.0.write_with(&V2_KEYS, fields);
    }

    fn read_fields(fields: &FieldReader<'_>) -> Result<Self> {
        SendMessageRequestHeader::read_with(&V2_KEYS, fields).map(SendMessageRequestHeaderV2)
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(header: SendMessageRequestHeader) -> Self {
        SendMessageRequestHeaderV2(header)
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(header: SendMessageRequestHeaderV2) -> Self {
        header.0
    }
}

command_header! {
    /// Send response header. `MSG_REGION` and `TRACE_ON` are extFields of the
    /// response rather than Java header fields, but they travel the same way.
    pub struct SendMessageResponseHeader {
        /// Offset msgId (§5.6); comma-joined ids for a batch.
        req msg_id: String = "msgId";
        /// Queue the message was stored in.
        req queue_id: i32 = "queueId";
        /// Logical offset (of the first message, for a batch).
        req queue_offset: i64 = "queueOffset";
        /// UNIQ_KEY of a prepared (half) message.
        opt transaction_id: String = "transactionId";
        /// Broker-side inner batch id.
        opt batch_uniq_id: String = "batchUniqId";
        /// 5.3+: handle to recall a delayed message.
        opt recall_handle: String = "recallHandle";
        /// Region id; absent means [`DEFAULT_REGION`].
        opt msg_region: String = "MSG_REGION";
        /// Trace switch.
        opt trace_on: bool = "TRACE_ON";
    }
}

/// The region Java reports when a send response carries no `MSG_REGION`.
pub const DEFAULT_REGION: &str = "DefaultRegion";

impl SendMessageResponseHeader {
    /// The region id, or [`DEFAULT_REGION`] when the broker sent none.
    pub fn region(&self) -> &str {
        self.msg_region.as_deref().unwrap_or(DEFAULT_REGION)
    }

    /// Whether tracing is on: Java treats every value but "false" (including
    /// absence) as on.
    pub fn trace_enabled(&self) -> bool {
        self.trace_on != Some(false)
    }
}

#[cfg(test)]
mod arbitrary {
    use super::*;
    use crate::header::value::arbitrary::ArbitraryField;
    use proptest::prelude::*;

    impl Arbitrary for SendMessageRequestHeader {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;

        fn arbitrary_with(_: ()) -> Self::Strategy {
            let required = (
                String::strategy(),
                String::strategy(),
                String::strategy(),
                any::<i32>(),
                any::<i32>(),
                any::<i32>(),
                any::<i64>(),
                any::<i32>(),
            );
            let optional = (
                Option::<String>::strategy(),
                Option::<i32>::strategy(),
                Option::<bool>::strategy(),
                Option::<i32>::strategy(),
                Option::<bool>::strategy(),
                Option::<String>::strategy(),
            );
            (required, optional)
                .prop_map(|((a, b, c, d, e, f, g, h), (i, j, k, l, m, n))| {
                    SendMessageRequestHeader {
                        producer_group: a.into(),
                        topic: b.into(),
                        default_topic: c.into(),
                        default_topic_queue_nums: d,
                        queue_id: e,
                        sys_flag: f,
                        born_timestamp: g,
                        flag: h,
                        properties: i,
                        reconsume_times: j,
                        unit_mode: k,
                        max_reconsume_times: l,
                        batch: m,
                        broker_name: n.map(Into::into),
                    }
                })
                .boxed()
        }
    }

    impl Arbitrary for SendMessageRequestHeaderV2 {
        type Parameters = ();
        type Strategy = BoxedStrategy<Self>;

        fn arbitrary_with(_: ()) -> Self::Strategy {
            any::<SendMessageRequestHeader>()
                .prop_map(SendMessageRequestHeaderV2)
                .boxed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ExtFields;

    fn sample() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("TAGS\u{1}A\u{2}".into()),
            batch: Some(true),
            broker_name: Some("broker-a".into()),
            ..Default::default()
        }
    }

    #[test]
    fn v1_and_v2_keys() {
        let v1 = sample().to_ext_fields();
        assert_eq!(v1["producerGroup"], "pg");
        assert_eq!(v1["bornTimestamp"], "1700000000000");
        assert_eq!(v1["bname"], "broker-a");
        assert!(!v1.contains_key("reconsumeTimes"));
        let v2 = SendMessageRequestHeaderV2(sample()).to_ext_fields();
        let mut keys: Vec<&str> = v2.keys().collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["a", "b", "c", "d", "e", "f", "g", "h", "i", "m", "n"]
        );
        assert_eq!(v2["i"], "TAGS\u{1}A\u{2}");
        assert_eq!(v2["m"], "true");
    }

    #[test]
    fn v2_missing_required_key_is_named() {
        let mut v2 = SendMessageRequestHeaderV2(sample()).to_ext_fields();
        v2.remove("g");
        let err = SendMessageRequestHeaderV2::from_ext_fields(&v2).unwrap_err();
        assert_eq!(
            err.to_string(),
            "SendMessageRequestHeaderV2: required field `g` is missing"
        );
    }

    #[test]
    fn response_region_and_trace() {
        let fields: ExtFields = [("msgId", "ID"), ("queueId", "1"), ("queueOffset", "9")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let header = SendMessageResponseHeader::from_ext_fields(&fields).unwrap();
        assert_eq!(header.region(), DEFAULT_REGION);
        assert!(header.trace_enabled());
        let mut fields = fields;
        fields.insert("MSG_REGION", "r1");
        fields.insert("TRACE_ON", "false");
        let header = SendMessageResponseHeader::from_ext_fields(&fields).unwrap();
        assert_eq!(header.region(), "r1");
        assert!(!header.trace_enabled());
    }
}
