//! Java 5's server-side offset reset (`BrokerConfig.useServerSideResetOffset`,
//! on by default): `AdminBrokerProcessor.resetOffsetInner` and the reset
//! table of `ConsumerOffsetManager` (`assignResetOffset`, `hasOffsetReset`,
//! `queryThenEraseResetOffset`).
//!
//! A reset sends nothing to the group's clients. Each queue's target offset
//! is committed at once and kept as pending until the group's next pull or
//! pop of the queue takes it: a pull is answered PULL_OFFSET_MOVED with the
//! reset offset as `nextBeginOffset` (status OFFSET_RESET), a pop reads from
//! it (see `pull` and `pop`). While it is pending, QUERY_CONSUMER_OFFSET
//! answers it (`queryOffset`), UPDATE_CONSUMER_OFFSET of the queue is
//! answered SUCCESS and ignored, and an orderly pop's acknowledgement
//! commits nothing (`AckMessageProcessor.ackOrderly`), so a client's
//! periodic commit of its old offset cannot undo the reset before the
//! client has heard of it.
//!
//! The pending table is not persisted (Java's has no getter, so
//! `consumerOffset.json` leaves it out): a broker's restart forgets it,
//! while the offsets committed stay. The testkit models neither Java's pop
//! in-flight counters (`enablePopMessageThreshold` is off by default) nor
//! its pop checkpoint buffer (pops commit their offsets at once here), which
//! a reset clears in Java.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::MessageQueue;

use super::BrokerCore;
use crate::error::{Result, TestkitError};

/// Which queues a reset moves, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ResetTarget {
    /// Every readable queue of the topic, to its offset at this time (ms;
    /// negative: the queue's max offset).
    AllAt(i64),
    /// One queue to an offset, which must lie in `[min, max + 1]`.
    QueueTo { queue_id: i32, offset: i64 },
}

/// Resets not yet taken by a pull or a pop, by (topic, group) and queue
/// (Java's `ConsumerOffsetManager.resetOffsetTable`).
#[derive(Debug, Default)]
pub(crate) struct PendingResets {
    table: Mutex<HashMap<(String, String), BTreeMap<i32, i64>>>,
}

fn key(topic: &str, group: &str) -> (String, String) {
    (topic.to_owned(), group.to_owned())
}

impl PendingResets {
    fn table(&self) -> MutexGuard<'_, HashMap<(String, String), BTreeMap<i32, i64>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The reset offset pending for the group's queue.
    pub(crate) fn get(&self, topic: &str, group: &str, queue_id: i32) -> Option<i64> {
        self.table()
            .get(&key(topic, group))?
            .get(&queue_id)
            .copied()
    }

    /// Java's `hasOffsetReset`.
    pub(crate) fn has(&self, topic: &str, group: &str, queue_id: i32) -> bool {
        self.get(topic, group, queue_id).is_some()
    }

    /// Java's `queryThenEraseResetOffset`: the pending offset, now taken.
    pub(crate) fn take(&self, topic: &str, group: &str, queue_id: i32) -> Option<i64> {
        self.table().get_mut(&key(topic, group))?.remove(&queue_id)
    }

    /// Forgets every pending reset (the broker stopped).
    pub(crate) fn clear(&self) {
        self.table().clear();
    }

    fn put(&self, topic: &str, group: &str, queue_id: i32, offset: i64) {
        (self.table().entry(key(topic, group)).or_default()).insert(queue_id, offset);
    }
}

/// Java's `ConsumerOffsetManager.queryOffset`: the pending reset offset of
/// the group's queue, else its committed offset; `None` for neither (Java's
/// -1).
pub(crate) fn query_offset(
    core: &BrokerCore,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> Option<i64> {
    (core.resets.get(topic, group, queue_id)).or_else(|| core.offsets.get(group, topic, queue_id))
}

/// Java's `assignResetOffset`: pending, and committed too ("it still makes
/// sense in cases like clients are offline"). A negative queue or offset
/// is ignored.
fn assign(core: &BrokerCore, group: &str, topic: &str, queue_id: i32, offset: i64) {
    if queue_id < 0 || offset < 0 {
        tracing::warn!(
            group,
            topic,
            queue_id,
            offset,
            "illegal arguments of a reset offset"
        );
        return;
    }
    core.resets.put(topic, group, queue_id, offset);
    core.offsets.commit(group, topic, queue_id, offset);
}

/// The start of a pop of a queue whose reset is pending (Java's
/// `PopMessageProcessor.resetPopOffset`): the reset taken, the queue's
/// orderly pop forgotten (`clearBlock`, so nothing blocks it) and its offset
/// committed.
pub(crate) fn take_for_pop(
    core: &BrokerCore,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> Option<i64> {
    let offset = core.resets.take(topic, group, queue_id)?;
    core.pop.orders.clear_block(topic, group, queue_id);
    core.offsets.commit(group, topic, queue_id, offset);
    Some(offset)
}

/// Java's `AdminBrokerProcessor.resetOffsetInner`: the target offset of
/// each queue asked (by time: `searchOffsetByTimestamp`, the max offset for
/// a negative time), assigned as pending and committed; answers the table,
/// by queue of this broker. Refused for a topic or subscription group the
/// broker does not have, an offset outside the queue's range, or a topic
/// with no readable queue.
pub(crate) fn reset_offset(
    core: &BrokerCore,
    group: &str,
    topic: &str,
    target: ResetTarget,
) -> Result<BTreeMap<MessageQueue, i64>> {
    let config = core
        .topics
        .get(topic)
        .ok_or_else(|| TestkitError::TopicNotFound(topic.to_owned()))?;
    if !core.subscription_groups.contains(group) {
        return Err(TestkitError::SubscriptionGroupNotFound(group.to_owned()));
    }
    let store = &core.store;
    let at_time = |queue_id, timestamp: i64| {
        if timestamp < 0 {
            store.max_offset(topic, queue_id)
        } else {
            store.search_offset(topic, queue_id, timestamp, false)
        }
    };
    let mut offsets = BTreeMap::new();
    match target {
        ResetTarget::AllAt(timestamp) => {
            for queue_id in 0..config.read_queue_nums {
                offsets.insert(queue_id, at_time(queue_id, timestamp));
            }
        }
        ResetTarget::QueueTo { queue_id, offset } => {
            if queue_id < 0 || queue_id >= config.read_queue_nums {
                // Java resets every queue by time for a negative id; this
                // call names one queue by offset, so it refuses instead.
                return Err(TestkitError::ResetRefused(format!(
                    "queue {queue_id} is not a queue of {topic}"
                )));
            }
            let min = store.min_offset(topic, queue_id);
            let max = store.max_offset(topic, queue_id);
            // Java's check, `max + 1` included.
            if (min >= 0 && offset < min) || offset > max + 1 {
                return Err(TestkitError::ResetRefused(format!(
                    "Target offset {offset} not in consume queue range [{min}-{max}]"
                )));
            }
            offsets.insert(queue_id, offset);
        }
    }
    if offsets.is_empty() {
        return Err(TestkitError::ResetRefused("No queues to reset.".to_owned()));
    }
    let mut table = BTreeMap::new();
    for (queue_id, offset) in offsets {
        assign(core, group, topic, queue_id, offset);
        table.insert(MessageQueue::new(topic, core.name(), queue_id), offset);
    }
    Ok(table)
}
