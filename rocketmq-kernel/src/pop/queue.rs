//! The state of one queue a push consumer pops (Java's `PopProcessQueue`):
//! how many of its popped messages wait for their acknowledgement, which
//! holds the next pop back while it is too many.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::SystemTime;

use rocketmq_model::body::PopProcessQueueInfo;
use rocketmq_model::time::epoch_millis;

/// Popped messages of one assigned queue not settled yet (acknowledged,
/// given a new invisible time, or dead-lettered).
#[derive(Debug, Default)]
pub struct PopQueue {
    waiting: AtomicUsize,
    /// When the last pop was sent, epoch ms (0: never).
    last_pop: AtomicI64,
}

impl PopQueue {
    /// A queue with nothing popped.
    pub fn new() -> Self {
        PopQueue::default()
    }

    /// Popped messages waiting to be settled.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// `count` more messages were popped.
    pub fn popped(&self, count: usize) {
        self.waiting.fetch_add(count, Ordering::AcqRel);
    }

    /// A pop is sent at `now`.
    pub fn record_pop(&self, now: SystemTime) {
        self.last_pop.store(epoch_millis(now), Ordering::Release);
    }

    /// The queue as GET_CONSUMER_RUNNING_INFO reports it (Java's
    /// `PopProcessQueueInfo`).
    pub fn info(&self, dropped: bool) -> PopProcessQueueInfo {
        PopProcessQueueInfo {
            dropped,
            last_pop_timestamp: self.last_pop.load(Ordering::Acquire),
            wait_ack_count: i32::try_from(self.waiting()).unwrap_or(i32::MAX),
        }
    }

    /// `count` messages were settled (never below zero).
    pub fn settled(&self, count: usize) {
        let _ = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
                Some(waiting.saturating_sub(count))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_waits_and_never_goes_below_zero() {
        let queue = PopQueue::new();
        queue.popped(3);
        queue.settled(1);
        assert_eq!(queue.waiting(), 2);
        queue.settled(5);
        assert_eq!(queue.waiting(), 0);
        assert_eq!(queue.info(false).last_pop_timestamp, 0);
        queue.popped(2);
        queue.record_pop(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(7));
        let info = queue.info(true);
        assert_eq!(
            (info.dropped, info.last_pop_timestamp, info.wait_ack_count),
            (true, 7, 2)
        );
    }
}
