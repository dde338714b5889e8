//! TCP: the real network.

use std::io;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{Accepted, BoxedIo, Listener, Transport};

/// Dials TCP with `TCP_NODELAY` set (frames are small and latency matters).
///
/// The connect timeout is applied by the caller
/// ([`RemotingClient`](crate::client::RemotingClient) does).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpTransport;

impl TcpTransport {
    /// A TCP transport.
    pub fn new() -> Self {
        TcpTransport
    }
}

impl Transport for TcpTransport {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, io::Result<BoxedIo>> {
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as BoxedIo)
        }
        .boxed()
    }
}

/// A bound TCP listener; accepted streams have `TCP_NODELAY` set.
#[derive(Debug)]
pub struct TcpListener {
    inner: tokio::net::TcpListener,
    local_addr: String,
}

impl TcpListener {
    /// Binds `addr` (e.g. `"127.0.0.1:0"` for an ephemeral port).
    pub async fn bind(addr: &str) -> io::Result<Self> {
        let inner = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = inner.local_addr()?.to_string();
        Ok(TcpListener { inner, local_addr })
    }
}

impl Listener for TcpListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        async move {
            let (stream, peer) = self.inner.accept().await?;
            stream.set_nodelay(true)?;
            Ok(Accepted {
                io: Box::new(stream),
                peer_addr: peer.to_string(),
            })
        }
        .boxed()
    }

    fn local_addr(&self) -> String {
        self.local_addr.clone()
    }
}
