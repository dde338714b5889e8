//! [`OrderlyService`]: consumes each queue one batch at a time, in order,
//! under the broker's queue lock (Java's `ConsumeMessageOrderlyService`).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::FutureExt;
use rocketmq_model::body::{LockBatchRequestBody, MessageModel};
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hook::{ConsumeHookContext, ConsumeOutcome};
use super::listener::{OrderlyContext, OrderlyListener, OrderlyResult};
use super::send_back::{SendBack, retry_copy};
use super::view::ListenerView;
use super::{ConsumeEnv, ConsumeRequest, ConsumeService, ShutdownReport};
use crate::ProcessQueue;
use crate::error::Result;

/// One of [`ListenerView`]'s copies of a message.
type CopyFn = fn(&ListenerView, &MessageExt, SystemTime) -> MessageExt;

/// Wait before consuming after the queue lock was obtained (Java's
/// `tryLockLaterAndReconsume`, lock granted).
pub const LOCKED_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Wait before trying again after the broker refused the queue lock (or
/// could not be asked).
pub const LOCK_FAILED_RETRY_DELAY: Duration = Duration::from_secs(3);

/// The shortest pause after a suspended batch, whatever the listener or the
/// options ask (Java's `submitConsumeRequestLater`).
pub const SHORTEST_SUSPEND: Duration = Duration::from_millis(10);

/// The longest pause after a suspended batch (Java's limit too).
pub const LONGEST_SUSPEND: Duration = Duration::from_secs(30);

/// Consumes orderly: one consume loop per queue with messages, never two
/// batches of one queue at once, at most `consume_thread_max` batches (of
/// any queues) at once.
///
/// In clustering mode a queue is consumed only while its process queue
/// holds the broker lock and the lock has not expired locally; otherwise the
/// loop asks the broker for the lock and tries again after
/// [`LOCKED_RETRY_DELAY`] or [`LOCK_FAILED_RETRY_DELAY`]. Each batch is
/// consumed holding the process queue's `consume_lock`, so a rebalance does
/// not unlock the queue mid-batch. A successful batch is committed; a
/// suspended one is consumed again after the suspend time (held between
/// [`SHORTEST_SUSPEND`] and [`LONGEST_SUSPEND`]), in place, with
/// its reconsume count raised, until the count reaches
/// `orderly_max_reconsume_times`: then the message is sent to
/// `%RETRY%<group>` (which the broker dead-letters) and counts as consumed,
/// unless that send fails.
///
/// Renewing the locks of all assigned queues (every 20 s) and unlocking
/// dropped queues belong to the rebalance, which owns the process queues.
pub struct OrderlyService {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    closing: CancellationToken,
    stopped: CancellationToken,
}

struct Shared {
    env: ConsumeEnv,
    send_back: SendBack,
    view: ListenerView,
    listener: Arc<dyn OrderlyListener>,
    /// One per batch being consumed, of any queue.
    permits: Semaphore,
    /// The queues that have a consume loop.
    loops: Mutex<HashMap<MessageQueue, QueueLoop>>,
    /// One lock per queue, held while a batch of it is consumed (Java's
    /// `MessageQueueLock`): a queue dropped mid-batch and added back with a
    /// new process queue gets a second loop, which waits here for the old
    /// batch, so two batches of one queue never run at once.
    consuming: Mutex<HashMap<MessageQueue, Arc<tokio::sync::Mutex<()>>>>,
    in_flight_batches: AtomicUsize,
}

/// A running consume loop.
struct QueueLoop {
    pq: Arc<ProcessQueue>,
    /// Messages were dispatched after the loop last found the queue empty.
    rerun: bool,
}

/// What a consume loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Consume the next batch.
    Continue,
    /// Wait, then go on.
    Pause(Duration),
    /// Nothing waiting: end unless more was dispatched meanwhile.
    Empty,
    /// The queue was dropped or the service is closing.
    Stop,
}

impl fmt::Debug for OrderlyService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderlyService")
            .field("env", &self.shared.env)
            .field("closing", &self.closing.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl OrderlyService {
    /// A service consuming with `listener`; consume loops run on the
    /// current tokio runtime as queues get messages.
    pub fn new(env: ConsumeEnv, listener: Arc<dyn OrderlyListener>) -> Self {
        let permits = env.options.consume_thread_max.max(1);
        OrderlyService {
            shared: Arc::new(Shared {
                send_back: env.send_back(),
                view: ListenerView::new(&env.options),
                env,
                listener,
                permits: Semaphore::new(permits),
                loops: Mutex::new(HashMap::new()),
                consuming: Mutex::new(HashMap::new()),
                in_flight_batches: AtomicUsize::new(0),
            }),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            stopped: CancellationToken::new(),
        }
    }

    /// Stops starting batches, waits up to `timeout` for the batches in
    /// flight, then abandons them and reports what is left: the abandoned
    /// batches and every message still cached in the queues it served.
    pub async fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.closing.cancel();
        self.tasks.close();
        if tokio::time::timeout(timeout, self.tasks.wait())
            .await
            .is_err()
        {
            self.stopped.cancel();
            self.tasks.wait().await;
        }
        let shared = &self.shared;
        let messages_left = shared
            .loops()
            .values()
            .filter(|entry| !entry.pq.is_dropped())
            .map(|entry| entry.pq.cached_count())
            .sum();
        ShutdownReport {
            batches_left: shared.in_flight_batches.swap(0, Ordering::AcqRel),
            messages_left,
        }
    }
}

impl Drop for OrderlyService {
    fn drop(&mut self) {
        self.closing.cancel();
        self.stopped.cancel();
    }
}

#[async_trait]
impl ConsumeService for OrderlyService {
    async fn submit(&self, request: ConsumeRequest) {
        if !request.dispatch || self.closing.is_cancelled() {
            return;
        }
        if !self.shared.register(&request.mq, &request.pq) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let (closing, stopped) = (self.closing.clone(), self.stopped.clone());
        self.tasks.spawn(async move {
            shared
                .run_queue(request.mq, request.pq, closing, stopped)
                .await;
        });
    }

    fn is_orderly(&self) -> bool {
        true
    }
}

impl Shared {
    fn loops(&self) -> MutexGuard<'_, HashMap<MessageQueue, QueueLoop>> {
        self.loops.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock held while a batch of `mq` is consumed.
    fn consuming(&self, mq: &MessageQueue) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .consuming
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(mq.clone()).or_default())
    }

    /// Registers a consume loop for `pq`; false when one runs already (it is
    /// told to look again before it ends).
    fn register(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) -> bool {
        let mut loops = self.loops();
        match loops.get_mut(mq) {
            Some(running) if Arc::ptr_eq(&running.pq, pq) => {
                running.rerun = true;
                false
            }
            _ => {
                let entry = QueueLoop {
                    pq: Arc::clone(pq),
                    rerun: false,
                };
                loops.insert(mq.clone(), entry);
                true
            }
        }
    }

    /// The loop of `pq` found it empty: ends it (true) unless messages were
    /// dispatched meanwhile.
    fn finish(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) -> bool {
        let mut loops = self.loops();
        match loops.get_mut(mq) {
            Some(running) if Arc::ptr_eq(&running.pq, pq) => {
                if running.rerun {
                    running.rerun = false;
                    return false;
                }
                loops.remove(mq);
                true
            }
            _ => true,
        }
    }

    fn unregister(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>) {
        let mut loops = self.loops();
        if loops
            .get(mq)
            .is_some_and(|running| Arc::ptr_eq(&running.pq, pq))
        {
            loops.remove(mq);
        }
    }

    /// The consume loop of one queue.
    async fn run_queue(
        &self,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        closing: CancellationToken,
        stopped: CancellationToken,
    ) {
        // Failed attempts per offset, added to the messages' reconsume count.
        let mut attempts = HashMap::new();
        loop {
            if pq.is_dropped() {
                self.unregister(&mq, &pq);
                return;
            }
            let step = tokio::select! {
                biased;
                () = stopped.cancelled() => Step::Stop,
                step = self.step(&mq, &pq, &mut attempts, &closing) => step,
            };
            match step {
                Step::Continue => {}
                Step::Pause(pause) => {
                    tokio::select! {
                        () = closing.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
                Step::Empty if self.finish(&mq, &pq) => return,
                Step::Empty => {}
                // Closing: the registration stays for the shutdown report.
                Step::Stop if !pq.is_dropped() => return,
                Step::Stop => {}
            }
        }
    }

    /// Consumes the next batch of `pq`, if it may.
    async fn step(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
        attempts: &mut HashMap<i64, i32>,
        closing: &CancellationToken,
    ) -> Step {
        if closing.is_cancelled() {
            return Step::Stop;
        }
        let clustering = self.env.options.message_model == MessageModel::Clustering;
        if clustering && !pq.holds_lock(Instant::now()) {
            return Step::Pause(if self.lock_queue(mq, pq).await {
                LOCKED_RETRY_DELAY
            } else {
                LOCK_FAILED_RETRY_DELAY
            });
        }
        let queue = self.consuming(mq);
        let _queue = tokio::select! {
            () = closing.cancelled() => return Step::Stop,
            guard = queue.lock() => guard,
        };
        let _permit = tokio::select! {
            () = closing.cancelled() => return Step::Stop,
            permit = self.permits.acquire() => match permit {
                Ok(permit) => permit,
                Err(_) => return Step::Stop,
            },
        };
        let _consuming = pq.consume_lock().lock().await;
        if pq.is_dropped() {
            return Step::Stop;
        }
        if clustering && !pq.holds_lock(Instant::now()) {
            return Step::Continue;
        }
        let size = self.env.options.consume_message_batch_max_size.max(1);
        let msgs = pq.take(size, Instant::now());
        if msgs.is_empty() {
            return Step::Empty;
        }
        self.consume_batch(mq, pq, &msgs, attempts).await
    }

    /// Asks the master of `mq`'s broker for its lock (Java's `lockOneMQ`).
    async fn lock_queue(&self, mq: &MessageQueue, pq: &ProcessQueue) -> bool {
        let addr = match self.env.routes.table().master_addr(&mq.broker_name) {
            Ok(addr) => addr,
            Err(err) => {
                tracing::warn!(%mq, error = %err, "cannot lock the queue");
                return false;
            }
        };
        let body = LockBatchRequestBody {
            client_id: self.env.client_id.clone(),
            consumer_group: self.env.options.group.clone(),
            mq_set: BTreeSet::from([mq.clone()]),
            only_this_broker: false,
        };
        match self.env.api.lock_batch(&addr, body).await {
            Ok(locked) if locked.contains(mq) => {
                pq.lock_granted(Instant::now());
                true
            }
            Ok(_) => {
                tracing::info!(%mq, "the broker refused the queue lock");
                pq.lock_lost();
                false
            }
            Err(err) => {
                tracing::warn!(%mq, %addr, error = %err, "locking the queue failed");
                false
            }
        }
    }

    async fn consume_batch(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
        msgs: &[Arc<MessageExt>],
        attempts: &mut HashMap<i64, i32>,
    ) -> Step {
        let wall_now = SystemTime::now();
        // The batch as `copy` makes it, each message with the reconsume
        // count it has reached here.
        let copies = |attempts: &HashMap<i64, i32>, copy: CopyFn| -> Vec<MessageExt> {
            msgs.iter()
                .map(|msg| {
                    let mut copy = copy(&self.view, msg, wall_now);
                    copy.reconsume_times += attempts.get(&msg.queue_offset).copied().unwrap_or(0);
                    copy
                })
                .collect()
        };
        let count = msgs.len();
        let batch = copies(attempts, ListenerView::message);
        let mut ctx = OrderlyContext::new(self.view.owned_queue(mq));
        let spans = self.env.hooks.before(&ConsumeHookContext {
            group: &self.env.options.group,
            mq: &ctx.mq,
            msgs: &batch,
        });
        self.in_flight_batches.fetch_add(1, Ordering::AcqRel);
        let started = Instant::now();
        let (result, outcome) = match AssertUnwindSafe(self.listener.consume(batch, &mut ctx))
            .catch_unwind()
            .await
        {
            Ok(OrderlyResult::Success) => (OrderlyResult::Success, ConsumeOutcome::Success),
            Ok(OrderlyResult::SuspendCurrentQueue) => {
                (OrderlyResult::SuspendCurrentQueue, ConsumeOutcome::Failed)
            }
            Err(_) => {
                tracing::error!(%mq, "the listener panicked; suspending the queue");
                (OrderlyResult::SuspendCurrentQueue, ConsumeOutcome::Panicked)
            }
        };
        let elapsed = started.elapsed();
        spans.after(outcome, elapsed);
        self.in_flight_batches.fetch_sub(1, Ordering::AcqRel);
        match result {
            OrderlyResult::Success => {
                self.env.stats.record(&mq.topic, elapsed, count, 0);
                if ctx.auto_commit {
                    self.commit(mq, pq, attempts);
                }
                Step::Continue
            }
            OrderlyResult::SuspendCurrentQueue => {
                self.env.stats.record(&mq.topic, elapsed, 0, count);
                // The listener kept its batch: the messages go on as it
                // saw them, named as the broker names them (a dead letter
                // records the topic the message was stored in).
                let returned = copies(attempts, ListenerView::returned);
                self.suspend(mq, pq, &returned, &ctx, attempts).await
            }
        }
    }

    /// Commits the taken messages and records the offset.
    fn commit(&self, mq: &MessageQueue, pq: &ProcessQueue, attempts: &mut HashMap<i64, i32>) {
        let offset = pq.commit();
        if let Some(offset) = offset {
            attempts.retain(|taken, _| *taken >= offset);
        }
        self.env.commit(mq, pq, offset);
    }

    /// A suspended batch (Java's `checkReconsumeTimes`): messages below the
    /// maximum reconsume count are consumed again after a pause; those at
    /// the maximum go to the retry topic and count as consumed. `msgs` are
    /// the batch's messages with the broker's names.
    async fn suspend(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
        msgs: &[MessageExt],
        ctx: &OrderlyContext,
        attempts: &mut HashMap<i64, i32>,
    ) -> Step {
        let max = self.env.options.orderly_max_reconsume_times();
        let mut again = Vec::new();
        for msg in msgs {
            if msg.reconsume_times >= max {
                match self.dead_letter(msg, max).await {
                    Ok(()) => continue,
                    Err(err) => tracing::warn!(%mq, offset = msg.queue_offset, error = %err,
                        "could not send the message to the retry topic; suspending"),
                }
            }
            again.push(msg.queue_offset);
            *attempts.entry(msg.queue_offset).or_insert(0) += 1;
        }
        if again.is_empty() {
            if ctx.auto_commit {
                self.commit(mq, pq, attempts);
            }
            return Step::Continue;
        }
        // Messages sent to the retry topic stay taken until the next commit.
        pq.make_available_later(&again);
        let options = &self.env.options;
        let pause = ctx
            .suspend_current_queue_time
            .unwrap_or(options.suspend_current_queue_time);
        // As Java's submitConsumeRequestLater: never a busy loop, never
        // a queue stalled for more than 30 s.
        Step::Pause(pause.clamp(SHORTEST_SUSPEND, LONGEST_SUSPEND))
    }

    /// Sends a message that reached the maximum reconsume count to
    /// `%RETRY%<group>`, which the broker turns into a dead letter.
    async fn dead_letter(&self, msg: &MessageExt, max: i32) -> Result<()> {
        let copy = retry_copy(msg, self.send_back.group(), msg.reconsume_times + 1, max)?;
        self.send_back.send_to_retry_topic(&copy).await.map(drop)
    }
}
