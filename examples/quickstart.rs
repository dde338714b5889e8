//! Quickstart: send 1,000 messages with a producer, consume them with a push
//! consumer, and print a summary (sent, received, duplicates, elapsed).
//!
//! ```sh
//! cargo run -p rocketmq-examples --example quickstart
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example quickstart
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits 0 only when all 1,000 messages arrived.

use std::process::ExitCode;
use std::time::Instant;

use futures::future::join_all;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{BoxError, Cluster, Tally, run_example, unique_name, wait_until};
use rocketmq_model::{Message, MessageExt};

const MESSAGES: usize = 1_000;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("quickstart", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("QuickstartTopic");
    let started = Instant::now();

    // Produce: asynchronous sends, all in flight at once, then their results.
    // (The first send creates the topic on the broker, through TBW102.)
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("quickstart-producer")
        .build()
        .await?;
    let mut handles = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        let msg = Message::builder(&topic)
            .body(format!("message {i}"))
            .tags("quickstart")
            .key(format!("quickstart-{i}"))
            .build()?;
        handles.push(producer.send_async(msg).await?);
    }
    let results = join_all(handles).await;
    let sent = results.iter().filter(|r| r.is_ok()).count();
    if let Some(Err(err)) = results.iter().find(|r| r.is_err()) {
        eprintln!("{} sends failed, the first with: {err}", MESSAGES - sent);
    }
    println!("sent {sent} messages to {topic} in {:?}", started.elapsed());

    // Consume: a push consumer of a new group, from the first offset.
    let received = Tally::new();
    let tally = received.clone();
    let consumer = PushConsumer::builder("quickstart-consumer", cluster.client_config())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let tally = tally.clone();
            async move {
                for msg in &msgs {
                    tally.record(msg);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;
    let all_arrived = wait_until(cluster.patience(), || received.distinct() >= sent).await;

    let report = consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
    println!(
        "sent {sent}, received {}, duplicates {}, elapsed {:?} (consumer shutdown clean: {})",
        received.distinct(),
        received.duplicates(),
        started.elapsed(),
        report.is_clean()
    );
    if sent < MESSAGES || !all_arrived {
        return Err(format!(
            "{} of {MESSAGES} messages were sent and {} received",
            sent,
            received.distinct()
        )
        .into());
    }
    Ok(())
}
