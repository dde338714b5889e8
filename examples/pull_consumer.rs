//! Pull consumer (Java's lite pull consumer): you ask for messages with
//! `poll`, commit what you processed, and can move a queue back with
//! `seek_to_begin` to read it again.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example pull_consumer
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example pull_consumer
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless both passes read every message.

use std::process::ExitCode;
use std::time::Duration;

use rocketmq_client::consumer::ConsumeFromWhere;
use rocketmq_client::{Producer, PullConsumer};
use rocketmq_examples::{BoxError, Cluster, Tally, run_example, unique_name};
use rocketmq_model::Message;
use tokio::time::Instant;

const MESSAGES: usize = 20;
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    run_example("pull_consumer", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("PullTopic");
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("pull-producer")
        .build()
        .await?;
    for i in 0..MESSAGES {
        let msg = Message::builder(&topic)
            .body(format!("record {i}"))
            .build()?;
        producer.send(msg).await?;
    }
    producer.shutdown().await;
    println!("sent {MESSAGES} messages to {topic}");

    // Manual commits: offsets advance only when we say so.
    let consumer = PullConsumer::builder("pull-consumer", cluster.client_config())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .auto_commit(false)
        .build()
        .await?;
    let outcome = read_twice(&consumer, &cluster).await;

    let report = consumer.shutdown().await;
    cluster.shutdown().await;
    println!(
        "committed offsets at shutdown: {}",
        report.offsets_committed.values().sum::<i64>()
    );
    outcome
}

/// Reads everything, commits, seeks every queue back to its beginning and
/// reads everything again.
async fn read_twice(consumer: &PullConsumer, cluster: &Cluster) -> Result<(), BoxError> {
    let first = poll_all(consumer, cluster.patience()).await?;
    consumer.commit_sync().await?;
    let committed: i64 = consumer.committed_offsets().values().sum();
    println!(
        "first pass: {} messages from {} queues; committed offsets sum to {committed}",
        first.distinct(),
        consumer.assignment().len()
    );

    for mq in consumer.assignment() {
        consumer.seek_to_begin(&mq).await?;
    }
    let second = poll_all(consumer, cluster.patience()).await?;
    consumer.commit_sync().await?;
    println!("after seek_to_begin: {} messages again", second.distinct());
    if first.distinct() != MESSAGES || second.bodies() != first.bodies() {
        return Err(format!(
            "read {} then {} of {MESSAGES} messages",
            first.distinct(),
            second.distinct()
        )
        .into());
    }
    Ok(())
}

/// Polls until every message was read or `limit` passes.
async fn poll_all(consumer: &PullConsumer, limit: Duration) -> Result<Tally, BoxError> {
    let deadline = Instant::now() + limit;
    let tally = Tally::new();
    while tally.distinct() < MESSAGES && Instant::now() < deadline {
        let msgs = consumer.poll(POLL_TIMEOUT).await?;
        if let Some(first) = msgs.first() {
            println!(
                "polled {} messages from queue {}, offsets {}..={}",
                msgs.len(),
                first.queue_id,
                first.queue_offset,
                msgs.last().map_or(first.queue_offset, |m| m.queue_offset)
            );
        }
        for msg in &msgs {
            tally.record(msg);
        }
    }
    Ok(tally)
}
