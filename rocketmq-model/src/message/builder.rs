//! [`MessageBuilder`]: a validated way to make a [`Message`].

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Message, Properties, property};
use crate::error::{ModelError, Result};

/// The longest user topic, in characters (`TopicValidator.TOPIC_MAX_LENGTH`).
pub const TOPIC_MAX_LEN: usize = 127;

/// Whether `name` uses only the characters Java allows in topic and group
/// names (`TopicValidator.isTopicOrGroupIllegal`): `%`, `|`, ASCII
/// letters, digits, `_` and `-`.
pub fn has_topic_or_group_chars(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'%' | b'|' | b'_' | b'-'))
}

/// Checks a user topic against Java's `TopicValidator`: non-empty, at most 127
/// characters, only `%`, `|`, ASCII letters, digits, `_` and `-`.
pub fn validate_topic(topic: &str) -> Result<()> {
    let reason = if topic.is_empty() {
        "empty"
    } else if topic.len() > TOPIC_MAX_LEN {
        "longer than 127 characters"
    } else if !has_topic_or_group_chars(topic) {
        "only %, |, ASCII letters, digits, _ and - are allowed"
    } else {
        return Ok(());
    };
    Err(ModelError::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    })
}

/// Builds a [`Message`]; see [`Message::builder`].
///
/// Setters never fail; the first invalid value is remembered and
/// [`build`](Self::build) returns it as the error.
#[derive(Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct MessageBuilder {
    message: Message,
    keys: Vec<String>,
    error: Option<ModelError>,
}

impl MessageBuilder {
    pub(super) fn new(topic: impl Into<String>) -> Self {
        MessageBuilder {
            message: Message::new(topic, Bytes::new()),
            keys: Vec::new(),
            error: None,
        }
    }

    /// The body (not compressed here; the producer decides that).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.message.body = body.into();
        self
    }

    /// The user flag.
    pub fn flag(mut self, flag: i32) -> Self {
        self.message.flag = flag;
        self
    }

    /// The tag (TAGS). An empty tag is no tag, as Java's `Message`
    /// constructors take it (and removes one set before).
    pub fn tags(mut self, tags: impl Into<String>) -> Self {
        let tags = tags.into();
        if tags.is_empty() {
            self.message.properties.remove(property::TAGS);
            return self;
        }
        self.set(property::TAGS, tags)
    }

    /// Adds one business key (KEYS). A key must be non-empty and contain no
    /// space, because KEYS is space-separated.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if key.is_empty() || key.contains(property::KEY_SEPARATOR) {
            self.fail(ModelError::InvalidProperty {
                name: property::KEYS.to_owned(),
                reason: "a key must be non-empty and contain no space",
            });
        } else {
            self.keys.push(key);
        }
        self
    }

    /// Adds several business keys; see [`key`](Self::key).
    pub fn keys<K: Into<String>>(self, keys: impl IntoIterator<Item = K>) -> Self {
        keys.into_iter().fold(self, |builder, key| builder.key(key))
    }

    /// Sets a user property. Name and value must not be blank (as Java's
    /// `putUserProperty`) and must be free of 0x01 and 0x02 (see
    /// [`Properties::insert`]), and the name must not be one the client or
    /// broker uses ([`property::RESERVED`]: TAGS, KEYS, DELAY, ... have their
    /// setters; the rest are not the sender's).
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value): (String, String) = (name.into(), value.into());
        if property::is_reserved(&name) {
            // As Java's `putUserProperty`: TRAN_MSG, for one, would turn a
            // plain send into a half message that is never delivered.
            self.fail(ModelError::InvalidProperty {
                name,
                reason: "the name is used by the client or broker itself; use its setter",
            });
            return self;
        }
        // Java's `String.trim` takes off every character up to the space.
        let blank = |text: &str| text.chars().all(|c| c <= ' ');
        if blank(&name) || blank(&value) {
            self.fail(ModelError::InvalidProperty {
                name,
                reason: "the name and the value may not be blank",
            });
            return self;
        }
        self.set(name, value)
    }

    /// Sets a property, reserved names included (for the setters).
    fn set(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value): (String, String) = (name.into(), value.into());
        if let Err(e) = self.message.properties.insert(name, value) {
            self.fail(e);
        }
        self
    }

    /// The delay level (DELAY): 1..=18 with the broker's default table
    /// (1 s .. 2 h, §8.7, up to [`MAX_DELAY_LEVEL`](super::MAX_DELAY_LEVEL)); a broker configured
    /// with a longer `messageDelayLevel` has more levels, and delays a level
    /// above its highest by its longest, as Java's client leaves it to do.
    /// 0 means no delay and removes the property.
    pub fn delay_level(mut self, level: u8) -> Self {
        if level == 0 {
            self.message.properties.remove(property::DELAY);
            self
        } else {
            self.set(property::DELAY, level.to_string())
        }
    }

    /// Delivers at `time` with the 5.x timer (TIMER_DELIVER_MS, epoch ms).
    pub fn deliver_at(mut self, time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(since) => self.set(property::TIMER_DELIVER_MS, since.as_millis().to_string()),
            Err(_) => {
                self.fail(ModelError::InvalidProperty {
                    name: property::TIMER_DELIVER_MS.to_owned(),
                    reason: "the delivery time is before the Unix epoch",
                });
                self
            }
        }
    }

    /// Delivers `secs` seconds after the broker stores it, with the 5.x timer
    /// (TIMER_DELAY_SEC, Java's `setDelayTimeSec`).
    pub fn delay_time_sec(self, secs: u64) -> Self {
        self.set(property::TIMER_DELAY_SEC, secs.to_string())
    }

    /// Delivers `ms` milliseconds after the broker stores it, with the 5.x
    /// timer (TIMER_DELAY_MS, Java's `setDelayTimeMs`).
    pub fn delay_time_ms(self, ms: u64) -> Self {
        self.set(property::TIMER_DELAY_MS, ms.to_string())
    }

    /// The sharding key (`__SHARDINGKEY`), used by ordered sends.
    pub fn sharding_key(self, key: impl Into<String>) -> Self {
        self.set(property::SHARDING_KEY, key)
    }

    /// WAIT_STORE_MSG_OK (WAIT); the broker's default when absent is true.
    pub fn wait_store_ok(self, wait: bool) -> Self {
        self.set(property::WAIT, if wait { "true" } else { "false" })
    }

    /// Replaces every property at once (already validated by [`Properties`]).
    pub fn properties(mut self, properties: Properties) -> Self {
        self.message.properties = properties;
        self
    }

    /// The message, or the first invalid value met: [`ModelError::InvalidTopic`],
    /// [`ModelError::InvalidProperty`].
    pub fn build(self) -> Result<Message> {
        if let Some(e) = self.error {
            return Err(e);
        }
        validate_topic(&self.message.topic)?;
        let mut message = self.message;
        if !self.keys.is_empty() {
            message
                .properties
                .insert(property::KEYS, self.keys.join(property::KEY_SEPARATOR))?;
        }
        Ok(message)
    }

    fn fail(&mut self, error: ModelError) {
        self.error.get_or_insert(error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn builds_every_property() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let msg = Message::builder("Topic_1-%|x")
            .body(&b"payload"[..])
            .flag(7)
            .tags("TagA")
            .key("k1")
            .keys(vec!["k2".to_owned(), "k3".to_owned()])
            .property("custom", "v")
            .delay_level(18)
            .deliver_at(at)
            .delay_time_sec(30)
            .delay_time_ms(1500)
            .sharding_key("user-1")
            .wait_store_ok(false)
            .build()
            .unwrap();
        assert_eq!(msg.topic(), "Topic_1-%|x");
        assert_eq!(&msg.body()[..], b"payload");
        assert_eq!(msg.flag, 7);
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.property(property::KEYS), Some("k1 k2 k3"));
        assert_eq!(msg.property("custom"), Some("v"));
        assert_eq!(msg.delay_level(), Some(18));
        assert_eq!(
            msg.property(property::TIMER_DELIVER_MS),
            Some("1700000000123")
        );
        assert_eq!(msg.deliver_at(), Some(at));
        assert_eq!(msg.property(property::TIMER_DELAY_SEC), Some("30"));
        assert_eq!(msg.property(property::TIMER_DELAY_MS), Some("1500"));
        assert_eq!(msg.property(property::SHARDING_KEY), Some("user-1"));
        assert_eq!(msg.property(property::WAIT), Some("false"));
        assert!(!msg.wait_store_ok());
    }

    #[test]
    fn delay_level_zero_clears() {
        let msg = Message::builder("t")
            .delay_level(3)
            .delay_level(0)
            .build()
            .unwrap();
        assert_eq!(msg.property(property::DELAY), None);
    }

    #[test]
    fn topic_rules() {
        assert!(validate_topic(&"a".repeat(127)).is_ok());
        for bad in ["", "a b", "tópico", "a/b", &"a".repeat(128)] {
            let err = Message::builder(bad).build().unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidTopic { .. }),
                "{bad:?}: {err}"
            );
        }
    }

    /// Java's client sends any level; a broker with a longer
    /// `messageDelayLevel` table than the default 18 serves the higher ones.
    #[test]
    fn levels_past_the_default_table_are_sent_for_the_broker_to_judge() {
        for level in [19_u8, 255] {
            let msg = Message::builder("t").delay_level(level).build().unwrap();
            assert_eq!(msg.delay_level(), Some(u32::from(level)));
        }
        let msg = Message::builder("t")
            .delay_level(3)
            .delay_level(0)
            .build()
            .unwrap();
        assert_eq!(msg.delay_level(), None);
    }

    #[test]
    fn an_empty_tag_is_no_tag() {
        let msg = Message::builder("t").tags("").build().unwrap();
        assert_eq!(msg.tags(), None);
        let msg = Message::builder("t").tags("A").tags("").build().unwrap();
        assert_eq!(msg.tags(), None);
    }

    #[test]
    fn first_error_is_reported() {
        let err = Message::builder("t")
            .tags("a\u{1}")
            .key("a b")
            .build()
            .unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidProperty { name, .. } if name == property::TAGS),
            "{err}"
        );
        let err = Message::builder("t").key("a b").build().unwrap_err();
        assert!(matches!(err, ModelError::InvalidProperty { .. }), "{err}");
        let err = Message::builder("t")
            .property("k", "v\u{2}")
            .build()
            .unwrap_err();
        assert!(matches!(err, ModelError::InvalidProperty { .. }), "{err}");
        let err = Message::builder("t")
            .deliver_at(UNIX_EPOCH - Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert!(matches!(err, ModelError::InvalidProperty { .. }), "{err}");
    }

    #[test]
    fn blank_user_properties_are_refused() {
        for (name, value) in [(" ", "v"), ("k", " "), ("k", "\t\n"), ("\r", "v")] {
            let err = Message::builder("T")
                .body("x")
                .property(name, value)
                .build()
                .unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidProperty { .. }),
                "{name:?}={value:?}: {err}"
            );
        }
        let msg = Message::builder("T")
            .property(" k ", " v ")
            .build()
            .unwrap();
        assert_eq!(msg.property(" k "), Some(" v "));
    }

    #[test]
    fn reserved_names_are_not_user_properties() {
        for name in [
            property::TRAN_MSG,
            property::DELAY,
            property::UNIQ_KEY,
            property::KEYS,
        ] {
            let err = Message::builder("T")
                .body("x")
                .property(name, "true")
                .build()
                .unwrap_err();
            assert!(
                matches!(err, ModelError::InvalidProperty { .. }),
                "{name}: {err}"
            );
        }
        // Names Java leaves to its users, as its documentation uses them.
        let msg = Message::builder("T")
            .body("x")
            .property(property::CHECK_IMMUNITY_TIME_IN_SECONDS, "60")
            .property(property::INNER_MULTI_DISPATCH, "%LMQ%123,%LMQ%456")
            .property(property::START_DELIVER_TIME, "1700000000000")
            .property(property::TRANSACTION_ID, "tx")
            .build()
            .unwrap();
        assert_eq!(
            msg.property(property::CHECK_IMMUNITY_TIME_IN_SECONDS),
            Some("60")
        );
        assert_eq!(property::RESERVED.len(), 51, "MessageConst.STRING_HASH_SET");
        // Their setters still set them.
        let msg = Message::builder("T")
            .body("x")
            .tags("a")
            .delay_level(3)
            .property("custom", "v")
            .build()
            .unwrap();
        assert_eq!(msg.tags(), Some("a"));
        assert_eq!(msg.property(property::DELAY), Some("3"));
    }
}
