//! GET_CONSUMER_RUNNING_INFO of a push consumer (PROTOCOL.md §7.3): its
//! settings, subscriptions, the queue table of its process queues with the
//! committed offsets, and the status table from its counters.

use rocketmq_model::time::epoch_millis;
use std::collections::BTreeMap;
use std::time::SystemTime;

use rocketmq_kernel::ConsumerOptions;
use rocketmq_model::ConsumerRunningInfo;
use rocketmq_model::body::property_keys::{
    PROP_CONSUME_ORDERLY, PROP_CONSUME_TYPE, PROP_CONSUMER_START_TIMESTAMP,
    PROP_THREADPOOL_CORE_SIZE,
};
use rocketmq_model::body::{ConsumeFromWhere, ConsumeType};
use tokio::time::Instant;

use super::core::PushCore;

/// The running info of `core` (the instance adds the client-level
/// properties).
pub(crate) fn build(core: &PushCore) -> ConsumerRunningInfo {
    let now = Instant::now();
    let wall_now = SystemTime::now();
    let committed = core.store.snapshot();
    let mut mq_table = BTreeMap::new();
    let mut mq_pop_table = BTreeMap::new();
    if let Some(rebalancer) = core.rebalancer() {
        for (mq, pq) in rebalancer.process_queues() {
            let mut info = pq.info(now, wall_now);
            info.commit_offset = committed.get(&mq).copied().unwrap_or(-1);
            mq_table.insert(mq, info);
        }
        mq_pop_table.extend(rebalancer.pop_queues());
    }
    let subscription_set = core.all_subscriptions();
    let topics: Vec<String> = subscription_set.iter().map(|s| s.topic.clone()).collect();
    let status_table = core
        .status
        .report(&core.consume_stats, &core.pull_stats, &topics, now);
    ConsumerRunningInfo {
        properties: properties(core),
        subscription_set,
        mq_table,
        // Java sends the table whether or not anything is popped.
        mq_pop_table: Some(mq_pop_table),
        status_table,
        ..ConsumerRunningInfo::default()
    }
}

/// The consumer's settings under Java's property names, and the `PROP_*`
/// entries.
fn properties(core: &PushCore) -> BTreeMap<String, String> {
    let options: &ConsumerOptions = &core.options;
    let orderly = core.listener.is_orderly();
    let millis = |d: std::time::Duration| d.as_millis().to_string();
    let mut props: BTreeMap<String, String> = [
        ("consumerGroup", options.group.clone()),
        (
            "messageModel",
            format!("{:?}", options.message_model).to_uppercase(),
        ),
        (
            "consumeFromWhere",
            from_where_name(options.consume_from_where).to_owned(),
        ),
        (
            "consumeTimestamp",
            epoch_millis(options.consume_timestamp).to_string(),
        ),
        ("pullBatchSize", options.pull_batch_size.to_string()),
        (
            "pullThresholdForQueue",
            options.pull_threshold_for_queue.to_string(),
        ),
        (
            "pullThresholdSizeForQueue",
            (options.pull_threshold_size_for_queue / (1024 * 1024)).to_string(),
        ),
        (
            "pullThresholdForTopic",
            options
                .pull_threshold_for_topic
                .map_or(-1, |v| v as i64)
                .to_string(),
        ),
        (
            "pullThresholdSizeForTopic",
            options
                .pull_threshold_size_for_topic
                .map_or(-1, |v| (v / (1024 * 1024)) as i64)
                .to_string(),
        ),
        (
            "consumeConcurrentlyMaxSpan",
            options.consume_concurrently_max_span.to_string(),
        ),
        ("pullInterval", millis(options.pull_interval)),
        (
            "consumeMessageBatchMaxSize",
            options.consume_message_batch_max_size.to_string(),
        ),
        ("consumeThreadMin", options.consume_thread_max.to_string()),
        ("consumeThreadMax", options.consume_thread_max.to_string()),
        (
            "maxReconsumeTimes",
            options.max_reconsume_times.unwrap_or(-1).to_string(),
        ),
        (
            "suspendCurrentQueueTimeMillis",
            millis(options.suspend_current_queue_time),
        ),
        (
            "consumeTimeout",
            (options.consume_timeout.as_secs() / 60).to_string(),
        ),
        (
            "postSubscriptionWhenPull",
            options.post_subscription_when_pull.to_string(),
        ),
        ("unitMode", "false".to_owned()),
        ("clientRebalance", options.client_rebalance.to_string()),
        ("popInvisibleTime", millis(options.pop_invisible_time)),
        ("popBatchNums", options.pop_batch_nums.to_string()),
        (
            "popThresholdForQueue",
            options.pop_threshold_for_queue.to_string(),
        ),
        (PROP_CONSUME_ORDERLY, orderly.to_string()),
        (
            PROP_CONSUME_TYPE,
            ConsumeType::ConsumePassively.as_str().to_owned(),
        ),
        (
            PROP_THREADPOOL_CORE_SIZE,
            options.consume_thread_max.to_string(),
        ),
        (
            PROP_CONSUMER_START_TIMESTAMP,
            epoch_millis(core.started_at).to_string(),
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    props.insert("clientId".to_owned(), core.client_id.clone());
    props
}

/// The Java enum name of `from`.
fn from_where_name(from: ConsumeFromWhere) -> &'static str {
    match from {
        ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
        ConsumeFromWhere::LastOffsetAndFromMinWhenBootFirst => {
            "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST"
        }
        ConsumeFromWhere::MinOffset => "CONSUME_FROM_MIN_OFFSET",
        ConsumeFromWhere::MaxOffset => "CONSUME_FROM_MAX_OFFSET",
        ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
        ConsumeFromWhere::Timestamp => "CONSUME_FROM_TIMESTAMP",
    }
}
