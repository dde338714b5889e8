//! Pull scheduling: one pull task per owned queue (Java's
//! `DefaultMQPushConsumerImpl#pullMessage` and `PullAPIWrapper`).
//!
//! The rebalance ([`crate::rebalance`]) starts a queue's task when it adds
//! the queue and stops it (a `CancellationToken`, then waits for its end)
//! when it drops the queue or shuts down. Each turn of the loop:
//!
//! 1. waits while the consumer is suspended;
//! 2. flow control: while the queue caches more messages or body bytes than
//!    allowed (per queue, or a per-topic limit divided over the topic's
//!    owned queues) or, consuming concurrently, its cached offsets span more
//!    than `consume_concurrently_max_span`, waits
//!    `pull_time_delay_when_flow_control` and checks again;
//! 3. orderly, clustering: pulls only while the queue holds its broker lock
//!    (else waits `pull_time_delay_when_exception`); the first locked pull
//!    re-reads the start offset from the store;
//! 4. pulls with long polling (SUSPEND, `broker_suspend_max_time`; the
//!    broker API's call timeout exceeds it) from the broker the last answer
//!    suggested, committing the in-memory offset with the pull (COMMIT_OFFSET)
//!    in clustering mode when it is known and above 0 and the pull goes to a
//!    master; the subscription is posted only with
//!    `post_subscription_when_pull`;
//! 5. FOUND: the messages ([`found_messages`]) go into the process queue and
//!    to [`ConsumeService::submit`](crate::consume::ConsumeService::submit),
//!    which waits when the consume side is full (back-pressure); NO_NEW_MSG
//!    and NO_MATCHED_MSG: continue at `next_begin_offset`, which becomes the
//!    consume offset when nothing is in flight; OFFSET_ILLEGAL: the queue is
//!    dropped, its offset set to `next_begin_offset` and persisted at once,
//!    and a rebalance asked for, which adds the queue again from there; an error waits `pull_time_delay_when_exception` (20 ms after
//!    the broker's FLOW_CONTROL); an answer whose first record cannot be
//!    decoded is pulled again, then alone, then skipped ([`Undecodable`]);
//! 6. waits `pull_interval` after a FOUND answer when it is set.
//!
//! The task ends when its queue is dropped or its token cancelled.

mod failures;
mod flow;
mod poison;
mod request;
mod result;
pub(crate) mod task;

pub use self::failures::FailureLog;
pub use self::poison::{PoisonStep, UNDECODABLE_RETRIES, Undecodable};
pub use self::result::{Found, found_messages};
pub(crate) use self::task::spawn;
pub use self::task::{BROKER_FLOW_CONTROL_DELAY, retry_soon};
