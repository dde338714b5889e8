//! Consumers: [`PushConsumer`] (messages are pulled for you and handed to a
//! listener), [`PullConsumer`] (you poll, or read a stream) and
//! [`SimpleConsumer`] (you receive and acknowledge; the broker shares the
//! messages out), with their builders, [`MessageSelector`] and the listener traits.
//!
//! The first two are built on the kernel's rebalance, pull, consume and
//! offset machinery; all three register with the shared
//! [`ClientInstance`](crate::ClientInstance) of their client id, which
//! sends their heartbeats, persists their offsets every 5 s and routes the
//! brokers' requests about their group to them.

pub mod listener;
mod metered;
mod pull;
mod push;
mod report;
mod selector;
mod shared;
mod simple;

pub(crate) use shared::user_queue_map;
mod stats;
mod subscriptions;

pub use listener::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, IntoConcurrentReply, IntoOrderlyReply,
    OrderlyContext, OrderlyListener, OrderlyResult,
};
pub use pull::{
    DEFAULT_POLL_TIMEOUT, DEFAULT_PULL_THRESHOLD_FOR_ALL, PullConsumer, PullConsumerBuilder,
    QUEUE_CHECK_INTERVAL,
};
pub use push::{DEFAULT_DRAIN_TIMEOUT, PushConsumer, PushConsumerBuilder};
pub use report::ShutdownReport;
pub use rocketmq_kernel::allocate::AllocateStrategy;
pub use rocketmq_kernel::consume::{ConsumeHook, ConsumeHookContext, ConsumeOutcome, ConsumeSpan};
pub use rocketmq_kernel::offset::OffsetStore;
pub use rocketmq_model::body::{ConsumeFromWhere, MessageModel, MessageRequestMode};
pub use selector::MessageSelector;
pub use simple::{
    DEFAULT_AWAIT_DURATION, DEFAULT_MAX_DELIVERY_ATTEMPTS, MAX_AWAIT_DURATION,
    MAX_INVISIBLE_DURATION, MAX_RECEIVE_MESSAGES, ReceivedMessage, SimpleConsumer,
    SimpleConsumerBuilder,
};
