//! Helpers of the consumer end-to-end tests: a client config on the
//! testkit's memory network, a producer, a recording listener and waiting
//! for a condition on tokio's (paused) clock.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, PushConsumerBuilder};
use rocketmq_client::{ClientConfig, Producer, PushConsumer};
use rocketmq_model::{Message, MessageExt};
use rocketmq_testkit::TestCluster;

#[path = "../waiting/mod.rs"]
mod waiting;
#[allow(unused_imports)]
pub(crate) use waiting::{wait_for, wait_until};

/// A client config reaching `cluster`, with a fixed ip and `instance`.
pub(crate) fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.7.7.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

/// A unique instance name starting with `prefix` (client instances are
/// shared process-wide by client id, and tests run in parallel).
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A started producer of group "pg" on its own instance.
pub(crate) async fn producer(cluster: &TestCluster) -> Producer {
    Producer::builder()
        .client_config(config(cluster, &unique("producer")))
        .producer_group("pg")
        .build()
        .await
        .unwrap()
}

/// A message of `topic` with `body` and `tags`.
pub(crate) fn msg(topic: &str, body: &str, tags: &str) -> Message {
    Message::builder(topic)
        .body(body.to_owned())
        .tags(tags)
        .build()
        .unwrap()
}

/// Every message a listener saw, in order.
#[derive(Clone, Default)]
pub(crate) struct Seen(Arc<Mutex<Vec<MessageExt>>>);

impl Seen {
    pub(crate) fn push(&self, msgs: &[MessageExt]) {
        self.0.lock().unwrap().extend(msgs.iter().cloned());
    }

    pub(crate) fn all(&self) -> Vec<MessageExt> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Bodies as strings, in order.
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
}

/// A push consumer builder of `group` on `topic` that records everything
/// and acknowledges it.
pub(crate) fn recording(
    cluster: &TestCluster,
    instance: &str,
    group: &str,
    topic: &str,
    seen: &Seen,
) -> PushConsumerBuilder {
    let seen = seen.clone();
    PushConsumer::builder(group, config(cluster, instance))
        .subscribe(topic, "*")
        .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
            let seen = seen.clone();
            async move {
                seen.push(&msgs);
                ConcurrentResult::Success
            }
        })
}

/// The queues of `consumer` outside its retry topic.
pub(crate) fn owned(consumer: &PushConsumer) -> Vec<rocketmq_model::MessageQueue> {
    consumer
        .assigned()
        .into_iter()
        .filter(|mq| !mq.topic.starts_with("%RETRY%"))
        .collect()
}

/// Waits until `consumer` owns `n` queues outside its retry topic.
pub(crate) async fn wait_assigned(consumer: &PushConsumer, n: usize) {
    wait_until("queues assigned", Duration::from_secs(60), || {
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
