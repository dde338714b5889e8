//! When the writer waits a moment before writing, so that frames other tasks
//! are about to queue leave in the same write: one syscall for several frames
//! costs far less than one each.
//!
//! The wait is one trip to the back of the runtime's queue ([`requeue`]). It
//! pays when tasks are about to
//! send: callers whose responses just arrived (a sync sender's next message, a
//! consumer's next pull), or a stream of sends from other tasks. When the
//! frames of a round are all queued before the writer runs (one task sending
//! many), the yield only costs, and on a multi-thread runtime it also wakes an
//! idle worker to no purpose. So the writer yields when callers are expected,
//! or when its last yield brought more frames; otherwise it writes at once,
//! trying a yield again now and then in case the traffic has changed.

use std::task::Poll;

/// Batches written without a yield before the writer tries one again.
const PROBE_EVERY: u32 = 8;

/// The writer's yield policy; see the module documentation.
#[derive(Debug)]
pub(crate) struct Coalescing {
    /// Whether the last yield brought more frames.
    last_yield_helped: bool,
    /// Batches written without a yield since the last one.
    skipped: u32,
}

impl Default for Coalescing {
    fn default() -> Self {
        Coalescing {
            last_yield_helped: true,
            skipped: 0,
        }
    }
}

impl Coalescing {
    /// Whether to yield before writing the `batched` frames queued so far,
    /// `expected` callers having had their responses since the last write.
    pub(crate) fn should_yield(&mut self, batched: usize, expected: usize) -> bool {
        if batched < expected || self.last_yield_helped || self.skipped >= PROBE_EVERY {
            self.skipped = 0;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// Records what a yield brought: `more` frames queued meanwhile.
    pub(crate) fn yielded(&mut self, more: usize) {
        self.last_yield_helped = more > 0;
    }
}

/// Lets the tasks already scheduled on this worker run before the caller
/// goes on: the task wakes itself and returns pending once, which puts it at
/// the back of the run queue. `tokio::task::yield_now` does the same but first
/// makes the worker poll the I/O driver (an `epoll_wait` per yield: measured,
/// one more system call per round of 8 sync sends and 10 % of their CPU).
pub(crate) async fn requeue() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn requeue_lets_the_tasks_already_scheduled_run_first() {
        let outcome = tokio::spawn(async {
            let ran = Arc::new(AtomicBool::new(false));
            let other = tokio::spawn({
                let ran = Arc::clone(&ran);
                async move { ran.store(true, Ordering::SeqCst) }
            });
            let before = ran.load(Ordering::SeqCst);
            requeue().await;
            let after = ran.load(Ordering::SeqCst);
            other.await.unwrap();
            (before, after)
        });
        assert_eq!(outcome.await.unwrap(), (false, true));
    }

    #[test]
    fn waits_for_callers_whose_answers_arrived() {
        let mut policy = Coalescing::default();
        policy.yielded(0);
        assert!(policy.should_yield(1, 8), "seven callers still to send");
        policy.yielded(7);
        assert!(policy.should_yield(8, 8), "the last yield helped");
    }

    #[test]
    fn stops_yielding_when_it_brings_nothing_and_probes_now_and_then() {
        let mut policy = Coalescing::default();
        assert!(policy.should_yield(8, 8), "first batch: try");
        policy.yielded(0);
        for _ in 0..PROBE_EVERY {
            assert!(!policy.should_yield(8, 8));
        }
        assert!(policy.should_yield(8, 8), "a probe");
        policy.yielded(3);
        assert!(
            policy.should_yield(4, 0),
            "the traffic changed: yield again"
        );
    }
}
