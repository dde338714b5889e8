//! Nameserver failover: try the addresses in turn, starting at the last one
//! that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::Rng;
use tower::Service;

use super::RemotingClient;
use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// A `tower::Service` over a list of nameservers. Each call starts at the last
/// address that answered (at first a random one) and moves to the next when an
/// address cannot be reached or its connection dies; other errors, timeouts
/// included, end the call. Each attempt has the full request timeout. Cheap to
/// clone; clones share the address list and the last good address.
#[derive(Clone, Debug)]
pub struct NameServerService {
    client: RemotingClient,
    addrs: Arc<RwLock<Arc<[String]>>>,
    current: Arc<AtomicUsize>,
    timeout: Duration,
}

impl NameServerService {
    pub(super) fn new(client: RemotingClient, addrs: Vec<String>) -> Self {
        let timeout = client.request_timeout();
        NameServerService {
            client,
            addrs: Arc::new(RwLock::new(addrs.into())),
            current: Arc::new(AtomicUsize::new(
                rand::rng().random_range(0..usize::MAX / 2),
            )),
            timeout,
        }
    }

    /// The same service with another per-attempt timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Tries `addrs[index % len]` first on the next call (by default a random
    /// address is tried first).
    pub fn starting_at(self, index: usize) -> Self {
        self.current.store(index, Ordering::Relaxed);
        self
    }

    /// The addresses, in order.
    pub fn addrs(&self) -> Arc<[String]> {
        Arc::clone(&self.addrs.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the addresses (e.g. after a nameserver-address lookup).
    pub fn set_addrs(&self, addrs: Vec<String>) {
        *self.addrs.write().unwrap_or_else(PoisonError::into_inner) = addrs.into();
    }

    /// The address the next call tries first.
    pub fn current_addr(&self) -> Option<String> {
        let addrs = self.addrs();
        let len = addrs.len();
        (len > 0).then(|| addrs[self.current.load(Ordering::Relaxed) % len].clone())
    }

    /// Sends `cmd` with failover; see the type's documentation.
    pub async fn invoke(&self, cmd: RemotingCommand) -> Result<RemotingCommand> {
        let addrs = self.addrs();
        if addrs.is_empty() {
            return Err(RemotingError::NoAddress(
                "no nameserver address configured".into(),
            ));
        }
        let start = self.current.load(Ordering::Relaxed) % addrs.len();
        let mut last_error = None;
        for step in 0..addrs.len() {
            let index = (start + step) % addrs.len();
            let addr = &addrs[index];
            match self.client.invoke(addr, cmd.clone(), self.timeout).await {
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) if fails_over(&error) => {
                    tracing::debug!(%addr, %error, "nameserver unreachable, trying the next");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| RemotingError::NoAddress("no nameserver reachable".into())))
    }
}

/// Whether the address could not be reached, so another one should be tried.
fn fails_over(error: &RemotingError) -> bool {
    matches!(
        error,
        RemotingError::Connect { .. }
            | RemotingError::ConnectTimeout { .. }
            | RemotingError::ConnectionClosed { .. }
    )
}

impl Service<RemotingCommand> for NameServerService {
    type Response = RemotingCommand;
    type Error = RemotingError;
    type Future = BoxFuture<'static, Result<RemotingCommand>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, cmd: RemotingCommand) -> Self::Future {
        let this = self.clone();
        async move { this.invoke(cmd).await }.boxed()
    }
}
