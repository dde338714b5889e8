//! Allocation strategies: which of a topic's queues this client consumes.
//!
//! Every client of a consumer group runs the same strategy on the same inputs
//! (all queues of the topic, all client ids of the group) and takes its own
//! share; if two clients disagree, queues are consumed twice or not at all.
//! The built-in strategies give exactly the Java client's assignment
//! (PROTOCOL.md §8.5), so Rust and Java consumers can share a group.
//!
//! A strategy is a sync, pure function. The built-in ones sort their inputs
//! the way Java's rebalance does (queues by topic, broker name, queue id;
//! client ids as strings, both compared as Java compares strings) and drop
//! duplicates, so the order in which the caller lists queues and clients never
//! matters. [`SortedInput`] does that for custom strategies too.
//!
//! Invalid input never panics: an empty own id, no queues, no clients, or an
//! own id missing from the client list give an empty assignment (Java logs
//! "\[BUG\]" and returns an empty list for the last case).

mod averagely;
mod circle;
mod config;
mod consistent_hash;
mod machine_room;
mod machine_room_nearby;

use std::cmp::Ordering;

use rocketmq_model::MessageQueue;

pub use averagely::Averagely;
pub use circle::AveragelyByCircle;
pub use config::ByConfig;
pub use consistent_hash::{ConsistentHash, DEFAULT_VIRTUAL_NODES};
pub use machine_room::ByMachineRoom;
pub use machine_room_nearby::{MachineRoomNearby, MachineRoomResolver};

/// Decides which queues of a topic one client of a consumer group consumes.
///
/// Implementations must be deterministic and pure: every client of the group
/// calls `allocate` with the same `queues` and `client_ids` (possibly listed in
/// another order) and must get disjoint shares that together cover every
/// queue.
///
/// # Plugging in a custom strategy
///
/// ```
/// use rocketmq_kernel::allocate::{AllocateStrategy, SortedInput};
/// use rocketmq_model::MessageQueue;
///
/// /// Gives every queue of broker `i % n` to client `i`.
/// struct ByBroker;
///
/// impl AllocateStrategy for ByBroker {
///     fn allocate(
///         &self,
///         _group: &str,
///         own_client_id: &str,
///         queues: &[MessageQueue],
///         client_ids: &[String],
///     ) -> Vec<MessageQueue> {
///         let Some(input) = SortedInput::new(own_client_id, queues, client_ids) else {
///             return Vec::new();
///         };
///         let mut brokers: Vec<&str> = input.queues.iter().map(|q| q.broker_name.as_str()).collect();
///         brokers.dedup();
///         input
///             .queues
///             .iter()
///             .filter(|q| {
///                 let broker = brokers.iter().position(|b| *b == q.broker_name).unwrap_or(0);
///                 broker % input.client_ids.len() == input.own_index
///             })
///             .map(|q| (*q).clone())
///             .collect()
///     }
///
///     fn name(&self) -> &str {
///         "BY_BROKER"
///     }
/// }
///
/// let queues = vec![
///     MessageQueue::new("t", "broker-b", 0),
///     MessageQueue::new("t", "broker-a", 0),
/// ];
/// let clients = vec!["c2".to_string(), "c1".to_string()];
/// let mine = ByBroker.allocate("group", "c2", &queues, &clients);
/// assert_eq!(mine, [MessageQueue::new("t", "broker-b", 0)]);
/// ```
pub trait AllocateStrategy: Send + Sync {
    /// The queues that `own_client_id` consumes, out of `queues`, when the
    /// group's clients are `client_ids`. Empty when the input is invalid
    /// (see the [module docs](self)).
    fn allocate(
        &self,
        group: &str,
        own_client_id: &str,
        queues: &[MessageQueue],
        client_ids: &[String],
    ) -> Vec<MessageQueue>;

    /// The strategy's name as the Java client reports it (`"AVG"`, ...).
    fn name(&self) -> &str;
}

/// `strategy`'s allocation, with a panic caught: a strategy is the
/// application's code, and one that panics skips its topic for a round (an
/// error naming it) rather than end the rebalancing that called it, as Java
/// catches what `allocate` throws.
pub fn allocate_caught(
    strategy: &dyn AllocateStrategy,
    group: &str,
    own_client_id: &str,
    queues: &[MessageQueue],
    client_ids: &[String],
) -> crate::Result<Vec<MessageQueue>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        strategy.allocate(group, own_client_id, queues, client_ids)
    }))
    .map_err(|_| {
        crate::KernelError::Config(format!(
            "the allocation strategy {} panicked",
            strategy.name()
        ))
    })
}

/// The inputs of an allocation in Java's order: queues and client ids sorted
/// and without duplicates, and the index of the own client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortedInput<'a> {
    /// All queues, sorted as Java's `MessageQueue.compareTo` sorts them.
    pub queues: Vec<&'a MessageQueue>,
    /// All client ids, sorted as Java sorts strings.
    pub client_ids: Vec<&'a str>,
    /// The position of the own client id in `client_ids`.
    pub own_index: usize,
}

impl<'a> SortedInput<'a> {
    /// Sorts the inputs; `None` when the own id is empty, there are no queues
    /// or no clients, or the own id is not among the clients.
    pub fn new(
        own_client_id: &str,
        queues: &'a [MessageQueue],
        client_ids: &'a [String],
    ) -> Option<Self> {
        if own_client_id.is_empty() || queues.is_empty() {
            return None;
        }
        let client_ids = sorted_client_ids(client_ids);
        let own_index = client_ids.iter().position(|id| *id == own_client_id)?;
        Some(SortedInput {
            queues: sorted_queues(queues),
            client_ids,
            own_index,
        })
    }
}

/// Queues sorted as Java sorts them, without duplicates.
pub(crate) fn sorted_queues(queues: &[MessageQueue]) -> Vec<&MessageQueue> {
    let mut sorted: Vec<&MessageQueue> = queues.iter().collect();
    sorted.sort_by(|a, b| java_queue_cmp(a, b));
    sorted.dedup();
    sorted
}

/// Client ids sorted as Java sorts strings, without duplicates.
pub(crate) fn sorted_client_ids(client_ids: &[String]) -> Vec<&str> {
    let mut sorted: Vec<&str> = client_ids.iter().map(String::as_str).collect();
    sorted.sort_by(|a, b| java_string_cmp(a, b));
    sorted.dedup();
    sorted
}

/// Java's `MessageQueue.compareTo`: topic, broker name, queue id.
pub(crate) fn java_queue_cmp(a: &MessageQueue, b: &MessageQueue) -> Ordering {
    java_string_cmp(&a.topic, &b.topic)
        .then_with(|| java_string_cmp(&a.broker_name, &b.broker_name))
        .then_with(|| a.queue_id.cmp(&b.queue_id))
}

/// Java's `String.compareTo`: by UTF-16 code units. It differs from Rust's
/// byte order only when characters above U+FFFF meet ones in U+E000..=U+FFFF.
pub(crate) fn java_string_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Java's `MessageQueue.toString()`, the key the consistent-hash ring routes.
pub(crate) fn java_queue_string(mq: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        mq.topic, mq.broker_name, mq.queue_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn sorted_input_sorts_dedups_and_finds_own_index() {
        let queues = vec![
            MessageQueue::new("t", "b", 1),
            MessageQueue::new("t", "a", 2),
            MessageQueue::new("t", "a", 10),
            MessageQueue::new("t", "b", 1),
        ];
        let clients = ids(&["c", "a", "b", "a"]);
        let input = SortedInput::new("b", &queues, &clients).unwrap();
        assert_eq!(input.client_ids, ["a", "b", "c"]);
        assert_eq!(input.own_index, 1);
        let order: Vec<String> = input.queues.iter().map(ToString::to_string).collect();
        assert_eq!(order, ["t@a#2", "t@a#10", "t@b#1"]);
    }

    #[test]
    fn sorted_input_rejects_invalid_input() {
        let queues = vec![MessageQueue::new("t", "a", 0)];
        let clients = ids(&["a"]);
        assert!(SortedInput::new("", &queues, &clients).is_none());
        assert!(SortedInput::new("a", &[], &clients).is_none());
        assert!(SortedInput::new("a", &queues, &[]).is_none());
        assert!(SortedInput::new("z", &queues, &clients).is_none());
    }

    #[test]
    fn strings_compare_by_utf16_code_units_like_java() {
        // U+FF21 (one unit 0xFF21) sorts after U+1F600 (units 0xD83D 0xDE00)
        // in Java, before it in UTF-8 byte order.
        assert_eq!(java_string_cmp("\u{1F600}", "\u{FF21}"), Ordering::Less);
        assert_eq!("\u{1F600}".cmp("\u{FF21}"), Ordering::Greater);
        assert_eq!(java_string_cmp("a", "b"), Ordering::Less);
        assert_eq!(java_string_cmp("ab", "a"), Ordering::Greater);
    }

    #[test]
    fn queue_string_matches_java_to_string() {
        assert_eq!(
            java_queue_string(&MessageQueue::new("T", "b", 3)),
            "MessageQueue [topic=T, brokerName=b, queueId=3]"
        );
    }
}
