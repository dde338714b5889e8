//! The queues a pull consumer reads, with where each is read from, what
//! was handed out by `poll`, and what is buffered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rocketmq_model::{MessageExt, MessageQueue};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A batch a fetch task pulled, waiting for `poll`.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) mq: MessageQueue,
    /// The queue's generation when it was pulled; a seek or pause since
    /// makes it stale.
    pub(crate) generation: u64,
    pub(crate) msgs: Vec<MessageExt>,
    /// Where the pull that found them said to continue: everything before
    /// it was either in the batch or filtered out.
    pub(crate) next: i64,
    pub(crate) bytes: u64,
    /// Set by [`Queues::accept`]: the queue's count of accepted batches,
    /// this one included.
    pub(crate) accepted: u64,
    /// Set by [`Queues::accept`]: the queue's count of seeks then.
    pub(crate) seeks: u64,
}

/// Generations are unique in the process: a queue released and added again
/// gets a new entry whose generation no batch of the old one carries.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// One queue read by this consumer.
#[derive(Debug)]
pub(crate) struct QueueEntry {
    /// Changed (and sent to the fetch task) by a seek, pause or resume:
    /// buffered batches of other generations are dropped, those of the
    /// queue's earlier assignments included.
    pub(crate) generation: watch::Sender<u64>,
    /// The next offset to pull; `None` until the start offset is known.
    pub(crate) next_pull: Option<i64>,
    /// The start offset the fetch task found for the queue: where a pause
    /// before anything was handed out rewinds to (looking the start up
    /// again could land past what was buffered, e.g. at the queue's new end).
    pub(crate) start: Option<i64>,
    /// The offset after the last message handed out by `poll` (what a
    /// commit stores).
    pub(crate) consumed: Option<i64>,
    pub(crate) paused: bool,
    /// Batches `poll` took from this queue.
    pub(crate) accepted: u64,
    /// Seeks so far: a stream stops yielding a batch taken before one.
    pub(crate) seeks: u64,
    /// The `accepted` count when a pause or a give-back last rewound the
    /// queue to the unyielded part of its latest batch: that batch is
    /// fetched again from there, so a stream stops yielding it (older
    /// batches are not fetched again, and a stream yields them to the end).
    pub(crate) rewound_at: Option<u64>,
    /// While a stream yields the last batch taken (its `accepted` count):
    /// the offset of its next message not yet yielded, which a commit does
    /// not go past.
    pub(crate) yielding: Option<(u64, i64)>,
    /// Messages and body bytes pulled and not yet handed out.
    pub(crate) buffered: usize,
    pub(crate) buffered_bytes: u64,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: Option<JoinHandle<()>>,
}

impl QueueEntry {
    pub(crate) fn new(cancel: CancellationToken) -> Self {
        QueueEntry {
            generation: watch::Sender::new(next_generation()),
            next_pull: None,
            start: None,
            consumed: None,
            paused: false,
            accepted: 0,
            seeks: 0,
            rewound_at: None,
            yielding: None,
            buffered: 0,
            buffered_bytes: 0,
            cancel,
            task: None,
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Drops what is buffered and continues at `next_pull`.
    pub(crate) fn restart_at(&mut self, next_pull: Option<i64>) {
        self.next_pull = next_pull;
        self.yielding = None;
        self.buffered = 0;
        self.buffered_bytes = 0;
        self.generation.send_replace(next_generation());
    }

    /// The offset after the last message handed out: a stream still
    /// yielding the last batch taken has handed out only what it yielded.
    pub(crate) fn handed_out(&self) -> Option<i64> {
        match self.yielding {
            Some((accepted, next)) if accepted == self.accepted => {
                self.consumed.map(|consumed| consumed.min(next))
            }
            _ => self.consumed,
        }
    }
}

/// Queue → entry; the lock is never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Queues {
    entries: Mutex<BTreeMap<MessageQueue, QueueEntry>>,
}

impl Queues {
    pub(crate) fn lock(&self) -> MutexGuard<'_, BTreeMap<MessageQueue, QueueEntry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the entry of `mq`, if any.
    pub(crate) fn with<T>(
        &self,
        mq: &MessageQueue,
        f: impl FnOnce(&mut QueueEntry) -> T,
    ) -> Option<T> {
        self.lock().get_mut(mq).map(f)
    }

    /// Takes a fetched batch for `poll`: the batch, its queue's consumed
    /// offset moved past it, when it is current; `None` when stale (the
    /// queue was released, sought or paused since).
    pub(crate) fn accept(&self, mut batch: Fetched) -> Option<Fetched> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&batch.mq)?;
        if entry.generation() != batch.generation || entry.paused {
            return None;
        }
        entry.buffered = entry.buffered.saturating_sub(batch.msgs.len());
        entry.buffered_bytes = entry.buffered_bytes.saturating_sub(batch.bytes);
        entry.consumed = Some(batch.next);
        entry.accepted += 1;
        batch.accepted = entry.accepted;
        batch.seeks = entry.seeks;
        Some(batch)
    }

    /// Takes back the part of an accepted batch, from offset `from` on,
    /// that was never given to the application: its queue is consumed up to
    /// `from` and fetched again from there. Nothing changes when the queue
    /// moved on since (released, sought, paused, or another batch taken);
    /// pulls that found nothing to hand out (filtered, or no new message)
    /// do not count, though they move the consumed offset past what they
    /// skipped.
    pub(crate) fn give_back(&self, batch: &Fetched, from: i64) -> bool {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(&batch.mq) else {
            return false;
        };
        if entry.generation() != batch.generation || entry.accepted != batch.accepted {
            return false;
        }
        entry.consumed = Some(from);
        entry.yielding = None;
        entry.rewound_at = Some(entry.accepted);
        entry.restart_at(Some(from));
        true
    }

    /// Runs `write` on each queue's offset handed out (up to the next
    /// message a stream has still to yield, for the batch it is yielding),
    /// under the lock, so that no seek or release comes in between.
    pub(crate) fn each_consumed(&self, mut write: impl FnMut(&MessageQueue, i64)) {
        for (mq, entry) in self.lock().iter() {
            if let Some(offset) = entry.handed_out() {
                write(mq, offset);
            }
        }
    }

    /// The offsets handed out, per queue (see [`each_consumed`](Self::each_consumed)).
    #[cfg(test)]
    pub(crate) fn consumed(&self) -> BTreeMap<MessageQueue, i64> {
        let mut consumed = BTreeMap::new();
        self.each_consumed(|mq, offset| {
            consumed.insert(mq.clone(), offset);
        });
        consumed
    }

    /// Whether a stream may go on yielding `batch`: its queue was not
    /// released or sought since, nor rewound to the batch's own unyielded
    /// part (a pause, or another stream giving back, while it was the
    /// latest batch taken), which is fetched again.
    pub(crate) fn is_current(&self, batch: &Fetched) -> bool {
        self.lock().get(&batch.mq).is_some_and(|entry| {
            entry.seeks == batch.seeks
                && (entry.generation() == batch.generation
                    || entry.rewound_at != Some(batch.accepted))
        })
    }

    /// Records that a stream yielded `batch` up to (not including) the
    /// message at offset `next`; `None` when it yielded all of it. Nothing
    /// is held back for a batch the queue moved on from (sought, paused,
    /// another batch taken).
    pub(crate) fn yielded_up_to(&self, batch: &Fetched, next: Option<i64>) {
        self.with(&batch.mq, |entry| {
            let current =
                entry.generation() == batch.generation && entry.accepted == batch.accepted;
            entry.yielding = next.filter(|_| current).map(|next| (batch.accepted, next));
        });
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::Message;

    use super::*;

    fn batch(mq: &MessageQueue, generation: u64, next: i64) -> Fetched {
        Fetched {
            mq: mq.clone(),
            generation,
            msgs: vec![MessageExt::from(Message::new("T", "x"))],
            next,
            bytes: 1,
            accepted: 0,
            seeks: 0,
        }
    }

    fn generation(queues: &Queues, mq: &MessageQueue) -> u64 {
        queues.with(mq, |e| e.generation()).unwrap()
    }

    #[test]
    fn stale_batches_are_dropped_and_current_ones_move_the_consumed_offset() {
        let queues = Queues::default();
        let mq = MessageQueue::new("T", "b", 0);
        queues
            .lock()
            .insert(mq.clone(), QueueEntry::new(CancellationToken::new()));
        queues.with(&mq, |e| {
            e.buffered = 2;
            e.buffered_bytes = 2;
        });
        let first = generation(&queues, &mq);
        let accepted = queues.accept(batch(&mq, first, 5)).unwrap();
        assert_eq!(accepted.msgs.len(), 1);
        assert_eq!(queues.consumed()[&mq], 5);
        queues.with(&mq, |e| e.restart_at(Some(2)));
        assert!(
            queues.accept(batch(&mq, first, 9)).is_none(),
            "older generation"
        );
        assert_eq!(queues.consumed()[&mq], 5);
        queues.with(&mq, |e| e.paused = true);
        let now = generation(&queues, &mq);
        assert!(queues.accept(batch(&mq, now, 9)).is_none(), "paused");
        let other = MessageQueue::new("T", "b", 1);
        assert!(
            queues.accept(batch(&other, now, 1)).is_none(),
            "not assigned"
        );
    }

    #[test]
    fn a_batch_given_back_rewinds_its_queue_unless_it_moved_since() {
        let queues = Queues::default();
        let mq = MessageQueue::new("T", "b", 0);
        queues
            .lock()
            .insert(mq.clone(), QueueEntry::new(CancellationToken::new()));
        let before = generation(&queues, &mq);
        let accepted = queues.accept(batch(&mq, before, 5)).unwrap();
        assert!(queues.give_back(&accepted, 3));
        assert_eq!(queues.consumed()[&mq], 3);
        let next_pull = queues.with(&mq, |e| e.next_pull).unwrap();
        assert_eq!(next_pull, Some(3), "fetched again from 3");
        let again = generation(&queues, &mq);
        assert_ne!(again, before, "what was buffered is stale");

        // A pull that found nothing to hand out moved the consumed offset:
        // the batch is still the last one taken, so it is given back.
        let filtered = queues.accept(batch(&mq, again, 6)).unwrap();
        queues.with(&mq, |e| e.consumed = Some(7));
        assert!(queues.give_back(&filtered, 5));
        assert_eq!(queues.consumed()[&mq], 5);

        // Another batch taken (or sought, or paused) since: left alone.
        let now = generation(&queues, &mq);
        let first = queues.accept(batch(&mq, now, 6)).unwrap();
        queues.accept(batch(&mq, now, 8)).unwrap();
        assert!(!queues.give_back(&first, 4));
        assert_eq!(queues.consumed()[&mq], 8);
        let second = queues.accept(batch(&mq, now, 9)).unwrap();
        queues.with(&mq, |e| e.restart_at(Some(20)));
        assert!(!queues.give_back(&second, 8));
        assert_eq!(queues.consumed()[&mq], 9);
    }

    #[test]
    fn a_commit_stops_at_what_a_stream_has_still_to_yield() {
        let queues = Queues::default();
        let mq = MessageQueue::new("T", "b", 0);
        queues
            .lock()
            .insert(mq.clone(), QueueEntry::new(CancellationToken::new()));
        let now = generation(&queues, &mq);
        let taken = queues.accept(batch(&mq, now, 10)).unwrap();
        queues.yielded_up_to(&taken, Some(3));
        assert_eq!(queues.consumed()[&mq], 3);
        queues.yielded_up_to(&taken, None);
        assert_eq!(queues.consumed()[&mq], 10);
        // A later batch taken by poll is not held back by the stream's.
        queues.yielded_up_to(&taken, Some(4));
        let later = queues.accept(batch(&mq, now, 20)).unwrap();
        assert_eq!(queues.consumed()[&mq], 20);
        // Nor is a seek, even when the stream goes on yielding after it.
        queues.yielded_up_to(&later, Some(15));
        queues.with(&mq, |e| {
            e.restart_at(Some(100));
            e.consumed = Some(100);
        });
        assert_eq!(queues.consumed()[&mq], 100);
        queues.yielded_up_to(&later, Some(16));
        assert_eq!(queues.consumed()[&mq], 100);
    }

    #[test]
    fn a_queue_added_again_takes_no_batch_of_its_earlier_entry() {
        let queues = Queues::default();
        let mq = MessageQueue::new("T", "b", 0);
        queues
            .lock()
            .insert(mq.clone(), QueueEntry::new(CancellationToken::new()));
        let old = generation(&queues, &mq);
        queues.lock().remove(&mq);
        queues
            .lock()
            .insert(mq.clone(), QueueEntry::new(CancellationToken::new()));
        assert!(queues.accept(batch(&mq, old, 5)).is_none());
    }
}
