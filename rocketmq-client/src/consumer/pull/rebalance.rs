//! Which queues a subscribing pull consumer reads: per subscribed topic,
//! all readable queues (broadcasting) or this client's share by the
//! allocation strategy among the group's members (clustering), as a push
//! consumer's rebalance decides (PROTOCOL.md §8.5).

use std::collections::BTreeSet;
use std::sync::Arc;

use rand::Rng;
use rocketmq_kernel::KernelError;
use rocketmq_kernel::allocate::allocate_caught;
use rocketmq_model::MessageQueue;
use rocketmq_model::body::MessageModel;

use super::core::{Mode, PullCore};
use crate::error::{ClientError, Result};

/// One rebalance round (subscribe mode only): topics whose allocation
/// cannot be computed now keep their queues.
pub(crate) async fn run(core: &Arc<PullCore>) {
    if core.mode != Mode::Subscribe || core.cancel.is_cancelled() {
        return;
    }
    let _one_at_a_time = core.reassigning.lock().await;
    if core.cancel.is_cancelled() {
        return; // shut down while this round waited for the last
    }
    let current = core.assigned();
    let mut wanted = BTreeSet::new();
    for topic in core.subscriptions.topics() {
        match allocation(core, &topic).await {
            Ok(queues) => wanted.extend(queues),
            Err(err) => {
                tracing::warn!(group = core.group(), %topic, error = %err, "rebalance skipped the topic");
                wanted.extend(current.iter().filter(|mq| mq.topic == topic).cloned());
            }
        }
    }
    core.reassign(wanted).await;
}

async fn allocation(core: &PullCore, topic: &str) -> Result<Vec<MessageQueue>> {
    let queues = subscribe_queues(core, topic).await?;
    if core.options.message_model == MessageModel::Broadcasting {
        return Ok(queues);
    }
    let members = consumer_ids(core, topic).await?;
    // A panicking strategy skips the topic this round, as in the push
    // consumer's rebalancer.
    Ok(allocate_caught(
        core.strategy.as_ref(),
        core.group(),
        &core.client_id,
        &queues,
        &members,
    )?)
}

async fn subscribe_queues(core: &PullCore, topic: &str) -> Result<Vec<MessageQueue>> {
    if let Some(queues) = core.routes.table().subscribe_queues(topic) {
        return Ok(queues.to_vec());
    }
    core.routes.refresh(topic).await?;
    core.routes
        .table()
        .subscribe_queues(topic)
        .map(|queues| queues.to_vec())
        .ok_or_else(|| ClientError::NoRoute {
            topic: topic.to_owned(),
        })
}

/// The group's members, asked of a random broker of the topic.
async fn consumer_ids(core: &PullCore, topic: &str) -> Result<Vec<String>> {
    let route = core.routes.route(topic).await?;
    let no_route = || {
        ClientError::from(KernelError::NoRoute {
            topic: topic.to_owned(),
        })
    };
    if route.broker_datas.is_empty() {
        return Err(no_route());
    }
    let broker = &route.broker_datas[rand::rng().random_range(0..route.broker_datas.len())];
    let addr = broker.any_addr().ok_or_else(no_route)?;
    // (The metered API sends the heartbeat to a broker new to the client
    // that answers without knowing the group, and asks again.)
    Ok(core.api.consumer_list(addr, core.group()).await?)
}
