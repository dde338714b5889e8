//! [`PersistLog`]: the periodic persistence of a group's offsets, logged
//! without flooding the log. While a broker is down every round (5 s)
//! fails; a warning each would be twelve a minute for as long as the
//! broker stays away. Failed rounds are reported as failed pulls are
//! ([`crate::report_limit`]): the first at once, then at most once a
//! minute with how many rounds failed since, and the round that works
//! again says after how many.

use std::fmt::Display;
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

use crate::report_limit::{FailureReport, ReportLimit};

/// The outcomes of one consumer group's persistence rounds.
#[derive(Debug, Default)]
pub struct PersistLog {
    rounds: Mutex<ReportLimit<()>>,
}

impl PersistLog {
    /// Logs a round of `group` that persisted every offset: at info level
    /// when failures were reported since the last such line, else at debug.
    pub fn persisted(&self, group: &str) {
        match self.lock().succeeded() {
            Some(failed_rounds) => {
                tracing::info!(%group, failed_rounds, "offsets persisted again");
            }
            None => tracing::debug!(%group, "offsets persisted"),
        }
    }

    /// Logs a round of `group` that failed with `error`: a warning the
    /// first time and once a minute while rounds keep failing, else at
    /// debug.
    pub fn failed(&self, group: &str, error: &dyn Display) {
        let report = self.lock().failed((), Instant::now());
        match report {
            FailureReport::First => tracing::warn!(%group, %error, "persisting offsets failed"),
            FailureReport::Again { since_last } => tracing::warn!(%group, %error,
                failed_rounds_since_last_report = since_last, "persisting offsets failed (still)"),
            FailureReport::Quiet => tracing::debug!(%group, %error, "persisting offsets failed"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReportLimit<()>> {
        self.rounds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rounds_failing_for_two_minutes_are_two_reports_and_a_recovery() {
        let log = PersistLog::default();
        let mut reports = Vec::new();
        for _ in 0..24 {
            let report = log.lock().failed((), Instant::now());
            if report != FailureReport::Quiet {
                reports.push(report);
            }
            tokio::time::advance(Duration::from_secs(5)).await;
        }
        assert_eq!(
            reports,
            [
                FailureReport::First,
                FailureReport::Again { since_last: 12 }
            ]
        );
        assert_eq!(log.lock().succeeded(), Some(24));
        assert_eq!(log.lock().succeeded(), None, "told once");
    }
}
