//! Consumer-offset and queue-offset headers (PROTOCOL.md §3.5).

use std::fmt;

use super::value::FieldValue;
use super::{FieldKey, FieldReader, FieldWriter};
use crate::error::Result;

command_header! {
    /// QUERY_CONSUMER_OFFSET (14) request header.
    pub struct QueryConsumerOffsetRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// 5.x: when false, the broker answers QUERY_NOT_FOUND instead of 0 for a
        /// group with no stored offset.
        opt set_zero_if_not_found: bool = "setZeroIfNotFound";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// QUERY_CONSUMER_OFFSET response header.
    pub struct QueryConsumerOffsetResponseHeader {
        /// The stored offset.
        req offset: i64 = "offset";
    }
}

command_header! {
    /// UPDATE_CONSUMER_OFFSET (15) request header.
    pub struct UpdateConsumerOffsetRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// The offset to store.
        req commit_offset: i64 = "commitOffset";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_MAX_OFFSET (30) request header.
    pub struct GetMaxOffsetRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// Only count committed messages (Java default true, always written).
        default(true) committed: bool = "committed";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_MAX_OFFSET response header.
    pub struct GetMaxOffsetResponseHeader {
        /// The next offset to be written (exclusive maximum).
        req offset: i64 = "offset";
    }
}

command_header! {
    /// GET_MIN_OFFSET (31) request header.
    pub struct GetMinOffsetRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_MIN_OFFSET response header.
    pub struct GetMinOffsetResponseHeader {
        /// The lowest offset still stored.
        req offset: i64 = "offset";
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP (29) request header.
    pub struct SearchOffsetRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// Time to search for, in ms since the epoch.
        req timestamp: i64 = "timestamp";
        /// Which side of equal timestamps to return; absent means lower.
        opt boundary_type: BoundaryType = "boundaryType";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// SEARCH_OFFSET_BY_TIMESTAMP response header.
    pub struct SearchOffsetResponseHeader {
        /// The offset found.
        req offset: i64 = "offset";
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME (32) request header.
    pub struct GetEarliestMsgStoretimeRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_EARLIEST_MSG_STORETIME response header.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        /// Store time of the earliest message, in ms since the epoch.
        req timestamp: i64 = "timestamp";
    }
}

/// Which offset SEARCH_OFFSET_BY_TIMESTAMP returns when several messages share
/// the timestamp (Java `BoundaryType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BoundaryType {
    /// The first matching offset (the default).
    #[default]
    Lower,
    /// The last matching offset.
    Upper,
}

impl BoundaryType {
    /// The Java enum name, as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BoundaryType::Lower => "LOWER",
            BoundaryType::Upper => "UPPER",
        }
    }

    /// Java's `BoundaryType.getType`: "upper" in any case is upper, anything
    /// else is lower.
    pub fn from_wire(text: &str) -> Self {
        if text.trim().eq_ignore_ascii_case("upper") {
            BoundaryType::Upper
        } else {
            BoundaryType::Lower
        }
    }
}

impl fmt::Display for BoundaryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FieldValue for BoundaryType {
    fn parse(_: &FieldReader<'_>, _: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        Ok(text.map(BoundaryType::from_wire))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_str_at(key, self.as_str());
    }
}

#[cfg(test)]
impl super::value::arbitrary::ArbitraryField for BoundaryType {
    fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        prop_oneof![Just(BoundaryType::Lower), Just(BoundaryType::Upper)].boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{CommandHeader, ExtFields};

    #[test]
    fn max_offset_always_writes_committed() {
        let header = GetMaxOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 3,
            ..Default::default()
        };
        let fields = header.to_ext_fields();
        assert_eq!(fields.get("committed"), Some("true"));
        let mut fields: ExtFields = fields;
        fields.remove("committed");
        assert!(
            GetMaxOffsetRequestHeader::from_ext_fields(&fields)
                .unwrap()
                .committed
        );
    }

    #[test]
    fn boundary_type_reads_case_insensitively() {
        let mut fields = ExtFields::new();
        for (text, expected) in [
            ("upper", BoundaryType::Upper),
            ("UPPER", BoundaryType::Upper),
            ("Lower", BoundaryType::Lower),
            ("other", BoundaryType::Lower),
        ] {
            fields.insert("topic", "T");
            fields.insert("queueId", "0");
            fields.insert("timestamp", "1");
            fields.insert("boundaryType", text);
            let header = SearchOffsetRequestHeader::from_ext_fields(&fields).unwrap();
            assert_eq!(header.boundary_type, Some(expected), "{text}");
        }
        let header = SearchOffsetRequestHeader {
            boundary_type: Some(BoundaryType::Upper),
            ..Default::default()
        };
        assert_eq!(header.to_ext_fields()["boundaryType"], "UPPER");
    }
}
