//! Recalling timer messages (Java 5.3.1+'s `RecallMessageProcessor`): a
//! stored timer message's send answers a recall handle, and RECALL_MESSAGE
//! with it takes the message back before it is due.

use rocketmq_model::header::{RecallMessageRequestHeader, RecallMessageResponseHeader};
use rocketmq_model::message::{RecallHandle, property};
use rocketmq_model::resource::is_retry_topic;
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::RemotingCommand;

use super::delay::{TIMER_MAX_DELAY_MS, TIMER_TOPIC};
use super::store::{StoredMessage, now_millis};
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, header};

/// The recall handle a send of `request` answers for `stored` (Java's
/// `SendMessageProcessor.attachRecallHandle`): a single message parked as a
/// timer message, not one on its way to a retry topic; due one millisecond
/// after its timer, as Java's broker writes it.
pub(crate) fn handle_for_send(
    core: &BrokerCore,
    request: &RemotingCommand,
    stored: &StoredMessage,
) -> Option<String> {
    let single = matches!(
        request.request_code(),
        RequestCode::SEND_MESSAGE | RequestCode::SEND_MESSAGE_V2
    );
    let message = &stored.ext.message;
    let due: i64 = message.property(property::TIMER_OUT_MS)?.parse().ok()?;
    let topic = message.property(property::REAL_TOPIC)?;
    if !single || is_retry_topic(topic) {
        return None;
    }
    let id = message.uniq_key()?;
    let handle = RecallHandle::new(topic, &core.settings.name, due.saturating_add(1), id);
    Some(handle.encode())
}

/// RECALL_MESSAGE, checked in Java's order: recalls allowed
/// (`recallMessageEnable`, else NO_PERMISSION), the topic known
/// (TOPIC_NOT_EXIST), the handle readable, for this topic and broker, and
/// its time still ahead, within the timer's longest delay (each else
/// ILLEGAL_OPERATION). Answers the message's unique id. As Java's, a handle
/// of no message is recalled all the same; one of a message already
/// delivered is refused as Java refuses it once the time has passed (the
/// testkit delivers on tokio's clock, which tests may move ahead of the
/// wall clock).
pub(crate) fn recall(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, RecallMessageRequestHeader);
    let core = &ctx.core;
    if !core.settings.recall_messages {
        return reply::error(
            ResponseCode::NO_PERMISSION,
            "recall failed, operation is forbidden",
        );
    }
    if core.topics.get(&header.topic).is_none() {
        return reply::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("recall failed, the topic[{}] not exist", header.topic),
        );
    }
    let illegal = |remark: &str| reply::error(ResponseCode::ILLEGAL_OPERATION, remark);
    let Ok(handle) = RecallHandle::parse(&header.recall_handle) else {
        return illegal("recall handle is invalid");
    };
    if handle.topic() != header.topic {
        return illegal("recall failed, topic not match");
    }
    if handle.broker_name() != core.settings.name {
        return illegal("recall failed, broker service not available");
    }
    let time_left = handle
        .deliver_ms()
        .unwrap_or(-1)
        .saturating_sub(now_millis());
    if time_left <= 0 || time_left >= TIMER_MAX_DELAY_MS || !cancel(core, &handle) {
        return illegal("recall failed, timestamp invalid");
    }
    reply::ok_with(&RecallMessageResponseHeader {
        msg_id: handle.message_id().to_owned(),
    })
}

/// Takes the parked message `handle` names out of the schedule; false when
/// it was delivered already.
fn cancel(core: &BrokerCore, handle: &RecallHandle) -> bool {
    let parked = core.store.messages(TIMER_TOPIC, 0);
    let named = parked.iter().find(|stored| {
        let message = &stored.ext.message;
        message.uniq_key() == Some(handle.message_id())
            && message.property(property::REAL_TOPIC) == Some(handle.topic())
    });
    match named {
        Some(stored) => core.schedule.recall(stored.ext.commit_log_offset),
        None => true,
    }
}
