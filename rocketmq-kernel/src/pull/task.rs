//! The pull task of one queue (Java's `DefaultMQPushConsumerImpl#pullMessage`
//! and its callback, as one loop).

use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::body::MessageModel;
use rocketmq_model::{MessageExt, MessageQueue, PullAddr, ResponseCode, SubscriptionData};
use rocketmq_remoting::calls::{PullResponse, PullStatus};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::failures::FailureLog;
use super::flow::{self, Limits};
use super::poison::{PoisonStep, Undecodable};
use super::request::{self, PullAt};
use super::result::found_messages;
use crate::consume::ConsumeRequest;
use crate::consumer_options::RETRY_TOPIC_PREFIX;
use crate::error::{KernelError, Result};
use crate::offset::ReadOffsetType;
use crate::process_queue::ProcessQueue;
use crate::rebalance::assignment::PullHandle;
use crate::rebalance::shared::Shared;
use crate::rebalance::start_offset;

/// The wait after the broker answered FLOW_CONTROL (Java's
/// `PULL_TIME_DELAY_MILLS_WHEN_BROKER_FLOW_CONTROL`, both consumers'), and
/// after GO_AWAY (see [`retry_soon`]).
pub const BROKER_FLOW_CONTROL_DELAY: Duration = Duration::from_millis(20);

/// Whether a failed pull goes again after [`BROKER_FLOW_CONTROL_DELAY`]
/// rather than the exception delay: the broker shed load for a moment
/// (FLOW_CONTROL), or is shutting down and did not process the pull
/// (GO_AWAY: its connection is retired, so the next pull goes on a new
/// one, as Java's client resends such a request at once). Both consumers'.
pub fn retry_soon(err: &KernelError) -> bool {
    matches!(
        err,
        KernelError::Remoting(remoting) if matches!(
            remoting.response_code(),
            Some(ResponseCode::FLOW_CONTROL | ResponseCode::GO_AWAY)
        )
    )
}

/// Flow control is logged at warn level once per this many occurrences.
const FLOW_CONTROL_LOG_EVERY: u64 = 1000;

/// The shortest wait of a step that asks to wait: a zero delay (the setters
/// take it) would pull again at once, without the timer ever running, a busy
/// loop for as long as a queue is flow controlled or its broker refuses at
/// once (the lite consumer's fetch task waits as long).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Waits `delay` (at least [`MIN_WAIT`]) unless `cancel` comes first;
/// false when it did. The pull and the pop tasks wait so between steps.
pub(crate) async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(delay.max(MIN_WAIT)) => true,
    }
}

/// Starts the pull task of `mq` at `offset`, owned by the returned handle.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    offset: i64,
) -> PullHandle {
    let cancel = shared.cancel.child_token();
    let span = tracing::debug_span!(
        "pull",
        group = %shared.options.group,
        topic = %mq.topic,
        queue_id = mq.queue_id,
        broker = %mq.broker_name,
        addr = tracing::field::Empty,
    );
    let task = PullTask {
        shared: Arc::clone(shared),
        mq,
        pq,
        next_offset: offset,
        previously_locked: false,
        flow_controlled: 0,
        undecodable: Undecodable::default(),
        failures: FailureLog::default(),
        span_addr: None,
        cancel: cancel.clone(),
    };
    let handle = shared.pull_tasks.spawn(task.run().instrument(span));
    PullHandle::new(cancel, handle)
}

/// A queue's task, run a step at a time until its queue is dropped or it
/// is cancelled: the pull task, and the pop task of a popped queue.
pub(crate) trait Steps {
    /// The queue's process queue (the task ends once it is dropped).
    fn process_queue(&self) -> &ProcessQueue;
    /// Cancelled to stop the task.
    fn cancel(&self) -> &CancellationToken;
    /// One step, and what to do next.
    async fn step(&mut self) -> Next;
}

/// Runs `task`'s steps, waiting between them as each asks.
pub(crate) async fn drive(task: &mut impl Steps) {
    while !task.cancel().is_cancelled() && !task.process_queue().is_dropped() {
        match task.step().await {
            Next::Now => {}
            Next::After(delay) => {
                if !pause(delay, task.cancel()).await {
                    break;
                }
            }
            Next::Stop => break,
        }
    }
}

/// What the loop does after a step (the pop task's too).
pub(crate) enum Next {
    Now,
    After(Duration),
    Stop,
}

struct PullTask {
    shared: Arc<Shared>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    next_offset: i64,
    /// Orderly: whether the offset was re-read after the lock was first seen.
    previously_locked: bool,
    flow_controlled: u64,
    /// Undecodable answers at `next_offset` (see [`super::poison`]).
    undecodable: Undecodable,
    /// Failed pulls since the last answer, for logging them sparingly.
    failures: FailureLog,
    /// The broker address last recorded in the task's span.
    span_addr: Option<String>,
    cancel: CancellationToken,
}

impl PullTask {
    async fn run(mut self) {
        tracing::debug!(offset = self.next_offset, "pull task started");
        drive(&mut self).await;
        tracing::debug!(offset = self.next_offset, "pull task stopped");
    }

    fn exception_delay(&self) -> Next {
        Next::After(self.shared.options.pull_time_delay_when_exception)
    }
}

impl Steps for PullTask {
    fn process_queue(&self) -> &ProcessQueue {
        &self.pq
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    async fn step(&mut self) -> Next {
        self.pq.record_pull(Instant::now());
        if *self.shared.paused.borrow() {
            return self.wait_resumed().await;
        }
        if let Some(next) = self.flow_control() {
            return next;
        }
        if self.shared.locks_queues() {
            if let Some(next) = self.check_lock().await {
                return next;
            }
        }
        let Some(subscription) = self.shared.subscription(&self.mq.topic) else {
            tracing::warn!(group = %self.shared.options.group, mq = %self.mq,
                "no subscription for the queue's topic");
            return self.exception_delay();
        };
        let addr = match self.pull_addr().await {
            Ok(addr) => addr,
            Err(err) => {
                self.report_failure("no broker to pull from", &err);
                return self.exception_delay();
            }
        };
        // Recorded when it changes only: a log subscriber may append every
        // recorded value to the span's text, which then grows with each pull.
        if self.span_addr.as_deref() != Some(addr.addr.as_str()) {
            tracing::Span::current().record("addr", addr.addr.as_str());
            self.span_addr = Some(addr.addr.clone());
        }
        let mut header = request::header(
            &self.shared.options,
            &self.mq,
            &subscription,
            PullAt {
                offset: self.next_offset,
                commit: self.commit_offset().await,
                from_slave: addr.slave,
            },
        );
        header.max_msg_nums = self
            .undecodable
            .batch_size(self.next_offset, header.max_msg_nums);
        tracing::trace!(
            offset = self.next_offset,
            sys_flag = header.sys_flag,
            "pulling"
        );
        let broker = Arc::clone(&self.shared.broker);
        let response = tokio::select! {
            () = self.cancel.cancelled() => return Next::Stop,
            response = broker.pull_message(&addr.addr, header) => response,
        };
        match response {
            Ok(response) => {
                self.failures
                    .log_answer(&self.shared.options.group, &self.mq);
                self.on_response(response, &subscription).await
            }
            Err(err) => self.on_error(&err),
        }
    }
}

impl PullTask {
    async fn wait_resumed(&self) -> Next {
        let mut paused = self.shared.paused.subscribe();
        tokio::select! {
            () = self.cancel.cancelled() => Next::Stop,
            _ = paused.wait_for(|paused| !*paused) => Next::Now,
        }
    }

    fn flow_control(&mut self) -> Option<Next> {
        let owned_queues = self.shared.assignment.count_owned();
        let limits = Limits::new(
            &self.shared.options,
            owned_queues,
            self.shared.consume.is_orderly(),
        );
        let reason = flow::check(&self.pq, &limits)?;
        if self.flow_controlled.is_multiple_of(FLOW_CONTROL_LOG_EVERY) {
            tracing::warn!(
                group = %self.shared.options.group,
                mq = %self.mq,
                ?reason,
                times = self.flow_controlled + 1,
                "flow control: pull paused"
            );
        } else {
            tracing::trace!(?reason, "flow control: pull paused");
        }
        self.flow_controlled += 1;
        Some(Next::After(
            self.shared.options.pull_time_delay_when_flow_control,
        ))
    }

    /// Orderly, clustering: pull only while the queue holds its lock; the
    /// first time it does, re-read the start offset from the store (the
    /// previous owner may have persisted since), as Java does.
    async fn check_lock(&mut self) -> Option<Next> {
        if !self.pq.is_locked() {
            tracing::debug!("queue not locked; pull later");
            return Some(self.exception_delay());
        }
        if self.previously_locked {
            return None;
        }
        let shared = &self.shared;
        match start_offset(
            &self.mq,
            &shared.options,
            shared.store.as_ref(),
            shared.broker.as_ref(),
            &shared.routes,
        )
        .await
        {
            Ok(offset) => {
                tracing::debug!(
                    from = self.next_offset,
                    to = offset,
                    "first locked pull: offset fixed"
                );
                self.next_offset = offset;
                self.previously_locked = true;
                None
            }
            Err(err) => {
                tracing::warn!(group = %shared.options.group, mq = %self.mq, error = %err,
                    "first locked pull: no start offset");
                Some(self.exception_delay())
            }
        }
    }

    /// Where to pull from: the broker the last answer suggested, refreshing
    /// the topic's route once when the broker is unknown.
    async fn pull_addr(&self) -> Result<PullAddr> {
        let table = self.shared.routes.table();
        match table.pull_addr(&self.mq) {
            Err(KernelError::NoBrokerAddress { .. }) => {
                self.shared.routes.refresh(&self.mq.topic).await?;
                table.pull_addr(&self.mq)
            }
            found => found,
        }
    }

    /// Clustering: the in-memory offset to commit with the pull.
    async fn commit_offset(&self) -> Option<i64> {
        if self.shared.options.message_model != MessageModel::Clustering {
            return None;
        }
        let store = &self.shared.store;
        store
            .read(&self.mq, ReadOffsetType::Memory)
            .await
            .ok()
            .flatten()
    }

    async fn on_response(
        &mut self,
        response: PullResponse,
        subscription: &SubscriptionData,
    ) -> Next {
        let header = &response.header;
        self.shared
            .routes
            .table()
            .record_pull_suggestion(&self.mq, header.suggest_which_broker_id);
        let next_begin = header.next_begin_offset;
        match response.status {
            PullStatus::Found => self.on_found(&response, subscription).await,
            PullStatus::NoNewMsg | PullStatus::NoMatchedMsg => {
                tracing::trace!(status = ?response.status, next_begin, "nothing to consume");
                self.next_offset = next_begin;
                if self.pq.is_empty() {
                    // Java's correctTagsOffset: nothing in flight, so the
                    // filtered-out or absent messages count as consumed.
                    self.shared.store.update(&self.mq, next_begin, true);
                }
                Next::Now
            }
            PullStatus::OffsetMoved => self.on_offset_illegal(next_begin).await,
        }
    }

    async fn on_found(&mut self, response: &PullResponse, subscription: &SubscriptionData) -> Next {
        // Filtered with the subscription as it is now: one changed while the
        // pull was out must not drop the messages it selects.
        let current = self.shared.changed_since(subscription);
        let subscription = current.as_ref().unwrap_or(subscription);
        let found = match found_messages(&self.mq, response, subscription) {
            Ok(found) => {
                self.undecodable.decoded();
                found
            }
            Err(err) => {
                let next_begin = response.header.next_begin_offset;
                return match self.undecodable.failed(self.next_offset, next_begin) {
                    PoisonStep::RetryLater => {
                        tracing::error!(group = %self.shared.options.group, mq = %self.mq,
                            offset = self.next_offset, error = %err,
                            "undecodable pull answer; pulling the offset again");
                        self.exception_delay()
                    }
                    PoisonStep::Skip { to } => {
                        tracing::error!(group = %self.shared.options.group, mq = %self.mq,
                            offset = self.next_offset, next = to, error = %err,
                            "a record that cannot be decoded is skipped; it is lost");
                        self.next_offset = to;
                        if self.pq.is_empty() {
                            self.shared.store.update(&self.mq, to, true);
                        }
                        Next::Now
                    }
                };
            }
        };
        let msgs = found.messages;
        let requested = self.next_offset;
        self.next_offset = found.next_offset;
        if self.next_offset < requested || msgs.first().is_some_and(|m| m.queue_offset < requested)
        {
            tracing::warn!(
                group = %self.shared.options.group,
                mq = %self.mq,
                requested,
                next_begin = self.next_offset,
                "pull answer went backwards"
            );
        }
        tracing::debug!(found = msgs.len(), next_begin = self.next_offset, "pulled");
        if !msgs.is_empty() {
            let msgs: Vec<Arc<MessageExt>> = msgs.into_iter().map(Arc::new).collect();
            let dispatch = self.pq.put(&msgs);
            let request = ConsumeRequest {
                mq: self.mq.clone(),
                pq: Arc::clone(&self.pq),
                msgs,
                dispatch,
            };
            let consume = Arc::clone(&self.shared.consume);
            // The messages are in the process queue now: they go to the
            // consume service even when the task is stopped meanwhile, so a
            // shutdown drains them. The submit is polled first, so it has
            // started when a stop drops it, and a started submit dropped
            // queues what it had not queued yet.
            tokio::select! {
                biased;
                () = consume.submit(request) => {}
                () = self.cancel.cancelled() => return Next::Stop,
            }
        }
        match self.shared.options.pull_interval {
            Duration::ZERO => Next::Now,
            interval => Next::After(interval),
        }
    }

    /// Logs a failed pull sparingly (see [`super::failures`]).
    fn report_failure(&mut self, what: &str, err: &KernelError) {
        self.failures
            .log_failure(&self.shared.options.group, &self.mq, what, err);
    }

    /// OFFSET_ILLEGAL: the queue is dropped, its offset set (forced) to
    /// where the broker says to continue and persisted, and a rebalance
    /// removes the queue and adds it again from there, all at once (Java
    /// 5's; 4.x waited 10 s first). No commit of the dropped queue's
    /// consumption can land after the forced offset: commits check the drop
    /// under the queue's lock (Java 5 freezes the offset instead).
    async fn on_offset_illegal(&mut self, next_begin: i64) -> Next {
        tracing::warn!(
            group = %self.shared.options.group,
            mq = %self.mq,
            offset = self.next_offset,
            next_begin,
            "offset illegal; the queue is dropped"
        );
        self.next_offset = next_begin;
        self.pq.mark_dropped();
        self.shared.store.update(&self.mq, next_begin, false);
        if let Err(err) = self.shared.store.persist(&self.mq).await {
            tracing::warn!(group = %self.shared.options.group, mq = %self.mq, error = %err,
                "persisting the corrected offset failed");
        }
        tracing::warn!(group = %self.shared.options.group, mq = %self.mq, offset = next_begin,
            "offset corrected");
        self.shared.trigger.request();
        Next::Stop
    }

    fn on_error(&mut self, err: &KernelError) -> Next {
        let code = match err {
            KernelError::Remoting(remoting) => remoting.response_code(),
            _ => None,
        };
        if self.mq.topic.starts_with(RETRY_TOPIC_PREFIX) {
            tracing::debug!(error = %err, "pull failed");
        } else if code == Some(ResponseCode::SUBSCRIPTION_NOT_LATEST) {
            self.report_failure(
                "pull refused: the broker's subscription is not the latest",
                err,
            );
        } else {
            self.report_failure("pull failed", err);
        }
        if retry_soon(err) {
            Next::After(BROKER_FLOW_CONTROL_DELAY)
        } else {
            self.exception_delay()
        }
    }
}
