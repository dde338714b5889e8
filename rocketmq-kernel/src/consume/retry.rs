//! [`DelayedQueue`]: items that become due at a time, taken in due order by
//! one task (the concurrent service's local retries).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::time::Instant;

/// Items waiting for their due time. Pushing never waits; the number of
/// items is bounded by whoever pushes (here: failed messages, which stay in
/// their flow-controlled process queues meanwhile).
#[derive(Debug)]
pub(crate) struct DelayedQueue<T> {
    state: Mutex<Waiting<T>>,
    pushed: Notify,
}

#[derive(Debug)]
struct Waiting<T> {
    /// By due time, then by push order.
    items: BTreeMap<(Instant, u64), T>,
    next_seq: u64,
}

impl<T> DelayedQueue<T> {
    pub(crate) fn new() -> Self {
        DelayedQueue {
            state: Mutex::new(Waiting {
                items: BTreeMap::new(),
                next_seq: 0,
            }),
            pushed: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, Waiting<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `item`, due at `due`.
    pub(crate) fn push(&self, due: Instant, item: T) {
        {
            let mut state = self.state();
            let seq = state.next_seq;
            state.next_seq += 1;
            state.items.insert((due, seq), item);
        }
        self.pushed.notify_one();
    }

    /// Waits for the earliest item to be due and takes it. Cancel-safe: an
    /// item is only taken when this returns.
    pub(crate) async fn next_due(&self) -> T {
        loop {
            let pushed = self.pushed.notified();
            tokio::pin!(pushed);
            pushed.as_mut().enable();
            let due = {
                let mut state = self.state();
                match state.items.first_entry() {
                    Some(entry) if entry.key().0 <= Instant::now() => return entry.remove(),
                    Some(entry) => Some(entry.key().0),
                    None => None,
                }
            };
            match due {
                Some(due) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        () = &mut pushed => {}
                    }
                }
                None => pushed.await,
            }
        }
    }

    /// Takes every item, due or not.
    pub(crate) fn drain(&self) -> Vec<T> {
        std::mem::take(&mut self.state().items)
            .into_values()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn items_come_out_when_due_in_due_order() {
        let queue = DelayedQueue::new();
        let start = Instant::now();
        queue.push(start + Duration::from_secs(5), "late");
        queue.push(start + Duration::from_secs(1), "early");
        assert_eq!(queue.next_due().await, "early");
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
        assert_eq!(queue.next_due().await, "late");
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
        queue.push(start, "overdue");
        queue.push(start + Duration::from_secs(60), "future");
        assert_eq!(queue.next_due().await, "overdue");
        assert_eq!(queue.drain(), vec!["future"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_push_wakes_a_waiter() {
        let queue = std::sync::Arc::new(DelayedQueue::new());
        let waiter = tokio::spawn({
            let queue = std::sync::Arc::clone(&queue);
            async move { queue.next_due().await }
        });
        tokio::task::yield_now().await;
        queue.push(Instant::now() + Duration::from_millis(10), 7);
        assert_eq!(waiter.await.unwrap(), 7);
    }
}
