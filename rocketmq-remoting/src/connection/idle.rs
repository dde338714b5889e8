//! Closing a connection nothing went through for a while, as Java's
//! `IdleStateHandler(0, 0, 120 s)` does on both ends (`ALL_IDLE`: neither
//! a frame read nor a write flushed). A connection the network silently
//! dropped (a NAT's or firewall's idle timeout, often a few minutes) is then
//! closed before it can swallow a request; the next call dials again. Regular
//! traffic, such as the 30 s heartbeat, keeps a connection open.
//!
//! The read and write paths only bump counters (no clock read per frame);
//! a timer looks at them four times per limit, so a connection closes
//! between the limit and a quarter more after its last frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How many checks a limit is divided into.
const CHECKS_PER_LIMIT: u32 = 4;

/// Counts of a connection's reads and writes.
#[derive(Debug, Default)]
pub(crate) struct Activity {
    /// Frames read (also tells a waiting call whether the peer said
    /// anything meanwhile, see `RemotingClient::invoke`).
    pub(crate) frames_read: AtomicU64,
    /// Flushes of written frames.
    flushes: AtomicU64,
}

impl Activity {
    /// Records a frame read.
    pub(crate) fn read(&self) {
        self.frames_read.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a flush of written frames.
    pub(crate) fn wrote(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        (self.frames_read.load(Ordering::Relaxed))
            .wrapping_add(self.flushes.load(Ordering::Relaxed))
    }

    /// Waits until nothing was read or written for at least `max_idle`
    /// (at most a quarter of it more); returns how long the quiet was seen.
    pub(crate) async fn idle_for(&self, max_idle: Duration) -> Duration {
        let check = (max_idle / CHECKS_PER_LIMIT).max(Duration::from_millis(1));
        let mut seen = self.count();
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(check).await;
            let now = self.count();
            if now != seen {
                seen = now;
                quiet_since = Instant::now();
                continue;
            }
            let quiet = quiet_since.elapsed();
            if quiet >= max_idle {
                return quiet;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_ends_a_limit_after_the_check_that_saw_the_last_activity() {
        let activity = std::sync::Arc::new(Activity::default());
        let started = Instant::now();
        let watched = std::sync::Arc::clone(&activity);
        let idle = tokio::spawn(async move { watched.idle_for(Duration::from_secs(120)).await });
        tokio::time::sleep(Duration::from_secs(100)).await;
        activity.read();
        // Seen by the check at 120 s; quiet from there for 120 s.
        let waited = idle.await.unwrap();
        assert_eq!(waited, Duration::from_secs(120));
        assert_eq!(Instant::now() - started, Duration::from_secs(240));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_is_idle_after_the_limit() {
        let activity = Activity::default();
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(120)).await;
        assert_eq!(Instant::now() - started, Duration::from_secs(120));
    }
}
