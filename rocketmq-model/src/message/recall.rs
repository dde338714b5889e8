//! Recall handles (RocketMQ 5.3.1+): what a broker answers for a stored
//! timer message, so that its producer can take it back before it is due.
//!
//! A handle is the URL-safe Base64 of `"v1 <topic> <broker> <time> <id>"`
//! (Java's `RecallMessageHandle.HandleV1`): the message's real topic, the
//! broker that stores it, when it is due (epoch milliseconds, plus one) and
//! its UNIQ_KEY. The client reads the broker name out of it to know where to
//! send RECALL_MESSAGE (370); the broker checks the rest.

use std::fmt;

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::{ModelError, Result};

/// The only handle version there is.
const VERSION_1: &str = "v1";

/// Java's `Base64.getUrlEncoder()` writes padding; its decoder takes a handle
/// with or without it.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A decoded recall handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecallHandle {
    topic: String,
    broker_name: String,
    timestamp: String,
    message_id: String,
}

impl RecallHandle {
    /// The handle of message `message_id` (its UNIQ_KEY) of `topic`, stored
    /// by `broker_name` and due at `deliver_ms` (epoch ms). Java's broker
    /// writes the timer's due time plus one, "considering the floor": pass
    /// what it would, this type adds nothing.
    pub fn new(
        topic: impl Into<String>,
        broker_name: impl Into<String>,
        deliver_ms: i64,
        message_id: impl Into<String>,
    ) -> Self {
        RecallHandle {
            topic: topic.into(),
            broker_name: broker_name.into(),
            timestamp: deliver_ms.to_string(),
            message_id: message_id.into(),
        }
    }

    /// Reads a handle as Java's `RecallMessageHandle.decodeHandle` does:
    /// Base64 (URL alphabet, padding optional) of space-separated fields, the
    /// first `v1`, at least five of them (more are ignored; trailing empty
    /// ones do not count).
    pub fn parse(handle: &str) -> Result<Self> {
        let invalid = |reason: &'static str| ModelError::malformed("recall handle", reason);
        if handle.is_empty() {
            return Err(invalid("recall handle is empty"));
        }
        let raw = ENGINE
            .decode(handle)
            .map_err(|_| invalid("recall handle is not Base64 (URL alphabet)"))?;
        let raw = String::from_utf8(raw).map_err(|_| invalid("recall handle is not UTF-8"))?;
        let mut items: Vec<&str> = raw.split(' ').collect();
        while items.last().is_some_and(|item| item.is_empty()) {
            items.pop();
        }
        match items.as_slice() {
            [VERSION_1, topic, broker_name, timestamp, message_id, ..] => Ok(RecallHandle {
                topic: (*topic).to_owned(),
                broker_name: (*broker_name).to_owned(),
                timestamp: (*timestamp).to_owned(),
                message_id: (*message_id).to_owned(),
            }),
            [VERSION_1, ..] => Err(invalid("recall handle has fewer than five fields")),
            _ => Err(invalid("recall handle is not of version v1")),
        }
    }

    /// The handle as the broker sends it.
    pub fn encode(&self) -> String {
        let raw = [
            VERSION_1,
            &self.topic,
            &self.broker_name,
            &self.timestamp,
            &self.message_id,
        ]
        .join(" ");
        ENGINE.encode(raw)
    }

    /// The message's real topic (in its namespace, if it has one).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The broker that stores the message.
    pub fn broker_name(&self) -> &str {
        &self.broker_name
    }

    /// When the message is due, as the handle writes it (epoch ms).
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// When the message is due (epoch ms), or `None` when the handle's time
    /// is not a number (a broker refuses such a recall).
    pub fn deliver_ms(&self) -> Option<i64> {
        self.timestamp.parse().ok()
    }

    /// The message's unique id (UNIQ_KEY).
    pub fn message_id(&self) -> &str {
        &self.message_id
    }
}

impl fmt::Display for RecallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_as_java_does() {
        // Java: Base64.getUrlEncoder().encodeToString("v1 T b 1700000000001 ID".getBytes(UTF_8))
        let handle = RecallHandle::new("T", "b", 1_700_000_000_001, "ID");
        assert_eq!(handle.encode(), "djEgVCBiIDE3MDAwMDAwMDAwMDEgSUQ=");
        assert_eq!(RecallHandle::parse(&handle.encode()).unwrap(), handle);
        assert_eq!(handle.deliver_ms(), Some(1_700_000_000_001));
    }

    #[test]
    fn decodes_without_padding_and_with_url_characters() {
        let handle = RecallHandle::new("T?>", "b", 5, "~~~");
        let encoded = handle.encode();
        assert!(encoded.contains('_') || encoded.contains('-'), "{encoded}");
        let unpadded = encoded.trim_end_matches('=');
        assert_eq!(RecallHandle::parse(unpadded).unwrap(), handle);
    }

    #[test]
    fn refuses_what_java_refuses() {
        let b64 = |raw: &str| ENGINE.encode(raw);
        for bad in [
            String::new(),
            "not base64!".to_owned(),
            b64("v2 a b c d"),
            b64("v1 a b c"),
            b64("V1 a b c d"),
            b64("v1 a b c  "),
        ] {
            let err = RecallHandle::parse(&bad).unwrap_err();
            assert!(err.to_string().starts_with("recall handle: "), "{err}");
        }
        // More fields than five are ignored, as Java's split does.
        let extra = RecallHandle::parse(&b64("v1 a b 7 d e")).unwrap();
        assert_eq!(extra, RecallHandle::new("a", "b", 7, "d"));
        // A time that is no number is kept for the broker to refuse.
        let text = RecallHandle::parse(&b64("v1 a b soon d")).unwrap();
        assert_eq!((text.timestamp(), text.deliver_ms()), ("soon", None));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = RecallHandle::parse(&text);
        }

        #[test]
        fn round_trips(
            topic in "[A-Za-z0-9%_-]{1,20}",
            broker in "[A-Za-z0-9_-]{1,20}",
            at in any::<i64>(),
            id in "[0-9A-F]{32}",
        ) {
            let handle = RecallHandle::new(topic, broker, at, id);
            prop_assert_eq!(RecallHandle::parse(&handle.encode()).unwrap(), handle);
        }
    }
}
