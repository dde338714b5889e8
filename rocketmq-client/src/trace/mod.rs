//! Message traces (Java's `enableMsgTrace`): a producer or push consumer
//! with tracing on records each message it sent, consumed or ended a
//! transaction of, and sends the records, a few at a time, to the trace
//! topic (`RMQ_SYS_TRACE_TOPIC` unless another is named) through a producer
//! of its own. The RocketMQ dashboard shows a message's path from them.
//!
//! Tracing is best effort, as in Java: records wait in a bounded buffer
//! (2,048; more are dropped and counted) and go out when 20 are waiting or
//! 5 s after the last flush; a trace message that cannot be sent is
//! logged and dropped. A client's shutdown sends what is left.

mod batch;
mod hooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rocketmq_model::Message;
use rocketmq_model::body::trace::TraceRecord;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub(crate) use hooks::{EndTransactionTrace, TraceConsumeHook, TraceSendHook};

use self::batch::{TraceMessage, Traced, trace_messages};
use crate::config::{ClientConfig, GROUP_MAX_LEN};
use crate::error::Result;
use crate::producer::Producer;

pub(crate) use rocketmq_model::body::trace::TRACE_TOPIC;

/// Records waiting to be sent, at most (Java's 2,048).
const BUFFERED: usize = 2048;
/// Records sent together, at most (Java's `batchNum`, capped at 20).
const BATCH: usize = batch::MAX_RECORDS;
/// Waiting records go out this long after the last flush at the latest.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// The budget of one trace message's send (Java's 5 s).
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often drops for a full buffer are reported at most.
const DROPS_REPORTED_EVERY: Duration = Duration::from_secs(60);
/// Prefix of the trace producers' groups (Java's `GROUP_NAME_PREFIX`).
const GROUP_PREFIX: &str = "_INNER_TRACE_PRODUCER";

/// Which side of a client a tracer records (in its producer's group name).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    Produce,
    Consume,
}

/// A client's trace records on their way to the trace topic: the buffer
/// and the task that sends it. The task ends at [`shutdown`](Self::shutdown),
/// or once every handle is gone.
#[derive(Debug)]
pub(crate) struct Tracer {
    /// Where the records go.
    topic: String,
    records: mpsc::Sender<Traced>,
    stop: CancellationToken,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Records dropped since the last report of drops.
    dropped: AtomicU64,
    /// When drops were last reported.
    reported: std::sync::Mutex<Option<Instant>>,
}

impl Tracer {
    /// Starts the trace producer (with `config`, so the host's nameservers,
    /// transport and credentials, but no namespace) and the sending task.
    ///
    /// Boxed: the trace producer's build is a producer's build, which may
    /// start a tracer, and the two futures may not contain each other.
    pub(crate) fn start<'a>(
        config: &'a ClientConfig,
        host_group: &'a str,
        side: Side,
        topic: String,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<Tracer>>> + Send + 'a>> {
        Box::pin(async move {
            let mut config = config.clone();
            config.namespace = Some(String::new());
            let producer = Producer::builder()
                .client_config(config)
                .producer_group(trace_group(host_group, side))
                .send_msg_timeout(SEND_TIMEOUT)
                .build()
                .await?;
            let (records, receiver) = mpsc::channel(BUFFERED);
            let stop = CancellationToken::new();
            let task = tokio::spawn(send_loop(producer, topic.clone(), receiver, stop.clone()));
            Ok(Arc::new(Tracer {
                topic,
                records,
                stop,
                task: std::sync::Mutex::new(Some(task)),
                dropped: AtomicU64::new(0),
                reported: std::sync::Mutex::new(None),
            }))
        })
    }

    /// Queues `record`, about `topic`; dropped (and counted) when the
    /// buffer is full.
    pub(crate) fn record(&self, topic: &str, record: TraceRecord) {
        let traced = Traced {
            topic: topic.to_owned(),
            record,
        };
        match self.records.try_send(traced) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.report_drops();
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("tracing has stopped; a trace record is dropped");
            }
        }
    }

    /// Reports the records dropped for a full buffer, at most once a
    /// minute, with how many since the last report.
    fn report_drops(&self) {
        let now = Instant::now();
        let mut reported = self
            .reported
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if reported.is_some_and(|at| now.saturating_duration_since(at) < DROPS_REPORTED_EVERY) {
            return;
        }
        *reported = Some(now);
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        tracing::warn!(dropped, "trace buffer full; trace records dropped");
    }

    /// Whether `topic` starts with the trace topic's name: Java's hooks do
    /// not trace messages sent there.
    pub(crate) fn is_trace_topic(&self, topic: &str) -> bool {
        topic.starts_with(&self.topic)
    }

    /// Sends what is waiting, stops the task and shuts its producer down.
    pub(crate) async fn shutdown(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(err) = task.await {
                if err.is_panic() {
                    tracing::error!("the trace task panicked");
                }
            }
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // Not shut down: the task sends what it has and stops.
        self.stop.cancel();
    }
}

/// The trace producer's group: Java's `_INNER_TRACE_PRODUCER-<group>-<side>-<n>`,
/// the host group cut short when the name would pass 120 characters.
fn trace_group(host_group: &str, side: Side) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let side = match side {
        Side::Produce => "PRODUCE",
        Side::Consume => "CONSUME",
    };
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tail = format!("-{side}-{n}");
    let room = GROUP_MAX_LEN.saturating_sub(GROUP_PREFIX.len() + 1 + tail.len());
    // Group names are ASCII (checked at build), so any cut is a boundary.
    let host = host_group.get(..host_group.len().min(room)).unwrap_or("");
    format!("{GROUP_PREFIX}-{host}{tail}")
}

/// Gathers records and sends them: when [`BATCH`] are waiting, when
/// [`FLUSH_EVERY`] has passed since the last flush, and at the end.
async fn send_loop(
    producer: Producer,
    topic: String,
    mut receiver: mpsc::Receiver<Traced>,
    stop: CancellationToken,
) {
    let mut waiting: Vec<Traced> = Vec::new();
    let mut last_flush = Instant::now();
    loop {
        let next_flush = last_flush + FLUSH_EVERY;
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            received = receiver.recv() => match received {
                Some(traced) => {
                    waiting.push(traced);
                    // What else is there goes in the same flush, its
                    // messages sent together: a busy client's records go
                    // out a buffer at a time, not 20 a round trip.
                    while waiting.len() < BUFFERED {
                        match receiver.try_recv() {
                            Ok(traced) => waiting.push(traced),
                            Err(_) => break,
                        }
                    }
                }
                None => break,
            },
            () = tokio::time::sleep_until(next_flush), if !waiting.is_empty() => {
                flush(&producer, &topic, std::mem::take(&mut waiting)).await;
                last_flush = Instant::now();
            }
        }
        if waiting.len() >= BATCH {
            flush(&producer, &topic, std::mem::take(&mut waiting)).await;
            last_flush = Instant::now();
        }
    }
    while let Ok(traced) = receiver.try_recv() {
        waiting.push(traced);
    }
    flush(&producer, &topic, waiting).await;
    producer.shutdown().await;
}

/// Sends `records` to `topic`, their trace messages all at once (as
/// Java's asynchronous sends), so that a full buffer flushed at shutdown
/// takes one send's time, not one per message; a message that fails is
/// logged and dropped.
async fn flush(producer: &Producer, topic: &str, records: Vec<Traced>) {
    let sends = trace_messages(records)
        .into_iter()
        .map(|message| send_one(producer, topic, message));
    futures::future::join_all(sends).await;
}

/// Sends one trace message; a failure is logged and the message dropped.
async fn send_one(producer: &Producer, topic: &str, message: TraceMessage) {
    let built = Message::builder(topic)
        .body(message.body)
        .keys(message.keys)
        .build();
    let sent = match built {
        Ok(msg) => producer.send(msg).await.map(drop),
        Err(err) => Err(err.into()),
    };
    if let Err(error) = sent {
        tracing::warn!(%topic, %error, "sending trace data failed; it is dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drops_for_a_full_buffer_are_reported_once_a_minute() {
        let (records, _receiver) = mpsc::channel(1);
        let tracer = Tracer {
            topic: TRACE_TOPIC.to_owned(),
            records,
            stop: CancellationToken::new(),
            task: std::sync::Mutex::new(None),
            dropped: AtomicU64::new(0),
            reported: std::sync::Mutex::new(None),
        };
        let record = || {
            TraceRecord::decode_all(
                "SubAfter\u{1}R\u{1}M\u{1}1\u{1}true\u{1}null\u{1}0\u{1}1\u{1}g\u{2}",
            )
            .unwrap()
            .remove(0)
        };
        tracer.record("T", record());
        // The buffer is full: the first drop is reported at once, the next
        // ones wait for the minute to pass.
        for _ in 0..3 {
            tracer.record("T", record());
        }
        assert_eq!(tracer.dropped.load(Ordering::Relaxed), 2);
        tokio::time::advance(DROPS_REPORTED_EVERY).await;
        tracer.record("T", record());
        assert_eq!(
            tracer.dropped.load(Ordering::Relaxed),
            0,
            "reported with a count"
        );
    }

    #[test]
    fn trace_groups_fit_the_group_rules() {
        let short = trace_group("pg", Side::Produce);
        assert!(
            short.starts_with("_INNER_TRACE_PRODUCER-pg-PRODUCE-"),
            "{short}"
        );
        let long = trace_group(&"g".repeat(120), Side::Consume);
        assert!(long.len() <= GROUP_MAX_LEN, "{}", long.len());
        assert!(crate::config::check_group("producer", &long).is_ok());
    }
}
