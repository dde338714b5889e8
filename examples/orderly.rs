//! Ordered messages: each order's steps are sent with the order id as
//! sharding key, so they all land in one queue, and an orderly consumer
//! (one batch at a time per queue, holding the queue's lock on the broker)
//! gets them in the order they were sent.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example orderly
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example orderly
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless every order's steps arrive
//! complete, in order, from one queue.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use rocketmq_client::consumer::{ConsumeFromWhere, OrderlyContext, OrderlyResult};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{BoxError, Cluster, body_text, run_example, unique_name, wait_until};
use rocketmq_model::{Message, MessageExt};

const ORDERS: [&str; 4] = ["order-1001", "order-1002", "order-1003", "order-1004"];
const STEPS: [&str; 4] = ["created", "paid", "shipped", "delivered"];

/// Per order: the steps received, with the queue each came from.
type Received = Arc<Mutex<BTreeMap<String, Vec<(String, i32)>>>>;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("orderly", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("OrderlyTopic");
    produce(&cluster, &topic).await?;

    let received = Received::default();
    let record = Arc::clone(&received);
    let consumer = PushConsumer::builder("orderly-consumer", cluster.client_config())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_orderly(move |msgs: Vec<MessageExt>, ctx: OrderlyContext| {
            let record = Arc::clone(&record);
            async move {
                for msg in &msgs {
                    let order = msg.keys().next().unwrap_or_default().to_owned();
                    let step = body_text(msg).into_owned();
                    println!("{order}: {step:<9} (queue {})", ctx.mq.queue_id);
                    let mut received = record.lock().unwrap_or_else(PoisonError::into_inner);
                    received
                        .entry(order)
                        .or_default()
                        .push((step, msg.queue_id));
                }
                OrderlyResult::Success
            }
        })
        .build()
        .await?;
    let total = ORDERS.len() * STEPS.len();
    let arrived = wait_until(cluster.patience(), || count(&received) >= total).await;

    consumer.shutdown().await;
    cluster.shutdown().await;
    let received = received
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if !arrived {
        return Err(format!("{} of {total} steps arrived", count_map(&received)).into());
    }
    check(&received)
}

/// Sends the orders' steps interleaved (every order's first step, then
/// every order's second step, ...), each order's with its id as sharding key.
async fn produce(cluster: &Cluster, topic: &str) -> Result<(), BoxError> {
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("orderly-producer")
        .build()
        .await?;
    let mut outcome = Ok(());
    'sending: for step in STEPS {
        for order in ORDERS {
            let msg = Message::builder(topic)
                .body(step)
                .key(order)
                .sharding_key(order)
                .build()?;
            // A message with a sharding key goes to the queue of its key.
            match producer.send(msg).await {
                Ok(result) => println!(
                    "sent {order}: {step:<9} to queue {}",
                    result.message_queue.queue_id
                ),
                Err(err) => {
                    outcome = Err(err);
                    break 'sending;
                }
            }
        }
    }
    producer.shutdown().await;
    Ok(outcome?)
}

fn count(received: &Received) -> usize {
    count_map(&received.lock().unwrap_or_else(PoisonError::into_inner))
}

fn count_map(received: &BTreeMap<String, Vec<(String, i32)>>) -> usize {
    received.values().map(Vec::len).sum()
}

/// Every order got all its steps, once each, in order, from one queue.
fn check(received: &BTreeMap<String, Vec<(String, i32)>>) -> Result<(), BoxError> {
    for order in ORDERS {
        let got = received.get(order).map(Vec::as_slice).unwrap_or_default();
        let steps: Vec<&str> = got.iter().map(|(step, _)| step.as_str()).collect();
        if steps != STEPS {
            return Err(format!("{order}: steps {steps:?}, expected {STEPS:?}").into());
        }
        if got.iter().any(|(_, queue)| *queue != got[0].1) {
            return Err(format!("{order}: steps came from several queues: {got:?}").into());
        }
        println!(
            "{order}: all {} steps in order from queue {}",
            STEPS.len(),
            got[0].1
        );
    }
    Ok(())
}
