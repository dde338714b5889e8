//! Messages (PROTOCOL.md §5, §6): what a producer sends ([`Message`]), what a
//! consumer receives ([`MessageExt`]), their properties, ids, the stored-record
//! codec and the batch codec.

mod batch;
mod builder;
pub mod compression;
mod ext;
mod id;
pub mod pop;
pub mod properties;
pub mod property;
mod recall;
mod record;
pub mod sysflag;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

pub use batch::{batch_entry_len, decode_batch, encode_batch, validate_batch};
pub use builder::{MessageBuilder, TOPIC_MAX_LEN, has_topic_or_group_chars, validate_topic};
pub use compression::CompressionType;
pub use ext::MessageExt;
pub use id::{OffsetMessageId, UniqueIdGenerator};
pub use pop::{PopTopicKind, ReceiptHandle};
pub use properties::Properties;
pub use recall::RecallHandle;
pub use record::{
    DEFAULT_MAX_DECOMPRESSED_BODY, DEFAULT_MAX_DECOMPRESSED_TOTAL, DecodeOptions, DecodedRecords,
    MAGIC_CODE_V1, MAGIC_CODE_V2, decode_record, decode_record_with, decode_records,
    decode_records_prefix, decode_records_prefix_with, decode_records_with, encode_record,
    unwrap_inner_batch,
};
pub use sysflag::TransactionType;

/// The highest delay level of the broker's default `messageDelayLevel` (§8.7).
pub const MAX_DELAY_LEVEL: u8 = 18;

/// A message: topic, body, user flag and properties.
///
/// Build one to send with [`Message::builder`], which validates the topic and
/// every property. The fields are public for code that needs to adjust a
/// message (setting UNIQ_KEY before a send, restoring a retry topic after a
/// pull); [`Properties::insert`] still refuses values that would corrupt the
/// properties string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The topic.
    pub topic: String,
    /// The body, as the application sees it (uncompressed).
    pub body: Bytes,
    /// The user flag (not interpreted by the broker).
    pub flag: i32,
    /// The properties (§6).
    pub properties: Properties,
}

impl Message {
    /// Starts building a message for `topic`.
    ///
    /// ```
    /// use rocketmq_model::message::Message;
    ///
    /// let msg = Message::builder("orders")
    ///     .body("hello")
    ///     .tags("created")
    ///     .keys(["o-1", "c-7"])
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(msg.tags(), Some("created"));
    /// assert_eq!(msg.keys().collect::<Vec<_>>(), ["o-1", "c-7"]);
    /// ```
    pub fn builder(topic: impl Into<String>) -> MessageBuilder {
        MessageBuilder::new(topic)
    }

    /// A message with no flag and no properties, **without** validating the
    /// topic (for internal topics such as `%RETRY%` ones, which may be longer
    /// than a user topic).
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Message {
            topic: topic.into(),
            body: body.into(),
            flag: 0,
            properties: Properties::new(),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The value of property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name)
    }

    /// The tag (TAGS).
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The business keys (KEYS, split on spaces).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.property(property::KEYS)
            .unwrap_or_default()
            .split(property::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
    }

    /// The delay level (DELAY), or `None` when absent, not above 0 or not a
    /// number. Read as Java reads it (an `int`), so a level above
    /// [`MAX_DELAY_LEVEL`] is returned as it is: a broker delays it by the
    /// longest level.
    pub fn delay_level(&self) -> Option<u32> {
        self.property(property::DELAY).and_then(delay_level_of)
    }

    /// The 5.x timer delivery time (TIMER_DELIVER_MS), if set and valid.
    pub fn deliver_at(&self) -> Option<SystemTime> {
        let ms = self
            .property(property::TIMER_DELIVER_MS)?
            .trim()
            .parse::<u64>()
            .ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }

    /// The sharding key (`__SHARDINGKEY`).
    pub fn sharding_key(&self) -> Option<&str> {
        self.property(property::SHARDING_KEY)
    }

    /// The client unique id (UNIQ_KEY), if set.
    pub fn uniq_key(&self) -> Option<&str> {
        self.property(property::UNIQ_KEY)
    }

    /// WAIT_STORE_MSG_OK: false only when WAIT is present and is not "true"
    /// (case-insensitively), as Java reads it.
    pub fn wait_store_ok(&self) -> bool {
        self.property(property::WAIT)
            .is_none_or(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Whether this is a transactional half message (TRAN_MSG = "true").
    pub fn is_transaction_prepared(&self) -> bool {
        self.property(property::TRAN_MSG)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The delay level a DELAY property value stands for (see
/// [`Message::delay_level`]).
pub fn delay_level_of(value: &str) -> Option<u32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(|level| u32::try_from(level).ok())
        .filter(|&level| level > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_read_properties() {
        let mut msg = Message::new("t", "body");
        assert_eq!(msg.tags(), None);
        assert_eq!(msg.keys().count(), 0);
        assert!(msg.wait_store_ok());
        assert_eq!(msg.delay_level(), None);
        for (k, v) in [
            (property::TAGS, "tag"),
            (property::KEYS, " a  b "),
            (property::DELAY, "3"),
            (property::WAIT, "FALSE"),
            (property::UNIQ_KEY, "ID"),
            (property::TRAN_MSG, "true"),
            (property::TIMER_DELIVER_MS, "1500"),
            (property::SHARDING_KEY, "s"),
        ] {
            msg.properties.insert(k, v).unwrap();
        }
        assert_eq!(msg.topic(), "t");
        assert_eq!(&msg.body()[..], b"body");
        assert_eq!(msg.tags(), Some("tag"));
        assert_eq!(msg.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(msg.delay_level(), Some(3));
        assert!(!msg.wait_store_ok());
        assert_eq!(msg.uniq_key(), Some("ID"));
        assert!(msg.is_transaction_prepared());
        assert_eq!(
            msg.deliver_at(),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
        assert_eq!(msg.sharding_key(), Some("s"));
        for (written, read) in [
            ("0", None),
            ("-1", None),
            ("x", None),
            ("300", Some(300)),
            ("2147483648", None),
        ] {
            msg.properties.insert(property::DELAY, written).unwrap();
            assert_eq!(msg.delay_level(), read, "{written}");
        }
    }
}
