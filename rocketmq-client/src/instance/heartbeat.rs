//! Heartbeats (PROTOCOL.md §3.6): the instance's producer and consumer groups,
//! sent to every broker of every known route — masters only when the client
//! has no consumers, so producer-only clients are registered too.

use rocketmq_kernel::BrokerApi;
use rocketmq_model::HeartbeatData;
use rocketmq_model::body::ProducerData;
use rocketmq_model::route::MASTER_ID;

use super::{CLIENT_INNER_PRODUCER_GROUP, ClientInstance, lock};

/// The heartbeat body, or `None` when the client has no group to report.
pub(super) fn heartbeat_data(instance: &ClientInstance) -> Option<HeartbeatData> {
    let producers = instance.producer_groups();
    let consumers = instance.consumers();
    if producers.is_empty() && consumers.is_empty() {
        return None;
    }
    let mut producer_data_set = vec![ProducerData {
        group_name: CLIENT_INNER_PRODUCER_GROUP.to_owned(),
    }];
    producer_data_set.extend(
        producers
            .into_iter()
            .filter(|g| g != CLIENT_INNER_PRODUCER_GROUP)
            .map(|group_name| ProducerData { group_name }),
    );
    Some(HeartbeatData {
        client_id: instance.client_id().to_owned(),
        consumer_data_set: consumers.iter().map(|c| c.heartbeat_data()).collect(),
        heartbeat_fingerprint: 0,
        producer_data_set,
        without_sub: false,
    })
}

/// Every broker address (masters and slaves) in the route table.
pub(super) fn all_addrs(instance: &ClientInstance) -> Vec<String> {
    broker_addrs(instance, false)
}

/// Every broker address of the route table (masters only when asked).
fn broker_addrs(instance: &ClientInstance, masters_only: bool) -> Vec<String> {
    let mut addrs: Vec<String> = instance
        .routes()
        .table()
        .brokers()
        .into_iter()
        .flat_map(|broker| broker.broker_addrs.into_iter())
        .filter(|(id, _)| !masters_only || *id == MASTER_ID)
        .map(|(_, addr)| addr)
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

/// Sends the heartbeat to every broker at once; failures are logged.
pub(super) async fn send_to_all(instance: &ClientInstance) {
    let _sending = instance.inner().heartbeat_gate.read().await;
    let Some(data) = heartbeat_data(instance) else {
        tracing::debug!("no group to report; heartbeat skipped");
        return;
    };
    let masters_only = data.consumer_data_set.is_empty();
    let addrs = broker_addrs(instance, masters_only);
    let sends = addrs.iter().map(|addr| send(instance, addr, data.clone()));
    futures::future::join_all(sends).await;
}

/// A new connection to `addr` opened. A broker that restarted has forgotten
/// this client's groups (its pulls would get SUBSCRIPTION_NOT_EXIST until the
/// next 30 s heartbeat), so, as Java 5.x does on a channel connect, a known
/// broker gets a heartbeat at once and, once the broker has taken it, the
/// consumers rebalance. A heartbeat that failed (refused, timed out) is no
/// reason to rebalance, as in Java: the broker does not list this client
/// among the group's members then, and a rebalance on that list would give
/// up the client's queues. Runs on the instance's own task, so the
/// connection's setup is not held up.
pub(super) fn on_new_connection(instance: &ClientInstance, addr: &str) {
    lock(&instance.inner().heartbeated).remove(addr);
    if !broker_addrs(instance, false)
        .iter()
        .any(|known| known == addr)
    {
        return; // a nameserver, or a broker no route names yet
    }
    let tasks = instance.task_tracker().clone();
    let cancel = instance.cancellation_token().clone();
    let instance = instance.clone();
    let addr = addr.to_owned();
    tasks.spawn(async move {
        tokio::select! {
            () = cancel.cancelled() => {}
            sent = send_to(&instance, &addr) => {
                if sent {
                    tracing::debug!(%addr, "heartbeat after a new connection; rebalancing");
                    instance.request_rebalance(None);
                }
            }
        }
    });
}

/// Sends the heartbeat to one broker; whether the broker took it (false
/// too when the client has no group to report).
pub(super) async fn send_to(instance: &ClientInstance, addr: &str) -> bool {
    let _sending = instance.inner().heartbeat_gate.read().await;
    match heartbeat_data(instance) {
        Some(data) => send(instance, addr, data).await,
        None => false,
    }
}

/// Sends `data` to `addr`; whether the broker answered it with success.
async fn send(instance: &ClientInstance, addr: &str, data: HeartbeatData) -> bool {
    match instance.broker_api().heartbeat(addr, data).await {
        Ok(version) => {
            lock(&instance.inner().heartbeated).insert(addr.to_owned());
            tracing::debug!(%addr, broker_version = version, "heartbeat sent");
            true
        }
        Err(error) => {
            tracing::warn!(%addr, %error, "heartbeat failed");
            false
        }
    }
}
