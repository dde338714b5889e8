//! One connection per address (STYLE.md 7): a single dial per address however
//! many callers wait, re-dial on demand after a loss with backoff, and
//! generation-stamped invalidation so that a stale invalidation is a no-op.
//!
//! Every request asks the cache for its connection, so an open one is found
//! under one short lock; only a caller that finds none takes the dial path
//! (kept out of the caller's future, which it would otherwise make several
//! times larger).
//!
//! A dial runs as a task of its own, bounded by the connect timeout, and its
//! callers wait for its shared outcome. A caller that gives up first (its
//! request timeout is usually shorter than what is left of a connect to a
//! host that drops packets) does not cut the dial short: its outcome is
//! recorded all the same, so a failed one starts the backoff and the calls
//! after it fail at once instead of each waiting out a dial of its own.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::Backoff;
use crate::connection::{Connection, ConnectionConfig, InboundFactory};
use crate::error::{RemotingError, Result};
use crate::transport::Transport;

/// Why calls fail after the client shut down.
const SHUT_DOWN: &str = "client shut down";
/// Why a dial that never ended failed.
const INTERRUPTED: &str = "dial interrupted (the client shut down, or the dial's runtime stopped)";

/// Identifies one dial's connection in the cache; see
/// [`RemotingClient::invalidate`](super::RemotingClient::invalidate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation(pub u64);

/// How to dial.
pub(crate) struct Dialer {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) connect_timeout: Duration,
    pub(crate) connection: ConnectionConfig,
    pub(crate) inbound: Option<InboundFactory>,
    pub(crate) backoff: Backoff,
}

/// The connection cache.
pub(crate) struct ConnectionCache {
    dialer: Dialer,
    /// `None` once shut down.
    slots: Mutex<Option<HashMap<String, Entry>>>,
    generations: AtomicU64,
}

/// One address in the cache.
#[derive(Default)]
struct Entry {
    slot: Arc<Slot>,
    /// The slot's open connection, published for the fast path: set and
    /// cleared under the slot's `state` lock, as `state.conn` is (or dropped
    /// with the whole map at shutdown).
    open: Option<(Connection, Generation)>,
}

/// One address. Its lock is never held across an `.await`.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        // No code path panics while holding the lock.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Default)]
struct SlotState {
    conn: Option<(Connection, Generation)>,
    /// The dial under way: its shared outcome, and its task (aborted at
    /// shutdown).
    dialing: Option<(Dial, AbortHandle)>,
    /// Set by shutdown: no dial starts, and a dial that ends keeps nothing.
    closed: bool,
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<DialFailure>,
}

/// What a dial ended with.
type DialOutcome = std::result::Result<(Connection, Generation), DialFailure>;

/// A dial's outcome, for every caller that waits for it.
type Dial = Shared<BoxFuture<'static, DialOutcome>>;

/// A failed dial, kept to answer the callers that come during the backoff.
#[derive(Clone)]
enum DialFailure {
    Refused(io::ErrorKind, String),
    TimedOut(Duration),
}

impl DialFailure {
    /// A dial that ended without an outcome: aborted at shutdown, or its
    /// task panicked or lost its runtime.
    fn interrupted() -> Self {
        DialFailure::Refused(io::ErrorKind::Interrupted, INTERRUPTED.to_owned())
    }

    fn to_error(&self, addr: &str) -> RemotingError {
        match self {
            DialFailure::Refused(kind, message) => RemotingError::Connect {
                addr: addr.to_owned(),
                source: io::Error::new(*kind, message.clone()),
            },
            DialFailure::TimedOut(after) => RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                after: *after,
            },
        }
    }
}

impl ConnectionCache {
    pub(crate) fn new(dialer: Dialer) -> Self {
        ConnectionCache {
            dialer,
            slots: Mutex::new(Some(HashMap::new())),
            generations: AtomicU64::new(0),
        }
    }

    fn slots(&self) -> MutexGuard<'_, Option<HashMap<String, Entry>>> {
        // No code path panics while holding the lock.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, addr: &str) -> Result<Arc<Slot>> {
        let mut slots = self.slots();
        let slots = slots.as_mut().ok_or_else(|| shut_down(addr))?;
        if let Some(entry) = slots.get(addr) {
            return Ok(Arc::clone(&entry.slot));
        }
        Ok(Arc::clone(&slots.entry(addr.to_owned()).or_default().slot))
    }

    /// Publishes (or, with `None`, withdraws) the open connection of `addr`
    /// for the fast path. Called with the slot's `state` locked.
    fn publish(&self, addr: &str, open: Option<(Connection, Generation)>) {
        if let Some(entry) = self.slots().as_mut().and_then(|slots| slots.get_mut(addr)) {
            entry.open = open;
        }
    }

    /// The open connection to `addr`, dialing when there is none.
    pub(crate) async fn get(self: &Arc<Self>, addr: &str) -> Result<(Connection, Generation)> {
        match self.open(addr)? {
            Some(open) => Ok(open),
            None => self.dialed(addr).await,
        }
    }

    /// The open connection to `addr` if there is one, without waiting.
    pub(crate) fn open(&self, addr: &str) -> Result<Option<(Connection, Generation)>> {
        let slots = self.slots();
        let slots = slots.as_ref().ok_or_else(|| shut_down(addr))?;
        Ok(slots
            .get(addr)
            .and_then(|entry| entry.open.as_ref())
            .filter(|(conn, _)| !conn.is_closed())
            .map(|(conn, generation)| (conn.clone(), *generation)))
    }

    /// The connection to `addr` when [`open`](Self::open) found none: the
    /// dial's outcome, or the last one's error while backing off.
    pub(crate) async fn dialed(self: &Arc<Self>, addr: &str) -> Result<(Connection, Generation)> {
        let dial = self.join_or_dial(addr)?;
        Box::pin(dial)
            .await
            .map_err(|failure| failure.to_error(addr))
    }

    /// When no open connection was published: the connection if one just
    /// opened, the last dial's error while backing off, or else the dial
    /// under way, started now if there is none.
    fn join_or_dial(
        self: &Arc<Self>,
        addr: &str,
    ) -> Result<futures::future::Either<futures::future::Ready<DialOutcome>, Dial>> {
        use futures::future::{Either, ready};
        let slot = self.slot(addr)?;
        let mut state = slot.state();
        if state.closed {
            return Err(shut_down(addr));
        }
        if let Some((conn, generation)) = &state.conn {
            if !conn.is_closed() {
                return Ok(Either::Left(ready(Ok((conn.clone(), *generation)))));
            }
            state.conn = None;
            self.publish(addr, None);
        }
        if let Some((dial, _)) = &state.dialing {
            return Ok(Either::Right(dial.clone()));
        }
        if let (Some(at), Some(failure)) = (state.retry_at, &state.last_failure) {
            if Instant::now() < at {
                // Backing off: fail fast with the last dial's error.
                return Err(failure.to_error(addr));
            }
        }
        let mut landing = Landing {
            cache: Arc::clone(self),
            slot: Arc::clone(&slot),
            addr: addr.to_owned(),
            landed: false,
        };
        let task = tokio::spawn(async move {
            let result = landing.cache.dial(&landing.addr).await;
            landing.land(result)
        });
        let abort = task.abort_handle();
        let dial = async move {
            task.await
                .unwrap_or_else(|_interrupted| Err(DialFailure::interrupted()))
        }
        .boxed()
        .shared();
        state.dialing = Some((dial.clone(), abort));
        Ok(Either::Right(dial))
    }

    fn record(
        &self,
        addr: &str,
        state: &mut SlotState,
        result: std::result::Result<Connection, DialFailure>,
    ) -> DialOutcome {
        match result {
            Ok(conn) if state.closed => {
                // Opened as the client shut down: nobody may use it.
                conn.close();
                Err(DialFailure::interrupted())
            }
            Ok(conn) => {
                let generation = Generation(self.generations.fetch_add(1, Ordering::Relaxed) + 1);
                *state = SlotState {
                    conn: Some((conn.clone(), generation)),
                    ..SlotState::default()
                };
                self.publish(addr, Some((conn.clone(), generation)));
                tracing::debug!(%addr, generation = generation.0, "connected");
                Ok((conn, generation))
            }
            Err(failure) => {
                state.failures = state.failures.saturating_add(1);
                let delay = self.dialer.backoff.delay(state.failures);
                state.retry_at = Some(Instant::now() + delay);
                state.last_failure = Some(failure.clone());
                let error = failure.to_error(addr);
                tracing::debug!(%addr, %error, retry_in = ?delay, "dial failed");
                Err(failure)
            }
        }
    }

    async fn dial(&self, addr: &str) -> std::result::Result<Connection, DialFailure> {
        let dialer = &self.dialer;
        let io = match tokio::time::timeout(dialer.connect_timeout, dialer.transport.connect(addr))
            .await
        {
            Ok(Ok(io)) => io,
            Ok(Err(error)) => return Err(DialFailure::Refused(error.kind(), error.to_string())),
            Err(_) => return Err(DialFailure::TimedOut(dialer.connect_timeout)),
        };
        Ok(match &dialer.inbound {
            Some(factory) => {
                Connection::with_inbound(io, addr, &dialer.connection, |conn| factory(conn))
            }
            None => Connection::new(io, addr, &dialer.connection),
        })
    }

    /// Drops and closes the connection to `addr` if it is still the one of
    /// `generation`. Returns whether it was; a stale invalidation is a no-op.
    pub(crate) fn invalidate(&self, addr: &str, generation: Generation, reason: &str) -> bool {
        let Ok(slot) = self.slot(addr) else {
            return false;
        };
        let mut state = slot.state();
        match &state.conn {
            Some((conn, current)) if *current == generation => {
                tracing::debug!(%addr, generation = generation.0, %reason, "connection invalidated");
                conn.close_because(reason);
                state.conn = None;
                self.publish(addr, None);
                true
            }
            _ => false,
        }
    }

    /// Forgets the connection to `addr` if it is still the one of
    /// `generation`, without closing it: the calls waiting on it keep
    /// waiting for their answers, and it closes once the last of them ends
    /// (as the last handle drops). The next call dials again. Returns
    /// whether it was forgotten.
    pub(crate) fn retire(&self, addr: &str, generation: Generation) -> bool {
        let Ok(slot) = self.slot(addr) else {
            return false;
        };
        let mut state = slot.state();
        match &state.conn {
            Some((_, current)) if *current == generation => {
                tracing::debug!(%addr, generation = generation.0, "connection retired");
                state.conn = None;
                self.publish(addr, None);
                true
            }
            _ => false,
        }
    }

    /// Closes every connection and refuses later calls; stops the dials
    /// under way; waits for the connections' tasks to end.
    pub(crate) async fn shutdown(&self) {
        let Some(slots) = self.slots().take() else {
            return;
        };
        let mut closing = Vec::new();
        for Entry { slot, .. } in slots.into_values() {
            let (conn, dialing) = {
                let mut state = slot.state();
                state.closed = true;
                (state.conn.take(), state.dialing.take())
            };
            if let Some((_, abort)) = dialing {
                abort.abort();
            }
            if let Some((conn, _)) = conn {
                conn.close();
                closing.push(conn);
            }
        }
        // Together: each may take a moment to tell its peer goodbye.
        futures::future::join_all(closing.iter().map(Connection::closed)).await;
    }
}

/// A dial task's end: the outcome recorded in the slot, and the slot free
/// for the next dial. Dropped without landing (the task aborted, panicked,
/// or lost its runtime), it records a failed dial, so that the address is
/// dialled again after the backoff rather than forever joining a dial that
/// ended without an answer.
struct Landing {
    cache: Arc<ConnectionCache>,
    slot: Arc<Slot>,
    addr: String,
    landed: bool,
}

impl Landing {
    fn land(&mut self, result: std::result::Result<Connection, DialFailure>) -> DialOutcome {
        self.landed = true;
        let mut state = self.slot.state();
        state.dialing = None;
        self.cache.record(&self.addr, &mut state, result)
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if !self.landed {
            let _ = self.land(Err(DialFailure::interrupted()));
        }
    }
}

fn shut_down(addr: &str) -> RemotingError {
    RemotingError::ConnectionClosed {
        addr: addr.to_owned(),
        reason: SHUT_DOWN.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::InboundService;
    use crate::server::Server;
    use crate::transport::memory::MemoryNetwork;

    fn cache(net: &MemoryNetwork) -> Arc<ConnectionCache> {
        Arc::new(ConnectionCache::new(Dialer {
            transport: Arc::new(net.clone()),
            connect_timeout: Duration::from_secs(1),
            connection: ConnectionConfig::default(),
            inbound: None,
            backoff: Backoff::default(),
        }))
    }

    fn published(cache: &ConnectionCache, addr: &str) -> Option<Generation> {
        let slots = cache.slots();
        let entry = slots.as_ref()?.get(addr)?;
        entry.open.as_ref().map(|(_, generation)| *generation)
    }

    #[tokio::test(start_paused = true)]
    async fn the_published_connection_follows_dials_and_invalidations() {
        let net = MemoryNetwork::new();
        let _server = Server::spawn(
            net.bind("a:1").unwrap_or_else(|e| panic!("{e}")),
            ConnectionConfig::default(),
            |_: &Connection| InboundService::new(tower::service_fn(|_| async { unreachable!() })),
        );
        let cache = cache(&net);
        assert_eq!(published(&cache, "a:1"), None);
        let (_, first) = cache.get("a:1").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(published(&cache, "a:1"), Some(first));
        assert!(cache.invalidate("a:1", first, "test"));
        assert_eq!(
            published(&cache, "a:1"),
            None,
            "withdrawn with the connection"
        );
        let (_, second) = cache.get("a:1").await.unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(first, second);
        assert_eq!(published(&cache, "a:1"), Some(second));
        cache.shutdown().await;
        assert!(cache.get("a:1").await.is_err(), "refused after shutdown");
    }
}
