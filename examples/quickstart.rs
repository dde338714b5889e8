//! Quickstart: route, send and pull back with `rocketmq-remoting`'s typed calls.
//!
//! With `ROCKETMQ_NAMESRV_ADDR` set, it talks to that cluster (auto-creating its
//! topic through TBW102). Without it, it starts a loopback stand-in on 127.0.0.1
//! built on remoting's own server. Either way it runs the round trip in both
//! header serializations, sending 100 messages concurrently over one connection
//! each time, pulls them back and checks every body. Exits non-zero on any
//! mismatch.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use rocketmq_examples::loopback::LoopbackCluster;
use rocketmq_model::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use rocketmq_model::message::sysflag::pull as pull_flag;
use rocketmq_model::message::{Message, UniqueIdGenerator, decode_records, property};
use rocketmq_model::route::{AUTO_CREATE_TOPIC, DEFAULT_TOPIC_QUEUE_NUMS};
use rocketmq_remoting::call::execute;
use rocketmq_remoting::calls::{GetRouteInfo, PullMessage, PullStatus, SendMessage};
use rocketmq_remoting::client::RemotingClient;
use rocketmq_remoting::{RemotingError, SerializeType};

const MESSAGES: usize = 100;
const TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quickstart failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let (namesrv, loopback) = match std::env::var("ROCKETMQ_NAMESRV_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => (addr, None),
        _ => {
            let cluster = LoopbackCluster::start().await?;
            println!(
                "no ROCKETMQ_NAMESRV_ADDR: started a loopback server at {}",
                cluster.addr()
            );
            (cluster.addr().to_owned(), Some(cluster))
        }
    };
    for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
        round_trip(&namesrv, serialize_type).await?;
    }
    if let Some(cluster) = loopback {
        cluster.shutdown().await;
    }
    println!("quickstart: OK");
    Ok(())
}

async fn round_trip(namesrv: &str, serialize_type: SerializeType) -> Result<(), BoxError> {
    let started = Instant::now();
    let client = RemotingClient::builder()
        .serialize_type(serialize_type)
        .request_timeout(TIMEOUT)
        .build();
    let addrs = namesrv.split(';').map(str::to_owned).collect();
    let mut nameserver = client.name_server_service(addrs);

    let route = execute(&mut nameserver, GetRouteInfo::new(AUTO_CREATE_TOPIC)).await?;
    let broker = route.broker_datas.first().ok_or("TBW102 has no broker")?;
    let broker_addr = broker
        .master_addr()
        .ok_or("the broker has no master")?
        .to_owned();

    let topic = format!("QuickstartTopic_{}", serialize_type.name());
    let run_id = UniqueIdGenerator::new(None).next_id();
    let sends = (0..MESSAGES).map(|i| send(&client, &broker_addr, &topic, &run_id, i));
    let first_offset = try_join_all(sends).await?.into_iter().min().unwrap_or(0);

    let received = pull_back(&client, &broker_addr, &topic, &run_id, first_offset).await?;
    let expected: BTreeSet<String> = (0..MESSAGES).map(|i| body_of(&run_id, i)).collect();
    if received != expected {
        let missing = expected.difference(&received).count();
        return Err(format!("{missing} of {MESSAGES} messages did not come back").into());
    }
    println!(
        "{:>8}: route from {namesrv}, {MESSAGES} sent to {} and pulled back intact in {:?}",
        serialize_type.name(),
        broker.broker_name,
        started.elapsed()
    );
    client.shutdown().await;
    Ok(())
}

fn body_of(run_id: &str, i: usize) -> String {
    format!("quickstart {run_id} message {i}")
}

/// Sends message `i` to queue 0 and returns its queue offset.
async fn send(
    client: &RemotingClient,
    broker_addr: &str,
    topic: &str,
    run_id: &str,
    i: usize,
) -> Result<i64, RemotingError> {
    let message = Message::builder(topic)
        .body(body_of(run_id, i))
        .tags("quickstart")
        .key(format!("{run_id}-{i}"))
        .build()?;
    let header = SendMessageRequestHeader {
        producer_group: "quickstart-producer".into(),
        topic: topic.into(),
        default_topic: AUTO_CREATE_TOPIC.into(),
        default_topic_queue_nums: DEFAULT_TOPIC_QUEUE_NUMS,
        queue_id: 0,
        born_timestamp: now_millis(),
        properties: Some(message.properties.encode()),
        ..Default::default()
    };
    let sent = client
        .invoke_call(broker_addr, SendMessage::new(header, message.body), TIMEOUT)
        .await?;
    Ok(sent.header.queue_offset)
}

/// Pulls queue 0 from `offset` until every message of this run is back (or the
/// deadline passes), returning the bodies of this run's messages.
async fn pull_back(
    client: &RemotingClient,
    broker_addr: &str,
    topic: &str,
    run_id: &str,
    mut offset: i64,
) -> Result<BTreeSet<String>, BoxError> {
    let deadline = Instant::now() + TIMEOUT;
    let marker = format!("quickstart {run_id} ");
    let mut bodies = BTreeSet::new();
    while bodies.len() < MESSAGES && Instant::now() < deadline {
        let header = PullMessageRequestHeader {
            consumer_group: "quickstart-consumer".into(),
            topic: topic.into(),
            queue_id: 0,
            queue_offset: offset,
            max_msg_nums: 32,
            sys_flag: pull_flag::SUBSCRIPTION | pull_flag::SUSPEND,
            suspend_timeout_millis: 1_000,
            subscription: Some("*".into()),
            sub_version: now_millis(),
            expression_type: Some("TAG".into()),
            ..Default::default()
        };
        let pulled = client
            .invoke_call(broker_addr, PullMessage(header), TIMEOUT)
            .await?;
        offset = pulled.header.next_begin_offset;
        if pulled.status != PullStatus::Found {
            continue;
        }
        for message in decode_records(pulled.body)? {
            let body = String::from_utf8_lossy(message.body()).into_owned();
            if body.starts_with(&marker) && message.property(property::TAGS) == Some("quickstart") {
                bodies.insert(body);
            }
        }
    }
    Ok(bodies)
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
