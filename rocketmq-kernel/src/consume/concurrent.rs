//! [`ConcurrentService`]: consumes batches in parallel on a bounded pool of
//! workers (Java's `ConsumeMessageConcurrentlyService`).

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::FutureExt;
use rocketmq_model::body::MessageModel;
use rocketmq_model::message::ReceiptHandle;
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::hook::{ConsumeHookContext, ConsumeOutcome};
use super::listener::{ConcurrentContext, ConcurrentListener, ConcurrentResult};
use super::retry::DelayedQueue;
use super::send_back::SendBack;
use super::view::ListenerView;
use super::{ConsumeEnv, ConsumeRequest, ConsumeService, PoppedRequest, ShutdownReport};
use crate::ProcessQueue;
use crate::pop::{CoalescedAcks, PopAcks, PopQueue, Settling, settle};

/// How long a message whose send-back failed waits before it is consumed
/// again locally (Java's `submitConsumeRequestLater`).
pub const LOCAL_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Batches the submit queue holds per worker before [`ConsumeService::submit`]
/// waits.
const QUEUED_BATCHES_PER_WORKER: usize = 2;

/// One listener call's worth of messages of one queue.
#[derive(Debug)]
struct Batch {
    /// Shared by the batches of one request (a clone is two strings).
    mq: Arc<MessageQueue>,
    origin: Origin,
    msgs: Vec<Arc<MessageExt>>,
    /// Whether the batch holds a submit-queue slot, given back when a
    /// worker takes it; not for the rest of a submit given up on (see
    /// [`Unqueued`]).
    slotted: bool,
}

/// Where a batch's messages came from, which decides what becomes of them
/// once consumed.
#[derive(Debug)]
enum Origin {
    /// Pulled: they are in this process queue, and the offset store gets
    /// the offset past them.
    Pulled(Arc<ProcessQueue>),
    /// Popped: each is settled with its broker by its receipt handle
    /// (`handles`, in the order of the messages), unless their invisible
    /// time ends first.
    Popped {
        queue: Arc<PopQueue>,
        handles: Vec<ReceiptHandle>,
        invisible_until: Instant,
    },
}

/// What a listener call gave.
struct Listened {
    /// How many of the batch's messages, from the first, it acknowledged.
    acked: usize,
    /// Its context, as it left it (the delay level of a retry).
    ctx: ConcurrentContext,
    /// When the call began (the consume start time it was shown).
    wall_now: SystemTime,
}

/// Consumes messages concurrently: `consume_thread_max` workers take
/// batches of up to `consume_message_batch_max_size` messages from a bounded
/// queue and call the [`ConcurrentListener`].
///
/// After each call, in clustering mode, the messages the listener did not
/// acknowledge are sent back to the broker (or, failing that, to the retry
/// topic); a message that could be neither stays in its process queue and is
/// consumed again here after [`LOCAL_RETRY_DELAY`]. Acknowledged and sent
/// back messages leave the process queue and the offset store gets the
/// offset that is then safe to commit, so the committed offset never passes
/// a message that is neither. In broadcasting mode failed messages are only
/// logged (as Java does). A dropped queue's messages are neither consumed nor
/// committed.
///
/// Popped messages (pop mode) are consumed the same way, then settled with
/// their broker: acknowledged, or hidden until their retry is due, or
/// dead-lettered after the last retry ([`crate::pop::settle`]). They are
/// consumed even when their queue was dropped meanwhile: they are this
/// client's until their invisible time passes, and not after it (see
/// `consume_popped`).
pub struct ConcurrentService {
    shared: Arc<Shared>,
    tasks: TaskTracker,
    /// Stop accepting; workers finish what is queued.
    closing: CancellationToken,
    /// Stop now; in-flight listener calls are abandoned.
    stopped: CancellationToken,
}

struct Shared {
    env: ConsumeEnv,
    send_back: SendBack,
    pop_acks: CoalescedAcks,
    view: ListenerView,
    listener: Arc<dyn ConcurrentListener>,
    /// The submit queue. Its bound is `slots`: a submit waits for a slot per
    /// batch, and a worker gives the slot back when it takes the batch.
    tx: mpsc::UnboundedSender<Batch>,
    /// Shared by the workers; whoever holds it waits for the next batch.
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Batch>>,
    slots: Arc<Semaphore>,
    retries: DelayedQueue<Batch>,
    in_flight_batches: AtomicUsize,
    in_flight_messages: AtomicUsize,
}

impl fmt::Debug for ConcurrentService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentService")
            .field("env", &self.shared.env)
            .field("closing", &self.closing.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl ConcurrentService {
    /// Starts the workers and the local-retry task (on the current tokio
    /// runtime).
    pub fn start(env: ConsumeEnv, listener: Arc<dyn ConcurrentListener>) -> Self {
        let workers = env.options.consume_thread_max.max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            send_back: env.send_back(),
            pop_acks: CoalescedAcks::new(PopAcks::new(
                Arc::clone(&env.api),
                env.routes.clone(),
                env.options.group.clone(),
            )),
            view: ListenerView::new(&env.options),
            env,
            listener,
            tx,
            rx: tokio::sync::Mutex::new(rx),
            slots: Arc::new(Semaphore::new(workers * QUEUED_BATCHES_PER_WORKER)),
            retries: DelayedQueue::new(),
            in_flight_batches: AtomicUsize::new(0),
            in_flight_messages: AtomicUsize::new(0),
        });
        let service = ConcurrentService {
            shared,
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            stopped: CancellationToken::new(),
        };
        for _ in 0..workers {
            let shared = Arc::clone(&service.shared);
            let (closing, stopped) = (service.closing.clone(), service.stopped.clone());
            service
                .tasks
                .spawn(async move { shared.work(closing, stopped).await });
        }
        let shared = Arc::clone(&service.shared);
        let closing = service.closing.clone();
        service
            .tasks
            .spawn(async move { shared.resubmit_retries(closing).await });
        service
    }

    /// Stops accepting batches, lets the workers finish the queued and
    /// in-flight ones for up to `timeout`, then abandons the rest and
    /// reports it. Pending local retries are abandoned at once. Their
    /// messages stay uncommitted in their process queues.
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
        let mut report = ShutdownReport {
            batches_left: shared.in_flight_batches.swap(0, Ordering::AcqRel),
            messages_left: shared.in_flight_messages.swap(0, Ordering::AcqRel),
        };
        let queued = {
            let mut rx = shared.rx.lock().await;
            std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>()
        };
        for batch in queued.iter().chain(&shared.retries.drain()) {
            report.batches_left += 1;
            report.messages_left += batch.msgs.len();
        }
        report
    }
}

impl Drop for ConcurrentService {
    fn drop(&mut self) {
        self.closing.cancel();
        self.stopped.cancel();
    }
}

/// The batches of a submit not queued yet. Dropped with batches left (the
/// submit was given up on, e.g. its pull task stopped while it waited for a
/// slot), it queues them anyway, beyond the bound: their messages are in
/// the process queue already, and a shutdown's drain must consume them
/// rather than leave them for the queue's next owner. A stopped pull task
/// does this once, so the excess is bounded by the owned queues.
struct Unqueued<'a> {
    service: &'a ConcurrentService,
    batches: std::collections::VecDeque<Batch>,
}

impl Drop for Unqueued<'_> {
    fn drop(&mut self) {
        if self.service.closing.is_cancelled() {
            // Shutting down: the workers take no more; the messages stay
            // cached and are counted as left.
            return;
        }
        for batch in self.batches.drain(..) {
            // Fails only when the workers are gone; the messages stay cached.
            let _ = self.service.shared.tx.send(batch);
        }
    }
}

#[async_trait]
impl ConsumeService for ConcurrentService {
    /// Queues the request's batches, waiting for a slot for each. Cancel
    /// safe: dropped before it finished, it queues the rest without slots
    /// (see `Unqueued`).
    async fn submit(&self, request: ConsumeRequest) {
        let size = self.batch_size();
        let mq = Arc::new(request.mq);
        let batches = request.msgs.chunks(size).map(|chunk| Batch {
            mq: Arc::clone(&mq),
            origin: Origin::Pulled(Arc::clone(&request.pq)),
            msgs: chunk.to_vec(),
            slotted: false,
        });
        self.queue_batches(batches.collect()).await;
    }

    /// Queues the request's batches as [`submit`](Self::submit) does.
    async fn submit_popped(&self, request: PoppedRequest) {
        let size = self.batch_size();
        let mq = Arc::new(request.mq);
        let mut batches = std::collections::VecDeque::new();
        let mut messages = request.messages.into_iter().peekable();
        while messages.peek().is_some() {
            let (msgs, handles) = messages
                .by_ref()
                .take(size)
                .map(|popped| (Arc::new(popped.message), popped.handle))
                .unzip();
            batches.push_back(Batch {
                mq: Arc::clone(&mq),
                origin: Origin::Popped {
                    queue: Arc::clone(&request.queue),
                    handles,
                    invisible_until: request.invisible_until,
                },
                msgs,
                slotted: false,
            });
        }
        self.queue_batches(batches).await;
    }

    fn is_orderly(&self) -> bool {
        false
    }
}

impl ConcurrentService {
    /// Messages per listener call.
    fn batch_size(&self) -> usize {
        self.shared
            .env
            .options
            .consume_message_batch_max_size
            .max(1)
    }

    /// Queues `batches`, waiting for a slot for each (see `Unqueued` for a
    /// wait given up on).
    async fn queue_batches(&self, batches: std::collections::VecDeque<Batch>) {
        let mut unqueued = Unqueued {
            service: self,
            batches,
        };
        while !unqueued.batches.is_empty() {
            if !self.shared.take_slot(&self.closing).await {
                return;
            }
            let Some(mut batch) = unqueued.batches.pop_front() else {
                return;
            };
            batch.slotted = true;
            if self.shared.tx.send(batch).is_err() {
                return;
            }
        }
    }
}

impl Shared {
    async fn work(&self, closing: CancellationToken, stopped: CancellationToken) {
        while let Some(batch) = self.next_batch(&closing, &stopped).await {
            let messages = batch.msgs.len();
            self.in_flight_batches.fetch_add(1, Ordering::AcqRel);
            self.in_flight_messages
                .fetch_add(messages, Ordering::AcqRel);
            tokio::select! {
                biased;
                // Abandoned: the counts stay for the shutdown report.
                () = stopped.cancelled() => return,
                () = self.consume(batch) => {}
            }
            self.in_flight_batches.fetch_sub(1, Ordering::AcqRel);
            self.in_flight_messages
                .fetch_sub(messages, Ordering::AcqRel);
        }
    }

    /// The next batch; once closing, only what is already queued.
    async fn next_batch(
        &self,
        closing: &CancellationToken,
        stopped: &CancellationToken,
    ) -> Option<Batch> {
        if stopped.is_cancelled() {
            return None;
        }
        let mut rx = tokio::select! {
            biased;
            () = stopped.cancelled() => return None,
            rx = self.rx.lock() => rx,
        };
        let batch = tokio::select! {
            biased;
            () = stopped.cancelled() => None,
            batch = rx.recv() => batch,
            () = closing.cancelled() => rx.try_recv().ok(),
        };
        batch.map(|mut batch| {
            // Taken from the queue: its slot is free for the next submit.
            if std::mem::take(&mut batch.slotted) {
                self.slots.add_permits(1);
            }
            batch
        })
    }

    /// Waits for a free slot of the submit queue and takes it (a worker
    /// gives it back when it takes the batch); false once closing.
    async fn take_slot(&self, closing: &CancellationToken) -> bool {
        if closing.is_cancelled() {
            return false;
        }
        let permit = match self.slots.try_acquire() {
            Ok(permit) => permit,
            Err(_) => tokio::select! {
                biased;
                () = closing.cancelled() => return false,
                permit = self.slots.acquire() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return false,
                },
            },
        };
        permit.forget();
        true
    }

    /// Puts due local retries back into the submit queue until closing.
    async fn resubmit_retries(&self, closing: CancellationToken) {
        loop {
            let batch = tokio::select! {
                () = closing.cancelled() => return,
                batch = self.retries.next_due() => batch,
            };
            if matches!(&batch.origin, Origin::Pulled(pq) if pq.is_dropped()) {
                continue;
            }
            if !self.take_slot(&closing).await {
                // Kept for the shutdown report.
                self.retries.push(Instant::now(), batch);
                return;
            }
            if self
                .tx
                .send(Batch {
                    slotted: true,
                    ..batch
                })
                .is_err()
            {
                return;
            }
        }
    }

    async fn consume(&self, batch: Batch) {
        let Batch {
            mq, origin, msgs, ..
        } = batch;
        match origin {
            Origin::Pulled(pq) => self.consume_pulled(mq, pq, msgs).await,
            Origin::Popped {
                queue,
                handles,
                invisible_until,
            } => {
                self.consume_popped(&mq, &queue, &msgs, &handles, invisible_until)
                    .await;
            }
        }
    }

    async fn consume_pulled(
        &self,
        mq: Arc<MessageQueue>,
        pq: Arc<ProcessQueue>,
        msgs: Vec<Arc<MessageExt>>,
    ) {
        if pq.is_dropped() {
            tracing::debug!(%mq, "queue dropped; not consuming its batch");
            return;
        }
        let offsets: Vec<i64> = msgs.iter().map(|msg| msg.queue_offset).collect();
        pq.mark_consume_started(&offsets, Instant::now());
        let listened = self.call_listener(&mq, &msgs).await;
        if pq.is_dropped() {
            tracing::debug!(%mq, "queue dropped while consuming; result ignored");
            return;
        }
        let Listened {
            acked,
            ctx,
            wall_now,
        } = listened;
        // The listener kept its batch: the failed messages go back as it
        // saw them (same original topic, same start time), named as the
        // broker names them.
        let returned = |msg: &Arc<MessageExt>| self.view.returned(msg, wall_now);
        let failed_copies: Vec<MessageExt> = msgs[acked..].iter().map(returned).collect();
        let failed = self.return_failed(&mq, &pq, &failed_copies, &ctx).await;
        let done: Vec<i64> = offsets
            .into_iter()
            .filter(|offset| !failed.iter().any(|msg| msg.queue_offset == *offset))
            .collect();
        let commit = pq.remove(&done, Instant::now());
        self.env.commit(&mq, &pq, commit);
        if !failed.is_empty() {
            let retry = Batch {
                mq,
                origin: Origin::Pulled(pq),
                msgs: failed,
                slotted: false,
            };
            self.retries.push(Instant::now() + LOCAL_RETRY_DELAY, retry);
        }
    }

    /// Consumes popped messages and settles them, unless their invisible
    /// time ends first (Java's `isPopTimeout`): the broker hands them out
    /// again then, so they are not consumed, and once consumed the failed
    /// ones are left to come back (a new invisible time would add a second
    /// checkpoint, revived once more); the acknowledgements still go, as
    /// one that reaches the broker before it revives spares a redelivery.
    async fn consume_popped(
        &self,
        mq: &Arc<MessageQueue>,
        queue: &PopQueue,
        msgs: &[Arc<MessageExt>],
        handles: &[ReceiptHandle],
        invisible_until: Instant,
    ) {
        if Instant::now() >= invisible_until {
            tracing::info!(%mq, messages = msgs.len(),
                "popped messages not consumed: their invisible time is over, the broker hands them out again");
            queue.settled(msgs.len());
            return;
        }
        let listened = self.call_listener(mq, msgs).await;
        let settling: Vec<Settling<'_>> = msgs
            .iter()
            .zip(handles)
            .map(|(message, handle)| Settling { message, handle })
            .collect();
        let settling = if Instant::now() >= invisible_until {
            tracing::info!(%mq, failed = msgs.len().saturating_sub(listened.acked),
                "popped messages consumed past their invisible time: the failed ones come back as they are");
            &settling[..listened.acked.min(settling.len())]
        } else {
            &settling[..]
        };
        settle(
            &self.pop_acks,
            &mq.topic,
            settling,
            listened.acked,
            listened.ctx.delay_level_when_next_consume,
            self.env.options.concurrent_max_reconsume_times(),
        )
        .await;
        queue.settled(msgs.len());
    }

    /// Calls the listener with its own copies of `msgs`, around the consume
    /// hooks, and counts the outcome; a panic counts as retry-later.
    async fn call_listener(&self, mq: &Arc<MessageQueue>, msgs: &[Arc<MessageExt>]) -> Listened {
        let wall_now = SystemTime::now();
        let view = |msg: &Arc<MessageExt>| self.view.message(msg, wall_now);
        let count = msgs.len();
        let views: Vec<MessageExt> = msgs.iter().map(view).collect();
        let mut ctx = ConcurrentContext::new(self.view.queue(mq));
        let spans = self.env.hooks.before(&ConsumeHookContext {
            group: &self.env.options.group,
            mq: &ctx.mq,
            msgs: &views,
        });
        let started = Instant::now();
        let (result, outcome) = match AssertUnwindSafe(self.listener.consume(views, &mut ctx))
            .catch_unwind()
            .await
        {
            Ok(ConcurrentResult::Success) => (ConcurrentResult::Success, ConsumeOutcome::Success),
            Ok(ConcurrentResult::RetryLater) => {
                (ConcurrentResult::RetryLater, ConsumeOutcome::Failed)
            }
            Err(_) => {
                tracing::error!(%mq, "the listener panicked; retrying the batch later");
                (ConcurrentResult::RetryLater, ConsumeOutcome::Panicked)
            }
        };
        let elapsed = started.elapsed();
        spans.after(outcome, elapsed);
        let acked = acked_count(result, ctx.ack_index, count);
        self.env
            .stats
            .record(&mq.topic, elapsed, acked, count - acked);
        Listened {
            acked,
            ctx,
            wall_now,
        }
    }

    /// Sends back (clustering) or logs (broadcasting) the messages the
    /// listener did not acknowledge; returns those that could not be sent
    /// back, with their reconsume count raised, for a local retry.
    async fn return_failed(
        &self,
        mq: &MessageQueue,
        pq: &ProcessQueue,
        failed: &[MessageExt],
        ctx: &ConcurrentContext,
    ) -> Vec<Arc<MessageExt>> {
        let options = &self.env.options;
        if options.message_model == MessageModel::Broadcasting {
            for msg in failed {
                tracing::warn!(%mq, offset = msg.queue_offset, msg_id = %msg.msg_id(),
                    "broadcasting: consumption failed; dropping the message");
            }
            return Vec::new();
        }
        let max = options.concurrent_max_reconsume_times();
        let mut kept = Vec::new();
        for msg in failed {
            // Expired and cleaned meanwhile: already sent back.
            if !pq.contains(msg.queue_offset) {
                continue;
            }
            let sent = self
                .send_back
                .send_back(msg, mq, ctx.delay_level_when_next_consume, max)
                .await;
            if let Err(err) = sent {
                tracing::warn!(%mq, offset = msg.queue_offset, error = %err,
                    "could not return the message to the broker; retrying it locally");
                let mut retry = msg.clone();
                retry.reconsume_times += 1;
                kept.push(Arc::new(retry));
            }
        }
        kept
    }
}

/// How many messages of a batch of `len` the listener acknowledged (Java's
/// `processConsumeResult`): success acknowledges up to and including
/// `ack_index`, retry-later none. Public for wrappers of a listener that
/// count what it acknowledged.
pub fn acked_count(result: ConcurrentResult, ack_index: i32, len: usize) -> usize {
    match result {
        ConcurrentResult::RetryLater => 0,
        ConcurrentResult::Success => {
            let last = i64::from(ack_index).clamp(-1, len as i64 - 1);
            usize::try_from(last + 1).unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_index_is_clamped_as_java_does() {
        use ConcurrentResult::{RetryLater, Success};
        assert_eq!(acked_count(Success, i32::MAX, 3), 3);
        assert_eq!(acked_count(Success, 0, 3), 1);
        assert_eq!(acked_count(Success, -1, 3), 0);
        assert_eq!(acked_count(Success, -7, 3), 0);
        assert_eq!(acked_count(RetryLater, i32::MAX, 3), 0);
        assert_eq!(acked_count(Success, 5, 0), 0);
    }
}
