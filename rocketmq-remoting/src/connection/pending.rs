//! The table of calls waiting for their responses, keyed by opaque
//! (PROTOCOL.md §2.6). Bounded; closing it fails every waiter at once and
//! makes later registrations fail fast.
//!
//! A call may be due by a deadline: the table fails it with
//! [`RemotingError::Timeout`] then, woken by [`watch_deadlines`] (run by the
//! connection's reader), so a call needs no timer of its own. The watch
//! sleeps until the earliest deadline it knows of and is woken sooner only
//! when a call comes due before that; calls answered in time cost it
//! nothing, so under load it wakes about once per timeout.

use std::convert::Infallible;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// The opaque counter, process-wide like Java's; it wraps to negative values.
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

type Waiter = oneshot::Sender<Result<RemotingCommand>>;

/// When a call times out: its deadline, and the timeout it was given (which
/// its error reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) at: Instant,
    pub(crate) after: Duration,
}

/// The pending calls of one connection.
#[derive(Debug)]
pub(crate) struct PendingTable {
    peer: Arc<str>,
    limit: usize,
    state: Mutex<State>,
    /// Tells [`watch_deadlines`] that a call came due before the instant it
    /// sleeps until.
    sooner: Notify,
}

#[derive(Debug)]
enum State {
    Open(Calls),
    Closed(String),
}

#[derive(Debug)]
struct Calls {
    waiting: HashMap<i32, Call>,
    /// What the deadline watch sleeps until: no later than the earliest
    /// deadline of the calls (earlier once those calls are answered).
    watched_until: Option<Instant>,
}

/// A waiting call: where its answer goes, and when it is due.
#[derive(Debug)]
struct Call {
    waiter: Waiter,
    due: Option<Due>,
}

/// A registered call: receives the response, and unregisters itself when
/// dropped (the caller timed out or gave up).
#[derive(Debug)]
pub(crate) struct PendingCall {
    table: Arc<PendingTable>,
    opaque: i32,
    response: oneshot::Receiver<Result<RemotingCommand>>,
}

impl PendingTable {
    /// An empty table holding at most `limit` calls for the connection to `peer`.
    pub(crate) fn new(peer: Arc<str>, limit: usize) -> Self {
        PendingTable {
            peer,
            limit,
            state: Mutex::new(State::Open(Calls {
                waiting: HashMap::new(),
                watched_until: None,
            })),
            sooner: Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call under a fresh opaque, failed with a timeout at
    /// `due` if it has no answer by then.
    pub(crate) fn register(self: &Arc<Self>, due: Option<Due>) -> Result<PendingCall> {
        let mut state = self.state();
        let calls = match &mut *state {
            State::Open(calls) => calls,
            State::Closed(reason) => return Err(self.closed_error(reason)),
        };
        if calls.waiting.len() >= self.limit {
            return Err(RemotingError::TooManyPending {
                addr: self.peer.to_string(),
                limit: self.limit,
            });
        }
        let opaque = loop {
            // Skip an opaque still in use after the counter wrapped.
            let candidate = next_opaque();
            if !calls.waiting.contains_key(&candidate) {
                break candidate;
            }
        };
        let (waiter, response) = oneshot::channel();
        calls.waiting.insert(opaque, Call { waiter, due });
        // The watch needs waking only for a call due before it wakes anyway.
        let sooner = due.is_some_and(|due| calls.watched_until.is_none_or(|at| due.at < at));
        if sooner {
            calls.watched_until = due.map(|due| due.at);
        }
        drop(state);
        if sooner {
            self.sooner.notify_one();
        }
        Ok(PendingCall {
            table: Arc::clone(self),
            opaque,
            response,
        })
    }

    /// Hands `response` to the call waiting for its opaque. Returns it back when
    /// no call waits (unknown opaque, or the caller already gave up).
    pub(crate) fn complete(&self, response: RemotingCommand) -> Option<RemotingCommand> {
        let waiter = self.take(response.opaque);
        match waiter {
            Some(waiter) => waiter.send(Ok(response)).err().and_then(Result::ok),
            None => Some(response),
        }
    }

    /// Fails the call waiting for `opaque` (e.g. its request could not be encoded).
    pub(crate) fn fail(&self, opaque: i32, error: RemotingError) {
        if let Some(waiter) = self.take(opaque) {
            let _ = waiter.send(Err(error));
        }
    }

    /// Closes the table: every waiting call fails with
    /// [`RemotingError::ConnectionClosed`] carrying `reason`, and so does every
    /// later registration. Only the first close counts.
    pub(crate) fn close(&self, reason: &str) {
        let waiters = {
            let mut state = self.state();
            match &mut *state {
                State::Closed(_) => return,
                State::Open(calls) => {
                    let waiters = std::mem::take(&mut calls.waiting);
                    *state = State::Closed(reason.to_owned());
                    waiters
                }
            }
        };
        for call in waiters.into_values() {
            let _ = call.waiter.send(Err(self.closed_error(reason)));
        }
    }

    /// Fails the calls due by `now` with a timeout, and returns the instant
    /// to wake at for the next one (`None` when no call is due ever).
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut expired = Vec::new();
        let next = {
            let mut state = self.state();
            let State::Open(calls) = &mut *state else {
                return None;
            };
            let due_now: Vec<i32> = (calls.waiting.iter())
                .filter(|(_, call)| call.due.is_some_and(|due| due.at <= now))
                .map(|(&opaque, _)| opaque)
                .collect();
            for opaque in due_now {
                if let Some(Call {
                    waiter,
                    due: Some(due),
                }) = calls.waiting.remove(&opaque)
                {
                    expired.push((due, waiter));
                }
            }
            let next = calls
                .waiting
                .values()
                .filter_map(|call| call.due)
                .map(|due| due.at)
                .min();
            calls.watched_until = next;
            next
        };
        for (due, waiter) in expired {
            let _ = waiter.send(Err(RemotingError::Timeout {
                addr: self.peer.to_string(),
                after: due.after,
            }));
        }
        next
    }

    /// The instant the deadline watch should wake at, if any call is due.
    fn watched_until(&self) -> Option<Instant> {
        match &*self.state() {
            State::Open(calls) => calls.watched_until,
            State::Closed(_) => None,
        }
    }

    /// Why the table closed, if it did.
    pub(crate) fn closed_reason(&self) -> Option<String> {
        match &*self.state() {
            State::Open(_) => None,
            State::Closed(reason) => Some(reason.clone()),
        }
    }

    /// How many calls wait.
    pub(crate) fn len(&self) -> usize {
        match &*self.state() {
            State::Open(calls) => calls.waiting.len(),
            State::Closed(_) => 0,
        }
    }

    /// The error for a call on the closed connection.
    pub(crate) fn closed_error(&self, reason: &str) -> RemotingError {
        RemotingError::ConnectionClosed {
            addr: self.peer.to_string(),
            reason: reason.to_owned(),
        }
    }

    fn take(&self, opaque: i32) -> Option<Waiter> {
        match &mut *self.state() {
            State::Open(calls) => calls.waiting.remove(&opaque).map(|call| call.waiter),
            State::Closed(_) => None,
        }
    }
}

/// Fails each call of `table` that is due, at its deadline; never returns
/// (the connection's reader runs it beside its reading, and drops it when
/// the connection closes, which fails the calls left).
pub(crate) async fn watch_deadlines(table: &PendingTable) -> Infallible {
    let mut until = table.watched_until();
    loop {
        until = match until {
            Some(at) => tokio::select! {
                () = tokio::time::sleep_until(at) => table.expire(Instant::now()),
                () = table.sooner.notified() => table.watched_until(),
            },
            None => {
                table.sooner.notified().await;
                table.watched_until()
            }
        };
    }
}

impl PendingCall {
    /// The opaque to send the request with.
    pub(crate) fn opaque(&self) -> i32 {
        self.opaque
    }

    /// Waits for the response (or the connection's failure).
    pub(crate) async fn response(mut self) -> Result<RemotingCommand> {
        match (&mut self.response).await {
            Ok(result) => result,
            // The table dropped the waiter without an answer: it was torn down.
            Err(_) => {
                let reason = self
                    .table
                    .closed_reason()
                    .unwrap_or_else(|| "connection dropped".to_owned());
                Err(self.table.closed_error(&reason))
            }
        }
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        // A no-op when the response already arrived: the entry is gone.
        self.table.take(self.opaque);
    }
}

pub(crate) fn next_opaque() -> i32 {
    NEXT_OPAQUE.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;

    fn table(limit: usize) -> Arc<PendingTable> {
        Arc::new(PendingTable::new("peer:1".into(), limit))
    }

    /// Answers `call` through `table`; the caller gets that very response.
    async fn answer(table: &PendingTable, call: PendingCall) {
        let response = RemotingCommand::response(ResponseCode::SUCCESS, call.opaque());
        assert!(table.complete(response.clone()).is_none());
        assert_eq!(call.response().await.unwrap(), response);
    }

    #[tokio::test]
    async fn response_reaches_its_caller_and_clears_the_entry() {
        let table = table(8);
        let call = table.register(None).unwrap();
        assert_eq!(table.len(), 1);
        answer(&table, call).await;
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn unknown_opaque_is_handed_back() {
        let table = table(8);
        let stray = RemotingCommand::response(ResponseCode::SUCCESS, 123_456);
        assert_eq!(table.complete(stray.clone()), Some(stray));
    }

    #[test]
    fn dropping_a_call_removes_its_entry() {
        let table = table(8);
        let call = table.register(None).unwrap();
        let opaque = call.opaque();
        drop(call);
        assert_eq!(table.len(), 0);
        let late = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        assert!(table.complete(late).is_some());
    }

    #[test]
    fn limit_is_enforced() {
        let table = table(2);
        let _a = table.register(None).unwrap();
        let _b = table.register(None).unwrap();
        let err = table.register(None).unwrap_err();
        assert!(
            matches!(err, RemotingError::TooManyPending { limit: 2, .. }),
            "{err}"
        );
    }

    fn due_in(secs: u64) -> Option<Due> {
        let after = Duration::from_secs(secs);
        Some(Due {
            at: Instant::now() + after,
            after,
        })
    }

    /// The table with its deadline watch running, as a connection's reader
    /// runs it.
    fn watched(limit: usize) -> Arc<PendingTable> {
        let table = table(limit);
        let watched = Arc::clone(&table);
        tokio::spawn(async move { watch_deadlines(&watched).await });
        table
    }

    /// When `call` is answered, and how.
    async fn outcome(call: PendingCall) -> (Duration, Result<RemotingCommand>) {
        let start = Instant::now();
        let result = call.response().await;
        (start.elapsed(), result)
    }

    fn timed_out_after(result: &Result<RemotingCommand>, secs: u64) -> bool {
        matches!(result, Err(RemotingError::Timeout { after, .. }) if *after == Duration::from_secs(secs))
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_not_answered_by_its_deadline_fails_with_a_timeout_then() {
        let table = watched(8);
        let call = table.register(due_in(3)).unwrap();
        let (waited, result) = outcome(call).await;
        assert_eq!(waited, Duration::from_secs(3));
        assert!(timed_out_after(&result, 3), "{result:?}");
        assert_eq!(table.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_due_sooner_than_the_others_is_failed_at_its_own_deadline() {
        let table = watched(8);
        let late = table.register(due_in(30)).unwrap();
        tokio::task::yield_now().await; // the watch sleeps until the late one
        let soon = table.register(due_in(1)).unwrap();
        let (waited, result) = outcome(soon).await;
        assert_eq!(waited, Duration::from_secs(1));
        assert!(timed_out_after(&result, 1), "{result:?}");
        let (waited, result) = outcome(late).await;
        assert_eq!(waited, Duration::from_secs(29));
        assert!(timed_out_after(&result, 30), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn answered_calls_leave_the_watch_to_time_out_the_next_one() {
        let table = watched(8);
        for _ in 0..3 {
            let call = table.register(due_in(3)).unwrap();
            answer(&table, call).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        // The watch wakes at the first call's deadline, finds nothing due,
        // and waits for this one's.
        let call = table.register(due_in(3)).unwrap();
        let (waited, result) = outcome(call).await;
        assert_eq!(waited, Duration::from_secs(3));
        assert!(timed_out_after(&result, 3), "{result:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_without_a_deadline_waits_for_its_answer() {
        let table = watched(8);
        let call = table.register(None).unwrap();
        let due = table.register(due_in(1)).unwrap();
        assert!(timed_out_after(&outcome(due).await.1, 1));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(table.len(), 1);
        answer(&table, call).await;
    }

    #[tokio::test]
    async fn close_fails_everyone_and_later_calls() {
        let table = table(8);
        let a = table.register(None).unwrap();
        let b = table.register(None).unwrap();
        table.close("peer hung up");
        for call in [a, b] {
            let err = call.response().await.unwrap_err();
            assert!(
                matches!(&err, RemotingError::ConnectionClosed { reason, .. } if reason == "peer hung up"),
                "{err}"
            );
        }
        assert!(matches!(
            table.register(None),
            Err(RemotingError::ConnectionClosed { .. })
        ));
        table.close("second reason is ignored");
        assert_eq!(table.closed_reason().as_deref(), Some("peer hung up"));
    }
}
