//! Expired-message cleaning for concurrent consumption (Java's
//! `ProcessQueue#cleanExpiredMsg`): the lowest message of a process queue,
//! when its listener call has run longer than the consume timeout, is sent
//! back to the broker (delay level 3) and removed, so that one stuck
//! listener call does not hold the queue's committed offset back forever.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rocketmq_model::MessageQueue;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::ProcessQueue;
use crate::consume::{ConsumeEnv, SendBack, restore_retry_topic};

/// How often the cleaner scans (Java: every `consumeTimeout`, 15 min).
pub const DEFAULT_CLEAN_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The delay level expired messages are sent back with (10 s).
pub const EXPIRED_DELAY_LEVEL: i32 = 3;

/// At most this many messages are cleaned per queue and scan (Java's 16).
const MAX_CLEANED_PER_QUEUE: usize = 16;

/// Sends back and removes, in each of `queues`, the lowest message while
/// its consumption started more than the consumer's `consume_timeout`
/// before `now` (at most 16 per queue), and records each queue's new
/// commit offset (unless the queue was dropped). An expired message behind
/// one that is not (or not started) stays, as in Java: it does not hold the
/// offset back, and its listener call may still end well. A message whose
/// send-back fails stays. Returns how many messages were removed.
///
/// Only for concurrent consumption: an orderly consumer never calls it.
pub async fn clean_expired<I>(env: &ConsumeEnv, queues: I, now: Instant) -> usize
where
    I: IntoIterator<Item = (MessageQueue, Arc<ProcessQueue>)>,
{
    clean_until(env, queues, now, &CancellationToken::new()).await
}

/// [`clean_expired`], starting no send-back once `stop` is cancelled. The
/// send-back under way is finished, its message removed: the broker may
/// have stored it already.
async fn clean_until<I>(
    env: &ConsumeEnv,
    queues: I,
    now: Instant,
    stop: &CancellationToken,
) -> usize
where
    I: IntoIterator<Item = (MessageQueue, Arc<ProcessQueue>)>,
{
    let send_back = env.send_back();
    let mut removed = 0;
    for (mq, pq) in queues {
        removed += clean_queue(env, &send_back, &mq, &pq, now, stop).await;
    }
    removed
}

/// Cleans the head of `pq` while it is expired, up to 16 messages (Java's
/// `cleanExpiredMsg`): each is sent back, then removed. A send-back that
/// fails ends the queue's scan, leaving its message for the next one.
async fn clean_queue(
    env: &ConsumeEnv,
    send_back: &SendBack,
    mq: &MessageQueue,
    pq: &ProcessQueue,
    now: Instant,
    stop: &CancellationToken,
) -> usize {
    if pq.is_dropped() {
        return 0;
    }
    let options = &env.options;
    let retry_topic = options.retry_topic();
    let max = options.concurrent_max_reconsume_times();
    let mut removed = 0;
    while removed < MAX_CLEANED_PER_QUEUE && !stop.is_cancelled() {
        // Looked up again each time: the listener may have finished with
        // the head meanwhile, and what is behind it may not be expired.
        let Some(msg) = pq.expired_head(now, options.consume_timeout) else {
            break;
        };
        let mut msg = (*msg).clone();
        restore_retry_topic(&mut msg, &retry_topic);
        match send_back
            .send_back(&msg, mq, EXPIRED_DELAY_LEVEL, max)
            .await
        {
            Ok(()) => {
                tracing::info!(%mq, offset = msg.queue_offset, msg_id = %msg.msg_id(),
                    "message consumed longer than the consume timeout; sent back");
                let commit = pq.remove(&[msg.queue_offset], Instant::now());
                env.commit(mq, pq, commit);
                removed += 1;
            }
            Err(err) => {
                tracing::warn!(%mq, offset = msg.queue_offset, error = %err,
                    "could not send back an expired message; keeping it");
                break;
            }
        }
    }
    removed
}

/// The timer that runs [`clean_expired`] every interval over the process
/// queues a closure lists. Stopped by [`shutdown`](Self::shutdown) or when
/// dropped.
pub struct ExpiryCleaner {
    token: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ExpiryCleaner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpiryCleaner")
            .field("stopped", &self.token.is_cancelled())
            .finish_non_exhaustive()
    }
}

impl ExpiryCleaner {
    /// Starts scanning every `interval` (the first scan one interval from
    /// now) the queues `queues` returns at that time.
    pub fn start<F>(env: ConsumeEnv, interval: Duration, queues: F) -> Self
    where
        F: Fn() -> Vec<(MessageQueue, Arc<ProcessQueue>)> + Send + Sync + 'static,
    {
        let token = CancellationToken::new();
        let stop = token.clone();
        let task = tokio::spawn(async move {
            let interval = crate::wait::period(interval);
            let start = crate::wait::deadline_after(Instant::now(), interval);
            let mut ticks = tokio::time::interval_at(start, interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                // Not raced against the stop: a send-back cut short after
                // the broker stored it would leave its message in the
                // process queue, for the queue's next owner to consume
                // again besides the retry copy.
                clean_until(&env, queues(), Instant::now(), &stop).await;
            }
        });
        ExpiryCleaner {
            token,
            task: Mutex::new(Some(task)),
        }
    }

    /// Stops the timer and waits for it (a scan in progress finishes the
    /// send-back under way and starts no other).
    pub async fn shutdown(&self) {
        self.token.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "the expiry cleaner failed");
            }
        }
    }
}

impl Drop for ExpiryCleaner {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
