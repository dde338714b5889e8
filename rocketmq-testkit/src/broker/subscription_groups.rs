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

    /// Whether `group` exists (a blank name never does).
    pub(crate) fn contains(&self, group: &str) -> bool {
        !group.trim().is_empty() && self.known().contains(group)
    }
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
}
