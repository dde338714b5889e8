//! Reconnect backoff: a growing delay with jitter between dials to an address
//! that keeps failing. While an address backs off, calls to it fail at once
//! with the last dial's error (so a producer moves to another broker instead
//! of spending its send budget waiting); the ceiling is kept short so that a
//! broker that comes back is dialled again within a second.

use std::time::Duration;

use rand::Rng;

/// Delays between failed dials: `initial`, doubling up to `max`, each scaled by
/// a random factor in `[0.5, 1.0]` so that clients do not re-dial in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the first failure.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

impl Backoff {
    /// The delay before the next dial after `failures` consecutive failures
    /// (at least 1), jitter included.
    pub fn delay(&self, failures: u32) -> Duration {
        let ceiling = self.ceiling(failures);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// The delay without jitter.
    fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_then_caps_with_bounded_jitter() {
        let backoff = Backoff::default();
        assert_eq!(backoff.ceiling(1), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(2), Duration::from_millis(200));
        assert_eq!(backoff.ceiling(4), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(40), Duration::from_secs(1));
        for failures in 1..10 {
            let delay = backoff.delay(failures);
            let ceiling = backoff.ceiling(failures);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
    }
}
