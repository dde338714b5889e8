//! SEND_REPLY_MESSAGE (324) and SEND_REPLY_MESSAGE_V2 (325) (Java's
//! `ReplyMessageProcessor`): a reply is pushed to the client its
//! REPLY_TO_CLIENT names (PUSH_REPLY_MESSAGE_TO_CLIENT on a connection where
//! that client registered a producer), then stored in the reply topic. The
//! answer says whether the push succeeded.

use std::time::Duration;

use rand::Rng;
use rocketmq_model::header::{
    DEFAULT_REGION, ReplyMessageRequestHeader, SendMessageRequestHeader,
    SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rocketmq_model::message::property;
use rocketmq_model::{Message, Properties, RequestCode, ResponseCode};
use rocketmq_remoting::RemotingCommand;

use super::store::{NewMessage, now_millis};
use super::topics::TopicConfig;
use super::{BrokerCore, ConnCtx, send};
use crate::reply::{self, header};

/// The reply topic of a cluster (Java's `MixAll.getReplyTopic`), which every
/// broker creates at start with one queue.
pub(crate) fn reply_topic(cluster: &str) -> (String, TopicConfig) {
    (format!("{cluster}_REPLY_TOPIC"), TopicConfig::new(1, 1))
}

/// How long the requester may take to take the pushed reply (Java's
/// `Broker2Client#callClient`).
const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers a reply send: pushes it, then stores it.
pub(crate) async fn handle(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = if request.request_code() == RequestCode::SEND_REPLY_MESSAGE {
        header!(request, SendMessageRequestHeader)
    } else {
        header!(request, SendMessageRequestHeaderV2).0
    };
    let queue_id = match send::topic_for_send(&ctx.core, &header) {
        Ok(config) if header.queue_id < 0 => {
            rand::rng().random_range(0..config.write_queue_nums.max(1))
        }
        Ok(_) => header.queue_id,
        Err(rejection) => return rejection.into_response(),
    };
    let mut properties = Properties::parse(header.properties.as_deref().unwrap_or_default());
    // As on every send (Java's `buildMsgContext`, which a reply goes
    // through too): in the pushed reply and the stored one.
    for (name, value) in [
        (property::MSG_REGION, DEFAULT_REGION),
        (property::TRACE_ON, "true"),
    ] {
        if let Err(error) = properties.insert(name, value) {
            return reply::error(ResponseCode::MESSAGE_ILLEGAL, error.to_string());
        }
    }
    let pushed = push(ctx, &header, &properties, request).await;
    let response = match &pushed {
        Ok(()) => reply::ok(),
        Err(remark) => reply::error(ResponseCode::SYSTEM_ERROR, remark.clone()),
    };
    // Java's default `storeReplyMessageEnable`: stored whatever the push did.
    let stored = ctx.core.store.put(NewMessage {
        message: Message {
            topic: header.topic.to_string(),
            body: request.body.clone(),
            flag: header.flag,
            properties,
        },
        queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: ctx.peer,
        reconsume_times: header.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
    });
    let (msg_id, queue_offset) = match stored {
        Ok(stored) => (stored.offset_msg_id(), stored.ext.queue_offset),
        // Java answers a pushed reply with "0", so clients decode it.
        Err(_) => ("0".to_owned(), 0),
    };
    let answer = SendMessageResponseHeader {
        msg_id,
        queue_id,
        queue_offset,
        msg_region: Some(DEFAULT_REGION.to_owned()),
        trace_on: Some(true),
        ..SendMessageResponseHeader::default()
    };
    response.with_header(&answer)
}

/// PUSH_REPLY_MESSAGE_TO_CLIENT to the requester; the remark Java answers
/// with when it fails.
async fn push(
    ctx: &ConnCtx,
    header: &SendMessageRequestHeader,
    properties: &Properties,
    request: &RemotingCommand,
) -> Result<(), String> {
    let core: &BrokerCore = &ctx.core;
    let Some(client_id) = properties.get(property::REPLY_TO_CLIENT) else {
        return Err(format!(
            "reply message properties[{}] is null",
            property::REPLY_TO_CLIENT
        ));
    };
    let Some(conn) = core.groups.producer_connection_of(client_id) else {
        return Err(format!(
            "push reply message fail, channel of <{client_id}> not found."
        ));
    };
    let mut pushed = properties.clone();
    pushed
        .insert(property::PUSH_REPLY_TIME, now_millis().to_string())
        .map_err(|error| error.to_string())?;
    let push_header = ReplyMessageRequestHeader {
        producer_group: header.producer_group.to_string(),
        topic: header.topic.to_string(),
        default_topic: header.default_topic.to_string(),
        default_topic_queue_nums: header.default_topic_queue_nums,
        queue_id: header.queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        flag: header.flag,
        properties: Some(pushed.encode()),
        reconsume_times: header.reconsume_times,
        unit_mode: header.unit_mode.unwrap_or(false),
        born_host: ctx.peer.to_string(),
        store_host: core.store.store_host().to_string(),
        store_timestamp: now_millis(),
        broker_name: None,
    };
    let cmd = RemotingCommand::request_with_header(
        RequestCode::PUSH_REPLY_MESSAGE_TO_CLIENT,
        &push_header,
    )
    .with_body(request.body.clone());
    match tokio::time::timeout(PUSH_TIMEOUT, conn.send(cmd)).await {
        Ok(Ok(answer)) if answer.response_code() == ResponseCode::SUCCESS => Ok(()),
        _ => Err(format!("push reply message to {client_id}fail.")),
    }
}
