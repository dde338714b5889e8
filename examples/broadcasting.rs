//! Broadcasting: two consumers of one group in broadcasting mode each get
//! every message (in clustering mode, the default, they would share the
//! queues and each get about half). A broadcasting consumer keeps its
//! offsets in a local file, not on the broker.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example broadcasting
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example broadcasting
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP. It exits non-zero unless both consumers get every message.

use std::path::Path;
use std::process::ExitCode;

use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, MessageModel,
};
use rocketmq_client::{Producer, PushConsumer, Result};
use rocketmq_examples::{
    BoxError, Cluster, Tally, body_text, run_example, unique_name, wait_until,
};
use rocketmq_model::{Message, MessageExt};

const MESSAGES: usize = 10;
const GROUP: &str = "broadcast-consumer";

#[tokio::main]
async fn main() -> ExitCode {
    run_example("broadcasting", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect().await?;
    let topic = unique_name("BroadcastTopic");
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("broadcast-producer")
        .build()
        .await?;
    for i in 0..MESSAGES {
        let msg = Message::builder(&topic)
            .body(format!("notice {i}"))
            .tags("notice")
            .build()?;
        producer.send(msg).await?;
    }
    println!("sent {MESSAGES} messages to {topic}");

    // Offsets go to files under this directory (Java's default is
    // ~/.rocketmq_offsets); this example removes it when done.
    let offsets_dir = std::env::temp_dir().join(unique_name("rocketmq-example-offsets"));
    let (first, second) = (Tally::new(), Tally::new());
    let consumers = [
        member(&cluster, &topic, "member-1", &first, &offsets_dir).await?,
        member(&cluster, &topic, "member-2", &second, &offsets_dir).await?,
    ];
    let everyone_got_all = wait_until(cluster.patience(), || {
        first.distinct() == MESSAGES && second.distinct() == MESSAGES
    })
    .await;

    for consumer in consumers {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    cluster.shutdown().await;
    let _ = std::fs::remove_dir_all(&offsets_dir);
    println!(
        "member-1 received {}, member-2 received {} of {MESSAGES}",
        first.distinct(),
        second.distinct()
    );
    if !everyone_got_all {
        return Err("a member missed messages".into());
    }
    Ok(())
}

/// A broadcasting member of the group. Each member needs its own client
/// instance (its own instance name): one instance holds one member of a
/// group.
async fn member(
    cluster: &Cluster,
    topic: &str,
    name: &'static str,
    tally: &Tally,
    offsets_dir: &Path,
) -> Result<PushConsumer> {
    let tally = tally.clone();
    PushConsumer::builder(GROUP, cluster.client_config_named(&unique_name(name)))
        .subscribe(topic, "*")
        .message_model(MessageModel::Broadcasting)
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .offset_store_dir(offsets_dir)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let tally = tally.clone();
            async move {
                for msg in &msgs {
                    println!("{name} received {}", body_text(msg));
                    tally.record(msg);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await
}
