//! [`ReceivedMessage`]: a message a [`SimpleConsumer`](super::SimpleConsumer)
//! received, and the receipt handle that acknowledges it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::MessageExt;
use rocketmq_model::message::ReceiptHandle;

/// A received message: invisible to the rest of the group until
/// acknowledged ([`SimpleConsumer::ack`](super::SimpleConsumer::ack)) or
/// until its invisible duration passes, when the broker delivers it again.
#[derive(Debug, Clone)]
pub struct ReceivedMessage {
    /// The message; its topic is the one subscribed (without the
    /// namespace), also when the broker redelivers it.
    message: MessageExt,
    /// What acknowledges it.
    handle: ReceiptHandle,
    /// The topic as the broker knows it (in the namespace): acknowledgements
    /// name it.
    pub(super) wire_topic: String,
}

impl ReceivedMessage {
    pub(super) fn new(message: MessageExt, handle: ReceiptHandle, wire_topic: String) -> Self {
        ReceivedMessage {
            message,
            handle,
            wire_topic,
        }
    }

    /// The message.
    pub fn message(&self) -> &MessageExt {
        &self.message
    }

    /// The message, without its handle (which can then no longer be acknowledged).
    pub fn into_message(self) -> MessageExt {
        self.message
    }

    /// The receipt handle: its pop, the broker and queue it came from.
    /// [`SimpleConsumer::change_invisible_duration`](super::SimpleConsumer::change_invisible_duration)
    /// replaces it.
    pub fn receipt_handle(&self) -> &ReceiptHandle {
        &self.handle
    }

    pub(super) fn renew(&mut self, handle: ReceiptHandle) {
        self.handle = handle;
    }

    /// How many times the message was delivered, this time included (its
    /// reconsume times plus one).
    pub fn delivery_attempt(&self) -> u32 {
        u32::try_from(self.message.reconsume_times)
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// When the broker delivers the message again unless it is
    /// acknowledged, by the broker's clock.
    pub fn invisible_until(&self) -> SystemTime {
        let at = u64::try_from(self.handle.visible_at_ms()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_millis(at)
    }
}
