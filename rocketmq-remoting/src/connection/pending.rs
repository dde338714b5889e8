//! The table of calls waiting for their responses, keyed by opaque
//! (PROTOCOL.md §2.6). Bounded; closing it fails every waiter at once and
//! makes later registrations fail fast.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use foldhash::{HashMap, HashMapExt};
use tokio::sync::oneshot;

use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// The opaque counter, process-wide like Java's; it wraps to negative values.
static NEXT_OPAQUE: AtomicI32 = AtomicI32::new(0);

type Waiter = oneshot::Sender<Result<RemotingCommand>>;

/// The pending calls of one connection.
#[derive(Debug)]
pub(crate) struct PendingTable {
    peer: Arc<str>,
    limit: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
enum State {
    Open(HashMap<i32, Waiter>),
    Closed(String),
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
            state: Mutex::new(State::Open(HashMap::new())),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a call under a fresh opaque.
    pub(crate) fn register(self: &Arc<Self>) -> Result<PendingCall> {
        let mut state = self.state();
        let calls = match &mut *state {
            State::Open(calls) => calls,
            State::Closed(reason) => return Err(self.closed_error(reason)),
        };
        if calls.len() >= self.limit {
            return Err(RemotingError::TooManyPending {
                addr: self.peer.to_string(),
                limit: self.limit,
            });
        }
        let opaque = loop {
            // Skip an opaque still in use after the counter wrapped.
            let candidate = next_opaque();
            if !calls.contains_key(&candidate) {
                break candidate;
            }
        };
        let (tx, response) = oneshot::channel();
        calls.insert(opaque, tx);
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
                    let waiters = std::mem::take(calls);
                    *state = State::Closed(reason.to_owned());
                    waiters
                }
            }
        };
        for waiter in waiters.into_values() {
            let _ = waiter.send(Err(self.closed_error(reason)));
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
            State::Open(calls) => calls.len(),
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
            State::Open(calls) => calls.remove(&opaque),
            State::Closed(_) => None,
        }
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

    #[tokio::test]
    async fn response_reaches_its_caller_and_clears_the_entry() {
        let table = table(8);
        let call = table.register().unwrap();
        assert_eq!(table.len(), 1);
        let response = RemotingCommand::response(ResponseCode::SUCCESS, call.opaque());
        assert!(table.complete(response.clone()).is_none());
        assert_eq!(call.response().await.unwrap(), response);
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
        let call = table.register().unwrap();
        let opaque = call.opaque();
        drop(call);
        assert_eq!(table.len(), 0);
        let late = RemotingCommand::response(ResponseCode::SUCCESS, opaque);
        assert!(table.complete(late).is_some());
    }

    #[test]
    fn limit_is_enforced() {
        let table = table(2);
        let _a = table.register().unwrap();
        let _b = table.register().unwrap();
        let err = table.register().unwrap_err();
        assert!(
            matches!(err, RemotingError::TooManyPending { limit: 2, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn close_fails_everyone_and_later_calls() {
        let table = table(8);
        let a = table.register().unwrap();
        let b = table.register().unwrap();
        table.close("peer hung up");
        for call in [a, b] {
            let err = call.response().await.unwrap_err();
            assert!(
                matches!(&err, RemotingError::ConnectionClosed { reason, .. } if reason == "peer hung up"),
                "{err}"
            );
        }
        assert!(matches!(
            table.register(),
            Err(RemotingError::ConnectionClosed { .. })
        ));
        table.close("second reason is ignored");
        assert_eq!(table.closed_reason().as_deref(), Some("peer hung up"));
    }
}
