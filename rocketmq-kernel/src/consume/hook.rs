//! [`ConsumeHook`]: code that sees every listener call of a push consumer
//! (message traces, auditing, metrics of one's own), as Java's
//! `ConsumeMessageHook`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::{MessageExt, MessageQueue};

/// One listener call, as a hook sees it before the call.
///
/// More fields may come; build one with [`new`](Self::new) (in a hook's own
/// tests, say).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ConsumeHookContext<'a> {
    /// The consumer group, as the brokers know it.
    pub group: &'a str,
    /// The queue the messages came from, as the listener sees it.
    pub mq: &'a MessageQueue,
    /// The messages, as the listener gets them.
    pub msgs: &'a [MessageExt],
}

impl<'a> ConsumeHookContext<'a> {
    /// The call of a listener of `group` with `msgs` of `mq`.
    pub fn new(group: &'a str, mq: &'a MessageQueue, msgs: &'a [MessageExt]) -> Self {
        Self { group, mq, msgs }
    }
}

/// How a listener call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeOutcome {
    /// The listener acknowledged the batch.
    Success,
    /// The listener asked for the batch again (retry later, suspend).
    Failed,
    /// The listener panicked.
    Panicked,
}

/// What a hook keeps of one listener call, told how the call ended.
pub trait ConsumeSpan: Send {
    /// The call ended with `outcome` after `elapsed`.
    fn after_consume(self: Box<Self>, outcome: ConsumeOutcome, elapsed: Duration);
}

/// Called before every listener call; what it returns is told how the call
/// ended. It runs on the consuming task, so it should be quick.
pub trait ConsumeHook: Send + Sync + 'static {
    /// Before the listener gets a batch; `None` when the hook does not want
    /// to hear how the call ends.
    fn before_consume(&self, ctx: &ConsumeHookContext<'_>) -> Option<Box<dyn ConsumeSpan>>;
}

/// The hooks of a consumer, cheap to clone.
#[derive(Clone, Default)]
pub struct ConsumeHooks(Arc<[Arc<dyn ConsumeHook>]>);

impl std::fmt::Debug for ConsumeHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConsumeHooks({})", self.0.len())
    }
}

/// The spans of one listener call.
pub struct ConsumeSpans(Vec<Box<dyn ConsumeSpan>>);

impl ConsumeHooks {
    /// These hooks, called in this order.
    pub fn new(hooks: Vec<Arc<dyn ConsumeHook>>) -> Self {
        ConsumeHooks(hooks.into())
    }

    /// Whether there is no hook.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls every hook before a listener call (or, for a lite pull
    /// consumer, a poll's hand-over). A hook that panics is logged and left
    /// out of this call.
    pub fn before(&self, ctx: &ConsumeHookContext<'_>) -> ConsumeSpans {
        let mut spans = Vec::new();
        for hook in self.0.iter() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| hook.before_consume(ctx))) {
                Ok(Some(span)) => spans.push(span),
                Ok(None) => {}
                Err(_) => tracing::error!(mq = %ctx.mq, "a consume hook panicked"),
            }
        }
        ConsumeSpans(spans)
    }
}

impl ConsumeSpans {
    /// Tells every span how the call ended.
    pub fn after(self, outcome: ConsumeOutcome, elapsed: Duration) {
        for span in self.0 {
            let told = std::panic::catch_unwind(AssertUnwindSafe(|| {
                span.after_consume(outcome, elapsed);
            }));
            if told.is_err() {
                tracing::error!("a consume hook panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use rocketmq_model::Message;

    use super::*;

    #[derive(Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    struct Told(Arc<Mutex<Vec<String>>>);

    impl ConsumeSpan for Told {
        fn after_consume(self: Box<Self>, outcome: ConsumeOutcome, _elapsed: Duration) {
            self.0.lock().unwrap().push(format!("{outcome:?}"));
        }
    }

    impl ConsumeHook for Recorder {
        fn before_consume(&self, ctx: &ConsumeHookContext<'_>) -> Option<Box<dyn ConsumeSpan>> {
            self.0
                .lock()
                .unwrap()
                .push(format!("{} x{}", ctx.mq, ctx.msgs.len()));
            Some(Box::new(Told(Arc::clone(&self.0))))
        }
    }

    struct Panics;

    impl ConsumeHook for Panics {
        fn before_consume(&self, _ctx: &ConsumeHookContext<'_>) -> Option<Box<dyn ConsumeSpan>> {
            panic!("a faulty hook")
        }
    }

    #[test]
    fn hooks_hear_before_and_after_and_a_panicking_one_is_left_out() {
        let recorder = Recorder::default();
        let seen = Arc::clone(&recorder.0);
        let hooks = ConsumeHooks::new(vec![Arc::new(Panics), Arc::new(recorder)]);
        let mq = MessageQueue::new("T", "b", 0);
        let msgs = [MessageExt::from(Message::new("T", "x"))];
        let ctx = ConsumeHookContext {
            group: "g",
            mq: &mq,
            msgs: &msgs,
        };
        hooks
            .before(&ctx)
            .after(ConsumeOutcome::Failed, Duration::ZERO);
        assert_eq!(*seen.lock().unwrap(), ["T@b#0 x1", "Failed"]);
    }
}
