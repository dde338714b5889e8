//! Connection tests over `tokio::io::duplex` with a scripted fake peer that
//! reads and writes frames through the codec, under paused time.

use std::sync::Mutex;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use rocketmq_model::{RequestCode, ResponseCode};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::time::Instant;
use tokio_util::codec::Framed;

use super::*;
use crate::command::{FLAG_ONEWAY, FLAG_RESPONSE};

/// The other end of a connection, driven by the test.
struct FakePeer {
    frames: Framed<DuplexStream, RemotingCodec>,
}

impl FakePeer {
    /// The next frame; fails instead of hanging (paused time jumps to the
    /// deadline once idle).
    async fn recv(&mut self) -> RemotingCommand {
        let next = tokio::time::timeout(Duration::from_secs(60), self.frames.next());
        next.await.expect("no frame came").unwrap().unwrap()
    }

    async fn send(&mut self, cmd: RemotingCommand) {
        self.frames.send(cmd).await.unwrap();
    }

    async fn write_raw(&mut self, bytes: &[u8]) {
        self.frames.get_mut().write_all(bytes).await.unwrap();
    }

    /// Whether the connection's side of the stream is gone (EOF). Fails
    /// instead of hanging: paused time jumps to the deadline once idle.
    async fn sees_eof(&mut self) -> bool {
        let next = tokio::time::timeout(Duration::from_secs(60), self.frames.next());
        next.await.expect("no EOF").is_none()
    }
}

fn pair(config: &ConnectionConfig) -> (Connection, FakePeer) {
    pair_with(config, None)
}

fn pair_with(config: &ConnectionConfig, handler: Option<InboundService>) -> (Connection, FakePeer) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let conn = match handler {
        Some(handler) => Connection::with_inbound(Box::new(ours), "peer:1", config, |_| handler),
        None => Connection::new(Box::new(ours), "peer:1", config),
    };
    let peer = FakePeer {
        frames: Framed::new(theirs, RemotingCodec::default()),
    };
    (conn, peer)
}

fn request(code: RequestCode) -> RemotingCommand {
    RemotingCommand::request(code)
}

fn reply(to: &RemotingCommand, remark: &str) -> RemotingCommand {
    RemotingCommand::response(ResponseCode::SUCCESS, to.opaque).with_remark(remark)
}

fn is_closed_error(err: &RemotingError) -> bool {
    matches!(err, RemotingError::ConnectionClosed { .. })
}

#[tokio::test(start_paused = true)]
async fn concurrent_calls_answered_out_of_order() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = request(RequestCode::SEND_MESSAGE);
            cmd.ext_fields.insert("i", i.to_string());
            tokio::spawn(conn.send(cmd))
        })
        .collect();
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(peer.recv().await);
    }
    for req in received.iter().rev() {
        let remark = format!("answer {}", req.ext_fields["i"]);
        peer.send(reply(req, &remark)).await;
    }
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.remark.unwrap(), format!("answer {i}"));
    }
    assert_eq!(conn.pending_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn hang_up_fails_every_pending_call_at_once() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let calls: Vec<_> = (0..3)
        .map(|_| tokio::spawn(conn.send(request(RequestCode::HEART_BEAT))))
        .collect();
    for _ in 0..3 {
        peer.recv().await;
    }
    let start = Instant::now();
    drop(peer);
    for call in calls {
        let err = call.await.unwrap().unwrap_err();
        assert!(is_closed_error(&err), "{err}");
    }
    assert_eq!(Instant::now(), start, "no timer may have elapsed");
    assert!(conn.is_closed());
    let later = conn
        .send(request(RequestCode::HEART_BEAT))
        .await
        .unwrap_err();
    assert!(is_closed_error(&later), "{later}");
    assert!(later.to_string().contains("peer closed"), "{later}");
}

/// After a call to `req` timed out: its entry is gone, its late answer is
/// dropped, and the connection takes the next call.
async fn late_answer_is_dropped_and_the_connection_goes_on(
    conn: &Connection,
    peer: &mut FakePeer,
    req: &RemotingCommand,
) {
    assert_eq!(conn.pending_count(), 0);
    peer.send(reply(req, "late")).await;
    let next = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let req = peer.recv().await;
    peer.send(reply(&req, "fresh")).await;
    assert_eq!(next.await.unwrap().unwrap().remark.unwrap(), "fresh");
}

#[tokio::test(start_paused = true)]
async fn timeout_removes_the_pending_entry() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let call = tokio::time::timeout(
        Duration::from_secs(3),
        conn.send(request(RequestCode::HEART_BEAT)),
    );
    let (result, req) = tokio::join!(call, peer.recv());
    assert!(result.is_err(), "the call must time out");
    late_answer_is_dropped_and_the_connection_goes_on(&conn, &mut peer, &req).await;
}

#[tokio::test(start_paused = true)]
async fn a_call_unanswered_by_its_deadline_times_out_then_and_the_connection_goes_on() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let after = Duration::from_secs(3);
    let start = Instant::now();
    let due = Due {
        at: start + after,
        after,
    };
    let call = async {
        conn.start(request(RequestCode::HEART_BEAT), Some(due))?
            .answer()
            .await
    };
    let (result, req) = tokio::join!(call, peer.recv());
    assert_eq!(start.elapsed(), after);
    let err = result.unwrap_err();
    assert!(
        matches!(&err, RemotingError::Timeout { addr, after: waited } if addr == "peer:1" && *waited == after),
        "{err}"
    );
    late_answer_is_dropped_and_the_connection_goes_on(&conn, &mut peer, &req).await;
}

/// A stream whose reads panic.
struct PanickingReads;

impl tokio::io::AsyncRead for PanickingReads {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        panic!("a read that panics");
    }
}

impl tokio::io::AsyncWrite for PanickingReads {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[tokio::test(start_paused = true)]
async fn a_reader_that_unwinds_closes_the_connection_and_fails_its_calls() {
    let conn = Connection::new(
        Box::new(PanickingReads),
        "peer:1",
        &ConnectionConfig::default(),
    );
    // The reader panics at its first read; the calls it would have answered,
    // or timed out, fail instead of waiting for ever.
    let call = async {
        conn.closed().await;
        conn.send(request(RequestCode::HEART_BEAT)).await
    };
    let err = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the connection must close and the call fail, not hang")
        .unwrap_err();
    assert!(
        matches!(&err, RemotingError::ConnectionClosed { reason, .. } if reason == reader::READER_STOPPED),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_future_removes_its_entry() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let mut call = conn.send(request(RequestCode::HEART_BEAT));
    assert!(futures::poll!(&mut call).is_pending());
    assert_eq!(conn.pending_count(), 1);
    let req = peer.recv().await;
    drop(call);
    assert_eq!(conn.pending_count(), 0);
    peer.send(reply(&req, "nobody listens")).await;
    assert!(!conn.is_closed());
}

#[tokio::test(start_paused = true)]
async fn pending_limit_is_enforced() {
    let config = ConnectionConfig {
        max_pending: 2,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(&config);
    let first = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let _second = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let req = peer.recv().await;
    peer.recv().await;
    let err = conn
        .send(request(RequestCode::HEART_BEAT))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::TooManyPending { limit: 2, .. }),
        "{err}"
    );
    peer.send(reply(&req, "ok")).await;
    first.await.unwrap().unwrap();
    assert_eq!(conn.pending_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn oversized_announced_frame_fails_pending_calls_and_closes() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let call = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    peer.recv().await;
    // A length word announcing a 2 GiB frame.
    peer.write_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
    let err = call.await.unwrap().unwrap_err();
    assert!(is_closed_error(&err), "{err}");
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    assert!(conn.is_closed());
    assert!(peer.sees_eof().await);
}

#[tokio::test(start_paused = true)]
async fn peer_request_gets_a_reply_with_its_opaque() {
    let handler = InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)
            .with_remark(format!("handled {}", req.code)))
    }));
    let (_conn, mut peer) = pair_with(&ConnectionConfig::default(), Some(handler));
    let mut req = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    req.opaque = 77;
    peer.send(req).await;
    let answer = peer.recv().await;
    assert_eq!(answer.opaque, 77);
    assert_eq!(answer.flag, FLAG_RESPONSE);
    assert_eq!(answer.remark.unwrap(), "handled 307");
}

#[tokio::test(start_paused = true)]
async fn oneway_peer_request_gets_no_reply() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let handler = InboundService::new(tower::service_fn(move |req: RemotingCommand| {
        record.lock().unwrap().push(req.opaque);
        async move { Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)) }
    }));
    let (_conn, mut peer) = pair_with(&ConnectionConfig::default(), Some(handler));
    let mut notify = request(RequestCode::NOTIFY_CONSUMER_IDS_CHANGED);
    notify.opaque = 5;
    notify.flag = FLAG_ONEWAY;
    peer.send(notify).await;
    let mut two_way = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    two_way.opaque = 6;
    peer.send(two_way).await;
    // The only frame written back answers the two-way request.
    assert_eq!(peer.recv().await.opaque, 6);
    assert_eq!(*seen.lock().unwrap(), [5, 6]);
}

#[tokio::test(start_paused = true)]
async fn without_handler_requests_are_not_supported() {
    let (_conn, mut peer) = pair(&ConnectionConfig::default());
    let mut req = request(RequestCode::CONSUME_MESSAGE_DIRECTLY);
    req.opaque = 9;
    peer.send(req).await;
    let answer = peer.recv().await;
    assert_eq!(answer.opaque, 9);
    assert!(answer.is_response());
    assert_eq!(
        answer.response_code(),
        ResponseCode::REQUEST_CODE_NOT_SUPPORTED
    );
    assert_eq!(answer.remark.unwrap(), " request type 309 not supported");
}

#[tokio::test(start_paused = true)]
async fn handler_error_is_answered_with_system_error() {
    let handler = InboundService::new(tower::service_fn(|_req: RemotingCommand| async move {
        Err::<RemotingCommand, _>(RemotingError::NoAddress("boom".into()))
    }));
    let (_conn, mut peer) = pair_with(&ConnectionConfig::default(), Some(handler));
    let mut req = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    req.opaque = 3;
    peer.send(req).await;
    let answer = peer.recv().await;
    assert_eq!(
        (answer.opaque, answer.response_code()),
        (3, ResponseCode::SYSTEM_ERROR)
    );
    assert!(answer.remark.unwrap().contains("boom"));
}

/// Java answers SYSTEM_ERROR when a processor throws; a panicking handler
/// took the reader task with it, leaving a connection that looked open
/// while no response was read again.
#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_answered_with_system_error_and_reading_goes_on() {
    let handler = InboundService::new(tower::service_fn(|_req: RemotingCommand| async move {
        panic!("handler bug");
        #[allow(unreachable_code)]
        Ok::<RemotingCommand, RemotingError>(RemotingCommand::response(ResponseCode::SUCCESS, 0))
    }));
    let (conn, mut peer) = pair_with(&ConnectionConfig::default(), Some(handler));
    let mut req = request(RequestCode::CHECK_TRANSACTION_STATE);
    req.opaque = 7;
    peer.send(req).await;
    let answer = peer.recv().await;
    assert_eq!(
        (answer.opaque, answer.response_code()),
        (7, ResponseCode::SYSTEM_ERROR)
    );
    assert!(answer.remark.unwrap().contains("panicked"));

    let call = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let sent = peer.recv().await;
    peer.send(reply(&sent, "still read")).await;
    let answer = tokio::time::timeout(Duration::from_secs(60), call).await;
    assert_eq!(
        answer.unwrap().unwrap().unwrap().remark.as_deref(),
        Some("still read")
    );
    assert!(!conn.is_closed());
}

/// A reply too large to send is answered SYSTEM_ERROR, as the peer would
/// otherwise wait out its timeout for an answer that never comes.
#[tokio::test(start_paused = true)]
async fn a_reply_that_cannot_be_sent_is_answered_with_system_error() {
    let handler = InboundService::new(tower::service_fn(|_req: RemotingCommand| async move {
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_body(vec![b'x'; 4096]))
    }));
    let config = ConnectionConfig {
        max_frame_len: 1024,
        ..ConnectionConfig::default()
    };
    let (_conn, mut peer) = pair_with(&config, Some(handler));
    let mut req = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    req.opaque = 9;
    peer.send(req).await;
    let answer = peer.recv().await;
    assert_eq!(
        (answer.opaque, answer.response_code()),
        (9, ResponseCode::SYSTEM_ERROR)
    );
    assert!(
        answer.remark.unwrap().contains("could not be sent"),
        "says why"
    );
}

/// Answering a peer's request never stops the reading: with the write queue
/// full (the peer reads slowly), a response that arrives is still handed to
/// its caller. The reader used to wait for room for its reply first.
#[tokio::test(start_paused = true)]
async fn a_reply_waiting_for_room_does_not_stop_responses() {
    let handler = InboundService::new(tower::service_fn(|_req: RemotingCommand| async move {
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0))
    }));
    let config = ConnectionConfig {
        write_queue: 1,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair_with(&config, Some(handler));
    let first = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let first_sent = peer.recv().await;
    // The peer stops reading: 40 KiB sends fill the 64 KiB pipe and the queue.
    let fillers: Vec<_> = (0..4)
        .map(|_| {
            let cmd = request(RequestCode::SEND_MESSAGE_V2).with_body(vec![b'x'; 40 * 1024]);
            tokio::spawn(conn.send(cmd))
        })
        .collect();
    let mut rounds = 0;
    while conn.shared().outbound.capacity() > 0 || conn.pending_count() < 5 {
        rounds += 1;
        assert!(rounds < 10_000, "the senders never filled the queue");
        tokio::task::yield_now().await;
    }
    let mut asks = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    asks.opaque = 1_000_000;
    peer.send(asks).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    peer.send(reply(&first_sent, "answered")).await;
    let answer = tokio::time::timeout(Duration::from_secs(10), first).await;
    assert_eq!(
        answer
            .expect("the response was read")
            .unwrap()
            .unwrap()
            .remark
            .as_deref(),
        Some("answered")
    );
    // The peer reads again: every frame goes out, the reply among them.
    let mut replied = false;
    for _ in 0..5 {
        let frame = peer.recv().await;
        if frame.is_response() {
            assert_eq!(frame.opaque, 1_000_000);
            replied = true;
        } else {
            peer.send(reply(&frame, "stored")).await;
        }
    }
    assert!(replied, "the reply was written once there was room");
    for filler in fillers {
        filler.await.unwrap().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn peer_request_interleaved_before_a_response() {
    let notified = Arc::new(Mutex::new(0));
    let count = Arc::clone(&notified);
    let handler = InboundService::new(tower::service_fn(move |_req: RemotingCommand| {
        *count.lock().unwrap() += 1;
        async move { Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)) }
    }));
    let (conn, mut peer) = pair_with(&ConnectionConfig::default(), Some(handler));
    let heartbeat = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let req = peer.recv().await;
    let mut notify = request(RequestCode::NOTIFY_CONSUMER_IDS_CHANGED);
    notify.opaque = req.opaque; // the broker's own counter may collide
    notify.flag = FLAG_ONEWAY;
    peer.send(notify).await;
    peer.send(reply(&req, "heartbeat ok")).await;
    assert_eq!(
        heartbeat.await.unwrap().unwrap().remark.unwrap(),
        "heartbeat ok"
    );
    assert_eq!(*notified.lock().unwrap(), 1);
}

/// Callers that find the writer's queue full wait for room, and every
/// request still goes out and gets its answer.
#[tokio::test(start_paused = true)]
async fn a_full_write_queue_makes_callers_wait_not_fail() {
    let config = ConnectionConfig {
        write_queue: 1,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(&config);
    // 40 KiB bodies: the 64 KiB pipe takes one and a half before the writer
    // blocks, the queue holds one more, and the others wait for room.
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let conn = conn.clone();
            let cmd = request(RequestCode::SEND_MESSAGE_V2).with_body(vec![b'x'; 40 * 1024]);
            tokio::spawn(async move { conn.send(cmd).await })
        })
        .collect();
    // Every call registered and the queue full; no call may end before the
    // peer answers (one that did failed instead of waiting).
    let mut rounds = 0;
    while conn.pending_count() < calls.len() || conn.shared().outbound.capacity() > 0 {
        assert!(
            !calls.iter().any(|call| call.is_finished()),
            "a caller gave up on a full queue"
        );
        rounds += 1;
        assert!(rounds < 10_000, "the callers never filled the queue");
        tokio::task::yield_now().await;
    }
    for _ in 0..calls.len() {
        let sent = peer.recv().await;
        assert_eq!(sent.body.len(), 40 * 1024);
        peer.send(reply(&sent, "stored")).await;
    }
    for call in calls {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.remark.as_deref(), Some("stored"));
    }
    assert_eq!(conn.pending_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn oneway_send_resolves_once_written() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let mut cmd = request(RequestCode::UNREGISTER_CLIENT);
    cmd.set_oneway();
    let response = conn.send(cmd).await.unwrap();
    assert_eq!(response.response_code(), ResponseCode::SUCCESS);
    let sent = peer.recv().await;
    assert!(sent.is_oneway());
    assert_eq!(sent.opaque, response.opaque);
    assert_eq!(conn.pending_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn unsendable_request_fails_alone() {
    let config = ConnectionConfig {
        max_frame_len: 1024,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair(&config);
    let huge = request(RequestCode::SEND_MESSAGE).with_body(vec![0u8; 4096]);
    let err = conn.send(huge).await.unwrap_err();
    assert!(matches!(err, RemotingError::FrameTooLarge { .. }), "{err}");
    assert_eq!(conn.pending_count(), 0);
    let next = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let req = peer.recv().await;
    assert_eq!(req.code, RequestCode::HEART_BEAT.0);
    peer.send(reply(&req, "ok")).await;
    next.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn close_fails_calls_and_ends_the_tasks() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let call = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    peer.recv().await;
    conn.close();
    let err = call.await.unwrap().unwrap_err();
    assert!(is_closed_error(&err), "{err}");
    tokio::time::timeout(Duration::from_secs(60), conn.closed())
        .await
        .unwrap();
    assert!(peer.sees_eof().await);
    assert_eq!(conn.close_reason().as_deref(), Some(CLOSED_LOCALLY));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_closes_the_connection() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let weak = conn.downgrade();
    assert!(weak.upgrade().is_some());
    drop(conn);
    assert!(peer.sees_eof().await);
    assert!(weak.upgrade().is_none());
}

#[tokio::test(start_paused = true)]
async fn busy_handlers_refuse_new_requests_and_a_hang_up_is_still_seen() {
    // Handlers that never finish: the connection is saturated at two.
    let handler = InboundService::new(tower::service_fn(|_req: RemotingCommand| {
        futures::future::pending::<Result<RemotingCommand>>()
    }));
    let config = ConnectionConfig {
        max_inbound_in_flight: 2,
        ..ConnectionConfig::default()
    };
    let (conn, mut peer) = pair_with(&config, Some(handler));
    for opaque in 1..=3 {
        let mut req = request(RequestCode::GET_CONSUMER_RUNNING_INFO);
        req.opaque = opaque;
        peer.send(req).await;
    }
    // The third is refused at once; the first two are still being handled.
    let refused = peer.recv().await;
    assert_eq!(refused.opaque, 3);
    assert_eq!(refused.response_code(), ResponseCode::SYSTEM_BUSY);
    assert!(refused.remark.unwrap().starts_with("[REJECTREQUEST]"));
    // Responses to our own calls are still read while the handlers are busy.
    let call = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let sent = peer.recv().await;
    peer.send(reply(&sent, "ok")).await;
    assert_eq!(call.await.unwrap().unwrap().remark.as_deref(), Some("ok"));
    // And a hang-up closes the connection although two handlers never return.
    drop(peer);
    tokio::time::timeout(Duration::from_secs(5), conn.closed())
        .await
        .expect("the connection closes on hang-up");
    assert!(conn.is_closed());
}

/// A stream that counts the writes reaching it.
struct CountingIo {
    inner: DuplexStream,
    writes: Arc<std::sync::atomic::AtomicUsize>,
}

impl tokio::io::AsyncRead for CountingIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountingIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            if n > 0 {
                self.writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        written
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Callers answered together send their next requests together: the writer
/// waits for them (on the runtime users run, where a task woken last runs
/// first, so the writer would otherwise write the first caller's frame alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn callers_answered_together_send_again_in_one_write() {
    const CALLERS: usize = 8;
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = CountingIo {
        inner: ours,
        writes: Arc::clone(&writes),
    };
    let conn = Connection::new(Box::new(io), "peer:1", &ConnectionConfig::default());
    let mut peer = FakePeer {
        frames: Framed::new(theirs, RemotingCodec::default()),
    };
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                for _ in 0..2 {
                    conn.send(request(RequestCode::SEND_MESSAGE_V2))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    let guard = Duration::from_secs(10);
    let mut first_round = Vec::new();
    for _ in 0..CALLERS {
        first_round.push(tokio::time::timeout(guard, peer.recv()).await.unwrap());
    }
    let before = writes.load(std::sync::atomic::Ordering::SeqCst);
    // All the answers in one write, so the connection reads them at once.
    let mut answers = bytes::BytesMut::new();
    for req in &first_round {
        crate::codec::frame::encode(&reply(req, "ok"), &mut answers).unwrap();
    }
    peer.write_raw(&answers).await;
    for _ in 0..CALLERS {
        let req = tokio::time::timeout(guard, peer.recv()).await.unwrap();
        peer.send(reply(&req, "ok")).await;
    }
    for caller in callers {
        tokio::time::timeout(guard, caller).await.unwrap().unwrap();
    }
    let second_round = writes.load(std::sync::atomic::Ordering::SeqCst) - before;
    // One write, or two when the runtime's periodic I/O poll (every 61 task
    // polls) wakes the waiting writer while the callers are still running.
    assert!(
        second_round <= 2,
        "{second_round} writes for {CALLERS} frames"
    );
}

#[tokio::test(start_paused = true)]
async fn a_connection_idle_for_the_limit_is_closed_and_traffic_keeps_it_open() {
    let (conn, mut peer) = pair(&ConnectionConfig::default());
    let start = Instant::now();
    // A call answered after 100 s: both the request and its answer count.
    let call = tokio::spawn(conn.send(request(RequestCode::HEART_BEAT)));
    let req = peer.recv().await;
    tokio::time::sleep_until(start + Duration::from_secs(100)).await;
    peer.send(reply(&req, "late but alive")).await;
    call.await.unwrap().unwrap();
    assert!(!conn.is_closed());
    // Then nothing: the connection closes 120 s after the check that saw
    // that answer (checks every 30 s: at 120 s), so at 240 s; between the
    // limit and a quarter more after the last frame.
    tokio::time::timeout(Duration::from_secs(600), conn.closed())
        .await
        .expect("the idle connection was never closed");
    assert_eq!(Instant::now(), start + Duration::from_secs(240));
    assert!(
        conn.close_reason()
            .unwrap()
            .contains("without reading or writing")
    );
    assert!(peer.sees_eof().await, "the peer is told");
}

#[tokio::test(start_paused = true)]
async fn without_an_idle_limit_a_quiet_connection_stays_open() {
    let config = ConnectionConfig {
        max_idle: None,
        ..ConnectionConfig::default()
    };
    let (conn, _peer) = pair(&config);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!conn.is_closed());
}
