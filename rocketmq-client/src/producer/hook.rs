//! [`SendHook`]: code that sees every send attempt (tracing, auditing,
//! metrics of one's own).

use std::time::SystemTime;

use rocketmq_model::{Message, MessageQueue};

use super::SendResult;
use crate::error::ClientError;

/// One send attempt, as a hook sees it.
///
/// More fields may come; build one with [`new`](Self::new) and set the
/// fields that matter (in a hook's own tests, say).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SendContext<'a> {
    /// The producer group.
    pub producer_group: &'a str,
    /// The broker the attempt goes to.
    pub broker_addr: &'a str,
    /// The chosen queue.
    pub message_queue: &'a MessageQueue,
    /// The message as the application gave it (the first one of a batch),
    /// with its UNIQ_KEY.
    pub message: &'a Message,
    /// Whether the send is a batch (of which `message` is the first).
    pub batch: bool,
    /// The length of the body as sent: compressed, or the encoded batch.
    pub wire_body_len: usize,
    /// 0 for the first attempt, then 1, 2, ... for retries.
    pub attempt: u32,
    /// When the attempt began (wall clock, as message traces record it).
    pub started: SystemTime,
}

impl<'a> SendContext<'a> {
    /// The first attempt, starting now, to send `message` alone (not a
    /// batch, its body as it is) to `message_queue` of `broker_addr`.
    pub fn new(
        producer_group: &'a str,
        broker_addr: &'a str,
        message_queue: &'a MessageQueue,
        message: &'a Message,
    ) -> Self {
        Self {
            producer_group,
            broker_addr,
            message_queue,
            message,
            batch: false,
            wire_body_len: message.body.len(),
            attempt: 0,
            started: SystemTime::now(),
        }
    }
}

/// Called before and after every send attempt, oneway sends included (as
/// Java's send hooks). Every method does nothing by default; they run on the
/// sending task, so they should be quick.
///
/// A sync, async, batch, transactional or request send ends in
/// [`after_send`](Self::after_send); a oneway send, which gets no answer,
/// ends in [`after_oneway`](Self::after_oneway). Both follow a
/// [`before_send`](Self::before_send).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use rocketmq_client::producer::{SendContext, SendHook, SendResult};
/// use rocketmq_client::ClientError;
///
/// #[derive(Default)]
/// struct CountFailures(AtomicUsize);
///
/// impl SendHook for CountFailures {
///     fn after_send(&self, _ctx: &SendContext<'_>, result: Result<&SendResult, &ClientError>) {
///         if result.is_err() {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// // A hook's own test builds the context it is shown.
/// use rocketmq_model::{Message, MessageQueue};
///
/// let hook = CountFailures::default();
/// let mq = MessageQueue::new("T", "broker-a", 0);
/// let msg = Message::new("T", "hello");
/// let ctx = SendContext::new("group", "127.0.0.1:10911", &mq, &msg);
/// hook.after_send(&ctx, Err(&ClientError::Shutdown("the producer")));
/// assert_eq!(hook.0.load(Ordering::Relaxed), 1);
/// ```
pub trait SendHook: Send + Sync + 'static {
    /// Before the request is sent.
    fn before_send(&self, ctx: &SendContext<'_>) {
        let _ = ctx;
    }

    /// After the broker answered (or the attempt failed).
    fn after_send(&self, ctx: &SendContext<'_>, result: Result<&SendResult, &ClientError>) {
        let _ = (ctx, result);
    }

    /// After a oneway send was written (`Ok`) or could not be (`Err`); no
    /// answer is awaited, so `Ok` does not mean the broker stored it.
    fn after_oneway(&self, ctx: &SendContext<'_>, result: Result<(), &ClientError>) {
        let _ = (ctx, result);
    }
}

/// A shared hook, so the application keeps a handle on it (e.g. to read
/// what it counted).
impl<H: SendHook> SendHook for std::sync::Arc<H> {
    fn before_send(&self, ctx: &SendContext<'_>) {
        (**self).before_send(ctx);
    }

    fn after_send(&self, ctx: &SendContext<'_>, result: Result<&SendResult, &ClientError>) {
        (**self).after_send(ctx, result);
    }

    fn after_oneway(&self, ctx: &SendContext<'_>, result: Result<(), &ClientError>) {
        (**self).after_oneway(ctx, result);
    }
}
