//! [`ByMachineRoom`]: only the queues of brokers in chosen machine rooms
//! (Java `AllocateMessageQueueByMachineRoom`).

use std::collections::BTreeSet;

use rocketmq_model::MessageQueue;

use super::{AllocateStrategy, SortedInput};

/// Consumes only queues whose broker is deployed in one of the configured
/// machine rooms (IDCs), shared among all clients of the group. Name
/// `"MACHINE_ROOM"`.
///
/// The machine room is read from the broker name as Java reads it: a broker
/// named `<room>@<name>` is in machine room `<room>`; a name without exactly
/// one `@` separator (Java's `split("@")`, trailing empty parts dropped) is in
/// none and its queues are not consumed.
///
/// The rooms' queues are divided as Java divides them: every client gets
/// `n / c` contiguous queues, and the `n % c` left over at the end go one
/// each to the first clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByMachineRoom {
    consumer_rooms: BTreeSet<String>,
}

impl ByMachineRoom {
    /// Consumes the queues of brokers in `consumer_rooms`.
    pub fn new(consumer_rooms: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ByMachineRoom {
            consumer_rooms: consumer_rooms.into_iter().map(Into::into).collect(),
        }
    }

    /// The machine rooms whose queues are consumed.
    pub fn consumer_rooms(&self) -> &BTreeSet<String> {
        &self.consumer_rooms
    }
}

impl AllocateStrategy for ByMachineRoom {
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
        let in_rooms: Vec<&MessageQueue> = input
            .queues
            .iter()
            .copied()
            .filter(|mq| {
                machine_room_of(&mq.broker_name)
                    .is_some_and(|room| self.consumer_rooms.contains(room))
            })
            .collect();
        let clients = input.client_ids.len();
        let index = input.own_index;
        let per_client = in_rooms.len() / clients;
        let left_over = in_rooms.len() % clients;
        let start = per_client * index;
        let mut own: Vec<MessageQueue> = in_rooms[start..start + per_client]
            .iter()
            .map(|mq| (*mq).clone())
            .collect();
        if left_over > index {
            own.push(in_rooms[index + per_client * clients].clone());
        }
        own
    }

    fn name(&self) -> &str {
        "MACHINE_ROOM"
    }
}

/// The machine room of a broker named `<room>@<name>`, as Java's
/// `brokerName.split("@")` with exactly two parts finds it.
pub(crate) fn machine_room_of(broker_name: &str) -> Option<&str> {
    let mut parts: Vec<&str> = broker_name.split('@').collect();
    while parts.last().is_some_and(|part| part.is_empty()) {
        parts.pop();
    }
    match parts.as_slice() {
        [room, _] => Some(room),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn room_from_broker_name_like_java_split() {
        assert_eq!(machine_room_of("idc1@broker-a"), Some("idc1"));
        assert_eq!(machine_room_of("@broker-a"), Some(""));
        assert_eq!(machine_room_of("idc1@broker-a@"), Some("idc1"));
        assert_eq!(machine_room_of("idc1@broker-a@@"), Some("idc1"));
        assert_eq!(machine_room_of("broker-a"), None);
        assert_eq!(machine_room_of("idc1@"), None);
        assert_eq!(machine_room_of("a@b@c"), None);
        assert_eq!(machine_room_of(""), None);
    }

    #[test]
    fn only_rooms_queues_divided_like_java() {
        let mut queues = Vec::new();
        for broker in ["hz@b1", "sh@b2", "bj@b3", "plain"] {
            for id in 0..4 {
                queues.push(MessageQueue::new("t", broker, id));
            }
        }
        let strategy = ByMachineRoom::new(["hz", "sh"]);
        let clients = ids(3);
        let shares: Vec<Vec<String>> = clients
            .iter()
            .map(|c| {
                strategy
                    .allocate("g", c, &queues, &clients)
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .collect();
        // 8 queues in hz and sh; 2 each, then the 2 left over to c0 and c1.
        assert_eq!(shares[0], ["t@hz@b1#0", "t@hz@b1#1", "t@sh@b2#2"]);
        assert_eq!(shares[1], ["t@hz@b1#2", "t@hz@b1#3", "t@sh@b2#3"]);
        assert_eq!(shares[2], ["t@sh@b2#0", "t@sh@b2#1"]);
        assert_eq!(strategy.name(), "MACHINE_ROOM");
    }

    #[test]
    fn fewer_room_queues_than_clients() {
        let queues = vec![MessageQueue::new("t", "hz@b", 0)];
        let strategy = ByMachineRoom::new(["hz"]);
        let clients = ids(3);
        assert_eq!(strategy.allocate("g", "c0", &queues, &clients), queues);
        assert!(strategy.allocate("g", "c1", &queues, &clients).is_empty());
        assert!(
            ByMachineRoom::new(["sh"])
                .allocate("g", "c0", &queues, &clients)
                .is_empty()
        );
    }
}
