//! Rebalance as consumers join and leave a group: every queue is owned by
//! exactly one client once a round settles, the new owner of a queue starts
//! from the offset its previous owner committed, and a dropped queue never
//! commits again.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebalance_support::*;
use rocketmq_kernel::OffsetStore;
use rocketmq_kernel::consume::ConsumeService;
use rocketmq_model::MessageQueue;

fn all_queues() -> Vec<MessageQueue> {
    ["broker-a", "broker-b"]
        .into_iter()
        .flat_map(|broker| (0..4).map(move |id| MessageQueue::new(TOPIC, broker, id)))
        .collect()
}

/// Queue → the clients owning it.
fn owners(clients: &[&Client]) -> BTreeMap<MessageQueue, Vec<String>> {
    let mut owners: BTreeMap<MessageQueue, Vec<String>> = BTreeMap::new();
    for client in clients {
        for mq in client.rebalancer.assigned() {
            owners.entry(mq).or_default().push(client.id.clone());
        }
    }
    owners
}

fn assert_partitioned(clients: &[&Client]) {
    let owners = owners(clients);
    for mq in all_queues() {
        let owned_by = owners.get(&mq).cloned().unwrap_or_default();
        assert_eq!(owned_by.len(), 1, "{mq} is owned by {owned_by:?}");
    }
    assert_eq!(
        owners.len(),
        all_queues().len(),
        "no queue of another topic"
    );
}

/// Per queue, the consumed offsets in consumption order.
fn consumed_per_queue(log: &Mutex<Vec<Consumed>>) -> BTreeMap<MessageQueue, Vec<i64>> {
    let mut per_queue: BTreeMap<MessageQueue, Vec<i64>> = BTreeMap::new();
    for (_, mq, offset) in log.lock().unwrap().iter() {
        per_queue.entry(mq.clone()).or_default().push(*offset);
    }
    per_queue
}

/// The first offset `client` pulled `mq` from after pull number `since`.
fn first_pull(cluster: &Cluster, client: &str, mq: &MessageQueue, since: usize) -> Option<i64> {
    cluster.pulls.lock().unwrap()[since..]
        .iter()
        .find(|pull| pull.client == client && pull.mq() == *mq)
        .map(|pull| pull.header.queue_offset)
}

struct Harness {
    cluster: Arc<Cluster>,
    ns: Arc<FakeNameServer>,
    log: Arc<Mutex<Vec<Consumed>>>,
    appended: i64,
}

impl Harness {
    fn start(&self, id: &str) -> Client {
        let log = self.log.clone();
        let client = id.to_owned();
        start_client(
            &self.cluster,
            &self.ns,
            id,
            options(),
            move |store| -> Arc<dyn ConsumeService> {
                Arc::new(ImmediateConsume {
                    client,
                    store,
                    log,
                    orderly: false,
                })
            },
            &[sub_all(TOPIC)],
        )
    }

    /// Appends 5 messages to every queue and waits until all are consumed.
    async fn produce_and_drain(&mut self) {
        for mq in all_queues() {
            self.cluster.append(&mq, 5, "t");
        }
        self.appended += 5;
        let appended = self.appended as usize;
        let log = self.log.clone();
        eventually("every message is consumed", || {
            let per_queue = consumed_per_queue(&log);
            all_queues()
                .iter()
                .all(|mq| per_queue.get(mq).map_or(0, Vec::len) >= appended)
        })
        .await;
    }

    /// Changes the group to `members`, rebalances the clients that lose
    /// queues first, then those that gain, and checks that every queue that
    /// moved starts at the offset its previous owner persisted.
    async fn change_members(&self, members: &[&Client], losing: &[&Client], gaining: &[&Client]) {
        let before = owners(members);
        let ids: Vec<&str> = members.iter().map(|c| c.id.as_str()).collect();
        self.cluster.set_clients(&ids);
        for client in losing {
            client.rebalancer.rebalance().await;
        }
        let persisted = self.cluster.offsets.lock().unwrap().clone();
        let since = self.cluster.pulls.lock().unwrap().len();
        for client in gaining {
            client.rebalancer.rebalance().await;
        }
        assert_partitioned(members);
        for client in gaining {
            for mq in client.rebalancer.assigned() {
                if before.get(&mq).is_some_and(|old| old.contains(&client.id)) {
                    continue;
                }
                eventually("the new owner pulls", || {
                    first_pull(&self.cluster, &client.id, &mq, since).is_some()
                })
                .await;
                let handed = persisted.get(&mq).copied().unwrap_or(0);
                assert_eq!(
                    handed, self.appended,
                    "{mq}: everything consumed was persisted"
                );
                assert_eq!(
                    first_pull(&self.cluster, &client.id, &mq, since),
                    Some(handed),
                    "{} starts {mq} at the offset its previous owner committed",
                    client.id
                );
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn consumers_joining_and_leaving_share_every_queue_once_and_hand_over_offsets() {
    let mut harness = Harness {
        cluster: Cluster::new(),
        ns: FakeNameServer::with(&[(TOPIC, route(4))]),
        log: Arc::new(Mutex::new(Vec::new())),
        appended: 0,
    };
    // Offsets reach the broker only by the persist of a removed queue (or
    // at shutdown), not piggy-backed on pulls.
    harness
        .cluster
        .ignore_pull_commits
        .store(true, std::sync::atomic::Ordering::SeqCst);
    harness.cluster.set_clients(&["c1"]);
    let c1 = harness.start("c1");
    c1.rebalancer.rebalance().await;
    assert_partitioned(&[&c1]);
    harness.produce_and_drain().await;

    // c2 and c3 start before the broker lists them: they own nothing yet.
    let c2 = harness.start("c2");
    let c3 = harness.start("c3");
    c2.rebalancer.rebalance().await;
    c3.rebalancer.rebalance().await;
    assert!(c2.rebalancer.assigned().is_empty());
    harness
        .change_members(&[&c1, &c2, &c3], &[&c1], &[&c2, &c3])
        .await;
    assert_eq!(c1.rebalancer.assigned().len(), 3);
    assert_eq!(c2.rebalancer.assigned().len(), 3);
    assert_eq!(c3.rebalancer.assigned().len(), 2);
    harness.produce_and_drain().await;

    // c2 leaves: it shuts down (persisting), then the others take over.
    c2.rebalancer.shutdown().await;
    assert!(c2.rebalancer.assigned().is_empty());
    harness
        .change_members(&[&c1, &c3], &[&c1, &c3], &[&c1, &c3])
        .await;
    harness.produce_and_drain().await;

    // c3 leaves too; c1 is alone again.
    c3.rebalancer.shutdown().await;
    harness.change_members(&[&c1], &[], &[&c1]).await;
    assert_eq!(c1.rebalancer.assigned().len(), 8);
    harness.produce_and_drain().await;

    // Every message of every queue was consumed exactly once, in order.
    tokio::time::sleep(Duration::from_secs(60)).await;
    for (mq, offsets) in consumed_per_queue(&harness.log) {
        let expected: Vec<i64> = (0..harness.appended).collect();
        assert_eq!(offsets, expected, "{mq}");
    }
    c1.rebalancer.shutdown().await;
    for mq in all_queues() {
        assert_eq!(
            harness.cluster.offsets.lock().unwrap()[&mq],
            harness.appended
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queue_never_commits_again() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(4))]);
    for mq in all_queues() {
        cluster.append(&mq, 5, "t");
    }
    cluster.set_clients(&["c1"]);
    let stalled = Arc::new(StalledConsume::default());
    let consume = stalled.clone();
    let c1 = start_client(
        &cluster,
        &ns,
        "c1",
        options(),
        move |_| consume,
        &[sub_all(TOPIC)],
    );
    c1.rebalancer.rebalance().await;
    let requests = || stalled.requests.lock().unwrap().len();
    eventually("every queue delivered a batch", || requests() == 8).await;
    // Consumption got as far as offset 2 everywhere.
    for mq in all_queues() {
        assert!(c1.store.update(&mq, 2, true));
    }

    let c2 = start_client(
        &cluster,
        &ns,
        "c2",
        options(),
        |_| Arc::new(StalledConsume::default()),
        &[sub_all(TOPIC)],
    );
    c2.rebalancer.rebalance().await; // not listed yet: owns nothing
    cluster.set_clients(&["c1", "c2"]);
    c1.rebalancer.rebalance().await;
    let lost: Vec<MessageQueue> = all_queues()
        .into_iter()
        .filter(|mq| !c1.rebalancer.assigned().contains(mq))
        .collect();
    assert_eq!(lost.len(), 4);
    let pulls_after_drop = cluster.pulls.lock().unwrap().len();
    let commits_after_drop = cluster.commits.lock().unwrap().len();

    // The stalled batches of the lost queues finish late: their process
    // queues are dropped and the store refuses their offsets.
    for request in stalled.requests.lock().unwrap().iter() {
        if lost.contains(&request.mq) {
            assert!(request.pq.is_dropped());
            assert!(!c1.store.update(&request.mq, 5, true), "{}", request.mq);
        }
    }
    c1.store.persist_all().await.unwrap();
    for mq in &lost {
        c1.store.persist(mq).await.unwrap();
        assert_eq!(
            cluster.offsets.lock().unwrap()[mq],
            2,
            "{mq} keeps the offset persisted at the drop"
        );
    }
    tokio::time::sleep(Duration::from_secs(60)).await;
    let late_commits: Vec<_> = cluster.commits.lock().unwrap()[commits_after_drop..]
        .iter()
        .filter(|(mq, _)| lost.contains(mq))
        .cloned()
        .collect();
    assert!(
        late_commits.is_empty(),
        "dropped queues committed {late_commits:?}"
    );
    let late_pulls = cluster.pulls.lock().unwrap()[pulls_after_drop..]
        .iter()
        .filter(|pull| pull.client == "c1" && lost.contains(&pull.mq()))
        .count();
    assert_eq!(late_pulls, 0, "the pull tasks of dropped queues stopped");

    // The new owner starts where consumption had got.
    c2.rebalancer.rebalance().await;
    for mq in &lost {
        eventually("c2 pulls", || first_pull(&cluster, "c2", mq, 0).is_some()).await;
        assert_eq!(first_pull(&cluster, "c2", mq, 0), Some(2));
    }
}
