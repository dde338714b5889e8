//! The writer task: the only owner of the sink, so a frame is written whole or
//! not at all, whatever happens to the caller that queued it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::SinkExt;
use rocketmq_model::ResponseCode;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedWrite;

use super::Shared;
use super::coalesce::{self, Coalescing};
use crate::codec::RemotingCodec;
use crate::command::RemotingCommand;
use crate::error::{RemotingError, Result};
use crate::transport::BoxedIo;

/// Frames written before a flush when callers queue faster than the socket drains.
const MAX_BATCH: usize = 64;

/// How long a closing connection waits to tell its peer (see `say_goodbye`).
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// A frame queued for writing.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A two-way request; an encode error fails its pending call.
    Request(RemotingCommand),
    /// A oneway request; `written` learns when it was flushed (or why not).
    Oneway {
        /// The request.
        cmd: RemotingCommand,
        /// Told once the frame is flushed.
        written: oneshot::Sender<Result<()>>,
    },
    /// A reply to a request from the peer.
    Reply(RemotingCommand),
}

type Sink = FramedWrite<WriteHalf<BoxedIo>, RemotingCodec>;

/// Writes queued frames until the connection closes; on an I/O error it closes
/// the connection.
pub(crate) async fn run(shared: Arc<Shared>, mut sink: Sink, mut queue: mpsc::Receiver<Outbound>) {
    let cancel = shared.cancel.clone();
    let result = tokio::select! {
        biased;
        () = cancel.cancelled() => Ok(()),
        result = write_loop(&shared, &mut sink, &mut queue) => result,
    };
    match result {
        Ok(()) => say_goodbye(&shared, sink).await,
        Err(error) => tracing::debug!(peer = %shared.peer, %error, "connection write failed"),
    }
}

/// Ends the write side of a connection closed in order: TLS sends its
/// close_notify (without one, a Java peer logs an SSL error for every
/// connection a client closes), then TCP its FIN. Frames not yet handed to
/// the transport are not sent: their callers were told the connection
/// closed (what the transport holds, perhaps part of a frame, goes first). A peer that
/// does not take the few bytes within [`GOODBYE_TIMEOUT`] is not waited for.
async fn say_goodbye(shared: &Shared, sink: Sink) {
    let mut io = sink.into_inner();
    match tokio::time::timeout(GOODBYE_TIMEOUT, io.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::debug!(peer = %shared.peer, %error, "connection shutdown failed")
        }
        Err(_) => tracing::debug!(peer = %shared.peer, "connection shutdown timed out"),
    }
}

/// Writes until the queue closes or a write fails; a failure closes the
/// connection with its cause before the oneway callers waiting for their
/// flush learn of it, so they report that cause.
async fn write_loop(
    shared: &Shared,
    sink: &mut Sink,
    queue: &mut mpsc::Receiver<Outbound>,
) -> Result<()> {
    let mut written = Vec::new();
    let result = write_frames(shared, sink, queue, &mut written).await;
    if let Err(error) = &result {
        shared.shut_down(&format!("write failed: {error}"));
    }
    drop(written);
    result
}

async fn write_frames(
    shared: &Shared,
    sink: &mut Sink,
    queue: &mut mpsc::Receiver<Outbound>,
    written: &mut Vec<oneshot::Sender<Result<()>>>,
) -> Result<()> {
    let mut coalescing = Coalescing::default();
    while let Some(first) = queue.recv().await {
        // Callers whose responses arrived since the last write may be about
        // to send again.
        let mut expected = shared.answered.swap(0, Ordering::Relaxed);
        feed(shared, sink, first, written).await?;
        let mut batched = 1;
        let mut yielded_at = None;
        while batched < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => {
                    feed(shared, sink, next, written).await?;
                    batched += 1;
                }
                Err(mpsc::error::TryRecvError::Empty)
                    if yielded_at.is_none() && coalescing.should_yield(batched, expected) =>
                {
                    yielded_at = Some(batched);
                    coalesce::requeue().await;
                    expected += shared.answered.swap(0, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        if let Some(at) = yielded_at {
            coalescing.yielded(batched - at);
        }
        sink.flush().await?;
        shared.activity.wrote();
        for ack in written.drain(..) {
            let _ = ack.send(Ok(()));
        }
    }
    Ok(())
}

/// Encodes one frame into the sink's buffer. An encode error concerns that
/// frame only (nothing was buffered): its caller is told, or a reply that
/// cannot be encoded (e.g. too large) is answered SYSTEM_ERROR instead, so
/// the peer does not wait out its timeout. An I/O error is fatal.
async fn feed(
    shared: &Shared,
    sink: &mut Sink,
    outbound: Outbound,
    written: &mut Vec<oneshot::Sender<Result<()>>>,
) -> Result<()> {
    let (cmd, ack) = match outbound {
        Outbound::Request(cmd) | Outbound::Reply(cmd) => (cmd, None),
        Outbound::Oneway { cmd, written } => (cmd, Some(written)),
    };
    let opaque = cmd.opaque;
    let is_reply = cmd.is_response();
    let is_request = !is_reply && ack.is_none();
    match sink.feed(cmd).await {
        Ok(()) => {
            written.extend(ack);
            Ok(())
        }
        Err(RemotingError::Io(error)) => Err(RemotingError::Io(error)),
        Err(error) => {
            tracing::warn!(peer = %shared.peer, opaque, %error, "frame not sent");
            if let Some(ack) = ack {
                let _ = ack.send(Err(error));
            } else if is_request {
                shared.pending.fail(opaque, error);
            } else if is_reply {
                let instead = RemotingCommand::response(ResponseCode::SYSTEM_ERROR, opaque)
                    .with_remark(format!("the reply could not be sent: {error}"));
                match sink.feed(instead).await {
                    Err(RemotingError::Io(error)) => return Err(RemotingError::Io(error)),
                    Err(error) => {
                        tracing::warn!(peer = %shared.peer, opaque, %error, "error reply not sent")
                    }
                    Ok(()) => {}
                }
            }
            Ok(())
        }
    }
}
