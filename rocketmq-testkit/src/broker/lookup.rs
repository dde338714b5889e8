//! VIEW_MESSAGE_BY_ID (33), QUERY_MESSAGE (12) and UPDATE_AND_CREATE_TOPIC
//! (17).

use bytes::BytesMut;
use rocketmq_model::ResponseCode;
use rocketmq_model::header::{
    CreateTopicRequestHeader, QueryMessageRequestHeader, QueryMessageResponseHeader,
    ViewMessageRequestHeader,
};
use rocketmq_model::resource::is_system_topic;
use rocketmq_remoting::RemotingCommand;

use super::topics::TopicConfig;
use super::{ConnCtx, replies};
use crate::reply::{self, header};

/// Java's `defaultQueryMaxNum`, the cap of a unique-key query.
const DEFAULT_QUERY_MAX: usize = 32;
/// Java's `maxMsgsNumBatch`, the cap of any query.
const QUERY_MAX: usize = 64;

/// VIEW_MESSAGE_BY_ID: the record at a commit-log offset.
pub(crate) fn view(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, ViewMessageRequestHeader);
    match ctx.core.store.by_commit_log_offset(header.offset) {
        Some(stored) => reply::ok().with_body(stored.record.clone()),
        None => reply::error(
            ResponseCode::SYSTEM_ERROR,
            format!("can not find message by the offset, {}", header.offset),
        ),
    }
}

/// QUERY_MESSAGE: messages indexed under a key (KEYS entries and UNIQ_KEY).
pub(crate) fn query(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, QueryMessageRequestHeader);
    let max = if header.unique_key_query {
        DEFAULT_QUERY_MAX
    } else {
        usize::try_from(header.max_num).unwrap_or(0).min(QUERY_MAX)
    };
    let (found, (timestamp, phy_offset)) = ctx.core.store.query(
        &header.topic,
        &header.key,
        max,
        header.begin_timestamp,
        header.end_timestamp,
    );
    if found.is_empty() {
        return reply::error(
            ResponseCode::QUERY_NOT_FOUND,
            "can not find message, maybe time range not correct",
        );
    }
    let mut body = BytesMut::new();
    for message in &found {
        body.extend_from_slice(&message.record);
    }
    let response_header = QueryMessageResponseHeader {
        index_last_update_timestamp: timestamp,
        index_last_update_phyoffset: phy_offset,
    };
    reply::ok_with(&response_header).with_body(body.freeze())
}

/// UPDATE_AND_CREATE_TOPIC: creates or updates a topic on this broker. An
/// invalid name, or a system topic (Java 5.1+'s default
/// `validateSystemTopicWhenUpdateTopic`: the named ones, `rmq_sys_` topics,
/// and the cluster's, the broker's and the reply topic the broker made at
/// start), is refused with INVALID_PARAMETER.
pub(crate) fn create_topic(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, CreateTopicRequestHeader);
    if let Err(error) = rocketmq_model::message::validate_topic(&header.topic) {
        return reply::error(ResponseCode::INVALID_PARAMETER, error.to_string());
    }
    let settings = &ctx.core.settings;
    let (reply_topic, _) = replies::reply_topic(&settings.cluster);
    let topic = header.topic.as_str();
    if is_system_topic(topic)
        || [
            settings.cluster.as_str(),
            settings.name.as_str(),
            &reply_topic,
        ]
        .contains(&topic)
    {
        return reply::error(
            ResponseCode::INVALID_PARAMETER,
            format!("The topic[{topic}] is conflict with system topic."),
        );
    }
    let config = TopicConfig {
        read_queue_nums: header.read_queue_nums,
        write_queue_nums: header.write_queue_nums,
        perm: header.perm,
        topic_sys_flag: header.topic_sys_flag.unwrap_or(0),
    };
    ctx.core.create_topic(&header.topic, config);
    reply::ok()
}
