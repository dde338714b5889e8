//! Simple consumer: pop consumption (RocketMQ 5.x). The consumer asks for
//! messages, the broker hands them out and hides each from the rest of the
//! group until it is acknowledged. One message is left unacknowledged with
//! a short invisible duration, and comes back to be acknowledged on its
//! second delivery.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example simple_consumer
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example simple_consumer
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless every message is received, and the
//! one left unacknowledged comes back. (rocketmq-broker 1.0 never delivers
//! an unacknowledged message again, and refuses the change of invisible
//! duration: see docs/interop.md.)

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::Duration;

use rocketmq_client::consumer::{ConsumeFromWhere, MessageSelector, ReceivedMessage};
use rocketmq_client::{Producer, SimpleConsumer};
use rocketmq_examples::{BoxError, Cluster, body_text, run_example, unique_name};
use rocketmq_model::Message;
use tokio::time::Instant;

const MESSAGES: usize = 8;
/// How long received messages stay hidden from the rest of the group.
const INVISIBLE: Duration = Duration::from_secs(30);
/// The invisible duration the one message left unacknowledged gets instead.
const SOON: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> ExitCode {
    run_example("simple_consumer", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("SimpleConsumerTopic");
    let sent = produce(&cluster, &topic).await?;
    let consumer = SimpleConsumer::builder(unique_name("simple-consumer"), cluster.client_config())
        .subscribe(&topic, MessageSelector::all())
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .await_duration(Duration::from_secs(2))
        .build()
        .await?;
    let outcome = consume(&consumer, &sent, cluster.patience()).await;
    consumer.shutdown().await;
    cluster.shutdown().await;
    outcome
}

/// Receives every message sent, acknowledging all but the first, which is
/// made visible again soon and acknowledged when it comes back.
async fn consume(
    consumer: &SimpleConsumer,
    sent: &BTreeSet<String>,
    patience: Duration,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + patience;
    let mut received = BTreeSet::new();
    let mut left: Option<ReceivedMessage> = None;
    while received.len() < sent.len() && Instant::now() < deadline {
        for mut message in consumer.receive(16, INVISIBLE).await? {
            let body = body_text(message.message()).into_owned();
            println!(
                "received {body} (delivery {}) from queue {} at offset {}",
                message.delivery_attempt(),
                message.message().queue_id,
                message.message().queue_offset
            );
            received.insert(body);
            if left.is_none() {
                consumer
                    .change_invisible_duration(&mut message, SOON)
                    .await?;
                println!("  left unacknowledged; back in {SOON:?}");
                left = Some(message);
            } else {
                consumer.ack(&message).await?;
            }
        }
    }
    if &received != sent {
        return Err(format!("expected {sent:?}, received {received:?}").into());
    }
    let left = left.ok_or("no message was received")?;
    let wanted = body_text(left.message()).into_owned();
    while Instant::now() < deadline {
        for message in consumer.receive(16, INVISIBLE).await? {
            let body = body_text(message.message()).into_owned();
            println!(
                "received {body} again (delivery {})",
                message.delivery_attempt()
            );
            consumer.ack(&message).await?;
            if body == wanted && message.delivery_attempt() == 2 {
                println!("all {} messages received and acknowledged", sent.len());
                return Ok(());
            }
        }
    }
    Err(format!("{wanted} did not come back within {patience:?}").into())
}

/// Sends `MESSAGES` messages; answers their bodies.
async fn produce(cluster: &Cluster, topic: &str) -> Result<BTreeSet<String>, BoxError> {
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("simple-consumer-producer")
        .build()
        .await?;
    let mut sent = BTreeSet::new();
    let mut outcome = Ok(());
    for i in 0..MESSAGES {
        let body = format!("message {i}");
        let msg = Message::builder(topic).body(body.clone()).build()?;
        if let Err(err) = producer.send(msg).await {
            outcome = Err(err);
            break;
        }
        sent.insert(body);
    }
    producer.shutdown().await;
    outcome?;
    println!("sent {MESSAGES} messages to {topic}");
    Ok(sent)
}
