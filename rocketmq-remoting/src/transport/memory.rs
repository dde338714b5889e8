//! An in-process network: named listeners joined to dialers by
//! `tokio::io::duplex` pipes. No sockets and no timers, so it is deterministic
//! under `tokio::time::pause` on a current-thread runtime.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::{Accepted, BoxedIo, Listener, Transport};

/// Bytes buffered in each direction of a memory stream.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Dials waiting for `accept` before further dials wait too (a listen backlog).
const BACKLOG: usize = 128;

/// A registry of named in-process listeners; also the [`Transport`] that dials
/// them. Clones share the registry.
///
/// Addresses are arbitrary strings such as `"broker-a:10911"`. Dialing an
/// address nobody listens on fails with [`io::ErrorKind::ConnectionRefused`].
#[derive(Clone, Default)]
pub struct MemoryNetwork {
    inner: Arc<Registry>,
}

#[derive(Default)]
struct Registry {
    listeners: Mutex<HashMap<String, Registration>>,
    next_id: AtomicU64,
}

struct Registration {
    id: u64,
    backlog: mpsc::Sender<Accepted>,
}

impl Registry {
    fn listeners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Registration>> {
        // The map is always consistent: no code path panics while holding it.
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut addrs: Vec<String> = self.inner.listeners().keys().cloned().collect();
        addrs.sort();
        f.debug_struct("MemoryNetwork")
            .field("listeners", &addrs)
            .finish()
    }
}

impl MemoryNetwork {
    /// An empty network.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `addr`. Fails with [`io::ErrorKind::AddrInUse`] when a live
    /// listener already holds it. Dropping the listener frees the address.
    pub fn bind(&self, addr: &str) -> io::Result<MemoryListener> {
        let mut listeners = self.inner.listeners();
        if listeners.get(addr).is_some_and(|r| !r.backlog.is_closed()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("memory address {addr} is in use"),
            ));
        }
        let id = self.inner.next_id();
        let (backlog, incoming) = mpsc::channel(BACKLOG);
        listeners.insert(addr.to_owned(), Registration { id, backlog });
        Ok(MemoryListener {
            registry: Arc::clone(&self.inner),
            addr: addr.to_owned(),
            id,
            incoming,
        })
    }

    /// Whether a listener is bound to `addr`.
    pub fn is_bound(&self, addr: &str) -> bool {
        self.inner
            .listeners()
            .get(addr)
            .is_some_and(|r| !r.backlog.is_closed())
    }

    async fn dial(&self, addr: &str) -> io::Result<BoxedIo> {
        let backlog = self
            .inner
            .listeners()
            .get(addr)
            .map(|r| r.backlog.clone())
            .ok_or_else(|| refused(addr))?;
        let (client_end, server_end) = tokio::io::duplex(PIPE_CAPACITY);
        let peer_addr = format!("memory-client-{}", self.inner.next_id());
        let accepted = Accepted {
            io: Box::new(server_end),
            peer_addr,
        };
        backlog.send(accepted).await.map_err(|_| refused(addr))?;
        Ok(Box::new(client_end))
    }
}

fn refused(addr: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionRefused,
        format!("nothing listens on memory address {addr}"),
    )
}

impl Transport for MemoryNetwork {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxedIo>> {
        self.dial(addr).boxed()
    }
}

/// A listener on a [`MemoryNetwork`]. Dropping it frees the address; dials
/// that were not accepted yet see their stream closed.
pub struct MemoryListener {
    registry: Arc<Registry>,
    addr: String,
    id: u64,
    incoming: mpsc::Receiver<Accepted>,
}

impl std::fmt::Debug for MemoryListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryListener")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Listener for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        async move {
            self.incoming.recv().await.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotConnected, "memory listener unbound")
            })
        }
        .boxed()
    }

    fn local_addr(&self) -> String {
        self.addr.clone()
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut listeners = self.registry.listeners();
        if listeners.get(&self.addr).is_some_and(|r| r.id == self.id) {
            listeners.remove(&self.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn dial_reaches_the_listener_and_bytes_flow_both_ways() {
        let net = MemoryNetwork::new();
        let mut listener = net.bind("broker-a:10911").unwrap();
        let mut client = net.connect("broker-a:10911").await.unwrap();
        let mut accepted = listener.accept().await.unwrap();
        assert!(accepted.peer_addr.starts_with("memory-client-"));

        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        accepted.io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        accepted.io.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_or_dropped_address_is_refused() {
        let net = MemoryNetwork::new();
        let err = net.connect("nowhere:1").await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);

        let listener = net.bind("broker-a:10911").unwrap();
        assert!(net.is_bound("broker-a:10911"));
        drop(listener);
        assert!(!net.is_bound("broker-a:10911"));
        let err = net.connect("broker-a:10911").await.err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test(start_paused = true)]
    async fn address_in_use_until_the_listener_drops() {
        let net = MemoryNetwork::new();
        let first = net.bind("ns:9876").unwrap();
        let err = net.bind("ns:9876").err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(first);
        let _second = net.bind("ns:9876").unwrap();
        assert!(net.is_bound("ns:9876"));
    }
}
