//! Automatic batching (Java 5.x's `autoBatch` and its `ProduceAccumulator`):
//! sends of one topic (and queue, and WAIT value) made within
//! `batch_max_delay` of each other go to the broker as one
//! SEND_BATCH_MESSAGE, and each sender gets its own message's result.
//!
//! A message waits in an open batch until the batch is `batch_max_bytes`
//! big (encoded) or `batch_max_delay` old, whichever comes first; a timer
//! task a batch closes it then. Closed batches are sent by tasks the
//! accumulator owns, so a caller that stops waiting cancels nothing of
//! the others' sends; [`Accumulator::close`] sends what is still open and
//! waits for them.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use rocketmq_model::message::{batch_entry_len, property};
use rocketmq_model::resource::is_retry_topic;
use rocketmq_model::{Message, MessageQueue, Properties};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::result::SendResult;
use super::send::{Route, Sender};
use crate::error::{ClientError, Result};
use crate::panic_text::panic_text;

/// How a batch is sent, after the send its messages came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Mode {
    /// As a sync send: retried on another broker after a refusal.
    Sync,
    /// As an async send: retried only after a lost request.
    Async,
}

/// What messages share a batch (Java's `AggregateKey`, less the tag, which
/// only an inner-batch broker reads from the batch).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    /// The topic, in the namespace.
    topic: String,
    /// The chosen queue, for sends to one.
    queue: Option<MessageQueue>,
    wait_store_ok: bool,
    mode: Mode,
}

/// Where a message's result goes.
type Waiter = oneshot::Sender<Result<SendResult>>;

/// A batch still taking messages.
#[derive(Debug)]
struct Open {
    /// Tells this batch from a later one of the same key.
    id: u64,
    messages: Vec<Message>,
    waiters: Vec<Waiter>,
    /// The encoded size of the batch so far.
    bytes: usize,
    /// Its timer, stopped when the batch closes by size (with a long
    /// `batch_max_delay`, timers of closed batches would pile up).
    timer: AbortHandle,
}

/// What [`Accumulator::hold`] did with a message.
#[derive(Debug)]
pub(crate) enum Held {
    /// In a batch; its result comes through here.
    Waiting(oneshot::Receiver<Result<SendResult>>),
    /// Not one to batch (or no room): send it alone, as given.
    Declined(Message),
}

/// The open batches of a producer.
pub(crate) struct Accumulator {
    sender: Arc<Sender>,
    max_delay: Duration,
    /// The largest batch, encoded (never above the producer's
    /// `max_message_size`).
    max_bytes: usize,
    total_max_bytes: usize,
    /// Encoded bytes in batches open or being sent (Java's
    /// `currentlyHoldSize`).
    held: AtomicUsize,
    open: Mutex<HashMap<Key, Open>>,
    next_id: AtomicU64,
    /// The batches' timers and sends.
    tasks: TaskTracker,
    /// Stops the timers at close (which sends what is open itself).
    closing: CancellationToken,
}

impl std::fmt::Debug for Accumulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accumulator")
            .field("max_delay", &self.max_delay)
            .field("max_bytes", &self.max_bytes)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl Accumulator {
    /// The accumulator of `sender`'s producer, when it batches.
    pub(crate) fn for_sender(sender: &Arc<Sender>) -> Option<Arc<Accumulator>> {
        let options = &sender.options;
        options.auto_batch.then(|| {
            Arc::new(Accumulator {
                sender: Arc::clone(sender),
                max_delay: options.batch_max_delay,
                max_bytes: options.batch_max_bytes.min(options.max_message_size),
                total_max_bytes: options.total_batch_max_bytes,
                held: AtomicUsize::new(0),
                open: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                tasks: TaskTracker::new(),
                closing: CancellationToken::new(),
            })
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<Key, Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts `msg` (to `queue`, if chosen, in the namespace) in a batch, or
    /// declines it: a delayed, transactional or reply message, one to a
    /// retry topic, one with a sharding key and no chosen queue (its key
    /// picks its queue), one too big for a batch of its own, one whose
    /// properties a batch entry cannot carry (its 16-bit length: encoding
    /// would fail the whole batch), and any while `total_batch_max_bytes`
    /// are held. A message it takes is checked and
    /// given its UNIQ_KEY here; a check that fails is the send's error.
    pub(crate) fn hold(
        self: &Arc<Self>,
        mut msg: Message,
        queue: Option<MessageQueue>,
        mode: Mode,
    ) -> Result<Held> {
        if !batchable(&msg, queue.is_some()) {
            return Ok(Held::Declined(msg));
        }
        self.sender.ready(&mut msg)?;
        let size = batch_entry_len(&msg);
        let carried = msg.properties.encoded_len() <= Properties::MAX_ENCODED_LEN;
        if size > self.max_bytes || !carried || !self.reserve(size) {
            return Ok(Held::Declined(msg));
        }
        let key = Key {
            topic: msg.topic.clone(),
            queue,
            wait_store_ok: msg.wait_store_ok(),
            mode,
        };
        let (waiter, result) = oneshot::channel();
        let mut open = self.open();
        // A message that would make the batch too big closes it and starts
        // the next one.
        if open
            .get(&key)
            .is_some_and(|batch| batch.bytes + size > self.max_bytes)
        {
            if let Some(full) = open.remove(&key) {
                self.send_later(key.clone(), full);
            }
        }
        let batch = open.entry(key.clone()).or_insert_with(|| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            Open {
                id,
                messages: Vec::new(),
                waiters: Vec::new(),
                bytes: 0,
                timer: self.close_after_delay(key.clone(), id),
            }
        });
        batch.messages.push(msg);
        batch.waiters.push(waiter);
        batch.bytes += size;
        if batch.bytes >= self.max_bytes {
            if let Some(full) = open.remove(&key) {
                self.send_later(key, full);
            }
        }
        Ok(Held::Waiting(result))
    }

    /// Counts `size` more bytes held, unless that passes the total.
    fn reserve(&self, size: usize) -> bool {
        let total = self.total_max_bytes;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < total).then(|| held.saturating_add(size))
            })
            .is_ok()
    }

    /// Closes batch `id` of `key` once it is `max_delay` old, unless it was
    /// closed by size before (or the accumulator closes first).
    fn close_after_delay(self: &Arc<Self>, key: Key, id: u64) -> AbortHandle {
        let this = Arc::clone(self);
        let timer = self.tasks.spawn(async move {
            tokio::select! {
                () = this.closing.cancelled() => return,
                () = tokio::time::sleep(this.max_delay) => {}
            }
            let due = {
                let mut open = this.open();
                match open.get(&key) {
                    Some(batch) if batch.id == id => open.remove(&key),
                    _ => None,
                }
            };
            if let Some(batch) = due {
                this.send(key, batch).await;
            }
        });
        timer.abort_handle()
    }

    /// Sends a batch closed by size (or by the accumulator's close) on a
    /// task of its own, its timer stopped.
    fn send_later(self: &Arc<Self>, key: Key, batch: Open) {
        batch.timer.abort();
        let this = Arc::clone(self);
        self.tasks.spawn(async move { this.send(key, batch).await });
    }

    /// Sends a closed batch and hands each message its result. A batch of
    /// one goes as a plain send (and may be compressed).
    async fn send(&self, key: Key, batch: Open) {
        let Open {
            mut messages,
            waiters,
            bytes,
            ..
        } = batch;
        // Given back however the send ends: a send hook that panics, say,
        // must not keep the bytes held for good (past
        // `total_batch_max_bytes` of them nothing would batch again).
        let _held = Release {
            held: &self.held,
            bytes,
        };
        let count = messages.len();
        let sending = async {
            let sender = &self.sender;
            let route = match (&key.queue, key.mode) {
                (Some(mq), _) => Route::Queue(mq),
                (None, Mode::Sync) => sender.sync_route(),
                (None, Mode::Async) => sender.async_route(),
            };
            let prepared = match count {
                1 => sender.prepare(messages.swap_remove(0)),
                _ => sender.prepare_batch(messages),
            };
            match prepared {
                Ok(out) => sender.send(&out, route).await,
                Err(error) => Err(error),
            }
        };
        // A panic (in a send hook, say) still answers every message.
        let result = (AssertUnwindSafe(sending).catch_unwind().await).unwrap_or_else(|panic| {
            Err(ClientError::Panicked {
                what: "a send",
                message: panic_text(&*panic),
            })
        });
        match result {
            // A message sent alone gets its answer as it is.
            result if count == 1 => {
                if let Some(waiter) = waiters.into_iter().next() {
                    let _ = waiter.send(result);
                }
            }
            Ok(result) => {
                for (waiter, own) in waiters.into_iter().zip(split(&result, count)) {
                    let _ = waiter.send(Ok(own));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for waiter in waiters {
                    let _ = waiter.send(Err(ClientError::BatchFailed(Arc::clone(&error))));
                }
            }
        }
    }

    /// Sends every open batch now, without waiting for their delays (the
    /// producer's drop, when it was not shut down).
    pub(crate) fn send_all_now(self: &Arc<Self>) {
        self.closing.cancel();
        let open: Vec<(Key, Open)> = self.open().drain().collect();
        for (key, batch) in open {
            self.send_later(key, batch);
        }
    }

    /// Sends every open batch now and waits until all batches are sent
    /// (the producer's shutdown).
    pub(crate) async fn close(self: &Arc<Self>) {
        self.send_all_now();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Gives a batch's bytes back to [`Accumulator::held`] when dropped.
struct Release<'a> {
    held: &'a AtomicUsize,
    bytes: usize,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Whether `msg` may go in a batch (Java's `canBatch`, and what a batch
/// cannot carry here).
fn batchable(msg: &Message, to_queue: bool) -> bool {
    let delayed = msg.delay_level().is_some()
        || (property::TIMER_REQUESTS.iter()).any(|name| msg.properties.contains(name));
    let transactional = msg.properties.contains(property::PGROUP);
    let reply = msg.property(property::MSG_TYPE) == Some(property::MSG_TYPE_REPLY);
    let keyed = !to_queue && msg.sharding_key().is_some();
    !(delayed || transactional || reply || keyed || is_retry_topic(&msg.topic))
}

/// Each message's result out of its batch's: its own ids, and its offset
/// counted from the first (Java's `splitSendResults`). When the broker
/// answered one id for the batch (an inner batch), each gets the whole.
fn split(result: &SendResult, count: usize) -> Vec<SendResult> {
    let ids: Vec<&str> = result.msg_id.split(',').collect();
    let offset_ids: Vec<&str> = result.offset_msg_id.split(',').collect();
    if ids.len() != count || offset_ids.len() != count {
        return vec![result.clone(); count];
    }
    (ids.into_iter().zip(offset_ids).zip(0i64..))
        .map(|((id, offset_id), index)| SendResult {
            msg_id: id.to_owned(),
            offset_msg_id: offset_id.to_owned(),
            queue_offset: result.queue_offset + index,
            ..result.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rocketmq_model::header::DEFAULT_REGION;
    use rocketmq_model::{Namespace, RequestCode};
    use rocketmq_testkit::TestCluster;

    use super::*;
    use crate::config::ClientConfig;
    use crate::instance::ClientInstance;
    use crate::producer::{ProducerOptions, SendStatus};

    /// Batches closed by size stop their timers: with a long delay and
    /// many batches, the timers would otherwise pile up, one a batch, each
    /// for the whole delay.
    #[tokio::test(start_paused = true)]
    async fn a_batch_closed_by_size_stops_its_timer() {
        let cluster = TestCluster::builder().topic("T").build().await.unwrap();
        // The batches' sends stay in flight while the tasks are counted.
        cluster.delay_requests(RequestCode::SEND_BATCH_MESSAGE, Duration::from_secs(3600));
        let mut config = ClientConfig::new(cluster.namesrv_addrs());
        config.instance_name = "size_closed_timers".into();
        config.client_ip = Some("10.0.0.2".parse().unwrap());
        config.transport = Some(cluster.transport());
        let lease = ClientInstance::acquire(config).unwrap();
        let mut sample = Message::new("T", "m");
        let options = ProducerOptions {
            auto_batch: true,
            batch_max_delay: Duration::from_secs(30),
            ..ProducerOptions::default()
        };
        let sender = Sender::new(
            options,
            lease.instance(),
            Vec::new(),
            false,
            Namespace::none(),
        );
        sender.ready(&mut sample).unwrap();
        let mut sender = sender;
        // Two messages fill a batch.
        sender.options.batch_max_bytes = 2 * batch_entry_len(&sample);
        let accumulator = Accumulator::for_sender(&Arc::new(sender)).unwrap();
        let batches = 5;
        let mut results = Vec::new();
        for _ in 0..2 * batches {
            match accumulator
                .hold(Message::new("T", "m"), None, Mode::Sync)
                .unwrap()
            {
                Held::Waiting(result) => results.push(result),
                Held::Declined(_) => panic!("declined"),
            }
        }
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            accumulator.tasks.len(),
            batches,
            "one send a batch, no timer"
        );
        drop(results);
        lease.release().await;
    }

    fn batch_result(ids: &str, offset_ids: &str) -> SendResult {
        SendResult {
            status: SendStatus::SendOk,
            msg_id: ids.into(),
            offset_msg_id: offset_ids.into(),
            message_queue: MessageQueue::new("T", "b", 1),
            queue_offset: 7,
            transaction_id: None,
            recall_handle: None,
            region_id: DEFAULT_REGION.into(),
            trace_on: true,
        }
    }

    #[test]
    fn a_batch_result_splits_into_each_messages_own() {
        let parts = split(&batch_result("A,B,C", "a,b,c"), 3);
        let own: Vec<_> = (parts.iter())
            .map(|r| (r.msg_id.as_str(), r.offset_msg_id.as_str(), r.queue_offset))
            .collect();
        assert_eq!(own, [("A", "a", 7), ("B", "b", 8), ("C", "c", 9)]);
        assert!(parts.iter().all(|r| r.message_queue.queue_id == 1));
        // One id for the lot (an inner batch): each gets the whole result.
        let whole = batch_result("X", "x");
        assert_eq!(split(&whole, 2), [whole.clone(), whole]);
    }

    #[test]
    fn delayed_transactional_reply_and_retry_messages_are_not_batched() {
        let plain = Message::new("T", "x");
        assert!(batchable(&plain, false));
        let built = |f: fn(rocketmq_model::MessageBuilder) -> rocketmq_model::MessageBuilder| {
            f(Message::builder("T").body("x")).build().unwrap()
        };
        assert!(!batchable(&built(|b| b.delay_level(1)), false));
        assert!(!batchable(&built(|b| b.delay_time_sec(5)), false));
        let mut keyed = plain.clone();
        keyed
            .properties
            .insert(property::SHARDING_KEY, "k")
            .unwrap();
        assert!(!batchable(&keyed, false), "its key picks its queue");
        assert!(batchable(&keyed, true), "its queue is chosen");
        for (name, value) in [
            (property::PGROUP, "pg"),
            (property::MSG_TYPE, property::MSG_TYPE_REPLY),
        ] {
            let mut msg = plain.clone();
            msg.properties.insert(name, value).unwrap();
            assert!(!batchable(&msg, false), "{name}");
        }
        assert!(!batchable(&Message::new("%RETRY%g", "x"), false));
    }
}
