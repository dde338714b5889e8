//! Listeners: the kernel's [`ConcurrentListener`] and [`OrderlyListener`]
//! traits, and adapters that turn async closures into them.
//!
//! A closure gets the batch and its context by value and returns a result;
//! to change the context (partial acknowledgement, retry delay, auto
//! commit), it returns the result together with the changed context. An
//! `Err` counts as a failure (retry later, or suspend the queue), as a Java
//! listener that throws.
//!
//! ```
//! use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult};
//! use rocketmq_model::MessageExt;
//!
//! // Acknowledge everything.
//! let simple = |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| async move {
//!     println!("{} messages", msgs.len());
//!     ConcurrentResult::Success
//! };
//! // Acknowledge the first message only; the rest is retried.
//! let partial = |_msgs: Vec<MessageExt>, mut ctx: ConcurrentContext| async move {
//!     ctx.ack_index = 0;
//!     (ConcurrentResult::Success, ctx)
//! };
//! // Fail with an error: retried later.
//! let fallible = |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| async move {
//!     let text = std::str::from_utf8(msgs[0].body())?;
//!     println!("{text}");
//!     Ok::<_, std::str::Utf8Error>(ConcurrentResult::Success)
//! };
//! # let _ = (simple, partial, fallible);
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use rocketmq_model::MessageExt;

pub use rocketmq_kernel::consume::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, OrderlyContext, OrderlyListener,
    OrderlyResult,
};

/// What a concurrent listener closure may return: a
/// [`ConcurrentResult`], the result with a changed context, or a `Result`
/// of either (an error retries the batch later).
pub trait IntoConcurrentReply {
    /// The result, applying any context change to `ctx`.
    fn into_reply(self, ctx: &mut ConcurrentContext) -> ConcurrentResult;
}

impl IntoConcurrentReply for ConcurrentResult {
    fn into_reply(self, _ctx: &mut ConcurrentContext) -> ConcurrentResult {
        self
    }
}

impl IntoConcurrentReply for (ConcurrentResult, ConcurrentContext) {
    fn into_reply(self, ctx: &mut ConcurrentContext) -> ConcurrentResult {
        *ctx = self.1;
        self.0
    }
}

impl<T: IntoConcurrentReply, E: fmt::Display> IntoConcurrentReply for Result<T, E> {
    fn into_reply(self, ctx: &mut ConcurrentContext) -> ConcurrentResult {
        match self {
            Ok(reply) => reply.into_reply(ctx),
            Err(err) => {
                tracing::warn!(mq = %ctx.mq, error = %err, "the listener failed; retrying later");
                ConcurrentResult::RetryLater
            }
        }
    }
}

/// What an orderly listener closure may return: an [`OrderlyResult`], the
/// result with a changed context, or a `Result` of either (an error
/// suspends the queue).
pub trait IntoOrderlyReply {
    /// The result, applying any context change to `ctx`.
    fn into_reply(self, ctx: &mut OrderlyContext) -> OrderlyResult;
}

impl IntoOrderlyReply for OrderlyResult {
    fn into_reply(self, _ctx: &mut OrderlyContext) -> OrderlyResult {
        self
    }
}

impl IntoOrderlyReply for (OrderlyResult, OrderlyContext) {
    fn into_reply(self, ctx: &mut OrderlyContext) -> OrderlyResult {
        *ctx = self.1;
        self.0
    }
}

impl<T: IntoOrderlyReply, E: fmt::Display> IntoOrderlyReply for Result<T, E> {
    fn into_reply(self, ctx: &mut OrderlyContext) -> OrderlyResult {
        match self {
            Ok(reply) => reply.into_reply(ctx),
            Err(err) => {
                tracing::warn!(mq = %ctx.mq, error = %err, "the listener failed; suspending the queue");
                OrderlyResult::SuspendCurrentQueue
            }
        }
    }
}

/// A [`ConcurrentListener`] made of an async closure; see the [module
/// docs](self).
pub struct ConcurrentFn<F>(pub F);

impl<F> fmt::Debug for ConcurrentFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConcurrentFn")
    }
}

#[async_trait]
impl<F, Fut, R> ConcurrentListener for ConcurrentFn<F>
where
    F: Fn(Vec<MessageExt>, ConcurrentContext) -> Fut + Send + Sync,
    Fut: Future<Output = R> + Send,
    R: IntoConcurrentReply,
{
    async fn consume(
        &self,
        msgs: Vec<MessageExt>,
        ctx: &mut ConcurrentContext,
    ) -> ConcurrentResult {
        (self.0)(msgs, ctx.clone()).await.into_reply(ctx)
    }
}

/// An [`OrderlyListener`] made of an async closure; see the [module
/// docs](self).
pub struct OrderlyFn<F>(pub F);

impl<F> fmt::Debug for OrderlyFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OrderlyFn")
    }
}

#[async_trait]
impl<F, Fut, R> OrderlyListener for OrderlyFn<F>
where
    F: Fn(Vec<MessageExt>, OrderlyContext) -> Fut + Send + Sync,
    Fut: Future<Output = R> + Send,
    R: IntoOrderlyReply,
{
    async fn consume(&self, msgs: Vec<MessageExt>, ctx: &mut OrderlyContext) -> OrderlyResult {
        (self.0)(msgs, ctx.clone()).await.into_reply(ctx)
    }
}

/// The listener of a push consumer: concurrent or orderly.
#[derive(Clone)]
pub(crate) enum Listener {
    Concurrent(Arc<dyn ConcurrentListener>),
    Orderly(Arc<dyn OrderlyListener>),
}

impl Listener {
    pub(crate) fn is_orderly(&self) -> bool {
        matches!(self, Listener::Orderly(_))
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_orderly() {
            "Listener::Orderly"
        } else {
            "Listener::Concurrent"
        })
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::{Message, MessageQueue};

    use super::*;

    fn batch() -> Vec<MessageExt> {
        vec![MessageExt::from(Message::new("T", "a")); 3]
    }

    #[tokio::test]
    async fn closures_adapt_results_and_contexts() {
        let mq = MessageQueue::new("T", "b", 0);
        let partial = ConcurrentFn(
            |_msgs: Vec<MessageExt>, mut ctx: ConcurrentContext| async move {
                ctx.ack_index = 1;
                ctx.delay_level_when_next_consume = 5;
                (ConcurrentResult::Success, ctx)
            },
        );
        let mut ctx = ConcurrentContext::new(mq.clone());
        assert_eq!(
            partial.consume(batch(), &mut ctx).await,
            ConcurrentResult::Success
        );
        assert_eq!((ctx.ack_index, ctx.delay_level_when_next_consume), (1, 5));

        let failing =
            ConcurrentFn(|_msgs, _ctx| async move { Err::<ConcurrentResult, _>("broken") });
        let mut ctx = ConcurrentContext::new(mq.clone());
        assert_eq!(
            failing.consume(batch(), &mut ctx).await,
            ConcurrentResult::RetryLater
        );

        let orderly = OrderlyFn(
            |msgs: Vec<MessageExt>, mut ctx: OrderlyContext| async move {
                ctx.auto_commit = msgs.len() < 3;
                Ok::<_, String>((OrderlyResult::Success, ctx))
            },
        );
        let mut ctx = OrderlyContext::new(mq.clone());
        assert_eq!(
            orderly.consume(batch(), &mut ctx).await,
            OrderlyResult::Success
        );
        assert!(!ctx.auto_commit);
        let failing = OrderlyFn(|_msgs, _ctx| async move { Err::<OrderlyResult, _>("no") });
        let mut ctx = OrderlyContext::new(mq);
        assert_eq!(
            failing.consume(batch(), &mut ctx).await,
            OrderlyResult::SuspendCurrentQueue
        );
    }
}
