//! The server side: [`TlsListener`] accepts TCP and hands out streams whose
//! TLS handshake has completed.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{TlsConfigError, provider};
use crate::transport::{Accepted, Listener};

/// How long a client may take to finish its handshake before it is dropped.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes run at once; past it, no new TCP connection is accepted until one
/// ends (the kernel's backlog holds the rest).
const MAX_HANDSHAKES: usize = 128;

/// A handshake under way: resolves to the peer's address and the stream.
type Handshake = BoxFuture<'static, (SocketAddr, io::Result<TlsStream<TcpStream>>)>;

/// A bound TCP listener whose accepted streams have finished a TLS handshake
/// (`TCP_NODELAY` set). Use it with [`Server::spawn`](crate::server::Server::spawn).
///
/// Handshakes run concurrently inside [`accept`](Listener::accept), so a slow
/// or silent client does not hold up the others; one that does not finish
/// within the [handshake timeout](Self::with_handshake_timeout), or fails (bad
/// certificate, not TLS at all), is dropped and logged at debug level. No task
/// is spawned: handshakes progress while `accept` is polled and end with the
/// listener.
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    local_addr: String,
    handshake_timeout: Duration,
    handshakes: FuturesUnordered<Handshake>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

/// A server configuration presenting `cert_chain` (leaf first) with `key`, not
/// asking clients for certificates; TLS 1.2 and 1.3 over `ring`.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(cert_chain, key)?;
    Ok(Arc::new(config))
}

impl TlsListener {
    /// Binds `addr` (e.g. `"127.0.0.1:0"`) and serves `cert_chain` (leaf first)
    /// with `key`. A chain and key that rustls refuses fail with
    /// [`io::ErrorKind::InvalidInput`] wrapping the [`TlsConfigError`].
    pub async fn bind(
        addr: &str,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> io::Result<Self> {
        let config = server_config(cert_chain, key)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        Self::bind_with_config(addr, config).await
    }

    /// Binds `addr` with a rustls configuration of your own, e.g. one that
    /// requires client certificates (mutual TLS).
    pub async fn bind_with_config(addr: &str, config: Arc<ServerConfig>) -> io::Result<Self> {
        let tcp = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = tcp.local_addr()?.to_string();
        Ok(TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(config),
            local_addr,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            handshakes: FuturesUnordered::new(),
        })
    }

    /// How long a client may take to finish its handshake (default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: SocketAddr) {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "TLS listener: dropped a connection");
            return;
        }
        let accept = self.acceptor.accept(stream);
        let timeout = self.handshake_timeout;
        self.handshakes.push(
            async move {
                let result = tokio::time::timeout(timeout, accept)
                    .await
                    .unwrap_or_else(|_| {
                        Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("TLS handshake not finished after {timeout:?}"),
                        ))
                    });
                (peer, result)
            }
            .boxed(),
        );
    }

    async fn next_stream(&mut self) -> io::Result<Accepted> {
        loop {
            tokio::select! {
                Some((peer, result)) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    match result {
                        Ok(stream) => {
                            return Ok(Accepted {
                                io: Box::new(stream),
                                peer_addr: peer.to_string(),
                            });
                        }
                        Err(error) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                        }
                    }
                }
                accepted = self.tcp.accept(), if self.handshakes.len() < MAX_HANDSHAKES => {
                    let (stream, peer) = accepted?;
                    self.start_handshake(stream, peer);
                }
            }
        }
    }
}

impl Listener for TlsListener {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        self.next_stream().boxed()
    }

    fn local_addr(&self) -> String {
        self.local_addr.clone()
    }
}
