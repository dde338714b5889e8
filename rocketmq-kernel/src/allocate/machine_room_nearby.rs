//! [`MachineRoomNearby`]: prefer brokers in the consumer's own machine room
//! (Java `AllocateMachineRoomNearby`).

use std::collections::BTreeMap;
use std::sync::Arc;

use rocketmq_model::MessageQueue;

use super::{AllocateStrategy, SortedInput};

/// Tells which machine room a broker's queue and a client are deployed in.
pub trait MachineRoomResolver: Send + Sync {
    /// The machine room of the broker holding `mq`.
    fn broker_machine_room(&self, mq: &MessageQueue) -> String;

    /// The machine room of the client `client_id`.
    fn consumer_machine_room(&self, client_id: &str) -> String;
}

/// Allocates, with an inner strategy, the queues of each machine room among
/// the clients of that room; queues of a room with no live client are shared
/// among all clients. Name `"MACHINE_ROOM_NEARBY-<inner name>"`.
///
/// ```
/// use std::sync::Arc;
/// use rocketmq_kernel::allocate::{AllocateStrategy, Averagely, MachineRoomNearby, MachineRoomResolver};
/// use rocketmq_model::MessageQueue;
///
/// /// Room = the part before the first `-` (`hz-broker-a`, `hz-10.0.0.1@1#0`).
/// struct Prefix;
///
/// impl MachineRoomResolver for Prefix {
///     fn broker_machine_room(&self, mq: &MessageQueue) -> String {
///         mq.broker_name.split('-').next().unwrap_or_default().to_string()
///     }
///     fn consumer_machine_room(&self, client_id: &str) -> String {
///         client_id.split('-').next().unwrap_or_default().to_string()
///     }
/// }
///
/// let strategy = MachineRoomNearby::new(Arc::new(Averagely), Arc::new(Prefix));
/// let queues = vec![MessageQueue::new("t", "hz-a", 0), MessageQueue::new("t", "sh-b", 0)];
/// let clients = vec!["hz-c1".to_string(), "sh-c2".to_string()];
/// assert_eq!(strategy.allocate("g", "hz-c1", &queues, &clients), [queues[0].clone()]);
/// assert_eq!(strategy.name(), "MACHINE_ROOM_NEARBY-AVG");
/// ```
pub struct MachineRoomNearby {
    inner: Arc<dyn AllocateStrategy>,
    resolver: Arc<dyn MachineRoomResolver>,
    name: String,
}

impl std::fmt::Debug for MachineRoomNearby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineRoomNearby")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl MachineRoomNearby {
    /// Allocates within each machine room with `inner`, rooms told by
    /// `resolver`.
    pub fn new(inner: Arc<dyn AllocateStrategy>, resolver: Arc<dyn MachineRoomResolver>) -> Self {
        let name = format!("MACHINE_ROOM_NEARBY-{}", inner.name());
        MachineRoomNearby {
            inner,
            resolver,
            name,
        }
    }
}

impl AllocateStrategy for MachineRoomNearby {
    fn allocate(
        &self,
        group: &str,
        own_client_id: &str,
        queues: &[MessageQueue],
        client_ids: &[String],
    ) -> Vec<MessageQueue> {
        let Some(input) = SortedInput::new(own_client_id, queues, client_ids) else {
            return Vec::new();
        };
        let mut queues_by_room: BTreeMap<String, Vec<MessageQueue>> = BTreeMap::new();
        for mq in &input.queues {
            let room = self.resolver.broker_machine_room(mq);
            queues_by_room.entry(room).or_default().push((*mq).clone());
        }
        let mut clients_by_room: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for client in &input.client_ids {
            let room = self.resolver.consumer_machine_room(client);
            clients_by_room
                .entry(room)
                .or_default()
                .push((*client).to_string());
        }
        let own_room = self.resolver.consumer_machine_room(own_client_id);
        let mut own = Vec::new();
        if let (Some(room_queues), Some(room_clients)) = (
            queues_by_room.remove(&own_room),
            clients_by_room.get(&own_room),
        ) {
            own.extend(
                self.inner
                    .allocate(group, own_client_id, &room_queues, room_clients),
            );
        }
        let all_clients: Vec<String> = input.client_ids.iter().map(|c| (*c).to_string()).collect();
        for (room, room_queues) in &queues_by_room {
            if !clients_by_room.contains_key(room) {
                own.extend(
                    self.inner
                        .allocate(group, own_client_id, room_queues, &all_clients),
                );
            }
        }
        own
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocate::{Averagely, AveragelyByCircle};

    struct Prefix;

    impl MachineRoomResolver for Prefix {
        fn broker_machine_room(&self, mq: &MessageQueue) -> String {
            mq.broker_name
                .split('-')
                .next()
                .unwrap_or_default()
                .to_string()
        }
        fn consumer_machine_room(&self, client_id: &str) -> String {
            client_id.split('-').next().unwrap_or_default().to_string()
        }
    }

    #[test]
    fn rooms_consume_their_own_and_share_orphaned_rooms() {
        let mut queues = Vec::new();
        for broker in ["hz-a", "sh-b", "bj-c"] {
            for id in 0..4 {
                queues.push(MessageQueue::new("t", broker, id));
            }
        }
        let clients: Vec<String> = ["hz-1", "hz-2", "sh-1"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let strategy = MachineRoomNearby::new(Arc::new(AveragelyByCircle), Arc::new(Prefix));
        let share = |c: &str| -> Vec<String> {
            strategy
                .allocate("g", c, &queues, &clients)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        // hz's 4 queues between hz-1 and hz-2; sh's 4 to sh-1; bj (no client)
        // shared by all three by circle.
        assert_eq!(
            share("hz-1"),
            ["t@hz-a#0", "t@hz-a#2", "t@bj-c#0", "t@bj-c#3"]
        );
        assert_eq!(share("hz-2"), ["t@hz-a#1", "t@hz-a#3", "t@bj-c#1"]);
        assert_eq!(
            share("sh-1"),
            ["t@sh-b#0", "t@sh-b#1", "t@sh-b#2", "t@sh-b#3", "t@bj-c#2"]
        );
        assert_eq!(strategy.name(), "MACHINE_ROOM_NEARBY-AVG_BY_CIRCLE");
        let avg = MachineRoomNearby::new(Arc::new(Averagely), Arc::new(Prefix));
        assert!(avg.allocate("g", "nobody", &queues, &clients).is_empty());
    }
}
