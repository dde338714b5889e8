//! Nameserver failover: try the addresses in turn, starting at the last one
//! that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rand::Rng;
use rocketmq_model::ResponseCode;
use tower::Service;

use super::RemotingClient;
use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};

/// A `tower::Service` over a list of nameservers. Each call starts at the last
/// address that answered (at first a random one) and moves to the next when an
/// address cannot be reached, its connection dies or it answers GO_AWAY (a
/// nameserver shutting down, which did not process the call; its answer
/// when no other address does better); other errors, timeouts
/// of a request on an open connection included, end the call. An address
/// that cannot be reached or did not answer in time is not tried first by
/// the next call (as Java, which moves on once the chosen nameserver's
/// channel is closed, and closes it after a timeout).
///
/// A call has the request timeout, connections included, whichever
/// addresses it tries; each attempt waits for its connection to open for at
/// most its share of what is left (the timeout divided by the addresses left
/// to try): a nameserver whose host drops packets then leaves time for the
/// next one, and its dial goes on in the background (see [`RemotingClient`]:
/// a failed dial starts the address's backoff). Cheap to
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
        // One budget for the whole call, whichever addresses it tries.
        let began = tokio::time::Instant::now();
        let mut last_error = None;
        let mut gone_away = None;
        for step in 0..addrs.len() {
            let index = (start + step) % addrs.len();
            let addr = &addrs[index];
            let left = u32::try_from(addrs.len() - step).unwrap_or(u32::MAX);
            let spent = began.elapsed();
            let budget_left = self.timeout.saturating_sub(spent);
            if budget_left.is_zero() {
                break;
            }
            let answer = match self
                .connect(addr, budget_left.min(self.timeout / left))
                .await
            {
                Ok(()) => {
                    // The wait for the connection counts against the call's
                    // budget (Java's `timeoutMillis - costTime`).
                    let remaining = self.timeout.saturating_sub(began.elapsed());
                    if remaining.is_zero() {
                        break;
                    }
                    self.client
                        .invoke_budgeted(addr, cmd.clone(), remaining, self.timeout)
                        .await
                }
                Err(error) => Err(error),
            };
            match answer {
                Ok(response) if response.response_code() == ResponseCode::GO_AWAY => {
                    // A nameserver shutting down did not process the call
                    // (and its connection is retired): asked of the next,
                    // as when one is unreachable; the answer when none
                    // does better.
                    tracing::debug!(%addr, "nameserver going away, trying the next");
                    self.pass_over(index, addrs.len());
                    gone_away = Some(response);
                }
                Ok(response) => {
                    self.current.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(error) if fails_over(&error) => {
                    tracing::debug!(%addr, %error, "nameserver unreachable, trying the next");
                    self.pass_over(index, addrs.len());
                    gone_away = None;
                    last_error = Some(error);
                }
                Err(error @ RemotingError::Timeout { .. }) => {
                    // As Java: the call fails, and the next call starts at
                    // the next address (the connection was closed if
                    // nothing at all came back on it).
                    tracing::debug!(%addr, %error, "nameserver did not answer; the next call starts past it");
                    self.pass_over(index, addrs.len());
                    return Err(error);
                }
                Err(error) => return Err(error),
            }
        }
        if let Some(response) = gone_away {
            return Ok(response);
        }
        Err(last_error.unwrap_or_else(|| RemotingError::Timeout {
            addr: addrs[start].clone(),
            after: self.timeout,
        }))
    }

    /// The next call starts past `addrs[index]`, unless another address
    /// answered meanwhile.
    fn pass_over(&self, index: usize, len: usize) {
        let _ = self
            .current
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |at| {
                (at % len == index).then_some(index + 1)
            });
    }
}

impl NameServerService {
    /// Waits up to `wait` for the connection to `addr` (at once when it is
    /// open); a connection still opening after that is a
    /// [`RemotingError::ConnectTimeout`], and its dial goes on.
    async fn connect(&self, addr: &str, wait: Duration) -> Result<()> {
        match tokio::time::timeout(wait, self.client.connection(addr)).await {
            Ok(connection) => connection.map(drop),
            Err(_elapsed) => Err(RemotingError::ConnectTimeout {
                addr: addr.to_owned(),
                after: wait,
            }),
        }
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
