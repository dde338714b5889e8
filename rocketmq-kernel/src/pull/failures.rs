//! Failed pulls of one queue, logged without flooding the log: a pull task
//! retries every second (every 20 ms after FLOW_CONTROL) for as long as a
//! fault lasts; each kind of failure is reported at most once a minute
//! ([`crate::report_limit`]), whether the kinds alternate (a broker
//! shedding load answers some pulls SYSTEM_BUSY and lets others time out)
//! or pulls flap (one answered in a few).

use std::mem::{Discriminant, discriminant};

use rocketmq_model::{MessageQueue, ResponseCode};
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

use crate::error::KernelError;
use crate::report_limit::{FailureReport, ReportLimit};

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

/// The failures of one queue's pulls.
#[derive(Debug, Default)]
pub struct FailureLog {
    reports: ReportLimit<Kind>,
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
        self.reports.failed(Kind::of(err), now)
    }

    /// A pull was answered: the failures since the last answer, when an
    /// answer is worth reporting.
    fn succeeded(&mut self) -> Option<u64> {
        self.reports.succeeded()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
