//! `bench consume --pop N`: a `SimpleConsumer` draining a topic filled
//! beforehand, with `N` tasks receiving up to 32 messages at a time and
//! acknowledging each answer in one batch (BATCH_ACK_MESSAGE), or one by one
//! with `--ack-each`. Timed like the push consumer run, from the consumer's
//! start until every message was received and acknowledged; latency is
//! store time to receipt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocketmq_client::SimpleConsumer;
use rocketmq_client::consumer::{ConsumeFromWhere, MessageSelector};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinSet;

use crate::consume::{ConsumePlan, client_config, fill};
use crate::report::{Report, cpu_start, latency_histogram, record};

/// How long received messages stay hidden: far longer than a run.
const INVISIBLE: Duration = Duration::from_secs(300);

/// Fills the topic, then times `receivers` tasks draining it.
pub(crate) async fn run(
    plan: ConsumePlan,
    receivers: usize,
    ack_each: bool,
) -> Result<Report, Box<dyn std::error::Error>> {
    fill(&plan).await?;
    let cpu = cpu_start();
    let started = Instant::now();
    let consumer = SimpleConsumer::builder(plan.group.as_str(), client_config(&plan, "consumer"))
        .subscribe(plan.topic.as_str(), MessageSelector::all())
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(Duration::from_secs(1))
        .build()
        .await?;
    let consumer = Arc::new(consumer);
    let consumed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let target = plan.messages;
    let mut tasks = JoinSet::new();
    for _ in 0..receivers.max(1) {
        let (consumer, consumed, latency, done) = (
            consumer.clone(),
            consumed.clone(),
            latency.clone(),
            done.clone(),
        );
        tasks.spawn(async move {
            while consumed.load(Ordering::Relaxed) < target {
                let received = consumer.receive(32, INVISIBLE).await?;
                if received.is_empty() {
                    continue;
                }
                let now = SystemTime::now();
                {
                    let mut histogram = latency.lock().await;
                    for message in &received {
                        let stored = message.message().store_timestamp.max(0).unsigned_abs();
                        let stored = UNIX_EPOCH + Duration::from_millis(stored);
                        record(
                            &mut histogram,
                            now.duration_since(stored).unwrap_or_default(),
                        );
                    }
                }
                if ack_each {
                    for message in &received {
                        consumer.ack(message).await?;
                    }
                } else {
                    consumer.ack_batch(&received).await?;
                }
                let before = consumed.fetch_add(received.len() as u64, Ordering::Relaxed);
                if before + received.len() as u64 >= target {
                    done.notify_one();
                }
            }
            Ok::<_, rocketmq_client::ClientError>(())
        });
    }
    // Timed until the last message is acknowledged, not until every
    // receiver's last long poll has run out.
    let outcome = tokio::time::timeout(Duration::from_secs(600), async {
        tokio::select! {
            () = done.notified() => Ok(()),
            failed = async {
                while let Some(joined) = tasks.join_next().await {
                    joined??;
                }
                Ok::<_, Box<dyn std::error::Error>>(())
            } => failed,
        }
    })
    .await;
    let elapsed = started.elapsed();
    let cpu = cpu.elapsed();
    tasks.shutdown().await;
    if let Ok(consumer) = Arc::try_unwrap(consumer) {
        consumer.shutdown().await;
    }
    match outcome {
        Ok(result) => result?,
        Err(_) => {
            return Err(format!(
                "received {} of {target} within 600 s",
                consumed.load(Ordering::Relaxed)
            )
            .into());
        }
    }
    let latency = latency.lock().await.clone();
    let ack = if ack_each { "ack each" } else { "batch ack" };
    Ok(Report {
        label: format!("pop {receivers}x32, {ack} ({})", plan.serialize_type.name()).to_lowercase(),
        messages: consumed.load(Ordering::Relaxed),
        failures: 0,
        size: plan.body.len(),
        concurrency: receivers,
        elapsed,
        latency,
        cpu,
    })
}
