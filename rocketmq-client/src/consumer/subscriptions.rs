//! A consumer's subscription table, shared by its heartbeat, its rebalancing
//! and its answers to the broker's admin requests.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rocketmq_kernel::ConsumerOptions;
use rocketmq_model::SubscriptionData;
use rocketmq_model::body::{ConsumeType, ConsumerData};

use super::selector::MessageSelector;
use crate::error::Result;

/// Topic → subscription, readable and changeable while the consumer runs.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions(RwLock<BTreeMap<String, SubscriptionData>>);

impl Subscriptions {
    /// The table of `selectors` (one per topic; a later one replaces an
    /// earlier one for the same topic).
    pub(crate) fn from_selectors<'a>(
        selectors: impl IntoIterator<Item = &'a (String, MessageSelector)>,
    ) -> Result<Self> {
        let table = Self::default();
        for (topic, selector) in selectors {
            table.insert(selector.subscription(topic)?);
        }
        Ok(table)
    }

    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, SubscriptionData>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, SubscriptionData>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The subscription to `topic`.
    pub(crate) fn get(&self, topic: &str) -> Option<SubscriptionData> {
        self.read().get(topic).cloned()
    }

    /// The subscription of `seen`'s topic when it is no longer `seen`
    /// (another version; `None` when the same or gone): nothing is copied
    /// when it is the same.
    pub(crate) fn changed_since(&self, seen: &SubscriptionData) -> Option<SubscriptionData> {
        self.read()
            .get(&seen.topic)
            .filter(|now| now.sub_version != seen.sub_version)
            .cloned()
    }

    /// Every subscription, by topic.
    pub(crate) fn list(&self) -> Vec<SubscriptionData> {
        self.read().values().cloned().collect()
    }

    /// The subscribed topics, sorted.
    pub(crate) fn topics(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Adds or replaces the subscription to its topic.
    pub(crate) fn insert(&self, subscription: SubscriptionData) {
        self.write()
            .insert(subscription.topic.clone(), subscription);
    }

    /// Adds or replaces the subscription to its topic, with a new version
    /// given under the table's lock: above every version this table held
    /// or gave before, whatever [`renew_versions`](Self::renew_versions)
    /// did since the subscription was made.
    pub(crate) fn insert_latest(&self, mut subscription: SubscriptionData) {
        let mut table = self.write();
        subscription.renew_version();
        table.insert(subscription.topic.clone(), subscription);
    }

    /// Gives the subscriptions of `topics` new versions (those still
    /// subscribed), in place: a subscription replaced meanwhile keeps its
    /// expression. Java's `RebalancePushImpl#messageQueueChanged`.
    pub(crate) fn renew_versions(&self, topics: &[String]) {
        let mut table = self.write();
        for topic in topics {
            if let Some(subscription) = table.get_mut(topic) {
                subscription.renew_version();
            }
        }
    }

    /// Removes the subscription to `topic`.
    pub(crate) fn remove(&self, topic: &str) {
        self.write().remove(topic);
    }

    /// The consumer's entry of a heartbeat.
    pub(crate) fn consumer_data(
        &self,
        options: &ConsumerOptions,
        consume_type: ConsumeType,
    ) -> ConsumerData {
        ConsumerData {
            consume_from_where: options.consume_from_where,
            consume_type,
            group_name: options.group.clone(),
            message_model: options.message_model,
            subscription_data_set: self.list(),
            unit_mode: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_later_selector_for_a_topic_replaces_the_earlier_one() {
        let selectors = [
            ("T".to_owned(), MessageSelector::tag("A")),
            ("U".to_owned(), MessageSelector::all()),
            ("T".to_owned(), MessageSelector::tag("B")),
        ];
        let table = Subscriptions::from_selectors(&selectors).unwrap();
        assert_eq!(table.topics(), ["T", "U"]);
        assert_eq!(table.get("T").unwrap().sub_string, "B");
        table.remove("U");
        assert_eq!(table.list().len(), 1);
        let data = table.consumer_data(&ConsumerOptions::new("cg"), ConsumeType::ConsumePassively);
        assert_eq!(data.group_name, "cg");
        assert_eq!(data.subscription_data_set.len(), 1);
    }

    #[test]
    fn renewed_versions_keep_the_expressions() {
        let selectors = [
            ("T".to_owned(), MessageSelector::tag("A")),
            ("U".to_owned(), MessageSelector::all()),
        ];
        let table = Subscriptions::from_selectors(&selectors).unwrap();
        let before = table.list();
        table.renew_versions(&["T".to_owned(), "gone".to_owned()]);
        let t = table.get("T").unwrap();
        assert!(t.sub_version > before[0].sub_version);
        assert_eq!(t.sub_string, "A");
        assert_eq!(table.get("U").unwrap(), before[1]);
        assert_eq!(table.topics(), ["T", "U"]);

        // A subscription made before a renewal goes in above it.
        let made_before = MessageSelector::tag("B").subscription("T").unwrap();
        table.renew_versions(&["T".to_owned()]);
        let renewed = table.get("T").unwrap().sub_version;
        table.insert_latest(made_before);
        let t = table.get("T").unwrap();
        assert_eq!(t.sub_string, "B");
        assert!(t.sub_version > renewed);
    }
}
