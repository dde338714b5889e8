//! A small remoting server (for the testkit): accepts streams from a
//! [`Listener`], runs a [`Connection`] per stream with a per-connection
//! handler, and keeps the connections so it can send requests to its clients
//! (e.g. NOTIFY_CONSUMER_IDS_CHANGED) and close them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::connection::{Connection, ConnectionConfig, InboundFactory, InboundService};
use crate::transport::{Accepted, Listener};

/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A running server. Dropping it stops accepting and closes its connections;
/// [`shutdown`](Self::shutdown) does the same and waits for every task.
pub struct Server {
    shared: Arc<Shared>,
    _stop_on_drop: DropGuard,
}

struct Shared {
    local_addr: String,
    config: ConnectionConfig,
    factory: InboundFactory,
    cancel: CancellationToken,
    tasks: TaskTracker,
    connections: Mutex<HashMap<u64, Connection>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.shared.local_addr)
            .field("connections", &self.shared.connections().len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts accepting from `listener`. Each accepted stream gets a
    /// [`Connection`] whose peer requests go to the handler `factory` makes for
    /// it (the factory receives the connection: its peer address, and a handle
    /// for sending requests to that client; keep a
    /// [`WeakConnection`](crate::connection::WeakConnection)).
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn spawn(
        listener: impl Listener,
        config: ConnectionConfig,
        factory: impl Fn(&Connection) -> InboundService + Send + Sync + 'static,
    ) -> Server {
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            local_addr: listener.local_addr(),
            config,
            factory: Arc::new(factory),
            cancel: cancel.clone(),
            tasks: TaskTracker::new(),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        shared
            .tasks
            .spawn(accept_loop(Arc::clone(&shared), listener));
        Server {
            shared,
            _stop_on_drop: cancel.drop_guard(),
        }
    }

    /// The address clients dial.
    pub fn local_addr(&self) -> &str {
        &self.shared.local_addr
    }

    /// The open connections.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.connections().values().cloned().collect()
    }

    /// Stops accepting, closes every connection and waits for all tasks.
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
    }
}

impl Shared {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, Connection>> {
        // No code path panics while holding the lock.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a connection over an accepted stream, tracked until it closes.
    fn adopt(self: &Arc<Self>, accepted: Accepted) {
        let Accepted { io, peer_addr } = accepted;
        tracing::debug!(server = %self.local_addr, peer = %peer_addr, "accepted");
        let conn =
            Connection::with_inbound(io, peer_addr, &self.config, |conn| (self.factory)(conn));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.connections().insert(id, conn.clone());
        self.tasks.spawn(watch(Arc::clone(self), id, conn));
    }
}

async fn accept_loop(shared: Arc<Shared>, mut listener: impl Listener) {
    loop {
        let accepted = tokio::select! {
            () = shared.cancel.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(accepted) => shared.adopt(accepted),
            Err(error) => {
                tracing::warn!(server = %shared.local_addr, %error, "accept failed");
                tokio::select! {
                    () = shared.cancel.cancelled() => break,
                    () = tokio::time::sleep(ACCEPT_RETRY) => {}
                }
            }
        }
    }
    tracing::debug!(server = %shared.local_addr, "stopped accepting");
}

/// Forgets a connection once it closes; closes it when the server stops.
async fn watch(shared: Arc<Shared>, id: u64, conn: Connection) {
    tokio::select! {
        () = conn.closed() => {}
        () = shared.cancel.cancelled() => {
            conn.close();
            conn.closed().await;
        }
    }
    shared.connections().remove(&id);
}
