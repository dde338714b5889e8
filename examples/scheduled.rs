//! Scheduled messages: one held back by a delay level, one by a 5.x timer
//! (a time of its own), and a third timer message taken back with its recall
//! handle before it is due, so it never arrives.
//!
//! ```sh
//! cargo run -p rocketmq-examples --example scheduled
//! ROCKETMQ_NAMESRV_ADDR=127.0.0.1:9876 cargo run -p rocketmq-examples --example scheduled
//! ```
//!
//! Without `ROCKETMQ_NAMESRV_ADDR` it starts an embedded testkit cluster on
//! loopback TCP that allows recalls. A real broker needs
//! `timerWheelEnable=true` (the 5.x default) for timers and
//! `recallMessageEnable=true` (off by default in Java) for the recall; when
//! it refuses the recall, the example says so and expects that message too.
//! It exits non-zero when a message comes early, does not come, or comes
//! after it was recalled.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{Producer, PushConsumer};
use rocketmq_examples::{BoxError, Cluster, body_text, run_example, unique_name, wait_until};
use rocketmq_model::{Message, MessageExt, ResponseCode};
use rocketmq_testkit::TestCluster;

/// When each body arrived.
type Arrivals = Arc<Mutex<HashMap<String, SystemTime>>>;

/// The timer's precision: a timer message may come up to a second early.
const TICK: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    run_example("scheduled", run()).await
}

async fn run() -> Result<(), BoxError> {
    let cluster = Cluster::connect_or_start(TestCluster::builder().recall_messages(true)).await?;
    let topic = unique_name("ScheduledTopic");
    let producer = Producer::builder()
        .client_config(cluster.client_config())
        .producer_group("scheduled-producer")
        .build()
        .await?;
    let sent_at = SystemTime::now();
    // Delay level 2 is 5 s with the broker's default `messageDelayLevel`.
    let leveled = Message::builder(&topic)
        .body("level 2")
        .delay_level(2)
        .build()?;
    producer.send(leveled).await?;
    let due = [
        ("timer", sent_at + Duration::from_secs(3)),
        ("recalled", sent_at + Duration::from_secs(4)),
    ];
    let mut handles = HashMap::new();
    for (body, at) in due {
        let timed = Message::builder(&topic).body(body).deliver_at(at).build()?;
        let result = producer.send(timed).await?;
        handles.insert(body, result.recall_handle);
    }
    println!("sent a delay level 2 message and two timer messages to {topic}");
    // Started once the topic exists; it reads from the first offset, and
    // the messages reach the topic only when they are due.
    let arrivals = Arrivals::default();
    let consumer = consumer(&cluster, &topic, &arrivals).await?;

    let mut expected = vec![
        ("level 2", Duration::from_secs(5)),
        ("timer", Duration::from_secs(3)),
    ];
    match recall(&producer, &topic, handles.remove("recalled").flatten()).await {
        Ok(msg_id) => println!("recalled {msg_id} before it was due"),
        Err(reason) => {
            println!("the recall was refused ({reason}): that message will arrive too");
            expected.push(("recalled", Duration::from_secs(4)));
        }
    }

    // Wait for what is expected, then past the recalled one's time.
    let patience = cluster.patience() + Duration::from_secs(5);
    let all_came = wait_until(patience, || {
        let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner());
        expected.iter().all(|(body, _)| arrived.contains_key(*body))
    })
    .await;
    let past_recalled = sent_at + Duration::from_secs(4) + 2 * TICK;
    if let Ok(left) = past_recalled.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }

    consumer.shutdown().await;
    producer.shutdown().await;
    cluster.shutdown().await;

    let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut problems = Vec::new();
    for (body, delay) in &expected {
        match arrived.get(*body) {
            Some(at) => {
                let after = at.duration_since(sent_at).unwrap_or_default();
                println!(
                    "{body:>8}: arrived {:.1} s after sending (due after {} s)",
                    after.as_secs_f64(),
                    delay.as_secs()
                );
                if after + TICK < *delay {
                    problems.push(format!("{body} came early"));
                }
            }
            None => problems.push(format!("{body} never came")),
        }
    }
    let recalled_expected = expected.iter().any(|(body, _)| *body == "recalled");
    if !recalled_expected && arrived.contains_key("recalled") {
        problems.push("the recalled message arrived".to_owned());
    }
    if !all_came || !problems.is_empty() {
        return Err(problems.join("; ").into());
    }
    Ok(())
}

/// Recalls the message of `handle`; the reason when there is none or the
/// broker refuses.
async fn recall(
    producer: &Producer,
    topic: &str,
    handle: Option<String>,
) -> Result<String, String> {
    let Some(handle) = handle else {
        return Err("the broker answered no recall handle".to_owned());
    };
    match producer.recall_message(topic, &handle).await {
        Ok(msg_id) => Ok(msg_id),
        Err(error) if error.response_code() == Some(ResponseCode::NO_PERMISSION) => {
            Err("the broker does not allow recalls".to_owned())
        }
        Err(error) => Err(error.to_string()),
    }
}

async fn consumer(
    cluster: &Cluster,
    topic: &str,
    arrivals: &Arrivals,
) -> Result<PushConsumer, BoxError> {
    let arrivals = Arc::clone(arrivals);
    let consumer = PushConsumer::builder("scheduled-consumer", cluster.client_config())
        .subscribe(topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let arrivals = Arc::clone(&arrivals);
            async move {
                let now = SystemTime::now();
                let mut arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                for msg in &msgs {
                    arrivals.entry(body_text(msg).into_owned()).or_insert(now);
                }
                ConcurrentResult::Success
            }
        })
        .build()
        .await?;
    Ok(consumer)
}
