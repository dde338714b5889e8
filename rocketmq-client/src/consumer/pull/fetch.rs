//! The fetch task of one queue of a pull consumer: long-polling pulls
//! (LITE_PULL_MESSAGE with SUSPEND, SUBSCRIPTION and LITE_PULL, PROTOCOL.md
//! §8.6) into the consumer's bounded buffer, pausing while the queue is
//! paused or buffers too much.

use std::sync::Arc;
use std::time::Duration;

use rocketmq_kernel::pull::{
    BROKER_FLOW_CONTROL_DELAY, FailureLog, PoisonStep, Undecodable, found_messages, retry_soon,
};
use rocketmq_kernel::rebalance::start_offset;
use rocketmq_kernel::{ConsumerOptions, KernelError};
use rocketmq_model::header::PullMessageRequestHeader;
use rocketmq_model::message::sysflag::pull;
use rocketmq_model::{MessageQueue, PullAddr, SubscriptionData};
use rocketmq_remoting::calls::{PullResponse, PullStatus};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::core::PullCore;
use super::queues::Fetched;

/// How often a paused queue checks whether it was resumed (a resume also
/// wakes it at once).
const PAUSED_RECHECK: Duration = Duration::from_secs(1);

/// The shortest wait of a queue that may not pull now, or whose pull
/// failed: a zero delay (the setters take it) would loop without ever
/// yielding, when nothing in the loop has to wait (a queue over its
/// threshold; a broker down, whose connection fails at once).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// The wait after a failed lookup of a queue's start offset (Java's
/// `PULL_TIME_DELAY_MILLS_ON_EXCEPTION`, a constant): not the pull
/// exception delay, which the application sets for failed pulls.
const START_OFFSET_RETRY: Duration = Duration::from_secs(3);

/// The wait after a failure.
fn exception_delay(core: &PullCore) -> Duration {
    core.options.pull_time_delay_when_exception.max(MIN_WAIT)
}

/// What the task does next.
enum Plan {
    Stop,
    Wait(Duration),
    FindStart { generation: u64 },
    Pull { offset: i64, generation: u64 },
}

/// Runs until `cancel` or until the queue leaves the table.
pub(crate) async fn run(
    core: Arc<PullCore>,
    mq: MessageQueue,
    mut generation: watch::Receiver<u64>,
    cancel: CancellationToken,
) {
    tracing::debug!(%mq, "fetch task started");
    let mut faults = Faults::default();
    while !cancel.is_cancelled() {
        generation.mark_unchanged();
        let wait = match plan(&core, &mq) {
            Plan::Stop => break,
            Plan::Wait(delay) => delay.max(MIN_WAIT),
            Plan::FindStart { generation } => {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    wait = find_start(&core, &mq, generation, &mut faults) => wait,
                }
            }
            Plan::Pull {
                offset,
                generation: at,
            } => {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    _ = generation.changed() => Duration::ZERO,
                    wait = pull_once(&core, &mq, offset, at, &mut faults, &cancel) => wait,
                }
            }
        };
        if !wait.is_zero() {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = generation.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
    tracing::debug!(%mq, "fetch task stopped");
}

fn plan(core: &PullCore, mq: &MessageQueue) -> Plan {
    let options = &core.options;
    core.queues
        .with(mq, |entry| {
            if entry.paused {
                return Plan::Wait(PAUSED_RECHECK);
            }
            if entry.buffered > options.pull_threshold_for_queue
                || entry.buffered_bytes > options.pull_threshold_size_for_queue
            {
                return Plan::Wait(options.pull_time_delay_when_flow_control);
            }
            let generation = entry.generation();
            match entry.next_pull {
                None => Plan::FindStart { generation },
                Some(offset) => Plan::Pull { offset, generation },
            }
        })
        .unwrap_or(Plan::Stop)
}

/// Computes where a new queue starts (the committed offset, else by
/// `consume_from_where`).
async fn find_start(
    core: &PullCore,
    mq: &MessageQueue,
    generation: u64,
    faults: &mut Faults,
) -> Duration {
    let found = start_offset(
        mq,
        &core.options,
        core.store.as_ref(),
        core.api.as_ref(),
        &core.routes,
    )
    .await;
    match found {
        Ok(offset) => {
            core.queues.with(mq, |entry| {
                if entry.generation() == generation && entry.next_pull.is_none() {
                    tracing::debug!(%mq, offset, "queue starts");
                    entry.next_pull = Some(offset);
                    entry.start = Some(offset);
                }
            });
            Duration::ZERO
        }
        Err(err) => {
            faults
                .failures
                .log_failure(core.group(), mq, "no start offset yet", &err);
            START_OFFSET_RETRY
        }
    }
}

/// The lite pull header: SUSPEND, SUBSCRIPTION and LITE_PULL, no commit.
fn header(
    options: &ConsumerOptions,
    mq: &MessageQueue,
    sub: &SubscriptionData,
    offset: i64,
) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: options.group.clone(),
        topic: mq.topic.clone(),
        queue_id: mq.queue_id,
        queue_offset: offset,
        max_msg_nums: options.pull_batch_size,
        sys_flag: pull::SUSPEND | pull::SUBSCRIPTION | pull::LITE_PULL,
        commit_offset: 0,
        suspend_timeout_millis: i64::try_from(options.broker_suspend_max_time.as_millis())
            .unwrap_or(i64::MAX),
        subscription: Some(sub.sub_string.clone()),
        sub_version: sub.sub_version,
        expression_type: Some(sub.expression_type.as_str().to_owned()),
        max_msg_bytes: Some(options.pull_batch_size_in_bytes),
        request_source: None,
        proxy_forward_client_id: None,
        broker_name: Some(mq.broker_name.clone()),
    }
}

async fn pull_addr(core: &PullCore, mq: &MessageQueue) -> rocketmq_kernel::Result<PullAddr> {
    match core.routes.table().pull_addr(mq) {
        Err(KernelError::NoBrokerAddress { .. }) | Err(KernelError::NoRoute { .. }) => {
            core.routes.refresh(&mq.topic).await?;
            core.routes.table().pull_addr(mq)
        }
        found => found,
    }
}

/// What a queue's fetch task remembers of its pulls going wrong.
#[derive(Default)]
struct Faults {
    /// Undecodable answers at an offset (see `rocketmq_kernel::pull`).
    undecodable: Undecodable,
    /// Failed pulls since the last answer, logged sparingly.
    failures: FailureLog,
}

/// One pull of `mq` at `offset`; returns how long to wait before the next.
async fn pull_once(
    core: &PullCore,
    mq: &MessageQueue,
    offset: i64,
    generation: u64,
    faults: &mut Faults,
    cancel: &CancellationToken,
) -> Duration {
    let delay = exception_delay(core);
    let Some(sub) = core.subscriptions.get(&mq.topic) else {
        // Unsubscribed: the rebalance under way releases the queue.
        tracing::debug!(group = core.group(), %mq, "no subscription for the queue's topic");
        return delay;
    };
    let addr = match pull_addr(core, mq).await {
        Ok(addr) => addr,
        Err(err) => {
            faults
                .failures
                .log_failure(core.group(), mq, "no broker to pull from", &err);
            return delay;
        }
    };
    let mut header = header(&core.options, mq, &sub, offset);
    header.max_msg_nums = faults.undecodable.batch_size(offset, header.max_msg_nums);
    let response = core.api.pull_message(&addr.addr, header).await;
    match response {
        Ok(response) => {
            faults.failures.log_answer(core.group(), mq);
            let answer = Answer {
                offset,
                generation,
                response,
            };
            on_response(core, mq, &sub, answer, &mut faults.undecodable, cancel).await
        }
        Err(err) => {
            faults
                .failures
                .log_failure(core.group(), mq, "pull failed", &err);
            // The broker sheds load for a moment, or goes away (the pull
            // goes on a new connection): try again soon, as Java's lite
            // pull consumer does.
            if retry_soon(&err) {
                BROKER_FLOW_CONTROL_DELAY
            } else {
                delay
            }
        }
    }
}

/// A pull's answer, with the offset and queue generation it was made at.
struct Answer {
    offset: i64,
    generation: u64,
    response: PullResponse,
}

async fn on_response(
    core: &PullCore,
    mq: &MessageQueue,
    sub: &SubscriptionData,
    answer: Answer,
    undecodable: &mut Undecodable,
    cancel: &CancellationToken,
) -> Duration {
    let Answer {
        offset,
        generation,
        response,
    } = answer;
    let header = &response.header;
    core.routes
        .table()
        .record_pull_suggestion(mq, header.suggest_which_broker_id);
    let mut next = header.next_begin_offset;
    // Filtered with the subscription as it is now (see the push pull task).
    let current = core.subscriptions.changed_since(sub);
    let sub = current.as_ref().unwrap_or(sub);
    let msgs = match response.status {
        PullStatus::Found => match found_messages(mq, &response, sub) {
            Ok(found) => {
                undecodable.decoded();
                next = found.next_offset;
                found.messages
            }
            Err(err) => match undecodable.failed(offset, next) {
                PoisonStep::RetryLater => {
                    tracing::error!(group = core.group(), %mq, offset, error = %err,
                        "undecodable pull answer; pulling the offset again");
                    return exception_delay(core);
                }
                PoisonStep::Skip { to } => {
                    tracing::error!(group = core.group(), %mq, offset, next = to, error = %err,
                        "a record that cannot be decoded is skipped; it is lost");
                    next = to;
                    Vec::new()
                }
            },
        },
        PullStatus::OffsetMoved => {
            tracing::warn!(group = core.group(), %mq, next, "offset illegal; continuing where the broker says");
            Vec::new()
        }
        PullStatus::NoNewMsg | PullStatus::NoMatchedMsg => Vec::new(),
    };
    let bytes: u64 = msgs.iter().map(|m| m.body().len() as u64).sum();
    let count = msgs.len();
    let current = core.queues.with(mq, |entry| {
        if entry.generation() != generation {
            return false;
        }
        entry.next_pull = Some(next);
        entry.buffered += count;
        entry.buffered_bytes += bytes;
        if entry.buffered == 0 {
            // Nothing waits to be handed out: everything before `next`
            // was handed out or filtered away.
            entry.consumed = Some(entry.consumed.map_or(next, |c| c.max(next)));
        }
        true
    });
    if current != Some(true) || msgs.is_empty() {
        return Duration::ZERO;
    }
    let batch = Fetched {
        mq: mq.clone(),
        generation,
        msgs,
        next,
        bytes,
        accepted: 0,
        seeks: 0,
    };
    tokio::select! {
        () = cancel.cancelled() => {}
        _ = core.buffer.send(batch) => {}
    }
    Duration::ZERO
}

#[cfg(test)]
mod tests {
    use rocketmq_model::body::ExpressionType;

    use super::*;

    #[test]
    fn lite_pulls_long_poll_with_the_subscription_and_never_commit() {
        let mut options = ConsumerOptions::new("lg");
        options.broker_suspend_max_time = Duration::from_secs(20);
        options.pull_batch_size = 10;
        let sub = SubscriptionData::from_expression("T", "A || B", ExpressionType::Tag).unwrap();
        let mq = MessageQueue::new("T", "broker-a", 2);
        let header = header(&options, &mq, &sub, 42);
        assert_eq!(
            header.sys_flag,
            pull::SUSPEND | pull::SUBSCRIPTION | pull::LITE_PULL
        );
        assert_eq!(header.suspend_timeout_millis, 20_000);
        assert_eq!((header.queue_offset, header.commit_offset), (42, 0));
        assert_eq!(header.max_msg_nums, 10);
        assert_eq!(header.subscription.as_deref(), Some("A || B"));
        assert_eq!(header.expression_type.as_deref(), Some("TAG"));
        assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
    }
}
