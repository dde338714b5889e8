//! The orderly consume service against a fake broker, a memory offset store
//! and recording listeners, in paused tokio time: never two batches of one
//! queue at once, queue order kept, retry in place then dead-lettering at
//! the maximum reconsume count, and no consumption without the queue lock.

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use consume_fakes::{Fixture, MASTER, fixture, in_namespace, mq, msg, options, queue_with, until};
use rocketmq_kernel::consume::{
    OrderlyContext, OrderlyListener, OrderlyResult, OrderlyService, ShutdownReport,
};
use rocketmq_kernel::offset::OffsetStore;
use rocketmq_kernel::{ConsumeRequest, ConsumeService, ConsumerOptions, ProcessQueue};
use rocketmq_model::body::MessageModel;
use rocketmq_model::{MessageExt, MessageQueue, Properties, property};
use tokio::time::Instant;

/// Records every batch, the overlap per queue and overall; takes `hold` per
/// call; suspends every batch containing a `failing` offset.
struct Recorder {
    hold: Duration,
    failing: HashSet<i64>,
    in_flight: Mutex<HashMap<i32, usize>>,
    max_per_queue: AtomicUsize,
    total: AtomicUsize,
    max_total: AtomicUsize,
    /// (queue id, offset, reconsume times) of every message seen, in order.
    seen: Mutex<Vec<(i32, i64, i32)>>,
}

impl Recorder {
    fn new(hold: Duration, failing: impl IntoIterator<Item = i64>) -> Arc<Self> {
        Arc::new(Recorder {
            hold,
            failing: failing.into_iter().collect(),
            in_flight: Mutex::new(HashMap::new()),
            max_per_queue: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            max_total: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        })
    }

    fn seen(&self) -> Vec<(i32, i64, i32)> {
        self.seen.lock().unwrap().clone()
    }

    fn offsets_of(&self, queue_id: i32) -> Vec<i64> {
        self.seen()
            .into_iter()
            .filter(|(q, _, _)| *q == queue_id)
            .map(|(_, offset, _)| offset)
            .collect()
    }
}

#[async_trait]
impl OrderlyListener for Recorder {
    async fn consume(&self, msgs: Vec<MessageExt>, _ctx: &mut OrderlyContext) -> OrderlyResult {
        let queue = msgs[0].queue_id;
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            let now = in_flight.entry(queue).or_default();
            *now += 1;
            self.max_per_queue.fetch_max(*now, Ordering::SeqCst);
        }
        let total = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_total.fetch_max(total, Ordering::SeqCst);
        for msg in &msgs {
            assert_eq!(msg.topic(), "T");
            self.seen
                .lock()
                .unwrap()
                .push((msg.queue_id, msg.queue_offset, msg.reconsume_times));
        }
        tokio::time::sleep(self.hold).await;
        self.total.fetch_sub(1, Ordering::SeqCst);
        *self.in_flight.lock().unwrap().get_mut(&queue).unwrap() -= 1;
        if msgs
            .iter()
            .any(|msg| self.failing.contains(&msg.queue_offset))
        {
            OrderlyResult::SuspendCurrentQueue
        } else {
            OrderlyResult::Success
        }
    }
}

fn with(threads: usize, batch: usize) -> ConsumerOptions {
    let mut options = options();
    options.consume_thread_max = threads;
    options.consume_message_batch_max_size = batch;
    options
}

fn committed(fx: &Fixture, mq: &MessageQueue) -> Option<i64> {
    fx.offsets.snapshot().get(mq).copied()
}

fn locked(pq: &ProcessQueue) {
    pq.lock_granted(Instant::now());
}

#[tokio::test(start_paused = true)]
async fn no_queue_ever_has_two_batches_in_flight() {
    let fx = fixture(with(2, 2));
    let listener = Recorder::new(Duration::from_millis(50), []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let queues: Vec<_> = (0..3).map(mq).collect();
    for mq in &queues {
        let (pq, request) = queue_with(mq, 0..20);
        locked(&pq);
        service.submit(request.clone()).await;
        // Submitting again while the loop runs starts nothing new.
        service.submit(request).await;
    }
    until(|| queues.iter().all(|mq| committed(&fx, mq) == Some(20))).await;
    assert_eq!(listener.max_per_queue.load(Ordering::SeqCst), 1);
    assert_eq!(listener.max_total.load(Ordering::SeqCst), 2);
    for mq in &queues {
        assert_eq!(
            listener.offsets_of(mq.queue_id),
            (0..20).collect::<Vec<_>>()
        );
    }
    assert_eq!(fx.stats.topic_stats("T").ok, 60);
    assert_eq!(
        service.shutdown(Duration::from_secs(1)).await,
        ShutdownReport::default()
    );
}

#[tokio::test(start_paused = true)]
async fn messages_put_after_the_loop_ended_are_consumed() {
    let fx = fixture(with(1, 4));
    let listener = Recorder::new(Duration::ZERO, []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..5);
    locked(&pq);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(5)).await;
    let more: Vec<_> = (5..9).map(|offset| msg(&mq(0), offset)).collect();
    let dispatch = pq.put(&more);
    assert!(dispatch);
    service
        .submit(ConsumeRequest {
            mq: mq(0),
            pq: Arc::clone(&pq),
            msgs: more,
            dispatch,
        })
        .await;
    until(|| committed(&fx, &mq(0)) == Some(9)).await;
    assert_eq!(listener.offsets_of(0), (0..9).collect::<Vec<_>>());
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failing_message_is_retried_in_place_then_dead_lettered() {
    let mut options = with(1, 1);
    options.max_reconsume_times = Some(2);
    let fx = fixture(options);
    let listener = Recorder::new(Duration::ZERO, [1]);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..3);
    locked(&pq);
    let started = Instant::now();
    service.submit(request).await;

    until(|| listener.seen().len() == 2).await;
    assert_eq!(committed(&fx, &mq(0)), Some(1));
    until(|| listener.seen().len() == 3).await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the queue paused"
    );
    assert_eq!(
        committed(&fx, &mq(0)),
        Some(1),
        "not committed past the failing message"
    );

    until(|| committed(&fx, &mq(0)) == Some(3)).await;
    assert_eq!(
        listener.seen(),
        [(0, 0, 0), (0, 1, 0), (0, 1, 1), (0, 1, 2), (0, 2, 0)],
        "the same message again, then the next one"
    );
    let sent = fx.broker.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (addr, request) = &sent[0];
    assert_eq!(addr, MASTER);
    assert_eq!(request.header.topic, "%RETRY%cg");
    assert_eq!(request.header.reconsume_times, Some(3));
    assert_eq!(request.header.max_reconsume_times, Some(2));
    assert_eq!(&request.body[..], b"1");
    let props = Properties::parse(request.header.properties.as_deref().unwrap());
    assert_eq!(props.get(property::DELAY), Some("5"));
    assert_eq!(props.get(property::RETRY_TOPIC), Some("T"));
    assert_eq!(
        fx.broker.sent_back_count(),
        0,
        "orderly never uses CONSUMER_SEND_MSG_BACK"
    );
    assert!(pq.is_empty());
    let stats = fx.stats.topic_stats("T");
    assert_eq!((stats.ok, stats.failed), (2, 3));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_dead_letter_send_keeps_the_message_suspended() {
    let mut options = with(1, 1);
    options.max_reconsume_times = Some(1);
    let fx = fixture(options);
    fx.broker.send_fails.store(true, Ordering::SeqCst);
    let listener = Recorder::new(Duration::ZERO, [0]);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..2);
    locked(&pq);
    service.submit(request).await;
    until(|| listener.seen().len() >= 4).await;
    assert!(listener.seen().iter().all(|(_, offset, _)| *offset == 0));
    assert_eq!(committed(&fx, &mq(0)), None);
    assert!(fx.broker.failed_sends.load(Ordering::SeqCst) >= 2);
    assert_eq!(pq.cached_count(), 2);

    fx.broker.send_fails.store(false, Ordering::SeqCst);
    until(|| committed(&fx, &mq(0)) == Some(2)).await;
    assert_eq!(listener.offsets_of(0).last(), Some(&1));
    let report = service.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report, ShutdownReport::default());
}

#[tokio::test(start_paused = true)]
async fn in_a_namespace_a_dead_letter_records_the_topic_it_was_stored_in() {
    let mut options = in_namespace(with(1, 1));
    options.max_reconsume_times = Some(0);
    let fx = fixture(options);
    // The recorder checks that it is given the topic out of the namespace.
    let listener = Recorder::new(Duration::ZERO, [0]);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let wire = MessageQueue::new("ns%T", "broker-a", 0);
    let (pq, request) = queue_with(&wire, 0..1);
    locked(&pq);
    service.submit(request).await;
    until(|| committed(&fx, &wire) == Some(1)).await;
    let sent = fx.broker.sent.lock().unwrap().clone();
    let (_, request) = &sent[0];
    assert_eq!(request.header.topic, "%RETRY%ns%cg");
    let props = Properties::parse(request.header.properties.as_deref().unwrap());
    assert_eq!(props.get(property::RETRY_TOPIC), Some("ns%T"));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_queue_without_the_lock_is_not_consumed() {
    let fx = fixture(with(1, 1));
    fx.broker.refuse_locks.store(true, Ordering::SeqCst);
    let listener = Recorder::new(Duration::ZERO, []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..2);
    service.submit(request).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(listener.seen().is_empty());
    assert_eq!(committed(&fx, &mq(0)), None);
    let requests = fx.broker.lock_requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 4, "asked at 0, 3, 6 and 9 s");
    let (addr, body) = &requests[0];
    assert_eq!(addr, MASTER);
    assert_eq!(body.consumer_group, "cg");
    assert_eq!(body.client_id, "10.0.0.9@1");
    assert!(body.mq_set.contains(&mq(0)));
    assert!(!pq.is_locked());

    fx.broker.refuse_locks.store(false, Ordering::SeqCst);
    until(|| committed(&fx, &mq(0)) == Some(2)).await;
    assert!(pq.holds_lock(Instant::now()));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn an_expired_lock_stops_consumption_until_renewed() {
    let fx = fixture(with(1, 1));
    fx.broker.refuse_locks.store(true, Ordering::SeqCst);
    let listener = Recorder::new(Duration::ZERO, []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..2);
    locked(&pq);
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(pq.is_locked() && !pq.holds_lock(Instant::now()));
    service.submit(request).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(listener.seen().is_empty());
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn broadcasting_needs_no_lock() {
    let mut options = with(1, 2);
    options.message_model = MessageModel::Broadcasting;
    let fx = fixture(options);
    fx.broker.refuse_locks.store(true, Ordering::SeqCst);
    let listener = Recorder::new(Duration::ZERO, []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (_pq, request) = queue_with(&mq(0), 0..4);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(4)).await;
    assert!(fx.broker.lock_requests.lock().unwrap().is_empty());
    assert!(service.is_orderly());
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queue_stops_and_never_commits() {
    let fx = fixture(with(1, 1));
    let listener = Recorder::new(Duration::from_secs(1), []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..5);
    locked(&pq);
    service.submit(request).await;
    until(|| listener.seen().len() == 1).await;
    pq.mark_dropped();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(listener.offsets_of(0), [0]);
    assert_eq!(committed(&fx, &mq(0)), None);
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_the_abandoned_batch_and_cached_messages() {
    let fx = fixture(with(1, 1));
    let listener = Recorder::new(Duration::from_secs(3600), []);
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..3);
    locked(&pq);
    service.submit(request).await;
    until(|| listener.seen().len() == 1).await;
    let report = service.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        report,
        ShutdownReport {
            batches_left: 1,
            messages_left: 3
        }
    );
    assert_eq!(committed(&fx, &mq(0)), None);
}

/// Suspends its first `suspends` calls, asking for `pause` each time, then
/// succeeds; counts its calls.
struct Suspender {
    suspends: usize,
    pause: Option<Duration>,
    calls: AtomicUsize,
}

#[async_trait]
impl OrderlyListener for Suspender {
    async fn consume(&self, _msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult {
        if self.calls.fetch_add(1, Ordering::SeqCst) < self.suspends {
            ctx.suspend_current_queue_time = self.pause;
            OrderlyResult::SuspendCurrentQueue
        } else {
            OrderlyResult::Success
        }
    }
}

/// Runs a queue of one message through a listener that suspends `suspends`
/// times asking for `pause` (`options_pause` in the options), and returns how
/// long it took the queue to commit.
async fn time_to_commit(
    suspends: usize,
    pause: Option<Duration>,
    options_pause: Duration,
) -> Duration {
    let mut options = with(1, 1);
    options.message_model = MessageModel::Broadcasting;
    options.suspend_current_queue_time = options_pause;
    let fx = fixture(options);
    let listener = Arc::new(Suspender {
        suspends,
        pause,
        calls: AtomicUsize::new(0),
    });
    let service = OrderlyService::new(fx.env.clone(), listener.clone());
    let (_pq, request) = queue_with(&mq(0), 0..1);
    let started = Instant::now();
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(1)).await;
    let took = started.elapsed();
    assert_eq!(listener.calls.load(Ordering::SeqCst), suspends + 1);
    service.shutdown(Duration::from_secs(1)).await;
    took
}

#[tokio::test(start_paused = true)]
async fn suspend_times_are_held_between_10_ms_and_30_s() {
    // A zero pause, asked by the listener or set in the options, is no busy
    // loop: each suspend waits at least 10 ms, as Java's does.
    let zero_ctx = time_to_commit(100, Some(Duration::ZERO), Duration::from_secs(1)).await;
    assert!(zero_ctx >= Duration::from_secs(1), "{zero_ctx:?}");
    let zero_options = time_to_commit(100, None, Duration::ZERO).await;
    assert!(zero_options >= Duration::from_secs(1), "{zero_options:?}");
    // An hour is 30 s.
    let hour = time_to_commit(1, Some(Duration::from_secs(3600)), Duration::from_secs(1)).await;
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(31)).contains(&hour),
        "{hour:?}"
    );
}
