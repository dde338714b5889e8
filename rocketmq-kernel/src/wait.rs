//! Deadlines and periods from user-given durations, which may be anything
//! up to `Duration::MAX` (a common way to say "no limit"): `Instant +
//! Duration` panics on overflow, and tokio's intervals panic on a zero
//! period.

use std::time::Duration;

use tokio::time::Instant;

/// The longest wait taken literally: about 30 years (tokio's own "far
/// future"). Longer waits, `Duration::MAX` included, wait this long.
pub const LONGEST_WAIT: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `start + wait`, with `wait` capped at [`LONGEST_WAIT`].
pub fn deadline_after(start: Instant, wait: Duration) -> Instant {
    start + wait.min(LONGEST_WAIT)
}

/// A period for a timer: at least 1 ms, at most [`LONGEST_WAIT`].
pub fn period(period: Duration) -> Duration {
    period.clamp(Duration::from_millis(1), LONGEST_WAIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn any_duration_makes_a_deadline_and_a_period() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
        assert_eq!(deadline_after(now, Duration::MAX), now + LONGEST_WAIT);
        assert_eq!(period(Duration::ZERO), Duration::from_millis(1));
        assert_eq!(period(Duration::MAX), LONGEST_WAIT);
        // A timer on the longest period ticks without overflowing.
        let mut ticks = tokio::time::interval_at(now, period(Duration::MAX));
        ticks.tick().await;
    }
}
