//! The client's metrics through the `metrics` facade: a producer's send
//! counts, latency and retries, and a push consumer's consume counts by
//! result, consume and pull latency, dead-lettered messages, cached messages
//! and lag per queue. The only test of this binary, so that it may install
//! the global recorder.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consumer_support::{Seen, config, msg, producer, unique, wait_assigned, wait_until};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use rocketmq_client::PushConsumer;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult};
use rocketmq_model::{MessageExt, MessageQueue, RequestCode, ResponseCode};
use rocketmq_testkit::TestCluster;

/// Counters, gauges (as f64 bits) and histogram sample counts by
/// `name{label=value,...}`.
#[derive(Default)]
struct Recorded {
    counters: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

struct Handle(Arc<AtomicU64>);

impl metrics::CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.set(f64::from_bits(self.0.load(Ordering::Relaxed)) + value);
    }
    fn decrement(&self, value: f64) {
        self.increment(-value);
    }
    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }
}

impl metrics::HistogramFn for Handle {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn name(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

fn slot(map: &Mutex<BTreeMap<String, Arc<AtomicU64>>>, key: &Key) -> Arc<AtomicU64> {
    Arc::clone(map.lock().unwrap().entry(name(key)).or_default())
}

#[derive(Clone, Default)]
struct TestRecorder(Arc<Recorded>);

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(slot(&self.0.counters, key))))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle(slot(&self.0.gauges, key))))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(slot(&self.0.histograms, key))))
    }
}

impl TestRecorder {
    fn counter(&self, key: &str) -> u64 {
        self.0
            .counters
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }

    fn gauge(&self, key: &str) -> Option<f64> {
        self.0
            .gauges
            .lock()
            .unwrap()
            .get(key)
            .map(|v| f64::from_bits(v.load(Ordering::Relaxed)))
    }

    /// The gauges whose labels contain `label` ("name=value").
    fn gauges_of(&self, label: &str) -> Vec<(String, f64)> {
        self.0
            .gauges
            .lock()
            .unwrap()
            .iter()
            .filter(|(key, _)| key.contains(label))
            .map(|(key, v)| (key.clone(), f64::from_bits(v.load(Ordering::Relaxed))))
            .collect()
    }

    fn samples(&self, key: &str) -> u64 {
        self.0
            .histograms
            .lock()
            .unwrap()
            .get(key)
            .map_or(0, |v| v.load(Ordering::Relaxed))
    }
}

#[tokio::test(start_paused = true)]
async fn consume_pull_dlq_cache_and_lag_are_measured() {
    let recorder = TestRecorder::default();
    metrics::set_global_recorder(recorder.clone()).unwrap();
    let cluster = TestCluster::builder()
        .topic("T")
        .retry_max_times("cg", 1)
        .build()
        .await
        .unwrap();
    let seen = Seen::default();
    let seen_in = seen.clone();
    let consumer = PushConsumer::builder("cg", config(&cluster, &unique("metrics")))
        .subscribe("T", "*")
        .max_reconsume_times(1)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen_in.clone();
            async move {
                seen.push(&msgs);
                if msgs.iter().any(|m| m.body().as_ref() == b"bad") {
                    ConcurrentResult::RetryLater
                } else {
                    ConcurrentResult::Success
                }
            }
        })
        .build()
        .await
        .unwrap();
    wait_assigned(&consumer, 4).await;
    let producer = producer(&cluster).await;
    // One busy answer: the first send is tried a second time.
    cluster.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 1);
    for i in 0..5 {
        producer
            .send(msg("T", &format!("m{i}"), "x"))
            .await
            .unwrap();
    }
    producer.send(msg("T", "bad", "x")).await.unwrap();
    let broker = cluster.broker(0);
    wait_until("a dead letter", Duration::from_secs(300), || {
        !broker.messages("%DLQ%cg", 0).is_empty()
    })
    .await;
    assert_eq!(seen.len(), 7, "5 good, the bad one and its retry");
    assert_eq!(
        recorder.counter("rocketmq_client_send_total{result=ok,topic=T}"),
        6
    );
    assert_eq!(
        recorder.counter("rocketmq_client_send_total{result=failed,topic=T}"),
        0
    );
    assert_eq!(
        recorder.counter("rocketmq_client_send_retries_total{topic=T}"),
        1
    );
    assert_eq!(
        recorder.samples("rocketmq_client_send_latency_seconds{result=ok,topic=T}"),
        6
    );
    assert_eq!(
        recorder.counter("rocketmq_client_consume_total{group=cg,result=ok,topic=T}"),
        5
    );
    assert_eq!(
        recorder.counter("rocketmq_client_consume_total{group=cg,result=failed,topic=T}"),
        2
    );
    assert_eq!(
        recorder.counter("rocketmq_client_dlq_total{group=cg,topic=T}"),
        1
    );
    assert!(
        recorder.samples("rocketmq_client_consume_latency_seconds{group=cg,result=ok,topic=T}")
            >= 5
    );
    assert!(recorder.samples("rocketmq_client_pull_latency_seconds{group=cg,topic=T}") >= 5);

    // The 5 s offset persistence updates the per-queue gauges.
    let broker_name = broker.name().to_owned();
    let cached_key = format!(
        "rocketmq_client_cached_messages{{broker={broker_name},group=cg,queue_id=0,topic=T}}"
    );
    wait_until(
        "the persistence timer sets the gauges",
        Duration::from_secs(10),
        || recorder.gauge(&cached_key).is_some(),
    )
    .await;
    let cached = recorder.gauge(&cached_key);
    assert_eq!(cached, Some(0.0));
    let lag = consumer.lag().await.unwrap();
    for (mq, lag) in &lag {
        let key = lag_key(mq);
        assert_eq!(recorder.gauge(&key), Some(*lag as f64), "{key}");
    }

    // The gauges of queues the consumer no longer reads go to zero; they
    // kept their last value for ever.
    consumer.suspend();
    for i in 0..8 {
        producer
            .send(msg("T", &format!("late{i}"), "x"))
            .await
            .unwrap();
    }
    unsubscribe_and_see_lag_zeroed(&consumer, &recorder, "the left queues' gauges are zeroed")
        .await;

    // So are the gauges `lag()` sets for a queue that leaves before the
    // next update.
    consumer.subscribe("T", "*").await.unwrap();
    wait_until("T assigned again", Duration::from_secs(60), || {
        consumer.assigned().iter().any(|mq| mq.topic == "T")
    })
    .await;
    unsubscribe_and_see_lag_zeroed(&consumer, &recorder, "gauges set by lag() are zeroed").await;
    consumer.subscribe("T", "*").await.unwrap();
    wait_until("T assigned once more", Duration::from_secs(60), || {
        consumer.assigned().iter().any(|mq| mq.topic == "T")
    })
    .await;
    assert!(consumer.lag().await.unwrap().values().any(|lag| *lag > 0));

    // Stuck: every pull refused. The lag gauges still grow with what is
    // sent (a queue failing for 30 s asks its broker for the max offset).
    consumer.resume();
    wait_until(
        "the late messages consumed",
        Duration::from_secs(60),
        || t_lag(&recorder) == 0.0,
    )
    .await;
    cluster.fail_requests(
        RequestCode::PULL_MESSAGE,
        ResponseCode::SYSTEM_BUSY,
        usize::MAX,
    );
    // The pulls the broker held when the fault began must be answered
    // first (within their suspend time): the messages would wake them.
    wait_until("the held pulls answered", Duration::from_secs(30), || {
        broker.held_pulls() == 0
    })
    .await;
    for i in 0..8 {
        producer
            .send(msg("T", &format!("stuck{i}"), "x"))
            .await
            .unwrap();
    }
    wait_until(
        "the lag of a stuck consumer",
        Duration::from_secs(120),
        || t_lag(&recorder) == 8.0,
    )
    .await;
    assert!(recorder.counter("rocketmq_client_pull_total{group=cg,result=failed,topic=T}") > 0);
    cluster.clear_faults();
    consumer.shutdown().await;
    // A stopped consumer's gauges do not stand for ever.
    let standing: Vec<(String, f64)> = recorder
        .gauges_of("group=cg")
        .into_iter()
        .filter(|(_, value)| *value != 0.0)
        .collect();
    assert!(
        standing.is_empty(),
        "gauges left after shutdown: {standing:?}"
    );

    // Pulls are counted by outcome.
    assert!(recorder.counter("rocketmq_client_pull_total{group=cg,result=ok,topic=T}") >= 5);

    // Oneway sends count once written, outside the latency histogram;
    // failed sends by reason.
    let timed = recorder.samples("rocketmq_client_send_latency_seconds{result=ok,topic=T}");
    producer.send_oneway(msg("T", "oneway", "x")).await.unwrap();
    assert_eq!(
        recorder.counter("rocketmq_client_send_total{result=ok,topic=T}"),
        6 + 8 + 8 + 1
    );
    assert_eq!(
        recorder.samples("rocketmq_client_send_latency_seconds{result=ok,topic=T}"),
        timed
    );
    cluster.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 3);
    assert!(producer.send(msg("T", "busy", "x")).await.is_err());
    assert_eq!(
        recorder.counter("rocketmq_client_send_total{reason=broker_busy,result=failed,topic=T}"),
        1
    );
    producer.shutdown().await;
}

/// The lag gauges of topic T, summed.
fn t_lag(recorder: &TestRecorder) -> f64 {
    recorder
        .gauges_of("rocketmq_client_consumer_lag")
        .into_iter()
        .filter(|(key, _)| key.contains("topic=T}") && key.contains("group=cg"))
        .map(|(_, value)| value)
        .sum()
}

/// The lag gauge of a queue as the consumer sets it.
fn lag_key(mq: &MessageQueue) -> String {
    format!(
        "rocketmq_client_consumer_lag{{broker={},group=cg,queue_id={},topic={}}}",
        mq.broker_name, mq.queue_id, mq.topic
    )
}

/// Reads the lag of T's queues (setting their gauges), unsubscribes from T
/// and waits until the gauges of those that lagged are zero.
async fn unsubscribe_and_see_lag_zeroed(
    consumer: &PushConsumer,
    recorder: &TestRecorder,
    what: &str,
) {
    let lagging: Vec<MessageQueue> = consumer
        .lag()
        .await
        .unwrap()
        .into_iter()
        .filter(|(mq, lag)| mq.topic == "T" && *lag > 0)
        .map(|(mq, _)| mq)
        .collect();
    assert!(!lagging.is_empty());
    consumer.unsubscribe("T").await;
    wait_until(what, Duration::from_secs(30), || {
        lagging
            .iter()
            .all(|mq| recorder.gauge(&lag_key(mq)) == Some(0.0))
    })
    .await;
}
