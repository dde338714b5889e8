//! The concurrent consume service given popped messages (pop mode), against
//! a fake broker, in paused tokio time: what the listener acknowledged is
//! acknowledged by handle, a failure is hidden for Java's pop retry delay,
//! a message out of retries is dead-lettered and acknowledged, the
//! queue's count of messages waiting is settled, and messages whose
//! invisible time is over are neither consumed nor retried.

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use consume_fakes::{GROUP, MASTER, fixture, mq, msg, options, until};
use rocketmq_kernel::consume::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, ConcurrentService,
};
use rocketmq_kernel::pop::{PopQueue, PoppedMessage};
use rocketmq_kernel::{ConsumeService, PoppedRequest};
use rocketmq_model::message::{PopTopicKind, ReceiptHandle};
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::time::Instant;

/// Acknowledges up to `ack_index` and asks for `delay_level`.
struct AckUpTo {
    ack_index: i32,
    delay_level: i32,
}

#[async_trait]
impl ConcurrentListener for AckUpTo {
    async fn consume(&self, _: Vec<MessageExt>, ctx: &mut ConcurrentContext) -> ConcurrentResult {
        ctx.ack_index = self.ack_index;
        ctx.delay_level_when_next_consume = self.delay_level;
        ConcurrentResult::Success
    }
}

fn handle(mq: &MessageQueue, offset: i64, kind: PopTopicKind) -> ReceiptHandle {
    ReceiptHandle {
        ck_queue_offset: 0,
        pop_time: 1_700_000_000_000,
        invisible_time: 60_000,
        revive_qid: 0,
        kind,
        broker_name: mq.broker_name.clone(),
        queue_id: mq.queue_id,
        queue_offset: offset,
    }
}

/// Popped messages of queue 0 at `offsets`, each delivered
/// `reconsume_times` times before, the last from the pop retry topic.
fn popped(offsets: &[(i64, i32)]) -> Vec<PoppedMessage> {
    let mq = mq(0);
    offsets
        .iter()
        .enumerate()
        .map(|(index, &(offset, reconsume_times))| {
            let kind = if index + 1 == offsets.len() {
                PopTopicKind::RetryV1
            } else {
                PopTopicKind::Normal
            };
            let mut message = (*msg(&mq, offset)).clone();
            message.reconsume_times = reconsume_times;
            PoppedMessage {
                message,
                handle: handle(&mq, offset, kind),
            }
        })
        .collect()
}

/// Consumes `messages` with `listener`, their invisible time ending
/// `invisible_for` from now, until all are settled.
async fn consume_invisible_for(
    listener: Arc<dyn ConcurrentListener>,
    batch_size: usize,
    messages: Vec<PoppedMessage>,
    invisible_for: Duration,
) -> (consume_fakes::Fixture, Arc<PopQueue>) {
    let mut options = options();
    options.consume_message_batch_max_size = batch_size;
    let fx = fixture(options);
    let service = ConcurrentService::start(fx.env.clone(), listener);
    let queue = Arc::new(PopQueue::new());
    queue.popped(messages.len());
    service
        .submit_popped(PoppedRequest {
            mq: MessageQueue::new("T", "broker-a", -1),
            queue: Arc::clone(&queue),
            messages,
            invisible_until: Instant::now() + invisible_for,
        })
        .await;
    until(|| queue.waiting() == 0).await;
    service.shutdown(Duration::from_secs(1)).await;
    (fx, queue)
}

async fn consume(
    listener: AckUpTo,
    batch_size: usize,
    messages: Vec<PoppedMessage>,
) -> (consume_fakes::Fixture, Arc<PopQueue>) {
    let count = messages.len();
    let listener = Arc::new(listener);
    let (fx, queue) =
        consume_invisible_for(listener, batch_size, messages, Duration::from_secs(60)).await;
    assert_eq!(
        fx.stats.snapshot().len(),
        1,
        "{count} messages counted under T"
    );
    (fx, queue)
}

#[tokio::test(start_paused = true)]
async fn acknowledged_messages_are_acked_by_handle_and_the_rest_retried_later() {
    let listener = AckUpTo {
        ack_index: 0,
        delay_level: 0,
    };
    // Offset 1 first delivery, 2 redelivered three times, 3 from the pop
    // retry topic, out of retries (16, the default maximum).
    let (fx, _) = consume(listener, 4, popped(&[(0, 0), (1, 0), (2, 3), (3, 16)])).await;

    let acks = fx.broker.acks.lock().unwrap().clone();
    let mut acked: Vec<(i64, String)> = acks
        .iter()
        .map(|(addr, header)| {
            assert_eq!(addr, MASTER);
            assert_eq!(header.consumer_group, GROUP);
            assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
            (header.offset, header.topic.clone())
        })
        .collect();
    acked.sort();
    assert_eq!(
        acked,
        [(0, "T".to_owned()), (3, "%RETRY%cg_T".to_owned())],
        "the acknowledged one, and the dead-lettered one after its move"
    );
    let ack_of_0 = &acks.iter().find(|(_, h)| h.offset == 0).unwrap().1;
    assert_eq!(
        ack_of_0.extra_info,
        handle(&mq(0), 0, PopTopicKind::Normal).encode()
    );

    let mut changes: Vec<(i64, i64)> = (fx.broker.changes.lock().unwrap().iter())
        .map(|(_, header)| (header.offset, header.invisible_time))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [(1, 10_000), (2, 120_000)],
        "Java's pop delay table by reconsume times"
    );

    let sent_back = fx.broker.sent_back.lock().unwrap().clone();
    assert_eq!(sent_back.len(), 1);
    let header = &sent_back[0].1;
    assert_eq!(header.delay_level, -1, "straight to the dead-letter topic");
    assert_eq!(header.offset, 1003, "the message's commit log offset");
    assert_eq!(header.origin_topic.as_deref(), Some("%RETRY%cg_T"));
}

#[tokio::test(start_paused = true)]
async fn the_listeners_delay_level_chooses_the_retry_delay() {
    let listener = AckUpTo {
        ack_index: -1,
        delay_level: 2,
    };
    let (fx, queue) = consume(listener, 1, popped(&[(5, 0), (6, 0)])).await;
    assert!(fx.broker.acks.lock().unwrap().is_empty());
    let delays: Vec<i64> = (fx.broker.changes.lock().unwrap().iter())
        .map(|(_, header)| header.invisible_time)
        .collect();
    assert_eq!(delays, [60_000, 60_000]);
    assert_eq!(queue.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn delay_level_minus_one_dead_letters_at_once() {
    let listener = AckUpTo {
        ack_index: -1,
        delay_level: -1,
    };
    let (fx, _) = consume(listener, 2, popped(&[(7, 0), (8, 1)])).await;
    assert!(fx.broker.changes.lock().unwrap().is_empty());
    assert_eq!(fx.broker.sent_back_count(), 2);
    assert_eq!(fx.broker.acks.lock().unwrap().len(), 2);
}

/// Takes `took` over each call, acknowledges the first message of each
/// batch and fails the rest; counts its calls.
struct Slow {
    took: Duration,
    calls: AtomicUsize,
}

#[async_trait]
impl ConcurrentListener for Slow {
    async fn consume(&self, _: Vec<MessageExt>, ctx: &mut ConcurrentContext) -> ConcurrentResult {
        self.calls.fetch_add(1, Ordering::AcqRel);
        tokio::time::sleep(self.took).await;
        ctx.ack_index = 0;
        ConcurrentResult::Success
    }
}

#[tokio::test(start_paused = true)]
async fn messages_whose_invisible_time_is_over_are_not_consumed() {
    let listener = Arc::new(Slow {
        took: Duration::ZERO,
        calls: AtomicUsize::new(0),
    });
    let (fx, queue) = consume_invisible_for(
        Arc::clone(&listener) as _,
        2,
        popped(&[(0, 0), (1, 0)]),
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        listener.calls.load(Ordering::Acquire),
        0,
        "another consumer may have them by now"
    );
    assert!(fx.broker.acks.lock().unwrap().is_empty());
    assert!(fx.broker.changes.lock().unwrap().is_empty());
    assert_eq!(queue.waiting(), 0, "settled all the same");
}

#[tokio::test(start_paused = true)]
async fn failures_past_the_invisible_time_are_not_retried_but_acks_still_go() {
    // The listener outlasts the invisible time: the broker revives the
    // batch meanwhile, so a new invisible time for the failed message
    // would make it come back twice.
    let listener = Arc::new(Slow {
        took: Duration::from_secs(61),
        calls: AtomicUsize::new(0),
    });
    let (fx, queue) = consume_invisible_for(
        Arc::clone(&listener) as _,
        2,
        popped(&[(0, 0), (1, 0)]),
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(listener.calls.load(Ordering::Acquire), 1);
    let acked: Vec<i64> = (fx.broker.acks.lock().unwrap().iter())
        .map(|(_, header)| header.offset)
        .collect();
    assert_eq!(
        acked,
        [0],
        "an acknowledgement does no harm, and may spare a redelivery"
    );
    assert!(
        fx.broker.changes.lock().unwrap().is_empty(),
        "no new invisible time past the old one"
    );
    assert_eq!(fx.broker.sent_back_count(), 0);
    assert_eq!(queue.waiting(), 0);
}
