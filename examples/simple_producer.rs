//! Simple producer: synchronous sends with tags and keys; prints each
//! `SendResult` (status, message id, queue, offset).
//!
//! ```sh
//! cargo run -p rocketmq-examples --example simple_producer
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example simple_producer
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero when a send fails.

use std::process::ExitCode;

use rocketmq_client::Producer;
use rocketmq_examples::{BoxError, Cluster, run_example, unique_name};
use rocketmq_model::Message;

const TAGS: [&str; 3] = ["TagA", "TagB", "TagC"];
const MESSAGES: usize = 9;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("simple_producer", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("SimpleProducerTopic");
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("simple-producer")
        .build()
        .await?;

    let mut outcome = Ok(());
    for i in 0..MESSAGES {
        let tag = TAGS[i % TAGS.len()];
        let msg = Message::builder(&topic)
            .body(format!("Hello RocketMQ {i}"))
            .tags(tag)
            .key(format!("order-{i}"))
            .build()?;
        // `send` waits for the broker and retries on another broker when a
        // send fails with a retriable error.
        match producer.send(msg).await {
            Ok(result) => println!(
                "sent {tag} order-{i}: {:?} msg_id={} queue={} offset={}",
                result.status, result.msg_id, result.message_queue, result.queue_offset
            ),
            Err(err) => {
                eprintln!("send {i} failed: {err}");
                outcome = Err(err.into());
                break;
            }
        }
    }

    producer.shutdown().await;
    cluster.shutdown().await;
    outcome
}
