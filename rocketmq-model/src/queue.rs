//! `MessageQueue`: one queue of one topic on one broker.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One queue of a topic on a broker.
///
/// Ordered as Java's `MessageQueue.compareTo` orders it: by topic, then broker
/// name, then queue id. Rebalancing sorts queues this way, so every client of a
/// group must agree on it. Serialises as Java writes it:
/// `{"brokerName":"b","queueId":0,"topic":"t"}`.
// Fields are declared in the order fastjson writes them (sorted keys); the
// ordering traits below follow Java's compareTo instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MessageQueue {
    /// The broker's name (not its address).
    #[serde(rename = "brokerName")]
    pub broker_name: String,
    /// The queue's index on that broker.
    #[serde(rename = "queueId")]
    pub queue_id: i32,
    /// The topic.
    pub topic: String,
}

impl Ord for MessageQueue {
    fn cmp(&self, other: &Self) -> Ordering {
        self.topic
            .cmp(&other.topic)
            .then_with(|| self.broker_name.cmp(&other.broker_name))
            .then_with(|| self.queue_id.cmp(&other.queue_id))
    }
}

impl PartialOrd for MessageQueue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl MessageQueue {
    /// A queue of `topic` on `broker_name`.
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        MessageQueue {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.topic, self.broker_name, self.queue_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_like_java() {
        let mut queues = [
            MessageQueue::new("t", "b", 0),
            MessageQueue::new("t", "a", 3),
            MessageQueue::new("s", "z", 9),
            MessageQueue::new("t", "a", 1),
        ];
        queues.sort();
        let names: Vec<String> = queues.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["s@z#9", "t@a#1", "t@a#3", "t@b#0"]);
    }

    #[test]
    fn json_matches_java() {
        let json = serde_json::to_string(&MessageQueue::new("t", "b", 2)).unwrap();
        assert_eq!(json, r#"{"brokerName":"b","queueId":2,"topic":"t"}"#);
        let back: MessageQueue =
            serde_json::from_str(r#"{"brokerName":"b","queueId":2,"topic":"t"}"#).unwrap();
        assert_eq!(back, MessageQueue::new("t", "b", 2));
    }
}
