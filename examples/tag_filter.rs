//! Tag filter: a push consumer subscribed with a tag expression
//! (`TagA || TagC`) gets only the messages with those tags. It sends a few
//! messages of tags A, B and C first, so it has something to consume.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example tag_filter
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example tag_filter
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless exactly the TagA and TagC messages
//! arrive.

use std::process::ExitCode;
use std::time::Duration;

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{
    BoxError, Cluster, Tally, body_text, run_example, unique_name, wait_until,
};
use rocketmq_model::{Message, MessageExt};

const TAGS: [&str; 3] = ["TagA", "TagB", "TagC"];
const SUBSCRIPTION: &str = "TagA || TagC";
const MESSAGES: usize = 12;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("tag_filter", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("TagFilterTopic");
    let expected = produce(&cluster, &topic).await?;

    let received = Tally::new();
    let tally = received.clone();
    let consumer = PushConsumer::builder("tag-filter", cluster.client_config())
        .subscribe(&topic, SUBSCRIPTION)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let tally = tally.clone();
            async move {
                for msg in &msgs {
                    println!(
                        "received {} [{}] from queue {} at offset {}",
                        body_text(msg),
                        msg.tags().unwrap_or_default(),
                        msg.queue_id,
                        msg.queue_offset
                    );
                    tally.record(msg);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;
    let arrived = wait_until(cluster.patience(), || received.contains_all(&expected)).await;
    // A moment more, in case a message that should be filtered out comes.
    tokio::time::sleep(Duration::from_millis(500)).await;

    consumer.shutdown().await;
    cluster.shutdown().await;
    println!(
        "subscribed to {SUBSCRIPTION}: {} of {} matching messages received, {} messages in all",
        expected.iter().filter(|b| received.contains(b)).count(),
        expected.len(),
        received.distinct()
    );
    if !arrived || received.distinct() != expected.len() {
        return Err(format!("expected exactly {expected:?}, got {:?}", received.bodies()).into());
    }
    Ok(())
}

/// Sends messages with tags A, B and C in turn; answers the bodies the
/// subscription should receive.
async fn produce(cluster: &Cluster, topic: &str) -> Result<Vec<String>, BoxError> {
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("tag-filter-producer")
        .build()
        .await?;
    let mut expected = Vec::new();
    let mut outcome = Ok(());
    for i in 0..MESSAGES {
        let tag = TAGS[i % TAGS.len()];
        let body = format!("{tag} message {i}");
        let msg = Message::builder(topic)
            .body(body.clone())
            .tags(tag)
            .build()?;
        if let Err(err) = producer.send(msg).await {
            outcome = Err(err);
            break;
        }
        if tag != "TagB" {
            expected.push(body);
        }
    }
    producer.shutdown().await;
    outcome?;
    println!("sent {MESSAGES} messages to {topic}, tags {TAGS:?}");
    Ok(expected)
}
