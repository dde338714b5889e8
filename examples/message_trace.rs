//! Message traces (Java's `enableMsgTrace`): a producer and a push consumer
//! with tracing on record each message they sent and consumed in a trace
//! topic, in the format the RocketMQ dashboard reads. This example then
//! reads the trace topic itself and prints each message's path: who sent
//! it, where, how long the send took, and how its consumption went.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example message_trace
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example message_trace
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. The traces go to a topic of this run (Java's
//! `customizedTraceTopic`) rather than `RMQ_SYS_TRACE_TOPIC`, so that runs
//! do not read each other's; the brokers must create topics on first use
//! (`autoCreateTopicEnable`), or create it first. It exits non-zero unless
//! every message shows a send, a hand-over to the listener and a success.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PullConsumer, PushConsumer};
use rocketmq_examples::{BoxError, Cluster, Tally, run_example, unique_name};
use rocketmq_model::body::trace::TraceRecord;
use rocketmq_model::{Message, MessageExt};
use tokio::time::Instant;

const MESSAGES: usize = 3;

#[tokio::main]
async fn main() -> ExitCode {
    run_example("message_trace", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("TracedTopic");
    let trace_topic = unique_name("TraceData");
    // One instance for every client here (it has the routes the sends
    // made).
    let config = cluster.client_config_named(&unique_name("trace"));

    let producer = Producer::builder()
        .client_config(config.clone())
        .producer_group("traced-producer")
        .trace_topic(&trace_topic)
        .build()
        .await?;
    let mut ids = BTreeMap::new();
    for i in 0..MESSAGES {
        let msg = Message::builder(&topic)
            .body(format!("order {i} created"))
            .keys([format!("order-{i}")])
            .build()?;
        let sent = producer.send(msg).await?;
        ids.insert(sent.msg_id, format!("order-{i}"));
    }
    // The consumer starts after the sends, from the topic's first offset.
    let tally = Tally::new();
    let seen = tally.clone();
    let consumer = PushConsumer::builder("traced-consumer", config.clone())
        .subscribe(&topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .trace_topic(&trace_topic)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen.clone();
            async move {
                msgs.iter().for_each(|msg| {
                    seen.record(msg);
                });
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;
    let deadline = Instant::now() + cluster.patience();
    while tally.distinct() < MESSAGES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("consumed {} of {MESSAGES} messages", tally.distinct());
    // A shutdown sends the traces still waiting.
    consumer.shutdown().await;
    producer.shutdown().await;

    let records = read_traces(&cluster, config, &trace_topic, ids.len() * 3).await?;
    cluster.shutdown().await;
    let mut outcome = Ok(());
    for (id, key) in &ids {
        let path: Vec<&TraceRecord> = records.iter().filter(|r| r.msg_id() == id).collect();
        println!("{key} ({id}):");
        for record in &path {
            println!("  {}", describe(record));
        }
        if !is_complete(&path) {
            outcome = Err(format!("{key}: the trace is incomplete").into());
        }
    }
    outcome
}

/// Polls the trace topic from its start until `wanted` records came or
/// the cluster's patience runs out.
async fn read_traces(
    cluster: &Cluster,
    config: rocketmq_client::ClientConfig,
    trace_topic: &str,
    wanted: usize,
) -> Result<Vec<TraceRecord>, BoxError> {
    let reader = PullConsumer::builder("trace-reader", config)
        .subscribe(trace_topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .build()
        .await?;
    let mut records = Vec::new();
    let deadline = Instant::now() + cluster.patience();
    while records.len() < wanted && Instant::now() < deadline {
        for msg in reader.poll(Duration::from_secs(1)).await? {
            let text = String::from_utf8_lossy(msg.body());
            records.extend(TraceRecord::decode_all(&text)?);
        }
    }
    reader.shutdown().await;
    Ok(records)
}

/// One line about a record.
fn describe(record: &TraceRecord) -> String {
    match record {
        TraceRecord::Pub(p) => format!(
            "sent by {} to {} ({}), {} ms, {}",
            p.group,
            p.store_host,
            p.topic,
            p.cost_ms,
            if p.success { "stored" } else { "not stored" }
        ),
        TraceRecord::SubBefore(b) => format!(
            "handed to {} (retry {}), request {}",
            b.group, b.retry_times, b.request_id
        ),
        TraceRecord::SubAfter(a) => format!(
            "{} by {}, {} ms",
            if a.success { "consumed" } else { "failed" },
            a.group,
            a.cost_ms
        ),
        TraceRecord::EndTransaction(e) => format!("transaction {}", e.state),
    }
}

/// Whether `path` shows a stored send and a successful consumption.
fn is_complete(path: &[&TraceRecord]) -> bool {
    let sent = path
        .iter()
        .any(|r| matches!(r, TraceRecord::Pub(p) if p.success));
    let handed = path.iter().any(|r| matches!(r, TraceRecord::SubBefore(_)));
    let consumed = path
        .iter()
        .any(|r| matches!(r, TraceRecord::SubAfter(a) if a.success));
    sent && handed && consumed
}
