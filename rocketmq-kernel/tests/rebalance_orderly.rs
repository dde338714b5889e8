//! Orderly consumption's side of rebalance: queues are locked on the broker
//! before they are pulled, locks are renewed every 20 s, a queue whose lock
//! is lost is not pulled, a dropped queue is unlocked (after its batch), and
//! rounds run one at a time.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rebalance_support::*;
use rocketmq_kernel::OffsetStore;
use rocketmq_kernel::api::CallMode;
use rocketmq_kernel::consume::ConsumeService;
use rocketmq_model::MessageQueue;
use tokio::sync::Notify;

fn orderly_client(cluster: &Arc<Cluster>, ns: &Arc<FakeNameServer>, id: &str) -> Client {
    let client = id.to_owned();
    start_client(
        cluster,
        ns,
        id,
        options(),
        move |store| -> Arc<dyn ConsumeService> {
            Arc::new(ImmediateConsume {
                client,
                store,
                log: Arc::new(Mutex::new(Vec::new())),
                orderly: true,
            })
        },
        &[sub_all(TOPIC)],
    )
}

fn a(id: i32) -> MessageQueue {
    MessageQueue::new(TOPIC, "broker-a", id)
}

#[tokio::test(start_paused = true)]
async fn a_queue_whose_lock_is_refused_is_not_added_and_retried_soon() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    cluster.refused_locks.lock().unwrap().insert(a(0));
    let c1 = orderly_client(&cluster, &ns, "c1");
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 3);
    assert!(!c1.rebalancer.assigned().contains(&a(0)));
    for mq in c1.rebalancer.assigned() {
        assert_eq!(
            cluster.locks.lock().unwrap().get(&mq).map(String::as_str),
            Some("c1")
        );
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        cluster.pulls_of(&a(0)).is_empty(),
        "an unlocked queue is never pulled"
    );
    let lock_requests = cluster.lock_requests.load(Ordering::SeqCst);
    assert!(
        lock_requests >= 4 + 5,
        "refused: a round every 500 ms tries again ({lock_requests})"
    );

    cluster.refused_locks.lock().unwrap().clear();
    eventually("the retried lock adds the queue", || {
        c1.rebalancer.assigned().len() == 4
    })
    .await;
    eventually("the queue is pulled", || {
        !cluster.pulls_of(&a(0)).is_empty()
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn lock_renewal_every_20_s_and_a_lost_lock_stops_the_pulls() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    let c1 = orderly_client(&cluster, &ns, "c1");
    c1.rebalancer.rebalance().await;
    assert_eq!(c1.rebalancer.assigned().len(), 4);
    let after_round = cluster.lock_requests.load(Ordering::SeqCst);
    assert_eq!(after_round, 4, "one lock per added queue");

    // Another client holds a#1 now: the renewal 20 s later is refused.
    cluster.locks.lock().unwrap().insert(a(1), "other".into());
    tokio::time::sleep(Duration::from_millis(20_100)).await;
    assert_eq!(
        cluster.lock_requests.load(Ordering::SeqCst),
        after_round + 2,
        "one renewal per broker"
    );
    let pq = c1.rebalancer.process_queue(&a(1)).unwrap();
    assert!(!pq.is_locked());
    assert!(c1.rebalancer.process_queue(&a(0)).unwrap().is_locked());
    let pulls = cluster.pulls_of(&a(1)).len();
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert_eq!(
        cluster.pulls_of(&a(1)).len(),
        pulls,
        "no pull without the lock"
    );

    // The other client lets go: the next renewal locks it again.
    cluster.locks.lock().unwrap().remove(&a(1));
    c1.rebalancer.lock_all().await;
    assert!(pq.is_locked());
    eventually("pulls resume", || cluster.pulls_of(&a(1)).len() > pulls).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queue_is_unlocked_after_its_batch_and_all_at_shutdown() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    let c1 = orderly_client(&cluster, &ns, "c1");
    c1.rebalancer.rebalance().await;
    // With c2, c1 keeps broker-a's queues and loses broker-b's.
    let lost = MessageQueue::new(TOPIC, "broker-b", 0);
    let pq = c1.rebalancer.process_queue(&lost).unwrap();
    c1.store.update(&lost, 3, true);

    // A batch of b#0 is being consumed while c2 joins and takes b#0.
    let consuming = pq.consume_lock().lock().await;
    cluster.set_clients(&["c1", "c2"]);
    c1.rebalancer.rebalance().await;
    assert!(pq.is_dropped());
    assert!(!c1.rebalancer.assigned().contains(&lost));
    assert!(
        c1.rebalancer.process_queue(&lost).is_some(),
        "kept until unlocked"
    );
    assert!(
        cluster
            .unlocks
            .lock()
            .unwrap()
            .iter()
            .all(|(_, mq, _)| *mq != lost)
    );
    assert_eq!(
        pq.info(tokio::time::Instant::now(), std::time::SystemTime::now())
            .try_unlock_times,
        1
    );

    // The batch ends: the next round persists, forgets and unlocks it.
    drop(consuming);
    c1.rebalancer.rebalance().await;
    assert!(c1.rebalancer.process_queue(&lost).is_none());
    assert_eq!(cluster.offsets.lock().unwrap().get(&lost), Some(&3));
    assert!(!c1.store.update(&lost, 4, true), "forgotten");
    assert!(!pq.is_locked());
    assert!(cluster.locks.lock().unwrap().get(&lost).is_none());
    let unlocks = cluster.unlocks.lock().unwrap().clone();
    assert!(unlocks.contains(&("c1".into(), lost, CallMode::Oneway)));

    // Shutdown unlocks everything left, waiting for the broker.
    let held = c1.rebalancer.assigned();
    c1.rebalancer.shutdown().await;
    for mq in held {
        let unlocks = cluster.unlocks.lock().unwrap().clone();
        assert!(
            unlocks.contains(&("c1".into(), mq.clone(), CallMode::Sync)),
            "{mq}"
        );
        assert!(cluster.locks.lock().unwrap().get(&mq).is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn one_round_at_a_time_and_requests_coalesce() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(2))]);
    cluster.set_clients(&["c1"]);
    let hold = Arc::new(Notify::new());
    *cluster.hold_consumer_list.lock().unwrap() = Some(hold.clone());
    let c1 = Arc::new(orderly_client(&cluster, &ns, "c1"));
    eventually("the first round asks for the consumer list", || {
        cluster.consumer_list_calls.load(Ordering::SeqCst) == 1
    })
    .await;

    // Requests while the first round runs.
    let mut waiters = Vec::new();
    for _ in 0..3 {
        let c1 = c1.clone();
        waiters.push(tokio::spawn(async move { c1.rebalancer.rebalance().await }));
    }
    for _ in 0..5 {
        c1.rebalancer.trigger();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cluster.consumer_list_calls.load(Ordering::SeqCst), 1);
    assert!(waiters.iter().all(|waiter| !waiter.is_finished()));

    // The first round ends; exactly one more serves every request.
    hold.notify_one();
    eventually("the second round starts", || {
        cluster.consumer_list_calls.load(Ordering::SeqCst) == 2
    })
    .await;
    *cluster.hold_consumer_list.lock().unwrap() = None;
    hold.notify_one();
    for waiter in waiters {
        waiter.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(cluster.consumer_list_calls.load(Ordering::SeqCst), 2);
    assert_eq!(cluster.max_rounds_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(c1.rebalancer.assigned().len(), 4);
}
