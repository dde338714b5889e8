//! Failed pulls of one queue, logged without flooding the log: a pull task
//! retries every second (every 20 ms after FLOW_CONTROL) for as long as a
//! fault lasts, so a warning per failure would be thousands of lines a
//! minute per consumer. The first failure of a kind is reported at once;
//! while the same kind goes on, one report a minute counts what happened
//! since; the first success after failures is reported too.

use std::mem::{Discriminant, discriminant};
use std::time::Duration;

use rocketmq_model::ResponseCode;
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

use crate::error::KernelError;

/// How often a failure that goes on is reported again.
pub const REPORT_EVERY: Duration = Duration::from_secs(60);

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
pub enum FailureReport {
    /// A new kind of failure: report it.
    First,
    /// The same kind still, and a minute since the last report: report it
    /// with how many failed since.
    Again {
        /// Failures since the last report.
        since_last: u64,
    },
    /// The same kind, reported less than a minute ago.
    Quiet,
}

/// The failures of one queue's pulls since its last success.
#[derive(Debug, Default)]
pub struct FailureLog {
    current: Option<Kind>,
    /// Failures since the last success.
    failures: u64,
    /// Failures since the last report.
    unreported: u64,
    reported_at: Option<Instant>,
}

impl FailureLog {
    /// A pull failed with `err` at `now`.
    pub fn failed(&mut self, err: &KernelError, now: Instant) -> FailureReport {
        let kind = Kind::of(err);
        self.failures += 1;
        let due = self
            .reported_at
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if self.current != Some(kind) {
            self.current = Some(kind);
            self.unreported = 0;
            self.reported_at = Some(now);
            return FailureReport::First;
        }
        self.unreported += 1;
        if !due {
            return FailureReport::Quiet;
        }
        self.reported_at = Some(now);
        FailureReport::Again {
            since_last: std::mem::take(&mut self.unreported),
        }
    }

    /// A pull was answered: the failures it ends, if any.
    pub fn succeeded(&mut self) -> Option<u64> {
        self.current.take()?;
        self.unreported = 0;
        self.reported_at = None;
        Some(std::mem::take(&mut self.failures))
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

    #[test]
    fn a_failure_that_goes_on_is_reported_once_a_minute() {
        let start = Instant::now();
        let mut log = FailureLog::default();
        let busy = refused(ResponseCode::SYSTEM_BUSY);
        assert_eq!(log.failed(&busy, start), FailureReport::First);
        // Every 20 ms for a minute: quiet, then one report counting them.
        let mut reports = Vec::new();
        for tick in 1..=3_000_u32 {
            let now = start + Duration::from_millis(20) * tick;
            if let report @ FailureReport::Again { .. } = log.failed(&busy, now) {
                reports.push(report);
            }
        }
        assert_eq!(reports, [FailureReport::Again { since_last: 3_000 }]);
        assert_eq!(log.succeeded(), Some(3_001));
        assert_eq!(log.succeeded(), None, "nothing failed since");
    }

    #[test]
    fn another_kind_of_failure_is_reported_at_once() {
        let start = Instant::now();
        let mut log = FailureLog::default();
        assert_eq!(log.failed(&timeout("a:1"), start), FailureReport::First);
        assert_eq!(
            log.failed(&timeout("b:2"), start),
            FailureReport::Quiet,
            "one kind"
        );
        let busy = refused(ResponseCode::SYSTEM_BUSY);
        assert_eq!(log.failed(&busy, start), FailureReport::First);
        let flow = refused(ResponseCode::FLOW_CONTROL);
        assert_eq!(log.failed(&flow, start), FailureReport::First);
        let no_route = KernelError::NoRoute { topic: "T".into() };
        assert_eq!(log.failed(&no_route, start), FailureReport::First);
        assert_eq!(log.succeeded(), Some(5));
        assert_eq!(
            log.failed(&no_route, start),
            FailureReport::First,
            "after a success"
        );
    }
}
