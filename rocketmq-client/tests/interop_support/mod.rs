//! Helpers of the interop suite (`interop_*.rs`): the tests run against a
//! real nameserver and broker (`scripts/real-cluster.sh start`) named by
//! `ROCKETMQ_NAMESRV_ADDR`, and are skipped, saying so, when it is unset.
//!
//! Every test uses its own topics and groups (a random suffix per run), so
//! reruns against the same broker do not see each other's messages, and
//! waits for conditions with a deadline on the real clock (the broker runs
//! in real time), never for a fixed time.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_client::consumer::{
    ConcurrentContext, ConcurrentResult, ConsumeFromWhere, PushConsumerBuilder,
};
use rocketmq_client::{ClientConfig, Producer, PushConsumer};
use rocketmq_model::header::CreateTopicRequestHeader;
use rocketmq_model::{Message, MessageExt, MessageQueue};
use rocketmq_remoting::SerializeType;

#[path = "../waiting/mod.rs"]
mod waiting;
#[allow(unused_imports)]
pub(crate) use waiting::{holds_within, wait_for, wait_until};

/// The cluster name `scripts/real-cluster.sh` gives its brokers.
pub(crate) const CLUSTER: &str = "DefaultCluster";

/// The nameserver list of the real cluster, or `None` after printing why
/// `test` is skipped (straight to stderr: the harness captures
/// `eprintln!` of passing tests).
pub(crate) fn namesrv(test: &str) -> Option<String> {
    match std::env::var("ROCKETMQ_NAMESRV_ADDR") {
        Ok(addr) if !addr.trim().is_empty() => {
            init_logs();
            Some(addr.trim().to_owned())
        }
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: ROCKETMQ_NAMESRV_ADDR is not set (run scripts/real-cluster.sh start)"
            );
            None
        }
    }
}

/// Prints that `test` is skipped because of `reason` (stderr, uncaptured).
pub(crate) fn skip(test: &str, reason: &str) {
    let _ = writeln!(std::io::stderr(), "skipped {test}: {reason}");
}

/// A name unique to this run: `prefix`, the process id, the time and a
/// counter, within RocketMQ's name rules (`[A-Za-z0-9_-]`, short).
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000_000);
    format!(
        "{prefix}_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A client config of the cluster with its own instance name (client
/// instances are shared by client id), in `serialize_type`.
pub(crate) fn config_with(namesrv: &str, serialize_type: SerializeType) -> ClientConfig {
    let mut config = ClientConfig::new(namesrv.split(';').map(str::trim));
    config.instance_name = unique("inst");
    config.client_ip = Some("127.0.0.1".parse().unwrap());
    config.serialize_type = serialize_type;
    config.request_timeout = Duration::from_secs(10);
    config
}

/// A JSON-header client config of the cluster with its own instance.
pub(crate) fn config(namesrv: &str) -> ClientConfig {
    config_with(namesrv, SerializeType::Json)
}

/// A started producer of a fresh group on its own instance, with a send
/// budget fit for a slow broker.
pub(crate) async fn producer(namesrv: &str) -> Producer {
    producer_with(config(namesrv)).await
}

/// A started producer of a fresh group with `config`.
pub(crate) async fn producer_with(config: ClientConfig) -> Producer {
    Producer::builder()
        .client_config(config)
        .producer_group(unique("pg"))
        .send_msg_timeout(Duration::from_secs(10))
        .build()
        .await
        .unwrap()
}

/// Creates `topic` with `queues` read and write queues on every master of
/// the cluster and waits until the nameserver serves its route.
pub(crate) async fn create_topic(producer: &Producer, topic: &str, queues: i32) {
    let created = producer
        .admin()
        .create_topic_in_cluster(CLUSTER, CreateTopicRequestHeader::new(topic, queues))
        .await
        .unwrap();
    assert!(!created.is_empty(), "cluster {CLUSTER} has no master");
    wait_route(producer, topic).await;
}

/// Waits until the nameserver serves a route of `topic`.
pub(crate) async fn wait_route(producer: &Producer, topic: &str) {
    let routes = producer.instance().routes().clone();
    wait_for(&format!("route of {topic}"), secs(30), || {
        let routes = routes.clone();
        async move { routes.refresh(topic).await.is_ok() }
    })
    .await;
}

/// The queues of `topic` as the producer's route knows them.
pub(crate) async fn queues(producer: &Producer, topic: &str) -> Vec<MessageQueue> {
    let routes = producer.instance().routes();
    routes.refresh(topic).await.unwrap();
    routes.publish_info(topic).await.unwrap().queues().to_vec()
}

/// A message of `topic` with `body` and `tags`.
pub(crate) fn msg(topic: &str, body: &str, tags: &str) -> Message {
    Message::builder(topic)
        .body(body.to_owned())
        .tags(tags)
        .build()
        .unwrap()
}

/// `n` seconds.
pub(crate) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Every message a listener saw, in order of arrival.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<MessageExt>>>);

impl Seen {
    pub(crate) fn push(&self, msgs: &[MessageExt]) {
        self.0.lock().unwrap().extend(msgs.iter().cloned());
    }

    pub(crate) fn all(&self) -> Vec<MessageExt> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Bodies as strings, in order of arrival.
    pub(crate) fn bodies(&self) -> Vec<String> {
        self.all()
            .iter()
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .collect()
    }

    /// How many times each body was seen.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for body in self.bodies() {
            *counts.entry(body).or_default() += 1;
        }
        counts
    }

    /// How many distinct bodies were seen.
    pub(crate) fn distinct(&self) -> usize {
        self.counts().len()
    }
}

/// A push consumer builder of `group` on `topic` (from the first offset)
/// that records every message and acknowledges it.
pub(crate) fn recording(
    config: ClientConfig,
    group: &str,
    topic: &str,
    seen: &Seen,
) -> PushConsumerBuilder {
    let seen = seen.clone();
    PushConsumer::builder(group, config)
        .subscribe(topic, "*")
        .consume_from_where(ConsumeFromWhere::FirstOffset)
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
}

/// The queues of `consumer` outside its retry topic.
pub(crate) fn owned(consumer: &PushConsumer) -> Vec<MessageQueue> {
    consumer
        .assigned()
        .into_iter()
        .filter(|mq| !mq.topic.starts_with("%RETRY%"))
        .collect()
}

/// Waits until `consumer` owns `n` queues outside its retry topic.
pub(crate) async fn wait_assigned(consumer: &PushConsumer, n: usize) {
    wait_until(&format!("{n} queues assigned"), secs(30), || {
        owned(consumer).len() == n
    })
    .await;
}

/// Logs to the test output (`RUST_LOG` filters, default warnings).
pub(crate) fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
