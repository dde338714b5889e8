//! Queue selection for sends: round robin over a topic's publish queues, a
//! stable queue per key, and user selectors.
//!
//! Round robin is [`RoundRobin`], the shared counter each
//! [`PublishInfo`](crate::route::PublishInfo) carries (Java's `sendWhichQueue`,
//! shared by every task instead of thread-local). Choosing while avoiding
//! slow or failed brokers is [`FaultStrategy`](crate::fault::FaultStrategy).

use std::sync::atomic::{AtomicU32, Ordering};

use rocketmq_model::{Message, MessageQueue, java_string_hash};

/// Java masks its index to a non-negative `int` (`ThreadLocalIndex`).
const POSITIVE_MASK: u32 = 0x7FFF_FFFF;

/// A round-robin position shared by every sender of a topic.
///
/// Starts at a random position (as Java's `ThreadLocalIndex` does) so that
/// many producers started together do not all begin with the same queue.
#[derive(Debug)]
pub struct RoundRobin {
    next: AtomicU32,
}

impl RoundRobin {
    /// A counter starting at a random position.
    pub fn new() -> Self {
        Self::starting_at(rand::random::<u32>())
    }

    /// A counter whose first [`next_index`](Self::next_index) is `start + 1`
    /// (deterministic, for tests and replays).
    pub fn starting_at(start: u32) -> Self {
        RoundRobin {
            next: AtomicU32::new(start),
        }
    }

    /// Advances the counter and returns a position in `0..len`, or `None` when
    /// `len` is 0.
    pub fn next_index(&self, len: usize) -> Option<usize> {
        if len == 0 {
            return None;
        }
        let value = self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & POSITIVE_MASK;
        usize::try_from(value).ok().map(|value| value % len)
    }

    /// Moves the counter to a random position.
    pub fn reset(&self) {
        self.next.store(rand::random::<u32>(), Ordering::Relaxed);
    }
}

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

/// Chooses the queue a message goes to, e.g. to keep every message of one
/// order on one queue (ordered messages).
///
/// Returns an index into `queues`; `None` (or an index out of range) means "no
/// queue", and the send fails instead of going elsewhere. Closures taking
/// `(&[MessageQueue], &Message)` are selectors.
///
/// ```
/// use rocketmq_kernel::select::{QueueSelector, select_queue};
/// use rocketmq_model::{Message, MessageQueue};
///
/// /// Sends every message to the queue numbered by its flag.
/// struct ByFlag;
///
/// impl QueueSelector for ByFlag {
///     fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize> {
///         let flag = usize::try_from(msg.flag).ok()?;
///         Some(flag % queues.len())
///     }
/// }
///
/// let queues: Vec<MessageQueue> = (0..4).map(|id| MessageQueue::new("T", "b", id)).collect();
/// let mut msg = Message::new("T", "body");
/// msg.flag = 6;
/// assert_eq!(select_queue(&ByFlag, &queues, &msg).unwrap().queue_id, 2);
///
/// // A closure works as well.
/// let first = |_: &[MessageQueue], _: &Message| Some(0);
/// assert_eq!(select_queue(&first, &queues, &msg).unwrap().queue_id, 0);
/// ```
pub trait QueueSelector: Send + Sync {
    /// The index of the chosen queue in `queues`.
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize>;
}

impl<F> QueueSelector for F
where
    F: Fn(&[MessageQueue], &Message) -> Option<usize> + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize> {
        self(queues, msg)
    }
}

/// Runs `selector` and checks its answer: the chosen queue, or `None` when it
/// chose nothing or an index out of range.
pub fn select_queue<'q, S: QueueSelector + ?Sized>(
    selector: &S,
    queues: &'q [MessageQueue],
    msg: &Message,
) -> Option<&'q MessageQueue> {
    if queues.is_empty() {
        return None;
    }
    queues.get(selector.select(queues, msg)?)
}

/// The queue position of `key` among `len` queues: Java's
/// `String.hashCode()` of the key (UTF-16, `h = 31 * h + c`, wrapping), its
/// absolute value, modulo `len`; `None` when `len` is 0.
///
/// This is what Java's `SelectMessageQueueByHash` computes for a `String`
/// argument, so a Rust and a Java producer put one key on the same queue of
/// the same queue list. (For `Integer.MIN_VALUE` Java's `Math.abs` stays
/// negative and its selector fails; here the magnitude 2^31 is used.)
pub fn hash_index(key: &str, len: usize) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let hash = u64::from(java_string_hash(key).unsigned_abs());
    let len = u64::try_from(len).ok()?;
    usize::try_from(hash % len).ok()
}

/// Sends every message with the same key to the same queue ([`hash_index`]).
///
/// The key is the message's sharding key (`__SHARDINGKEY`, set with
/// `MessageBuilder::sharding_key`); a message without one gets no queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelectByShardingKey;

impl QueueSelector for SelectByShardingKey {
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize> {
        hash_index(msg.sharding_key()?, queues.len())
    }
}

/// Sends every message to the queue of one fixed key ([`hash_index`]), as
/// Java's `SelectMessageQueueByHash` does with the key as its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectByKey(pub String);

impl QueueSelector for SelectByKey {
    fn select(&self, queues: &[MessageQueue], _msg: &Message) -> Option<usize> {
        hash_index(&self.0, queues.len())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use rocketmq_model::message::property;

    use super::*;

    fn queues(n: i32) -> Vec<MessageQueue> {
        (0..n).map(|id| MessageQueue::new("T", "b", id)).collect()
    }

    #[test]
    fn round_robin_visits_every_position_in_turn() {
        let rr = RoundRobin::starting_at(0);
        let picks: Vec<_> = (0..6).map(|_| rr.next_index(4).unwrap()).collect();
        assert_eq!(picks, [1, 2, 3, 0, 1, 2]);
        assert_eq!(rr.next_index(0), None);
    }

    #[test]
    fn round_robin_stays_non_negative_when_wrapping() {
        let rr = RoundRobin::starting_at(u32::MAX - 1);
        // u32::MAX masks to i32::MAX, then 0, then 1: Java's positive mask.
        let picks: Vec<_> = (0..3).map(|_| rr.next_index(10).unwrap()).collect();
        assert_eq!(picks, [(0x7FFF_FFFF % 10) as usize, 0, 1]);
    }

    #[test]
    fn round_robin_is_shared_between_threads() {
        let rr = std::sync::Arc::new(RoundRobin::starting_at(0));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let rr = std::sync::Arc::clone(&rr);
                std::thread::spawn(move || {
                    (0..100)
                        .map(|_| rr.next_index(1000).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        for handle in handles {
            seen.extend(handle.join().unwrap());
        }
        // 400 increments of one shared counter: 400 distinct positions.
        assert_eq!(seen.len(), 400);
    }

    #[test]
    fn hash_index_matches_java_string_hash_code() {
        // "TagA".hashCode() == 2598919 (PROTOCOL.md §7.2); 2598919 % 8 == 7.
        assert_eq!(hash_index("TagA", 8), Some(7));
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(
            hash_index("polygenelubricants", 3),
            Some((1u64 << 31) as usize % 3)
        );
        assert_eq!(hash_index("k", 0), None);
    }

    #[test]
    fn sharding_key_selector_is_stable_and_needs_a_key() {
        let qs = queues(8);
        let mut msg = Message::new("T", "b");
        assert_eq!(select_queue(&SelectByShardingKey, &qs, &msg), None);
        msg.properties
            .insert(property::SHARDING_KEY, "TagA")
            .unwrap();
        let chosen = select_queue(&SelectByShardingKey, &qs, &msg).unwrap();
        assert_eq!(chosen.queue_id, 7);
        assert_eq!(
            select_queue(&SelectByKey("TagA".into()), &qs, &msg),
            Some(chosen)
        );
    }

    #[test]
    fn out_of_range_or_empty_choices_are_none() {
        let msg = Message::new("T", "b");
        let far = |_: &[MessageQueue], _: &Message| Some(99);
        assert_eq!(select_queue(&far, &queues(4), &msg), None);
        let first = |_: &[MessageQueue], _: &Message| Some(0);
        assert_eq!(select_queue(&first, &[], &msg), None);
        let boxed: Box<dyn QueueSelector> = Box::new(first);
        assert_eq!(
            select_queue(boxed.as_ref(), &queues(2), &msg)
                .unwrap()
                .queue_id,
            0
        );
    }

    proptest! {
        #[test]
        fn hash_index_is_in_range_and_deterministic(key in "\\PC{0,16}", len in 1usize..64) {
            let index = hash_index(&key, len).unwrap();
            prop_assert!(index < len);
            prop_assert_eq!(hash_index(&key, len), Some(index));
        }
    }
}
