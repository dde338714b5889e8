//! The soak of `examples/soak`, at CI size, on the testkit's memory network
//! under paused tokio time: two producers send 5,000 messages while three
//! push consumers of one group join and leave and one of two brokers is
//! stopped and restarted. Every acknowledged message is consumed, a
//! cleanly restarted consumer gets nothing twice, and no task outlives the
//! shutdown of the clients and the cluster.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{config, msg, unique, wait_until};
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_model::MessageExt;
use rocketmq_testkit::{TestCluster, TopicConfig};
use tokio::time::Instant;

const MESSAGES: u64 = 5_000;
const PRODUCERS: u64 = 2;
const RESTART_CHECK: u64 = 200;
/// One send per producer every 10 ms: 25 s of tokio time in all.
const PACE: Duration = Duration::from_millis(10);
const GROUP: &str = "soak";
const TOPIC: &str = "Soak";

/// Where a delivered message was stored: store host, queue, offset.
type Location = (std::net::SocketAddr, i32, i64);

/// Acknowledged sends and deliveries, by UNIQ_KEY.
#[derive(Default)]
struct Books {
    acked: HashMap<String, Instant>,
    failed: u64,
    delivered: HashMap<String, Vec<(Instant, Location)>>,
}

#[derive(Clone, Default)]
struct Ledger(Arc<Mutex<Books>>);

impl Ledger {
    fn acked(&self, id: String) {
        self.0.lock().unwrap().acked.insert(id, Instant::now());
    }

    fn failed(&self) {
        self.0.lock().unwrap().failed += 1;
    }

    fn delivered(&self, msgs: &[MessageExt]) {
        let now = Instant::now();
        let mut books = self.0.lock().unwrap();
        for m in msgs {
            let location = (m.store_host, m.queue_id, m.queue_offset);
            let id = m.msg_id().into_owned();
            books.delivered.entry(id).or_default().push((now, location));
        }
    }

    /// Acknowledged messages not consumed (yet).
    fn missing(&self) -> Vec<String> {
        let books = self.0.lock().unwrap();
        let mut missing: Vec<String> = books
            .acked
            .keys()
            .filter(|id| !books.delivered.contains_key(*id))
            .cloned()
            .collect();
        missing.sort();
        missing
    }

    /// Deliveries after `mark` of messages acknowledged before it.
    fn redelivered_after(&self, mark: Instant) -> usize {
        let books = self.0.lock().unwrap();
        books
            .delivered
            .iter()
            .filter(|(id, _)| books.acked.get(*id).is_some_and(|at| *at < mark))
            .flat_map(|(_, deliveries)| deliveries)
            .filter(|(at, _)| *at >= mark)
            .count()
    }

    fn deliveries(&self) -> usize {
        self.0
            .lock()
            .unwrap()
            .delivered
            .values()
            .map(Vec::len)
            .sum()
    }
}

async fn consumer(cluster: &TestCluster, instance: &str, ledger: &Ledger) -> PushConsumer {
    let ledger = ledger.clone();
    PushConsumer::builder(GROUP, config(cluster, instance))
        .subscribe(TOPIC, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let ledger = ledger.clone();
            async move {
                ledger.delivered(&msgs);
                ConcurrentResult::Success
            }
        })
        .build()
        .await
        .unwrap()
}

async fn send(producer: &Producer, ledger: &Ledger, n: u64) {
    match producer.send(msg(TOPIC, &format!("m{n}"), "soak")).await {
        Ok(result) => ledger.acked(result.msg_id),
        Err(_) => ledger.failed(),
    }
}

/// Producer `index` sends its share of the messages, one at a time, one
/// every [`PACE`] of tokio time, so that the faults fall among the sends.
async fn produce(producer: Arc<Producer>, ledger: Ledger, index: u64, progress: Arc<AtomicU64>) {
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for n in (index..MESSAGES).step_by(usize::try_from(PRODUCERS).unwrap()) {
        pace.tick().await;
        send(&producer, &ledger, n).await;
        progress.fetch_add(1, Ordering::Relaxed);
    }
}

async fn progress_reaches(progress: &AtomicU64, share: u64, of: u64) {
    let target = MESSAGES * share / of;
    wait_until("send progress", Duration::from_secs(3600), || {
        progress.load(Ordering::Relaxed) >= target
    })
    .await;
}

/// Waits until no delivery happened for 5 s of tokio time.
async fn settle(ledger: &Ledger) {
    let mut last = ledger.deliveries();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = ledger.deliveries();
        if now == last {
            return;
        }
        last = now;
    }
}

#[tokio::test(start_paused = true)]
async fn soak_under_churn_and_a_broker_restart_loses_nothing_and_leaks_no_task() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic_with(TOPIC, TopicConfig::new(4, 4))
        .build()
        .await
        .unwrap();
    let ledger = Ledger::default();
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let producer = Producer::builder()
            .client_config(config(&cluster, &unique("soak-p")))
            .producer_group("soak-producers")
            .build()
            .await
            .unwrap();
        producers.push(Arc::new(producer));
    }
    let names: Vec<String> = (0..3).map(|i| unique(&format!("soak-c{i}"))).collect();
    let mut members: Vec<Option<PushConsumer>> = vec![None, None, None];
    members[0] = Some(consumer(&cluster, &names[0], &ledger).await);

    let progress = Arc::new(AtomicU64::new(0));
    let mut sending = tokio::task::JoinSet::new();
    for (index, producer) in (0..PRODUCERS).zip(&producers) {
        let task = produce(
            Arc::clone(producer),
            ledger.clone(),
            index,
            Arc::clone(&progress),
        );
        sending.spawn(task);
    }
    // The plan of examples/soak with one broker cycle, each step at its
    // share of the sends.
    progress_reaches(&progress, 1, 8).await;
    members[1] = Some(consumer(&cluster, &names[1], &ledger).await);
    progress_reaches(&progress, 2, 8).await;
    members[2] = Some(consumer(&cluster, &names[2], &ledger).await);
    progress_reaches(&progress, 3, 8).await;
    cluster.broker(1).stop().await;
    let stopped = Instant::now();
    progress_reaches(&progress, 4, 8).await;
    tokio::time::sleep_until(stopped + Duration::from_secs(3)).await;
    cluster.broker(1).restart().await.unwrap();
    progress_reaches(&progress, 5, 8).await;
    let report = members[0].take().unwrap().shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    progress_reaches(&progress, 6, 8).await;
    members[0] = Some(consumer(&cluster, &names[0], &ledger).await);
    progress_reaches(&progress, 7, 8).await;
    let report = members[2].take().unwrap().shutdown().await;
    assert!(report.is_clean(), "{report:?}");
    while let Some(joined) = sending.join_next().await {
        joined.unwrap();
    }

    wait_until(
        "every acknowledged send consumed",
        Duration::from_secs(600),
        || ledger.missing().is_empty(),
    )
    .await;
    let (acked, failed) = {
        let books = ledger.0.lock().unwrap();
        (books.acked.len(), books.failed)
    };
    eprintln!(
        "acked {acked}, failed {failed}, deliveries {}",
        ledger.deliveries()
    );
    assert_eq!(u64::try_from(acked).unwrap() + failed, MESSAGES);
    assert!(acked > 0, "nothing was acknowledged");
    settle(&ledger).await;
    for member in &mut members {
        if let Some(consumer) = member.take() {
            let report = consumer.shutdown().await;
            assert!(report.is_clean(), "{report:?}");
        }
    }

    // A consumer shut down cleanly and started again consumes nothing twice.
    let mark = Instant::now();
    for n in MESSAGES..MESSAGES + RESTART_CHECK {
        send(&producers[0], &ledger, n).await;
    }
    let restarted = consumer(&cluster, &names[0], &ledger).await;
    wait_until(
        "the check's messages consumed",
        Duration::from_secs(600),
        || ledger.missing().is_empty(),
    )
    .await;
    settle(&ledger).await;
    assert_eq!(
        ledger.redelivered_after(mark),
        0,
        "redelivered after a clean restart"
    );
    assert!(restarted.shutdown().await.is_clean());

    for producer in producers {
        Arc::try_unwrap(producer).unwrap().shutdown().await;
    }
    cluster.shutdown().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0, "tasks alive after shutdown");
    assert!(ledger.missing().is_empty(), "lost: {:?}", ledger.missing());
}

/// While one of two brokers is down, a send that picks it fails over to
/// the other at once (a refused dial is an immediate, retriable error, as
/// Java's `RemotingConnectException`), so every send succeeds quickly.
#[tokio::test(start_paused = true)]
async fn sends_fail_over_at_once_while_a_broker_is_down() {
    let cluster = TestCluster::builder()
        .brokers(2)
        .topic_with(TOPIC, TopicConfig::new(4, 4))
        .build()
        .await
        .unwrap();
    let producer = consumer_support::producer(&cluster).await;
    for n in 0..8 {
        producer
            .send(msg(TOPIC, &format!("warm{n}"), "x"))
            .await
            .unwrap();
    }
    cluster.broker(1).stop().await;
    let started = Instant::now();
    for n in 0..100 {
        let sent = producer.send(msg(TOPIC, &format!("down{n}"), "x")).await;
        assert!(sent.is_ok(), "send {n} failed: {sent:?}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "100 sends took {took:?}");
    producer.shutdown().await;
    cluster.shutdown().await;
}
