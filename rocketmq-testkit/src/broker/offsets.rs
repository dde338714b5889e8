//! Consumer offsets committed per group, topic and queue (Java's
//! `ConsumerOffsetManager`), which survive broker restarts, and the offset
//! requests of `ConsumerManageProcessor` and `AdminBrokerProcessor`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::body::{ConsumeStats, QueueOffsets};
use rocketmq_model::header::{
    BoundaryType, GetConsumeStatsRequestHeader, GetEarliestMsgStoretimeRequestHeader,
    GetEarliestMsgStoretimeResponseHeader, GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader,
    GetMinOffsetRequestHeader, GetMinOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::{MessageQueue, ResponseCode};
use rocketmq_remoting::RemotingCommand;

use super::{ConnCtx, server_reset};
use crate::reply::{self, header};

/// Committed offsets.
#[derive(Debug, Default)]
pub(crate) struct Offsets {
    table: Mutex<HashMap<(String, String), BTreeMap<i32, i64>>>,
}

impl Offsets {
    fn table(&self) -> MutexGuard<'_, HashMap<(String, String), BTreeMap<i32, i64>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `offset` for the group's queue.
    pub(crate) fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        self.table()
            .entry((group.to_owned(), topic.to_owned()))
            .or_default()
            .insert(queue_id, offset);
    }

    /// The group's committed offset of a queue.
    pub(crate) fn get(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.table()
            .get(&(group.to_owned(), topic.to_owned()))?
            .get(&queue_id)
            .copied()
    }

    /// The topics `group` has committed offsets of (Java's
    /// `whichTopicByConsumer`).
    pub(crate) fn topics_of(&self, group: &str) -> BTreeSet<String> {
        (self.table().keys())
            .filter(|(g, _)| g == group)
            .map(|(_, topic)| topic.clone())
            .collect()
    }
}

/// GET_CONSUME_STATS (Java's `AdminBrokerProcessor.getConsumeStats`): for
/// each topic asked (`topicList`, else `topic`, else every topic the group
/// has offsets of) that the broker has, each readable queue's max offset,
/// the group's offset (`queryOffset`: a pending server-side reset's, else
/// the committed one, 0 without one), and the store time of the
/// last message consumed. The testkit counts no rates (consumeTps 0) and
/// keeps no pull offsets apart (the committed one stands for it).
pub(crate) fn consume_stats(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, GetConsumeStatsRequestHeader);
    let core = &ctx.core;
    let group = &header.consumer_group;
    let listed: BTreeSet<String> = (header.topic_list.iter())
        .flat_map(|list| list.split(';'))
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect();
    let topics = match (listed.is_empty(), &header.topic) {
        (false, _) => listed,
        (true, Some(topic)) if !topic.trim().is_empty() => BTreeSet::from([topic.clone()]),
        (true, _) => core.offsets.topics_of(group),
    };
    let mut stats = ConsumeStats::default();
    for topic in topics {
        let Some(config) = core.topics.get(&topic) else {
            continue;
        };
        for queue_id in 0..config.read_queue_nums {
            let consumer_offset = server_reset::query_offset(core, group, &topic, queue_id)
                .unwrap_or(0)
                .max(0);
            let last_timestamp = (core.store)
                .store_time_at(&topic, queue_id, consumer_offset - 1)
                .unwrap_or(0);
            let offsets = QueueOffsets {
                broker_offset: core.store.max_offset(&topic, queue_id).max(0),
                consumer_offset,
                last_timestamp,
                pull_offset: consumer_offset,
            };
            let mq = MessageQueue::new(topic.clone(), core.name(), queue_id);
            stats.offset_table.insert(mq, offsets);
        }
    }
    match stats.encode() {
        Ok(body) => reply::ok().with_body(body),
        Err(error) => reply::error(ResponseCode::SYSTEM_ERROR, error.to_string()),
    }
}

/// QUERY_CONSUMER_OFFSET (Java 5.x): the offset of a server-side reset
/// pending for the queue, else the committed offset; without one (or
/// with a negative one), QUERY_NOT_FOUND when `setZeroIfNotFound` is false,
/// else 0 while the queue's first message is still held in memory (always
/// here: nothing is ever deleted), else QUERY_NOT_FOUND (an empty queue).
pub(crate) fn query(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, QueryConsumerOffsetRequestHeader);
    let core = &ctx.core;
    // Java's `queryOffset` answers -1 for none, so a negative offset
    // committed is taken for none too.
    let (group, topic) = (&header.consumer_group, &header.topic);
    if let Some(offset) = server_reset::query_offset(core, group, topic, header.queue_id)
        .filter(|&offset| offset >= 0)
    {
        return reply::ok_with(&QueryConsumerOffsetResponseHeader { offset });
    }
    if header.set_zero_if_not_found == Some(false) {
        return reply::error(
            ResponseCode::QUERY_NOT_FOUND,
            "Not found, do not set to zero, maybe this group boot first",
        );
    }
    let store = &core.store;
    let first_in_memory = store.min_offset(&header.topic, header.queue_id) <= 0
        && store.max_offset(&header.topic, header.queue_id) > 0;
    if first_in_memory {
        return reply::ok_with(&QueryConsumerOffsetResponseHeader { offset: 0 });
    }
    reply::error(
        ResponseCode::QUERY_NOT_FOUND,
        "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
    )
}

/// UPDATE_CONSUMER_OFFSET; SUBSCRIPTION_GROUP_NOT_EXIST for a group the
/// broker has never seen a consumer of, then TOPIC_NOT_EXIST for a topic it
/// does not have, as Java's `ConsumerManageProcessor.updateConsumerOffset`.
/// While a server-side reset of the queue is pending, the update is
/// answered SUCCESS and ignored (Java 5's `hasOffsetReset` check).
pub(crate) fn update(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, UpdateConsumerOffsetRequestHeader);
    let group = &header.consumer_group;
    if !ctx.core.subscription_groups.contains(group) {
        return reply::error(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("Group {group} not exist!"),
        );
    }
    if ctx.core.topics.get(&header.topic).is_none() {
        return reply::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("Topic {} not exist!", header.topic),
        );
    }
    if (ctx.core.resets).has(&header.topic, group, header.queue_id) {
        return reply::ok().with_remark("Offset has been previously reset");
    }
    ctx.core.offsets.commit(
        &header.consumer_group,
        &header.topic,
        header.queue_id,
        header.commit_offset,
    );
    reply::ok()
}

/// GET_MAX_OFFSET.
pub(crate) fn max(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, GetMaxOffsetRequestHeader);
    let offset = ctx.core.store.max_offset(&header.topic, header.queue_id);
    reply::ok_with(&GetMaxOffsetResponseHeader { offset })
}

/// GET_MIN_OFFSET.
pub(crate) fn min(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, GetMinOffsetRequestHeader);
    let offset = ctx.core.store.min_offset(&header.topic, header.queue_id);
    reply::ok_with(&GetMinOffsetResponseHeader { offset })
}

/// SEARCH_OFFSET_BY_TIMESTAMP.
pub(crate) fn search(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, SearchOffsetRequestHeader);
    let upper = header.boundary_type == Some(BoundaryType::Upper);
    let offset =
        ctx.core
            .store
            .search_offset(&header.topic, header.queue_id, header.timestamp, upper);
    reply::ok_with(&SearchOffsetResponseHeader { offset })
}

/// GET_EARLIEST_MSG_STORETIME.
pub(crate) fn earliest(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, GetEarliestMsgStoretimeRequestHeader);
    let timestamp = ctx
        .core
        .store
        .earliest_store_time(&header.topic, header.queue_id);
    reply::ok_with(&GetEarliestMsgStoretimeResponseHeader { timestamp })
}
