//! POP_MESSAGE (200050): 5.x pop consumption, as Java's
//! `PopMessageProcessor` with the default `BrokerConfig` (pop retry topics
//! v1, no buffer merge, no KV service) and its long polling
//! (`PopLongPollingService`).
//!
//! A pop reads, for its group, the topic's queue it names (every readable
//! queue for a negative queue id) and the group's pop retry topic
//! `%RETRY%<group>_<topic>`. Java reads the retry topic first with
//! probability `popFromRetryProbability` (20 %), else only when the topic
//! did not fill the request, and starts a pop of every queue at a random
//! queue; here both follow the group's pop count on the topic, counted from
//! 0 by this broker: pop `n` reads the retry topic first when `n % 5 == 4`
//! (every fifth pop) and starts at queue `n % readQueueNums`.
//!
//! In each queue a pop starts at the group's committed offset; a group new
//! to a queue starts where Java's `getInitOffset` says (the retry topic and
//! `initMode` 0 at the queue's first message; `initMode` 1 also there, as
//! `initPopOffsetByCheckMsgInMem` does while the first message is in memory,
//! which it always is here) and has that committed. After the read, the
//! group's offset is committed past what was read (Java commits it as soon
//! as the pop's checkpoint is stored, a few ms later): what was popped is
//! not popped again, and each message answered stays in flight
//! ([`inflight`]) until acknowledged or, at its pop time plus its invisible
//! time, revived into the retry topic ([`revive`]). Messages the filter
//! rejects move the offset on too. A server-side offset reset pending for
//! the queue ([`super::server_reset`]) is taken by the group's next pop that
//! reads the queue, which starts there (Java's `resetPopOffset`: the
//! queue's orderly pop forgotten, the reset offset committed).
//!
//! Messages read from the retry topic are answered as Java does with
//! `popResponseReturnActualRetryTopic` false: re-encoded with the original
//! topic and the `POP_CK` property (kind 1), which is what the client must
//! acknowledge them with.
//!
//! A pop that finds nothing is held when it has a `pollTime` (Java's
//! `PopLongPollingService.polling`), until a message its filter matches
//! arrives in a queue it reads, then pops again; at `bornTime + pollTime`
//! it pops once more and answers POLLING_TIMEOUT when that finds nothing.
//! The time is measured on tokio's clock from when it was first held. As in
//! Java, an arrival in the retry topic (v1) wakes no held pop. Java's
//! checks run again at each wake-up; here only the reading does.
//!
//! An orderly pop (`order`) is served as Java's `isOrder` paths with
//! `enableNotifyAfterPopOrderLockRelease` (the default), its bookkeeping
//! kept as `ConsumerOrderInfoManager` keeps it ([`orderly`]): it reads the
//! topic alone (never the retry topic), in revive queue 999, and makes no
//! checkpoint, so nothing of it is revived. A queue whose last orderly pop
//! has a message neither acknowledged nor visible again is blocked: the pop
//! reads nothing from it, nor counts its backlog in `restNum`, unless it
//! repeats that pop's `attemptId` (Java's `needBlock`). A queue read commits
//! the group's offset where the read began (Java's `commitOffset` of
//! `finalOffset`), so what an acknowledgement did not commit past is read
//! again once visible, each message answered before counted in the answer's
//! `orderCountInfo`: `0 qo<queueId>%<offset> <count>` per such message, in
//! offset order, then `0 <queueId> <least count>` per queue read (0 when a
//! message is new), `;`-separated (`0 qo1%0 1;0 qo1%1 1;0 1 1`); a Java
//! client reads a message's reconsume times from its own entry, else from
//! its queue's. An orderly pop's answer always has `orderCountInfo` (empty
//! when nothing was read). Acknowledgements and changes of invisible time of
//! its handles are [`ack`]'s.
//!
//! Where orderly pops deviate from Java: times are measured on tokio's
//! clock, not the wall clock, as the revive times are. A held orderly pop
//! also wakes when the order state of its topic and group changes (an
//! acknowledgement or a change of invisible time) and when a queue blocking
//! it frees (at the latest visible time of its unacknowledged messages);
//! Java notifies one held pop of the acknowledged queue when the ack
//! unblocks it, and on `ConsumerOrderInfoLockManager`'s 100 ms timer at the
//! first unacknowledged message's visible time, waking a pop of every queue
//! first. Java's `HashMap` writes the per-message `orderCountInfo` entries
//! in hash order (offset order for offsets below its table size); a client
//! reads them into a map. After OFFSET_TOO_SMALL the read and its
//! `startOffsetInfo` begin at the store's offset, where Java keeps the
//! stale one (as the non-orderly path here does too).

mod ack;
mod batch_ack;
mod inflight;
mod orderly;
mod polling;
mod revive;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rocketmq_model::body::ExpressionType;
use rocketmq_model::header::{PopMessageRequestHeader, PopMessageResponseHeader};
use rocketmq_model::message::pop::{
    ORDERLY_REVIVE_QUEUE, PopTopicKind, ReceiptHandle, write_msg_offset_info,
    write_start_offset_info,
};
use rocketmq_model::message::property;
use rocketmq_model::resource::{RETRY_TOPIC_PREFIX, pop_retry_topic_v1};
use rocketmq_model::route::perm;
use rocketmq_model::{CommandHeader, ResponseCode, SubscriptionData, encode_record};
use rocketmq_remoting::RemotingCommand;
use tokio::time::Instant;

use super::pull::{FAQ, Filter, MAX_TRANSFER_BYTES, MAX_TRANSFER_COUNT, MIN_SCAN};
use super::server_reset;
use super::sql92::Sql92;
use super::store::{ReadLimits, ReadResult, ReadStatus, StoredMessage, now_millis};
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, Rejection};

pub(crate) use ack::{ack, change_invisible_time};
pub(crate) use batch_ack::batch_ack;
pub(crate) use inflight::{Checkpoint, PopState};
use polling::Arrivals;
pub(crate) use revive::run_reviver;

/// The most messages a pop may ask for.
const MAX_POP_NUMS: i32 = 32;
/// How late (ms) past its poll time a pop may arrive (Java's
/// `PopMessageRequestHeader.isTimeoutTooMuch`).
const TIMEOUT_TOO_MUCH_MS: i64 = 500;
/// One pop in this many reads the retry topic first (Java:
/// `popFromRetryProbability` 20 %).
const RETRY_FIRST_EVERY: u64 = 5;
/// Java's `ConsumeInitMode.MIN`.
const INIT_MODE_MIN: i32 = 0;

/// Answers a pop, holding it while nothing is there and it may poll.
pub(crate) async fn handle(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = match decode(request) {
        Ok(header) => header,
        Err(error) => return reply::bad_header(&error),
    };
    let core = &ctx.core;
    let (filter, read_queue_nums) = match check(ctx, &header) {
        Ok(checked) => checked,
        Err(rejection) => return rejection.into_response(),
    };
    let mut deadline = None;
    loop {
        let mut arrivals = Arrivals::subscribe(core, &header, read_queue_nums);
        let mut order_changes = (header.order)
            .then(|| (core.pop.orders).subscribe(&header.topic, &header.consumer_group));
        let popped = Pop::run(core, &header, &filter);
        if popped.found() {
            return popped.respond(ResponseCode::SUCCESS);
        }
        if header.poll_time <= 0 {
            return popped.respond(ResponseCode::POLLING_TIMEOUT);
        }
        let deadline = *deadline.get_or_insert_with(|| {
            let left = header
                .born_time
                .saturating_add(header.poll_time)
                .saturating_sub(now_millis());
            Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(0))
        });
        if core.pop.held() >= inflight::MAX_POP_POLLING_SIZE {
            return popped.respond(ResponseCode::POLLING_FULL);
        }
        if Instant::now() >= deadline {
            return popped.respond(ResponseCode::POLLING_TIMEOUT);
        }
        let Some(_held) = core
            .pop
            .hold(&header.topic, &header.consumer_group, header.queue_id)
        else {
            return popped.respond(ResponseCode::POLLING_FULL);
        };
        let wake_at = blocked_until(core, &header, read_queue_nums)
            .map_or(deadline, |free| free.min(deadline));
        tokio::select! {
            () = arrivals.wait(core, &filter, wake_at) => {}
            () = changed(order_changes.as_mut()) => {}
        }
    }
}

/// When the first queue blocking an orderly pop frees, if one does.
fn blocked_until(
    core: &BrokerCore,
    header: &PopMessageRequestHeader,
    read_queue_nums: i32,
) -> Option<Instant> {
    if !header.order {
        return None;
    }
    let queues = if header.queue_id < 0 {
        0..read_queue_nums
    } else {
        header.queue_id..header.queue_id + 1
    };
    let attempt_id = header.attempt_id.as_deref();
    let (topic, group) = (&header.topic, &header.consumer_group);
    (queues
        .filter_map(|queue_id| (core.pop.orders).blocked_until(attempt_id, topic, group, queue_id)))
    .min()
}

/// Returns when the order state watched changes; never without one.
async fn changed(changes: Option<&mut tokio::sync::watch::Receiver<u64>>) {
    let open = match changes {
        Some(changes) => changes.changed().await.is_ok(),
        None => false,
    };
    if !open {
        std::future::pending::<()>().await;
    }
}

/// Decodes the header the way Java reads it: a missing or zero `bornTime`
/// is now.
fn decode(request: &RemotingCommand) -> rocketmq_model::Result<PopMessageRequestHeader> {
    let mut fields = request.ext_fields.clone();
    let born = fields.get("bornTime");
    if born.is_none_or(|born| born == "0") {
        fields.insert("bornTime".to_owned(), now_millis().to_string());
    }
    PopMessageRequestHeader::from_ext_fields(&fields)
}

/// Java's checks, in its order; the filter and the topic's read queues.
fn check(ctx: &ConnCtx, header: &PopMessageRequestHeader) -> Result<(Filter, i32), Rejection> {
    let core = &ctx.core;
    let broker_ip = core.store.store_host().ip();
    let late = now_millis()
        .saturating_sub(header.born_time)
        .saturating_sub(header.poll_time);
    if late > TIMEOUT_TOO_MUCH_MS {
        return Err(reply::reject(
            ResponseCode::POLLING_TIMEOUT,
            format!("the broker[{broker_ip}] pop message is timeout too much"),
        ));
    }
    if header.max_msg_nums > MAX_POP_NUMS {
        return Err(reply::reject(
            ResponseCode::INVALID_PARAMETER,
            format!("the broker[{broker_ip}] pop message's num is greater than 32"),
        ));
    }
    let topic = &header.topic;
    let Some(config) = core.topics.get(topic) else {
        return Err(reply::reject(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist, apply first please! {FAQ}"),
        ));
    };
    if !perm::is_readable(config.perm) {
        return Err(reply::reject(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{topic}] peeking message is forbidden"),
        ));
    }
    if header.queue_id >= config.read_queue_nums {
        return Err(reply::reject(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}] consumer:[/{}]",
                header.queue_id, config.read_queue_nums, ctx.peer
            ),
        ));
    }
    let group = &header.consumer_group;
    core.subscription_groups.note(group);
    if !core.subscription_groups.contains(group) {
        return Err(reply::reject(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group [{group}] does not exist, {FAQ}"),
        ));
    }
    let filter = filter_for(header)?;
    Ok((filter, config.read_queue_nums))
}

/// The request's filter (Java's `FilterAPI.build` and
/// `ConsumerFilterManager.build`): no expression matches everything; a TAG
/// expression or SQL92 that does not parse, or another type, is refused.
/// Pops filter by SQL92 whatever `enablePropertyFilter` says, as Java's do.
fn filter_for(header: &PopMessageRequestHeader) -> Result<Filter, Rejection> {
    let expression = header.exp.as_deref().unwrap_or_default();
    if expression.is_empty() {
        return Ok(Filter::All);
    }
    let failed = || {
        reply::reject(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            "parse the consumer's subscription failed",
        )
    };
    match header.exp_type.as_deref() {
        None | Some("" | "TAG") => {
            let data = SubscriptionData::from_expression(
                header.topic.clone(),
                expression,
                ExpressionType::Tag,
            )
            .map_err(|_| failed())?;
            Ok(if data.is_sub_all() {
                Filter::All
            } else {
                Filter::Tags(data.code_set)
            })
        }
        Some("SQL92") => Sql92::parse(expression)
            .map(Filter::Sql)
            .map_err(|_| failed()),
        Some(_) => Err(failed()),
    }
}

/// One pass of a pop over its queues (Java's `popMsgFromTopic` and
/// `popMsgFromQueue`), building the answer.
struct Pop<'a> {
    core: &'a BrokerCore,
    header: &'a PopMessageRequestHeader,
    filter: &'a Filter,
    round: u64,
    pop_time: i64,
    revive_qid: i32,
    count: i64,
    rest: i64,
    body: BytesMut,
    start_offset_info: String,
    msg_offset_info: String,
    order_count_info: String,
}

impl<'a> Pop<'a> {
    fn run(core: &'a BrokerCore, header: &'a PopMessageRequestHeader, filter: &'a Filter) -> Self {
        let round = core.pop.next_round(&header.consumer_group, &header.topic);
        let mut pop = Pop {
            core,
            header,
            filter,
            round,
            pop_time: core.pop.next_pop_time(),
            revive_qid: if header.order {
                ORDERLY_REVIVE_QUEUE
            } else {
                core.pop.next_revive_qid()
            },
            count: 0,
            rest: 0,
            body: BytesMut::new(),
            start_offset_info: String::new(),
            msg_offset_info: String::new(),
            order_count_info: String::new(),
        };
        if header.order {
            if header.queue_id < 0 {
                pop.topic(&header.topic);
            } else {
                pop.queue(&header.topic, header.queue_id);
            }
            return pop;
        }
        let retry_topic = pop_retry_topic_v1(&header.topic, &header.consumer_group);
        let retry_first = round % RETRY_FIRST_EVERY == RETRY_FIRST_EVERY - 1;
        if retry_first {
            pop.topic(&retry_topic);
        }
        if header.queue_id < 0 {
            pop.topic(&header.topic);
        } else {
            pop.queue(&header.topic, header.queue_id);
        }
        if !retry_first && pop.count < i64::from(header.max_msg_nums) {
            pop.topic(&retry_topic);
        }
        pop
    }

    fn found(&self) -> bool {
        !self.body.is_empty()
    }

    /// Every readable queue of `topic`, from this round's queue on.
    fn topic(&mut self, topic: &str) {
        let Some(config) = self.core.topics.get(topic) else {
            return;
        };
        let Ok(queues) = u64::try_from(config.read_queue_nums) else {
            return;
        };
        for i in 0..queues {
            let queue = (self.round.wrapping_add(i)) % queues;
            self.queue(topic, i32::try_from(queue).unwrap_or(0));
        }
    }

    fn queue(&mut self, topic: &str, queue_id: i32) {
        let core = self.core;
        let group = &self.header.consumer_group;
        let Some(_reading) = core.pop.lock_queue(topic, group, queue_id) else {
            // Another pop reads the queue now: skipped, its messages counted
            // as left (Java's `popMsgFromQueue` when `tryLock` fails).
            let committed = server_reset::query_offset(core, group, topic, queue_id).unwrap_or(0);
            self.rest += (core.store.max_offset(topic, queue_id) - committed).max(0);
            return;
        };
        let mut offset = self.offset(topic, queue_id);
        let header = self.header;
        if header.order
            && (core.pop.orders).check_block(
                header.attempt_id.as_deref(),
                topic,
                group,
                queue_id,
                header.invisible_time,
            )
        {
            return;
        }
        let wanted = i64::from(self.header.max_msg_nums) - self.count;
        if wanted <= 0 {
            self.rest += core.store.max_offset(topic, queue_id) - offset;
            return;
        }
        let mut result = self.read(topic, queue_id, offset, wanted);
        if matches!(
            result.status,
            ReadStatus::OffsetTooSmall | ReadStatus::OffsetOverflowBadly
        ) {
            // Java: "maybe store offset is not correct": commit where the
            // store says to start, and read from there.
            offset = result.next_begin_offset;
            core.offsets.commit(group, topic, queue_id, offset);
            result = self.read(topic, queue_id, offset, wanted);
        }
        match result.status {
            ReadStatus::Found => self.answer(topic, queue_id, offset, &result),
            ReadStatus::NoMatchedMessage => {
                core.offsets
                    .commit(group, topic, queue_id, result.next_begin_offset);
            }
            _ => {}
        }
        self.rest += result.max_offset - result.next_begin_offset;
    }

    /// Where the group's pop of a queue starts (Java's `getPopOffset` with
    /// `checkResetOffset`): at a server-side reset pending for the queue,
    /// which it takes (`resetPopOffset`), else at the committed offset,
    /// committing a new group's start (`getInitOffset` with `init`).
    fn offset(&self, topic: &str, queue_id: i32) -> i64 {
        let core = self.core;
        let group = &self.header.consumer_group;
        if let Some(offset) = server_reset::take_for_pop(core, group, topic, queue_id) {
            return offset;
        }
        if let Some(offset) = (core.offsets.get(group, topic, queue_id)).filter(|&o| o >= 0) {
            return offset;
        }
        let min = core.store.min_offset(topic, queue_id);
        let max = core.store.max_offset(topic, queue_id);
        let offset =
            if self.header.init_mode == INIT_MODE_MIN || topic.starts_with(RETRY_TOPIC_PREFIX) {
                min
            } else if min <= 0 && max > 0 {
                // `initPopOffsetByCheckMsgInMem`: the first message is in memory.
                0
            } else {
                (max - 1).max(0)
            };
        core.offsets.commit(group, topic, queue_id, offset);
        offset
    }

    fn read(&self, topic: &str, queue_id: i32, offset: i64, wanted: i64) -> ReadResult {
        let wanted = usize::try_from(wanted).unwrap_or(1);
        let limits = ReadLimits {
            max_count: wanted.clamp(1, MAX_TRANSFER_COUNT),
            max_bytes: MAX_TRANSFER_BYTES,
            max_scan: wanted.max(MIN_SCAN),
        };
        let filter = self.filter;
        (self.core.store).read(topic, queue_id, offset, limits, |m| filter.matches(m))
    }

    /// Adds what a queue answered: its checkpoint (its order state, for an
    /// orderly pop), offset infos and records.
    fn answer(&mut self, topic: &str, queue_id: i32, start: i64, result: &ReadResult) {
        let core = self.core;
        let header = self.header;
        let group = &header.consumer_group;
        let offsets: Vec<i64> = (result.messages.iter())
            .map(|m| m.ext.queue_offset)
            .collect();
        if header.order {
            (core.pop.orders).update(
                header.attempt_id.as_deref(),
                topic,
                group,
                queue_id,
                self.pop_time,
                header.invisible_time,
                &offsets,
                &mut self.order_count_info,
            );
            core.offsets.commit(group, topic, queue_id, start);
        } else {
            self.checkpoint(topic, queue_id, start, &offsets, result.next_begin_offset);
        }
        let kind = PopTopicKind::of_topic(topic);
        write_start_offset_info(&mut self.start_offset_info, (kind, queue_id), start);
        write_msg_offset_info(&mut self.msg_offset_info, (kind, queue_id), &offsets);
        self.count += i64::try_from(offsets.len()).unwrap_or(i64::MAX);
        let retry = kind != PopTopicKind::Normal;
        for message in &result.messages {
            if !retry {
                self.body.extend_from_slice(&message.record);
                continue;
            }
            let handle = ReceiptHandle {
                ck_queue_offset: start,
                pop_time: self.pop_time,
                invisible_time: header.invisible_time,
                revive_qid: self.revive_qid,
                kind,
                broker_name: core.name().to_owned(),
                queue_id,
                queue_offset: message.ext.queue_offset,
            };
            match as_original(message, &header.topic, &handle) {
                Ok(record) => self.body.extend_from_slice(&record),
                // Java logs and leaves the message out of the answer; its
                // checkpoint revives it.
                Err(error) => tracing::warn!(%error, topic, "retry message not re-encoded"),
            }
        }
    }

    /// A non-orderly pop's checkpoint of a queue read, and its offset
    /// committed past what was read.
    fn checkpoint(&self, topic: &str, queue_id: i32, start: i64, offsets: &[i64], next_begin: i64) {
        let core = self.core;
        let header = self.header;
        let checkpoint = Checkpoint {
            group: header.consumer_group.clone(),
            topic: topic.to_owned(),
            queue_id,
            start_offset: start,
            pop_time: self.pop_time,
            invisible_time: header.invisible_time,
            revive_qid: self.revive_qid,
            broker_name: core.name().to_owned(),
            offsets: offsets.iter().map(|&o| (o, false)).collect(),
        };
        let invisible = Duration::from_millis(u64::try_from(header.invisible_time).unwrap_or(0));
        core.pop.add(Instant::now() + invisible, checkpoint);
        (core.offsets).commit(&header.consumer_group, topic, queue_id, next_begin);
    }

    /// The answer with `code`: Java's header in every case; the records and
    /// "FOUND" when messages were found, else "NO_MESSAGE_IN_QUEUE".
    fn respond(self, code: ResponseCode) -> RemotingCommand {
        let header = PopMessageResponseHeader {
            pop_time: self.pop_time,
            invisible_time: self.header.invisible_time,
            revive_qid: self.revive_qid,
            rest_num: self.rest,
            start_offset_info: Some(self.start_offset_info),
            msg_offset_info: Some(self.msg_offset_info),
            order_count_info: self.header.order.then_some(self.order_count_info),
        };
        let found = code == ResponseCode::SUCCESS;
        let status = if found {
            ReadStatus::Found.name()
        } else {
            ReadStatus::NoMessageInQueue.name()
        };
        let response = RemotingCommand::response(code, 0)
            .with_remark(status)
            .with_header(&header);
        if found {
            response.with_body(self.body.freeze())
        } else {
            response
        }
    }
}

/// A message of the retry topic as a pop answers it: with its original
/// topic, and the handle that acknowledges it as `POP_CK` unless it has one.
fn as_original(
    message: &StoredMessage,
    topic: &str,
    handle: &ReceiptHandle,
) -> rocketmq_model::Result<Bytes> {
    let mut ext = message.ext.clone();
    if !ext.message.properties.contains(property::POP_CK) {
        (ext.message.properties).insert(property::POP_CK, handle.encode())?;
    }
    topic.clone_into(&mut ext.message.topic);
    let mut record = BytesMut::new();
    encode_record(&ext, &mut record)?;
    Ok(record.freeze())
}
