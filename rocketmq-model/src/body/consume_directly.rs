//! CONSUME_MESSAGE_DIRECTLY reply body (PROTOCOL.md §7.5).

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// What the listener did with a directly consumed message (Java `CMResult`).
///
/// Written by name; read by name or by ordinal (0..=5), as fastjson accepts
/// both and the Go client sends ordinals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ConsumeResult {
    /// Consumed.
    #[serde(rename = "CR_SUCCESS")]
    Success,
    /// Retry later.
    #[serde(rename = "CR_LATER")]
    Later,
    /// Rolled back (orderly).
    #[serde(rename = "CR_ROLLBACK")]
    Rollback,
    /// Committed (orderly).
    #[serde(rename = "CR_COMMIT")]
    Commit,
    /// The listener threw.
    #[serde(rename = "CR_THROW_EXCEPTION")]
    ThrowException,
    /// The listener returned nothing.
    #[serde(rename = "CR_RETURN_NULL")]
    ReturnNull,
}

impl ConsumeResult {
    const ALL: [ConsumeResult; 6] = [
        ConsumeResult::Success,
        ConsumeResult::Later,
        ConsumeResult::Rollback,
        ConsumeResult::Commit,
        ConsumeResult::ThrowException,
        ConsumeResult::ReturnNull,
    ];

    /// The Java enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeResult::Success => "CR_SUCCESS",
            ConsumeResult::Later => "CR_LATER",
            ConsumeResult::Rollback => "CR_ROLLBACK",
            ConsumeResult::Commit => "CR_COMMIT",
            ConsumeResult::ThrowException => "CR_THROW_EXCEPTION",
            ConsumeResult::ReturnNull => "CR_RETURN_NULL",
        }
    }

    /// From the Java enum name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// From the Java ordinal.
    pub fn from_ordinal(ordinal: u64) -> Option<Self> {
        usize::try_from(ordinal)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }
}

impl fmt::Display for ConsumeResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ConsumeResult {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ConsumeResultVisitor)
    }
}

struct ConsumeResultVisitor;

impl Visitor<'_> for ConsumeResultVisitor {
    type Value = ConsumeResult;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CMResult name or ordinal 0..=5")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<ConsumeResult, E> {
        ConsumeResult::from_name(name)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(name), &self))
    }

    fn visit_u64<E: de::Error>(self, ordinal: u64) -> Result<ConsumeResult, E> {
        ConsumeResult::from_ordinal(ordinal)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(ordinal), &self))
    }

    fn visit_i64<E: de::Error>(self, ordinal: i64) -> Result<ConsumeResult, E> {
        u64::try_from(ordinal)
            .ok()
            .and_then(ConsumeResult::from_ordinal)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(ordinal), &self))
    }
}

/// The reply to CONSUME_MESSAGE_DIRECTLY.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumeMessageDirectlyResult {
    /// Orderly consumption: whether the offset is committed automatically.
    #[serde(default = "default_true")]
    pub auto_commit: bool,
    /// The listener's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consume_result: Option<ConsumeResult>,
    /// Whether the consumer is orderly.
    #[serde(default)]
    pub order: bool,
    /// Free text, e.g. an exception.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    /// Time the listener took, in ms (the Java spelling is `spentTimeMills`).
    #[serde(default)]
    pub spent_time_mills: i64,
}

fn default_true() -> bool {
    true
}

impl Default for ConsumeMessageDirectlyResult {
    fn default() -> Self {
        ConsumeMessageDirectlyResult {
            auto_commit: true,
            consume_result: None,
            order: false,
            remark: None,
            spent_time_mills: 0,
        }
    }
}

standard_json_body!(ConsumeMessageDirectlyResult);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JAVA: &str = r#"{"autoCommit":true,"consumeResult":"CR_SUCCESS","order":false,"remark":"ok","spentTimeMills":12}"#;

    #[test]
    fn java_sample_round_trips_byte_for_byte() {
        let body = ConsumeMessageDirectlyResult::decode(JAVA.as_bytes()).unwrap();
        assert_eq!(body.consume_result, Some(ConsumeResult::Success));
        assert_eq!(body.spent_time_mills, 12);
        assert_eq!(String::from_utf8(body.encode().unwrap()).unwrap(), JAVA);
    }

    #[test]
    fn reads_ordinals_and_rejects_unknown_results() {
        let body = ConsumeMessageDirectlyResult::decode(br#"{"consumeResult":4}"#).unwrap();
        assert_eq!(body.consume_result, Some(ConsumeResult::ThrowException));
        assert!(body.auto_commit);
        for bad in [
            &br#"{"consumeResult":6}"#[..],
            br#"{"consumeResult":-1}"#,
            br#"{"consumeResult":"CR_NOPE"}"#,
        ] {
            assert!(ConsumeMessageDirectlyResult::decode(bad).is_err());
        }
    }

    proptest! {
        #[test]
        fn round_trips(
            auto_commit in any::<bool>(),
            result in prop::option::of(0_u64..6),
            order in any::<bool>(),
            remark in prop::option::of("\\PC{0,12}"),
            spent in any::<i64>(),
        ) {
            let body = ConsumeMessageDirectlyResult {
                auto_commit,
                consume_result: result.and_then(ConsumeResult::from_ordinal),
                order,
                remark,
                spent_time_mills: spent,
            };
            prop_assert_eq!(ConsumeMessageDirectlyResult::decode(&body.encode().unwrap()).unwrap(), body);
        }
    }
}
