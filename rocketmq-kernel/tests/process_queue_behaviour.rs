//! ProcessQueue: commit offsets after out-of-order acks never go backwards,
//! cached count and bytes, orderly take / commit / rollback, the expiry scan,
//! the lock expiry and the running-info snapshot.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use rocketmq_kernel::ProcessQueue;
use rocketmq_kernel::process_queue::{LOCK_MAX_LIVE_TIME, PULL_MAX_IDLE_TIME};
use rocketmq_model::{Message, MessageExt, property};
use tokio::time::Instant;

fn msg(offset: i64, body_len: usize) -> Arc<MessageExt> {
    Arc::new(MessageExt {
        message: Message::new("T", vec![b'x'; body_len]),
        queue_offset: offset,
        ..MessageExt::default()
    })
}

fn msgs(offsets: std::ops::Range<i64>) -> Vec<Arc<MessageExt>> {
    offsets.map(|offset| msg(offset, 10)).collect()
}

fn offsets(taken: &[Arc<MessageExt>]) -> Vec<i64> {
    taken.iter().map(|m| m.queue_offset).collect()
}

#[test]
fn nothing_put_means_nothing_to_commit() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    assert_eq!(pq.remove(&[1, 2], now), None);
    assert_eq!(pq.commit_offset(), None);
    assert!(pq.is_empty());
    assert_eq!(pq.span(), 0);
}

#[test]
fn commit_offset_after_out_of_order_acks() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    pq.put(&msgs(100..105));
    assert_eq!(pq.remove(&[102], now), Some(100));
    assert_eq!(pq.remove(&[104], now), Some(100));
    assert_eq!(pq.remove(&[100], now), Some(101));
    assert_eq!(pq.remove(&[101], now), Some(103));
    assert_eq!(pq.remove(&[103], now), Some(105));
    // Already empty: still the highest offset plus one.
    assert_eq!(pq.remove(&[103], now), Some(105));
    assert_eq!(pq.commit_offset(), Some(105));
}

#[test]
fn cached_count_bytes_and_span() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    pq.put(&[msg(10, 100), msg(11, 200), msg(15, 50)]);
    assert_eq!(pq.cached_count(), 3);
    assert_eq!(pq.cached_bytes(), 350);
    assert_eq!(pq.span(), 5);
    // A duplicate offset is not counted twice.
    pq.put(&[msg(11, 999)]);
    assert_eq!(pq.cached_count(), 3);
    assert_eq!(pq.cached_bytes(), 350);
    pq.remove(&[11, 99], now);
    assert_eq!(pq.cached_count(), 2);
    assert_eq!(pq.cached_bytes(), 150);
    assert!(pq.contains(10) && !pq.contains(11));
    pq.remove(&[10, 15], now);
    assert_eq!(pq.cached_bytes(), 0);
    assert!(pq.is_empty());
}

#[test]
fn backlog_from_the_max_offset_property() {
    let pq = ProcessQueue::new(Instant::now());
    let mut last = MessageExt {
        queue_offset: 9,
        ..MessageExt::default()
    };
    last.message
        .properties
        .insert(property::MAX_OFFSET, "30")
        .unwrap();
    pq.put(&[msg(8, 1), Arc::new(last)]);
    assert_eq!(pq.backlog(), 21);
}

/// Offsets come from the broker (a static topic's adds its offsetDelta,
/// saturating): extreme ones must not overflow (a panic in debug builds).
#[test]
fn extreme_broker_offsets_do_not_overflow() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    let mut last = MessageExt {
        message: Message::new("T", "x"),
        queue_offset: i64::MAX,
        ..MessageExt::default()
    };
    let max_offset = i64::MIN.to_string();
    last.message
        .properties
        .insert(property::MAX_OFFSET, max_offset.as_str())
        .unwrap();
    pq.put(&[msg(-1, 1), Arc::new(last)]);
    assert_eq!(pq.backlog(), 0);
    assert_eq!(pq.span(), i64::MAX);
    assert_eq!(pq.remove(&[-1, i64::MAX], now), Some(i64::MAX));
    pq.put(&[msg(i64::MAX - 1, 1), msg(i64::MAX, 1)]);
    pq.take(2, now);
    assert_eq!(pq.commit(), Some(i64::MAX));
}

#[test]
fn put_dispatches_once_until_a_take_finds_nothing() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    assert!(!pq.put(&[]));
    assert!(pq.put(&msgs(0..2)));
    assert!(!pq.put(&msgs(2..3)));
    assert_eq!(offsets(&pq.take(10, now)), [0, 1, 2]);
    assert!(!pq.put(&msgs(3..4)), "the running task takes it");
    assert_eq!(offsets(&pq.take(10, now)), [3]);
    assert!(pq.take(10, now).is_empty());
    assert!(pq.put(&msgs(4..5)));
}

#[test]
fn orderly_take_commit_rollback() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    pq.put(&msgs(0..5));
    assert_eq!(pq.commit(), None, "nothing taken");
    assert_eq!(offsets(&pq.take(2, now)), [0, 1]);
    assert_eq!(pq.cached_count(), 5, "taken messages stay cached");
    assert_eq!(pq.cached_bytes(), 50);
    assert_eq!(pq.span(), 2);
    assert_eq!(pq.commit_offset(), Some(0));

    // Failure: the batch goes back and is taken again, in order.
    pq.rollback();
    assert_eq!(offsets(&pq.take(3, now)), [0, 1, 2]);
    assert_eq!(pq.commit(), Some(3));
    assert_eq!(pq.cached_count(), 2);
    assert_eq!(pq.cached_bytes(), 20);

    // Suspend: one message made available again, the rest committed.
    assert_eq!(offsets(&pq.take(2, now)), [3, 4]);
    pq.make_available_later(&[4]);
    assert_eq!(pq.commit(), Some(4));
    assert_eq!(offsets(&pq.take(5, now)), [4]);
    assert_eq!(pq.commit(), Some(5));
    assert!(pq.is_empty());
    assert_eq!(pq.cached_bytes(), 0);
}

#[test]
fn expiry_scan_looks_only_at_the_lowest_message() {
    let start = Instant::now();
    let pq = ProcessQueue::new(start);
    pq.put(&msgs(0..4));
    let timeout = Duration::from_secs(15 * 60);
    let head = |now| pq.expired_head(now, timeout).map(|msg| msg.queue_offset);
    pq.mark_consume_started(&[0, 1], start);
    pq.mark_consume_started(&[2], start + Duration::from_secs(600));
    assert_eq!(head(start + timeout), None);
    let later = start + timeout + Duration::from_secs(1);
    assert_eq!(head(later), Some(0));
    // A retry restarts the clock: the expired message behind it waits.
    pq.mark_consume_started(&[0], later);
    assert_eq!(head(later), None);
    // Removed, the lowest is the next one.
    pq.remove(&[0], later);
    assert_eq!(head(later), Some(1));
    pq.remove(&[1], later);
    assert_eq!(head(later), None);
    let much_later = later + timeout + Duration::from_secs(1);
    assert_eq!(head(much_later), Some(2));
    // Not started: nothing behind it is looked at.
    pq.remove(&[2], much_later);
    assert_eq!(head(much_later + timeout * 2), None);
}

#[test]
fn lock_expires_after_thirty_seconds_without_renewal() {
    let start = Instant::now();
    let pq = ProcessQueue::new(start);
    assert!(!pq.is_locked());
    assert!(!pq.holds_lock(start));
    pq.lock_granted(start);
    assert!(pq.holds_lock(start + LOCK_MAX_LIVE_TIME));
    assert!(pq.is_lock_expired(start + LOCK_MAX_LIVE_TIME + Duration::from_millis(1)));
    assert!(!pq.holds_lock(start + LOCK_MAX_LIVE_TIME + Duration::from_millis(1)));
    pq.lock_granted(start + Duration::from_secs(20));
    assert!(pq.holds_lock(start + Duration::from_secs(45)));
    assert_eq!(pq.last_lock_time(), start + Duration::from_secs(20));
    pq.lock_lost();
    assert!(!pq.holds_lock(start + Duration::from_secs(21)));
    assert_eq!(pq.record_unlock_attempt(), 1);
    assert_eq!(pq.record_unlock_attempt(), 2);
}

#[test]
fn pull_idle_time_and_dropped_flag() {
    let start = Instant::now();
    let pq = ProcessQueue::new(start);
    assert!(!pq.is_pull_expired(start + PULL_MAX_IDLE_TIME));
    assert!(pq.is_pull_expired(start + PULL_MAX_IDLE_TIME + Duration::from_secs(1)));
    pq.record_pull(start + Duration::from_secs(100));
    assert!(!pq.is_pull_expired(start + PULL_MAX_IDLE_TIME + Duration::from_secs(1)));
    assert!(!pq.is_dropped());
    pq.mark_dropped();
    assert!(pq.is_dropped());
}

/// A commit made through `while_live` cannot straddle a drop: the drop
/// waits for one under way, and none runs after it. (Without the wait, an
/// offset checked before an OFFSET_ILLEGAL drop could land after the
/// corrected one.)
#[test]
fn a_drop_waits_for_a_commit_under_way_and_stops_later_ones() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;

    let pq = Arc::new(ProcessQueue::new(Instant::now()));
    let committed = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let committer = {
        let (pq, committed) = (pq.clone(), committed.clone());
        std::thread::spawn(move || {
            pq.while_live(|| {
                started_tx.send(()).unwrap();
                // Held until the dropper says go, or at most 200 ms (the
                // dropper cannot say it while the drop waits for us).
                let _ = go_rx.recv_timeout(Duration::from_millis(200));
                committed.store(true, Ordering::SeqCst);
            });
        })
    };
    started.recv().unwrap();
    pq.mark_dropped();
    let done_when_dropped = committed.load(Ordering::SeqCst);
    let _ = go.send(());
    committer.join().unwrap();
    assert!(
        done_when_dropped,
        "the drop returned while a commit was under way"
    );
    let mut ran = false;
    pq.while_live(|| ran = true);
    assert!(!ran, "nothing commits after a drop");
}

#[test]
fn running_info_snapshot() {
    let start = Instant::now();
    let wall_start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let pq = ProcessQueue::new(start);
    pq.put(&[
        msg(5, 1024 * 1024),
        msg(6, 1024 * 1024),
        msg(7, 10),
        msg(9, 10),
    ]);
    pq.take(2, start + Duration::from_secs(2));
    pq.lock_granted(start + Duration::from_secs(3));
    pq.record_pull(start + Duration::from_secs(4));
    let now = start + Duration::from_secs(10);
    let info = pq.info(now, wall_start + Duration::from_secs(10));
    assert_eq!(info.cached_msg_count, 2);
    assert_eq!(
        (info.cached_msg_min_offset, info.cached_msg_max_offset),
        (7, 9)
    );
    assert_eq!(info.cached_msg_size_in_mib, 2);
    assert_eq!(info.transaction_msg_count, 2);
    assert_eq!(
        (
            info.transaction_msg_min_offset,
            info.transaction_msg_max_offset
        ),
        (5, 6)
    );
    assert!(info.locked && !info.dropped);
    let ms = |secs: i64| 1_700_000_000_000 + secs * 1000;
    assert_eq!(info.last_consume_timestamp, ms(2));
    assert_eq!(info.last_lock_timestamp, ms(3));
    assert_eq!(info.last_pull_timestamp, ms(4));
}

#[test]
fn clear_forgets_everything() {
    let now = Instant::now();
    let pq = ProcessQueue::new(now);
    pq.put(&msgs(0..3));
    pq.take(1, now);
    pq.clear();
    assert!(pq.is_empty());
    assert_eq!(pq.cached_bytes(), 0);
    assert_eq!(pq.commit_offset(), None);
}

#[tokio::test(start_paused = true)]
async fn consume_lock_serialises_batches() {
    let pq = Arc::new(ProcessQueue::new(Instant::now()));
    let guard = pq.consume_lock().lock().await;
    assert!(pq.consume_lock().try_lock().is_err());
    drop(guard);
    assert!(pq.consume_lock().try_lock().is_ok());
}

#[test]
fn one_puller_and_one_consumer_on_two_threads() {
    let now = Instant::now();
    let pq = Arc::new(ProcessQueue::new(now));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<i64>>(4);
    let puller = {
        let pq = Arc::clone(&pq);
        std::thread::spawn(move || {
            for start in (0..5000).step_by(50) {
                let batch = msgs(start..start + 50);
                pq.put(&batch);
                tx.send(offsets(&batch)).unwrap();
            }
        })
    };
    let mut last = 0;
    for mut batch in rx {
        // Acks arrive out of order within a batch.
        batch.reverse();
        for offset in batch {
            let commit = pq.remove(&[offset], now).unwrap();
            assert!(commit >= last);
            last = commit;
        }
    }
    puller.join().unwrap();
    assert_eq!(last, 5000);
    assert!(pq.is_empty());
    assert_eq!(pq.cached_bytes(), 0);
}

#[derive(Debug, Clone)]
enum Step {
    /// Put the next `n` offsets (pulls move forward).
    Put(usize),
    /// Ack the cached message at this position (mod the cache size).
    Ack(usize),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        prop_oneof![
            (1..8usize).prop_map(Step::Put),
            (0..64usize).prop_map(Step::Ack),
            (0..64usize).prop_map(Step::Ack),
        ],
        1..80,
    )
}

proptest! {
    #[test]
    fn commit_offsets_never_go_backwards(steps in steps(), gap in 0..3i64) {
        let now = Instant::now();
        let pq = ProcessQueue::new(now);
        let mut next = 1000_i64;
        let mut cached: Vec<i64> = Vec::new();
        let mut last_commit: Option<i64> = None;
        for step in steps {
            match step {
                Step::Put(n) => {
                    let batch: Vec<Arc<MessageExt>> = (0..n)
                        .map(|i| msg(next + i as i64 * (gap + 1), 3))
                        .collect();
                    cached.extend(batch.iter().map(|m| m.queue_offset));
                    next += n as i64 * (gap + 1);
                    pq.put(&batch);
                }
                Step::Ack(at) if !cached.is_empty() => {
                    let offset = cached.remove(at % cached.len());
                    let commit = pq.remove(&[offset], now);
                    let expected = cached.iter().min().copied().unwrap_or(next - gap);
                    prop_assert_eq!(commit, Some(expected));
                    if let Some(last) = last_commit {
                        prop_assert!(commit.unwrap() >= last, "went back from {} to {:?}", last, commit);
                    }
                    last_commit = commit;
                }
                Step::Ack(_) => {}
            }
            prop_assert_eq!(pq.cached_count(), cached.len());
            prop_assert_eq!(pq.cached_bytes(), cached.len() as u64 * 3);
        }
    }
}
