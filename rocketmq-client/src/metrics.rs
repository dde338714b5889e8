//! Client metrics through the [`metrics`] facade: the application installs an
//! exporter (Prometheus, StatsD, ...) and these names appear in it. Without an
//! exporter every call is a no-op.
//!
//! Names are stable; labels are `topic` and `result` (`"ok"` or `"failed"`),
//! `reason` on failed sends (one of a few kinds, see [`send_failure_reason`]),
//! plus `group` on the consumer side, and `broker` and `queue_id` on its
//! per-queue gauges (zeroed when the queue leaves the consumer, and when the
//! consumer shuts down). Each client instance describes them (help text and
//! unit) to the recorder installed when it starts.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use foldhash::HashMap;
use metrics::{Key, Label, Level, Metadata, SharedString, Unit};
use rocketmq_kernel::KernelError;
use rocketmq_model::ResponseCode;
use rocketmq_remoting::RemotingError;

use crate::error::ClientError;

/// Histogram: time from the first attempt of a send to its outcome, in
/// seconds (labels `topic`, `result`).
pub const SEND_LATENCY_SECONDS: &str = "rocketmq_client_send_latency_seconds";
/// Counter: sends by outcome (labels `topic`, `result`, and `reason` when
/// failed); oneway sends count once written (and are not in
/// [`SEND_LATENCY_SECONDS`]).
pub const SEND_TOTAL: &str = "rocketmq_client_send_total";
/// Counter: send attempts repeated after a retriable failure (label `topic`).
pub const SEND_RETRIES_TOTAL: &str = "rocketmq_client_send_retries_total";
/// Histogram: time a listener took for a batch, in seconds (labels `group`,
/// `topic`, `result`).
pub const CONSUME_LATENCY_SECONDS: &str = "rocketmq_client_consume_latency_seconds";
/// Counter: consumed messages by outcome (labels `group`, `topic`, `result`).
pub const CONSUME_TOTAL: &str = "rocketmq_client_consume_total";
/// Histogram: time from a pull to its answer, in seconds, for answered
/// pulls (labels `group`, `topic`). It includes the time the broker holds a
/// long poll when there is nothing new (up to 15 s), so it measures the
/// broker's hold more than the network.
pub const PULL_LATENCY_SECONDS: &str = "rocketmq_client_pull_latency_seconds";
/// Counter: pulls by outcome (labels `group`, `topic`, `result`): failed
/// pulls (a broker down, refusing, or unreachable) show here first.
pub const PULL_TOTAL: &str = "rocketmq_client_pull_total";
/// Gauge: messages cached in a process queue (labels `group`, `topic`, `broker`, `queue_id`).
pub const CACHED_MESSAGES: &str = "rocketmq_client_cached_messages";
/// Gauge: bytes cached in a process queue (labels `group`, `topic`, `broker`, `queue_id`).
pub const CACHED_BYTES: &str = "rocketmq_client_cached_bytes";
/// Gauge: broker max offset minus committed offset (labels `group`, `topic`,
/// `broker`, `queue_id`), with the max offset of the last answered pull
/// (or of the last `PushConsumer::lag` call); a queue whose pulls have
/// failed for 30 s asks its broker for the max offset instead, so the lag
/// grows while a consumer is stuck (unless the broker is unreachable: alert
/// on [`PULL_TOTAL`] failures too).
pub const CONSUMER_LAG: &str = "rocketmq_client_consumer_lag";
/// Counter: messages sent to the dead-letter queue (labels `group`, `topic`).
pub const DLQ_TOTAL: &str = "rocketmq_client_dlq_total";

/// The `result` label of a successful operation.
pub const RESULT_OK: &str = "ok";
/// The `result` label of a failed operation.
pub const RESULT_FAILED: &str = "failed";

/// The result label of `ok`.
pub fn result_label(ok: bool) -> &'static str {
    if ok { RESULT_OK } else { RESULT_FAILED }
}

/// The `reason` label of a failed send: `timeout`, `no_route`,
/// `connection`, `broker_busy` (SYSTEM_BUSY and the other codes of a broker
/// shedding load), `refused` (any other code the broker answered),
/// `invalid_message` or `other`.
pub fn send_failure_reason(error: &ClientError) -> &'static str {
    let remoting = match error {
        ClientError::SendTimeout { .. } | ClientError::RequestTimeout { .. } => return "timeout",
        ClientError::NoRoute { .. } | ClientError::NoQueueSelected { .. } => return "no_route",
        ClientError::MessageTooLarge { .. } | ClientError::InvalidMessage(_) => {
            return "invalid_message";
        }
        ClientError::Kernel(KernelError::NoRoute { .. } | KernelError::NoBrokerAddress { .. }) => {
            return "no_route";
        }
        ClientError::Kernel(KernelError::Remoting(remoting)) | ClientError::Remoting(remoting) => {
            remoting
        }
        _ => return "other",
    };
    match remoting {
        RemotingError::Timeout { .. } | RemotingError::ConnectTimeout { .. } => "timeout",
        RemotingError::Response { code, .. } if is_busy(*code) => "broker_busy",
        RemotingError::Response { .. } => "refused",
        error if error.is_connection_error() => "connection",
        _ => "other",
    }
}

/// Codes of a broker shedding load rather than refusing the message.
fn is_busy(code: ResponseCode) -> bool {
    [
        ResponseCode::SYSTEM_BUSY,
        ResponseCode::FLOW_CONTROL,
        ResponseCode::SERVICE_NOT_AVAILABLE,
    ]
    .contains(&code)
}

/// Gives the recorder installed now the help text and unit of every metric
/// (exporters such as Prometheus show them).
pub(crate) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        SEND_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from the first attempt of a send to its outcome."
    );
    describe_counter!(SEND_TOTAL, "Sends by outcome; failed ones by reason.");
    describe_counter!(
        SEND_RETRIES_TOTAL,
        "Send attempts repeated after a retriable failure."
    );
    describe_histogram!(
        CONSUME_LATENCY_SECONDS,
        Unit::Seconds,
        "Time a listener took for a batch."
    );
    describe_counter!(CONSUME_TOTAL, "Consumed messages by outcome.");
    describe_histogram!(
        PULL_LATENCY_SECONDS,
        Unit::Seconds,
        "Time from a pull to its answer, the broker's long-poll hold included."
    );
    describe_counter!(PULL_TOTAL, "Pulls by outcome.");
    describe_gauge!(
        CACHED_MESSAGES,
        Unit::Count,
        "Messages pulled and not yet consumed, per queue."
    );
    describe_gauge!(
        CACHED_BYTES,
        Unit::Bytes,
        "Bytes pulled and not yet consumed, per queue."
    );
    describe_gauge!(
        CONSUMER_LAG,
        Unit::Count,
        "Broker max offset minus committed offset, per queue, as of the last answered pull."
    );
    describe_counter!(DLQ_TOTAL, "Messages sent to the dead-letter queue.");
}

/// Series keys built once per topic and kept: recording then allocates
/// nothing. The recorder is looked up on every call, so one installed after
/// the keys were built still gets the figures.
#[derive(Debug)]
struct PerTopic<T> {
    topics: RwLock<HashMap<String, T>>,
}

impl<T> Default for PerTopic<T> {
    fn default() -> Self {
        PerTopic {
            topics: RwLock::default(),
        }
    }
}

impl<T> PerTopic<T> {
    /// Runs `record` with `topic`'s keys, made by `make` the first time.
    fn with(&self, topic: &str, make: impl FnOnce(&str) -> T, record: impl FnOnce(&T)) {
        // No code path panics while holding the lock; the map stays consistent.
        if let Some(keys) = self
            .topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
        {
            return record(keys);
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        record(
            topics
                .entry(topic.to_owned())
                .or_insert_with(|| make(topic)),
        );
    }
}

/// A key of `name` with `labels`, and with a `result` label when `ok` is set.
fn key(name: &'static str, mut labels: Vec<Label>, ok: Option<bool>) -> Key {
    labels.extend(ok.map(|ok| Label::from_static_parts("result", result_label(ok))));
    Key::from_parts(name, labels)
}

/// What the metrics macros would attach: this module, at INFO.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn record_histogram(key: &Key, value: Duration) {
    metrics::with_recorder(|recorder| {
        recorder
            .register_histogram(key, &METADATA)
            .record(value.as_secs_f64());
    });
}

fn increment_counter(key: &Key, by: u64) {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA).increment(by));
}

/// The send series of one producer (labels `topic`, `result`).
#[derive(Debug, Default)]
pub(crate) struct SendSeries {
    topics: PerTopic<TopicSeries>,
}

/// The keys of one topic's send series, indexed by `usize::from(ok)`.
#[derive(Debug)]
struct TopicSeries {
    topic: SharedString,
    latency: [Key; 2],
    /// Successful sends (failed ones have a `reason` label each).
    sent: Key,
    retries: Key,
}

impl SendSeries {
    /// Records the outcome of one send (all its attempts) to `topic`.
    pub(crate) fn record_send(
        &self,
        topic: &str,
        outcome: Result<(), &ClientError>,
        latency: Duration,
    ) {
        self.topics.with(topic, TopicSeries::new, |series| {
            record_histogram(&series.latency[usize::from(outcome.is_ok())], latency);
            series.count(outcome);
        });
    }

    /// Records a oneway send to `topic`: counted once written, and not in
    /// the latency histogram (no answer to wait for).
    pub(crate) fn record_oneway(&self, topic: &str, outcome: Result<(), &ClientError>) {
        self.topics
            .with(topic, TopicSeries::new, |series| series.count(outcome));
    }

    /// Records that a send to `topic` is tried again.
    pub(crate) fn record_retry(&self, topic: &str) {
        self.topics.with(topic, TopicSeries::new, |series| {
            increment_counter(&series.retries, 1);
        });
    }
}

impl TopicSeries {
    fn count(&self, outcome: Result<(), &ClientError>) {
        match outcome {
            Ok(()) => increment_counter(&self.sent, 1),
            // Failures are the slow path: their key is made each time.
            Err(error) => {
                let labels = vec![
                    Label::new("topic", self.topic.clone()),
                    Label::from_static_parts("reason", send_failure_reason(error)),
                ];
                increment_counter(&key(SEND_TOTAL, labels, Some(false)), 1);
            }
        }
    }

    fn new(topic: &str) -> Self {
        let topic: SharedString = SharedString::from_owned(topic.to_owned());
        let key = |name, ok| key(name, vec![Label::new("topic", topic.clone())], ok);
        let both = |name| [key(name, Some(false)), key(name, Some(true))];
        TopicSeries {
            latency: both(SEND_LATENCY_SECONDS),
            sent: key(SEND_TOTAL, Some(true)),
            retries: key(SEND_RETRIES_TOTAL, None),
            topic,
        }
    }
}

/// The listener series of one consumer group (labels `group`, `topic`,
/// `result`).
#[derive(Debug)]
pub(crate) struct ConsumeSeries {
    group: SharedString,
    topics: PerTopic<ConsumeKeys>,
}

/// The keys of one topic's listener series, indexed by `usize::from(ok)`.
#[derive(Debug)]
struct ConsumeKeys {
    latency: [Key; 2],
    total: [Key; 2],
}

impl ConsumeSeries {
    /// The series of `group`.
    pub(crate) fn new(group: &str) -> Self {
        ConsumeSeries {
            group: SharedString::from_owned(group.to_owned()),
            topics: PerTopic::default(),
        }
    }

    /// Records how long a listener call on messages of `topic` took.
    pub(crate) fn record_latency(&self, topic: &str, ok: bool, latency: Duration) {
        self.with_topic(topic, |keys| {
            record_histogram(&keys.latency[usize::from(ok)], latency);
        });
    }

    /// Counts `n` messages of `topic` consumed (`ok`) or failed.
    pub(crate) fn count(&self, topic: &str, ok: bool, n: usize) {
        if n == 0 {
            return;
        }
        self.with_topic(topic, |keys| {
            increment_counter(&keys.total[usize::from(ok)], n as u64);
        });
    }

    fn with_topic(&self, topic: &str, record: impl FnOnce(&ConsumeKeys)) {
        let make = |topic: &str| {
            let topic = SharedString::from_owned(topic.to_owned());
            let key = |name, ok| {
                let labels = vec![
                    Label::new("group", self.group.clone()),
                    Label::new("topic", topic.clone()),
                ];
                key(name, labels, Some(ok))
            };
            let both = |name| [key(name, false), key(name, true)];
            ConsumeKeys {
                latency: both(CONSUME_LATENCY_SECONDS),
                total: both(CONSUME_TOTAL),
            }
        };
        self.topics.with(topic, make, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_without_an_exporter_is_harmless() {
        let series = SendSeries::default();
        series.record_send("t", Ok(()), Duration::from_millis(3));
        let failed = ClientError::Shutdown("producer");
        series.record_send("t", Err(&failed), Duration::from_millis(3));
        series.record_retry("t");
        assert_eq!(result_label(true), "ok");
        assert_eq!(result_label(false), "failed");
    }

    #[test]
    fn failed_sends_have_a_reason_of_a_few_kinds() {
        let refused = |code| {
            ClientError::Remoting(RemotingError::Response {
                addr: "b:10911".into(),
                code,
                remark: String::new(),
            })
        };
        let timeout = ClientError::SendTimeout {
            topic: "t".into(),
            after: Duration::from_secs(3),
            attempts: 3,
        };
        let reasons = [
            (timeout, "timeout"),
            (refused(ResponseCode::SYSTEM_BUSY), "broker_busy"),
            (refused(ResponseCode::MESSAGE_ILLEGAL), "refused"),
            (
                ClientError::Kernel(KernelError::NoRoute { topic: "t".into() }),
                "no_route",
            ),
            (
                ClientError::Kernel(KernelError::Remoting(RemotingError::ConnectionClosed {
                    addr: "b:10911".into(),
                    reason: "reset".into(),
                })),
                "connection",
            ),
            (
                ClientError::InvalidMessage("empty".into()),
                "invalid_message",
            ),
            (ClientError::Shutdown("producer"), "other"),
        ];
        for (error, reason) in reasons {
            assert_eq!(send_failure_reason(&error), reason, "{error}");
        }
    }
}
