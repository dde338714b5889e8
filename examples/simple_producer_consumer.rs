//! Producer and consumer in one program: a push consumer receives messages
//! while a producer is still sending them, and prints each one with its
//! latency from send to receipt.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example simple_producer_consumer
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example simple_producer_consumer
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless every message arrives.

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{
    BoxError, Cluster, Tally, body_text, run_example, unique_name, wait_until,
};
use rocketmq_model::{Message, MessageExt};

const MESSAGES: usize = 10;
const SEND_EVERY: Duration = Duration::from_millis(100);

#[tokio::main]
async fn main() -> ExitCode {
    run_example("simple_producer_consumer", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("ProducerConsumerTopic");
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("producer-consumer-producer")
        .build()
        .await?;
    // The first message creates the topic, so the consumer finds its route.
    producer.send(message(&topic, 0)?).await?;

    let received = Tally::new();
    let tally = received.clone();
    let consumer = PushConsumer::builder("producer-consumer-consumer", cluster.client_config())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let tally = tally.clone();
            async move {
                for msg in &msgs {
                    let latency = now_millis() - msg.born_timestamp;
                    println!("received {:<12} after {latency:>4} ms", body_text(msg));
                    tally.record(msg);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;

    let mut sent = 1;
    for i in 1..MESSAGES {
        tokio::time::sleep(SEND_EVERY).await;
        match producer.send(message(&topic, i)?).await {
            Ok(_) => sent += 1,
            Err(err) => eprintln!("send {i} failed: {err}"),
        }
    }
    let all_arrived = wait_until(cluster.patience(), || received.distinct() >= sent).await;

    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;
    println!(
        "sent {sent}, received {} (duplicates {})",
        received.distinct(),
        received.duplicates()
    );
    if sent < MESSAGES || !all_arrived {
        return Err(format!(
            "{sent} of {MESSAGES} sent, {} received",
            received.distinct()
        )
        .into());
    }
    Ok(())
}

fn message(topic: &str, i: usize) -> Result<Message, BoxError> {
    Ok(Message::builder(topic)
        .body(format!("message {i}"))
        .tags("demo")
        .build()?)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
