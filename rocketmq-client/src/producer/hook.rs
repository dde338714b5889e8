//! [`SendHook`]: code that sees every send attempt (tracing, auditing,
//! metrics of one's own).

use std::time::SystemTime;

use rocketmq_model::{Message, MessageQueue};

use super::SendResult;
use crate::error::ClientError;

/// One send attempt, as a hook sees it.
#[derive(Debug, Clone, Copy)]
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
