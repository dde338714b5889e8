//! What a broker keeps of its orderly pops (Java's
//! `ConsumerOrderInfoManager`): per topic, group and queue, the messages the
//! last orderly pop answered (Java's `OrderInfo`) with which of them were
//! acknowledged, their next visible times as changed, how often each was
//! answered before, and the pop's `attemptId`.
//!
//! A queue is blocked while a message of its last orderly pop is neither
//! acknowledged nor visible again (`needBlock`), unless the pop asking
//! repeats that pop's `attemptId`. An orderly pop commits the group's offset
//! where it began, not past what it read, so a blocked queue's messages are
//! answered again once visible; acknowledging one commits the offset up to
//! the pop's first unacknowledged message (`commitAndNext`).
//!
//! Times are measured on tokio's clock (the pop's `popTime` is kept only to
//! match handles), so that paused tests can move past an invisible time.
//! Like Java's `consumerOrderInfo.json`, the table outlives a broker's
//! restart; Java's `autoClean` (of entries idle for a day, or of topics,
//! groups and queues gone) is not modelled.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_model::message::pop::{
    PopTopicKind, write_order_count_of_offset, write_order_count_of_queue,
};
use tokio::sync::watch;
use tokio::time::Instant;

/// Java's `commitAndNext` answer for an offset its pop did not answer (or a
/// pop that answered nothing): the acknowledgement is refused.
pub(crate) const ILLEGAL: i64 = -1;

/// The last orderly pop of one queue by one group (Java's `OrderInfo`).
#[derive(Debug, Clone)]
struct OrderInfo {
    attempt_id: Option<String>,
    /// The pop's time (epoch ms), which acknowledgements and changes name.
    pop_time: i64,
    /// When the pop was made, on tokio's clock.
    popped_at: Instant,
    invisible_time: i64,
    /// The offsets answered, each with whether it was acknowledged (Java's
    /// `offsetList` and `commitOffsetBit`).
    offsets: Vec<(i64, bool)>,
    /// Next visible times set by CHANGE_MESSAGE_INVISIBLETIME
    /// (`offsetNextVisibleTime`).
    next_visible: BTreeMap<i64, Instant>,
    /// How often each offset was answered before (`offsetConsumedCount`,
    /// nonzero counts only).
    consumed: BTreeMap<i64, i32>,
}

impl OrderInfo {
    fn visible_at(&self, offset: i64) -> Instant {
        self.next_visible.get(&offset).copied().unwrap_or_else(|| {
            self.popped_at + Duration::from_millis(u64::try_from(self.invisible_time).unwrap_or(0))
        })
    }

    /// Until when the queue is blocked for a pop with `attempt_id`: the
    /// latest visible time of an unacknowledged message, if still to come.
    fn blocked_until(&self, attempt_id: Option<&str>, now: Instant) -> Option<Instant> {
        if self.attempt_id.is_some() && self.attempt_id.as_deref() == attempt_id {
            return None;
        }
        (self.offsets.iter())
            .filter(|(_, acked)| !acked)
            .map(|&(offset, _)| self.visible_at(offset))
            .filter(|&at| now < at)
            .max()
    }

    /// Java's `getNextOffset`: the first unacknowledged offset, or past the
    /// last when all are acknowledged.
    fn next_offset(&self) -> i64 {
        match self.offsets.iter().find(|(_, acked)| !acked) {
            Some(&(offset, _)) => offset,
            None => self.offsets.last().map_or(-2, |&(offset, _)| offset + 1),
        }
    }
}

type Queues = BTreeMap<i32, OrderInfo>;

/// A broker's orderly pops, by (topic, group) and queue.
#[derive(Debug, Default)]
pub(crate) struct Orders {
    table: Mutex<HashMap<(String, String), Queues>>,
    /// Wakes the orderly pops held for a (topic, group) when its order
    /// state changes (Java: `notifyMessageArriving` from `ackOrderly`, and
    /// `ConsumerOrderInfoLockManager`'s timer).
    changes: Mutex<HashMap<(String, String), watch::Sender<u64>>>,
}

fn key(topic: &str, group: &str) -> (String, String) {
    (topic.to_owned(), group.to_owned())
}

impl Orders {
    fn table(&self) -> MutexGuard<'_, HashMap<(String, String), Queues>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        f: impl FnOnce(&mut OrderInfo) -> T,
    ) -> Option<T> {
        let mut table = self.table();
        let info = table.get_mut(&key(topic, group))?.get_mut(&queue_id)?;
        Some(f(info))
    }

    /// Java's `checkBlock`: whether an orderly pop with `attempt_id` reads
    /// nothing from the queue. A pop made with no invisible time takes this
    /// pop's, as Java's does.
    pub(crate) fn check_block(
        &self,
        attempt_id: Option<&str>,
        topic: &str,
        group: &str,
        queue_id: i32,
        invisible_time: i64,
    ) -> bool {
        let now = Instant::now();
        self.with(topic, group, queue_id, |info| {
            if info.offsets.is_empty() {
                return false;
            }
            if info.invisible_time <= 0 {
                info.invisible_time = invisible_time;
            }
            info.blocked_until(attempt_id, now).is_some()
        })
        .unwrap_or(false)
    }

    /// When the queue stops blocking a pop with `attempt_id`, if it blocks
    /// it now.
    pub(crate) fn blocked_until(
        &self,
        attempt_id: Option<&str>,
        topic: &str,
        group: &str,
        queue_id: i32,
    ) -> Option<Instant> {
        let now = Instant::now();
        self.with(topic, group, queue_id, |info| {
            info.blocked_until(attempt_id, now)
        })
        .flatten()
    }

    /// Java's `clearBlock`: forgets the queue's last orderly pop, so that
    /// nothing blocks the queue and its acknowledgements commit past
    /// themselves (an offset reset taken by a pop).
    pub(crate) fn clear_block(&self, topic: &str, group: &str, queue_id: i32) {
        if let Some(queues) = self.table().get_mut(&key(topic, group)) {
            queues.remove(&queue_id);
        }
    }

    /// Java's `update`: records the pop of `offsets` from the queue, counting
    /// how often each was answered before (not again for a pop repeating the
    /// last one's `attemptId`), and appends its `orderCountInfo` entries: one
    /// per offset answered before, in offset order, then the queue's (the
    /// least count, 0 when a message is answered for the first time).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &self,
        attempt_id: Option<&str>,
        topic: &str,
        group: &str,
        queue_id: i32,
        pop_time: i64,
        invisible_time: i64,
        offsets: &[i64],
        order_count_info: &mut String,
    ) {
        let mut table = self.table();
        let queues = table.entry(key(topic, group)).or_default();
        let consumed = match queues.get(&queue_id) {
            None => BTreeMap::new(),
            Some(prev) if prev.attempt_id.is_some() && prev.attempt_id.as_deref() == attempt_id => {
                prev.consumed.clone()
            }
            Some(prev) => (offsets.iter())
                .filter(|&&offset| prev.offsets.iter().any(|&(o, _)| o == offset))
                .map(|&offset| {
                    let before = prev.consumed.get(&offset).copied().unwrap_or(0);
                    (offset, before.saturating_add(1))
                })
                .collect(),
        };
        let kind = PopTopicKind::of_topic(topic);
        for (&offset, &count) in &consumed {
            write_order_count_of_offset(order_count_info, (kind, queue_id), offset, count);
        }
        let least = if consumed.len() == offsets.len() {
            consumed.values().copied().min().unwrap_or(0)
        } else {
            0
        };
        write_order_count_of_queue(order_count_info, (kind, queue_id), least);
        queues.insert(
            queue_id,
            OrderInfo {
                attempt_id: attempt_id.map(str::to_owned),
                pop_time,
                popped_at: Instant::now(),
                invisible_time,
                offsets: offsets.iter().map(|&o| (o, false)).collect(),
                next_visible: BTreeMap::new(),
                consumed,
            },
        );
    }

    /// Java's `commitAndNext`: marks `offset` of the pop made at `pop_time`
    /// acknowledged and answers the offset to commit (the pop's first
    /// unacknowledged one); `offset + 1` when the queue has no orderly pop,
    /// [`ILLEGAL`] when the pop did not answer `offset`, -2 (nothing to
    /// commit) when the queue's last pop is another.
    pub(crate) fn commit_and_next(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        offset: i64,
        pop_time: i64,
    ) -> i64 {
        self.with(topic, group, queue_id, |info| {
            if info.offsets.is_empty() {
                return ILLEGAL;
            }
            if info.pop_time != pop_time {
                return -2;
            }
            let Some(entry) = info.offsets.iter_mut().find(|(o, _)| *o == offset) else {
                return ILLEGAL;
            };
            entry.1 = true;
            info.next_offset()
        })
        .unwrap_or_else(|| offset.saturating_add(1))
    }

    /// Java's `updateNextVisibleTime`: `offset` of the pop made at
    /// `pop_time` becomes visible at `at`. Answers how long ago that pop was
    /// made, or `None` when the queue's last pop is another (nothing
    /// changes).
    pub(crate) fn update_next_visible(
        &self,
        topic: &str,
        group: &str,
        queue_id: i32,
        offset: i64,
        pop_time: i64,
        at: Instant,
    ) -> Option<Duration> {
        self.with(topic, group, queue_id, |info| {
            if info.pop_time != pop_time {
                return None;
            }
            info.next_visible.insert(offset, at);
            Some(info.popped_at.elapsed())
        })
        .flatten()
    }

    /// A receiver that changes when [`Orders::notify`] is called for
    /// `topic` and `group`.
    pub(crate) fn subscribe(&self, topic: &str, group: &str) -> watch::Receiver<u64> {
        let mut changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        (changes.entry(key(topic, group)))
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the orderly pops held for `topic` and `group`.
    pub(crate) fn notify(&self, topic: &str, group: &str) {
        let changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = changes.get(&key(topic, group)) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pop(orders: &Orders, attempt: Option<&str>, pop_time: i64, offsets: &[i64]) -> String {
        let mut info = String::new();
        orders.update(attempt, "T", "g", 1, pop_time, 1_000, offsets, &mut info);
        info
    }

    #[tokio::test(start_paused = true)]
    async fn counts_blocks_and_commits_as_javas_order_info() {
        let orders = Orders::default();
        assert!(!orders.check_block(None, "T", "g", 1, 1_000));
        assert_eq!(orders.commit_and_next("T", "g", 1, 7, 1), 8, "no pop");
        assert_eq!(pop(&orders, Some("a"), 10, &[5, 6, 7]), "0 1 0");
        assert!(orders.check_block(None, "T", "g", 1, 1_000));
        assert!(!orders.check_block(Some("a"), "T", "g", 1, 1_000));
        assert_eq!(orders.commit_and_next("T", "g", 1, 6, 10), 5);
        assert_eq!(orders.commit_and_next("T", "g", 1, 6, 11), -2);
        assert_eq!(orders.commit_and_next("T", "g", 1, 9, 10), ILLEGAL);
        assert_eq!(orders.commit_and_next("T", "g", 1, 5, 10), 7);

        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert!(!orders.check_block(None, "T", "g", 1, 1_000));
        // Read again from 7 (the offset committed), and one more.
        assert_eq!(pop(&orders, Some("b"), 20, &[7, 8]), "0 qo1%7 1;0 1 0");
        // The same attempt again counts nothing more.
        assert_eq!(pop(&orders, Some("b"), 21, &[7, 8]), "0 qo1%7 1;0 1 0");
        tokio::time::advance(Duration::from_millis(1_000)).await;
        assert_eq!(pop(&orders, None, 30, &[7, 8]), "0 qo1%7 2;0 qo1%8 1;0 1 1");
        let later = Instant::now() + Duration::from_secs(5);
        assert!(
            orders
                .update_next_visible("T", "g", 1, 8, 30, later)
                .is_some()
        );
        assert_eq!(orders.update_next_visible("T", "g", 1, 8, 29, later), None);
        assert_eq!(
            orders.blocked_until(None, "T", "g", 1),
            Some(later),
            "the latest unacknowledged message"
        );
        assert_eq!(orders.commit_and_next("T", "g", 1, 8, 30), 7);
        assert_eq!(
            orders.blocked_until(None, "T", "g", 1),
            Some(Instant::now() + Duration::from_millis(1_000))
        );
    }
}
