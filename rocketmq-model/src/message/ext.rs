//! [`MessageExt`]: a message as the broker stored it.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Message, OffsetMessageId};

/// A received (stored) message: the [`Message`] plus every field of the
/// stored-message record (PROTOCOL.md §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// Topic, body, user flag and properties.
    pub message: Message,
    /// The queue within the topic.
    pub queue_id: i32,
    /// The record's TOTALSIZE.
    pub store_size: i32,
    /// CRC32 of the stored (possibly compressed) body, masked with 0x7FFFFFFF.
    pub body_crc: i32,
    /// The logical offset in the consume queue.
    pub queue_offset: i64,
    /// The offset in the broker's commit log.
    pub commit_log_offset: i64,
    /// The message sysflag ([`sysflag`](super::sysflag)). After decoding, bit 0
    /// (compressed) is cleared when the body was decompressed.
    pub sys_flag: i32,
    /// When the producer made the message, in ms since the Unix epoch.
    pub born_timestamp: i64,
    /// The producer's address as the broker saw it.
    pub born_host: SocketAddr,
    /// When the broker stored the message, in ms since the Unix epoch.
    pub store_timestamp: i64,
    /// The broker's store address.
    pub store_host: SocketAddr,
    /// How many times the message was consumed again after failures.
    pub reconsume_times: i32,
    /// The commit-log offset of the prepared (half) message, for transactions.
    pub prepared_transaction_offset: i64,
}

impl Default for MessageExt {
    fn default() -> Self {
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        MessageExt {
            message: Message::default(),
            queue_id: 0,
            store_size: 0,
            body_crc: 0,
            queue_offset: 0,
            commit_log_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: unspecified,
            store_timestamp: 0,
            store_host: unspecified,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }
}

impl MessageExt {
    /// The offset message id (§5.6), from the store host and commit-log offset.
    pub fn offset_msg_id(&self) -> String {
        OffsetMessageId::new(self.store_host, self.commit_log_offset).to_string()
    }

    /// The message id as Java's `MessageClientExt.getMsgId` gives it: the
    /// UNIQ_KEY property when present, otherwise the offset message id.
    pub fn msg_id(&self) -> Cow<'_, str> {
        match self.message.uniq_key() {
            Some(id) => Cow::Borrowed(id),
            None => Cow::Owned(self.offset_msg_id()),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.message.topic
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.message.body
    }

    /// The tag (TAGS).
    pub fn tags(&self) -> Option<&str> {
        self.message.tags()
    }

    /// The business keys (KEYS, split on spaces).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.message.keys()
    }

    /// The value of property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.message.property(name)
    }

    /// [`born_timestamp`](Self::born_timestamp) as a time.
    pub fn born_time(&self) -> SystemTime {
        epoch_ms(self.born_timestamp)
    }

    /// [`store_timestamp`](Self::store_timestamp) as a time.
    pub fn store_time(&self) -> SystemTime {
        epoch_ms(self.store_timestamp)
    }
}

impl From<Message> for MessageExt {
    fn from(message: Message) -> Self {
        MessageExt {
            message,
            ..MessageExt::default()
        }
    }
}

fn epoch_ms(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    let time = if ms >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    time.unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::property;

    #[test]
    fn ids() {
        let mut ext = MessageExt {
            store_host: "10.0.0.1:10911".parse().unwrap(),
            commit_log_offset: 0x12AB,
            ..MessageExt::default()
        };
        assert_eq!(ext.offset_msg_id(), "0A00000100002A9F00000000000012AB");
        assert_eq!(ext.msg_id(), "0A00000100002A9F00000000000012AB");
        ext.message
            .properties
            .insert(property::UNIQ_KEY, "UNIQ")
            .unwrap();
        assert_eq!(ext.msg_id(), "UNIQ");
    }

    #[test]
    fn forwarding_accessors() {
        let msg = Message::builder("t")
            .body("b")
            .tags("x")
            .keys(["k"])
            .build()
            .unwrap();
        let ext = MessageExt {
            born_timestamp: 1500,
            store_timestamp: -1,
            ..MessageExt::from(msg)
        };
        assert_eq!(ext.topic(), "t");
        assert_eq!(&ext.body()[..], b"b");
        assert_eq!(ext.tags(), Some("x"));
        assert_eq!(ext.keys().collect::<Vec<_>>(), ["k"]);
        assert_eq!(ext.property(property::TAGS), Some("x"));
        assert_eq!(ext.born_time(), UNIX_EPOCH + Duration::from_millis(1500));
        assert_eq!(ext.store_time(), UNIX_EPOCH - Duration::from_millis(1));
    }
}
