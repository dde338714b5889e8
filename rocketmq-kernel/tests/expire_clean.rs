//! Expired-message cleaning in paused tokio time: a message consuming longer
//! than the consume timeout is sent back with delay level 3 and removed from
//! its process queue, and the commit offset moves past it.

#![allow(clippy::unwrap_used)]

mod consume_fakes;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use consume_fakes::{MASTER, fixture, mq, options, queue_with, until};
use rocketmq_kernel::consume::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, ConcurrentService,
};
use rocketmq_kernel::expire::{ExpiryCleaner, clean_expired};
use rocketmq_kernel::offset::OffsetStore;
use rocketmq_kernel::{ConsumeService, ProcessQueue};
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::sync::Notify;
use tokio::time::Instant;

const TIMEOUT: Duration = Duration::from_secs(15 * 60);

fn committed(offsets: &dyn OffsetStore, mq: &MessageQueue) -> Option<i64> {
    offsets.snapshot().get(mq).copied()
}

#[tokio::test(start_paused = true)]
async fn an_old_in_flight_message_is_sent_back_with_level_3_and_removed() {
    let fx = fixture(options());
    let (pq, _) = queue_with(&mq(0), 0..3);
    pq.mark_consume_started(&[0], Instant::now());
    tokio::time::sleep(TIMEOUT + Duration::from_secs(1)).await;
    pq.mark_consume_started(&[1], Instant::now());

    let removed = clean_expired(&fx.env, [(mq(0), Arc::clone(&pq))], Instant::now()).await;
    assert_eq!(removed, 1);
    let sent_back = fx.broker.sent_back.lock().unwrap().clone();
    assert_eq!(sent_back.len(), 1);
    let (addr, header) = &sent_back[0];
    assert_eq!(addr, MASTER);
    assert_eq!(header.offset, 1000);
    assert_eq!(header.delay_level, 3);
    assert_eq!(header.group, "cg");
    assert!(!pq.contains(0));
    assert!(
        pq.contains(1) && pq.contains(2),
        "younger and unstarted messages stay"
    );
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), Some(1));
}

#[tokio::test(start_paused = true)]
async fn an_expired_message_behind_a_younger_or_unstarted_one_stays() {
    let fx = fixture(options());
    let (pq, _) = queue_with(&mq(0), 0..3);
    pq.mark_consume_started(&[1, 2], Instant::now());
    tokio::time::sleep(TIMEOUT + Duration::from_secs(1)).await;

    // The lowest message waits for a worker: Java's scan stops at it.
    let queues = || [(mq(0), Arc::clone(&pq))];
    assert_eq!(clean_expired(&fx.env, queues(), Instant::now()).await, 0);
    // The lowest message started recently: the same.
    pq.mark_consume_started(&[0], Instant::now());
    assert_eq!(clean_expired(&fx.env, queues(), Instant::now()).await, 0);
    assert_eq!(fx.broker.sent_back_count(), 0);
    assert_eq!(pq.cached_count(), 3);

    // Once the lowest is consumed, the expired ones behind it go.
    pq.remove(&[0], Instant::now());
    assert_eq!(clean_expired(&fx.env, queues(), Instant::now()).await, 2);
    assert_eq!(fx.broker.sent_back_offsets(), [1001, 1002]);
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), Some(3));
}

#[tokio::test(start_paused = true)]
async fn a_message_that_cannot_be_sent_back_stays() {
    let fx = fixture(options());
    fx.broker.send_back_fails.store(true, Ordering::SeqCst);
    fx.broker.send_fails.store(true, Ordering::SeqCst);
    let (pq, _) = queue_with(&mq(0), 0..2);
    pq.mark_consume_started(&[0], Instant::now());
    tokio::time::sleep(TIMEOUT * 2).await;
    let removed = clean_expired(&fx.env, [(mq(0), Arc::clone(&pq))], Instant::now()).await;
    assert_eq!(removed, 0);
    assert!(pq.contains(0));
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), None);

    // A dropped queue is left alone.
    fx.broker.send_back_fails.store(false, Ordering::SeqCst);
    pq.mark_dropped();
    let removed = clean_expired(&fx.env, [(mq(0), Arc::clone(&pq))], Instant::now()).await;
    assert_eq!(removed, 0);
    assert_eq!(fx.broker.sent_back_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_cleaner_scans_every_interval_until_shut_down() {
    let fx = fixture(options());
    let (pq, _) = queue_with(&mq(0), 0..4);
    let listed = Arc::clone(&pq);
    let interval = Duration::from_secs(60);
    let cleaner = ExpiryCleaner::start(fx.env.clone(), interval, move || {
        vec![(mq(0), Arc::clone(&listed))]
    });
    pq.mark_consume_started(&[0], Instant::now());
    tokio::time::sleep(TIMEOUT + interval / 2).await;
    assert!(pq.contains(0), "scans run on the interval only");
    until(|| !pq.contains(0)).await;
    assert_eq!(fx.broker.sent_back_offsets(), [1000]);

    cleaner.shutdown().await;
    pq.mark_consume_started(&[1], Instant::now());
    tokio::time::sleep(TIMEOUT * 2).await;
    assert!(pq.contains(1), "no scan after shutdown");
}

/// Never returns for offset 0 until released, then asks for a retry.
struct Stuck {
    release: Notify,
    returned: Mutex<bool>,
}

#[async_trait]
impl ConcurrentListener for Stuck {
    async fn consume(&self, msgs: Vec<MessageExt>, _: &mut ConcurrentContext) -> ConcurrentResult {
        if msgs[0].queue_offset == 0 {
            self.release.notified().await;
            *self.returned.lock().unwrap() = true;
            return ConcurrentResult::RetryLater;
        }
        ConcurrentResult::Success
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_listener_call_no_longer_holds_the_offset_back() {
    let fx = fixture(options());
    let listener = Arc::new(Stuck {
        release: Notify::new(),
        returned: Mutex::new(false),
    });
    let service = ConcurrentService::start(fx.env.clone(), listener.clone());
    let (pq, request) = queue_with(&mq(0), 0..3);
    service.submit(request).await;
    until(|| pq.cached_count() == 1).await;
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), Some(0));

    tokio::time::sleep(TIMEOUT + Duration::from_secs(1)).await;
    let queues: Vec<(MessageQueue, Arc<ProcessQueue>)> = vec![(mq(0), Arc::clone(&pq))];
    assert_eq!(clean_expired(&fx.env, queues, Instant::now()).await, 1);
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), Some(3));

    // The late failure does not send the cleaned message back again.
    listener.release.notify_one();
    until(|| *listener.returned.lock().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fx.broker.sent_back_offsets(), [1000]);
    assert_eq!(committed(fx.offsets.as_ref(), &mq(0)), Some(3));
    service.shutdown(Duration::from_secs(1)).await;
}
