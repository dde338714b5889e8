//! Reviving popped messages nobody acknowledged (Java's `PopReviveService`):
//! when a pop's invisible time ends, each of its messages not acknowledged
//! is written to the group's pop retry topic, `%RETRY%<group>_<topic>`
//! (created on demand with one readable and writable queue, the group's
//! offset on it committed at 0), where the group's next pops find it.
//!
//! The revived message keeps the body, flag, tags, born time, sys flag and
//! every property of the message popped, with reconsume times one more, the
//! broker as born host, and `1ST_POP_TIME` set to the pop's time on its
//! first revive (`reviveRetry`). Java's broker revives a message however
//! often it was reconsumed: moving it to `%DLQ%<group>` past the group's max
//! reconsume times is the consumer's work (a send-back), not the broker's.
//! A checkpoint whose topic or group the broker no longer knows is dropped,
//! as Java's `mergeAndRevive` skips it.
//!
//! Java's revive service scans its revive topic every second and revives a
//! checkpoint a few seconds after its time; this one revives it at its time
//! exactly, on tokio's clock, so paused-time tests move past an invisible
//! time with `tokio::time::advance`.

use std::sync::Arc;

use rocketmq_model::message::property;
use rocketmq_model::resource::{RETRY_TOPIC_PREFIX, pop_retry_topic_v1};
use rocketmq_model::route::perm;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::BrokerCore;
use super::super::store::{NewMessage, StoredMessage};
use super::inflight::Checkpoint;

/// Java's `PopAckConstants.retryQueueNum`.
const RETRY_QUEUE_NUM: i32 = 1;

/// Revives due checkpoints until `cancel` fires.
pub(crate) async fn run_reviver(core: Arc<BrokerCore>, cancel: CancellationToken) {
    loop {
        for checkpoint in core.pop.take_due(Instant::now()) {
            revive(&core, &checkpoint);
        }
        let next = core.pop.next_due();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = core.pop.wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// The subscribed topic a checkpoint's topic stands for (Java's
/// `KeyBuilder.parseNormalTopic`).
fn normal_topic<'a>(topic: &'a str, group: &str) -> &'a str {
    topic
        .strip_prefix(RETRY_TOPIC_PREFIX)
        .and_then(|rest| rest.strip_prefix(group))
        .and_then(|rest| rest.strip_prefix(['_', '+']))
        .unwrap_or(topic)
}

fn revive(core: &BrokerCore, checkpoint: &Checkpoint) {
    let (group, topic) = (&checkpoint.group, &checkpoint.topic);
    let normal = normal_topic(topic, group);
    if core.topics.get(normal).is_none() || !core.subscription_groups.contains(group) {
        tracing::warn!(
            topic,
            group,
            "checkpoint of an unknown topic or group dropped"
        );
        return;
    }
    let retry_topic = if topic.starts_with(RETRY_TOPIC_PREFIX) {
        topic.clone()
    } else {
        pop_retry_topic_v1(topic, group)
    };
    for offset in checkpoint.unacked() {
        let Some(message) = core.store.message_at(topic, checkpoint.queue_id, offset) else {
            tracing::warn!(topic, offset, "popped message no longer stored");
            continue;
        };
        if let Err(error) = revive_retry(core, checkpoint, &message, &retry_topic) {
            tracing::warn!(topic, offset, %error, "popped message not revived");
        }
    }
}

/// Java's `reviveRetry`.
fn revive_retry(
    core: &BrokerCore,
    checkpoint: &Checkpoint,
    popped: &StoredMessage,
    retry_topic: &str,
) -> rocketmq_model::Result<()> {
    let ext = &popped.ext;
    let mut message = ext.message.clone();
    message.topic = retry_topic.to_owned();
    if ext.reconsume_times == 0 || !message.properties.contains(property::FIRST_POP_TIME) {
        (message.properties).insert(property::FIRST_POP_TIME, checkpoint.pop_time.to_string())?;
    }
    let created = core.topics.get(retry_topic).is_none();
    core.internal_topic(retry_topic, RETRY_QUEUE_NUM, perm::READ | perm::WRITE);
    if created
        && core
            .offsets
            .get(&checkpoint.group, retry_topic, 0)
            .is_none()
    {
        // Java's `initPopRetryOffset`.
        core.offsets.commit(&checkpoint.group, retry_topic, 0, 0);
    }
    core.put_message(NewMessage {
        message,
        queue_id: 0,
        sys_flag: ext.sys_flag,
        born_timestamp: ext.born_timestamp,
        born_host: core.store.store_host(),
        reconsume_times: ext.reconsume_times.wrapping_add(1),
        prepared_transaction_offset: 0,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_topic_of_a_retry_topic() {
        assert_eq!(normal_topic("T", "g"), "T");
        assert_eq!(normal_topic("%RETRY%g_T", "g"), "T");
        assert_eq!(normal_topic("%RETRY%g+T", "g"), "T");
        assert_eq!(normal_topic("%RETRY%h_T", "g"), "%RETRY%h_T");
    }
}
