//! The pop task of one queue a broker assigned in pop mode (Java's
//! `DefaultMQPushConsumerImpl#popMessage` and its callback, as one loop).
//!
//! Each turn: waits while the consumer is suspended; while more than
//! `pop_threshold_for_queue` of the queue's popped messages wait for their
//! acknowledgement, waits `pull_time_delay_when_flow_control`; pops up to
//! `pop_batch_nums` messages (queue id -1: every queue of the broker) with
//! long polling (`broker_suspend_max_time`), hidden for
//! `pop_invisible_time`; hands what it found to the consume service
//! ([`ConsumeService::submit_popped`](crate::consume::ConsumeService::submit_popped)),
//! which waits when the consume side is full (a stop of the task does not
//! wait for it), with the time their invisible time ends, reckoned from the
//! answer's arrival. Messages of a tag whose hash
//! collides with a subscribed one's are acknowledged, as Java does; one
//! retried more than `max_reconsume_times` already goes to the dead-letter
//! topic without being consumed (Java acknowledges it away). A failed
//! pop waits `pull_time_delay_when_exception` (20 ms after FLOW_CONTROL or
//! GO_AWAY). The task ends when its queue is dropped or its token cancelled.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rocketmq_model::body::ConsumeFromWhere;
use rocketmq_model::header::PopMessageRequestHeader;
use rocketmq_model::time::epoch_millis;
use rocketmq_model::{MessageQueue, SubscriptionData};
use rocketmq_remoting::calls::{PopResponse, PopStatus};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::acks::{AckTarget, PopAcks};
use super::popped_messages;
use super::queue::PopQueue;
use crate::consume::PoppedRequest;
use crate::error::Result;
use crate::process_queue::ProcessQueue;
use crate::pull::task::{Next, Steps, drive};
use crate::pull::{BROKER_FLOW_CONTROL_DELAY, FailureLog, retry_soon};
use crate::rebalance::assignment::PullHandle;
use crate::rebalance::shared::Shared;

/// Java's `ConsumeInitMode`: where a group without an offset starts popping.
const INIT_MODE_MIN: i32 = 0;
const INIT_MODE_MAX: i32 = 1;

/// Starts the pop task of `mq`, owned by the returned handle; it stops when
/// `pq` is dropped.
pub(crate) fn spawn(
    shared: &Arc<Shared>,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    queue: Arc<PopQueue>,
) -> PullHandle {
    let cancel = shared.cancel.child_token();
    let span = tracing::debug_span!(
        "pop",
        group = %shared.options.group,
        topic = %mq.topic,
        queue_id = mq.queue_id,
        broker = %mq.broker_name,
    );
    let task = PopTask {
        acks: PopAcks::new(
            Arc::clone(&shared.broker),
            shared.routes.clone(),
            shared.options.group.clone(),
        ),
        shared: Arc::clone(shared),
        mq,
        pq,
        queue,
        failures: FailureLog::default(),
        cancel: cancel.clone(),
    };
    let handle = shared.pull_tasks.spawn(task.run().instrument(span));
    PullHandle::new(cancel, handle)
}

struct PopTask {
    shared: Arc<Shared>,
    acks: PopAcks,
    mq: MessageQueue,
    pq: Arc<ProcessQueue>,
    queue: Arc<PopQueue>,
    failures: FailureLog,
    cancel: CancellationToken,
}

impl PopTask {
    async fn run(mut self) {
        tracing::debug!("pop task started");
        drive(&mut self).await;
        tracing::debug!("pop task stopped");
    }
}

impl Steps for PopTask {
    fn process_queue(&self) -> &ProcessQueue {
        &self.pq
    }

    fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    async fn step(&mut self) -> Next {
        let options = &self.shared.options;
        if *self.shared.paused.borrow() {
            let mut paused = self.shared.paused.subscribe();
            return tokio::select! {
                () = self.cancel.cancelled() => Next::Stop,
                _ = paused.wait_for(|paused| !*paused) => Next::Now,
            };
        }
        if self.queue.waiting() > options.pop_threshold_for_queue {
            tracing::trace!(waiting = self.queue.waiting(), "flow control: pop paused");
            return Next::After(options.pull_time_delay_when_flow_control);
        }
        let Some(subscription) = self.shared.subscription(&self.mq.topic) else {
            return Next::After(options.pull_time_delay_when_exception);
        };
        self.queue.record_pop(SystemTime::now());
        let response = tokio::select! {
            () = self.cancel.cancelled() => return Next::Stop,
            response = self.pop(&subscription) => response,
        };
        let response = match response {
            Ok(response) => {
                self.failures.log_answer(&options.group, &self.mq);
                response
            }
            Err(err) => {
                self.failures
                    .log_failure(&options.group, &self.mq, "pop failed", &err);
                return Next::After(if retry_soon(&err) {
                    BROKER_FLOW_CONTROL_DELAY
                } else {
                    options.pull_time_delay_when_exception
                });
            }
        };
        match response.status {
            PopStatus::Found => self.found(&response, &subscription, Instant::now()).await,
            PopStatus::NoNewMsg => Next::Now,
            PopStatus::PollingFull => Next::After(options.pull_time_delay_when_exception),
        }
    }
}

impl PopTask {
    async fn pop(&self, subscription: &SubscriptionData) -> Result<PopResponse> {
        let options = &self.shared.options;
        let addr = self.shared.routes.master_addr(&self.mq).await?;
        let header = PopMessageRequestHeader {
            consumer_group: options.group.clone(),
            topic: self.mq.topic.clone(),
            queue_id: self.mq.queue_id,
            max_msg_nums: options.pop_batch_nums,
            invisible_time: millis(options.pop_invisible_time),
            poll_time: millis(options.broker_suspend_max_time),
            born_time: epoch_millis(SystemTime::now()),
            init_mode: match options.consume_from_where {
                ConsumeFromWhere::FirstOffset => INIT_MODE_MIN,
                _ => INIT_MODE_MAX,
            },
            exp_type: Some(subscription.expression_type.as_str().to_owned()),
            exp: Some(subscription.sub_string.clone()),
            order: false,
            attempt_id: None,
            broker_name: Some(self.mq.broker_name.clone()),
        };
        self.shared.broker.pop_message(&addr, header).await
    }

    /// Hands the messages of a FOUND answer, received at `answered`, to
    /// the consume service.
    async fn found(
        &mut self,
        response: &PopResponse,
        subscription: &SubscriptionData,
        answered: Instant,
    ) -> Next {
        let options = &self.shared.options;
        let popped = match popped_messages(&self.mq.broker_name, response, subscription) {
            Ok(popped) => popped,
            Err(err) => {
                // Nothing can acknowledge them: they come back when their
                // invisible time passes.
                self.failures.log_failure(
                    &options.group,
                    &self.mq,
                    "a pop answer could not be read",
                    &err,
                );
                return Next::After(options.pull_time_delay_when_exception);
            }
        };
        let filtered_out: Vec<AckTarget<'_>> = (popped.filtered_out.iter())
            .map(|handle| (self.mq.topic.as_str(), handle))
            .collect();
        let outcomes = self.acks.ack_batch(&filtered_out).await;
        for ((_, handle), outcome) in filtered_out.iter().zip(outcomes) {
            if let Err(err) = outcome {
                tracing::debug!(handle = %handle, error = %err, "acknowledging a filtered-out message failed");
            }
        }
        // Retried more often than allowed already (its dead-lettering after
        // the last failure did not go through): not consumed again.
        let max = options.concurrent_max_reconsume_times();
        let (spent, messages): (Vec<_>, Vec<_>) = popped
            .messages
            .into_iter()
            .partition(|popped| popped.message.reconsume_times > max);
        for popped in spent {
            let moved = (self.acks)
                .to_dead_letters(&self.mq.topic, &popped.message, &popped.handle)
                .await;
            if let Err(err) = moved {
                tracing::warn!(handle = %popped.handle, error = %err,
                    "moving a message to the dead-letter topic failed; it comes back");
            }
        }
        if messages.is_empty() {
            return Next::Now;
        }
        self.queue.popped(messages.len());
        let request = PoppedRequest {
            mq: self.mq.clone(),
            queue: Arc::clone(&self.queue),
            messages,
            invisible_until: answered + self.shared.options.pop_invisible_time,
        };
        let consume = Arc::clone(&self.shared.consume);
        // As the pull task's hand-off: a stop (the queue removed, a
        // shutdown) does not wait for room in the consume service, which a
        // slow listener may not make for long; a submit already polled
        // queues what it had not queued yet when dropped.
        tokio::select! {
            biased;
            () = consume.submit_popped(request) => {}
            () = self.cancel.cancelled() => return Next::Stop,
        }
        if options.pull_interval.is_zero() {
            Next::Now
        } else {
            Next::After(options.pull_interval)
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
