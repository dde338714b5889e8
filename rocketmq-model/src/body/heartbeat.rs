//! HEART_BEAT body and subscriptions (PROTOCOL.md §7.2).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Java's `String.hashCode()`: `h = 31 * h + c` over UTF-16 code units, with
/// wrapping. Brokers filter by these codes, so they must be exact (§7.2).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0_i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The HEART_BEAT (34) body: who the client is and what it produces and
/// consumes.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    /// The client id; the wire key is `clientID`.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// Consumer groups of this client.
    #[serde(default)]
    pub consumer_data_set: Vec<ConsumerData>,
    /// 5.x heartbeat v2 fingerprint; send 0 (§7.2).
    #[serde(default)]
    pub heartbeat_fingerprint: i32,
    /// Producer groups of this client (Java always adds `CLIENT_INNER_PRODUCER`).
    #[serde(default)]
    pub producer_data_set: Vec<ProducerData>,
    /// 5.x: the heartbeat omits subscriptions.
    #[serde(default)]
    pub without_sub: bool,
}

/// One producer group of a client.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    /// Producer group.
    pub group_name: String,
}

/// One consumer group of a client.
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    /// Where a new group starts.
    pub consume_from_where: ConsumeFromWhere,
    /// Pull, push or pop.
    pub consume_type: ConsumeType,
    /// Consumer group.
    pub group_name: String,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// The group's subscriptions.
    #[serde(default)]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    #[serde(default)]
    pub unit_mode: bool,
}

/// One topic subscription (Java `SubscriptionData`).
// Fields in fastjson's (sorted) key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Legacy class filter mode; false.
    #[serde(default)]
    pub class_filter_mode: bool,
    /// [`java_string_hash`] of each tag.
    #[serde(default)]
    pub code_set: BTreeSet<i32>,
    /// Tag or SQL92 expression.
    #[serde(default)]
    pub expression_type: ExpressionType,
    /// The expression as the user wrote it (`*` for everything).
    pub sub_string: String,
    /// Creation time in ms; a pull carrying an older version than the
    /// broker's is rejected (SUBSCRIPTION_NOT_LATEST).
    #[serde(default)]
    pub sub_version: i64,
    /// The tags of a tag expression.
    #[serde(default)]
    pub tags_set: BTreeSet<String>,
    /// Topic.
    pub topic: String,
}

/// `SubscriptionData.SUB_ALL`: the expression that matches every message.
pub const SUB_ALL: &str = "*";

impl SubscriptionData {
    /// Builds a subscription as Java's `FilterAPI.build` does, with
    /// `sub_version` set to now (and above every earlier one of this
    /// process).
    ///
    /// For [`ExpressionType::Tag`], an empty expression or `*` subscribes to
    /// everything; otherwise the expression is split on `||`, each tag trimmed
    /// and empty tags skipped (`"A || B"` → tags A and B); an expression made
    /// of separators only is an error, as in Java. For
    /// [`ExpressionType::Sql92`], the expression is kept as is and must not be
    /// empty. `sub_string` keeps the expression as given.
    pub fn from_expression(
        topic: impl Into<String>,
        expression: &str,
        kind: ExpressionType,
    ) -> Result<Self> {
        let mut data = SubscriptionData {
            class_filter_mode: false,
            code_set: BTreeSet::new(),
            expression_type: kind,
            sub_string: expression.to_owned(),
            sub_version: next_sub_version(),
            tags_set: BTreeSet::new(),
            topic: topic.into(),
        };
        match kind {
            ExpressionType::Sql92 if expression.is_empty() => Err(ModelError::malformed(
                "SubscriptionData",
                "an SQL92 expression can't be empty",
            )),
            ExpressionType::Sql92 => Ok(data),
            ExpressionType::Tag if expression.is_empty() || expression == SUB_ALL => {
                data.sub_string = SUB_ALL.to_owned();
                Ok(data)
            }
            ExpressionType::Tag => {
                data.tags_set = split_tags(expression)?;
                data.code_set = data
                    .tags_set
                    .iter()
                    .map(|tag| java_string_hash(tag))
                    .collect();
                Ok(data)
            }
        }
    }

    /// Whether the subscription matches every message.
    pub fn is_sub_all(&self) -> bool {
        self.expression_type == ExpressionType::Tag && self.sub_string == SUB_ALL
    }

    /// Gives the subscription a new version (now, and above every earlier
    /// one of this process), as Java's push consumer does when a rebalance
    /// changed its queues of the topic: a broker keeps the group's
    /// subscription of the highest version, so the next heartbeat makes
    /// this one the broker's.
    pub fn renew_version(&mut self) {
        self.sub_version = next_sub_version();
    }
}

/// Java's `subString.split("\\|\\|")` (which drops trailing empty pieces),
/// then trim and skip empty tags.
fn split_tags(expression: &str) -> Result<BTreeSet<String>> {
    let mut pieces: Vec<&str> = expression.split("||").collect();
    while pieces.last().is_some_and(|piece| piece.is_empty()) {
        pieces.pop();
    }
    if pieces.is_empty() {
        return Err(ModelError::malformed(
            "SubscriptionData",
            format!("tag expression {expression:?} has no tags"),
        ));
    }
    Ok(pieces
        .into_iter()
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The version of a new subscription: now in milliseconds, as Java's
/// `FilterAPI.build`, but always above the last one this process made. A
/// broker takes a subscription only when its version is above the one it
/// has, so two made in one millisecond (a topic's selector changed at once)
/// would leave the broker filtering with the first.
fn next_sub_version() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = crate::time::epoch_millis(SystemTime::now());
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last.saturating_add(1)))
        })
        .unwrap_or(now);
    now.max(previous.saturating_add(1))
}

/// How a consumer gets messages (Java `ConsumeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConsumeType {
    /// Pull and lite-pull consumers.
    #[serde(rename = "CONSUME_ACTIVELY")]
    ConsumeActively,
    /// Push consumers.
    #[serde(rename = "CONSUME_PASSIVELY")]
    ConsumePassively,
    /// 5.x pop consumers.
    #[serde(rename = "CONSUME_POP")]
    ConsumePop,
}

impl ConsumeType {
    /// The Java enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumeType::ConsumeActively => "CONSUME_ACTIVELY",
            ConsumeType::ConsumePassively => "CONSUME_PASSIVELY",
            ConsumeType::ConsumePop => "CONSUME_POP",
        }
    }
}

/// How a group shares messages (Java `MessageModel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MessageModel {
    /// Every member gets every message.
    #[serde(rename = "BROADCASTING")]
    Broadcasting,
    /// Members share the queues.
    #[default]
    #[serde(rename = "CLUSTERING")]
    Clustering,
}

/// Where a group with no stored offset starts (Java `ConsumeFromWhere`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ConsumeFromWhere {
    /// From the end of the queue.
    #[default]
    #[serde(rename = "CONSUME_FROM_LAST_OFFSET")]
    LastOffset,
    /// Deprecated; treated as [`ConsumeFromWhere::LastOffset`].
    #[serde(rename = "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST")]
    LastOffsetAndFromMinWhenBootFirst,
    /// Deprecated; treated as [`ConsumeFromWhere::LastOffset`].
    #[serde(rename = "CONSUME_FROM_MIN_OFFSET")]
    MinOffset,
    /// Deprecated; treated as [`ConsumeFromWhere::LastOffset`].
    #[serde(rename = "CONSUME_FROM_MAX_OFFSET")]
    MaxOffset,
    /// From the start of the queue.
    #[serde(rename = "CONSUME_FROM_FIRST_OFFSET")]
    FirstOffset,
    /// From a point in time.
    #[serde(rename = "CONSUME_FROM_TIMESTAMP")]
    Timestamp,
}

/// The language of a subscription expression (Java `ExpressionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ExpressionType {
    /// `*` or `TagA || TagB`.
    #[default]
    #[serde(rename = "TAG")]
    Tag,
    /// An SQL92 condition over properties (needs broker `enablePropertyFilter`).
    #[serde(rename = "SQL92")]
    Sql92,
}

impl ExpressionType {
    /// The wire name, as in the pull header's `expressionType`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExpressionType::Tag => "TAG",
            ExpressionType::Sql92 => "SQL92",
        }
    }
}

standard_json_body!(HeartbeatData);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    const JAVA: &str = r#"{"clientID":"10.0.0.5@12345#98765","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919],"expressionType":"TAG","subString":"TagA","subVersion":1700000000000,"tagsSet":["TagA"],"topic":"T"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"},{"groupName":"pg"}],"withoutSub":false}"#;

    #[test]
    fn java_sample_round_trips_byte_for_byte() {
        let data = HeartbeatData::decode(JAVA.as_bytes()).unwrap();
        assert_eq!(data.client_id, "10.0.0.5@12345#98765");
        let consumer = &data.consumer_data_set[0];
        assert_eq!(consumer.consume_type, ConsumeType::ConsumePassively);
        assert_eq!(
            consumer.subscription_data_set[0].code_set.first(),
            Some(&2598919)
        );
        assert_eq!(String::from_utf8(data.encode().unwrap()).unwrap(), JAVA);
    }

    #[test]
    fn java_string_hash_matches_java() {
        assert_eq!(java_string_hash("TagA"), 2598919);
        assert_eq!(java_string_hash(""), 0);
        // Wraps like Java int arithmetic.
        assert_eq!(java_string_hash("hello world"), 1_794_106_052);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // UTF-16 code units, not bytes or chars: U+1F600 is a surrogate pair.
        assert_eq!(java_string_hash("é"), 233);
        assert_eq!(java_string_hash("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn a_renewed_version_is_above_every_earlier_one() {
        let mut data = SubscriptionData::from_expression("T", "A", ExpressionType::Tag).unwrap();
        let before = data.sub_version;
        let later = SubscriptionData::from_expression("T", "B", ExpressionType::Tag).unwrap();
        data.renew_version();
        assert!(data.sub_version > later.sub_version && later.sub_version > before);
        assert_eq!(data.sub_string, "A");
    }

    #[test]
    fn tag_expressions_parse_like_filter_api() {
        let data = SubscriptionData::from_expression(
            "T",
            " TagA || TagB ||  || TagA",
            ExpressionType::Tag,
        )
        .unwrap();
        assert_eq!(data.sub_string, " TagA || TagB ||  || TagA");
        assert_eq!(data.tags_set.iter().collect::<Vec<_>>(), ["TagA", "TagB"]);
        let codes: BTreeSet<i32> = [java_string_hash("TagA"), java_string_hash("TagB")].into();
        assert_eq!(data.code_set, codes);
        assert!(data.sub_version > 1_600_000_000_000);
        // Made at once, later subscriptions still have later versions.
        let versions: Vec<i64> = (0..100)
            .map(|_| {
                SubscriptionData::from_expression("T", "A", ExpressionType::Tag)
                    .unwrap()
                    .sub_version
            })
            .collect();
        assert!(versions.windows(2).all(|w| w[1] > w[0]), "{versions:?}");

        for all in ["", "*"] {
            let data = SubscriptionData::from_expression("T", all, ExpressionType::Tag).unwrap();
            assert_eq!(data.sub_string, "*");
            assert!(data.tags_set.is_empty() && data.code_set.is_empty() && data.is_sub_all());
        }
        assert!(SubscriptionData::from_expression("T", "||", ExpressionType::Tag).is_err());
        let single = SubscriptionData::from_expression("T", "||A", ExpressionType::Tag).unwrap();
        assert_eq!(single.tags_set.iter().collect::<Vec<_>>(), ["A"]);
    }

    #[test]
    fn sql92_expressions_are_kept_whole() {
        let data =
            SubscriptionData::from_expression("T", "a > 1 || b", ExpressionType::Sql92).unwrap();
        assert_eq!(data.expression_type, ExpressionType::Sql92);
        assert_eq!(data.sub_string, "a > 1 || b");
        assert!(data.tags_set.is_empty());
        assert!(SubscriptionData::from_expression("T", "", ExpressionType::Sql92).is_err());
        let json = serde_json::to_string(&data).unwrap();
        assert!(json.contains(r#""expressionType":"SQL92""#), "{json}");
    }

    #[test]
    fn deprecated_consume_from_where_values_read() {
        for name in [
            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST",
            "CONSUME_FROM_MIN_OFFSET",
            "CONSUME_FROM_MAX_OFFSET",
        ] {
            let value: ConsumeFromWhere = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(
                serde_json::to_string(&value).unwrap(),
                format!("\"{name}\"")
            );
        }
    }

    #[test]
    fn rejects_malformed_heartbeats() {
        assert!(HeartbeatData::decode(b"{}").is_err());
        assert!(
            HeartbeatData::decode(br#"{"clientID":"c","consumerDataSet":[{"groupName":"g"}]}"#)
                .is_err()
        );
        assert!(HeartbeatData::decode(b"not json").is_err());
    }

    pub(crate) fn arb_subscription() -> impl Strategy<Value = SubscriptionData> {
        (
            any::<bool>(),
            prop::collection::btree_set(any::<i32>(), 0..3),
            prop_oneof![Just(ExpressionType::Tag), Just(ExpressionType::Sql92)],
            "\\PC{0,12}",
            any::<i64>(),
            prop::collection::btree_set("\\PC{1,6}", 0..3),
            "\\PC{1,8}",
        )
            .prop_map(
                |(
                    class_filter_mode,
                    code_set,
                    expression_type,
                    sub_string,
                    sub_version,
                    tags_set,
                    topic,
                )| {
                    SubscriptionData {
                        class_filter_mode,
                        code_set,
                        expression_type,
                        sub_string,
                        sub_version,
                        tags_set,
                        topic,
                    }
                },
            )
    }

    fn arb_consumer() -> impl Strategy<Value = ConsumerData> {
        (
            prop::sample::select(vec![
                ConsumeFromWhere::LastOffset,
                ConsumeFromWhere::FirstOffset,
                ConsumeFromWhere::Timestamp,
                ConsumeFromWhere::MinOffset,
            ]),
            prop::sample::select(vec![
                ConsumeType::ConsumeActively,
                ConsumeType::ConsumePassively,
                ConsumeType::ConsumePop,
            ]),
            "\\PC{1,8}",
            prop_oneof![
                Just(MessageModel::Clustering),
                Just(MessageModel::Broadcasting)
            ],
            prop::collection::vec(arb_subscription(), 0..3),
            any::<bool>(),
        )
            .prop_map(
                |(
                    consume_from_where,
                    consume_type,
                    group_name,
                    message_model,
                    subscription_data_set,
                    unit_mode,
                )| {
                    ConsumerData {
                        consume_from_where,
                        consume_type,
                        group_name,
                        message_model,
                        subscription_data_set,
                        unit_mode,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn heartbeat_round_trips(
            client_id in "\\PC{1,16}",
            consumers in prop::collection::vec(arb_consumer(), 0..3),
            fingerprint in any::<i32>(),
            producers in prop::collection::vec("\\PC{1,8}", 0..3),
            without_sub in any::<bool>(),
        ) {
            let data = HeartbeatData {
                client_id,
                consumer_data_set: consumers,
                heartbeat_fingerprint: fingerprint,
                producer_data_set: producers.into_iter().map(|group_name| ProducerData { group_name }).collect(),
                without_sub,
            };
            prop_assert_eq!(HeartbeatData::decode(&data.encode().unwrap()).unwrap(), data);
        }

        #[test]
        fn tag_codes_always_match_tags(expression in "[A-Za-z |*]{0,24}") {
            if let Ok(data) = SubscriptionData::from_expression("T", &expression, ExpressionType::Tag) {
                let codes: BTreeSet<i32> = data.tags_set.iter().map(|t| java_string_hash(t)).collect();
                prop_assert_eq!(&data.code_set, &codes);
                prop_assert!(data.tags_set.iter().all(|t| !t.is_empty() && t.trim() == t && !t.contains("||")));
            }
        }
    }
}
