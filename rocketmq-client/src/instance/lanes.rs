//! Lanes for the slow work that broker requests start (a user's transaction
//! check or listener, an offset reset). Each kind has its own lane, so one
//! kind piling up (a check that hangs on a database, re-sent by the broker
//! every interval) cannot hold up the others, and no lane ever makes the
//! connection's request handler wait: work a full lane has no room for is
//! refused at once, as Java's executors reject what their queues cannot hold.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Transaction checks running at once, and started or waiting at most
/// (Java's `checkRequestHoldMax`: 2000). The broker asks again later about a
/// check refused here.
const CHECKS: (usize, usize) = (64, 2000);
/// Offset resets running at once (one consumer's run one after another),
/// and started or waiting at most.
const RESETS: (usize, usize) = (16, 1024);
/// Direct consumptions running at once; no more wait (the broker waits for
/// each one's answer).
const DIRECT: (usize, usize) = (16, 16);

/// The instance's lanes.
#[derive(Debug)]
pub(crate) struct Lanes {
    pub(crate) checks: Lane,
    pub(crate) resets: Lane,
    pub(crate) direct: Lane,
}

impl Default for Lanes {
    fn default() -> Self {
        Lanes {
            checks: Lane::new(CHECKS),
            resets: Lane::new(RESETS),
            direct: Lane::new(DIRECT),
        }
    }
}

/// Runs at most `running` pieces of work at once, and holds at most `held`
/// started or waiting for a slot.
#[derive(Debug)]
pub(crate) struct Lane {
    running: Arc<Semaphore>,
    held: Arc<AtomicUsize>,
    max_held: usize,
}

/// Gives back a lane's hold when its task ends, however it ends.
struct Hold(Arc<AtomicUsize>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Lane {
    fn new((running, max_held): (usize, usize)) -> Self {
        Lane {
            running: Arc::new(Semaphore::new(running)),
            held: Arc::new(AtomicUsize::new(0)),
            max_held,
        }
    }

    /// Starts `work` as a task of `tasks`, to run once a slot is free and to
    /// stop when `cancel` is; `None`, and nothing started, when the lane
    /// already holds all it may. The task's output is `None` when cancelled.
    pub(crate) fn try_spawn<F>(
        &self,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
        work: F,
    ) -> Option<JoinHandle<Option<F::Output>>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let max_held = self.max_held;
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < max_held).then_some(held + 1)
            })
            .ok()?;
        let hold = Hold(Arc::clone(&self.held));
        let running = Arc::clone(&self.running);
        let cancel = cancel.clone();
        Some(tasks.spawn(async move {
            let _hold = hold;
            tokio::select! {
                () = cancel.cancelled() => None,
                output = async {
                    // The semaphore is never closed.
                    let _slot = running.acquire_owned().await.ok()?;
                    Some(work.await)
                } => output,
            }
        }))
    }

    /// Pieces of work started or waiting.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_full_lane_refuses_at_once_and_takes_work_again_when_it_drains() {
        let lane = Lane::new((2, 3));
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let (release, gate) = tokio::sync::watch::channel(false);
        let started = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..3 {
            let mut gate = gate.clone();
            let started = Arc::clone(&started);
            let handle = lane.try_spawn(&tasks, &cancel, async move {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = gate.wait_for(|open| *open).await;
            });
            handles.push(handle.expect("room in the lane"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2, "two run, one waits");
        assert!(
            lane.try_spawn(&tasks, &cancel, async {}).is_none(),
            "a fourth is refused"
        );
        release.send(true).unwrap();
        for handle in handles {
            assert_eq!(handle.await.unwrap(), Some(()));
        }
        assert_eq!(lane.held(), 0);
        let again = lane.try_spawn(&tasks, &cancel, async { 7 }).unwrap();
        assert_eq!(again.await.unwrap(), Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_work_gives_its_hold_back() {
        let lane = Lane::new((1, 1));
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let hung = lane
            .try_spawn(&tasks, &cancel, futures::future::pending::<()>())
            .unwrap();
        assert!(lane.try_spawn(&tasks, &cancel, async {}).is_none());
        cancel.cancel();
        assert_eq!(hung.await.unwrap(), None);
        assert_eq!(lane.held(), 0);
    }
}
