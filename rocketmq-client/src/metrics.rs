//! Client metrics through the [`metrics`] facade: the application installs an
//! exporter (Prometheus, StatsD, ...) and these names appear in it. Without an
//! exporter every call is a no-op.
//!
//! Names are stable; labels are `topic` and `result` (`"ok"` or `"failed"`),
//! plus `group` and `queue_id` on the consumer side.

use std::time::Duration;

use metrics::Label;

/// Histogram: time from the first attempt of a send to its outcome, in
/// seconds (labels `topic`, `result`).
pub const SEND_LATENCY_SECONDS: &str = "rocketmq_client_send_latency_seconds";
/// Counter: sends by outcome (labels `topic`, `result`).
pub const SEND_TOTAL: &str = "rocketmq_client_send_total";
/// Counter: send attempts repeated after a retriable failure (label `topic`).
pub const SEND_RETRIES_TOTAL: &str = "rocketmq_client_send_retries_total";
/// Histogram: time a listener took for a batch, in seconds (labels `group`,
/// `topic`, `result`).
pub const CONSUME_LATENCY_SECONDS: &str = "rocketmq_client_consume_latency_seconds";
/// Counter: consumed messages by outcome (labels `group`, `topic`, `result`).
pub const CONSUME_TOTAL: &str = "rocketmq_client_consume_total";
/// Histogram: pull round trip, in seconds (labels `group`, `topic`).
pub const PULL_LATENCY_SECONDS: &str = "rocketmq_client_pull_latency_seconds";
/// Gauge: messages cached in a process queue (labels `group`, `topic`, `queue_id`).
pub const CACHED_MESSAGES: &str = "rocketmq_client_cached_messages";
/// Gauge: bytes cached in a process queue (labels `group`, `topic`, `queue_id`).
pub const CACHED_BYTES: &str = "rocketmq_client_cached_bytes";
/// Gauge: broker max offset minus committed offset (labels `group`, `topic`, `queue_id`).
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

/// Records the outcome of one send (all its attempts) to `topic`.
pub fn record_send(topic: &str, ok: bool, latency: Duration) {
    let labels = || {
        vec![
            Label::new("topic", topic.to_owned()),
            Label::from_static_parts("result", result_label(ok)),
        ]
    };
    metrics::histogram!(SEND_LATENCY_SECONDS, labels()).record(latency.as_secs_f64());
    metrics::counter!(SEND_TOTAL, labels()).increment(1);
}

/// Records that a send to `topic` is tried again.
pub fn record_send_retry(topic: &str) {
    metrics::counter!(SEND_RETRIES_TOTAL, "topic" => topic.to_owned()).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_without_an_exporter_is_harmless() {
        record_send("t", true, Duration::from_millis(3));
        record_send("t", false, Duration::from_millis(3));
        record_send_retry("t");
        assert_eq!(result_label(true), "ok");
        assert_eq!(result_label(false), "failed");
    }
}
