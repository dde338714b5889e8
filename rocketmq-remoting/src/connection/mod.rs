//! A multiplexed connection over any byte stream (PROTOCOL.md §2.5–2.6).
//!
//! One writer task owns the sink; one reader task owns the stream. Calls are
//! correlated by opaque in a bounded pending table; a call that times
//! out or is dropped removes its own entry. When the connection dies every
//! pending call fails at once with [`RemotingError::ConnectionClosed`] and later
//! calls fail fast. Requests from the peer go to an [`InboundService`].

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rocketmq_model::ResponseCode;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tower::Service;
use tower::util::BoxCloneSyncService;

use crate::codec::{DEFAULT_MAX_FRAME_LEN, RemotingCodec};
use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};
use crate::transport::BoxedIo;

mod coalesce;
mod idle;
mod pending;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub(crate) use pending::Due;
use pending::PendingTable;
use writer::Outbound;

/// Why calls fail after [`Connection::close`] or the drop of the last handle.
const CLOSED_LOCALLY: &str = "connection closed locally";

/// Handles requests the peer sends (e.g. a broker's NOTIFY_CONSUMER_IDS_CHANGED
/// or CHECK_TRANSACTION_STATE). Its answer is written back with the request's
/// opaque and the response flag; answers to oneway requests are discarded. An
/// error is answered with SYSTEM_ERROR and the error text as remark, and so is
/// a panic of the handler.
///
/// Up to [`ConnectionConfig::max_inbound_in_flight`] requests are handled at
/// once, concurrently on the connection's reader task: a handler with heavy work
/// should hand it to a task of its own.
pub type InboundService = BoxCloneSyncService<RemotingCommand, RemotingCommand, RemotingError>;

/// Makes the handler for the requests a peer sends over a new connection (e.g.
/// a broker's CHECK_TRANSACTION_STATE). It receives the connection, so the
/// handler can learn which peer sent a request ([`Connection::peer_addr`]) and
/// send requests back; keep a [`WeakConnection`], not the connection itself.
pub type InboundFactory = Arc<dyn Fn(&Connection) -> InboundService + Send + Sync>;

/// Limits of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Largest frame accepted or sent, length word included (Java: 16 MiB).
    pub max_frame_len: usize,
    /// Most calls waiting for responses at once; more fail with
    /// [`RemotingError::TooManyPending`] (Java's async semaphore: 65535).
    pub max_pending: usize,
    /// Frames queued for the writer before callers wait.
    pub write_queue: usize,
    /// Peer requests handled at once; more are answered SYSTEM_BUSY at once (a
    /// server holding long-poll pulls needs room for one per polled queue).
    pub max_inbound_in_flight: usize,
    /// How long a connection may go without reading a frame or writing one
    /// before it is closed; `None`: never (Java: 120 s on both ends,
    /// `clientChannelMaxIdleTimeSeconds` and `serverChannelMaxIdleTimeSeconds`).
    pub max_idle: Option<Duration>,
}

/// Java's idle limit of a channel, client and server alike.
pub const DEFAULT_MAX_IDLE: Duration = Duration::from_secs(120);

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            max_pending: 65_535,
            write_queue: 1024,
            max_inbound_in_flight: 64,
            max_idle: Some(DEFAULT_MAX_IDLE),
        }
    }
}

/// State shared by the handles and the two tasks.
#[derive(Debug)]
struct Shared {
    peer: Arc<str>,
    pending: Arc<PendingTable>,
    outbound: mpsc::Sender<Outbound>,
    /// Responses handed to their callers since the writer last looked: how
    /// many callers may be about to send again (see `coalesce`).
    answered: AtomicUsize,
    /// Frames read and flushes written so far: whether the peer said
    /// anything while a call waited (see `RemotingClient::invoke`), and
    /// whether the connection is idle (see `idle`).
    activity: idle::Activity,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Shared {
    /// `work`'s outcome, or a timeout if it is not done by `due`.
    async fn within<F: Future>(&self, due: Option<Due>, work: F) -> Result<F::Output> {
        let Some(due) = due else {
            return Ok(work.await);
        };
        tokio::time::timeout_at(due.at, work)
            .await
            .map_err(|_| RemotingError::Timeout {
                addr: self.peer.to_string(),
                after: due.after,
            })
    }

    /// Ends the connection: fails every pending call with `reason` and stops
    /// both tasks. Only the first reason counts.
    fn shut_down(&self, reason: &str) {
        self.pending.close(reason);
        self.cancel.cancel();
    }

    /// Queues a frame for the writer. With room in the queue (the usual
    /// case) it is queued at once; when the queue is full, the returned
    /// wait queues it once there is room (back-pressure). The wait holds
    /// the frame, so it is boxed rather than made part of every caller's
    /// future.
    fn queue(&self, outbound: Outbound) -> Result<Option<BoxFuture<'_, Result<()>>>> {
        match self.outbound.try_send(outbound) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Full(outbound)) => Ok(Some(
                async move {
                    self.outbound
                        .send(outbound)
                        .await
                        .map_err(|_| self.closed_error())
                }
                .boxed(),
            )),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> RemotingError {
        let reason = self
            .pending
            .closed_reason()
            .unwrap_or_else(|| CLOSED_LOCALLY.to_owned());
        self.pending.closed_error(&reason)
    }
}

/// What keeps a connection open: dropping the last one closes it.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    _close_on_drop: DropGuard,
}

/// A handle to one multiplexed connection; clones are cheap and share it.
///
/// Implements `tower::Service<RemotingCommand>`: a call assigns a fresh opaque,
/// sends the request and resolves with its response. A oneway request
/// (`cmd.is_oneway()`) resolves with a synthetic SUCCESS response once written.
/// Calls have no timeout of their own; wrap them (dropping a call is safe).
///
/// The connection closes on EOF, an I/O or decode error, [`close`](Self::close),
/// when the last handle drops, or when nothing was read or written for
/// [`ConnectionConfig::max_idle`]. Handles held by the inbound handler count, so
/// a handler should keep a [`WeakConnection`] instead.
#[derive(Clone)]
pub struct Connection {
    handle: Arc<Handle>,
}

/// A handle that does not keep the connection open.
#[derive(Clone, Debug)]
pub struct WeakConnection {
    handle: Weak<Handle>,
    peer: Arc<str>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.shared().peer)
            .field("closed", &self.is_closed())
            .field("pending", &self.pending_count())
            .finish()
    }
}

impl Connection {
    /// Runs a connection over `io` to `peer_addr` that answers every request
    /// from the peer with REQUEST_CODE_NOT_SUPPORTED.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (it spawns the reader and writer).
    pub fn new(io: BoxedIo, peer_addr: impl Into<Arc<str>>, config: &ConnectionConfig) -> Self {
        Self::spawn(io, peer_addr.into(), config, |_| None)
    }

    /// Runs a connection whose peer requests go to the handler `inbound` makes.
    /// `inbound` receives the new connection, e.g. to learn the peer address or
    /// to keep a [`WeakConnection`] for sending requests back.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime (it spawns the reader and writer).
    pub fn with_inbound(
        io: BoxedIo,
        peer_addr: impl Into<Arc<str>>,
        config: &ConnectionConfig,
        inbound: impl FnOnce(&Connection) -> InboundService,
    ) -> Self {
        Self::spawn(io, peer_addr.into(), config, |conn| Some(inbound(conn)))
    }

    fn spawn(
        io: BoxedIo,
        peer: Arc<str>,
        config: &ConnectionConfig,
        inbound: impl FnOnce(&Connection) -> Option<InboundService>,
    ) -> Self {
        let (outbound, queue) = mpsc::channel(config.write_queue.max(1));
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            pending: Arc::new(PendingTable::new(Arc::clone(&peer), config.max_pending)),
            peer,
            outbound,
            answered: AtomicUsize::new(0),
            activity: idle::Activity::default(),
            cancel: cancel.clone(),
            tasks: TaskTracker::new(),
        });
        let conn = Connection {
            handle: Arc::new(Handle {
                shared: Arc::clone(&shared),
                _close_on_drop: cancel.drop_guard(),
            }),
        };
        let handler = inbound(&conn);
        let codec = RemotingCodec::new(config.max_frame_len);
        let (read, write) = tokio::io::split(io);
        let frames = FramedRead::new(read, codec);
        let sink = FramedWrite::new(write, codec);
        let max_in_flight = config.max_inbound_in_flight.max(1);
        shared.tasks.spawn(reader::run(
            Arc::clone(&shared),
            frames,
            handler,
            max_in_flight,
            config.max_idle,
        ));
        shared
            .tasks
            .spawn(writer::run(Arc::clone(&shared), sink, queue));
        shared.tasks.close();
        conn
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &str {
        &self.shared().peer
    }

    /// Whether the connection has closed; calls on it fail fast.
    pub fn is_closed(&self) -> bool {
        self.shared().cancel.is_cancelled()
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<String> {
        self.shared().pending.closed_reason()
    }

    /// Calls waiting for their responses.
    pub fn pending_count(&self) -> usize {
        self.shared().pending.len()
    }

    /// Closes the connection: pending calls fail, the tasks stop.
    pub fn close(&self) {
        self.shared().shut_down(CLOSED_LOCALLY);
    }

    /// Closes the connection, failing pending calls with `reason`.
    pub(crate) fn close_because(&self, reason: &str) {
        self.shared().shut_down(reason);
    }

    /// How many frames were read on this connection so far.
    pub(crate) fn frames_read(&self) -> u64 {
        self.shared().activity.frames_read.load(Ordering::Relaxed)
    }

    /// Waits until the connection has closed and both of its tasks have ended.
    pub async fn closed(&self) {
        self.shared().tasks.wait().await;
    }

    /// A handle that does not keep the connection open.
    pub fn downgrade(&self) -> WeakConnection {
        WeakConnection {
            handle: Arc::downgrade(&self.handle),
            peer: Arc::clone(&self.shared().peer),
        }
    }

    /// Sends `cmd` and waits for its response; see the type's documentation.
    /// The future keeps the connection open while it runs.
    pub fn send(&self, cmd: RemotingCommand) -> BoxFuture<'static, Result<RemotingCommand>> {
        let conn = self.clone();
        async move { conn.exchange(cmd).await }.boxed()
    }

    /// [`send`](Self::send) for a caller that holds the connection while it
    /// waits: nothing to clone or box.
    pub(crate) async fn exchange(&self, cmd: RemotingCommand) -> Result<RemotingCommand> {
        self.start(cmd, None)?.answer().await
    }

    /// Queues `cmd` for the writer (assigning its opaque; a two-way request
    /// is registered to wait for its response) and returns what to await
    /// for the answer. Done at once rather than in a future, so that the
    /// future awaiting the answer does not hold the command too: every call
    /// moves that future around. A two-way request not answered by `due`
    /// fails with a timeout; so does any request still waiting then for room
    /// in the writer's queue (or, oneway, to be written).
    pub(crate) fn start(&self, mut cmd: RemotingCommand, due: Option<Due>) -> Result<Started<'_>> {
        let shared = self.shared();
        if self.is_closed() {
            return Err(shared.closed_error());
        }
        if cmd.is_oneway() {
            cmd.opaque = pending::next_opaque();
            let opaque = cmd.opaque;
            let (written, done) = oneshot::channel();
            let wait = shared.queue(Outbound::Oneway { cmd, written })?;
            return Ok(Started {
                shared,
                wait,
                due,
                answer: Answer::Oneway { opaque, done },
            });
        }
        let call = shared.pending.register(due)?;
        cmd.opaque = call.opaque();
        let wait = shared.queue(Outbound::Request(cmd))?;
        Ok(Started {
            shared,
            wait,
            due,
            answer: Answer::TwoWay(call),
        })
    }
}

/// A request handed to the writer ([`Connection::start`]), its answer still
/// to come.
pub(crate) struct Started<'a> {
    shared: &'a Shared,
    /// Queues the frame once the writer's queue has room, when it had none.
    wait: Option<BoxFuture<'a, Result<()>>>,
    /// When the request times out.
    due: Option<Due>,
    answer: Answer,
}

/// What answers a started request.
enum Answer {
    /// The peer's response, through the pending table.
    TwoWay(pending::PendingCall),
    /// The writer's word that the frame was written.
    Oneway {
        opaque: i32,
        done: oneshot::Receiver<Result<()>>,
    },
}

impl Started<'_> {
    /// The answer: the peer's response, or for a oneway request a synthetic
    /// SUCCESS once the frame was written.
    pub(crate) async fn answer(self) -> Result<RemotingCommand> {
        // The timed waits are boxed: rare (a full queue) or light (a
        // oneway request), they would otherwise make every call's future
        // larger by a timer.
        if let Some(wait) = self.wait {
            Box::pin(self.shared.within(self.due, wait)).await??;
        }
        match self.answer {
            // The pending table fails the call when it comes due: no timer
            // of its own.
            Answer::TwoWay(call) => call.response().await,
            Answer::Oneway { opaque, done } => {
                match Box::pin(self.shared.within(self.due, done)).await? {
                    Ok(result) => {
                        result.map(|()| RemotingCommand::response(ResponseCode::SUCCESS, opaque))
                    }
                    Err(_) => Err(self.shared.closed_error()),
                }
            }
        }
    }
}

impl WeakConnection {
    /// The connection, if it is still open.
    pub fn upgrade(&self) -> Option<Connection> {
        let handle = self.handle.upgrade()?;
        let conn = Connection { handle };
        (!conn.is_closed()).then_some(conn)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &str {
        &self.peer
    }
}

impl Service<RemotingCommand> for Connection {
    type Response = RemotingCommand;
    type Error = RemotingError;
    type Future = BoxFuture<'static, Result<RemotingCommand>>;

    /// Always ready: a closed connection fails the call itself, fast.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, cmd: RemotingCommand) -> Self::Future {
        self.send(cmd)
    }
}
