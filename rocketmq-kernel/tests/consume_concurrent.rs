//! The concurrent consume service against a fake broker, a memory offset
//! store and scripted listeners, in paused tokio time: bounded concurrency,
//! send-back of failed and unacknowledged messages, the committed offset
//! never passing an unacknowledged message, and the local retry when
//! send-back and its fallback fail.

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use consume_fakes::{
    Fixture, GROUP, MASTER, fixture, in_namespace, mq, options, queue_with, until,
};
use rocketmq_kernel::consume::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, ConcurrentService, LOCAL_RETRY_DELAY,
    ShutdownReport,
};
use rocketmq_kernel::offset::{OffsetStore, ReadOffsetType};
use rocketmq_kernel::{ConsumeService, ConsumerOptions};
use rocketmq_model::body::MessageModel;
use rocketmq_model::{MessageExt, MessageQueue, property};
use tokio::sync::watch;

type Decide = dyn Fn(&[MessageExt], &mut ConcurrentContext) -> ConcurrentResult + Send + Sync;

/// Records what it sees and how many calls overlap; takes `hold` per call;
/// waits for `release` before consuming a `blocked` offset; answers what
/// `decide` says.
struct Scripted {
    hold: Duration,
    blocked: HashSet<i64>,
    release: watch::Receiver<bool>,
    decide: Box<Decide>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// (queue id, offset, reconsume times, topic) of every message seen.
    seen: Mutex<Vec<(i32, i64, i32, String)>>,
}

impl Scripted {
    fn new(
        decide: impl Fn(&[MessageExt], &mut ConcurrentContext) -> ConcurrentResult
        + Send
        + Sync
        + 'static,
    ) -> (Arc<Self>, watch::Sender<bool>) {
        Self::build(Duration::ZERO, HashSet::new(), decide)
    }

    fn build(
        hold: Duration,
        blocked: HashSet<i64>,
        decide: impl Fn(&[MessageExt], &mut ConcurrentContext) -> ConcurrentResult
        + Send
        + Sync
        + 'static,
    ) -> (Arc<Self>, watch::Sender<bool>) {
        let (tx, release) = watch::channel(false);
        let listener = Arc::new(Scripted {
            hold,
            blocked,
            release,
            decide: Box::new(decide),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        (listener, tx)
    }

    fn seen(&self) -> Vec<(i32, i64, i32, String)> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_offsets(&self) -> Vec<i64> {
        self.seen()
            .into_iter()
            .map(|(_, offset, _, _)| offset)
            .collect()
    }
}

#[async_trait]
impl ConcurrentListener for Scripted {
    async fn consume(
        &self,
        msgs: Vec<MessageExt>,
        ctx: &mut ConcurrentContext,
    ) -> ConcurrentResult {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        for msg in &msgs {
            assert!(msg.property(property::CONSUME_START_TIME).is_some());
            self.seen.lock().unwrap().push((
                msg.queue_id,
                msg.queue_offset,
                msg.reconsume_times,
                msg.topic().to_owned(),
            ));
        }
        if msgs
            .iter()
            .any(|msg| self.blocked.contains(&msg.queue_offset))
        {
            let mut release = self.release.clone();
            release.wait_for(|released| *released).await.unwrap();
        }
        tokio::time::sleep(self.hold).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        (self.decide)(&msgs, ctx)
    }
}

fn ok(_: &[MessageExt], _: &mut ConcurrentContext) -> ConcurrentResult {
    ConcurrentResult::Success
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

#[tokio::test(start_paused = true)]
async fn concurrency_never_exceeds_the_thread_count() {
    let fx = fixture(with(3, 1));
    let (listener, _release) = Scripted::build(Duration::from_millis(100), HashSet::new(), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let queues: Vec<_> = (0..4).map(mq).collect();
    for mq in &queues {
        let (_pq, request) = queue_with(mq, 0..10);
        service.submit(request).await;
    }
    until(|| listener.seen().len() == 40 && listener.in_flight.load(Ordering::SeqCst) == 0).await;
    until(|| queues.iter().all(|mq| committed(&fx, mq) == Some(10))).await;
    assert_eq!(listener.max_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(fx.broker.sent_back_count(), 0);
    assert_eq!(fx.stats.topic_stats("T").ok, 40);
    assert_eq!(
        service.shutdown(Duration::from_secs(1)).await,
        ShutdownReport::default()
    );
}

#[tokio::test(start_paused = true)]
async fn submit_waits_when_the_queue_is_full() {
    let fx = fixture(with(1, 1));
    let (listener, release) = Scripted::build(Duration::ZERO, HashSet::from([0]), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (_pq, request) = queue_with(&mq(0), 0..10);
    // One batch in the worker, two queued: the fourth send waits.
    let pushed_back = tokio::time::timeout(Duration::from_secs(10), service.submit(request));
    assert!(
        pushed_back.await.is_err(),
        "submit should wait for capacity"
    );
    assert_eq!(listener.seen_offsets(), [0]);
    release.send(true).unwrap();
    let (_pq, request) = queue_with(&mq(1), 0..10);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(10) && committed(&fx, &mq(1)) == Some(10)).await;
    service.shutdown(Duration::from_secs(1)).await;
}

/// A submit given up on while it waits (its pull task stopped) still hands
/// over the batches it had not queued: they are in the process queue, and
/// a shutdown must drain them instead of leaving them to the next owner.
#[tokio::test(start_paused = true)]
async fn a_submit_given_up_on_still_hands_its_batches_over() {
    let fx = fixture(with(1, 1));
    let (listener, release) = Scripted::build(Duration::ZERO, HashSet::from([0]), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..10);
    let given_up = tokio::time::timeout(Duration::from_secs(10), service.submit(request));
    assert!(given_up.await.is_err(), "submit should wait for capacity");
    release.send(true).unwrap();
    let report = service.shutdown(Duration::from_secs(60)).await;
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(listener.seen_offsets(), (0..10).collect::<Vec<_>>());
    assert_eq!(committed(&fx, &mq(0)), Some(10));
    assert_eq!(pq.cached_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_later_sends_every_message_back() {
    let fx = fixture(with(2, 3));
    let (listener, _release) = Scripted::new(|_, _| ConcurrentResult::RetryLater);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(1), 0..3);
    service.submit(request).await;
    until(|| committed(&fx, &mq(1)) == Some(3)).await;
    assert!(pq.is_empty());
    let sent_back = fx.broker.sent_back.lock().unwrap().clone();
    assert_eq!(sent_back.len(), 3);
    for (i, (addr, header)) in sent_back.iter().enumerate() {
        assert_eq!(addr, MASTER);
        assert_eq!(header.offset, 1000 + i as i64, "the commit-log offset");
        assert_eq!(header.group, GROUP);
        assert_eq!(header.delay_level, 0);
        assert_eq!(header.max_reconsume_times, Some(16));
        assert_eq!(header.origin_topic.as_deref(), Some("T"));
        assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
        assert!(header.origin_msg_id.is_some());
    }
    let stats = fx.stats.topic_stats("T");
    assert_eq!((stats.ok, stats.failed), (0, 3));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn partial_ack_sends_back_only_after_the_ack_index() {
    let fx = fixture(with(1, 4));
    let (listener, _release) = Scripted::new(|_, ctx| {
        ctx.ack_index = 1;
        ctx.delay_level_when_next_consume = 5;
        ConcurrentResult::Success
    });
    let service = ConcurrentService::start(fx.env.clone(), listener);
    let (_pq, request) = queue_with(&mq(0), 0..4);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(4)).await;
    assert_eq!(fx.broker.sent_back_offsets(), [1002, 1003]);
    let levels: Vec<i32> = fx
        .broker
        .sent_back
        .lock()
        .unwrap()
        .iter()
        .map(|(_, h)| h.delay_level)
        .collect();
    assert_eq!(levels, [5, 5]);
    let stats = fx.stats.topic_stats("T");
    assert_eq!((stats.ok, stats.failed), (2, 2));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn the_committed_offset_never_passes_an_unacked_message() {
    let fx = fixture(with(4, 1));
    let (listener, release) = Scripted::build(Duration::ZERO, HashSet::from([2]), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..6);
    service.submit(request).await;
    until(|| listener.seen().len() == 6 && pq.cached_count() == 1).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        committed(&fx, &mq(0)),
        Some(2),
        "offset 2 is still being consumed"
    );
    release.send(true).unwrap();
    until(|| committed(&fx, &mq(0)) == Some(6)).await;
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_send_back_falls_back_to_the_retry_topic() {
    let fx = fixture(with(1, 1));
    fx.broker.send_back_fails.store(true, Ordering::SeqCst);
    let (listener, _release) = Scripted::new(|msgs, _| {
        if msgs[0].queue_offset == 1 {
            ConcurrentResult::RetryLater
        } else {
            ConcurrentResult::Success
        }
    });
    let service = ConcurrentService::start(fx.env.clone(), listener);
    let (_pq, request) = queue_with(&mq(0), 0..3);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(3)).await;
    let sent = fx.broker.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (addr, request) = &sent[0];
    assert_eq!(addr, MASTER);
    assert_eq!(request.header.topic, "%RETRY%cg");
    assert_eq!(request.header.producer_group, "CLIENT_INNER_PRODUCER");
    assert_eq!(request.header.reconsume_times, Some(1));
    assert_eq!(request.header.max_reconsume_times, Some(16));
    let props = rocketmq_model::Properties::parse(request.header.properties.as_deref().unwrap());
    assert_eq!(props.get(property::RETRY_TOPIC), Some("T"));
    assert_eq!(props.get(property::RECONSUME_TIME), Some("1"));
    assert_eq!(props.get(property::DELAY), Some("3"));
    assert!(props.get(property::ORIGIN_MESSAGE_ID).is_some());
    assert_eq!(&request.body[..], b"1");
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn when_send_back_and_fallback_fail_the_message_is_retried_locally() {
    let fx = fixture(with(2, 1));
    fx.broker.send_back_fails.store(true, Ordering::SeqCst);
    fx.broker.send_fails.store(true, Ordering::SeqCst);
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    let (listener, _release) = Scripted::new(move |msgs, _| {
        // Offset 1 fails twice, then succeeds.
        if msgs[0].queue_offset == 1 && counted.fetch_add(1, Ordering::SeqCst) < 2 {
            ConcurrentResult::RetryLater
        } else {
            ConcurrentResult::Success
        }
    });
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..4);
    let started = tokio::time::Instant::now();
    service.submit(request).await;
    until(|| listener.seen().len() == 4 && pq.cached_count() == 1).await;
    assert!(pq.contains(1), "the message stays in its process queue");
    assert_eq!(committed(&fx, &mq(0)), Some(1));
    assert_eq!(
        fx.broker.failed_sends.load(Ordering::SeqCst),
        3,
        "the fallback tried three queues"
    );

    // Not before the retry delay.
    tokio::time::sleep(LOCAL_RETRY_DELAY - Duration::from_millis(100)).await;
    assert_eq!(listener.seen().len(), 4);
    until(|| listener.seen().len() == 5).await;
    assert!(started.elapsed() >= LOCAL_RETRY_DELAY);
    assert_eq!(
        listener.seen()[4],
        (0, 1, 1, "T".to_owned()),
        "same message, reconsume count 1"
    );
    assert_eq!(committed(&fx, &mq(0)), Some(1), "still not acknowledged");

    // The second local retry succeeds: only now the offset passes it.
    until(|| listener.seen().len() == 6).await;
    assert_eq!(listener.seen()[5].2, 2);
    until(|| committed(&fx, &mq(0)) == Some(4)).await;
    assert!(pq.is_empty());
    assert_eq!(listener.seen().len(), 6);
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn broadcasting_drops_failed_messages_without_sending_back() {
    let mut options = with(1, 2);
    options.message_model = MessageModel::Broadcasting;
    let fx = fixture(options);
    let (listener, _release) = Scripted::new(|_, _| ConcurrentResult::RetryLater);
    let service = ConcurrentService::start(fx.env.clone(), listener);
    let (_pq, request) = queue_with(&mq(0), 0..4);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(4)).await;
    assert_eq!(fx.broker.sent_back_count() + fx.broker.sent_count(), 0);
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_queue_is_neither_consumed_nor_committed() {
    let fx = fixture(with(1, 1));
    let (listener, release) = Scripted::build(Duration::ZERO, HashSet::from([0]), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..3);
    service.submit(request).await;
    until(|| listener.seen().len() == 1).await;
    pq.mark_dropped();
    release.send(true).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        listener.seen_offsets(),
        [0],
        "the queued batches are skipped"
    );
    assert_eq!(committed(&fx, &mq(0)), None);
    assert_eq!(
        fx.offsets
            .read(&mq(0), ReadOffsetType::Memory)
            .await
            .unwrap(),
        None
    );
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn retried_messages_show_their_original_topic() {
    let fx = fixture(with(1, 1));
    let (listener, _release) = Scripted::new(ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let retry_mq = MessageQueue::new("%RETRY%cg", "broker-a", 0);
    let (_pq, mut request) = queue_with(&retry_mq, 0..1);
    let mut msg = (*request.msgs[0]).clone();
    msg.message
        .properties
        .insert(property::RETRY_TOPIC, "T")
        .unwrap();
    request.msgs = vec![Arc::new(msg)];
    service.submit(request).await;
    until(|| committed(&fx, &retry_mq) == Some(1)).await;
    assert_eq!(listener.seen()[0].3, "T");
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn in_a_namespace_a_message_goes_back_with_the_topic_it_was_stored_in() {
    let fx = fixture(in_namespace(with(1, 1)));
    let (listener, _release) = Scripted::new(|_, _| ConcurrentResult::RetryLater);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let wire = MessageQueue::new("ns%T", "broker-a", 0);
    let (_pq, request) = queue_with(&wire, 0..1);
    service.submit(request).await;
    until(|| committed(&fx, &wire) == Some(1)).await;
    assert_eq!(listener.seen()[0].3, "T", "the listener's name");
    let sent_back = fx.broker.sent_back.lock().unwrap().clone();
    let (_, header) = &sent_back[0];
    assert_eq!(header.group, "ns%cg");
    assert_eq!(header.origin_topic.as_deref(), Some("ns%T"));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn in_a_namespace_the_retry_copy_records_the_topic_it_was_stored_in() {
    let fx = fixture(in_namespace(with(1, 1)));
    fx.broker.send_back_fails.store(true, Ordering::SeqCst);
    let (listener, _release) = Scripted::new(|_, _| ConcurrentResult::RetryLater);
    let service = ConcurrentService::start(fx.env.clone(), listener);
    let wire = MessageQueue::new("ns%T", "broker-a", 0);
    let (_pq, request) = queue_with(&wire, 0..1);
    service.submit(request).await;
    until(|| committed(&fx, &wire) == Some(1)).await;
    let sent = fx.broker.sent.lock().unwrap().clone();
    let (_, request) = &sent[0];
    assert_eq!(request.header.topic, "%RETRY%ns%cg");
    let props = rocketmq_model::Properties::parse(request.header.properties.as_deref().unwrap());
    assert_eq!(props.get(property::RETRY_TOPIC), Some("ns%T"));
    service.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_what_was_left() {
    let fx = fixture(with(1, 1));
    let (listener, _release) = Scripted::build(Duration::ZERO, HashSet::from([0]), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..3);
    service.submit(request).await;
    until(|| listener.seen().len() == 1).await;
    let report = service.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        report,
        ShutdownReport {
            batches_left: 3,
            messages_left: 3
        }
    );
    assert_eq!(pq.cached_count(), 3, "nothing was committed");
    // Submitting after shutdown does nothing and does not wait.
    let (_pq, request) = queue_with(&mq(1), 0..100);
    service.submit(request).await;
    assert_eq!(listener.seen().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_queued_batches_finish_within_the_timeout() {
    let fx = fixture(with(1, 1));
    let (listener, _release) = Scripted::build(Duration::from_millis(10), HashSet::new(), ok);
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (_pq, request) = queue_with(&mq(0), 0..2);
    service.submit(request).await;
    let report = service.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report, ShutdownReport::default());
    assert_eq!(committed(&fx, &mq(0)), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_listener_counts_as_retry_later() {
    struct Panics;
    #[async_trait]
    impl ConcurrentListener for Panics {
        async fn consume(&self, _: Vec<MessageExt>, _: &mut ConcurrentContext) -> ConcurrentResult {
            panic!("listener bug");
        }
    }
    let fx = fixture(with(1, 1));
    let service = ConcurrentService::start(fx.env.clone(), Arc::new(Panics));
    let (_pq, request) = queue_with(&mq(0), 0..2);
    service.submit(request).await;
    until(|| committed(&fx, &mq(0)) == Some(2)).await;
    assert_eq!(fx.broker.sent_back_offsets(), [1000, 1001]);
    service.shutdown(Duration::from_secs(1)).await;
}
