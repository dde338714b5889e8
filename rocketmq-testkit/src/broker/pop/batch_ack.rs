//! BATCH_ACK_MESSAGE (200151), as Java's `AckMessageProcessor` reads it: a
//! JSON body of acknowledgements, one entry per pop of a queue, each a bit
//! set of offsets counted from the pop's start. An empty or missing body is
//! NO_MESSAGE; otherwise the answer is SUCCESS whatever the entries name:
//! an entry of a topic the broker does not have is skipped, as are offsets
//! outside the queue, and an offset that matches nothing in flight does
//! nothing (as a single ack of it).
//!
//! An entry of an orderly pop (revive queue 999) acknowledges each offset
//! as a single ACK_MESSAGE of it would ([`super::ack`]); when one is
//! MESSAGE_ILLEGAL, the answer is, with the last such remark, after every
//! entry was gone through (Java sets the code on the one response and goes
//! on).

use rocketmq_model::ResponseCode;
use rocketmq_model::body::BatchAckMessageRequestBody;
use rocketmq_model::message::pop::ORDERLY_REVIVE_QUEUE;
use rocketmq_model::resource::{pop_retry_topic_v1, pop_retry_topic_v2};
use rocketmq_remoting::RemotingCommand;

use super::super::ConnCtx;
use super::ack::{OrderlyAck, ack_orderly};
use super::inflight::Ack;
use crate::reply;

/// Answers BATCH_ACK_MESSAGE.
pub(crate) fn batch_ack(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let core = &ctx.core;
    let body = if request.body.is_empty() {
        None
    } else {
        match BatchAckMessageRequestBody::decode(&request.body) {
            Ok(body) => Some(body),
            Err(error) => return reply::error(ResponseCode::SYSTEM_ERROR, error.to_string()),
        }
    };
    let Some(body) = body.filter(|body| !body.acks.is_empty()) else {
        return RemotingCommand::response(ResponseCode::NO_MESSAGE, 0);
    };
    let mut illegal = None;
    for entry in &body.acks {
        let group = &entry.consumer_group;
        // Java's `ExtraInfoUtil.getRealTopic(topic, group, retry)`.
        let topic = match entry.retry.as_str() {
            "1" => pop_retry_topic_v1(&entry.topic, group),
            "2" => pop_retry_topic_v2(&entry.topic, group),
            _ => entry.topic.clone(),
        };
        if core.topics.get(&topic).is_none() {
            continue;
        }
        let orderly = (entry.revive_queue_id == ORDERLY_REVIVE_QUEUE).then(|| OrderlyAck {
            group,
            topic: &topic,
            queue_id: entry.queue_id,
            pop_time: entry.pop_time,
            invisible_time: entry.invisible_time,
        });
        let min = core.store.min_offset(&topic, entry.queue_id);
        let max = core.store.max_offset(&topic, entry.queue_id);
        for bit in entry.bits.iter() {
            let offset = entry.start_offset.saturating_add(i64::from(bit));
            if offset < min || offset > max {
                continue;
            }
            if let Some(orderly) = &orderly {
                if let Err(remark) = ack_orderly(ctx, orderly, offset) {
                    illegal = Some(remark);
                }
                continue;
            }
            core.pop.ack(&Ack {
                group,
                topic: &topic,
                queue_id: entry.queue_id,
                start_offset: entry.start_offset,
                pop_time: entry.pop_time,
                broker_name: &body.broker_name,
                revive_qid: entry.revive_queue_id,
                offset,
            });
        }
    }
    match illegal {
        Some(remark) => reply::error(ResponseCode::MESSAGE_ILLEGAL, remark),
        None => reply::ok(),
    }
}
