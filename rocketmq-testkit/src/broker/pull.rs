//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361), with long polling and tag
//! filtering (Java's `PullMessageProcessor` and `PullRequestHoldService`).
//!
//! A pull that finds nothing new (PULL_NOT_FOUND) with the SUSPEND flag is
//! held, waiting on its queue's arrival channel; an arrival that matches its
//! filter wakes it at once, and the hold service's check, every 5 s from the
//! broker's start, wakes it when anything arrived (filtered out or not).
//! Its `suspendTimeoutMillis` is only looked at then, at a check or at an
//! arrival in its queue, so an idle pull is answered at the first check
//! after its time is up, up to 5 s late, as Java's
//! `PullRequestHoldService` does. Once woken it is answered as a fresh pull
//! that may not suspend again.
//!
//! A pull of a queue whose offset was reset server-side ([`super::server_reset`])
//! takes the reset, fresh or once woken, before it reads: it is answered
//! PULL_OFFSET_MOVED with remark OFFSET_RESET and the reset offset as
//! `nextBeginOffset` (Java's `PullMessageProcessor` with
//! `useServerSideResetOffset`); its commit-offset flag still commits, after
//! the reset was taken, as Java's `tryCommitOffset` does.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use rocketmq_model::body::ExpressionType;
use rocketmq_model::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use rocketmq_model::message::sysflag::pull as pull_flags;
use rocketmq_model::route::perm;
use rocketmq_model::{ResponseCode, SubscriptionData};
use rocketmq_remoting::RemotingCommand;
use tokio::time::Instant;

use super::sql92::Sql92;
use super::store::{ReadLimits, ReadResult, ReadStatus, StoredMessage};
use super::topics::TopicConfig;
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, Rejection, header};

/// Java's `maxTransferCountOnMessageInMemory`.
pub(crate) const MAX_TRANSFER_COUNT: usize = 32;
/// Java's `maxTransferBytesOnMessageInMemory`.
pub(crate) const MAX_TRANSFER_BYTES: usize = 256 * 1024;
/// Queue entries a pull scans for matches at least (Java's
/// `maxFilterMessageSize`, 16000 bytes of consume queue at 20 bytes an
/// entry; more when the pull asks for more messages).
pub(crate) const MIN_SCAN: usize = 800;
/// Java's `ForbiddenType.TOPIC_FORBIDDEN`, in the header of a pull refused
/// for a topic that is not readable.
const TOPIC_FORBIDDEN: &str = "3";

/// How often held pulls are checked for any new message, matching or not
/// (Java's `PullRequestHoldService` with long polling).
const HOLD_CHECK: Duration = Duration::from_secs(5);

/// Java 5.x's FAQ link, appended to some remarks (`FAQUrl.suggestTodo`).
pub(crate) const FAQ: &str =
    "\nSee https://rocketmq.apache.org/docs/bestPractice/06FAQ for further details.";

/// When the hold service checks held pulls: every 5 s from the broker's
/// start, the same instants for every pull.
#[derive(Debug)]
pub(crate) struct HoldChecks {
    started: Mutex<Instant>,
}

impl Default for HoldChecks {
    fn default() -> Self {
        HoldChecks {
            started: Mutex::new(Instant::now()),
        }
    }
}

impl HoldChecks {
    /// Starts the checks again from now (the broker started).
    pub(crate) fn restart(&self) {
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// The first check strictly after `now`.
    fn next_after(&self, now: Instant) -> Instant {
        let started = *self.started.lock().unwrap_or_else(PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(started);
        let done = elapsed.as_nanos() / HOLD_CHECK.as_nanos();
        u32::try_from(done + 1)
            .ok()
            .and_then(|checks| HOLD_CHECK.checked_mul(checks))
            .map_or(now + HOLD_CHECK, |offset| started + offset)
    }
}

/// Which messages a pull wants, by the tag hash codes the consume queue
/// keeps.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    All,
    Tags(BTreeSet<i32>),
    Sql(Sql92),
}

impl Filter {
    pub(crate) fn matches(&self, message: &StoredMessage) -> bool {
        match self {
            Filter::All => true,
            Filter::Tags(codes) => {
                i32::try_from(message.tags_code).is_ok_and(|code| codes.contains(&code))
            }
            Filter::Sql(sql) => sql.matches(&message.ext.message.properties),
        }
    }
}

/// Answers a pull, holding it when it may suspend and nothing is there yet.
pub(crate) async fn handle(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, PullMessageRequestHeader);
    let core = &ctx.core;
    core.subscription_groups.note(&header.consumer_group);
    let topic = match check_queue(ctx, &header) {
        Ok(topic) => topic,
        Err(rejection) => return rejection.into_response(),
    };
    let filter = match filter_for(core, &header) {
        Ok(filter) => filter,
        Err(rejection) => return rejection.into_response(),
    };
    let reset = reset_read(core, &header);
    if header.sys_flag & pull_flags::COMMIT_OFFSET != 0 {
        core.offsets.commit(
            &header.consumer_group,
            &header.topic,
            header.queue_id,
            header.commit_offset,
        );
    }
    if let Some(reset) = reset {
        return respond(reset, &header, topic);
    }
    let mut arrivals = core.store.arrivals(&header.topic, header.queue_id);
    let first = read(core, &header, &filter);
    let may_suspend = header.sys_flag & pull_flags::SUSPEND != 0;
    if !may_suspend || response_code(&first, &header) != ResponseCode::PULL_NOT_FOUND {
        return respond(first, &header, topic);
    }
    hold(core, &header, &filter, &mut arrivals).await;
    // Java runs the request again once woken, with the group's subscription
    // as it is then: a heartbeat that changed the selector meanwhile counts.
    match filter_for(core, &header) {
        Ok(now) => {
            let result = reset_read(core, &header).unwrap_or_else(|| read(core, &header, &now));
            respond(result, &header, topic)
        }
        Err(rejection) => rejection.into_response(),
    }
}

/// The answer to a pull of a queue with a pending server-side reset, which
/// it takes (Java's `queryThenEraseResetOffset` and `OFFSET_RESET`).
fn reset_read(core: &BrokerCore, header: &PullMessageRequestHeader) -> Option<ReadResult> {
    let (topic, queue_id) = (&header.topic, header.queue_id);
    let offset = (core.resets).take(topic, &header.consumer_group, queue_id)?;
    Some(ReadResult {
        status: ReadStatus::OffsetReset,
        next_begin_offset: offset,
        min_offset: core.store.min_offset(topic, queue_id),
        max_offset: core.store.max_offset(topic, queue_id),
        messages: Vec::new(),
    })
}

/// Holds a pull until a matching message arrives or a check finds any new
/// message; its suspend timeout counts only at a check or at an arrival in
/// its queue (Java's `PullRequestHoldService.notifyMessageArriving`).
async fn hold(
    core: &BrokerCore,
    header: &PullMessageRequestHeader,
    filter: &Filter,
    arrivals: &mut tokio::sync::watch::Receiver<i64>,
) {
    let _counted = Held::new(&core.held_pulls);
    let suspend = Duration::from_millis(u64::try_from(header.suspend_timeout_millis).unwrap_or(0));
    let deadline = Instant::now() + suspend;
    let (topic, queue_id, offset) = (&header.topic, header.queue_id, header.queue_offset);
    loop {
        let check = core.hold_checks.next_after(Instant::now());
        tokio::select! {
            changed = arrivals.changed() => {
                let matched = core.store.has_match_from(topic, queue_id, offset, |m| filter.matches(m));
                if changed.is_err() || matched || Instant::now() >= deadline {
                    return;
                }
            }
            () = tokio::time::sleep_until(check) => {
                if core.store.max_offset(topic, queue_id) > offset || Instant::now() >= deadline {
                    return;
                }
            }
        }
    }
}

/// One pull counted as held while it lives (a dropped connection drops it).
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Held(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The topic must exist, be readable, and have the queue; its config.
fn check_queue(ctx: &ConnCtx, header: &PullMessageRequestHeader) -> Result<TopicConfig, Rejection> {
    let Some(config) = ctx.core.topics.get(&header.topic) else {
        return Err(reply::reject(
            ResponseCode::TOPIC_NOT_EXIST,
            format!(
                "topic[{}] not exist, apply first please! {FAQ}",
                header.topic
            ),
        ));
    };
    if !perm::is_readable(config.perm) {
        let mut refusal = reply::error(
            ResponseCode::NO_PERMISSION,
            format!("the topic[{}] pulling message is forbidden", header.topic),
        );
        refusal
            .ext_fields
            .insert("forbiddenType".to_owned(), TOPIC_FORBIDDEN.to_owned());
        return Err(Rejection::from(refusal));
    }
    if header.queue_id < 0 || header.queue_id >= config.read_queue_nums {
        return Err(reply::reject(
            ResponseCode::INVALID_PARAMETER,
            format!(
                "queueId[{}] is illegal, topic:[{}] topicConfig.readQueueNums:[{}] consumer:[/{}]",
                header.queue_id, header.topic, config.read_queue_nums, ctx.peer
            ),
        ));
    }
    Ok(config)
}

/// The subscription from the request (SUBSCRIPTION flag) or from the group's
/// heartbeat, as a filter. SQL92 is refused as by a broker without
/// `enablePropertyFilter`.
fn filter_for(core: &BrokerCore, header: &PullMessageRequestHeader) -> Result<Filter, Rejection> {
    let from_request = header.sys_flag & pull_flags::SUBSCRIPTION != 0;
    let subscription = if from_request {
        self::from_request(header)?
    } else {
        from_heartbeat(core, header)?
    };
    if subscription.expression_type == ExpressionType::Tag {
        return Ok(if subscription.is_sub_all() {
            Filter::All
        } else {
            Filter::Tags(subscription.code_set)
        });
    }
    if !core.settings.property_filter {
        return Err(reply::reject(
            ResponseCode::SYSTEM_ERROR,
            format!(
                "The broker does not support consumer to filter message by {}",
                subscription.expression_type.as_str()
            ),
        ));
    }
    match Sql92::parse(&subscription.sub_string) {
        Ok(sql) => Ok(Filter::Sql(sql)),
        Err(_) if from_request => Err(reply::reject(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            "parse the consumer's subscription failed",
        )),
        Err(_) => Err(reply::reject(
            ResponseCode::FILTER_DATA_NOT_EXIST,
            "The broker's consumer filter data is not exist!Your expression may be wrong!",
        )),
    }
}

fn from_request(header: &PullMessageRequestHeader) -> Result<SubscriptionData, Rejection> {
    let kind = match header.expression_type.as_deref() {
        None | Some("") | Some("TAG") => ExpressionType::Tag,
        Some(_) => ExpressionType::Sql92,
    };
    let expression = header.subscription.as_deref().unwrap_or_default();
    SubscriptionData::from_expression(header.topic.clone(), expression, kind).map_err(|_| {
        reply::reject(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            "parse the consumer's subscription failed",
        )
    })
}

fn from_heartbeat(
    core: &BrokerCore,
    header: &PullMessageRequestHeader,
) -> Result<SubscriptionData, Rejection> {
    let Some(group) = core.groups.consumer_group(&header.consumer_group) else {
        return Err(reply::reject(
            ResponseCode::SUBSCRIPTION_NOT_EXIST,
            format!("the consumer's group info not exist{FAQ}"),
        ));
    };
    let Some(subscription) = group.subscriptions.get(&header.topic) else {
        return Err(reply::reject(
            ResponseCode::SUBSCRIPTION_NOT_EXIST,
            format!("the consumer's subscription not exist{FAQ}"),
        ));
    };
    if subscription.sub_version < header.sub_version {
        return Err(reply::reject(
            ResponseCode::SUBSCRIPTION_NOT_LATEST,
            "the consumer's subscription not latest",
        ));
    }
    Ok(subscription.clone())
}

fn read(core: &BrokerCore, header: &PullMessageRequestHeader, filter: &Filter) -> ReadResult {
    let asked = usize::try_from(header.max_msg_nums).unwrap_or(0);
    let limits = ReadLimits {
        max_count: asked.clamp(1, MAX_TRANSFER_COUNT),
        max_bytes: MAX_TRANSFER_BYTES,
        max_scan: asked.max(MIN_SCAN),
    };
    core.store.read(
        &header.topic,
        header.queue_id,
        header.queue_offset,
        limits,
        |m| filter.matches(m),
    )
}

/// Java's mapping of a store read to a pull response code (on a master).
fn response_code(result: &ReadResult, header: &PullMessageRequestHeader) -> ResponseCode {
    match result.status {
        ReadStatus::Found => ResponseCode::SUCCESS,
        ReadStatus::NoMatchedMessage => ResponseCode::PULL_RETRY_IMMEDIATELY,
        ReadStatus::NoMessageInQueue if header.queue_offset != 0 => ResponseCode::PULL_OFFSET_MOVED,
        ReadStatus::NoMessageInQueue | ReadStatus::OffsetOverflowOne => {
            ResponseCode::PULL_NOT_FOUND
        }
        ReadStatus::OffsetOverflowBadly | ReadStatus::OffsetTooSmall | ReadStatus::OffsetReset => {
            ResponseCode::PULL_OFFSET_MOVED
        }
    }
}

/// The answer to a read: Java's code, the status name as remark, the
/// offsets, the topic's sys flag, and the records.
fn respond(
    result: ReadResult,
    header: &PullMessageRequestHeader,
    topic: TopicConfig,
) -> RemotingCommand {
    let code = response_code(&result, header);
    let response_header = PullMessageResponseHeader {
        suggest_which_broker_id: 0,
        next_begin_offset: result.next_begin_offset,
        min_offset: result.min_offset,
        max_offset: result.max_offset,
        offset_delta: None,
        topic_sys_flag: Some(topic.topic_sys_flag),
        group_sys_flag: Some(0),
        forbidden_type: None,
    };
    let mut body = BytesMut::new();
    for message in &result.messages {
        body.extend_from_slice(&message.record);
    }
    RemotingCommand::response(code, 0)
        .with_remark(result.status.name())
        .with_header(&response_header)
        .with_body(body.freeze())
}
