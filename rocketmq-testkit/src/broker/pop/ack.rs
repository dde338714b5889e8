//! ACK_MESSAGE (200051) and CHANGE_MESSAGE_INVISIBLETIME (200053), as
//! Java's `AckMessageProcessor` and `ChangeInvisibleTimeProcessor` (revive
//! log, no buffer merge, no KV service).
//!
//! Java writes an acknowledgement to the revive queue named in the handle,
//! where its revive service later matches it against the pop's checkpoint
//! by topic, group, queue, start offset, pop time and broker name: an
//! acknowledgement that matches nothing in flight (the message was revived
//! or acknowledged already, or the handle is made up) is answered SUCCESS
//! and does nothing. So it is here.
//!
//! Changing the invisible time adds a checkpoint of the one message, popped
//! now, in the old handle's revive queue, then acknowledges the old pop.
//! Java does not look whether the old pop is still in flight: a change of a
//! message already acknowledged or revived makes it come back once more when
//! the new invisible time ends. So it does here.
//!
//! A handle of an orderly pop (revive queue 999) is Java's `ackOrderly` and
//! `processChangeInvisibleTimeForOrder`, on the order state of
//! [`super::orderly`]. An offset below the group's committed one is
//! answered SUCCESS and does nothing (a change answers no header then, as
//! Java's). An acknowledgement marks the offset in the queue's last orderly
//! pop, if the handle's pop time is that pop's (else it does nothing), and
//! commits the offset up to that pop's first unacknowledged message (not
//! while a server-side reset of the queue is pending, whose offset also
//! stands for the committed one then: Java's `hasOffsetReset` and
//! `queryOffset`); one
//! the pop did not answer is MESSAGE_ILLEGAL, and one of a queue without an
//! orderly pop commits the offset past itself, as Java's `commitAndNext`
//! answers. When the queue no longer blocks, the orderly pops held for it
//! wake. A change sets the message's next visible time to now plus the new
//! invisible time (if the handle's pop is the queue's last) and answers the
//! handle's pop time, revive queue 999, and the invisible time counted from
//! that pop; the client keeps its handle. Java measures that from the wall
//! clock; here from the pop's time on tokio's clock when the pop is the
//! queue's last one, else from the wall clock.

use std::time::Duration;

use rocketmq_model::ResponseCode;
use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
};
use rocketmq_model::message::pop::ORDERLY_REVIVE_QUEUE;
use rocketmq_remoting::RemotingCommand;
use tokio::time::Instant;

use super::super::pull::FAQ;
use super::super::server_reset;
use super::super::store::now_millis;
use super::super::{BrokerCore, ConnCtx};
use super::inflight::{Ack, Checkpoint};
use super::orderly;
use crate::reply::{self, Rejection, header};

/// Answers ACK_MESSAGE.
pub(crate) fn ack(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, AckMessageRequestHeader);
    let core = &ctx.core;
    if let Err(rejection) = check_queue(ctx, &header.topic, header.queue_id) {
        return rejection.into_response();
    }
    let (min, max) = bounds(core, &header.topic, header.queue_id);
    if header.offset < min || header.offset > max {
        return reply::error(
            ResponseCode::NO_MESSAGE,
            format!(
                "offset is illegal, key:{}@{}, commit:{}, store:{min}~{max}",
                header.topic, header.queue_id, header.offset
            ),
        );
    }
    let info = ExtraInfo::split(&header.extra_info);
    let parsed = (|| {
        let broker_name = info.broker_name()?;
        let revive_qid = info.revive_qid()?;
        let start_offset = info.ck_queue_offset()?;
        let pop_time = info.pop_time()?;
        let invisible_time = info.invisible_time()?;
        Ok::<_, String>((
            broker_name,
            revive_qid,
            start_offset,
            pop_time,
            invisible_time,
        ))
    })();
    let (broker_name, revive_qid, start_offset, pop_time, invisible_time) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return reply::error(ResponseCode::SYSTEM_ERROR, error),
    };
    if revive_qid == ORDERLY_REVIVE_QUEUE {
        let ack = OrderlyAck {
            group: &header.consumer_group,
            topic: &header.topic,
            queue_id: header.queue_id,
            pop_time,
            invisible_time,
        };
        return match ack_orderly(ctx, &ack, header.offset) {
            Ok(()) => reply::ok(),
            Err(remark) => reply::error(ResponseCode::MESSAGE_ILLEGAL, remark),
        };
    }
    core.pop.ack(&Ack {
        group: &header.consumer_group,
        topic: &header.topic,
        queue_id: header.queue_id,
        start_offset,
        pop_time,
        broker_name,
        revive_qid,
        offset: header.offset,
    });
    reply::ok()
}

/// Answers CHANGE_MESSAGE_INVISIBLETIME: the message's new pop.
pub(crate) fn change_invisible_time(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, ChangeInvisibleTimeRequestHeader);
    let core = &ctx.core;
    if let Err(rejection) = check_queue(ctx, &header.topic, header.queue_id) {
        return rejection.into_response();
    }
    let (min, max) = bounds(core, &header.topic, header.queue_id);
    // Java: no remark, and the max offset itself is refused too.
    if header.offset < min || header.offset >= max {
        return RemotingCommand::response(ResponseCode::NO_MESSAGE, 0);
    }
    let info = ExtraInfo::split(&header.extra_info);
    let parsed = (|| {
        let revive_qid = info.revive_qid()?;
        if revive_qid == ORDERLY_REVIVE_QUEUE {
            return Ok(Err(info.pop_time()?));
        }
        let broker_name = info.broker_name()?;
        let start_offset = info.ck_queue_offset()?;
        let pop_time = info.pop_time()?;
        info.invisible_time()?;
        Ok::<_, String>(Ok((revive_qid, broker_name, start_offset, pop_time)))
    })();
    let (revive_qid, broker_name, start_offset, pop_time) = match parsed {
        Ok(Ok(parsed)) => parsed,
        Ok(Err(pop_time)) => return change_orderly(core, &header, pop_time),
        Err(error) => return reply::error(ResponseCode::SYSTEM_ERROR, error),
    };
    let now = core.pop.next_pop_time();
    let checkpoint = Checkpoint {
        group: header.consumer_group.clone(),
        topic: header.topic.clone(),
        queue_id: header.queue_id,
        start_offset: header.offset,
        pop_time: now,
        invisible_time: header.invisible_time,
        revive_qid,
        broker_name: broker_name.to_owned(),
        offsets: vec![(header.offset, false)],
    };
    let invisible = Duration::from_millis(u64::try_from(header.invisible_time).unwrap_or(0));
    core.pop.add(Instant::now() + invisible, checkpoint);
    core.pop.ack(&Ack {
        group: &header.consumer_group,
        topic: &header.topic,
        queue_id: header.queue_id,
        start_offset,
        pop_time,
        broker_name,
        revive_qid,
        offset: header.offset,
    });
    reply::ok_with(&ChangeInvisibleTimeResponseHeader {
        pop_time: now,
        invisible_time: header.invisible_time,
        revive_qid,
    })
}

/// An acknowledgement of a handle of an orderly pop, but its offset.
pub(super) struct OrderlyAck<'a> {
    pub(super) group: &'a str,
    pub(super) topic: &'a str,
    pub(super) queue_id: i32,
    pub(super) pop_time: i64,
    pub(super) invisible_time: i64,
}

/// Java's `ackOrderly` of `offset`: the remark of MESSAGE_ILLEGAL when the
/// queue's last orderly pop did not answer it.
pub(super) fn ack_orderly(ctx: &ConnCtx, ack: &OrderlyAck<'_>, offset: i64) -> Result<(), String> {
    let core = &ctx.core;
    let OrderlyAck {
        group,
        topic,
        queue_id,
        ..
    } = *ack;
    let old = server_reset::query_offset(core, group, topic, queue_id).unwrap_or(-1);
    if offset < old {
        return Ok(());
    }
    let orders = &core.pop.orders;
    let next = orders.commit_and_next(topic, group, queue_id, offset, ack.pop_time);
    if next > -1 {
        if !core.resets.has(topic, group, queue_id) {
            core.offsets.commit(group, topic, queue_id, next);
        }
        if !orders.check_block(None, topic, group, queue_id, ack.invisible_time) {
            orders.notify(topic, group);
        }
    } else if next == orderly::ILLEGAL {
        return Err(format!(
            "offset is illegal, key:{topic}@{group}@{queue_id}, old:{old}, commit:{offset}, next:{next}, /{}",
            ctx.peer
        ));
    }
    Ok(())
}

/// Java's `processChangeInvisibleTimeForOrder`.
fn change_orderly(
    core: &BrokerCore,
    header: &ChangeInvisibleTimeRequestHeader,
    pop_time: i64,
) -> RemotingCommand {
    let (group, topic, queue_id) = (&header.consumer_group, &header.topic, header.queue_id);
    let old = server_reset::query_offset(core, group, topic, queue_id).unwrap_or(-1);
    if header.offset < old {
        return reply::ok();
    }
    let invisible = Duration::from_millis(u64::try_from(header.invisible_time).unwrap_or(0));
    let orders = &core.pop.orders;
    let since_pop = orders
        .update_next_visible(
            topic,
            group,
            queue_id,
            header.offset,
            pop_time,
            Instant::now() + invisible,
        )
        .map_or_else(
            || now_millis().saturating_sub(pop_time),
            |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        );
    orders.notify(topic, group);
    reply::ok_with(&ChangeInvisibleTimeResponseHeader {
        pop_time,
        invisible_time: since_pop.saturating_add(header.invisible_time),
        revive_qid: ORDERLY_REVIVE_QUEUE,
    })
}

/// The topic must exist and have the queue: TOPIC_NOT_EXIST, else
/// MESSAGE_ILLEGAL.
fn check_queue(ctx: &ConnCtx, topic: &str, queue_id: i32) -> Result<(), Rejection> {
    let Some(config) = ctx.core.topics.get(topic) else {
        return Err(reply::reject(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please! {FAQ}"),
        ));
    };
    if queue_id < 0 || queue_id >= config.read_queue_nums {
        return Err(reply::reject(
            ResponseCode::MESSAGE_ILLEGAL,
            format!(
                "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[/{}]",
                config.read_queue_nums, ctx.peer
            ),
        ));
    }
    Ok(())
}

fn bounds(core: &BrokerCore, topic: &str, queue_id: i32) -> (i64, i64) {
    (
        core.store.min_offset(topic, queue_id),
        core.store.max_offset(topic, queue_id),
    )
}

/// A handle read field by field as Java's `ExtraInfoUtil` getters read it,
/// each failing with the text of the exception Java's broker would answer
/// (SYSTEM_ERROR, `UtilAll.exceptionSimpleDesc` without the stack frame).
struct ExtraInfo<'a>(Vec<&'a str>);

impl<'a> ExtraInfo<'a> {
    /// Java's `String.split(" ")`, which drops trailing empty fields.
    fn split(text: &'a str) -> Self {
        let mut fields: Vec<&str> = text.split(' ').collect();
        while fields.len() > 1 && fields.last() == Some(&"") {
            fields.pop();
        }
        ExtraInfo(fields)
    }

    fn field(&self, index: usize, getter: &str) -> Result<&'a str, String> {
        self.0.get(index).copied().ok_or_else(|| {
            format!(
                "java.lang.IllegalArgumentException: {getter} fail, extraInfoStrs length {}",
                self.0.len()
            )
        })
    }

    fn number<T: std::str::FromStr>(&self, index: usize, getter: &str) -> Result<T, String> {
        let text = self.field(index, getter)?;
        text.parse()
            .map_err(|_| format!("java.lang.NumberFormatException: For input string: \"{text}\""))
    }

    fn ck_queue_offset(&self) -> Result<i64, String> {
        self.number(0, "getCkQueueOffset")
    }

    fn pop_time(&self) -> Result<i64, String> {
        self.number(1, "getPopTime")
    }

    fn invisible_time(&self) -> Result<i64, String> {
        self.number(2, "getInvisibleTime")
    }

    fn revive_qid(&self) -> Result<i32, String> {
        self.number(3, "getReviveQid")
    }

    fn broker_name(&self) -> Result<&'a str, String> {
        self.field(5, "getBrokerName")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_info_fails_as_javas_getters_do() {
        let info = ExtraInfo::split("5 1700000000000 30000 3 0 broker-a 1 7 ");
        assert_eq!(info.0.len(), 8, "a trailing space adds no field");
        assert_eq!(info.ck_queue_offset(), Ok(5));
        assert_eq!(info.revive_qid(), Ok(3));
        assert_eq!(info.broker_name(), Ok("broker-a"));
        let short = ExtraInfo::split("5 1 2");
        assert_eq!(
            short.broker_name().unwrap_err(),
            "java.lang.IllegalArgumentException: getBrokerName fail, extraInfoStrs length 3"
        );
        assert_eq!(
            ExtraInfo::split("x 1 2 3 0 b")
                .ck_queue_offset()
                .unwrap_err(),
            "java.lang.NumberFormatException: For input string: \"x\""
        );
        assert!(ExtraInfo::split("").pop_time().is_err());
    }
}
