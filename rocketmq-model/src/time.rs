//! Wall-clock times as the protocol writes them: milliseconds since the
//! Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds from the Unix epoch to `time`: 0 before the epoch,
/// `i64::MAX` past what an `i64` holds.
pub fn epoch_millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn milliseconds_since_the_epoch_saturating() {
        assert_eq!(epoch_millis(UNIX_EPOCH + Duration::from_millis(1500)), 1500);
        assert_eq!(epoch_millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(epoch_millis(UNIX_EPOCH), 0);
    }
}
