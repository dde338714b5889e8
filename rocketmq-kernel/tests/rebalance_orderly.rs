//! Orderly consumption's side of rebalance: queues are locked on the broker
//! before they are pulled, locks are renewed every 20 s, a queue whose lock
//! is lost is not pulled, a dropped queue is unlocked (after its batch), and
//! rounds run one at a time.

#![allow(clippy::unwrap_used)]

mod rebalance_support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::BTreeSet;

use async_trait::async_trait;
use rebalance_support::*;
use rocketmq_kernel::api::{BrokerApi, CallMode};
use rocketmq_kernel::consume::{
    ConsumeEnv, ConsumeService, ConsumeStats, OrderlyContext, OrderlyListener, OrderlyResult,
    OrderlyService,
};
use rocketmq_kernel::offset::RemoteOffsetStore;
use rocketmq_kernel::rebalance::{ConsumerParts, Rebalancer};
use rocketmq_kernel::route::Routes;
use rocketmq_kernel::{OffsetStore, Result};
use rocketmq_model::body::{ConsumeFromWhere, LockBatchRequestBody, UnlockBatchRequestBody};
use rocketmq_model::{MessageExt, MessageQueue};
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

/// Records per queue how many batches run at once; the first batch of
/// `slow` takes `slow_for`, every other batch 10 ms.
struct Overlap {
    slow: MessageQueue,
    slow_for: Duration,
    in_flight: Mutex<std::collections::HashMap<MessageQueue, usize>>,
    most_at_once: Mutex<std::collections::HashMap<MessageQueue, usize>>,
    seen: Mutex<Vec<(MessageQueue, i64)>>,
}

impl Overlap {
    fn new(slow: MessageQueue, slow_for: Duration) -> Arc<Self> {
        Arc::new(Overlap {
            slow,
            slow_for,
            in_flight: Mutex::default(),
            most_at_once: Mutex::default(),
            seen: Mutex::default(),
        })
    }

    fn most_at_once(&self, mq: &MessageQueue) -> usize {
        self.most_at_once
            .lock()
            .unwrap()
            .get(mq)
            .copied()
            .unwrap_or(0)
    }

    fn seen_of(&self, mq: &MessageQueue) -> Vec<i64> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|(q, _)| q == mq)
            .map(|(_, o)| *o)
            .collect()
    }
}

#[async_trait::async_trait]
impl OrderlyListener for Overlap {
    async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult {
        let mq = (*ctx.mq).clone();
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            let now = in_flight.entry(mq.clone()).or_default();
            *now += 1;
            let mut most = self.most_at_once.lock().unwrap();
            let most = most.entry(mq.clone()).or_default();
            *most = (*most).max(*now);
        }
        let first = self.seen_of(&mq).is_empty();
        for msg in &msgs {
            self.seen
                .lock()
                .unwrap()
                .push((mq.clone(), msg.queue_offset));
        }
        let pause = if first && mq == self.slow {
            self.slow_for
        } else {
            Duration::from_millis(10)
        };
        tokio::time::sleep(pause).await;
        *self.in_flight.lock().unwrap().get_mut(&mq).unwrap() -= 1;
        OrderlyResult::Success
    }
}

/// A queue taken away while its long batch runs, then given back to the
/// same client more than 20 s later: the force-unlock path drops the old
/// process queue while its batch still runs and the queue comes back with
/// a new one. Its second consume loop must wait for the first batch, as
/// Java's `MessageQueueLock` (kept by queue, not by process queue) makes it:
/// two batches of one queue ran at once.
#[tokio::test(start_paused = true)]
async fn a_queue_given_back_mid_batch_is_not_consumed_twice_at_once() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    cluster.set_clients(&["c1"]);
    // With c1 and c2, averagely gives c1 a#0 and c2 b#0.
    let moved = MessageQueue::new(TOPIC, "broker-b", 0);
    cluster.append(&moved, 5, "x");
    let routes = rocketmq_kernel::route::Routes::new(ns.clone());
    routes.route(TOPIC).await.unwrap();
    let listener = Overlap::new(moved.clone(), Duration::from_secs(60));
    let c1 = start_client(
        &cluster,
        &ns,
        "c1",
        options(),
        {
            let cluster = cluster.clone();
            let listener: Arc<dyn OrderlyListener> = listener.clone();
            move |store| -> Arc<dyn ConsumeService> {
                let env = ConsumeEnv {
                    options: Arc::new(options()),
                    client_id: "c1".to_owned(),
                    api: Arc::new(ClientBroker {
                        cluster: cluster.clone(),
                        client_id: "c1".to_owned(),
                    }),
                    routes: routes.clone(),
                    offsets: store,
                    stats: Arc::new(ConsumeStats::new()),
                    hooks: Default::default(),
                };
                Arc::new(OrderlyService::new(env, listener))
            }
        },
        &[sub_all(TOPIC)],
    );
    c1.rebalancer.rebalance().await;
    eventually("the first batch of b#0 runs", || {
        listener.seen_of(&moved) == vec![0]
    })
    .await;

    // c2 joins: b#0 is dropped, but its batch is busy, so it stays.
    cluster.set_clients(&["c1", "c2"]);
    c1.rebalancer.rebalance().await;
    let old_pq = c1.rebalancer.process_queue(&moved).unwrap();
    assert!(old_pq.is_dropped());

    // c2 leaves again; more than 20 s after the last lock renewal the next
    // round force-unlocks b#0 and adds it back.
    tokio::time::sleep(Duration::from_secs(25)).await;
    cluster.set_clients(&["c1"]);
    c1.rebalancer.rebalance().await;
    let new_pq = c1.rebalancer.process_queue(&moved).unwrap();
    assert!(!Arc::ptr_eq(&old_pq, &new_pq), "a new process queue");

    eventually("the queue consumed to its end", || {
        listener.seen_of(&moved).last() == Some(&4)
    })
    .await;
    assert_eq!(
        listener.most_at_once(&moved),
        1,
        "two batches of b#0 ran at once (offsets seen {:?})",
        listener.seen_of(&moved)
    );
    let seen = listener.seen_of(&moved);
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1 || w[1] == 0),
        "in order, from the start again at most: {seen:?}"
    );
}

/// A shutdown while a round releases a queue (waiting up to 500 ms for its
/// batch) cancels the round half way, after the queue left the table: it
/// was never unlocked, and its next owner waited for the broker's 60 s
/// expiry. Java's shutdown lets the rebalance thread finish its round.
#[tokio::test(start_paused = true)]
async fn a_shutdown_during_a_release_still_unlocks_the_queue() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    cluster.set_clients(&["c1"]);
    let c1 = orderly_client(&cluster, &ns, "c1");
    c1.rebalancer.rebalance().await;
    let moved = MessageQueue::new(TOPIC, "broker-b", 0);
    let pq = c1.rebalancer.process_queue(&moved).unwrap();
    let batch = pq.consume_lock().lock().await;

    cluster.set_clients(&["c1", "c2"]);
    c1.rebalancer.trigger();
    eventually("the round is releasing b#0", || pq.is_dropped()).await;
    // The batch ends 100 ms later, inside the round's 500 ms wait.
    tokio::join!(c1.rebalancer.shutdown(), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(batch);
    });
    let unlocks = cluster.unlocks.lock().unwrap().clone();
    assert!(
        unlocks.iter().any(|(_, mq, _)| *mq == moved),
        "b#0 unlocked: {unlocks:?}"
    );
    assert!(
        !cluster.locks.lock().unwrap().contains_key(&moved),
        "the broker holds no lock of b#0"
    );
}

/// An offset reset reaching an orderly queue in the middle of a long batch:
/// the broker has already told the admin tool it succeeded, so the reset
/// must still take effect once the batch ends (Java applies it after its
/// wait). It was dropped with a warning and the queue restarted from its
/// old offset.
#[tokio::test(start_paused = true)]
async fn a_reset_of_a_queue_busy_consuming_takes_effect_after_the_batch() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    cluster.set_clients(&["c1"]);
    let c1 = orderly_client(&cluster, &ns, "c1");
    c1.rebalancer.rebalance().await;
    let busy = a(0);
    let old_pq = c1.rebalancer.process_queue(&busy).unwrap();
    let batch = old_pq.consume_lock().lock().await;

    let store = Arc::clone(&c1.store);
    let (reset, ()) = tokio::join!(
        c1.rebalancer
            .reset_queues(std::slice::from_ref(&busy), |queues| async move {
                for mq in &queues {
                    assert!(store.force(mq, 100));
                    store.persist(mq).await.unwrap();
                    store.remove(mq);
                }
            }),
        async {
            // The batch ends after the removal gave up waiting for it.
            tokio::time::sleep(Duration::from_millis(700)).await;
            drop(batch);
        },
    );
    assert_eq!(reset, std::slice::from_ref(&busy));
    assert!(old_pq.is_dropped(), "the old batch commits nothing");
    c1.rebalancer.rebalance().await;
    eventually("the queue is back with a new process queue", || {
        c1.rebalancer
            .process_queue(&busy)
            .is_some_and(|pq| !Arc::ptr_eq(&pq, &old_pq))
    })
    .await;
    eventually("it is pulled from the reset offset", || {
        cluster
            .pulls_of(&busy)
            .last()
            .is_some_and(|pull| pull.header.queue_offset == 100)
    })
    .await;
}

/// Where a [`Stalling`] broker leaves an add hanging.
#[derive(Clone, Copy)]
enum Stall {
    /// The lock is granted, but its answer never comes.
    LockAnswer,
    /// The lock is granted, but its answer comes too late: the call fails
    /// with a timeout, as the API's does after its request timeout.
    LockAnswerTimedOut,
    /// GET_MAX_OFFSET (the start offset of a locked queue) never answers.
    MaxOffset,
}

/// The fake brokers, stalling one step of adding a queue.
struct Stalling(ClientBroker, Stall);

#[async_trait]
impl BrokerApi for Stalling {
    async fn consumer_list(&self, addr: &str, group: &str) -> Result<Vec<String>> {
        self.0.consumer_list(addr, group).await
    }

    async fn lock_batch(
        &self,
        addr: &str,
        body: LockBatchRequestBody,
    ) -> Result<BTreeSet<MessageQueue>> {
        let granted = self.0.lock_batch(addr, body).await;
        match self.1 {
            Stall::LockAnswer => std::future::pending::<()>().await,
            Stall::LockAnswerTimedOut => {
                return Err(rocketmq_kernel::KernelError::Remoting(
                    rocketmq_remoting::RemotingError::Timeout {
                        addr: addr.to_owned(),
                        after: Duration::from_secs(3),
                    },
                ));
            }
            Stall::MaxOffset => {}
        }
        granted
    }

    async fn unlock_batch(
        &self,
        addr: &str,
        body: UnlockBatchRequestBody,
        mode: CallMode,
    ) -> Result<()> {
        self.0.unlock_batch(addr, body, mode).await
    }

    async fn max_offset(&self, addr: &str, mq: &MessageQueue) -> Result<i64> {
        if let Stall::MaxOffset = self.1 {
            std::future::pending::<()>().await;
        }
        self.0.max_offset(addr, mq).await
    }
}

/// A shutdown while a round adds a queue the broker has locked (the lock's
/// answer, or the queue's start offset, still to come): the queue is
/// unlocked all the same, or its next owner waits for the broker's lock to
/// expire.
#[tokio::test(start_paused = true)]
async fn a_queue_locked_while_being_added_is_unlocked_by_a_shutdown() {
    for stall in [Stall::MaxOffset, Stall::LockAnswer] {
        shutdown_unlocks_a_queue_being_added(stall).await;
    }
}

async fn shutdown_unlocks_a_queue_being_added(stall: Stall) {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    cluster.set_clients(&["c1"]);
    let store = Arc::new(RemoteOffsetStore::new(GROUP, cluster.clone()));
    let mut options = options();
    options.consume_from_where = ConsumeFromWhere::LastOffset;
    let consume: Arc<dyn ConsumeService> = Arc::new(ImmediateConsume {
        client: "c1".into(),
        store: store.clone(),
        log: Arc::new(Mutex::new(Vec::new())),
        orderly: true,
    });
    let broker = ClientBroker {
        cluster: cluster.clone(),
        client_id: "c1".into(),
    };
    let parts = ConsumerParts {
        broker: Arc::new(Stalling(broker, stall)),
        routes: Routes::new(ns.clone()),
        store,
        consume,
    };
    let rebalancer = Rebalancer::builder("c1", options, parts)
        .interval(Duration::from_secs(86_400))
        .subscribe(sub_all(TOPIC))
        .start();
    eventually("a queue locked on the broker", || {
        !cluster.locks.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), rebalancer.shutdown())
        .await
        .expect("the shutdown ends");
    let left = cluster.locks.lock().unwrap().clone();
    assert!(left.is_empty(), "locks left after the shutdown: {left:?}");
}

/// A queue whose lock call timed out although the broker granted the lock
/// (its answer came after the request timeout) is not added, but the lock
/// is the client's on the broker all the same: the shutdown must unlock
/// it, or the queue's next owner waits for the broker's lock to expire.
#[tokio::test(start_paused = true)]
async fn a_queue_whose_lock_call_timed_out_is_unlocked_by_a_shutdown() {
    let cluster = Cluster::new();
    let ns = FakeNameServer::with(&[(TOPIC, route(1))]);
    cluster.set_clients(&["c1"]);
    let store = Arc::new(RemoteOffsetStore::new(GROUP, cluster.clone()));
    let consume: Arc<dyn ConsumeService> = Arc::new(ImmediateConsume {
        client: "c1".into(),
        store: store.clone(),
        log: Arc::new(Mutex::new(Vec::new())),
        orderly: true,
    });
    let broker = ClientBroker {
        cluster: cluster.clone(),
        client_id: "c1".into(),
    };
    let parts = ConsumerParts {
        broker: Arc::new(Stalling(broker, Stall::LockAnswerTimedOut)),
        routes: Routes::new(ns.clone()),
        store,
        consume,
    };
    let rebalancer = Rebalancer::builder("c1", options(), parts)
        .interval(Duration::from_secs(86_400))
        .subscribe(sub_all(TOPIC))
        .start();
    // The first round's lock calls (one per broker's queue) timed out.
    eventually("the lock calls made", || {
        cluster.lock_requests.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(rebalancer.assigned().is_empty(), "not added");
    assert_eq!(
        cluster.locks.lock().unwrap().get(&a(0)).map(String::as_str),
        Some("c1"),
        "the broker granted the lock"
    );
    tokio::time::timeout(Duration::from_secs(30), rebalancer.shutdown())
        .await
        .expect("the shutdown ends");
    let left = cluster.locks.lock().unwrap().clone();
    assert!(left.is_empty(), "locks left after the shutdown: {left:?}");
}
