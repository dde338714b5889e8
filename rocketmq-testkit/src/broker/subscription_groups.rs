//! The subscription groups a broker knows (Java's `SubscriptionGroupManager`):
//! its predefined system groups, and every group it has seen a consumer of,
//! created on the fly as Java's `autoCreateSubscriptionGroup` (on by
//! default) does at a heartbeat, a pull or a send-back. A group stays known
//! when its consumers leave and over restarts (Java keeps
//! `subscriptionGroup.json`). UPDATE_CONSUMER_OFFSET of a group the broker
//! does not know is refused (`containsSubscriptionGroup`, which creates
//! nothing).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::message::has_topic_or_group_chars;

/// Java's `TopicValidator.GROUP_MAX_LENGTH`.
const GROUP_MAX_LEN: usize = 120;

/// The groups Java's `SubscriptionGroupManager.init` creates.
const PREDEFINED: [&str; 8] = [
    "TOOLS_CONSUMER",
    "FILTERSRV_CONSUMER",
    "SELF_TEST_C_GROUP",
    "CID_ONS-HTTP-PROXY",
    "CID_ONSAPI_PULL",
    "CID_ONSAPI_PERMISSION",
    "CID_ONSAPI_OWNER",
    "CID_RMQ_SYS_TRANS",
];

/// Known subscription groups.
#[derive(Debug)]
pub(crate) struct SubscriptionGroups {
    known: Mutex<BTreeSet<String>>,
}

impl Default for SubscriptionGroups {
    fn default() -> Self {
        SubscriptionGroups {
            known: Mutex::new(PREDEFINED.iter().map(|g| (*g).to_owned()).collect()),
        }
    }
}

impl SubscriptionGroups {
    fn known(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates `group` when it is new (Java's `findSubscriptionGroupConfig`
    /// with auto-creation on).
    pub(crate) fn note(&self, group: &str) {
        if group.trim().is_empty() {
            return;
        }
        let mut known = self.known();
        if !known.contains(group) {
            known.insert(group.to_owned());
        }
    }

    /// Java's `findSubscriptionGroupConfig` with auto-creation on: whether
    /// `group` exists once looked for. A group not known yet is created
    /// when its name is one Java's `TopicValidator.validateGroup` accepts.
    pub(crate) fn find(&self, group: &str) -> bool {
        let mut known = self.known();
        if known.contains(group) {
            return true;
        }
        if !valid_group_name(group) {
            return false;
        }
        known.insert(group.to_owned());
        true
    }

    /// Whether `group` exists (a blank name never does).
    pub(crate) fn contains(&self, group: &str) -> bool {
        !group.trim().is_empty() && self.known().contains(group)
    }
}

/// Java's `TopicValidator.validateGroup`: not blank, only `%`, `|`, ASCII
/// letters, digits, `_` and `-`, at most 120 characters.
fn valid_group_name(group: &str) -> bool {
    !group.is_empty() && group.len() <= GROUP_MAX_LEN && has_topic_or_group_chars(group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_groups_exist_and_others_once_seen() {
        let groups = SubscriptionGroups::default();
        assert!(groups.contains("TOOLS_CONSUMER"));
        assert!(!groups.contains("cg"));
        groups.note("cg");
        assert!(groups.contains("cg"));
        groups.note(" ");
        assert!(!groups.contains(" "));
    }

    #[test]
    fn find_creates_groups_with_names_java_accepts() {
        let groups = SubscriptionGroups::default();
        assert!(groups.find("cg_1-%|x"));
        assert!(groups.contains("cg_1-%|x"));
        for bad in ["", " ", "a b", "a.b", "é", &"g".repeat(121)] {
            assert!(!groups.find(bad), "{bad:?}");
            assert!(!groups.contains(bad), "{bad:?}");
        }
        assert!(groups.find(&"g".repeat(120)));
        // A group known already is found whatever its name.
        groups.note("a.b");
        assert!(groups.find("a.b"));
    }
}
