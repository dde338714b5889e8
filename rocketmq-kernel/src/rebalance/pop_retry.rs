//! The pop retry topic of a topic whose queues the brokers assign (the first
//! step of Java's `RebalanceImpl#updateMessageQueueAssignment`).
//!
//! In pop mode a failed or unacknowledged message comes back through
//! `%RETRY%<group>_<topic>`, which only pops of the topic read. Once the
//! topic's queues are all pulled again, nothing would: so then the consumer
//! subscribes to that topic (every tag) and pulls it like any other, and
//! when they are all popped again it lets the subscription go. A mixed or
//! empty assignment, and a retry topic's, change nothing.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use rocketmq_model::body::{ExpressionType, MessageRequestMode};
use rocketmq_model::resource::pop_retry_topic_v1;
use rocketmq_model::{MessageQueue, SubscriptionData};

use super::shared::Shared;
use crate::consumer_options::RETRY_TOPIC_PREFIX;

/// Subscribes to or unsubscribes from the pop retry topic of `topic` as its
/// assignment `allocated` by the brokers requires (a consumer that
/// allocates itself never pops); true when that changed the
/// subscriptions (the next round should come at once, to take the retry
/// topic's queues or let them go).
pub(crate) fn follow(
    shared: &Shared,
    topic: &str,
    allocated: &BTreeMap<MessageQueue, MessageRequestMode>,
) -> bool {
    if !shared.broker_rebalances() || topic.starts_with(RETRY_TOPIC_PREFIX) || allocated.is_empty()
    {
        return false;
    }
    let all = |mode: MessageRequestMode| allocated.values().all(|m| *m == mode);
    let retry_topic = pop_retry_topic_v1(topic, &shared.options.group);
    let mut subscriptions = (shared.subscriptions.write()).unwrap_or_else(PoisonError::into_inner);
    if all(MessageRequestMode::Pop) {
        let removed = subscriptions.remove(&retry_topic).is_some();
        if removed {
            tracing::info!(group = %shared.options.group, %topic, %retry_topic,
                "popped again: unsubscribed from the pop retry topic");
        }
        return removed;
    }
    // Not for a topic unsubscribed while the round ran.
    if !all(MessageRequestMode::Pull)
        || subscriptions.contains_key(&retry_topic)
        || !subscriptions.contains_key(topic)
    {
        return false;
    }
    match SubscriptionData::from_expression(&retry_topic, "*", ExpressionType::Tag) {
        Ok(subscription) => {
            tracing::info!(group = %shared.options.group, %topic, %retry_topic,
                "pulled again: subscribed to the pop retry topic");
            subscriptions.insert(retry_topic, subscription);
            true
        }
        Err(err) => {
            tracing::warn!(%retry_topic, error = %err, "subscribing to the pop retry topic failed");
            false
        }
    }
}
