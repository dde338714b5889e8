//! [`ByConfig`]: a fixed list of queues (Java `AllocateMessageQueueByConfig`).

use rocketmq_model::MessageQueue;

use super::AllocateStrategy;

/// Always consumes the configured queues, whatever the group looks like.
/// Name `"CONFIG"`.
///
/// As in Java, the list is returned as configured, even queues that the
/// topic's route does not (or no longer) contain: whoever configures it
/// decides. Every client of the group needs its own, disjoint list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByConfig {
    queues: Vec<MessageQueue>,
}

impl ByConfig {
    /// A strategy that always returns `queues`.
    pub fn new(queues: impl IntoIterator<Item = MessageQueue>) -> Self {
        ByConfig {
            queues: queues.into_iter().collect(),
        }
    }

    /// The configured queues.
    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }
}

impl AllocateStrategy for ByConfig {
    fn allocate(
        &self,
        _group: &str,
        _own_client_id: &str,
        _queues: &[MessageQueue],
        _client_ids: &[String],
    ) -> Vec<MessageQueue> {
        self.queues.clone()
    }

    fn name(&self) -> &str {
        "CONFIG"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_configured_queues() {
        let mine = vec![
            MessageQueue::new("t", "b", 3),
            MessageQueue::new("t", "a", 1),
        ];
        let strategy = ByConfig::new(mine.clone());
        let all = vec![MessageQueue::new("t", "a", 0)];
        assert_eq!(strategy.allocate("g", "c", &all, &["c".into()]), mine);
        assert_eq!(strategy.allocate("g", "other", &[], &[]), mine);
        assert_eq!(strategy.name(), "CONFIG");
    }
}
