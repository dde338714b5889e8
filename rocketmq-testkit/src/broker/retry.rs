//! CONSUMER_SEND_MSG_BACK (36): a message a consumer failed on goes to
//! `%RETRY%<group>` with a delay level, or to `%DLQ%<group>` once it was
//! reconsumed the maximum number of times (Java's
//! `SendMessageProcessor.consumerSendMsgBack`).

use rocketmq_model::ResponseCode;
use rocketmq_model::header::ConsumerSendMsgBackRequestHeader;
use rocketmq_model::message::property;
use rocketmq_model::route::perm;
use rocketmq_remoting::RemotingCommand;

use super::send::max_reconsume_times;
use super::store::NewMessage;
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, header};

pub(crate) use rocketmq_model::resource::{
    DLQ_TOPIC_PREFIX as DLQ_PREFIX, RETRY_TOPIC_PREFIX as RETRY_PREFIX,
};
/// The level a first retry waits (10 s); later ones add the reconsume count.
const FIRST_RETRY_LEVEL: i32 = 3;

/// Creates (when missing) and names the group's DLQ topic: one queue,
/// readable and writable (5.x; 4.x brokers create it write-only).
pub(crate) fn dead_letter_topic(core: &BrokerCore, group: &str) -> String {
    let topic = format!("{DLQ_PREFIX}{group}");
    core.internal_topic(&topic, 1, perm::READ | perm::WRITE);
    topic
}

/// Answers a send-back.
pub(crate) fn send_back(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, ConsumerSendMsgBackRequestHeader);
    let core = &ctx.core;
    core.subscription_groups.note(&header.group);
    let retry_topic = format!("{RETRY_PREFIX}{}", header.group);
    let config = core.internal_topic(&retry_topic, 1, perm::READ | perm::WRITE);
    if !perm::is_writeable(config.perm) {
        return reply::error(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{retry_topic}] sending message is forbidden"),
        );
    }
    let Some(original) = core.store.by_commit_log_offset(header.offset) else {
        return reply::error(
            ResponseCode::SYSTEM_ERROR,
            format!("look message by offset failed, {}", header.offset),
        );
    };
    let ext = &original.ext;
    let max = max_reconsume_times(
        core,
        &header.group,
        request.version,
        header.max_reconsume_times,
    );
    let mut message = ext.message.clone();
    let to_dlq = ext.reconsume_times >= max || header.delay_level < 0;
    let result = (|| {
        let properties = &mut message.properties;
        if !properties.contains(property::RETRY_TOPIC) {
            properties.insert(property::RETRY_TOPIC, ext.message.topic.clone())?;
        }
        properties.insert(property::WAIT, "false")?;
        if !properties.contains(property::ORIGIN_MESSAGE_ID) {
            properties.insert(property::ORIGIN_MESSAGE_ID, original.offset_msg_id())?;
        }
        if to_dlq {
            message.properties.insert(property::DELAY, "0")?;
            message.topic = dead_letter_topic(core, &header.group);
        } else {
            let level = match header.delay_level {
                // Java's int arithmetic: a count near the top wraps to a
                // level below 1, which is no delay.
                0 => FIRST_RETRY_LEVEL.wrapping_add(ext.reconsume_times),
                level => level,
            };
            message
                .properties
                .insert(property::DELAY, level.to_string())?;
            message.topic = retry_topic;
        }
        core.put_message(NewMessage {
            message,
            queue_id: 0,
            sys_flag: ext.sys_flag,
            born_timestamp: ext.born_timestamp,
            born_host: ext.born_host,
            reconsume_times: ext.reconsume_times.wrapping_add(1),
            prepared_transaction_offset: ext.prepared_transaction_offset,
        })
    })();
    match result {
        Ok(_) => reply::ok(),
        Err(error) => reply::error(ResponseCode::SYSTEM_ERROR, error.to_string()),
    }
}
