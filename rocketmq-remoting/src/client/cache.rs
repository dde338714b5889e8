//! One connection per address (STYLE.md 7): a single dial per address however
//! many callers wait, re-dial on demand after a loss with backoff, and
//! generation-stamped invalidation so that a stale invalidation is a no-op.
//!
//! Every request asks the cache for its connection, so an open one is found
//! under one short lock, without waiting on the address's dial lock; only a
//! caller that finds none takes the dial path (kept out of the caller's
//! future, which it would otherwise make several times larger).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use foldhash::{HashMap, HashMapExt};
use tokio::time::Instant;

use super::Backoff;
use crate::connection::{Connection, ConnectionConfig, InboundFactory};
use crate::error::{RemotingError, Result};
use crate::transport::Transport;

/// Why calls fail after the client shut down.
const SHUT_DOWN: &str = "client shut down";

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

/// One address: its dial attempts are serialized by `state`'s lock.
#[derive(Default)]
struct Slot {
    /// Dials that ended (read without the lock to spot a dial that failed
    /// while a caller waited for the lock).
    dials: AtomicU64,
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<(Connection, Generation)>,
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<DialFailure>,
}

/// A failed dial, kept to answer the callers that waited for it.
#[derive(Clone)]
enum DialFailure {
    Refused(io::ErrorKind, String),
    TimedOut(Duration),
}

impl DialFailure {
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
    pub(crate) async fn get(&self, addr: &str) -> Result<(Connection, Generation)> {
        {
            let slots = self.slots();
            let slots = slots.as_ref().ok_or_else(|| shut_down(addr))?;
            if let Some((conn, generation)) = slots.get(addr).and_then(|entry| entry.open.as_ref())
            {
                if !conn.is_closed() {
                    return Ok((conn.clone(), *generation));
                }
            }
        }
        Box::pin(self.get_or_dial(addr)).await
    }

    /// [`get`](Self::get) when no open connection was published: waits for
    /// the address's dial lock, then dials unless someone else just did.
    async fn get_or_dial(&self, addr: &str) -> Result<(Connection, Generation)> {
        let slot = self.slot(addr)?;
        let dials_seen = slot.dials.load(Ordering::Acquire);
        let mut state = slot.state.lock().await;
        if let Some((conn, generation)) = &state.conn {
            if !conn.is_closed() {
                return Ok((conn.clone(), *generation));
            }
            state.conn = None;
            self.publish(addr, None);
        }
        if slot.dials.load(Ordering::Acquire) != dials_seen {
            // A dial failed while this caller waited: share its outcome.
            if let Some(failure) = &state.last_failure {
                return Err(failure.to_error(addr));
            }
        }
        if let (Some(at), Some(failure)) = (state.retry_at, &state.last_failure) {
            if Instant::now() < at {
                // Backing off: fail fast with the last dial's error.
                return Err(failure.to_error(addr));
            }
        }
        let result = self.dial(addr).await;
        slot.dials.fetch_add(1, Ordering::Release);
        self.record(addr, &mut state, result)
    }

    fn record(
        &self,
        addr: &str,
        state: &mut SlotState,
        result: std::result::Result<Connection, DialFailure>,
    ) -> Result<(Connection, Generation)> {
        match result {
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
                Err(error)
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
    pub(crate) async fn invalidate(
        &self,
        addr: &str,
        generation: Generation,
        reason: &str,
    ) -> bool {
        let Ok(slot) = self.slot(addr) else {
            return false;
        };
        let mut state = slot.state.lock().await;
        match &state.conn {
            Some((conn, current)) if *current == generation => {
                tracing::debug!(%addr, generation = generation.0, %reason, "connection invalidated");
                conn.close();
                state.conn = None;
                self.publish(addr, None);
                true
            }
            _ => false,
        }
    }

    /// Closes every connection and refuses later calls; waits for the
    /// connections' tasks to end.
    pub(crate) async fn shutdown(&self) {
        let Some(slots) = self.slots().take() else {
            return;
        };
        for Entry { slot, .. } in slots.into_values() {
            let conn = slot.state.lock().await.conn.take();
            if let Some((conn, _)) = conn {
                conn.close();
                conn.closed().await;
            }
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

    fn cache(net: &MemoryNetwork) -> ConnectionCache {
        ConnectionCache::new(Dialer {
            transport: Arc::new(net.clone()),
            connect_timeout: Duration::from_secs(1),
            connection: ConnectionConfig::default(),
            inbound: None,
            backoff: Backoff::default(),
        })
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
        assert!(cache.invalidate("a:1", first, "test").await);
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
