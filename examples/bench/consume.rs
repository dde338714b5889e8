//! `bench consume`: a push consumer draining a topic. The topic is first filled
//! with `messages` messages (untimed, batch sends); then a consumer of a fresh
//! group starts from the first offset, and the run is timed until it has
//! consumed them all. Latency is store time to listener call, so it includes the
//! backlog wait: read throughput and CPU time per message first.
//! With `--push-pop` the group is first switched to pop mode on the topic's
//! brokers and the consumer leaves rebalancing to them: it pops every
//! broker's queues and acknowledges each message once consumed (those
//! consumed while an acknowledgement is on its way together, in a batch).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, MessageRequestMode,
};
use rocketmq_client::{ClientConfig, Producer, PushConsumer};
use rocketmq_model::message::{Message, MessageExt};
use rocketmq_remoting::SerializeType;
use tokio::sync::{Mutex, Notify};

use crate::report::{Report, cpu_start, latency_histogram, record};

/// What to consume.
pub(crate) struct ConsumePlan {
    pub(crate) namesrv: String,
    pub(crate) topic: String,
    pub(crate) group: String,
    pub(crate) messages: u64,
    /// The body of every message.
    pub(crate) body: Bytes,
    pub(crate) serialize_type: SerializeType,
    /// Push consumer in pop mode (`--push-pop`).
    pub(crate) push_pop: bool,
}

pub(crate) fn client_config(plan: &ConsumePlan, role: &str) -> ClientConfig {
    let mut config = ClientConfig::new(plan.namesrv.split(';'));
    config.serialize_type = plan.serialize_type;
    config.instance_name = format!("bench-{role}-{}", std::process::id());
    config
}

/// Fills the topic, then times a consumer draining it.
pub(crate) async fn run(plan: ConsumePlan) -> Result<Report, Box<dyn std::error::Error>> {
    fill(&plan).await?;
    let consumed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let target = plan.messages;
    let listener = {
        let (consumed, done, latency) = (consumed.clone(), done.clone(), latency.clone());
        move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let (consumed, done, latency) = (consumed.clone(), done.clone(), latency.clone());
            async move {
                let now = SystemTime::now();
                let mut histogram = latency.lock().await;
                for msg in &msgs {
                    let stored = UNIX_EPOCH
                        + Duration::from_millis(msg.store_timestamp.max(0).unsigned_abs());
                    record(
                        &mut histogram,
                        now.duration_since(stored).unwrap_or_default(),
                    );
                }
                drop(histogram);
                let before = consumed.fetch_add(msgs.len() as u64, Ordering::Relaxed);
                if before + msgs.len() as u64 >= target {
                    done.notify_one();
                }
                ConcurrentResult::Success
            }
        }
    };
    let cpu = cpu_start();
    let started = Instant::now();
    let consumer = PushConsumer::builder(plan.group.as_str(), client_config(&plan, "consumer"))
        .subscribe(plan.topic.as_str(), "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .client_rebalance(!plan.push_pop)
        .consume_concurrently(listener)
        .build()
        .await?;
    let finished = tokio::time::timeout(Duration::from_secs(600), done.notified()).await;
    let elapsed = started.elapsed();
    let cpu = cpu.elapsed();
    consumer.shutdown().await;
    if finished.is_err() {
        return Err(format!(
            "consumed {} of {target} within 600 s",
            consumed.load(Ordering::Relaxed)
        )
        .into());
    }
    let latency = latency.lock().await.clone();
    Ok(Report {
        label: format!(
            "consume{} ({})",
            if plan.push_pop { ", pop mode" } else { "" },
            plan.serialize_type.name()
        )
        .to_lowercase(),
        messages: consumed.load(Ordering::Relaxed),
        failures: 0,
        size: plan.body.len(),
        concurrency: 0,
        elapsed,
        latency,
        cpu,
    })
}

/// Sends `messages` messages with batch sends (not measured).
pub(crate) async fn fill(plan: &ConsumePlan) -> Result<(), Box<dyn std::error::Error>> {
    let producer = Producer::builder()
        .client_config(client_config(plan, "filler"))
        .producer_group("bench_filler")
        .build()
        .await?;
    let message = Message::builder(plan.topic.as_str())
        .body(plan.body.clone())
        .build()?;
    // Batches of up to 64 messages, and under the 4 MiB message limit.
    let per_batch = u64::try_from((3 << 20) / plan.body.len().max(1))?.clamp(1, 64);
    let mut left = plan.messages;
    while left > 0 {
        let n = left.min(per_batch);
        producer
            .send_batch(vec![message.clone(); usize::try_from(n)?])
            .await?;
        left -= n;
    }
    if plan.push_pop {
        // Before the consumer starts, so that its first rebalance pops.
        (producer.admin())
            .set_message_request_mode(&plan.topic, &plan.group, MessageRequestMode::Pop, 0)
            .await?;
    }
    producer.shutdown().await;
    Ok(())
}
