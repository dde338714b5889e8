//! Queues a round allocated but could not add, logged without flooding the
//! log. While an orderly queue's lock is refused (its last owner's lease
//! has not run out on the broker) or its lock requests fail, the rebalancer
//! tries again every 500 ms: a warning per attempt would be 120 lines a
//! minute per queue. Each queue's failures are reported as a pull task's
//! are ([`crate::report_limit`]): once at once, then at most once a minute
//! with a count, and the add that finally works says after how many.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Mutex, PoisonError};

use rocketmq_model::MessageQueue;
use tokio::time::Instant;

use crate::report_limit::{FailureReport, ReportLimit};

/// Why a queue was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddFailure {
    /// Orderly: the broker refused the lock.
    LockRefused,
    /// Orderly: the lock request failed.
    LockRequestFailed,
    /// The start offset could not be computed.
    NoStartOffset,
}

impl AddFailure {
    fn what(self) -> &'static str {
        match self {
            AddFailure::LockRefused => "queue not added: lock refused",
            AddFailure::LockRequestFailed => "queue not added: lock request failed",
            AddFailure::NoStartOffset => "queue not added: no start offset",
        }
    }
}

/// The failed adds of one consumer group's queues, by queue. A queue's
/// entry goes when the queue is added or no longer allocated here.
#[derive(Debug, Default)]
pub(crate) struct AddFailures {
    queues: Mutex<HashMap<MessageQueue, ReportLimit<AddFailure>>>,
}

impl AddFailures {
    /// Logs that adding `mq` failed with `failure` (`error`, when there is
    /// one): at warn level when it is to be reported, else at debug.
    pub(crate) fn failed(
        &self,
        group: &str,
        mq: &MessageQueue,
        failure: AddFailure,
        error: Option<&dyn Display>,
    ) {
        let report = self
            .lock()
            .entry(mq.clone())
            .or_default()
            .failed(failure, Instant::now());
        let what = failure.what();
        let error = error.map(tracing::field::display);
        match report {
            FailureReport::First => tracing::warn!(%group, %mq, error, "{what}"),
            FailureReport::Again { since_last } => tracing::warn!(%group, %mq, error,
                failures_since_last_report = since_last, "{what} (still)"),
            FailureReport::Quiet => tracing::debug!(%group, %mq, error, "{what}"),
        }
    }

    /// `mq` was added: forgets its failures and returns how many attempts
    /// failed before, when any of them was reported.
    pub(crate) fn added(&self, mq: &MessageQueue) -> Option<u64> {
        self.lock().remove(mq)?.succeeded()
    }

    /// Forgets the queues `keep` says no: those no longer allocated here.
    pub(crate) fn retain(&self, keep: impl Fn(&MessageQueue) -> bool) {
        self.lock().retain(|mq, _| keep(mq));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MessageQueue, ReportLimit<AddFailure>>> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(id: i32) -> MessageQueue {
        MessageQueue::new("T", "b", id)
    }

    #[tokio::test(start_paused = true)]
    async fn an_add_that_works_at_last_forgets_its_failures() {
        let failures = AddFailures::default();
        for _ in 0..3 {
            failures.failed("g", &mq(0), AddFailure::LockRefused, None);
        }
        assert_eq!(failures.added(&mq(0)), Some(3), "reported once, so told");
        assert_eq!(failures.added(&mq(0)), None, "forgotten");
        assert_eq!(failures.added(&mq(1)), None, "never failed");
    }

    #[tokio::test(start_paused = true)]
    async fn queues_no_longer_allocated_are_forgotten() {
        let failures = AddFailures::default();
        failures.failed("g", &mq(0), AddFailure::LockRequestFailed, Some(&"timeout"));
        failures.failed("g", &mq(1), AddFailure::NoStartOffset, Some(&"no route"));
        failures.retain(|mq| mq.queue_id == 1);
        assert_eq!(failures.added(&mq(0)), None);
        assert_eq!(failures.added(&mq(1)), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_going_on_is_reported_once_a_minute() {
        let failures = AddFailures::default();
        let mut reports = Vec::new();
        // Two minutes of rounds 500 ms apart.
        for _ in 0..240 {
            let report = failures
                .lock()
                .entry(mq(0))
                .or_default()
                .failed(AddFailure::LockRefused, Instant::now());
            if report != FailureReport::Quiet {
                reports.push(report);
            }
            tokio::time::advance(std::time::Duration::from_millis(500)).await;
        }
        assert_eq!(
            reports,
            [
                FailureReport::First,
                FailureReport::Again { since_last: 120 },
            ]
        );
    }
}
