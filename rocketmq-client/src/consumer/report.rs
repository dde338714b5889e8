//! [`ShutdownReport`]: what a consumer's shutdown did.

use std::collections::BTreeMap;

use rocketmq_model::MessageQueue;

use crate::error::ClientError;

/// What [`PushConsumer::shutdown`](super::PushConsumer::shutdown) (or
/// [`PullConsumer::shutdown`](super::PullConsumer::shutdown)) did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The offsets persisted at shutdown, per queue (the next message to
    /// consume; the queues out of the consumer's namespace, as its
    /// `committed_offsets` gives them).
    pub offsets_committed: BTreeMap<MessageQueue, i64>,
    /// Messages pulled but not consumed (in flight when the drain timeout
    /// ran out, waiting for a retry, or still cached); they are consumed
    /// again by the queue's next owner. For a
    /// [`PullConsumer`](super::PullConsumer), the messages fetched ahead and
    /// never polled: a consumer that stops polling while messages wait
    /// reports them, so its report is not clean even though nothing it
    /// handed out is lost.
    pub messages_left: usize,
    /// Listener batches abandoned at the drain timeout or never started.
    pub batches_left: usize,
    /// What went wrong (the shutdown went on regardless).
    pub errors: Vec<ClientError>,
}

impl ShutdownReport {
    /// Whether everything pulled was consumed and nothing failed.
    pub fn is_clean(&self) -> bool {
        self.messages_left == 0 && self.batches_left == 0 && self.errors.is_empty()
    }
}
