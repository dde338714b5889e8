//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320)
//! (Java's `SendMessageProcessor`): topic checks and auto-creation, retry
//! topics turning into the DLQ, half messages, delays, and the response.

use std::sync::Arc;

use rand::Rng;
use rocketmq_model::header::{
    DEFAULT_REGION, SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rocketmq_model::message::sysflag::{self, TransactionType};
use rocketmq_model::message::{delay_level_of, property, validate_topic};
use rocketmq_model::route::perm;
use rocketmq_model::{Message, Properties, RequestCode, ResponseCode, decode_batch};
use rocketmq_remoting::RemotingCommand;

use super::pull::FAQ;
use super::retry::{self, DLQ_PREFIX, RETRY_PREFIX};
use super::store::{NewMessage, StoredMessage};
use super::topics::{Lookup, TopicConfig};
use super::{BrokerCore, ConnCtx, delay, recall, transaction};
use crate::reply::{self, Rejection, header};

/// Topics clients may not send to (Java's `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
const NOT_ALLOWED: [&str; 6] = [
    delay::SCHEDULE_TOPIC,
    transaction::HALF_TOPIC,
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    transaction::CHECK_MAX_TOPIC,
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// The MQVersion ordinal from which `maxReconsumeTimes` in the request counts.
pub(crate) const V3_4_9: i32 = 121;

/// Answers a send of any of the three kinds. A retry-topic send goes to the
/// DLQ when its reconsume count exceeds the limit or the group holds queue
/// locks (orderly consumption), as in Java 5.x.
pub(crate) fn handle(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = if request.request_code() == RequestCode::SEND_MESSAGE {
        header!(request, SendMessageRequestHeader)
    } else {
        header!(request, SendMessageRequestHeaderV2).0
    };
    let batch = request.request_code() == RequestCode::SEND_BATCH_MESSAGE;
    match store_sent(ctx, request, &header, batch) {
        Ok(sent) => sent.response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// What was stored for one send.
struct Sent {
    queue_id: i32,
    stored: Vec<Arc<StoredMessage>>,
    transaction_id: Option<String>,
    recall_handle: Option<String>,
}

impl Sent {
    fn response(&self) -> RemotingCommand {
        let msg_id = self
            .stored
            .iter()
            .map(|m| m.offset_msg_id())
            .collect::<Vec<_>>()
            .join(",");
        let header = SendMessageResponseHeader {
            msg_id,
            queue_id: self.queue_id,
            queue_offset: self.stored.first().map_or(0, |m| m.ext.queue_offset),
            transaction_id: self.transaction_id.clone(),
            recall_handle: self.recall_handle.clone(),
            msg_region: Some(DEFAULT_REGION.to_owned()),
            trace_on: Some(true),
            ..SendMessageResponseHeader::default()
        };
        reply::ok_with(&header)
    }
}

fn store_sent(
    ctx: &ConnCtx,
    request: &RemotingCommand,
    header: &SendMessageRequestHeader,
    batch: bool,
) -> Result<Sent, Rejection> {
    let core = &ctx.core;
    let config = topic_for_send(core, header)?;
    let mut queue_id = header.queue_id;
    if queue_id < 0 {
        queue_id = rand::rng().random_range(0..config.write_queue_nums.max(1));
    }
    if queue_id >= config.queue_count() {
        // Java 5.3's msgCheck; earlier brokers answered SYSTEM_ERROR, which
        // producers retry.
        return Err(reply::reject(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "request queueId[{queue_id}] is illegal, topic:{} Producer: {}",
                header.topic, ctx.peer
            ),
        ));
    }
    let mut topic = header.topic.to_string();
    let mut properties = Properties::parse(header.properties.as_deref().unwrap_or_default());
    // Java's `clearReservedProperties`: a popped message sent on keeps no
    // receipt handle, which would acknowledge another pop. Only the
    // request's own properties: a batch's messages keep theirs, as in Java.
    properties.remove(property::POP_CK);
    let batch_uniq_key = (batch)
        .then(|| properties.get(property::UNIQ_KEY).map(str::to_owned))
        .flatten();
    let reconsume_times = header.reconsume_times.unwrap_or(0);
    if let Some(group) = topic.strip_prefix(RETRY_PREFIX).map(str::to_owned) {
        if batch {
            return Err(reply::reject(
                ResponseCode::MESSAGE_ILLEGAL,
                format!("batch request does not support retry group {topic}"),
            ));
        }
        let max = max_reconsume_times(core, &group, request.version, header.max_reconsume_times);
        if reconsume_times > max || core.locks.any_live(&group) {
            properties.insert(property::DELAY, "-1").map_err(illegal)?;
            topic = retry::dead_letter_topic(core, &group);
            queue_id = 0;
        }
    }
    let new = |message: Message| NewMessage {
        message,
        queue_id,
        sys_flag: header.sys_flag,
        born_timestamp: header.born_timestamp,
        born_host: ctx.peer,
        reconsume_times,
        prepared_transaction_offset: 0,
    };
    let cluster = core.settings.cluster.clone();
    let stored = if batch {
        // Java's CommitLog.asyncPutMessages: a batch is neither delayed nor
        // transactional.
        let delayed = properties
            .get(property::DELAY)
            .and_then(delay_level_of)
            .is_some();
        let transactional =
            sysflag::transaction_type(header.sys_flag) != TransactionType::NotTransaction;
        if delayed || transactional {
            return Err(reply::reject(
                ResponseCode::MESSAGE_ILLEGAL,
                "a batch may not be delayed or transactional",
            ));
        }
        let messages = decode_batch(request.body.clone(), &topic).map_err(illegal)?;
        // Each message keeps its own properties; the batch's (WAIT, CLUSTER)
        // are not copied into them (Java 5.x `MessageExtEncoder`).
        core.store
            .put_all(messages.into_iter().map(new).collect())
            .map_err(illegal)?
    } else {
        if !properties.contains(property::UNIQ_KEY) {
            properties
                .insert(property::UNIQ_KEY, core.unique_ids.next_id())
                .map_err(illegal)?;
        }
        properties
            .insert(property::CLUSTER, cluster)
            .map_err(illegal)?;
        // Java's broker marks every message it stores with its region and
        // whether it traces (AbstractSendMessageProcessor); consumers'
        // message traces read them.
        properties
            .insert(property::MSG_REGION, DEFAULT_REGION)
            .map_err(illegal)?;
        properties
            .insert(property::TRACE_ON, "true")
            .map_err(illegal)?;
        let message = Message {
            topic,
            body: request.body.clone(),
            flag: header.flag,
            properties,
        };
        vec![store_one(core, new(message))?]
    };
    // Java answers a send with its message's UNIQ_KEY as transactionId,
    // transactional or not (`handlePutMessageResult`); a batch with the
    // batch's own, which its header has only from some clients.
    let transaction_id = match batch {
        true => batch_uniq_key,
        false => (stored.first()).and_then(|m| m.ext.message.uniq_key().map(str::to_owned)),
    };
    let recall_handle = (stored.first()).and_then(|m| recall::handle_for_send(core, request, m));
    Ok(Sent {
        queue_id,
        stored,
        transaction_id,
        recall_handle,
    })
}

/// Stores one message: a transactional one as a half message.
fn store_one(core: &BrokerCore, new: NewMessage) -> Result<Arc<StoredMessage>, Rejection> {
    let stored = if new.message.is_transaction_prepared() {
        transaction::park_half(core, new)
    } else {
        core.put_message(new)
    };
    stored.map_err(illegal)
}

fn illegal(error: rocketmq_model::ModelError) -> Rejection {
    reply::reject(ResponseCode::MESSAGE_ILLEGAL, error.to_string())
}

/// The group's retry limit, or the request's from clients of 3.4.9 on.
pub(crate) fn max_reconsume_times(
    core: &BrokerCore,
    group: &str,
    version: i32,
    requested: Option<i32>,
) -> i32 {
    match requested {
        Some(max) if version >= V3_4_9 => max,
        _ => core.retry_max_times(group),
    }
}

/// Java's `msgCheck`: a valid, allowed topic that exists (or is created now).
/// The topic's permission is not checked (Java checks it only for send-backs
/// to retry topics): producers keep off read-only topics by their routes.
pub(crate) fn topic_for_send(
    core: &BrokerCore,
    header: &SendMessageRequestHeader,
) -> Result<TopicConfig, Rejection> {
    let topic = &header.topic;
    validate_topic(topic)
        .map_err(|error| reply::reject(ResponseCode::INVALID_PARAMETER, error.to_string()))?;
    if NOT_ALLOWED.contains(&topic.as_str()) {
        return Err(reply::reject(
            ResponseCode::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    let lookup = if topic.starts_with(RETRY_PREFIX) || topic.starts_with(DLQ_PREFIX) {
        Lookup::Existing(core.internal_topic(topic, 1, perm::READ | perm::WRITE))
    } else {
        core.topics.get_or_create_for_send(
            topic,
            &header.default_topic,
            header.default_topic_queue_nums,
        )
    };
    if let Lookup::Created(config) = lookup {
        core.register_topic(topic, config);
    }
    let Some(config) = lookup.config() else {
        return Err(reply::reject(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please!{FAQ}"),
        ));
    };
    Ok(config)
}
