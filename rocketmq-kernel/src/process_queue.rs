//! [`ProcessQueue`]: the messages of one queue between pull and commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_model::body::ProcessQueueInfo;
use rocketmq_model::{MessageExt, property};
use tokio::time::Instant;

/// How long a broker queue lock stays valid locally without renewal
/// (Java `REBALANCE_LOCK_MAX_LIVE_TIME`).
pub const LOCK_MAX_LIVE_TIME: Duration = Duration::from_secs(30);

/// How often an orderly consumer renews its broker queue locks (Java
/// `REBALANCE_LOCK_INTERVAL`).
pub const LOCK_RENEW_INTERVAL: Duration = Duration::from_secs(20);

/// How long a queue may go without a pull before it counts as stuck (Java
/// `PULL_MAX_IDLE_TIME`).
pub const PULL_MAX_IDLE_TIME: Duration = Duration::from_secs(120);

/// The in-flight messages of one assigned queue, ordered by queue offset:
/// pulled and not yet committed.
///
/// The pull task [`put`](Self::put)s what it pulls; the consume service
/// consumes and either [`remove`](Self::remove)s acknowledged messages
/// (concurrent consumption: the result is the offset safe to commit) or
/// [`take`](Self::take)s batches and [`commit`](Self::commit)s or
/// [`rollback`](Self::rollback)s them (orderly consumption). Cached count,
/// bytes and span drive the pull's flow control; consume start times drive
/// the expiry scan; the lock state belongs to orderly consumption.
///
/// Thread-safe for one puller and any number of consumers. Every method
/// that records or compares a time takes `now` (a `tokio::time::Instant`),
/// so tests decide the clock.
#[derive(Debug)]
pub struct ProcessQueue {
    state: Mutex<State>,
    dropped: AtomicBool,
    consume_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct State {
    /// Waiting messages (concurrent: also those being consumed).
    messages: BTreeMap<i64, Cached>,
    /// Orderly: taken and not yet committed or rolled back.
    consuming: BTreeMap<i64, Cached>,
    /// Body bytes of both maps.
    bytes: u64,
    /// The highest offset ever put.
    max_offset: Option<i64>,
    /// Messages left on the broker after the last pulled one.
    backlog: i64,
    /// Orderly: there is a consume task for this queue.
    dispatched: bool,
    last_pull: Instant,
    last_consume: Instant,
    locked: bool,
    last_lock: Instant,
    try_unlock_times: i64,
}

#[derive(Debug, Clone)]
struct Cached {
    msg: Arc<MessageExt>,
    consume_started: Option<Instant>,
}

impl Cached {
    fn size(&self) -> u64 {
        self.msg.message.body.len() as u64
    }
}

impl ProcessQueue {
    /// An empty queue; the pull, consume and lock times start at `now`.
    pub fn new(now: Instant) -> Self {
        ProcessQueue {
            state: Mutex::new(State {
                messages: BTreeMap::new(),
                consuming: BTreeMap::new(),
                bytes: 0,
                max_offset: None,
                backlog: 0,
                dispatched: false,
                last_pull: now,
                last_consume: now,
                locked: false,
                last_lock: now,
                try_unlock_times: 0,
            }),
            dropped: AtomicBool::new(false),
            consume_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds pulled messages (a message whose offset is already cached is
    /// ignored). Returns whether a consume task should be dispatched: true
    /// when there are messages and no task was dispatched since the last
    /// [`take`](Self::take) found the queue empty (Java's `putMessage`
    /// result; orderly consumption runs one task per queue on it).
    pub fn put(&self, msgs: &[Arc<MessageExt>]) -> bool {
        let mut state = self.state();
        for msg in msgs {
            let offset = msg.queue_offset;
            if state.messages.contains_key(&offset) || state.consuming.contains_key(&offset) {
                continue;
            }
            let cached = Cached {
                msg: Arc::clone(msg),
                consume_started: None,
            };
            state.bytes += cached.size();
            state.messages.insert(offset, cached);
            state.max_offset = Some(state.max_offset.map_or(offset, |max| max.max(offset)));
        }
        if let Some(last) = msgs.last() {
            let broker_max = last
                .property(property::MAX_OFFSET)
                .and_then(|max| max.parse::<i64>().ok());
            // The broker's numbers: no overflow panics (debug) or wraps.
            if let Some(backlog) = broker_max
                .map(|max| max.saturating_sub(last.queue_offset))
                .filter(|backlog| *backlog > 0)
            {
                state.backlog = backlog;
            }
        }
        let dispatch = !state.messages.is_empty() && !state.dispatched;
        if dispatch {
            state.dispatched = true;
        }
        dispatch
    }

    /// Removes consumed (acknowledged or sent back) messages and returns the
    /// offset that is safe to commit: the lowest offset still cached, or the
    /// highest offset ever put plus one when nothing is left. `None` when
    /// nothing was ever put. Offsets not cached are ignored.
    pub fn remove(&self, offsets: &[i64], now: Instant) -> Option<i64> {
        let mut state = self.state();
        state.last_consume = now;
        for offset in offsets {
            if let Some(cached) = state.messages.remove(offset) {
                state.bytes -= cached.size();
            }
        }
        state.commit_offset()
    }

    /// The offset that is safe to commit now (see [`remove`](Self::remove)).
    pub fn commit_offset(&self) -> Option<i64> {
        self.state().commit_offset()
    }

    /// Records that consuming the messages at `offsets` started at `now`
    /// (again, for a retry), for the [expiry scan](Self::expired_head).
    pub fn mark_consume_started(&self, offsets: &[i64], now: Instant) {
        let mut state = self.state();
        for offset in offsets {
            if let Some(cached) = state.messages.get_mut(offset) {
                cached.consume_started = Some(now);
            }
        }
    }

    /// The lowest waiting message, if its consumption started more than
    /// `timeout` before `now`: the expiry scan sends it back and removes it.
    ///
    /// Only the lowest is looked at, as Java's `cleanExpiredMsg` does: it is
    /// the one holding the commit offset back. A message behind it is left
    /// to its listener call, however old, until it becomes the lowest; so
    /// is every message behind a lowest one not started yet. Messages taken
    /// by orderly consumption are not considered.
    pub fn expired_head(&self, now: Instant, timeout: Duration) -> Option<Arc<MessageExt>> {
        let state = self.state();
        let (_, head) = state.messages.first_key_value()?;
        head.consume_started
            .is_some_and(|started| now.saturating_duration_since(started) > timeout)
            .then(|| Arc::clone(&head.msg))
    }

    /// Orderly: moves up to `batch_size` of the lowest waiting messages into
    /// the consuming set and returns them. An empty result ends the current
    /// dispatch (the next [`put`](Self::put) dispatches again).
    pub fn take(&self, batch_size: usize, now: Instant) -> Vec<Arc<MessageExt>> {
        let mut state = self.state();
        state.last_consume = now;
        let mut taken = Vec::with_capacity(batch_size.min(state.messages.len()));
        while taken.len() < batch_size {
            let Some((offset, cached)) = state.messages.pop_first() else {
                break;
            };
            taken.push(Arc::clone(&cached.msg));
            state.consuming.insert(offset, cached);
        }
        if taken.is_empty() {
            state.dispatched = false;
        }
        taken
    }

    /// Orderly: the taken messages are consumed. Forgets them and returns the
    /// offset to commit (the highest taken plus one); `None` when nothing
    /// was taken.
    pub fn commit(&self) -> Option<i64> {
        let mut state = self.state();
        let consumed = std::mem::take(&mut state.consuming);
        let freed: u64 = consumed.values().map(Cached::size).sum();
        state.bytes -= freed;
        consumed
            .last_key_value()
            .map(|(offset, _)| offset.saturating_add(1))
    }

    /// Orderly: the taken messages go back to waiting, to be taken again.
    pub fn rollback(&self) {
        let mut state = self.state();
        let consuming = std::mem::take(&mut state.consuming);
        state.messages.extend(consuming);
    }

    /// Orderly: the taken messages at `offsets` go back to waiting (Java's
    /// `makeMessageToConsumeAgain`), to be consumed again after a pause.
    pub fn make_available_later(&self, offsets: &[i64]) {
        let mut state = self.state();
        for offset in offsets {
            if let Some(cached) = state.consuming.remove(offset) {
                state.messages.insert(*offset, cached);
            }
        }
    }

    /// Messages cached (waiting and, orderly, taken).
    pub fn cached_count(&self) -> usize {
        let state = self.state();
        state.messages.len() + state.consuming.len()
    }

    /// Body bytes cached (waiting and, orderly, taken).
    pub fn cached_bytes(&self) -> u64 {
        self.state().bytes
    }

    /// The highest minus the lowest waiting offset (0 when none wait): how
    /// far consumption lags behind within the cache.
    pub fn span(&self) -> i64 {
        let state = self.state();
        match (
            state.messages.first_key_value(),
            state.messages.last_key_value(),
        ) {
            (Some((min, _)), Some((max, _))) => max.saturating_sub(*min),
            _ => 0,
        }
    }

    /// Whether no message is cached.
    pub fn is_empty(&self) -> bool {
        self.cached_count() == 0
    }

    /// Whether the message at `offset` is waiting.
    pub fn contains(&self, offset: i64) -> bool {
        self.state().messages.contains_key(&offset)
    }

    /// Messages left on the broker after the last pulled one, from its
    /// MAX_OFFSET property (Java's `msgAccCnt`).
    pub fn backlog(&self) -> i64 {
        self.state().backlog
    }

    /// Forgets every cached message (the queue was dropped or reset).
    pub fn clear(&self) {
        let mut state = self.state();
        state.messages.clear();
        state.consuming.clear();
        state.bytes = 0;
        state.max_offset = None;
    }

    /// Marks the queue dropped: it is no longer assigned here, its pull and
    /// consumption stop and its offset must not be committed again. Once
    /// this returns, no [`while_live`](Self::while_live) call is running or
    /// will run its closure.
    pub fn mark_dropped(&self) {
        let _state = self.state();
        self.dropped.store(true, Ordering::Release);
    }

    /// Runs `f` unless the queue is dropped, and with no drop in between:
    /// an offset committed through it cannot land after the drop (and so
    /// after an offset the dropper wrote, Java's `updateAndFreezeOffset`).
    /// `f` must not call back into this queue.
    pub fn while_live(&self, f: impl FnOnce()) {
        let _state = self.state();
        if !self.dropped.load(Ordering::Acquire) {
            f();
        }
    }

    /// Whether the queue was dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Records a pull at `now`.
    pub fn record_pull(&self, now: Instant) {
        self.state().last_pull = now;
    }

    /// When the queue was last pulled.
    pub fn last_pull(&self) -> Instant {
        self.state().last_pull
    }

    /// When the queue was last consumed from (a remove or a take).
    pub fn last_consume(&self) -> Instant {
        self.state().last_consume
    }

    /// Whether the queue went unpulled longer than [`PULL_MAX_IDLE_TIME`].
    pub fn is_pull_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_pull()) > PULL_MAX_IDLE_TIME
    }

    /// Orderly: the broker granted (or renewed) the queue's lock at `now`.
    pub fn lock_granted(&self, now: Instant) {
        let mut state = self.state();
        state.locked = true;
        state.last_lock = now;
    }

    /// Orderly: the queue's lock was released or refused.
    pub fn lock_lost(&self) {
        self.state().locked = false;
    }

    /// Orderly: whether the broker lock is held (it may have expired: see
    /// [`is_lock_expired`](Self::is_lock_expired)).
    pub fn is_locked(&self) -> bool {
        self.state().locked
    }

    /// Orderly: when the lock was last granted.
    pub fn last_lock_time(&self) -> Instant {
        self.state().last_lock
    }

    /// Orderly: whether the lock was last granted more than
    /// [`LOCK_MAX_LIVE_TIME`] before `now`; the broker may have given the
    /// queue to another client, so consumption must stop until renewal.
    pub fn is_lock_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_lock_time()) > LOCK_MAX_LIVE_TIME
    }

    /// Orderly: whether the lock is held and not expired at `now`.
    pub fn holds_lock(&self, now: Instant) -> bool {
        self.is_locked() && !self.is_lock_expired(now)
    }

    /// Orderly: counts a failed attempt to unlock a dropped queue.
    pub fn record_unlock_attempt(&self) -> i64 {
        let mut state = self.state();
        state.try_unlock_times += 1;
        state.try_unlock_times
    }

    /// Orderly: held while a batch of this queue is consumed, so that the
    /// queue is not unlocked (given to another client) mid-batch.
    pub fn consume_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.consume_lock
    }

    /// The queue's state for GET_CONSUMER_RUNNING_INFO, times converted to
    /// epoch milliseconds with `wall_now` being the wall-clock time at `now`.
    /// `commit_offset` is left 0: the caller fills it from the offset store.
    pub fn info(&self, now: Instant, wall_now: SystemTime) -> ProcessQueueInfo {
        let state = self.state();
        let epoch_ms = |at: Instant| epoch_millis(at, now, wall_now);
        let (first, last) = key_range(&state.messages);
        let (first_taken, last_taken) = key_range(&state.consuming);
        ProcessQueueInfo {
            cached_msg_count: saturating_i32(state.messages.len()),
            cached_msg_min_offset: first,
            cached_msg_max_offset: last,
            cached_msg_size_in_mib: i32::try_from(state.bytes / (1024 * 1024)).unwrap_or(i32::MAX),
            commit_offset: 0,
            dropped: self.is_dropped(),
            last_consume_timestamp: epoch_ms(state.last_consume),
            last_lock_timestamp: epoch_ms(state.last_lock),
            last_pull_timestamp: epoch_ms(state.last_pull),
            locked: state.locked,
            transaction_msg_count: saturating_i32(state.consuming.len()),
            transaction_msg_min_offset: first_taken,
            transaction_msg_max_offset: last_taken,
            try_unlock_times: state.try_unlock_times,
        }
    }
}

impl State {
    fn commit_offset(&self) -> Option<i64> {
        let max = self.max_offset?;
        let lowest_waiting = self.messages.keys().next();
        let lowest_taken = self.consuming.keys().next();
        let lowest = match (lowest_waiting, lowest_taken) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        };
        Some(lowest.unwrap_or(max.saturating_add(1)))
    }
}

/// The lowest and highest key, 0 and 0 when empty (as Java leaves them).
fn key_range(map: &BTreeMap<i64, Cached>) -> (i64, i64) {
    match (map.first_key_value(), map.last_key_value()) {
        (Some((first, _)), Some((last, _))) => (*first, *last),
        _ => (0, 0),
    }
}

fn saturating_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The wall-clock time of `at` in ms since the epoch, knowing that `now` is
/// `wall_now`.
fn epoch_millis(at: Instant, now: Instant, wall_now: SystemTime) -> i64 {
    let wall = if at <= now {
        wall_now.checked_sub(now - at)
    } else {
        wall_now.checked_add(at - now)
    };
    wall.and_then(|wall| wall.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}
