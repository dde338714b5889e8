//! Consume services: hand pulled messages to the user's listener, process
//! its results (acknowledge, send back, retry) and advance the committed
//! offset only past messages that were acknowledged or sent back.
//!
//! The pull side hands batches to a [`ConsumeService`]:
//! [`ConcurrentService`] (a bounded pool of workers, partial
//! acknowledgement, send-back with local retry) or [`OrderlyService`] (one
//! batch per queue at a time under the broker's queue lock, suspend and
//! retry in place, dead-lettering at the maximum reconsume count). The user
//! plugs in a [`ConcurrentListener`] or an [`OrderlyListener`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use async_trait::async_trait;
//! use rocketmq_kernel::api::{BrokerApi, NameServerApi};
//! use rocketmq_kernel::consume::{
//!     ConcurrentContext, ConcurrentListener, ConcurrentResult, ConcurrentService, ConsumeEnv,
//!     ConsumeStats,
//! };
//! use rocketmq_kernel::offset::{MemoryOffsetStore, OffsetStore};
//! use rocketmq_kernel::{
//!     ConsumeRequest, ConsumeService, ConsumerOptions, KernelError, ProcessQueue, Result, Routes,
//! };
//! use rocketmq_model::{Message, MessageExt, MessageQueue, TopicRouteData};
//!
//! /// Prints every message; never fails, so nothing is sent back.
//! struct Print;
//!
//! #[async_trait]
//! impl ConcurrentListener for Print {
//!     async fn consume(&self, msgs: Vec<MessageExt>, _: &mut ConcurrentContext) -> ConcurrentResult {
//!         for msg in msgs {
//!             println!("{} @ {}", msg.topic(), msg.queue_offset);
//!         }
//!         ConcurrentResult::Success
//!     }
//! }
//!
//! // Stand-ins for the network (the client crate passes the real ones).
//! struct NoBroker;
//! impl BrokerApi for NoBroker {}
//! struct NoNameServer;
//! #[async_trait]
//! impl NameServerApi for NoNameServer {
//!     async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
//!         Err(KernelError::NoRoute { topic: topic.to_owned() })
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let offsets = Arc::new(MemoryOffsetStore::new());
//! let env = ConsumeEnv {
//!     options: Arc::new(ConsumerOptions::new("cg")),
//!     client_id: "10.0.0.9@1".to_owned(),
//!     api: Arc::new(NoBroker),
//!     routes: Routes::new(Arc::new(NoNameServer)),
//!     offsets: offsets.clone(),
//!     stats: Arc::new(ConsumeStats::new()),
//!     hooks: Default::default(),
//! };
//! let service = ConcurrentService::start(env, Arc::new(Print));
//!
//! // What the pull side does with a pull result.
//! let mq = MessageQueue::new("T", "broker-a", 0);
//! let pq = Arc::new(ProcessQueue::new(tokio::time::Instant::now()));
//! let msgs: Vec<_> = (0..3)
//!     .map(|offset| Arc::new(MessageExt {
//!         queue_offset: offset,
//!         ..MessageExt::from(Message::new("T", "hello"))
//!     }))
//!     .collect();
//! let dispatch = pq.put(&msgs);
//! service.submit(ConsumeRequest { mq: mq.clone(), pq, msgs, dispatch }).await;
//!
//! // Shutting down lets the queued batches finish.
//! let report = service.shutdown(Duration::from_secs(5)).await;
//! assert_eq!(report.batches_left, 0);
//! assert_eq!(offsets.snapshot()[&mq], 3);
//! # });
//! ```

mod concurrent;
mod hook;
mod listener;
mod orderly;
mod retry;
mod send_back;
mod stats;
mod view;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::time::Instant;

use crate::api::BrokerApi;
use crate::offset::OffsetStore;
use crate::pop::{PopQueue, PoppedMessage};
use crate::route::Routes;
use crate::{ConsumerOptions, ProcessQueue};

pub use concurrent::{ConcurrentService, LOCAL_RETRY_DELAY, acked_count};
pub use hook::{
    ConsumeHook, ConsumeHookContext, ConsumeHooks, ConsumeOutcome, ConsumeSpan, ConsumeSpans,
};
pub use listener::{
    ConcurrentContext, ConcurrentListener, ConcurrentResult, OrderlyContext, OrderlyListener,
    OrderlyResult,
};
pub use orderly::{
    LOCK_FAILED_RETRY_DELAY, LOCKED_RETRY_DELAY, LONGEST_SUSPEND, OrderlyService, SHORTEST_SUSPEND,
};
pub use send_back::{CLIENT_INNER_PRODUCER_GROUP, SendBack, retry_copy};
pub use stats::{ConsumeStats, TopicConsumeStats};
pub use view::restore_retry_topic;

/// One batch of freshly pulled messages for the consume side.
#[derive(Debug, Clone)]
pub struct ConsumeRequest {
    /// The queue the messages came from.
    pub mq: MessageQueue,
    /// Its process queue (the messages are already in it).
    pub pq: Arc<ProcessQueue>,
    /// The messages, in queue-offset order.
    pub msgs: Vec<Arc<MessageExt>>,
    /// `ProcessQueue::put`'s answer: whether a consume must be dispatched
    /// (orderly services only start a queue's consume loop when it is true).
    pub dispatch: bool,
}

/// One answer's worth of popped messages for the consume side (a queue the
/// brokers assigned in pop mode).
#[derive(Debug)]
pub struct PoppedRequest {
    /// The assigned queue (a queue id of -1 stands for every queue of its
    /// broker).
    pub mq: MessageQueue,
    /// Its count of messages waiting to be settled, which already includes
    /// these; the consume side lowers it as it settles them.
    pub queue: Arc<PopQueue>,
    /// The messages, each with what acknowledges it.
    pub messages: Vec<PoppedMessage>,
    /// When their invisible time ends (on tokio's clock): after it the
    /// broker hands them out again, so they are no longer consumed here,
    /// nor given a new invisible time (Java's `isPopTimeout`).
    pub invisible_until: Instant,
}

/// Where the pull loop hands messages; implemented by the concurrent and the
/// orderly consume services (and by fakes in tests).
#[async_trait]
pub trait ConsumeService: Send + Sync {
    /// Takes a batch. Waits when the service's bounded queue is full, so that a
    /// slow listener pushes back on pulling instead of growing memory.
    ///
    /// The request's messages are in its process queue already, so a submit
    /// that has been polled and is then dropped should still take them (the
    /// services of this crate do): a pull task stopped while it waited must
    /// not leave them behind for a shutdown's drain to miss.
    async fn submit(&self, request: ConsumeRequest);
    /// Takes a batch of popped messages (pop mode), waiting as
    /// [`submit`](Self::submit) does. Once consumed, each is acknowledged,
    /// or retried later by a new invisible time, or dead-lettered. Only the
    /// concurrent service consumes popped messages (Java pops for
    /// concurrent consumers only); this default leaves them to come back
    /// when their invisible time passes.
    async fn submit_popped(&self, request: PoppedRequest) {
        tracing::warn!(mq = %request.mq, messages = request.messages.len(),
            "this consume service does not consume popped messages; they come back after their invisible time");
        request.queue.settled(request.messages.len());
    }
    /// Whether this service consumes orderly: the pull side then pulls a queue
    /// (in clustering mode) only while its process queue holds the broker lock,
    /// and rebalance locks queues before pulling them and unlocks dropped ones.
    fn is_orderly(&self) -> bool;
}

/// What a consume service works with: the consumer's settings, its client
/// id, the broker API, the routes (broker addresses, the retry topic's
/// queues), the group's offset store and the counters it updates.
#[derive(Clone)]
pub struct ConsumeEnv {
    /// The consumer's settings (group, message model, batch size, thread
    /// count, retry limits, timeouts).
    pub options: Arc<ConsumerOptions>,
    /// This client's id (orderly consumption locks queues under it).
    pub client_id: String,
    /// The brokers.
    pub api: Arc<dyn BrokerApi>,
    /// Broker addresses and the retry topic's route.
    pub routes: Routes,
    /// Where consumed offsets go.
    pub offsets: Arc<dyn OffsetStore>,
    /// Consume counters, read for GET_CONSUMER_RUNNING_INFO.
    pub stats: Arc<ConsumeStats>,
    /// Called around every listener call.
    pub hooks: ConsumeHooks,
}

impl fmt::Debug for ConsumeEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumeEnv")
            .field("group", &self.options.group)
            .field("client_id", &self.client_id)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl ConsumeEnv {
    /// The [`SendBack`] of this consumer's group.
    pub fn send_back(&self) -> SendBack {
        SendBack::new(
            Arc::clone(&self.api),
            self.routes.clone(),
            self.options.group.clone(),
        )
    }

    /// Records the offset safe to commit for `mq`, unless the queue was
    /// dropped (a dropped queue never commits, not even while it is being
    /// dropped: see [`ProcessQueue::while_live`]).
    pub(crate) fn commit(&self, mq: &MessageQueue, pq: &ProcessQueue, offset: Option<i64>) {
        if let Some(offset) = offset {
            pq.while_live(|| {
                self.offsets.update(mq, offset, true);
            });
        }
    }
}

/// What a consume service left undone when it shut down. The messages stay
/// in their process queues, uncommitted, so they are consumed again later
/// (by this client after a restart or by the queue's next owner).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Batches that were queued, waiting for a retry, or cancelled mid-way
    /// at the timeout.
    pub batches_left: usize,
    /// Messages not consumed (those batches' messages, and for orderly
    /// consumption the messages still cached in the queues it served).
    pub messages_left: usize,
}
