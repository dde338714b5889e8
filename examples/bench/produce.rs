//! `bench produce`: the client's `Producer` in each send mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rocketmq_client::{ClientConfig, Producer};
use rocketmq_model::message::Message;
use rocketmq_remoting::SerializeType;
use tokio::sync::Mutex;

use crate::report::{Report, cpu_start, latency_histogram, record};

/// How messages are sent.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Mode {
    /// `send`: each of C tasks waits for its answer before the next send.
    Sync,
    /// `send_async`: up to C sends in flight, the caller waits for a slot.
    Async,
    /// `send_oneway`: C tasks, no answer awaited beyond the write.
    Oneway,
    /// `send_batch`: C tasks sending batches of `batch_size` messages.
    Batch,
}

/// What to send.
pub(crate) struct ProducePlan {
    pub(crate) namesrv: String,
    pub(crate) topic: String,
    pub(crate) messages: u64,
    /// The body of every message.
    pub(crate) body: Bytes,
    pub(crate) concurrency: usize,
    pub(crate) mode: Mode,
    pub(crate) batch_size: usize,
    pub(crate) serialize_type: SerializeType,
    /// Run the senders as futures of one task instead of a task each.
    pub(crate) one_task: bool,
    /// Batch sends automatically.
    pub(crate) auto_batch: bool,
}

/// Counters shared by the sending tasks.
struct Tally {
    next: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

impl Tally {
    /// Claims `n` messages to send; `None` when the run is complete.
    fn claim(&self, n: u64, total: u64) -> Option<u64> {
        let start = self.next.fetch_add(n, Ordering::Relaxed);
        (start < total).then(|| n.min(total - start))
    }
}

/// Runs the produce benchmark and reports.
pub(crate) async fn run(plan: ProducePlan) -> Result<Report, Box<dyn std::error::Error>> {
    let mut config = ClientConfig::new(plan.namesrv.split(';'));
    config.serialize_type = plan.serialize_type;
    config.instance_name = format!("bench-{}", std::process::id());
    let producer = Producer::builder()
        .client_config(config)
        .producer_group("bench_producer")
        .max_in_flight_async_sends(plan.concurrency.max(1))
        .auto_batch(plan.auto_batch)
        .build()
        .await?;
    let producer = Arc::new(producer);
    let body = plan.body.clone();
    let message = Message::builder(plan.topic.as_str()).body(body).build()?;
    // Warm up: route lookup, connection, topic creation.
    producer.send(message.clone()).await?;

    let tally = Arc::new(Tally {
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latency: Mutex::new(latency_histogram()),
    });
    let cpu = cpu_start();
    let started = Instant::now();
    match plan.mode {
        // A task of its own, as the sync senders are: run from the main
        // thread, each freed slot would wake that thread from another.
        Mode::Async => {
            let (producer, message, tally) = (producer.clone(), message.clone(), tally.clone());
            let total = plan.messages;
            tokio::spawn(async move { send_async(&producer, &message, &tally, total).await })
                .await?;
        }
        mode if plan.one_task => {
            let (producer, message, tally) = (producer.clone(), message.clone(), tally.clone());
            let (total, batch) = (plan.messages, plan.batch_size.max(1));
            let senders = plan.concurrency.max(1);
            tokio::spawn(async move {
                let loops = (0..senders)
                    .map(|_| send_loop(&producer, &message, &tally, total, mode, batch));
                futures::future::join_all(loops).await;
            })
            .await?;
        }
        mode => {
            let tasks: Vec<_> = (0..plan.concurrency.max(1))
                .map(|_| {
                    let (producer, message, tally) =
                        (producer.clone(), message.clone(), tally.clone());
                    let (total, batch) = (plan.messages, plan.batch_size.max(1));
                    tokio::spawn(async move {
                        send_loop(&producer, &message, &tally, total, mode, batch).await
                    })
                })
                .collect();
            for task in tasks {
                task.await?;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu = cpu.elapsed();
    let latency = tally.latency.lock().await.clone();
    if let Ok(producer) = Arc::try_unwrap(producer) {
        producer.shutdown().await;
    }
    Ok(Report {
        label: format!("produce {:?} ({})", plan.mode, plan.serialize_type.name()).to_lowercase(),
        messages: tally.ok.load(Ordering::Relaxed),
        failures: tally.failed.load(Ordering::Relaxed),
        size: plan.body.len(),
        concurrency: plan.concurrency,
        elapsed,
        latency,
        cpu,
    })
}

async fn send_loop(
    producer: &Producer,
    message: &Message,
    tally: &Tally,
    total: u64,
    mode: Mode,
    batch: usize,
) {
    let mut local = latency_histogram();
    let claim = if matches!(mode, Mode::Batch) {
        batch as u64
    } else {
        1
    };
    while let Some(n) = tally.claim(claim, total) {
        let sent_at = Instant::now();
        let result = match mode {
            Mode::Sync | Mode::Async => producer.send(message.clone()).await.map(drop),
            Mode::Oneway => producer.send_oneway(message.clone()).await,
            Mode::Batch => {
                let count = usize::try_from(n).unwrap_or(batch);
                producer
                    .send_batch(vec![message.clone(); count])
                    .await
                    .map(drop)
            }
        };
        record(&mut local, sent_at.elapsed());
        let counter = if result.is_ok() {
            &tally.ok
        } else {
            &tally.failed
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
    let _ = tally.latency.lock().await.add(&local);
}

async fn send_async(producer: &Arc<Producer>, message: &Message, tally: &Arc<Tally>, total: u64) {
    let (done, mut finished) = tokio::sync::mpsc::channel(1024);
    let collector = {
        let tally = tally.clone();
        tokio::spawn(async move {
            let mut local = latency_histogram();
            while let Some((sent_at, handle)) = finished.recv().await {
                let result: rocketmq_client::Result<_> = handle.await;
                record(&mut local, Instant::elapsed(&sent_at));
                let counter = if result.is_ok() {
                    &tally.ok
                } else {
                    &tally.failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tally.latency.lock().await.add(&local);
        })
    };
    while tally.claim(1, total).is_some() {
        let sent_at = Instant::now();
        match producer.send_async(message.clone()).await {
            Ok(handle) => {
                if done.send((sent_at, handle)).await.is_err() {
                    break;
                }
            }
            Err(_) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    drop(done);
    let _ = collector.await;
}
