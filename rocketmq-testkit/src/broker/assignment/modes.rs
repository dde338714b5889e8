//! Whether a group's clients pull or pop a topic (Java's
//! `MessageRequestModeManager`): set by SET_MESSAGE_REQUEST_MODE, kept with
//! the broker's other state over restarts (Java persists
//! `messageRequestMode.json`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::body::MessageRequestMode;
use rocketmq_model::resource::RETRY_TOPIC_PREFIX;

/// Java's `defaultMessageRequestMode` (not configurable here). A POP
/// default would come with `defaultPopShareQueueNum`, -1.
const DEFAULT_MODE: MessageRequestMode = MessageRequestMode::Pull;

/// How a group reads a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestMode {
    pub(crate) mode: MessageRequestMode,
    /// Pop mode: how many following members share a member's queues.
    pub(crate) pop_share_queue_num: i32,
}

/// The modes set, by topic then group.
#[derive(Debug, Default)]
pub(crate) struct RequestModes {
    table: Mutex<BTreeMap<String, BTreeMap<String, RequestMode>>>,
}

impl RequestModes {
    fn table(&self) -> MutexGuard<'_, BTreeMap<String, BTreeMap<String, RequestMode>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the mode of `group` for `topic`, replacing any before.
    pub(crate) fn set(&self, topic: &str, group: &str, mode: RequestMode) {
        self.table()
            .entry(topic.to_owned())
            .or_default()
            .insert(group.to_owned(), mode);
    }

    /// The mode `group` reads `topic` in: the one set, else pull for a
    /// retry topic, else the broker's default.
    pub(crate) fn of(&self, topic: &str, group: &str) -> RequestMode {
        if let Some(set) = self.table().get(topic).and_then(|groups| groups.get(group)) {
            return *set;
        }
        let mode = if topic.starts_with(RETRY_TOPIC_PREFIX) {
            MessageRequestMode::Pull
        } else {
            DEFAULT_MODE
        };
        RequestMode {
            mode,
            pop_share_queue_num: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_until_set_per_topic_and_group() {
        let modes = RequestModes::default();
        assert_eq!(modes.of("T", "g").mode, MessageRequestMode::Pull);
        let pop = RequestMode {
            mode: MessageRequestMode::Pop,
            pop_share_queue_num: 2,
        };
        modes.set("T", "g", pop);
        assert_eq!(modes.of("T", "g"), pop);
        assert_eq!(modes.of("T", "h").mode, MessageRequestMode::Pull);
        assert_eq!(modes.of("U", "g").mode, MessageRequestMode::Pull);
        assert_eq!(modes.of("%RETRY%g", "g").mode, MessageRequestMode::Pull);
    }
}
