//! The broker's topic table: queue counts and permission per topic, with
//! auto-creation from `TBW102` and the creation of retry and DLQ topics.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::route::{AUTO_CREATE_TOPIC, perm};

/// One topic's configuration on a broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Queues consumers read.
    pub read_queue_nums: i32,
    /// Queues producers write.
    pub write_queue_nums: i32,
    /// Permission bits (`rocketmq_model::route::perm`): 6 = read and write.
    pub perm: i32,
    /// Topic system flag bits.
    pub topic_sys_flag: i32,
}

impl TopicConfig {
    /// Read and write queues of `queues` each, readable and writable.
    pub fn new(read_queue_nums: i32, write_queue_nums: i32) -> Self {
        TopicConfig {
            read_queue_nums,
            write_queue_nums,
            perm: perm::READ | perm::WRITE,
            topic_sys_flag: 0,
        }
    }

    /// The same queues with permission `perm`.
    pub fn with_perm(mut self, perm: i32) -> Self {
        self.perm = perm;
        self
    }

    /// The larger of the read and write counts: the queue ids that exist.
    pub(crate) fn queue_count(&self) -> i32 {
        self.read_queue_nums.max(self.write_queue_nums)
    }
}

/// The topic table.
#[derive(Debug, Default)]
pub(crate) struct Topics {
    table: Mutex<BTreeMap<String, TopicConfig>>,
}

/// What `create_for_send` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The topic existed.
    Existing(TopicConfig),
    /// The topic was created now (register it with the nameserver).
    Created(TopicConfig),
    /// No such topic and no way to create it.
    Missing,
}

impl Topics {
    fn table(&self) -> MutexGuard<'_, BTreeMap<String, TopicConfig>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.table().get(topic).copied()
    }

    /// Every topic and its configuration.
    pub(crate) fn all(&self) -> Vec<(String, TopicConfig)> {
        self.table().iter().map(|(t, c)| (t.clone(), *c)).collect()
    }

    /// Sets a topic's configuration (created up front or by an admin).
    pub(crate) fn put(&self, topic: &str, config: TopicConfig) {
        self.table().insert(topic.to_owned(), config);
    }

    /// Java's `createTopicInSendMessageMethod`: an unknown topic is created
    /// from `default_topic` when that topic exists with the INHERIT bit, with
    /// `min(client_queue_nums, default's write queues)` queues and the
    /// default's permission minus INHERIT.
    pub(crate) fn get_or_create_for_send(
        &self,
        topic: &str,
        default_topic: &str,
        client_queue_nums: i32,
    ) -> Lookup {
        let mut table = self.table();
        if let Some(config) = table.get(topic) {
            return Lookup::Existing(*config);
        }
        let Some(default) = table.get(default_topic).copied() else {
            return Lookup::Missing;
        };
        if default_topic != AUTO_CREATE_TOPIC || default.perm & perm::INHERIT == 0 {
            return Lookup::Missing;
        }
        let queues = client_queue_nums.min(default.write_queue_nums).max(1);
        let config = TopicConfig {
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: default.perm & !perm::INHERIT,
            topic_sys_flag: 0,
        };
        table.insert(topic.to_owned(), config);
        Lookup::Created(config)
    }

    /// Java's `createTopicInSendMessageBackMethod`: the topic with `queues`
    /// queues and `perm` unless it exists.
    pub(crate) fn get_or_create_internal(&self, topic: &str, queues: i32, perm: i32) -> Lookup {
        let mut table = self.table();
        if let Some(config) = table.get(topic) {
            return Lookup::Existing(*config);
        }
        let config = TopicConfig::new(queues, queues).with_perm(perm);
        table.insert(topic.to_owned(), config);
        Lookup::Created(config)
    }
}

impl Lookup {
    /// The configuration, if the topic exists now.
    pub(crate) fn config(self) -> Option<TopicConfig> {
        match self {
            Lookup::Existing(config) | Lookup::Created(config) => Some(config),
            Lookup::Missing => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_creation_inherits_from_tbw102_only() {
        let topics = Topics::default();
        assert_eq!(
            topics.get_or_create_for_send("T", AUTO_CREATE_TOPIC, 4),
            Lookup::Missing
        );
        topics.put(AUTO_CREATE_TOPIC, TopicConfig::new(8, 8).with_perm(7));
        let created = topics.get_or_create_for_send("T", AUTO_CREATE_TOPIC, 4);
        assert_eq!(created, Lookup::Created(TopicConfig::new(4, 4)));
        assert_eq!(
            topics.get_or_create_for_send("T", AUTO_CREATE_TOPIC, 4),
            Lookup::Existing(TopicConfig::new(4, 4))
        );
        topics.put(AUTO_CREATE_TOPIC, TopicConfig::new(8, 8).with_perm(6));
        assert_eq!(
            topics.get_or_create_for_send("U", AUTO_CREATE_TOPIC, 4),
            Lookup::Missing
        );
    }
}
