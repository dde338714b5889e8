//! The reader task: splits incoming frames on the response flag (PROTOCOL.md
//! §2.6). Responses complete pending calls; requests from the peer go to the
//! inbound handler, whose answers are queued for the writer.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::future::OptionFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use rocketmq_model::ResponseCode;
use tokio::io::ReadHalf;
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::mpsc::error::{SendError, TrySendError};
use tokio_util::codec::FramedRead;
use tower::ServiceExt;

use super::pending;
use super::writer::Outbound;
use super::{InboundService, Shared};
use crate::codec::RemotingCodec;
use crate::command::{FLAG_RESPONSE, RemotingCommand};
use crate::transport::BoxedIo;

/// Why the reader stopped when the peer hung up.
pub(crate) const PEER_CLOSED: &str = "peer closed the connection";

type Frames = FramedRead<ReadHalf<BoxedIo>, RemotingCodec>;
type Handling = BoxFuture<'static, Option<RemotingCommand>>;
type Room = Result<OwnedPermit<Outbound>, SendError<()>>;

/// Why the connection closed when its reader stopped without saying why
/// (it unwound).
pub(crate) const READER_STOPPED: &str = "the connection's reader stopped";

/// Shuts the connection down when the reader ends, however it ends: the
/// reader also fails calls at their deadlines, so a reader gone without a
/// word would leave its calls waiting for ever.
struct ShutDownOnExit<'a>(&'a Shared);

impl Drop for ShutDownOnExit<'_> {
    fn drop(&mut self) {
        // A no-op after the reader's own shut-down: the first reason counts.
        self.0.shut_down(READER_STOPPED);
    }
}

/// Reads frames until the connection ends, then closes it (failing every
/// pending call). Meanwhile fails each call that comes due unanswered
/// ([`pending::watch_deadlines`]).
pub(crate) async fn run(
    shared: Arc<Shared>,
    frames: Frames,
    handler: Option<InboundService>,
    max_in_flight: usize,
    max_idle: Option<Duration>,
) {
    let _shut_down = ShutDownOnExit(&shared);
    let cancel = shared.cancel.clone();
    let idle = OptionFuture::from(max_idle.map(|max_idle| shared.activity.idle_for(max_idle)));
    let reason = tokio::select! {
        biased;
        () = cancel.cancelled() => super::CLOSED_LOCALLY.to_owned(),
        Some(idle) = idle => format!("closed after {idle:?} without reading or writing"),
        reason = read_loop(&shared, frames, handler, max_in_flight) => reason,
        never = pending::watch_deadlines(&shared.pending) => match never {},
    };
    tracing::debug!(peer = %shared.peer, %reason, "connection closed");
    shared.shut_down(&reason);
}

/// Returns why reading stopped.
async fn read_loop(
    shared: &Shared,
    mut frames: Frames,
    handler: Option<InboundService>,
    max_in_flight: usize,
) -> String {
    let mut handling: FuturesUnordered<Handling> = FuturesUnordered::new();
    // Replies the write queue had no room for. Reading goes on while they
    // wait, so responses keep completing calls; they count against the
    // handlers' limit, which bounds them.
    let mut unsent: VecDeque<RemotingCommand> = VecDeque::new();
    // The wait for room for the first of them, kept across the loop's turns
    // so that it keeps its place among the senders waiting for room.
    let mut room: Option<BoxFuture<'static, Room>> = None;
    loop {
        if room.is_none() && !unsent.is_empty() {
            room = Some(shared.outbound.clone().reserve_owned().boxed());
        }
        tokio::select! {
            Some(permit) = OptionFuture::from(room.as_mut()), if room.is_some() => {
                room = None;
                let Ok(permit) = permit else {
                    return super::CLOSED_LOCALLY.to_owned();
                };
                if let Some(reply) = unsent.pop_front() {
                    permit.send(Outbound::Reply(reply));
                }
            }
            Some(reply) = handling.next(), if !handling.is_empty() => {
                if let Some(reply) = reply {
                    if !queue_reply(shared, &mut unsent, reply) {
                        return super::CLOSED_LOCALLY.to_owned();
                    }
                }
            }
            // Reading never stops for busy handlers or a full write queue, so
            // a hang-up is always seen and responses keep completing calls; a
            // request over the limit is refused at once, as Java refuses what
            // its executor rejects.
            frame = frames.next() => match frame.inspect(|_| {
                shared.activity.read();
            }) {
                None => return PEER_CLOSED.to_owned(),
                Some(Err(error)) => return error.to_string(),
                Some(Ok(cmd)) if cmd.is_response() => complete(shared, cmd),
                Some(Ok(cmd)) if handling.len() + unsent.len() >= max_in_flight => {
                    if let Some(reply) = system_busy(shared, cmd) {
                        if unsent.len() >= max_in_flight {
                            // The peer is not reading what is written to it.
                            tracing::debug!(peer = %shared.peer, opaque = reply.opaque, "write queue full; refusal not sent");
                        } else if !queue_reply(shared, &mut unsent, reply) {
                            return super::CLOSED_LOCALLY.to_owned();
                        }
                    }
                }
                Some(Ok(cmd)) => handling.push(handle(shared, handler.as_ref(), cmd)),
            },
        }
    }
}

/// Queues `reply` for the writer without waiting: behind the replies already
/// waiting, or at once when the queue has room. False once the writer is gone.
fn queue_reply(
    shared: &Shared,
    unsent: &mut VecDeque<RemotingCommand>,
    reply: RemotingCommand,
) -> bool {
    if !unsent.is_empty() {
        unsent.push_back(reply);
        return true;
    }
    match shared.outbound.try_send(Outbound::Reply(reply)) {
        Ok(()) => true,
        Err(TrySendError::Full(Outbound::Reply(reply))) => {
            unsent.push_back(reply);
            true
        }
        Err(_) => false,
    }
}

fn complete(shared: &Shared, response: RemotingCommand) {
    let Some(stray) = shared.pending.complete(response) else {
        shared.answered.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tracing::debug!(
        peer = %shared.peer,
        opaque = stray.opaque,
        code = %stray.response_code(),
        "response without a waiting call dropped"
    );
}

/// Runs the handler for one request from the peer; resolves to the reply to
/// write, or `None` for a oneway request.
fn handle(shared: &Shared, handler: Option<&InboundService>, request: RemotingCommand) -> Handling {
    let opaque = request.opaque;
    let oneway = request.is_oneway();
    let code = request.code;
    tracing::debug!(peer = %shared.peer, opaque, code, oneway, "request from peer");
    let Some(handler) = handler.cloned() else {
        let reply = (!oneway).then(|| not_supported(code, opaque));
        return futures::future::ready(reply).boxed();
    };
    let peer = Arc::clone(&shared.peer);
    async move {
        // A panicking handler must not take the reader task with it: the
        // connection would look open while nothing read its responses.
        let handled = AssertUnwindSafe(handler.oneshot(request)).catch_unwind();
        let reply = match handled.await {
            Ok(Ok(reply)) => reply,
            Ok(Err(error)) => {
                tracing::warn!(%peer, opaque, code, %error, "inbound handler failed");
                RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                    .with_remark(error.to_string())
            }
            Err(_panic) => {
                tracing::error!(%peer, opaque, code, "inbound handler panicked");
                RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                    .with_remark(format!("the handler of request {code} panicked"))
            }
        };
        (!oneway).then(|| as_reply_to(reply, opaque))
    }
    .boxed()
}

/// The answer to a request that arrives while `max_inbound_in_flight` requests
/// are already being handled (none for a oneway request).
fn system_busy(shared: &Shared, request: RemotingCommand) -> Option<RemotingCommand> {
    tracing::warn!(
        peer = %shared.peer,
        opaque = request.opaque,
        code = request.code,
        "too many requests from the peer in progress; refused"
    );
    (!request.is_oneway()).then(|| {
        RemotingCommand::response(ResponseCode::SYSTEM_BUSY, request.opaque)
            .with_remark("[REJECTREQUEST]system busy, too many requests in progress")
    })
}

/// What Java answers a request code nobody handles.
pub(crate) fn not_supported(code: i32, opaque: i32) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::REQUEST_CODE_NOT_SUPPORTED, opaque)
        .with_remark(format!(" request type {code} not supported"))
}

/// Stamps a handler's answer as the response to the request with `opaque`.
fn as_reply_to(mut reply: RemotingCommand, opaque: i32) -> RemotingCommand {
    reply.opaque = opaque;
    reply.flag |= FLAG_RESPONSE;
    reply
}
