//! [`ConsumeStats`]: counters of consumed and failed messages and of consume
//! time per topic, for GET_CONSUMER_RUNNING_INFO's status table.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Minutes of failures kept for [`TopicConsumeStats::failed_last_hour`].
const HOUR_MINUTES: u64 = 60;

/// Cumulative consume counters per topic, updated by the consume services.
///
/// The counters only grow; a reader derives rates (consumeOKTPS,
/// consumeFailedTPS) from the difference of two
/// [`snapshot`](Self::snapshot)s and the time between them, and the mean
/// consume time (consumeRT) from `consume_time` / `batches`. Failures are
/// also kept per minute for an hour, for consumeFailedMsgs
/// ([`TopicConsumeStats::failed_last_hour`]).
#[derive(Debug)]
pub struct ConsumeStats {
    topics: Mutex<HashMap<String, Arc<TopicCounters>>>,
    /// Minute 0 of the failure counts.
    origin: Instant,
}

#[derive(Debug, Default)]
struct TopicCounters {
    ok: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    consume_micros: AtomicU64,
    /// Failures per minute, taken only when a call has failures.
    recent_failures: Mutex<MinuteCounts>,
}

/// Counts per minute over the last hour: slot `m % 60` holds minute `m`.
#[derive(Debug)]
struct MinuteCounts {
    slots: [(u64, u64); HOUR_MINUTES as usize],
}

impl Default for MinuteCounts {
    fn default() -> Self {
        MinuteCounts {
            slots: [(0, 0); HOUR_MINUTES as usize],
        }
    }
}

impl MinuteCounts {
    fn add(&mut self, minute: u64, count: u64) {
        let slot = &mut self.slots[(minute % HOUR_MINUTES) as usize];
        if slot.0 != minute {
            *slot = (minute, 0);
        }
        slot.1 += count;
    }

    /// The counts of the hour ending with minute `now` (that minute included).
    fn last_hour(&self, now: u64) -> u64 {
        self.slots
            .iter()
            .filter(|(minute, _)| *minute <= now && now - minute < HOUR_MINUTES)
            .map(|(_, count)| count)
            .sum()
    }
}

/// The counters of one topic at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConsumeStats {
    /// Messages consumed successfully.
    pub ok: u64,
    /// Messages whose consumption failed (retried or sent back).
    pub failed: u64,
    /// Of those, the ones that failed in the last hour (59 to 60 minutes, by
    /// whole minutes): Java's consumeFailedMsgs.
    pub failed_last_hour: u64,
    /// Listener calls.
    pub batches: u64,
    /// Time spent in the listener, summed over the calls.
    pub consume_time: Duration,
}

impl TopicConsumeStats {
    /// The mean time of a listener call (zero before the first).
    pub fn mean_consume_time(&self) -> Duration {
        match u32::try_from(self.batches) {
            Ok(0) => Duration::ZERO,
            Ok(batches) => self.consume_time / batches,
            Err(_) => self.consume_time.div_f64(self.batches as f64),
        }
    }
}

impl Default for ConsumeStats {
    fn default() -> Self {
        ConsumeStats {
            topics: Mutex::default(),
            origin: Instant::now(),
        }
    }
}

impl ConsumeStats {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The minute `now` falls in, counted from the creation of the counters.
    fn minute(&self) -> u64 {
        Instant::now()
            .saturating_duration_since(self.origin)
            .as_secs()
            / 60
    }

    fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let mut topics = lock(&self.topics);
        match topics.get(topic) {
            Some(counters) => Arc::clone(counters),
            None => Arc::clone(topics.entry(topic.to_owned()).or_default()),
        }
    }

    /// Records one listener call on `topic`: how long it took, how many
    /// messages succeeded and how many failed.
    pub fn record(&self, topic: &str, elapsed: Duration, ok: usize, failed: usize) {
        let counters = self.topic(topic);
        counters.ok.fetch_add(ok as u64, Ordering::Relaxed);
        counters.failed.fetch_add(failed as u64, Ordering::Relaxed);
        if failed > 0 {
            lock(&counters.recent_failures).add(self.minute(), failed as u64);
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.consume_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counters of `topic` (zero when nothing was consumed from it).
    pub fn topic_stats(&self, topic: &str) -> TopicConsumeStats {
        let minute = self.minute();
        let topics = lock(&self.topics);
        topics
            .get(topic)
            .map(|c| c.load(minute))
            .unwrap_or_default()
    }

    /// The counters of every topic consumed from.
    pub fn snapshot(&self) -> BTreeMap<String, TopicConsumeStats> {
        let minute = self.minute();
        let topics = lock(&self.topics);
        topics
            .iter()
            .map(|(topic, counters)| (topic.clone(), counters.load(minute)))
            .collect()
    }
}

impl TopicCounters {
    /// The counters, with the failures of the hour ending at `minute`.
    fn load(&self, minute: u64) -> TopicConsumeStats {
        TopicConsumeStats {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            failed_last_hour: lock(&self.recent_failures).last_hour(minute),
            batches: self.batches.load(Ordering::Relaxed),
            consume_time: Duration::from_micros(self.consume_micros.load(Ordering::Relaxed)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay consistent whatever panicked while holding the lock.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_topic() {
        let stats = ConsumeStats::new();
        stats.record("T", Duration::from_millis(10), 3, 1);
        stats.record("T", Duration::from_millis(30), 0, 2);
        stats.record("U", Duration::from_millis(5), 1, 0);
        let t = stats.topic_stats("T");
        assert_eq!((t.ok, t.failed, t.batches), (3, 3, 2));
        assert_eq!(t.mean_consume_time(), Duration::from_millis(20));
        assert_eq!(stats.snapshot().len(), 2);
        assert_eq!(stats.topic_stats("V"), TopicConsumeStats::default());
        assert_eq!(
            TopicConsumeStats::default().mean_consume_time(),
            Duration::ZERO
        );
    }

    /// consumeFailedMsgs counts the failures of the last hour, as Java's
    /// `getStatsDataInHour`: older ones leave it minute by minute.
    #[tokio::test(start_paused = true)]
    async fn failures_leave_the_last_hour_count_after_an_hour() {
        const MINUTE: Duration = Duration::from_secs(60);
        let stats = ConsumeStats::new();
        stats.record("T", Duration::ZERO, 0, 2);
        tokio::time::advance(30 * MINUTE).await;
        stats.record("T", Duration::ZERO, 5, 3);
        stats.record("T", Duration::ZERO, 1, 0);
        let t = stats.topic_stats("T");
        assert_eq!((t.failed, t.failed_last_hour), (5, 5));
        tokio::time::advance(29 * MINUTE).await;
        assert_eq!(stats.topic_stats("T").failed_last_hour, 5, "59 minutes on");
        tokio::time::advance(MINUTE).await;
        assert_eq!(stats.topic_stats("T").failed_last_hour, 3, "an hour on");
        tokio::time::advance(30 * MINUTE).await;
        let t = stats.snapshot()["T"];
        assert_eq!((t.failed, t.failed_last_hour), (5, 0));
        // A slot is reused for its minute an hour later, not added to.
        stats.record("T", Duration::ZERO, 0, 1);
        assert_eq!(stats.topic_stats("T").failed_last_hour, 1);
    }
}
