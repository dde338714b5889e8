//! [`ListenerView`]: messages and queues as a listener sees them, which is
//! how the application named them rather than how the broker stores them.

use std::sync::Arc;
use std::time::SystemTime;

use compact_str::ToCompactString;
use rocketmq_model::time::epoch_millis;
use rocketmq_model::{MessageExt, MessageQueue, Namespace, property};

use crate::ConsumerOptions;

/// Restores the original topic of a message redelivered from the group's
/// retry topic `retry_topic` (`%RETRY%<group>`): a message of that topic
/// that carries RETRY_TOPIC gets that topic back (the first half of Java's
/// `resetRetryAndNamespace`), and one pulled from the group's pop retry
/// topic of a topic, `%RETRY%<group>_<topic>`, gets `<topic>` (Java's
/// `tryResetPopRetryTopic`; also when it came by way of the retry topic,
/// where Java, which looks at the pop retry topic first, would leave it).
pub fn restore_retry_topic(msg: &mut MessageExt, retry_topic: &str) {
    if msg.message.topic == retry_topic {
        if let Some(original) = msg.property(property::RETRY_TOPIC).map(str::to_owned) {
            msg.message.topic = original;
        }
    }
    let popped_from = (msg.message.topic.strip_prefix(retry_topic))
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned);
    if let Some(topic) = popped_from {
        msg.message.topic = topic;
    }
}

/// Turns what a consumer holds into what its listener is given. The
/// consumer keeps its own copies (as the broker named them) for sending
/// back and committing.
#[derive(Debug, Clone)]
pub(crate) struct ListenerView {
    retry_topic: String,
    namespace: Namespace,
}

impl ListenerView {
    pub(crate) fn new(options: &ConsumerOptions) -> Self {
        ListenerView {
            retry_topic: options.retry_topic(),
            namespace: options.namespace.clone(),
        }
    }

    /// `msg` for the listener: the original topic of a redelivered message
    /// restored and taken out of the namespace, CONSUME_START_TIME set to
    /// `started`.
    pub(crate) fn message(&self, msg: &MessageExt, started: SystemTime) -> MessageExt {
        let mut msg = self.returned(msg, started);
        self.namespace.unwrap_in_place(&mut msg.message.topic);
        msg
    }

    /// `msg` as the listener was given it, but with the topic the broker
    /// knows: what goes back to the broker when the listener fails on it
    /// (Java's `sendMessageBack` puts the topic back into the namespace
    /// first), so that the send-back names, and the retry copy records,
    /// the topic the message was stored in.
    pub(crate) fn returned(&self, msg: &MessageExt, started: SystemTime) -> MessageExt {
        let mut msg = msg.clone();
        restore_retry_topic(&mut msg, &self.retry_topic);
        // A decimal number is always a valid property value, and fits a
        // compact string without a heap copy.
        let _ = msg.message.properties.insert(
            property::CONSUME_START_TIME,
            epoch_millis(started).to_compact_string(),
        );
        msg
    }

    /// `mq` for the listener's context: its topic out of the namespace.
    pub(crate) fn queue(&self, mq: &Arc<MessageQueue>) -> Arc<MessageQueue> {
        if self.namespace.is_none() {
            return Arc::clone(mq);
        }
        Arc::new(self.namespace.unwrap_queue(mq).into_owned())
    }

    /// [`queue`](Self::queue) of a queue not yet shared.
    pub(crate) fn owned_queue(&self, mq: &MessageQueue) -> MessageQueue {
        self.namespace.unwrap_queue(mq).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use rocketmq_model::Message;

    use super::*;

    fn retried(topic: &str, original: &str) -> MessageExt {
        let mut msg = MessageExt::from(Message::new(topic, "body"));
        msg.message
            .properties
            .insert(property::RETRY_TOPIC, original)
            .unwrap();
        msg
    }

    #[test]
    fn restores_only_the_groups_retry_topic() {
        let mut msg = retried("%RETRY%cg", "T");
        restore_retry_topic(&mut msg, "%RETRY%cg");
        assert_eq!(msg.topic(), "T");
        let mut other = retried("%RETRY%other", "T");
        restore_retry_topic(&mut other, "%RETRY%cg");
        assert_eq!(other.topic(), "%RETRY%other");
        let view = ListenerView::new(&ConsumerOptions::new("cg"));
        let seen = view.message(&retried("%RETRY%cg", "T"), UNIX_EPOCH);
        assert_eq!(seen.topic(), "T");
        assert_eq!(seen.property(property::CONSUME_START_TIME), Some("0"));
    }

    #[test]
    fn restores_the_topic_of_a_pop_retry_topic() {
        let view = ListenerView::new(&ConsumerOptions::new("cg"));
        let pulled = MessageExt::from(Message::new("%RETRY%cg_T", "body"));
        assert_eq!(view.message(&pulled, UNIX_EPOCH).topic(), "T");
        // Sent back from there, it names the topic it was popped from.
        assert_eq!(view.returned(&pulled, UNIX_EPOCH).topic(), "T");
        // Back from the retry topic, which the broker told where it came from.
        let again = retried("%RETRY%cg", "%RETRY%cg_T");
        assert_eq!(view.message(&again, UNIX_EPOCH).topic(), "T");
        // Another group's, and a topic merely alike, are left alone.
        for topic in ["%RETRY%other_T", "%RETRY%cgx_T", "%RETRY%cg_"] {
            let msg = MessageExt::from(Message::new(topic, "body"));
            assert_eq!(view.message(&msg, UNIX_EPOCH).topic(), topic);
        }
        let mut options = ConsumerOptions::new("ns%cg");
        options.namespace = Namespace::new("ns").unwrap();
        let view = ListenerView::new(&options);
        let pulled = MessageExt::from(Message::new("%RETRY%ns%cg_ns%T", "body"));
        assert_eq!(view.message(&pulled, UNIX_EPOCH).topic(), "T");
        assert_eq!(view.returned(&pulled, UNIX_EPOCH).topic(), "ns%T");
    }

    #[test]
    fn takes_names_out_of_the_namespace() {
        let mut options = ConsumerOptions::new("ns%cg");
        options.namespace = Namespace::new("ns").unwrap();
        let view = ListenerView::new(&options);
        let fresh = MessageExt::from(Message::new("ns%T", "body"));
        assert_eq!(view.message(&fresh, UNIX_EPOCH).topic(), "T");
        let redelivered = retried("%RETRY%ns%cg", "ns%T");
        let seen = view.message(&redelivered, UNIX_EPOCH);
        assert_eq!(seen.topic(), "T");
        // The consumer's own copy keeps the broker's names.
        assert_eq!(redelivered.topic(), "%RETRY%ns%cg");
        // What goes back to the broker keeps the broker's names.
        let returned = view.returned(&redelivered, UNIX_EPOCH);
        assert_eq!(returned.topic(), "ns%T");
        assert_eq!(returned.property(property::CONSUME_START_TIME), Some("0"));
        let mq = Arc::new(MessageQueue::new("ns%T", "b", 1));
        assert_eq!(*view.queue(&mq), MessageQueue::new("T", "b", 1));
        let plain = ListenerView::new(&ConsumerOptions::new("cg"));
        assert!(Arc::ptr_eq(&plain.queue(&mq), &mq));
    }
}
