//! Consumer figures: pull counters per topic, the broker's max offset per
//! queue as the last pull answer reported it, the rates of
//! GET_CONSUMER_RUNNING_INFO's status table, and the consumer-side metrics
//! (through the [`metrics`] facade, names in [`crate::metrics`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_kernel::consume::{ConsumeStats, TopicConsumeStats};
use rocketmq_model::body::ConsumeStatus;
use rocketmq_model::header::CompactString;
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::time::Instant;

use crate::metrics::{self as names, ConsumeSeries};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Cumulative pull counters of one topic.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TopicPullStats {
    /// Pull answers received (any status).
    pub(crate) pulls: u64,
    /// Messages found.
    pub(crate) messages: u64,
    /// Time spent in pulls, summed.
    pub(crate) pull_time: Duration,
}

/// Pull counters per topic and, per queue, the latest broker max offset and
/// since when its pulls fail.
#[derive(Debug, Default)]
pub(crate) struct PullStats {
    topics: Mutex<HashMap<String, TopicPullStats>>,
    queues: Mutex<BTreeMap<MessageQueue, QueuePulls>>,
}

/// What the pulls of one queue said last.
#[derive(Debug, Default, Clone, Copy)]
struct QueuePulls {
    max_offset: Option<i64>,
    /// Set by a failed pull, cleared by an answer.
    failing_since: Option<Instant>,
}

impl PullStats {
    /// Records one pull answer of `mq`.
    pub(crate) fn record(&self, mq: &MessageQueue, elapsed: Duration, found: u64, max: i64) {
        self.record_topic(&mq.topic, elapsed, found);
        lock(&self.queues).insert(
            mq.clone(),
            QueuePulls {
                max_offset: Some(max),
                failing_since: None,
            },
        );
    }

    /// Records one answer of `topic` in the topic's counters only (a pop's,
    /// which says nothing of a queue's offsets).
    pub(crate) fn record_topic(&self, topic: &str, elapsed: Duration, found: u64) {
        let mut topics = lock(&self.topics);
        let stats = topics.entry(topic.to_owned()).or_default();
        stats.pulls += 1;
        stats.messages += found;
        stats.pull_time += elapsed;
    }

    /// Records a failed pull of `mq` at `now`.
    pub(crate) fn record_failure(&self, mq: &MessageQueue, now: Instant) {
        let mut queues = lock(&self.queues);
        let pulls = queues.entry(mq.clone()).or_default();
        pulls.failing_since.get_or_insert(now);
    }

    /// The queues among `owned` whose pulls have failed since `before` or
    /// earlier, with no answer since.
    pub(crate) fn failing_since(
        &self,
        owned: &BTreeSet<MessageQueue>,
        before: Instant,
    ) -> Vec<MessageQueue> {
        lock(&self.queues)
            .iter()
            .filter(|(mq, pulls)| {
                owned.contains(*mq) && pulls.failing_since.is_some_and(|since| since <= before)
            })
            .map(|(mq, _)| mq.clone())
            .collect()
    }

    /// Sets the broker's max offset of `mq`, learnt other than by a pull.
    pub(crate) fn set_max_offset(&self, mq: &MessageQueue, max: i64) {
        lock(&self.queues).entry(mq.clone()).or_default().max_offset = Some(max);
    }

    /// The counters of every topic pulled from.
    pub(crate) fn snapshot(&self) -> HashMap<String, TopicPullStats> {
        lock(&self.topics).clone()
    }

    /// The broker's max offset of `mq` as last learnt.
    pub(crate) fn max_offset(&self, mq: &MessageQueue) -> Option<i64> {
        lock(&self.queues)
            .get(mq)
            .and_then(|pulls| pulls.max_offset)
    }

    /// Keeps what is known of `owned` queues only.
    pub(crate) fn retain(&self, owned: &BTreeSet<MessageQueue>) {
        lock(&self.queues).retain(|mq, _| owned.contains(mq));
    }
}

/// One sample of every counter, to derive rates from two of them.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    consume: BTreeMap<String, TopicConsumeStats>,
    pull: HashMap<String, TopicPullStats>,
}

/// Derives the status table's rates and mean times from the counters: over
/// the time since the previous report (or since the consumer started), as
/// Java's are over the last minute.
#[derive(Debug)]
pub(crate) struct StatusTable {
    previous: Mutex<Sample>,
}

impl StatusTable {
    pub(crate) fn new(now: Instant) -> Self {
        StatusTable {
            previous: Mutex::new(Sample {
                at: now,
                consume: BTreeMap::new(),
                pull: HashMap::new(),
            }),
        }
    }

    /// The status of every topic, rates over the time since the last call.
    pub(crate) fn report(
        &self,
        consume: &ConsumeStats,
        pull: &PullStats,
        topics: &[String],
        now: Instant,
    ) -> BTreeMap<String, ConsumeStatus> {
        let current = Sample {
            at: now,
            consume: consume.snapshot(),
            pull: pull.snapshot(),
        };
        let previous = std::mem::replace(&mut *lock(&self.previous), current.clone());
        let seconds = now.saturating_duration_since(previous.at).as_secs_f64();
        let rate = |delta: u64| {
            if seconds > 0.0 {
                delta as f64 / seconds
            } else {
                0.0
            }
        };
        topics
            .iter()
            .map(|topic| {
                let c = current.consume.get(topic).copied().unwrap_or_default();
                let c0 = previous.consume.get(topic).copied().unwrap_or_default();
                let p = current.pull.get(topic).copied().unwrap_or_default();
                let p0 = previous.pull.get(topic).copied().unwrap_or_default();
                let status = ConsumeStatus {
                    consume_failed_msgs: i64::try_from(c.failed_last_hour).unwrap_or(i64::MAX),
                    consume_failed_tps: rate(c.failed.saturating_sub(c0.failed)),
                    consume_ok_tps: rate(c.ok.saturating_sub(c0.ok)),
                    consume_rt: consume_rt(&c, &c0),
                    pull_rt: mean_millis(
                        p.pull_time.saturating_sub(p0.pull_time),
                        p.pulls.saturating_sub(p0.pulls),
                    ),
                    pull_tps: rate(p.messages.saturating_sub(p0.messages)),
                };
                (topic.clone(), status)
            })
            .collect()
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// consumeRT: the mean listener call time since the previous report. As
/// Java's falls back from its last minute to its last hour when the
/// consumer was idle, it falls back to the mean since the start when no
/// call ended since that report.
fn consume_rt(now: &TopicConsumeStats, before: &TopicConsumeStats) -> f64 {
    let calls = now.batches.saturating_sub(before.batches);
    if calls == 0 {
        return millis(now.mean_consume_time());
    }
    mean_millis(now.consume_time.saturating_sub(before.consume_time), calls)
}

fn mean_millis(total: Duration, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        millis(total) / count as f64
    }
}

fn queue_labels(group: &str, mq: &MessageQueue) -> [(&'static str, String); 4] {
    [
        ("group", group.to_owned()),
        ("topic", mq.topic.clone()),
        ("broker", mq.broker_name.clone()),
        ("queue_id", mq.queue_id.to_string()),
    ]
}

/// What the metrics need of a listener's batch, taken before the listener
/// gets it: each message's topic, as runs (a batch comes from one queue, so
/// it usually has one topic, kept inline; only a retry queue mixes the
/// original topics of its messages), and which messages reached the maximum
/// reconsume count. Nothing is allocated for the usual batch.
#[derive(Debug, Default)]
pub(crate) struct BatchFacts {
    first: Option<(CompactString, usize)>,
    more: Vec<(CompactString, usize)>,
    len: usize,
    /// Positions of the messages at or above the maximum reconsume count.
    at_max: Vec<usize>,
}

impl BatchFacts {
    /// The facts of `msgs`; `max_reconsume_times` is the count from which a
    /// failed message goes to the dead-letter queue, if there is one.
    pub(crate) fn of(msgs: &[MessageExt], max_reconsume_times: Option<i32>) -> Self {
        let mut facts = BatchFacts {
            len: msgs.len(),
            ..BatchFacts::default()
        };
        for (i, msg) in msgs.iter().enumerate() {
            let last = match facts.more.last_mut() {
                Some(run) => Some(run),
                None => facts.first.as_mut(),
            };
            match last {
                Some((topic, n)) if topic == msg.topic() => *n += 1,
                Some(_) => facts.more.push((msg.topic().into(), 1)),
                None => facts.first = Some((msg.topic().into(), 1)),
            }
            if max_reconsume_times.is_some_and(|max| msg.reconsume_times >= max) {
                facts.at_max.push(i);
            }
        }
        facts
    }

    /// The number of messages.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The runs of one topic, in batch order.
    fn runs(&self) -> impl Iterator<Item = (&str, usize)> {
        self.first
            .iter()
            .chain(&self.more)
            .map(|(topic, n)| (topic.as_str(), *n))
    }

    /// Each message's topic, in batch order.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.runs()
            .flat_map(|(topic, n)| std::iter::repeat_n(topic, n))
    }

    /// The topic of the message at `position`.
    fn topic(&self, mut position: usize) -> Option<&str> {
        for (topic, n) in self.runs() {
            if position < n {
                return Some(topic);
            }
            position -= n;
        }
        None
    }

    /// The topics of the messages at or above the maximum reconsume count,
    /// from position `from` on.
    pub(crate) fn at_max_from(&self, from: usize) -> impl Iterator<Item = &str> {
        self.at_max
            .iter()
            .filter(move |&&i| i >= from)
            .filter_map(|&i| self.topic(i))
    }
}

/// Records one listener call in `series`: its latency (labelled with the
/// first message's topic) and, per message topic, the first `acked` messages
/// as consumed and the rest as failed. Messages redelivered from the retry
/// topic carry their original topic.
pub(crate) fn record_consume(
    series: &ConsumeSeries,
    batch: &BatchFacts,
    acked: usize,
    latency: Duration,
) {
    let Some((first, n)) = &batch.first else {
        return;
    };
    series.record_latency(first, acked == batch.len(), latency);
    if batch.more.is_empty() {
        series.count(first, true, acked);
        series.count(first, false, n - acked);
        return;
    }
    let mut counts: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    for (i, topic) in batch.topics().enumerate() {
        *counts.entry((topic, i < acked)).or_default() += 1;
    }
    for ((topic, ok), n) in counts {
        series.count(topic, ok, n);
    }
}

/// Records one pull: counted by outcome, and its time to the answer when
/// answered.
pub(crate) fn record_pull(group: &str, topic: &str, answered: bool, latency: Duration) {
    let labels = [("group", group.to_owned()), ("topic", topic.to_owned())];
    if answered {
        metrics::histogram!(names::PULL_LATENCY_SECONDS, &labels).record(latency.as_secs_f64());
    }
    let result = ("result", names::result_label(answered).to_owned());
    let [group, topic] = labels;
    metrics::counter!(names::PULL_TOTAL, &[group, topic, result]).increment(1);
}

/// Records a message that goes to the dead-letter queue.
pub(crate) fn record_dlq(group: &str, topic: &str) {
    let labels = [("group", group.to_owned()), ("topic", topic.to_owned())];
    metrics::counter!(names::DLQ_TOTAL, &labels).increment(1);
}

/// Sets the cached-messages and cached-bytes gauges of a queue.
pub(crate) fn set_cached(group: &str, mq: &MessageQueue, count: usize, bytes: u64) {
    let labels = queue_labels(group, mq);
    metrics::gauge!(names::CACHED_MESSAGES, &labels).set(count as f64);
    metrics::gauge!(names::CACHED_BYTES, &labels).set(bytes as f64);
}

/// Sets the lag gauge of a queue.
pub(crate) fn set_lag(group: &str, mq: &MessageQueue, lag: i64) {
    metrics::gauge!(names::CONSUMER_LAG, &queue_labels(group, mq)).set(lag as f64);
}

/// Zeroes the gauges of a queue this consumer no longer reads, which would
/// otherwise keep their last value for ever (the `metrics` facade cannot
/// remove a series).
pub(crate) fn clear_queue(group: &str, mq: &MessageQueue) {
    set_cached(group, mq, 0, 0);
    set_lag(group, mq, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_second_since_the_last_report() {
        let start = Instant::now();
        let table = StatusTable::new(start);
        let consume = ConsumeStats::new();
        let pull = PullStats::default();
        let mq = MessageQueue::new("T", "b", 0);
        consume.record("T", Duration::from_millis(4), 10, 2);
        pull.record(&mq, Duration::from_millis(6), 12, 100);
        pull.record(&mq, Duration::from_millis(2), 0, 100);
        let topics = vec!["T".to_owned(), "U".to_owned()];
        let report = table.report(&consume, &pull, &topics, start + Duration::from_secs(2));
        let t = &report["T"];
        assert_eq!(t.consume_ok_tps, 5.0);
        assert_eq!(t.consume_failed_tps, 1.0);
        assert_eq!(t.consume_failed_msgs, 2);
        assert_eq!(t.pull_tps, 6.0);
        assert_eq!(t.pull_rt, 4.0);
        assert_eq!(t.consume_rt, 4.0);
        assert_eq!(report["U"], ConsumeStatus::default());
        assert_eq!(pull.max_offset(&mq), Some(100));
        let again = table.report(&consume, &pull, &topics, start + Duration::from_secs(3));
        assert_eq!(again["T"].consume_ok_tps, 0.0, "nothing new since");
        assert_eq!(again["T"].consume_failed_msgs, 2, "still within the hour");
    }

    /// consumeRT and pullRT are the means of the calls since the last
    /// report, as Java's are of the last minute: a long-running consumer
    /// that slowed down shows it, rather than its mean since the start.
    #[test]
    fn mean_times_are_of_the_calls_since_the_last_report() {
        let start = Instant::now();
        let table = StatusTable::new(start);
        let consume = ConsumeStats::new();
        let pull = PullStats::default();
        let mq = MessageQueue::new("T", "b", 0);
        let topics = vec!["T".to_owned()];
        for _ in 0..9 {
            consume.record("T", Duration::from_millis(2), 1, 0);
            pull.record(&mq, Duration::from_millis(1), 1, 100);
        }
        let first = table.report(&consume, &pull, &topics, start + Duration::from_secs(60));
        assert_eq!((first["T"].consume_rt, first["T"].pull_rt), (2.0, 1.0));

        consume.record("T", Duration::from_millis(50), 1, 0);
        pull.record(&mq, Duration::from_millis(30), 1, 100);
        let slower = table.report(&consume, &pull, &topics, start + Duration::from_secs(120));
        assert_eq!((slower["T"].consume_rt, slower["T"].pull_rt), (50.0, 30.0));

        // Idle since: consumeRT falls back to the mean since the start
        // (Java: of the last hour), pullRT is 0 (Java's last minute).
        let idle = table.report(&consume, &pull, &topics, start + Duration::from_secs(180));
        assert_eq!((idle["T"].consume_rt, idle["T"].pull_rt), (6.8, 0.0));
    }

    #[test]
    fn batch_facts_keep_each_message_topic_and_those_at_the_maximum() {
        let msg = |topic: &str, reconsume_times| {
            let mut msg = MessageExt::from(rocketmq_model::Message::new(topic, "b"));
            msg.reconsume_times = reconsume_times;
            msg
        };
        let msgs = [
            msg("A", 0),
            msg("A", 5),
            msg("B", 6),
            msg("A", 3),
            msg("C", 9),
        ];
        let batch = BatchFacts::of(&msgs, Some(5));
        assert_eq!(batch.len(), 5);
        assert_eq!(
            batch.topics().collect::<Vec<_>>(),
            ["A", "A", "B", "A", "C"]
        );
        assert_eq!(batch.runs().count(), 4, "one topic string per run");
        assert_eq!(batch.at_max_from(0).collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(batch.at_max_from(2).collect::<Vec<_>>(), ["B", "C"]);
        assert_eq!(batch.at_max_from(5).count(), 0);
        let one_topic = BatchFacts::of(&msgs[..2], None);
        assert!(one_topic.more.is_empty() && one_topic.at_max.is_empty());
        assert_eq!(BatchFacts::of(&[], Some(1)).topics().count(), 0);
    }

    #[test]
    fn recording_without_an_exporter_is_harmless() {
        let mq = MessageQueue::new("T", "b", 0);
        let msgs = [MessageExt::from(rocketmq_model::Message::new("T", "a"))];
        let series = ConsumeSeries::new("g");
        record_consume(
            &series,
            &BatchFacts::of(&msgs, None),
            1,
            Duration::from_millis(1),
        );
        record_consume(
            &series,
            &BatchFacts::of(&[], None),
            0,
            Duration::from_millis(1),
        );
        record_pull("g", "T", true, Duration::from_millis(1));
        record_pull("g", "T", false, Duration::from_millis(1));
        record_dlq("g", "T");
        set_cached("g", &mq, 1, 2);
        set_lag("g", &mq, 3);
    }
}
