//! The listener traits a push consumer's user implements: concurrent
//! ([`ConcurrentListener`]) and orderly ([`OrderlyListener`]) consumption,
//! each with the context it may adjust and the result it returns.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_model::{MessageExt, MessageQueue};

/// What a [`ConcurrentListener`] made of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConcurrentResult {
    /// Consumed: the messages up to and including
    /// [`ConcurrentContext::ack_index`] (all of them by default) are done,
    /// the rest are retried later.
    Success,
    /// Not consumed: every message of the batch is retried later.
    RetryLater,
}

/// What a concurrent listener knows about a batch and may adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentContext {
    /// The queue the messages came from (shared: a context is cloned for
    /// each listener call).
    pub mq: Arc<MessageQueue>,
    /// The delay level of the retry of failed messages: 0 lets the broker
    /// choose (3 + the message's reconsume count), −1 sends them straight to
    /// the dead-letter queue, 1..=18 is that level.
    pub delay_level_when_next_consume: i32,
    /// For [`ConcurrentResult::Success`]: the index of the last message that
    /// succeeded; the messages after it are retried. Values past the end
    /// (the default, `i32::MAX`) mean all; −1 means none.
    pub ack_index: i32,
}

impl ConcurrentContext {
    /// The default context for a batch of `mq`: broker-chosen delay, all
    /// acknowledged on success.
    pub fn new(mq: impl Into<Arc<MessageQueue>>) -> Self {
        ConcurrentContext {
            mq: mq.into(),
            delay_level_when_next_consume: 0,
            ack_index: i32::MAX,
        }
    }
}

/// Consumes messages in any order and in parallel (Java's
/// `MessageListenerConcurrently`).
///
/// The messages carry their original topic (a retried message's `%RETRY%`
/// topic is replaced by its RETRY_TOPIC property) and the
/// CONSUME_START_TIME property. A panicking listener counts as
/// [`ConcurrentResult::RetryLater`].
///
/// ```
/// use async_trait::async_trait;
/// use rocketmq_kernel::consume::{ConcurrentContext, ConcurrentListener, ConcurrentResult};
/// use rocketmq_model::{Message, MessageExt, MessageQueue};
///
/// /// Stores each message; a message it cannot store, and those after it,
/// /// are retried later.
/// struct Store;
///
/// #[async_trait]
/// impl ConcurrentListener for Store {
///     async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut ConcurrentContext) -> ConcurrentResult {
///         for (i, msg) in msgs.iter().enumerate() {
///             if msg.body().is_empty() {
///                 // Everything before `i` is stored; retry the rest in 10 s.
///                 ctx.ack_index = i as i32 - 1;
///                 ctx.delay_level_when_next_consume = 3;
///                 break;
///             }
///         }
///         ConcurrentResult::Success
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let msgs = [Message::new("T", "stored"), Message::new("T", "")].map(MessageExt::from);
/// let mut ctx = ConcurrentContext::new(MessageQueue::new("T", "broker-a", 0));
/// assert_eq!(Store.consume(msgs.to_vec(), &mut ctx).await, ConcurrentResult::Success);
/// assert_eq!(ctx.ack_index, 0, "only the first message is acknowledged");
/// # });
/// ```
#[async_trait]
pub trait ConcurrentListener: Send + Sync {
    /// Consumes a batch (at most `consume_message_batch_max_size` messages
    /// of one queue, in queue order). The batch is the listener's to keep:
    /// the consumer holds its own copy of what it needs to retry.
    async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut ConcurrentContext)
    -> ConcurrentResult;
}

/// What an [`OrderlyListener`] made of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderlyResult {
    /// Consumed: the batch is committed (when
    /// [`OrderlyContext::auto_commit`] is on).
    Success,
    /// Not consumed: the queue pauses
    /// ([`OrderlyContext::suspend_current_queue_time`]) and the same
    /// messages are consumed again, in order, until the maximum reconsume
    /// count, after which they go to the dead-letter queue.
    SuspendCurrentQueue,
}

/// What an orderly listener knows about a batch and may adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderlyContext {
    /// The queue the messages came from (shared: a context is cloned for
    /// each listener call).
    pub mq: Arc<MessageQueue>,
    /// Whether [`OrderlyResult::Success`] commits (default true). When
    /// false, consumed messages stay uncommitted until a later batch of the
    /// queue succeeds with `auto_commit` on, which commits them all.
    pub auto_commit: bool,
    /// How long the queue pauses after [`OrderlyResult::SuspendCurrentQueue`];
    /// `None` uses the consumer's `suspend_current_queue_time`.
    pub suspend_current_queue_time: Option<Duration>,
}

impl OrderlyContext {
    /// The default context for a batch of `mq`.
    pub fn new(mq: impl Into<Arc<MessageQueue>>) -> Self {
        OrderlyContext {
            mq: mq.into(),
            auto_commit: true,
            suspend_current_queue_time: None,
        }
    }
}

/// Consumes the messages of each queue one batch at a time, in queue order
/// (Java's `MessageListenerOrderly`).
///
/// Never called with two batches of one queue at once. The messages carry
/// their original topic and the CONSUME_START_TIME property; a retried
/// message's `reconsume_times` counts the attempts. A panicking listener
/// counts as [`OrderlyResult::SuspendCurrentQueue`].
///
/// ```
/// use std::time::Duration;
///
/// use async_trait::async_trait;
/// use rocketmq_kernel::consume::{OrderlyContext, OrderlyListener, OrderlyResult};
/// use rocketmq_model::{Message, MessageExt, MessageQueue};
///
/// /// Applies account updates in order; waits 5 s when the ledger is busy.
/// struct Ledger;
///
/// #[async_trait]
/// impl OrderlyListener for Ledger {
///     async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult {
///         if msgs.iter().any(|msg| msg.tags() == Some("busy")) {
///             ctx.suspend_current_queue_time = Some(Duration::from_secs(5));
///             return OrderlyResult::SuspendCurrentQueue;
///         }
///         OrderlyResult::Success
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let busy = MessageExt::from(Message::builder("T").tags("busy").build().unwrap());
/// let mut ctx = OrderlyContext::new(MessageQueue::new("T", "broker-a", 0));
/// assert_eq!(Ledger.consume(vec![busy], &mut ctx).await, OrderlyResult::SuspendCurrentQueue);
/// assert_eq!(ctx.suspend_current_queue_time, Some(Duration::from_secs(5)));
/// # });
/// ```
#[async_trait]
pub trait OrderlyListener: Send + Sync {
    /// Consumes a batch (at most `consume_message_batch_max_size` messages
    /// of one queue, in queue order). The batch is the listener's to keep.
    async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult;
}
