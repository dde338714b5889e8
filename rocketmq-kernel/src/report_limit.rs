//! How often a failure that keeps recurring is reported. Background work
//! retries for as long as a fault lasts (a pull every second, a rebalance
//! round every 500 ms while a queue lock is refused), so a warning per
//! failure would be thousands of lines a minute. Each kind of failure is
//! reported at most once a minute: the first time at once, later with how
//! many attempts failed since the last report, whether the kinds alternate
//! or attempts flap (one succeeding in a few). A success after reported
//! failures is reported once per report of failures.

use std::time::Duration;

use tokio::time::Instant;

/// How often one kind of failure is reported at most.
const REPORT_EVERY: Duration = Duration::from_secs(60);

/// What to log for a failure.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FailureReport {
    /// A kind of failure not reported in the last minute: report it.
    First,
    /// A kind reported a minute ago or more, failing since: report it with
    /// how many attempts it failed since its last report.
    Again {
        /// Failures of this kind since its last report.
        since_last: u64,
    },
    /// A kind reported less than a minute ago.
    Quiet,
}

/// The failures of one piece of work (a queue's pulls, adding a queue),
/// by kind `K`: two failures of one kind are one fault going on.
#[derive(Debug)]
pub(crate) struct ReportLimit<K> {
    /// The kinds that failed in the last minute (a few at most).
    kinds: Vec<KindLog<K>>,
    /// Failures since the last success.
    failures: u64,
    /// Whether a failure was reported since the last reported success.
    owed_recovery: bool,
}

impl<K> Default for ReportLimit<K> {
    fn default() -> Self {
        ReportLimit {
            kinds: Vec::new(),
            failures: 0,
            owed_recovery: false,
        }
    }
}

/// One kind of failure going on.
#[derive(Debug)]
struct KindLog<K> {
    kind: K,
    reported_at: Instant,
    last_failed: Instant,
    /// Failures of this kind since its last report.
    unreported: u64,
}

impl<K: PartialEq> ReportLimit<K> {
    /// An attempt failed with a failure of `kind` at `now`.
    pub(crate) fn failed(&mut self, kind: K, now: Instant) -> FailureReport {
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

    /// An attempt succeeded: the failures since the last success, when the
    /// success is worth reporting (a failure was reported since the last
    /// one that was).
    pub(crate) fn succeeded(&mut self) -> Option<u64> {
        let failures = std::mem::take(&mut self.failures);
        std::mem::take(&mut self.owed_recovery).then_some(failures)
    }
}
