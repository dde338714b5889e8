//! [`RemotingClient`]: one multiplexed connection per address, dialed on
//! demand, with request timeouts, an optional [`RpcHook`] and handling of
//! requests the peers send (PROTOCOL.md §2.6).

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{self, BoxFuture, Either};
use rocketmq_model::ResponseCode;
use tower::Service;

use crate::call::{self, Call};
use crate::command::{RemotingCommand, SerializeType};
use crate::connection::{Connection, ConnectionConfig, Due, InboundFactory, InboundService};
use crate::error::{RemotingError, Result};
use crate::hook::RpcHook;
use crate::transport::{TcpTransport, Transport};

mod backoff;
mod cache;
mod name_server;

pub use backoff::Backoff;
pub use cache::Generation;
pub use name_server::NameServerService;

use cache::{ConnectionCache, Dialer};

/// Java's defaults for the connect and request timeouts.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A call that waited longer than this for its answer, or than a quarter of
/// its timeout, and got none (nor anything else) closes its connection
/// (Java's `MIN_CLOSE_TIMEOUT_MILLIS`).
const MIN_WAIT_TO_CLOSE: Duration = Duration::from_millis(100);

/// A client of remoting peers (brokers, nameservers): cheap to clone, clones
/// share the connections. Many concurrent calls share one connection per
/// address.
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<ConnectionCache>,
    request_timeout: Duration,
    serialize_type: SerializeType,
    hook: Option<Arc<dyn RpcHook>>,
}

impl fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingClient")
            .field("request_timeout", &self.inner.request_timeout)
            .field("serialize_type", &self.inner.serialize_type)
            .field("hook", &self.inner.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl RemotingClient {
    /// A client with the defaults: TCP, 3 s connect and request timeouts, JSON
    /// headers, Java's frame and pending limits, no inbound handler, no hook.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder starting from the defaults.
    pub fn builder() -> RemotingClientBuilder {
        RemotingClientBuilder::default()
    }

    /// The timeout of [`invoke_oneway`](Self::invoke_oneway) and of
    /// [`service`](Self::service) calls.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Sends `cmd` to `addr` and waits for the response, at most `timeout`
    /// (dialing included); with a zero `timeout` it fails at once and sends
    /// nothing. The client sets the header serialization and runs
    /// the hook; the connection assigns the opaque. A oneway `cmd` resolves
    /// with a synthetic SUCCESS once written.
    ///
    /// A request that got no answer although it waited at least 100 ms or a
    /// quarter of `timeout` for one, on a connection where nothing at all
    /// was read meanwhile, closes that connection, failing the other calls
    /// on it, and the next call dials again: a connection the network
    /// silently dropped is otherwise kept until TCP gives up, a quarter of an
    /// hour later. (Java closes after any sync call's timeout,
    /// `clientCloseSocketIfTimeout`; a connection that answers other calls
    /// is alive, and is kept here, for a broker slow on one request.)
    ///
    /// A GO_AWAY answer retires the connection; see `invoke_tracked`.
    pub fn invoke<'a>(
        &'a self,
        addr: &'a str,
        cmd: RemotingCommand,
        timeout: Duration,
    ) -> impl Future<Output = Result<RemotingCommand>> + Send + 'a {
        // Not an `async fn`: its future would hold this one's beside it.
        self.invoke_budgeted(addr, cmd, timeout, timeout)
    }

    /// [`invoke`](Self::invoke) within `timeout`, what is left of a call
    /// whose whole budget was `whole` (a nameserver call that waited for
    /// its connection first): whether the wait was long enough to close an
    /// unanswered connection is judged against `whole`, as Java's
    /// `left > timeout / 4`.
    pub(crate) async fn invoke_budgeted(
        &self,
        addr: &str,
        cmd: RemotingCommand,
        timeout: Duration,
        whole: Duration,
    ) -> Result<RemotingCommand> {
        let timed_out = || RemotingError::Timeout {
            addr: addr.to_owned(),
            after: timeout,
        };
        if timeout.is_zero() {
            // As Java's invokeSync: a call without time left is not written.
            return Err(timed_out());
        }
        let Some(deadline) = tokio::time::Instant::now().checked_add(timeout) else {
            // Past the clock's range (`Duration::MAX`): no timeout.
            return self.invoke_without_timeout(addr, cmd).await;
        };
        let mut waiting = None;
        let due = Due {
            at: deadline,
            after: timeout,
        };
        // No timer of the call's own: the connection's pending table fails
        // the call at `deadline` (a dial or a wait for room in the write
        // queue, both rare, take a timer for that).
        match self
            .invoke_tracked(addr, cmd, Some(due), &mut waiting)
            .await
        {
            Err(RemotingError::Timeout { .. }) if tokio::time::Instant::now() >= deadline => {
                if let Some(waiting) = waiting {
                    self.close_unanswered(addr, waiting, deadline, timeout, whole);
                }
                Err(timed_out())
            }
            answer => answer,
        }
    }

    async fn invoke_without_timeout(
        &self,
        addr: &str,
        cmd: RemotingCommand,
    ) -> Result<RemotingCommand> {
        self.invoke_tracked(addr, cmd, None, &mut None).await
    }

    /// Closes the connection of a request that timed out, if it had time
    /// enough to be answered and nothing was read on the connection
    /// meanwhile (see [`invoke`](Self::invoke)).
    fn close_unanswered(
        &self,
        addr: &str,
        waiting: Waiting,
        deadline: tokio::time::Instant,
        timeout: Duration,
        whole: Duration,
    ) {
        let waited = waiting
            .since
            .map_or(timeout, |since| deadline.saturating_duration_since(since));
        // Java's `left > 100 || left > timeout / 4`.
        if waited <= MIN_WAIT_TO_CLOSE && waited <= whole / 4 {
            return;
        }
        let Ok(Some((conn, generation))) = self.inner.cache.open(addr) else {
            return;
        };
        if generation != waiting.generation || conn.frames_read() != waiting.frames_read {
            return; // another connection by now, or the peer is talking
        }
        let reason = format!("closed after a request got no answer in {waited:?}");
        if self.inner.cache.invalidate(addr, generation, &reason) {
            tracing::warn!(%addr, ?waited, "nothing read on the connection; closed it to dial again");
        }
    }

    /// A new connection to `addr`, failing with a timeout at `due`. Boxed:
    /// a dial is rare, and its future (and timer) would otherwise make every
    /// call's future larger.
    fn dial<'a>(
        &'a self,
        addr: &'a str,
        due: Option<Due>,
    ) -> BoxFuture<'a, Result<(Connection, Generation)>> {
        let dialed = self.inner.cache.dialed(addr);
        match due {
            Some(due) => async move {
                tokio::time::timeout_at(due.at, dialed).await.map_err(|_| {
                    RemotingError::Timeout {
                        addr: addr.to_owned(),
                        after: due.after,
                    }
                })?
            }
            .boxed(),
            None => dialed.boxed(),
        }
    }

    /// Sends `cmd`, failing with a timeout at `due`; once a request is
    /// written, `waiting` says on which connection it waits for its answer,
    /// and since when.
    ///
    /// A request answered GO_AWAY (a server shutting down gracefully, or a
    /// proxy about to) retires its connection: it takes no new calls and
    /// closes once the calls on it have their answers; the next call dials
    /// again. The GO_AWAY is the call's answer: the request was not
    /// processed, and the caller sends it again if it wants, as the
    /// producer does (Java's client resends at this layer; keeping a copy
    /// of every request for that rare answer costs every call).
    async fn invoke_tracked(
        &self,
        addr: &str,
        mut cmd: RemotingCommand,
        due: Option<Due>,
        waiting: &mut Option<Waiting>,
    ) -> Result<RemotingCommand> {
        // The clock is read only when a dial came first: a call on an open
        // connection waits from its start.
        let (conn, generation, since) = match self.inner.cache.open(addr)? {
            Some((conn, generation)) => (conn, generation, None),
            None => {
                let (conn, generation) = self.dial(addr, due).await?;
                (conn, generation, Some(tokio::time::Instant::now()))
            }
        };
        // Codes above an int16 (the 5.x pop codes) cannot travel in the
        // ROCKETMQ header: those requests go as JSON, as a Java broker reads them.
        cmd.serialize_type = if i16::try_from(cmd.code).is_ok() {
            self.inner.serialize_type
        } else {
            SerializeType::Json
        };
        if let Some(hook) = &self.inner.hook {
            hook.before_request(addr, &mut cmd);
        }
        let oneway = cmd.is_oneway();
        let answer = match conn.start(cmd, due) {
            Ok(started) => {
                if !oneway {
                    let frames_read = conn.frames_read();
                    *waiting = Some(Waiting {
                        generation,
                        since,
                        frames_read,
                    });
                }
                started.answer().await
            }
            Err(error) => Err(error),
        };
        match answer {
            Ok(response) if !oneway && response.response_code() == ResponseCode::GO_AWAY => {
                // The peer goes away: new calls go to a new connection.
                self.inner.cache.retire(addr, generation);
                tracing::info!(%addr, "GO_AWAY: the connection takes no new calls");
                Ok(response)
            }
            Ok(mut response) => {
                if let (Some(hook), false) = (&self.inner.hook, oneway) {
                    hook.after_response(addr, &mut response);
                }
                Ok(response)
            }
            Err(error) => {
                if let RemotingError::ConnectionClosed { reason, .. } = &error {
                    self.inner.cache.invalidate(addr, generation, reason);
                }
                Err(error)
            }
        }
    }

    /// Sends `cmd` to `addr` as a oneway request; done once written (bounded by
    /// the default request timeout).
    pub async fn invoke_oneway(&self, addr: &str, mut cmd: RemotingCommand) -> Result<()> {
        cmd.set_oneway();
        self.invoke(addr, cmd, self.inner.request_timeout)
            .await
            .map(drop)
    }

    /// Runs a typed [`Call`] against `addr` within `timeout`.
    ///
    /// The same as [`call::execute_at`] over [`service`](Self::service) with
    /// `timeout`, without the service: no allocation for the address or the
    /// future.
    pub fn invoke_call<'a, C: Call + 'a>(
        &'a self,
        addr: &'a str,
        call: C,
        timeout: Duration,
    ) -> impl Future<Output = Result<C::Response>> + Send + 'a {
        // The request is made here and moved into `invoke`'s future at once:
        // an `async fn` would hold the call, and then its command, beside
        // that future (each a few hundred bytes every call moves around).
        // Nothing is sent until the future is polled.
        match call.into_command() {
            Ok(mut cmd) => {
                if C::ONEWAY {
                    cmd.set_oneway();
                }
                Either::Right(self.invoke(addr, cmd, timeout).map(move |response| {
                    C::parse_response(response?).map_err(|err| call::naming_peer(err, addr))
                }))
            }
            Err(error) => Either::Left(future::ready(error).map(Err)),
        }
    }

    /// A `tower::Service` sending to `addr` with the default request timeout
    /// and the hook applied.
    pub fn service(&self, addr: &str) -> AddressService {
        AddressService {
            client: self.clone(),
            addr: addr.into(),
            timeout: Some(self.inner.request_timeout),
        }
    }

    /// A `tower::Service` sending to the first reachable of `addrs`, with
    /// failover (see [`NameServerService`]).
    pub fn name_server_service(&self, addrs: Vec<String>) -> NameServerService {
        NameServerService::new(self.clone(), addrs)
    }

    /// The open connection to `addr` (dialing when needed) and its generation,
    /// for [`invalidate`](Self::invalidate).
    pub async fn connection(&self, addr: &str) -> Result<(Connection, Generation)> {
        self.inner.cache.get(addr).await
    }

    /// Closes and forgets the connection to `addr` if it is still the one of
    /// `generation`; the next call re-dials. Returns whether it was: an
    /// invalidation naming an older generation is a no-op.
    pub async fn invalidate(&self, addr: &str, generation: Generation) -> bool {
        self.inner.cache.invalidate(addr, generation, "invalidated")
    }

    /// Closes every connection and waits for their tasks to end; later calls
    /// fail with [`RemotingError::ConnectionClosed`].
    pub async fn shutdown(&self) {
        self.inner.cache.shutdown().await;
    }
}

/// The connection a written request waits on for its answer, since when
/// (`None`: since its call began), and how many frames it had read then.
#[derive(Clone, Copy)]
struct Waiting {
    generation: Generation,
    since: Option<tokio::time::Instant>,
    frames_read: u64,
}

impl Default for RemotingClient {
    fn default() -> Self {
        Self::new()
    }
}

/// The client's `tower::Service` for one address: timeout and hook applied.
/// Cheap to clone.
#[derive(Clone, Debug)]
pub struct AddressService {
    client: RemotingClient,
    addr: Arc<str>,
    /// `None`: the caller bounds every call itself.
    timeout: Option<Duration>,
}

impl AddressService {
    /// The same service with another request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The same service without a timeout of its own, for a caller that bounds
    /// every call itself (one timer per call instead of two). A call then waits
    /// as long as its connection lives.
    pub fn without_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// The address it sends to.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

impl Service<RemotingCommand> for AddressService {
    type Response = RemotingCommand;
    type Error = RemotingError;
    type Future = BoxFuture<'static, Result<RemotingCommand>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, cmd: RemotingCommand) -> Self::Future {
        let this = self.clone();
        async move {
            match this.timeout {
                Some(timeout) => this.client.invoke(&this.addr, cmd, timeout).await,
                None => this.client.invoke_without_timeout(&this.addr, cmd).await,
            }
        }
        .boxed()
    }
}

/// Builds a [`RemotingClient`]; every setting has Java's default.
pub struct RemotingClientBuilder {
    transport: Arc<dyn Transport>,
    connect_timeout: Duration,
    request_timeout: Duration,
    serialize_type: SerializeType,
    connection: ConnectionConfig,
    backoff: Backoff,
    inbound: Option<InboundFactory>,
    hook: Option<Arc<dyn RpcHook>>,
}

impl Default for RemotingClientBuilder {
    fn default() -> Self {
        RemotingClientBuilder {
            transport: Arc::new(TcpTransport::new()),
            connect_timeout: DEFAULT_TIMEOUT,
            request_timeout: DEFAULT_TIMEOUT,
            serialize_type: SerializeType::Json,
            connection: ConnectionConfig::default(),
            backoff: Backoff::default(),
            inbound: None,
            hook: None,
        }
    }
}

impl fmt::Debug for RemotingClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotingClientBuilder")
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("serialize_type", &self.serialize_type)
            .field("connection", &self.connection)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl RemotingClientBuilder {
    /// How to dial (default: TCP).
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Arc::new(transport);
        self
    }

    /// How to dial, shared with others.
    pub fn shared_transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = transport;
        self
    }

    /// How long a dial may take (default 3 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The default request timeout (default 3 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The header serialization of outgoing requests (default JSON).
    pub fn serialize_type(mut self, serialize_type: SerializeType) -> Self {
        self.serialize_type = serialize_type;
        self
    }

    /// The largest frame sent or accepted, length word included (default 16 MiB).
    pub fn max_frame_len(mut self, bytes: usize) -> Self {
        self.connection.max_frame_len = bytes;
        self
    }

    /// The most calls waiting for responses on one connection (default 65535).
    pub fn max_pending(mut self, calls: usize) -> Self {
        self.connection.max_pending = calls;
        self
    }

    /// Every connection setting at once.
    pub fn connection_config(mut self, config: ConnectionConfig) -> Self {
        self.connection = config;
        self
    }

    /// The delays between dials to an address that keeps failing.
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Handles requests peers send, with a handler made per connection.
    pub fn inbound(
        mut self,
        factory: impl Fn(&Connection) -> InboundService + Send + Sync + 'static,
    ) -> Self {
        self.inbound = Some(Arc::new(factory));
        self
    }

    /// Runs `hook` on every outgoing request (e.g. [`AclHook`](crate::hook::AclHook)).
    pub fn rpc_hook(mut self, hook: impl RpcHook) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }

    /// The client. Nothing is dialed until the first call.
    pub fn build(self) -> RemotingClient {
        let dialer = Dialer {
            transport: self.transport,
            connect_timeout: self.connect_timeout,
            connection: self.connection,
            inbound: self.inbound,
            backoff: self.backoff,
        };
        RemotingClient {
            inner: Arc::new(Inner {
                cache: Arc::new(ConnectionCache::new(dialer)),
                request_timeout: self.request_timeout,
                serialize_type: self.serialize_type,
                hook: self.hook,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::SendMessage;
    use rocketmq_model::RequestCode;
    use rocketmq_model::header::SendMessageRequestHeader;

    /// Every call's future is moved (into a task, a box, a timer) several
    /// times, and an async send keeps one per message in flight. Nested
    /// `async fn`s, each holding the command again, made it 2.1 KB (2.7 KB
    /// for a typed call); 1.3 KB now (1.2 KB with a timer of the call's own
    /// around it, before the pending table kept the deadlines). The bound
    /// leaves room for compiler changes, not for another layer holding the
    /// command.
    #[test]
    fn a_call_is_a_small_future() {
        // Made outside a runtime: nothing of tokio's is touched before a poll.
        assert!(tokio::runtime::Handle::try_current().is_err());
        let client = RemotingClient::new();
        let cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE_V2);
        let command = std::mem::size_of::<RemotingCommand>();
        let invoke = std::mem::size_of_val(&client.invoke("a", cmd, Duration::from_secs(1)));
        let call = SendMessage::new(SendMessageRequestHeader::default(), "body");
        let typed = std::mem::size_of_val(&client.invoke_call("a", call, Duration::from_secs(1)));
        assert!(
            invoke <= 1_400,
            "invoke's future is {invoke} bytes (a command is {command})"
        );
        assert!(typed <= 1_400, "invoke_call's future is {typed} bytes");
    }
}
