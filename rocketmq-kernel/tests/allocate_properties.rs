//! Property tests of the allocation strategies: over all clients' results,
//! every queue goes to exactly one client; the result does not depend on the
//! order of the inputs; averagely and by-circle are balanced within one.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use rocketmq_kernel::allocate::{
    AllocateStrategy, Averagely, AveragelyByCircle, ByMachineRoom, ConsistentHash,
    MachineRoomNearby, MachineRoomResolver,
};
use rocketmq_model::MessageQueue;

struct RoomPrefix;

impl MachineRoomResolver for RoomPrefix {
    fn broker_machine_room(&self, mq: &MessageQueue) -> String {
        mq.broker_name
            .split('@')
            .next()
            .unwrap_or_default()
            .to_string()
    }
    fn consumer_machine_room(&self, client_id: &str) -> String {
        client_id.split('@').next().unwrap_or_default().to_string()
    }
}

fn strategies() -> Vec<Box<dyn AllocateStrategy>> {
    vec![
        Box::new(Averagely),
        Box::new(AveragelyByCircle),
        Box::new(ConsistentHash::new()),
        Box::new(ConsistentHash::with_virtual_nodes(1).unwrap()),
        Box::new(MachineRoomNearby::new(
            Arc::new(Averagely),
            Arc::new(RoomPrefix),
        )),
    ]
}

/// Queues over up to 4 brokers in up to 3 rooms; may repeat a queue.
fn queues() -> impl Strategy<Value = Vec<MessageQueue>> {
    prop::collection::vec((0..2usize, 0..3usize, 0..4usize, 0..16i32), 1..60).prop_map(|raw| {
        raw.into_iter()
            .map(|(topic, room, broker, id)| {
                MessageQueue::new(format!("T{topic}"), format!("r{room}@b{broker}"), id)
            })
            .collect()
    })
}

/// Client ids in up to 3 rooms; may repeat an id.
fn clients() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec((0..3usize, 0..20usize), 1..14).prop_map(|raw| {
        raw.into_iter()
            .map(|(room, n)| format!("r{room}@10.0.0.{n}@{n}#0"))
            .collect()
    })
}

/// Each distinct client's share.
fn shares(
    strategy: &dyn AllocateStrategy,
    queues: &[MessageQueue],
    clients: &[String],
) -> BTreeMap<String, Vec<MessageQueue>> {
    clients
        .iter()
        .map(|c| (c.clone(), strategy.allocate("g", c, queues, clients)))
        .collect()
}

fn distinct(queues: &[MessageQueue]) -> Vec<MessageQueue> {
    let mut queues = queues.to_vec();
    queues.sort();
    queues.dedup();
    queues
}

fn assert_each_queue_once(
    name: &str,
    owned: &BTreeMap<String, Vec<MessageQueue>>,
    expected: &[MessageQueue],
) -> Result<(), TestCaseError> {
    let mut all: Vec<MessageQueue> = owned.values().flatten().cloned().collect();
    all.sort();
    prop_assert_eq!(&all, &expected.to_vec(), "{}", name);
    Ok(())
}

proptest! {
    #[test]
    fn every_queue_goes_to_exactly_one_client(queues in queues(), clients in clients()) {
        let expected = distinct(&queues);
        for strategy in strategies() {
            let owned = shares(strategy.as_ref(), &queues, &clients);
            assert_each_queue_once(strategy.name(), &owned, &expected)?;
        }
    }

    #[test]
    fn input_order_never_matters(
        queues in queues(),
        clients in clients(),
        seed in any::<u64>(),
    ) {
        let mut shuffled_queues = queues.clone();
        let mut shuffled_clients = clients.clone();
        shuffle(&mut shuffled_queues, seed);
        shuffle(&mut shuffled_clients, seed.rotate_left(17));
        for strategy in strategies() {
            prop_assert_eq!(
                shares(strategy.as_ref(), &queues, &clients),
                shares(strategy.as_ref(), &shuffled_queues, &shuffled_clients),
                "{}", strategy.name()
            );
        }
    }

    #[test]
    fn averagely_and_circle_are_balanced_within_one(queues in queues(), clients in clients()) {
        for strategy in [&Averagely as &dyn AllocateStrategy, &AveragelyByCircle] {
            let owned = shares(strategy, &queues, &clients);
            let sizes: Vec<usize> = owned.values().map(Vec::len).collect();
            let max = sizes.iter().max().copied().unwrap_or(0);
            let min = sizes.iter().min().copied().unwrap_or(0);
            prop_assert!(max - min <= 1, "{}: {:?}", strategy.name(), sizes);
        }
    }

    #[test]
    fn machine_room_gives_each_room_queue_once(queues in queues(), clients in clients()) {
        let strategy = ByMachineRoom::new(["r0", "r2"]);
        let expected: Vec<MessageQueue> = distinct(&queues)
            .into_iter()
            .filter(|mq| mq.broker_name.starts_with("r0@") || mq.broker_name.starts_with("r2@"))
            .collect();
        let owned = shares(&strategy, &queues, &clients);
        assert_each_queue_once("MACHINE_ROOM", &owned, &expected)?;
        let sizes: Vec<usize> = owned.values().map(Vec::len).collect();
        let spread = sizes.iter().max().unwrap() - sizes.iter().min().unwrap();
        prop_assert!(spread <= 1, "{:?}", sizes);
    }

    #[test]
    fn a_client_not_in_the_group_gets_nothing(queues in queues(), clients in clients()) {
        for strategy in strategies() {
            prop_assert!(strategy.allocate("g", "stranger", &queues, &clients).is_empty());
        }
    }
}

/// A small deterministic Fisher–Yates shuffle (xorshift).
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let j = usize::try_from(state % (i as u64 + 1)).unwrap();
        items.swap(i, j);
    }
}

#[test]
fn consistent_hash_moves_few_queues_when_a_client_leaves() {
    let queues: Vec<MessageQueue> = (0..64).map(|i| MessageQueue::new("T", "b", i)).collect();
    let before: Vec<String> = (0..8).map(|i| format!("10.0.0.{i}@1#0")).collect();
    let after: Vec<String> = before[..7].to_vec();
    let strategy = ConsistentHash::new();
    let old = shares(&strategy, &queues, &before);
    let new = shares(&strategy, &queues, &after);
    for client in &after {
        let kept = old[client]
            .iter()
            .filter(|mq| new[client].contains(mq))
            .count();
        assert_eq!(kept, old[client].len(), "{client} lost a queue it had");
    }
}
