//! Table tests: every case of `tests/data/java-allocation.jsonl`, computed by
//! the Java client's own strategies, must come out exactly the same here, in
//! the given input order and in a shuffled one.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use rocketmq_kernel::allocate::{AllocateStrategy, Averagely, AveragelyByCircle, ConsistentHash};
use rocketmq_model::MessageQueue;
use serde::Deserialize;

const VECTORS: &str = include_str!("data/java-allocation.jsonl");

#[derive(Deserialize)]
struct Case {
    strategy: String,
    queues: Vec<(String, String, i32)>,
    clients: Vec<String>,
    assignment: BTreeMap<String, Vec<(String, i32)>>,
}

fn strategy(name: &str) -> Box<dyn AllocateStrategy> {
    match name {
        "averagely" => Box::new(Averagely),
        "averagely_by_circle" => Box::new(AveragelyByCircle),
        "consistent_hash_10" => Box::new(ConsistentHash::new()),
        "consistent_hash_3" => Box::new(ConsistentHash::with_virtual_nodes(3).unwrap()),
        other => panic!("unknown strategy {other}"),
    }
}

fn cases() -> Vec<Case> {
    VECTORS
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A deterministic permutation: reversed, then every other element first.
fn scramble<T: Clone>(items: &[T]) -> Vec<T> {
    let reversed: Vec<T> = items.iter().rev().cloned().collect();
    let evens = reversed.iter().step_by(2).cloned();
    let odds = reversed.iter().skip(1).step_by(2).cloned();
    evens.chain(odds).collect()
}

fn check(case: &Case, queues: &[MessageQueue], clients: &[String], line: usize) {
    let strategy = strategy(&case.strategy);
    for (client, expected) in &case.assignment {
        let got: Vec<(String, i32)> = strategy
            .allocate("group", client, queues, clients)
            .into_iter()
            .map(|mq| (mq.broker_name, mq.queue_id))
            .collect();
        assert_eq!(
            &got,
            expected,
            "line {line}: {} for {client} ({} queues, {} clients)",
            case.strategy,
            queues.len(),
            clients.len()
        );
    }
}

#[test]
fn every_java_vector_matches() {
    let cases = cases();
    assert_eq!(cases.len(), 180);
    for (i, case) in cases.iter().enumerate() {
        let queues: Vec<MessageQueue> = case
            .queues
            .iter()
            .map(|(topic, broker, id)| MessageQueue::new(topic.clone(), broker.clone(), *id))
            .collect();
        assert_eq!(case.assignment.len(), case.clients.len(), "line {}", i + 1);
        check(case, &queues, &case.clients, i + 1);
        check(case, &scramble(&queues), &scramble(&case.clients), i + 1);
    }
}

#[test]
fn vectors_cover_every_strategy() {
    let cases = cases();
    for name in [
        "averagely",
        "averagely_by_circle",
        "consistent_hash_10",
        "consistent_hash_3",
    ] {
        assert!(
            cases.iter().filter(|c| c.strategy == name).count() >= 40,
            "{name}"
        );
    }
}
