//! What a rebalance takes from topics: broadcasting owns every queue, a
//! route change is picked up, an unsubscribed topic's queues are dropped,
//! and a change of assignment is announced.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rebalance_support::*;
use rocketmq_kernel::OffsetStore;
use rocketmq_kernel::consume::ConsumeService;
use rocketmq_model::MessageQueue;
use rocketmq_model::body::MessageModel;

fn stalled()
-> impl FnOnce(Arc<rocketmq_kernel::offset::RemoteOffsetStore>) -> Arc<dyn ConsumeService> {
    |_| Arc::new(StalledConsume::default())
}

#[tokio::test(start_paused = true)]
async fn broadcasting_owns_every_queue_without_asking_for_the_group() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(3))]);
    let mut options = options();
    options.message_model = MessageModel::Broadcasting;
    let c1 = start_client(&cluster, &ns, "c1", options, stalled(), &[sub_all(TOPIC)]);
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 6);
    assert_eq!(cluster.consumer_list_calls.load(Ordering::SeqCst), 0);
    eventually("every queue is pulled", || {
        cluster.pulls.lock().unwrap().len() >= 6
    })
    .await;
    // Broadcasting never commits offsets through pulls.
    let mq = MessageQueue::new(TOPIC, "broker-a", 0);
    assert!(c1.store.update(&mq, 5, true));
    eventually("pulled again", || cluster.pulls_of(&mq).len() >= 2).await;
    assert!(
        cluster
            .pulls
            .lock()
            .unwrap()
            .iter()
            .all(|p| p.header.commit_offset == 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_route_change_adds_queues_and_an_unsubscribe_drops_them() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1)), ("U", route(1))]);
    cluster.set_clients(&["c1"]);
    let c1 = start_client(
        &cluster,
        &ns,
        "c1",
        options(),
        stalled(),
        &[sub_all(TOPIC), sub_all("U")],
    );
    let mut changes = c1.rebalancer.assignment_changes();
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 4);
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();

    // Unchanged route: no round is asked for.
    assert!(!c1.rebalancer.refresh_routes().await.unwrap());
    // The topic grows to two queues per broker.
    let grown = FakeNameServer::with(&[(TOPIC, route(2)), ("U", route(1))]);
    let routes = rocketmq_kernel::route::Routes::with_table(c1.routes.table().clone(), grown);
    assert!(routes.refresh(TOPIC).await.unwrap());
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 6);
    assert!(changes.has_changed().unwrap());

    // Unsubscribing drops the topic's queues, persisting their offsets.
    let u0 = MessageQueue::new("U", "broker-a", 0);
    c1.store.update(&u0, 9, true);
    c1.rebalancer.unsubscribe("U");
    c1.rebalancer.rebalance().await;
    let assigned = c1.rebalancer.assigned();
    assert_eq!(assigned.len(), 4);
    assert!(assigned.iter().all(|mq| mq.topic == TOPIC));
    assert_eq!(cluster.offsets.lock().unwrap().get(&u0), Some(&9));
    assert_eq!(c1.rebalancer.subscriptions().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_routes_asks_for_a_round_when_a_route_changed() {
    let cluster = Cluster::new();
    let ns = Arc::new(FakeNameServer::default());
    cluster.set_clients(&["c1"]);
    let c1 = start_client(&cluster, &ns, "c1", options(), stalled(), &[sub_all(TOPIC)]);
    c1.rebalancer.rebalance().await;
    assert!(c1.rebalancer.assigned().is_empty(), "no route yet");
    assert!(c1.rebalancer.refresh_routes().await.is_err());

    ns.set(TOPIC, route(1));
    assert!(c1.rebalancer.refresh_routes().await.unwrap());
    eventually("the asked-for round adds the queues", || {
        c1.rebalancer.assigned().len() == 2
    })
    .await;
}

/// Panics on its first allocation, then gives every queue.
#[derive(Default)]
struct PanicsOnce(std::sync::atomic::AtomicBool);

impl rocketmq_kernel::AllocateStrategy for PanicsOnce {
    fn allocate(
        &self,
        _group: &str,
        _own_client_id: &str,
        queues: &[MessageQueue],
        _client_ids: &[String],
    ) -> Vec<MessageQueue> {
        assert!(self.0.swap(true, Ordering::SeqCst), "a buggy strategy");
        queues.to_vec()
    }

    fn name(&self) -> &str {
        "PANICS_ONCE"
    }
}

#[tokio::test(start_paused = true)]
async fn a_strategy_that_panics_skips_a_round_not_every_round() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    let c1 = start_client_with_strategy(
        &cluster,
        &ns,
        "c1",
        options(),
        stalled(),
        &[sub_all(TOPIC)],
        Some(Arc::new(PanicsOnce::default())),
    );
    for round in 0..2 {
        tokio::time::timeout(Duration::from_secs(60), c1.rebalancer.rebalance())
            .await
            .unwrap_or_else(|_| panic!("round {round} never came"));
    }
    assert_eq!(
        c1.rebalancer.assigned().len(),
        4,
        "the next round allocates"
    );
}

#[tokio::test(start_paused = true)]
async fn the_listener_hears_of_each_topic_whose_queues_a_round_changed() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2)), ("U", route(1))]);
    cluster.set_clients(&["c1"]);
    let heard: Arc<std::sync::Mutex<Vec<Vec<String>>>> = Arc::default();
    let listener = {
        let heard = Arc::clone(&heard);
        Arc::new(move |topics: &[String]| heard.lock().unwrap().push(topics.to_vec()))
    };
    let c1 = start_client_with(
        &cluster,
        &ns,
        "c1",
        options(),
        stalled(),
        &[sub_all(TOPIC), sub_all("U")],
        |builder| builder.on_assignment_change(listener),
    );
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 6);
    let taken =
        |heard: &std::sync::Mutex<Vec<Vec<String>>>| std::mem::take(&mut *heard.lock().unwrap());
    assert_eq!(taken(&heard), [vec![TOPIC.to_owned(), "U".to_owned()]]);

    // Nothing changed: nothing heard.
    c1.rebalancer.rebalance().await;
    assert!(taken(&heard).is_empty());

    // A second client takes half of each topic's queues.
    cluster.set_clients(&["c1", "c2"]);
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 3);
    assert_eq!(taken(&heard), [vec![TOPIC.to_owned(), "U".to_owned()]]);

    // Only U's queues change: only U is told.
    ns.set("U", route(2));
    c1.routes.refresh("U").await.unwrap();
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 4);
    assert_eq!(taken(&heard), [vec!["U".to_owned()]]);

    // An unsubscribed topic's queues go without a word.
    c1.rebalancer.unsubscribe("U");
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 2);
    assert!(taken(&heard).is_empty());
}
