//! [`ConsumeStats`]: counters of consumed and failed messages and of consume
//! time per topic, for GET_CONSUMER_RUNNING_INFO's status table.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Cumulative consume counters per topic, updated by the consume services.
///
/// The counters only grow; a reader derives rates (consumeOKTPS,
/// consumeFailedTPS) from the difference of two
/// [`snapshot`](Self::snapshot)s and the time between them, and the mean
/// consume time (consumeRT) from `consume_time` / `batches`.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    topics: Mutex<HashMap<String, Arc<TopicCounters>>>,
}

#[derive(Debug, Default)]
struct TopicCounters {
    ok: AtomicU64,
    failed: AtomicU64,
    batches: AtomicU64,
    consume_micros: AtomicU64,
}

/// The counters of one topic at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicConsumeStats {
    /// Messages consumed successfully.
    pub ok: u64,
    /// Messages whose consumption failed (retried or sent back).
    pub failed: u64,
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

impl ConsumeStats {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    fn topic(&self, topic: &str) -> Arc<TopicCounters> {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
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
        counters.batches.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        counters.consume_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counters of `topic` (zero when nothing was consumed from it).
    pub fn topic_stats(&self, topic: &str) -> TopicConsumeStats {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics.get(topic).map(|c| c.load()).unwrap_or_default()
    }

    /// The counters of every topic consumed from.
    pub fn snapshot(&self) -> BTreeMap<String, TopicConsumeStats> {
        let topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        topics
            .iter()
            .map(|(topic, counters)| (topic.clone(), counters.load()))
            .collect()
    }
}

impl TopicCounters {
    fn load(&self) -> TopicConsumeStats {
        TopicConsumeStats {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
            consume_time: Duration::from_micros(self.consume_micros.load(Ordering::Relaxed)),
        }
    }
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
}
