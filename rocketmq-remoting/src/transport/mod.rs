//! Pluggable byte transports: how a [`Connection`](crate::connection::Connection)
//! gets its stream.
//!
//! A [`Transport`] dials an address; a [`Listener`] accepts. [`tcp`] is the real
//! network; [`memory`] is an in-process network of named listeners that is
//! deterministic under `tokio::time::pause`, used by tests and the testkit.

use std::io;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

pub mod memory;
pub mod tcp;
#[cfg(feature = "tls")]
pub mod tls;

pub use memory::{MemoryListener, MemoryNetwork};
pub use tcp::{TcpListener, TcpTransport};
#[cfg(feature = "tls")]
pub use tls::{TlsConfigError, TlsListener, TlsTransport, TlsTransportBuilder};

/// A bidirectional byte stream a connection can run over.
///
/// Implemented for every `AsyncRead + AsyncWrite + Send + Unpin + 'static` type.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed byte stream, what transports and listeners hand out.
pub type BoxedIo = Box<dyn Io>;

/// Dials addresses. The client holds an `Arc<dyn Transport>`.
///
/// Addresses are strings such as `"10.0.0.1:10911"` (TCP) or `"broker-a:10911"`
/// (memory). Timeouts are the caller's business.
pub trait Transport: Send + Sync + 'static {
    /// Opens a stream to `addr`. A refused dial is
    /// [`io::ErrorKind::ConnectionRefused`].
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxedIo>>;
}

/// One stream accepted by a [`Listener`].
pub struct Accepted {
    /// The stream.
    pub io: BoxedIo,
    /// The peer's address, for logs and errors.
    pub peer_addr: String,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("peer_addr", &self.peer_addr)
            .finish_non_exhaustive()
    }
}

/// Accepts streams, the server side of a [`Transport`].
pub trait Listener: Send + 'static {
    /// Waits for the next incoming stream.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>>;

    /// The address clients dial to reach this listener.
    fn local_addr(&self) -> String;
}
