//! Latency fault avoidance for sends, as Java's `MQFaultStrategy` and
//! `LatencyFaultToleranceImpl` do it.
//!
//! Every send reports its broker and latency. A slow send isolates its broker
//! for a time that grows with the latency ([`LatencyTable`]); a failed send
//! isolates it as if it had taken [`FaultConfig::failure_latency`]. Choosing a
//! queue then skips isolated brokers and, on a retry, the broker that just
//! failed; when every broker is isolated it still picks one (round robin)
//! rather than failing.
//!
//! Avoidance is off by default, as in Java (`sendLatencyFaultEnable`); then
//! only the last failed broker is avoided. Time is
//! [`tokio::time::Instant`], so tests with paused time are deterministic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use rocketmq_model::MessageQueue;
use tokio::time::Instant;

use crate::route::PublishInfo;

/// How long a broker is isolated after a send that took a given time: the
/// isolation of the largest step whose latency the send reached (Java's
/// `latencyMax` / `notAvailableDuration` arrays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyTable {
    /// (latency at least, isolate for), ascending by latency.
    steps: Vec<(Duration, Duration)>,
}

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl LatencyTable {
    /// The Java 5.x client's table (`MQFaultStrategy` at 5.3.3): latencies
    /// 50, 100, 550, 1800, 3000, 5000, 15000 ms isolate for 0, 0, 2, 5, 6,
    /// 10, 30 s.
    pub fn java_5x() -> Self {
        Self::new([
            (ms(50), ms(0)),
            (ms(100), ms(0)),
            (ms(550), ms(2_000)),
            (ms(1_800), ms(5_000)),
            (ms(3_000), ms(6_000)),
            (ms(5_000), ms(10_000)),
            (ms(15_000), ms(30_000)),
        ])
    }

    /// The Java 4.x client's table (4.9.x): latencies 50, 100, 550, 1000,
    /// 2000, 3000, 15000 ms isolate for 0, 0, 30, 60, 120, 180, 600 s.
    pub fn java_4x() -> Self {
        Self::new([
            (ms(50), ms(0)),
            (ms(100), ms(0)),
            (ms(550), ms(30_000)),
            (ms(1_000), ms(60_000)),
            (ms(2_000), ms(120_000)),
            (ms(3_000), ms(180_000)),
            (ms(15_000), ms(600_000)),
        ])
    }

    /// A table of (latency at least, isolate for) steps, in any order.
    pub fn new(steps: impl IntoIterator<Item = (Duration, Duration)>) -> Self {
        let mut steps: Vec<_> = steps.into_iter().collect();
        steps.sort_unstable();
        LatencyTable { steps }
    }

    /// How long to isolate a broker whose send took `latency` (zero below
    /// the first step).
    pub fn isolation_for(&self, latency: Duration) -> Duration {
        self.steps
            .iter()
            .rev()
            .find(|(at_least, _)| latency >= *at_least)
            .map_or(Duration::ZERO, |(_, isolate)| *isolate)
    }
}

impl Default for LatencyTable {
    fn default() -> Self {
        Self::java_5x()
    }
}

/// Settings of a [`FaultStrategy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultConfig {
    /// Whether slow and failed brokers are isolated (Java's
    /// `sendLatencyFaultEnable`, default false).
    pub enabled: bool,
    /// Isolation by observed latency.
    pub table: LatencyTable,
    /// The latency a failed send counts as: Java 5.x isolates a failed broker
    /// as if its send took 10 s (30 s in 4.x).
    pub failure_latency: Duration,
}

impl FaultConfig {
    /// Java 5.x's settings, with avoidance on or off.
    pub fn java_5x(enabled: bool) -> Self {
        FaultConfig {
            enabled,
            table: LatencyTable::java_5x(),
            failure_latency: Duration::from_secs(10),
        }
    }

    /// Java 4.x's settings, with avoidance on or off.
    pub fn java_4x(enabled: bool) -> Self {
        FaultConfig {
            enabled,
            table: LatencyTable::java_4x(),
            failure_latency: Duration::from_secs(30),
        }
    }
}

impl Default for FaultConfig {
    /// Java 5.x's settings, avoidance off.
    fn default() -> Self {
        Self::java_5x(false)
    }
}

/// What the strategy knows about one broker.
#[derive(Debug, Clone, Copy)]
struct FaultItem {
    latency: Duration,
    available_at: Instant,
}

/// Chooses send queues avoiding slow and failed brokers (see the module
/// documentation). Shared by every send of a producer.
#[derive(Debug)]
pub struct FaultStrategy {
    enabled: AtomicBool,
    table: LatencyTable,
    failure_latency: Duration,
    items: Mutex<HashMap<String, FaultItem>>,
}

impl FaultStrategy {
    /// A strategy with `config`.
    pub fn new(config: FaultConfig) -> Self {
        FaultStrategy {
            enabled: AtomicBool::new(config.enabled),
            table: config.table,
            failure_latency: config.failure_latency,
            items: Mutex::new(HashMap::new()),
        }
    }

    fn items(&self) -> MutexGuard<'_, HashMap<String, FaultItem>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether latency fault avoidance is on.
    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns avoidance on or off. Turned off, reports are ignored and only
    /// the last failed broker is avoided; isolations recorded before still
    /// apply when it is turned on again.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Reports a send to `broker_name` that completed in `latency` (Java's
    /// `updateFaultItem(.., isolation = false)`); a slow one isolates the
    /// broker per the latency table.
    pub fn record_latency(&self, broker_name: &str, latency: Duration) {
        self.isolate(broker_name, latency, self.table.isolation_for(latency));
    }

    /// Reports a send to `broker_name` that failed after `latency` (Java's
    /// `updateFaultItem(.., isolation = true)`): the broker is isolated as if
    /// the send had taken the failure latency.
    pub fn record_failure(&self, broker_name: &str, latency: Duration) {
        let isolation = self.table.isolation_for(self.failure_latency);
        self.isolate(broker_name, latency, isolation);
    }

    /// Records the latency and isolates the broker until now + `isolation`,
    /// unless it is already isolated for longer (an isolation only grows).
    fn isolate(&self, broker_name: &str, latency: Duration, isolation: Duration) {
        if !self.is_enabled() {
            return;
        }
        let now = Instant::now();
        let mut items = self.items();
        let item = items.entry(broker_name.to_owned()).or_insert(FaultItem {
            latency,
            available_at: now,
        });
        item.latency = latency;
        if isolation > Duration::ZERO {
            let until = now + isolation;
            if until > item.available_at {
                tracing::info!(broker = broker_name, ?isolation, "broker isolated");
                item.available_at = until;
            }
        }
    }

    /// Whether `broker_name` may be sent to (not isolated right now).
    pub fn is_available(&self, broker_name: &str) -> bool {
        self.isolated_until(broker_name).is_none()
    }

    /// When `broker_name`'s isolation ends, if it is isolated now.
    pub fn isolated_until(&self, broker_name: &str) -> Option<Instant> {
        let now = Instant::now();
        self.items()
            .get(broker_name)
            .map(|item| item.available_at)
            .filter(|until| *until > now)
    }

    /// The last latency reported for `broker_name`.
    pub fn last_latency(&self, broker_name: &str) -> Option<Duration> {
        self.items().get(broker_name).map(|item| item.latency)
    }

    /// Forgets what is known about `broker_name` (e.g. when it left the
    /// cluster).
    pub fn remove(&self, broker_name: &str) {
        self.items().remove(broker_name);
    }

    /// Chooses the queue of the next send attempt (Java 5.x
    /// `selectOneMessageQueue`), in round-robin order of `info`:
    ///
    /// - avoidance on: a queue of an available broker other than
    ///   `last_failed_broker`; else any queue of another broker; else the next
    ///   queue (every broker isolated: round robin anyway);
    /// - avoidance off: a queue of a broker other than `last_failed_broker`;
    ///   else the next queue.
    ///
    /// `last_failed_broker` is the broker of the previous attempt of the same
    /// send, `None` on the first attempt. `None` only when `info` has no
    /// queue.
    pub fn select_queue<'a>(
        &self,
        info: &'a PublishInfo,
        last_failed_broker: Option<&str>,
    ) -> Option<&'a MessageQueue> {
        let not_last = |mq: &MessageQueue| Some(mq.broker_name.as_str()) != last_failed_broker;
        let chosen = if self.is_enabled() {
            info.next_queue_where(|mq| not_last(mq) && self.is_available(&mq.broker_name))
                .or_else(|| info.next_queue_where(not_last))
        } else {
            info.next_queue_where(not_last)
        };
        chosen.or_else(|| info.next_queue())
    }
}

impl Default for FaultStrategy {
    fn default() -> Self {
        Self::new(FaultConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rocketmq_model::route::perm;
    use rocketmq_model::{BrokerData, QueueData, TopicRouteData};

    use super::*;
    use crate::select::RoundRobin;

    fn info(brokers: &[&str]) -> PublishInfo {
        let route = TopicRouteData {
            queue_datas: brokers
                .iter()
                .map(|name| QueueData {
                    broker_name: (*name).into(),
                    read_queue_nums: 2,
                    write_queue_nums: 2,
                    perm: perm::READ | perm::WRITE,
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas: brokers
                .iter()
                .map(|name| BrokerData {
                    broker_name: (*name).into(),
                    broker_addrs: [(0, format!("{name}:10911"))].into(),
                    ..BrokerData::default()
                })
                .collect(),
            ..TopicRouteData::default()
        };
        PublishInfo::with_index("T", Arc::new(route), RoundRobin::starting_at(0))
    }

    /// The brokers of `n` consecutive choices.
    fn brokers_chosen(
        strategy: &FaultStrategy,
        info: &PublishInfo,
        last: Option<&str>,
        n: usize,
    ) -> Vec<String> {
        (0..n)
            .map(|_| {
                strategy
                    .select_queue(info, last)
                    .unwrap()
                    .broker_name
                    .clone()
            })
            .collect()
    }

    #[test]
    fn java_tables_map_latency_to_isolation() {
        let five = LatencyTable::java_5x();
        assert_eq!(five.isolation_for(ms(10)), Duration::ZERO);
        assert_eq!(five.isolation_for(ms(549)), Duration::ZERO);
        assert_eq!(five.isolation_for(ms(550)), ms(2_000));
        assert_eq!(five.isolation_for(ms(2_000)), ms(5_000));
        assert_eq!(five.isolation_for(ms(10_000)), ms(10_000));
        assert_eq!(five.isolation_for(ms(60_000)), ms(30_000));
        let four = LatencyTable::java_4x();
        assert_eq!(four.isolation_for(ms(550)), ms(30_000));
        assert_eq!(four.isolation_for(ms(1_000)), ms(60_000));
        assert_eq!(four.isolation_for(ms(2_999)), ms(120_000));
        assert_eq!(four.isolation_for(ms(30_000)), ms(600_000));
        let custom = LatencyTable::new([(ms(10), ms(7)), (ms(1), ms(3))]);
        assert_eq!(custom.isolation_for(ms(5)), ms(3));
    }

    #[test]
    fn failure_isolation_matches_java() {
        let five = FaultConfig::java_5x(true);
        assert_eq!(five.table.isolation_for(five.failure_latency), ms(10_000));
        let four = FaultConfig::java_4x(true);
        assert_eq!(four.table.isolation_for(four.failure_latency), ms(600_000));
        assert!(!FaultConfig::default().enabled);
    }

    #[tokio::test(start_paused = true)]
    async fn isolation_only_grows_and_expires() {
        let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
        strategy.record_latency("a", ms(3_000)); // 6 s
        let until = strategy.isolated_until("a").unwrap();
        strategy.record_latency("a", ms(600)); // 2 s: shorter, ignored
        assert_eq!(strategy.isolated_until("a"), Some(until));
        assert_eq!(strategy.last_latency("a"), Some(ms(600)));
        tokio::time::advance(ms(5_999)).await;
        assert!(!strategy.is_available("a"));
        tokio::time::advance(ms(1)).await;
        assert!(strategy.is_available("a"));
        strategy.record_latency("a", ms(10));
        assert!(strategy.is_available("a"));
        strategy.remove("a");
        assert_eq!(strategy.last_latency("a"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_strategy_records_nothing_and_only_avoids_the_last_broker() {
        let strategy = FaultStrategy::default();
        strategy.record_failure("a", ms(100));
        assert!(strategy.is_available("a"));
        let info = info(&["a", "b"]);
        assert!(
            brokers_chosen(&strategy, &info, Some("a"), 8)
                .iter()
                .all(|b| b == "b")
        );
        // First attempts: plain round robin, every queue once per round.
        let mut first_try = brokers_chosen(&strategy, &info, None, 4);
        first_try.sort();
        assert_eq!(first_try, ["a", "a", "b", "b"]);
    }

    #[tokio::test(start_paused = true)]
    async fn switching_on_and_off_at_runtime() {
        let strategy = FaultStrategy::default();
        strategy.set_enabled(true);
        assert!(strategy.is_enabled());
        strategy.record_failure("a", ms(100));
        assert!(!strategy.is_available("a"));
        let info = info(&["a", "b"]);
        assert!(
            brokers_chosen(&strategy, &info, None, 8)
                .iter()
                .all(|b| b == "b")
        );
        strategy.set_enabled(false);
        assert!(
            brokers_chosen(&strategy, &info, None, 8)
                .iter()
                .any(|b| b == "a")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn last_broker_is_avoided_even_when_it_is_the_only_available_one() {
        let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
        strategy.record_failure("b", ms(100));
        let info = info(&["a", "b"]);
        // "a" failed last but "b" is isolated: another broker beats isolation.
        assert!(
            brokers_chosen(&strategy, &info, Some("a"), 4)
                .iter()
                .all(|b| b == "b")
        );
        // A single broker: it is the only choice.
        let single = self::info(&["a"]);
        assert_eq!(brokers_chosen(&strategy, &single, Some("a"), 2), ["a", "a"]);
    }

    #[test]
    fn no_queue_no_choice() {
        let strategy = FaultStrategy::new(FaultConfig::java_5x(true));
        assert_eq!(strategy.select_queue(&info(&[]), None), None);
    }
}
