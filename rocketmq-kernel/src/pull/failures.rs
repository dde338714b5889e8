//! Failed pulls of one queue, logged without flooding the log: a pull task
//! retries every second (every 20 ms after FLOW_CONTROL) for as long as a
//! fault lasts, so a warning per failure would be thousands of lines a
//! minute per consumer. Each kind of failure is reported at most once a
//! minute, the first time at once and later with how many pulls failed
//! since the last report, whether the kinds alternate (a broker shedding
//! load answers some pulls SYSTEM_BUSY and lets others time out) or pulls
//! flap (one answered in a few). An answer after failures is reported once
//! per report of failures.

use std::mem::{Discriminant, discriminant};
use std::time::Duration;

use rocketmq_model::{MessageQueue, ResponseCode};
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

use crate::error::KernelError;

/// How often one kind of failure is reported at most.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(60);

/// What kind of failure an error is: two errors of one kind (the same
/// refusal code, or both timeouts) are one fault going on, whatever their
/// texts say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    error: Discriminant<KernelError>,
    remoting: Option<Discriminant<RemotingError>>,
    code: Option<ResponseCode>,
}

impl Kind {
    fn of(err: &KernelError) -> Self {
        let remoting = match err {
            KernelError::Remoting(remoting) => Some(remoting),
            _ => None,
        };
        Kind {
            error: discriminant(err),
            remoting: remoting.map(discriminant),
            code: remoting.and_then(RemotingError::response_code),
        }
    }
}

/// What to log for a failure.
#[derive(Debug, PartialEq, Eq)]
enum FailureReport {
    /// A kind of failure not reported in the last minute: report it.
    First,
    /// A kind reported a minute ago or more, failing since: report it with
    /// how many pulls it failed since its last report.
    Again {
        /// Failures of this kind since its last report.
        since_last: u64,
    },
    /// A kind reported less than a minute ago.
    Quiet,
}

/// The failures of one queue's pulls.
#[derive(Debug, Default)]
pub struct FailureLog {
    /// The kinds that failed in the last minute (a few at most).
    kinds: Vec<KindLog>,
    /// Failures since the last answer.
    failures: u64,
    /// Whether a failure was reported since the last reported answer.
    owed_recovery: bool,
}

/// One kind of failure going on.
#[derive(Debug)]
struct KindLog {
    kind: Kind,
    reported_at: Instant,
    last_failed: Instant,
    /// Failures of this kind since its last report.
    unreported: u64,
}

impl FailureLog {
    /// Logs that a pull of `mq` (consumer `group`) failed with `err`, as
    /// `what`: at warn level when it is to be reported, else at debug.
    pub fn log_failure(&mut self, group: &str, mq: &MessageQueue, what: &str, err: &KernelError) {
        match self.failed(err, Instant::now()) {
            FailureReport::First => tracing::warn!(%group, %mq, error = %err, "{what}"),
            FailureReport::Again { since_last } => tracing::warn!(%group, %mq, error = %err,
                failures_since_last_report = since_last, "{what} (still)"),
            FailureReport::Quiet => tracing::debug!(%group, %mq, error = %err, "{what}"),
        }
    }

    /// Logs, when worth it, that a pull of `mq` was answered after failures.
    pub fn log_answer(&mut self, group: &str, mq: &MessageQueue) {
        if let Some(failures) = self.succeeded() {
            tracing::info!(%group, %mq, failures, "pulls answered again");
        }
    }

    /// A pull failed with `err` at `now`.
    fn failed(&mut self, err: &KernelError, now: Instant) -> FailureReport {
        let kind = Kind::of(err);
        self.failures += 1;
        // A kind that has not failed for a minute is over: if it comes
        // back, it is a new fault.
        self.kinds
            .retain(|seen| now.saturating_duration_since(seen.last_failed) < REPORT_EVERY);
        let Some(seen) = self.kinds.iter_mut().find(|seen| seen.kind == kind) else {
            self.kinds.push(KindLog {
                kind,
                reported_at: now,
                last_failed: now,
                unreported: 0,
            });
            self.owed_recovery = true;
            return FailureReport::First;
        };
        seen.last_failed = now;
        seen.unreported += 1;
        if now.saturating_duration_since(seen.reported_at) < REPORT_EVERY {
            return FailureReport::Quiet;
        }
        seen.reported_at = now;
        self.owed_recovery = true;
        FailureReport::Again {
            since_last: std::mem::take(&mut seen.unreported),
        }
    }

    /// A pull was answered: the failures since the last answer, when an
    /// answer is worth reporting (a failure was reported since the last one
    /// that was).
    fn succeeded(&mut self) -> Option<u64> {
        let failures = std::mem::take(&mut self.failures);
        std::mem::take(&mut self.owed_recovery).then_some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: ResponseCode) -> KernelError {
        KernelError::Remoting(RemotingError::Response {
            addr: "b:10911".into(),
            code,
            remark: "busy".into(),
        })
    }

    fn timeout(addr: &str) -> KernelError {
        KernelError::Remoting(RemotingError::Timeout {
            addr: addr.into(),
            after: Duration::from_secs(3),
        })
    }

    /// Reports of a minute of pulls, one every `every`, failing with
    /// `failure(i)` or answered when it gives `None`.
    fn reports(
        every: Duration,
        minutes: u32,
        failure: impl Fn(u32) -> Option<KernelError>,
    ) -> (Vec<FailureReport>, u32) {
        let start = Instant::now();
        let mut log = FailureLog::default();
        let (mut reports, mut answered) = (Vec::new(), 0);
        let pulls = u32::try_from(
            Duration::from_secs(60 * u64::from(minutes)).as_millis() / every.as_millis(),
        )
        .unwrap();
        for i in 0..pulls {
            let now = start + every * i;
            match failure(i) {
                Some(err) => match log.failed(&err, now) {
                    FailureReport::Quiet => {}
                    report => reports.push(report),
                },
                None => answered += u32::from(log.succeeded().is_some()),
            }
        }
        (reports, answered)
    }

    #[test]
    fn a_failure_that_goes_on_is_reported_once_a_minute() {
        let busy = || Some(refused(ResponseCode::FLOW_CONTROL));
        let (reports, _) = reports(Duration::from_millis(20), 2, |_| busy());
        assert_eq!(
            reports,
            [
                FailureReport::First,
                FailureReport::Again { since_last: 3_000 },
            ]
        );
    }

    #[test]
    fn alternating_kinds_are_each_reported_once_a_minute() {
        let (reports, _) = reports(Duration::from_secs(1), 1, |i| {
            Some(if i % 2 == 0 {
                timeout("a:1")
            } else {
                refused(ResponseCode::SYSTEM_BUSY)
            })
        });
        assert_eq!(reports, [FailureReport::First, FailureReport::First]);
    }

    #[test]
    fn flapping_pulls_are_reported_once_a_minute() {
        let (reports, answered) = reports(Duration::from_secs(1), 2, |i| {
            (i % 5 != 4).then(|| refused(ResponseCode::SYSTEM_BUSY))
        });
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(answered, 2, "an answer reported per report of failures");
    }

    #[test]
    fn alternating_kinds_count_their_own_failures() {
        let (reports, _) = reports(Duration::from_secs(1), 2, |i| {
            Some(if i % 2 == 0 {
                timeout("a:1")
            } else {
                refused(ResponseCode::SYSTEM_BUSY)
            })
        });
        assert_eq!(
            reports,
            [
                FailureReport::First,
                FailureReport::First,
                FailureReport::Again { since_last: 30 },
                FailureReport::Again { since_last: 30 },
            ]
        );
    }

    /// Reported, failed once more, recovered: hours later the same fault
    /// is a new one, not "still" failing.
    #[test]
    fn a_fault_back_hours_later_is_new() {
        let start = Instant::now();
        let mut log = FailureLog::default();
        let busy = refused(ResponseCode::SYSTEM_BUSY);
        assert_eq!(log.failed(&busy, start), FailureReport::First);
        assert_eq!(
            log.failed(&busy, start + Duration::from_secs(1)),
            FailureReport::Quiet
        );
        assert_eq!(log.succeeded(), Some(2));
        let later = start + Duration::from_secs(7_200);
        assert_eq!(log.failed(&busy, later), FailureReport::First);
    }

    #[test]
    fn a_fault_back_after_a_quiet_spell_is_new() {
        let start = Instant::now();
        let mut log = FailureLog::default();
        let busy = refused(ResponseCode::SYSTEM_BUSY);
        assert_eq!(log.failed(&busy, start), FailureReport::First);
        assert_eq!(log.succeeded(), Some(1));
        assert_eq!(log.succeeded(), None, "nothing failed since");
        let later = start + Duration::from_secs(120);
        assert_eq!(log.failed(&busy, later), FailureReport::First);
        assert_eq!(log.failed(&timeout("b:2"), later), FailureReport::First);
        assert_eq!(
            log.failed(&timeout("c:3"), later),
            FailureReport::Quiet,
            "one kind"
        );
        let no_route = KernelError::NoRoute { topic: "T".into() };
        assert_eq!(log.failed(&no_route, later), FailureReport::First);
        assert_eq!(log.succeeded(), Some(4));
    }
}
