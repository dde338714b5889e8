//! Pull consumer: a pause before the first poll skips nothing, zero
//! flow-control or exception delays (the setters take them) do not starve
//! the runtime, the broker's FLOW_CONTROL is waited out briefly, and a
//! failed start offset lookup is tried again after Java's 3 s.

#![allow(clippy::unwrap_used)]

mod consumer_support;

use std::sync::Arc;
use std::time::Duration;

use consumer_support::{config, msg, producer, unique, wait_for, wait_until};
use rocketmq_client::PullConsumer;
use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_kernel::offset::MemoryOffsetStore;
use rocketmq_model::{MessageExt, MessageQueue, RequestCode, ResponseCode};
use rocketmq_testkit::TestCluster;

fn q(id: i32) -> MessageQueue {
    MessageQueue::new("T", "broker-a", id)
}

/// Everything `rounds` one-second polls return.
async fn poll_for(consumer: &PullConsumer, rounds: usize) -> Vec<MessageExt> {
    let mut got = Vec::new();
    for _ in 0..rounds {
        got.extend(consumer.poll(Duration::from_secs(1)).await.unwrap());
    }
    got
}

/// A queue with no committed offset starts at its last offset (the
/// default); messages arrive and are buffered; the application pauses the
/// queue before its first poll and resumes it. The buffered messages must
/// come after the resume (Java's pause keeps its pull offset and buffer).
/// The resume looked the start offset up again, at the queue's new end: the
/// buffered messages were skipped, and the next commit went past them.
#[tokio::test(start_paused = true)]
async fn a_pause_before_the_first_poll_skips_nothing() {
    let cluster = TestCluster::builder()
        .queues(2, 2)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    let send = |range: std::ops::Range<i32>| {
        let producer = &producer;
        async move {
            for i in range {
                producer
                    .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
                    .await
                    .unwrap();
            }
        }
    };
    send(0..5).await;
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("pause_first")))
        .assign([q(0)])
        .consume_from_where(ConsumeFromWhere::LastOffset)
        .offset_store(Arc::new(MemoryOffsetStore::new()))
        .auto_commit(false)
        .build()
        .await
        .unwrap();
    let broker = cluster.broker(0);
    // The queue's fetch task found its start (5) and long-polls there.
    wait_until("the first pull held", Duration::from_secs(30), || {
        broker.held_pulls() == 1
    })
    .await;
    send(5..10).await;
    let client_id = consumer.client_id().to_owned();
    wait_for("five messages buffered", Duration::from_secs(30), || {
        let client_id = client_id.clone();
        async move {
            let info = broker
                .consumer_running_info("lg", &client_id, false)
                .await
                .unwrap();
            info.mq_table
                .get(&q(0))
                .is_some_and(|pq| pq.cached_msg_count == 5)
        }
    })
    .await;
    consumer.pause([&q(0)]);
    consumer.resume([&q(0)]);
    // Past the broker's long poll (20 s): an empty answer moves the
    // consumed offset to where the queue's fetch stands.
    let offsets: Vec<i64> = poll_for(&consumer, 30)
        .await
        .iter()
        .map(|m| m.queue_offset)
        .collect();
    consumer.commit_sync().await.unwrap();
    let committed = consumer.committed_offsets().get(&q(0)).copied();
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!(
        offsets,
        (5..10).collect::<Vec<_>>(),
        "committed {committed:?}"
    );
    assert_eq!(committed, Some(10));
}

/// A pull the broker answers FLOW_CONTROL is tried again after 20 ms, as
/// Java's lite pull consumer does, not after the exception delay (here 30 s,
/// so the message would not come within the poll).
#[tokio::test(start_paused = true)]
async fn the_brokers_flow_control_is_waited_out_briefly() {
    let cluster = TestCluster::builder()
        .queues(1, 1)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    producer
        .send_to_queue(msg("T", "m0", "x"), &q(0))
        .await
        .unwrap();
    cluster.fail_requests(
        RequestCode::LITE_PULL_MESSAGE,
        ResponseCode::FLOW_CONTROL,
        1,
    );
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("broker_flow")))
        .assign([q(0)])
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .pull_time_delay_when_exception(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let got = consumer.poll(Duration::from_secs(5)).await.unwrap().len();
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!(got, 1);
}

/// A failed lookup of a queue's start offset is tried again after 3 s, as
/// Java's lite pull task does (`PULL_TIME_DELAY_MILLS_ON_EXCEPTION`), not
/// after the delay set for failed pulls (here 30 s, so the message would
/// not come within the poll).
#[tokio::test(start_paused = true)]
async fn a_failed_start_offset_lookup_is_tried_again_after_three_seconds() {
    let cluster = TestCluster::builder()
        .queues(1, 1)
        .topic("T")
        .build()
        .await
        .unwrap();
    let producer = producer(&cluster).await;
    producer
        .send_to_queue(msg("T", "m0", "x"), &q(0))
        .await
        .unwrap();
    cluster.fail_requests(
        RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
        ResponseCode::SYSTEM_ERROR,
        1,
    );
    let consumer = PullConsumer::builder("lg", config(&cluster, &unique("start_retry")))
        .assign([q(0)])
        .consume_timestamp(std::time::UNIX_EPOCH)
        .offset_store(Arc::new(MemoryOffsetStore::new()))
        .pull_time_delay_when_exception(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let got = consumer.poll(Duration::from_secs(10)).await.unwrap().len();
    let waited = started.elapsed();
    let lookups = cluster
        .broker(0)
        .requests_received(RequestCode::SEARCH_OFFSET_BY_TIMESTAMP);
    consumer.shutdown().await;
    producer.shutdown().await;
    assert_eq!((got, lookups), (1, 2));
    assert!(waited >= Duration::from_secs(3), "{waited:?}");
}

/// Runs `scenario` on a paused-clock current-thread runtime of its own
/// thread and returns its result, failing after a minute of real time: a
/// task that loops without ever awaiting starves its runtime, whose own
/// timers then never fire, so only another thread can time it out.
fn on_own_runtime<T: Send + 'static>(
    scenario: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let _ = done.send(runtime.block_on(scenario()));
    });
    finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the runtime hung: a fetch task loops without awaiting")
}

/// A zero flow-control delay (the setter takes it; both consumers wait at
/// least 1 ms): a queue over its threshold made its fetch task loop
/// without ever awaiting, so nothing else on its runtime thread ran again
/// (here: the whole scenario, on a current-thread runtime).
#[test]
fn a_zero_flow_control_delay_does_not_hang_the_runtime() {
    let got = on_own_runtime(|| {
        Box::pin(async {
            let cluster = TestCluster::builder()
                .queues(1, 1)
                .topic("T")
                .build()
                .await
                .unwrap();
            let producer = producer(&cluster).await;
            for i in 0..5 {
                producer
                    .send_to_queue(msg("T", &format!("m{i}"), "x"), &q(0))
                    .await
                    .unwrap();
            }
            let consumer = PullConsumer::builder("lg", config(&cluster, &unique("zero_flow")))
                .assign([q(0)])
                .consume_from_where(ConsumeFromWhere::FirstOffset)
                .pull_threshold_for_queue(1)
                .pull_time_delay_when_flow_control(Duration::ZERO)
                .build()
                .await
                .unwrap();
            let got = poll_for(&consumer, 5).await.len();
            consumer.shutdown().await;
            producer.shutdown().await;
            got
        })
    });
    assert_eq!(got, 5);
}

/// A zero exception delay and the queue's broker down: each pull fails at
/// once (the connection is refused), and the fetch task tried again without
/// ever awaiting: the broker's own stop never finished.
#[test]
fn a_zero_exception_delay_with_the_broker_down_does_not_hang_the_runtime() {
    let got = on_own_runtime(|| {
        Box::pin(async {
            let cluster = TestCluster::builder()
                .queues(1, 1)
                .topic("T")
                .build()
                .await
                .unwrap();
            let producer = producer(&cluster).await;
            let consumer = PullConsumer::builder("lg", config(&cluster, &unique("zero_exc")))
                .assign([q(0)])
                .consume_from_where(ConsumeFromWhere::FirstOffset)
                .pull_time_delay_when_exception(Duration::ZERO)
                .build()
                .await
                .unwrap();
            let broker = cluster.broker(0);
            wait_until("the first pull held", Duration::from_secs(30), || {
                broker.held_pulls() == 1
            })
            .await;
            broker.stop().await;
            assert!(
                consumer
                    .poll(Duration::from_secs(2))
                    .await
                    .unwrap()
                    .is_empty()
            );
            broker.restart().await.unwrap();
            producer
                .send_to_queue(msg("T", "after", "x"), &q(0))
                .await
                .unwrap();
            let got = poll_for(&consumer, 10).await.len();
            consumer.shutdown().await;
            producer.shutdown().await;
            got
        })
    });
    assert_eq!(got, 1);
}

/// A Java broker looks at a held pull's suspend time only at its hold
/// checks, every 5 s (`PullRequestHoldService`), so it answers an idle long
/// poll up to 5 s after that time; the call must wait that long too. A 40 s
/// poll sent 1 s after the broker started is answered at its check at 45 s;
/// the call gave up at 44 s (the suspend time plus the 3 s call timeout).
#[tokio::test(start_paused = true)]
async fn a_long_poll_waits_for_the_brokers_next_hold_check() {
    use rocketmq_kernel::api::{BrokerApi, RemotingBrokerApi};
    use rocketmq_model::header::PullMessageRequestHeader;
    use rocketmq_model::message::sysflag::pull;
    use rocketmq_remoting::RemotingClient;
    use rocketmq_remoting::calls::PullStatus;

    let cluster = TestCluster::builder().topic("T").build().await.unwrap();
    let client = RemotingClient::builder()
        .shared_transport(cluster.transport())
        .build();
    let api = RemotingBrokerApi::new(client, cluster.namesrv_addrs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let header = PullMessageRequestHeader {
        consumer_group: "lg".into(),
        topic: "T".into(),
        queue_id: 0,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: pull::SUSPEND | pull::SUBSCRIPTION,
        suspend_timeout_millis: 40_000,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    };
    let pulled = api.pull_message(cluster.broker(0).addr(), header).await;
    assert_eq!(pulled.unwrap().status, PullStatus::NoNewMsg);
}
