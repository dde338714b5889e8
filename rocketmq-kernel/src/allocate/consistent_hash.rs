//! [`ConsistentHash`]: a hash ring of client ids (Java
//! `AllocateMessageQueueConsistentHash`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use md5::{Digest, Md5};
use rocketmq_model::MessageQueue;

use super::{AllocateStrategy, SortedInput, java_queue_string};
use crate::error::{KernelError, Result};

/// Java's default number of virtual nodes per client.
pub const DEFAULT_VIRTUAL_NODES: usize = 10;

/// The hash of a ring key (a virtual node's or a queue's key).
type HashFn = dyn Fn(&str) -> i64 + Send + Sync;

/// Places every client id on a hash ring `virtual_nodes` times (keys
/// `<clientId>-0`, `<clientId>-1`, ...) and gives each queue to the first
/// virtual node at or after the hash of the queue's Java `toString()`
/// (`MessageQueue [topic=t, brokerName=b, queueId=0]`), wrapping around. A
/// client joining or leaving moves only the queues next to its nodes. Name
/// `"CONSISTENT_HASH"`.
///
/// The default hash is Java's `MD5Hash`: the first four bytes of the MD5
/// digest of the key's UTF-8 bytes, big-endian, as a non-negative number.
/// When two virtual nodes hash alike, the later client id (in sorted order)
/// takes the slot, as Java's ring does.
#[derive(Clone)]
pub struct ConsistentHash {
    virtual_nodes: usize,
    hash: Arc<HashFn>,
}

impl fmt::Debug for ConsistentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsistentHash")
            .field("virtual_nodes", &self.virtual_nodes)
            .finish_non_exhaustive()
    }
}

impl Default for ConsistentHash {
    fn default() -> Self {
        ConsistentHash {
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
            hash: Arc::new(md5_hash),
        }
    }
}

impl ConsistentHash {
    /// Java's defaults: 10 virtual nodes per client, MD5 hash.
    pub fn new() -> Self {
        Self::default()
    }

    /// `virtual_nodes` per client. Zero is a configuration error (Java
    /// accepts it and then assigns no queue to anyone).
    pub fn with_virtual_nodes(virtual_nodes: usize) -> Result<Self> {
        if virtual_nodes == 0 {
            return Err(KernelError::Config(
                "consistent hash needs at least one virtual node per client".into(),
            ));
        }
        Ok(ConsistentHash {
            virtual_nodes,
            ..Self::default()
        })
    }

    /// Replaces the ring's hash function (Java's custom `HashFunction`).
    /// Every client of the group must use the same one.
    pub fn hash_function(mut self, hash: impl Fn(&str) -> i64 + Send + Sync + 'static) -> Self {
        self.hash = Arc::new(hash);
        self
    }

    /// The number of virtual nodes per client.
    pub fn virtual_nodes(&self) -> usize {
        self.virtual_nodes
    }

    /// The ring: hash → client id, clients added in sorted order.
    fn ring<'a>(&self, client_ids: &[&'a str]) -> BTreeMap<i64, &'a str> {
        let mut ring = BTreeMap::new();
        for client in client_ids {
            for replica in 0..self.virtual_nodes {
                ring.insert((self.hash)(&format!("{client}-{replica}")), *client);
            }
        }
        ring
    }
}

/// Java's `ConsistentHashRouter.MD5Hash`.
pub(crate) fn md5_hash(key: &str) -> i64 {
    let digest = Md5::digest(key.as_bytes());
    i64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

/// The client whose virtual node is first at or after `hash`, wrapping round.
fn route<'a>(ring: &BTreeMap<i64, &'a str>, hash: i64) -> Option<&'a str> {
    ring.range(hash..)
        .next()
        .or_else(|| ring.iter().next())
        .map(|(_, client)| *client)
}

impl AllocateStrategy for ConsistentHash {
    fn allocate(
        &self,
        _group: &str,
        own_client_id: &str,
        queues: &[MessageQueue],
        client_ids: &[String],
    ) -> Vec<MessageQueue> {
        let Some(input) = SortedInput::new(own_client_id, queues, client_ids) else {
            return Vec::new();
        };
        let ring = self.ring(&input.client_ids);
        input
            .queues
            .iter()
            .filter(|mq| route(&ring, (self.hash)(&java_queue_string(mq))) == Some(own_client_id))
            .map(|mq| (*mq).clone())
            .collect()
    }

    fn name(&self) -> &str {
        "CONSISTENT_HASH"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hash_takes_the_first_four_digest_bytes() {
        // MD5("") = d41d8cd9 8f00b204 e9800998 ecf8427e
        assert_eq!(md5_hash(""), 0xd41d_8cd9);
        // MD5("abc") = 90015098 3cd24fb0 d6963f7d 28e17f72
        assert_eq!(md5_hash("abc"), 0x9001_5098);
    }

    #[test]
    fn zero_virtual_nodes_is_rejected() {
        assert!(matches!(
            ConsistentHash::with_virtual_nodes(0),
            Err(KernelError::Config(_))
        ));
        assert_eq!(
            ConsistentHash::with_virtual_nodes(3)
                .unwrap()
                .virtual_nodes(),
            3
        );
        assert_eq!(ConsistentHash::new().virtual_nodes(), DEFAULT_VIRTUAL_NODES);
    }

    #[test]
    fn custom_hash_and_collisions_go_to_the_later_client() {
        // Every key hashes to 7: the last client added owns the only slot.
        let strategy = ConsistentHash::new().hash_function(|_| 7);
        let queues = vec![
            MessageQueue::new("t", "b", 0),
            MessageQueue::new("t", "b", 1),
        ];
        let clients = vec!["b".to_string(), "a".to_string()];
        assert_eq!(strategy.allocate("g", "b", &queues, &clients), queues);
        assert!(strategy.allocate("g", "a", &queues, &clients).is_empty());
    }

    #[test]
    fn routing_wraps_around_the_ring() {
        let ring: BTreeMap<i64, &str> = [(10, "a"), (20, "b")].into_iter().collect();
        assert_eq!(route(&ring, 5), Some("a"));
        assert_eq!(route(&ring, 10), Some("a"));
        assert_eq!(route(&ring, 11), Some("b"));
        assert_eq!(route(&ring, 21), Some("a"));
        assert_eq!(route(&BTreeMap::new(), 1), None);
    }
}
