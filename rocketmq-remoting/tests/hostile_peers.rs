//! Hostile and broken peers, on the memory transport with paused time: a
//! 2 GiB frame announcement, a peer that stops reading, one that never
//! answers, a server that drops every connection each second under 1,000
//! concurrent calls; and secrets kept out of `Debug` and traces.
//!
//! Tasks are counted with the runtime's `num_alive_tasks` (current-thread
//! runtime), before and after, to show that nothing is left running.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::client::RemotingClient;
use rocketmq_remoting::codec::{DEFAULT_MAX_FRAME_LEN, RemotingCodec};
use rocketmq_remoting::connection::{Connection, ConnectionConfig, InboundService};
use rocketmq_remoting::hook::{AclHook, Credentials};
use rocketmq_remoting::server::Server;
use rocketmq_remoting::transport::{BoxedIo, Listener, MemoryNetwork, Transport};
use rocketmq_remoting::{RemotingCommand, RemotingError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

const BROKER: &str = "broker-a:10911";
const SECOND: Duration = Duration::from_secs(1);

/// A length word announcing a frame of exactly 2 GiB (length word included).
const TWO_GIB_FRAME: [u8; 4] = 0x7FFF_FFFCu32.to_be_bytes();
const TWO_GIB: usize = 2 * 1024 * 1024 * 1024;

/// Awaits `fut`, failing the test instead of hanging (paused time jumps to
/// the deadline as soon as everything is idle).
async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(600), fut)
        .await
        .expect("awaited condition never came")
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (on paused time, with a deadline) until exactly `baseline` tasks
/// are alive.
async fn tasks_settle_to(baseline: usize) {
    within(async {
        while alive_tasks() != baseline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

fn heartbeat(who: &str) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT);
    cmd.ext_fields.insert("who", who);
    cmd
}

fn memory_client(net: &MemoryNetwork) -> RemotingClient {
    RemotingClient::builder().transport(net.clone()).build()
}

/// Reads one whole frame off a raw stream and returns its bytes.
async fn read_frame(io: &mut BoxedIo) -> Vec<u8> {
    let mut word = [0u8; 4];
    io.read_exact(&mut word).await.unwrap();
    let mut rest = vec![0u8; u32::from_be_bytes(word) as usize];
    io.read_exact(&mut rest).await.unwrap();
    [word.to_vec(), rest].concat()
}

/// Whether the other end of `io` has closed (reads end of stream).
async fn sees_eof(io: &mut BoxedIo) -> bool {
    let mut sink = Vec::new();
    within(io.read_to_end(&mut sink)).await.is_ok()
}

#[test]
fn the_decoder_rejects_a_2_gib_announcement_without_reserving_for_it() {
    let mut src = BytesMut::from(&TWO_GIB_FRAME[..]);
    let before = src.capacity();
    let err = RemotingCodec::default().decode(&mut src).unwrap_err();
    assert!(
        matches!(err, RemotingError::FrameTooLarge { limit, actual }
            if limit == DEFAULT_MAX_FRAME_LEN && actual == TWO_GIB),
        "{err:?}"
    );
    assert_eq!(src.capacity(), before, "nothing reserved for the frame");
}

#[tokio::test(start_paused = true)]
async fn a_peer_announcing_a_2_gib_frame_is_cut_off_at_the_length_word() {
    let net = MemoryNetwork::new();
    let mut listener = net.bind(BROKER).unwrap();
    let client = memory_client(&net);
    let (conn, _) = client.connection(BROKER).await.unwrap();
    let mut peer = listener.accept().await.unwrap().io;

    let call = tokio::spawn({
        let client = client.clone();
        async move { client.invoke(BROKER, heartbeat("x"), 30 * SECOND).await }
    });
    read_frame(&mut peer).await;
    let start = Instant::now();
    peer.write_all(&TWO_GIB_FRAME).await.unwrap();
    let err = within(call).await.unwrap().unwrap_err();

    // Refused on the length word: no time passed waiting for 2 GiB to arrive.
    assert_eq!(start.elapsed(), Duration::ZERO);
    let RemotingError::ConnectionClosed { reason, .. } = &err else {
        panic!("expected ConnectionClosed, got {err:?}");
    };
    assert!(
        reason.contains(&format!("frame of {TWO_GIB} bytes exceeds the limit")),
        "{reason}"
    );
    assert!(err.is_connection_error());
    assert!(conn.is_closed());
    assert_eq!(conn.close_reason().as_deref(), Some(reason.as_str()));
    assert_eq!(conn.pending_count(), 0);
    assert!(sees_eof(&mut peer).await, "the client hung up on the peer");
}

#[tokio::test(start_paused = true)]
async fn a_client_announcing_a_2_gib_frame_is_cut_off_by_the_server() {
    let net = MemoryNetwork::new();
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| async {
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0))
            }))
        },
    );
    let mut raw = net.connect(BROKER).await.unwrap();
    raw.write_all(&TWO_GIB_FRAME).await.unwrap();
    assert!(sees_eof(&mut raw).await, "the server hung up");
    within(async {
        while !server.connections().is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    within(server.shutdown()).await;
}

/// A transport whose pipes hold `capacity` bytes and whose far ends are kept
/// but never read: a peer that accepted and stopped reading.
#[derive(Clone, Default)]
struct DeafPeer {
    capacity: usize,
    held: Arc<Mutex<Vec<DuplexStream>>>,
}

impl Transport for DeafPeer {
    fn connect<'a>(&'a self, _addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxedIo>> {
        let (client_end, peer_end) = tokio::io::duplex(self.capacity);
        self.held.lock().unwrap().push(peer_end);
        Box::pin(async move { Ok(Box::new(client_end) as BoxedIo) })
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stops_reading_makes_calls_time_out_not_hang() {
    let baseline = alive_tasks();
    let deaf = DeafPeer {
        capacity: 64,
        ..DeafPeer::default()
    };
    let client = RemotingClient::builder()
        .transport(deaf.clone())
        // A short write queue, so later calls also wait for room in it.
        .connection_config(ConnectionConfig {
            write_queue: 2,
            ..ConnectionConfig::default()
        })
        .build();
    let (conn, _) = client.connection(BROKER).await.unwrap();
    let body = vec![b'x'; 4096]; // far more than the pipe holds

    let start = Instant::now();
    let calls = (0..10).map(|i| {
        let cmd = heartbeat(&i.to_string()).with_body(body.clone());
        client.invoke(BROKER, cmd, SECOND)
    });
    let results = within(futures::future::join_all(calls)).await;
    assert_eq!(start.elapsed(), SECOND, "every call ended at its timeout");
    let mut timeouts = 0;
    for result in results {
        // The first to time out closes the connection; the others, ending
        // at the same instant, learn it was closed and why.
        match result.unwrap_err() {
            RemotingError::Timeout { after, .. } if after == SECOND => timeouts += 1,
            RemotingError::ConnectionClosed { reason, .. } if reason.contains("no answer") => {}
            err => panic!("{err:?}"),
        }
    }
    assert!(timeouts >= 1);
    assert_eq!(conn.pending_count(), 0);
    assert_eq!(deaf.held.lock().unwrap().len(), 1, "one dial");

    // Shutting down does not wait on the stuck write.
    within(client.shutdown()).await;
    assert!(conn.is_closed());
    tasks_settle_to(baseline).await;
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_answers_leaves_nothing_pending_and_no_task_behind() {
    // More than the server's 64 in-flight handlers: the rest are refused with
    // SYSTEM_BUSY, and the server still sees the client hang up.
    const CALLS: usize = 100;
    let net = MemoryNetwork::new();
    // Reads every request and never answers.
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| {
                futures::future::pending::<Result<RemotingCommand, RemotingError>>()
            }))
        },
    );
    let baseline = alive_tasks();
    let client = memory_client(&net);
    let (conn, _) = client.connection(BROKER).await.unwrap();

    let start = Instant::now();
    let calls = (0..CALLS).map(|i| client.invoke(BROKER, heartbeat(&i.to_string()), SECOND));
    let results = within(futures::future::join_all(calls)).await;
    assert_eq!(start.elapsed(), SECOND);
    let timeouts = results
        .iter()
        .filter(|r| matches!(r, Err(RemotingError::Timeout { .. })))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Ok(answer) if answer.response_code() == ResponseCode::SYSTEM_BUSY))
        .count();
    let handler_slots = ConnectionConfig::default().max_inbound_in_flight;
    assert_eq!(timeouts, handler_slots, "the handled calls time out");
    assert_eq!(
        refused,
        CALLS - handler_slots,
        "the rest are refused at once"
    );
    assert_eq!(conn.pending_count(), 0);
    // The peer answered while the calls waited (its refusals): it is alive,
    // so their timeouts leave the connection open.
    assert!(!conn.is_closed(), "a peer that talks keeps its connection");
    assert!(alive_tasks() > baseline, "the connections' tasks run");

    let server_side = server.connections();
    assert_eq!(server_side.len(), 1);
    within(client.shutdown()).await;
    for conn in &server_side {
        within(conn.closed()).await;
    }
    drop(server_side);
    tasks_settle_to(baseline).await;
    within(server.shutdown()).await;
}

/// Java closes a channel whose request timed out, so a connection the
/// network silently dropped (a firewall's or NAT's idle timeout, a half-open
/// socket) is dialed again at once instead of failing every call until TCP
/// gives up. Here the first connection accepts requests and never answers;
/// later ones answer.
#[tokio::test(start_paused = true)]
async fn a_connection_that_stops_answering_is_closed_and_dialed_again() {
    let net = MemoryNetwork::new();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        move |_: &Connection| {
            let first = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            InboundService::new(tower::service_fn(move |_req: RemotingCommand| async move {
                if first {
                    futures::future::pending::<()>().await;
                }
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0))
            }))
        },
    );
    let client = memory_client(&net);
    let (stuck, _) = client.connection(BROKER).await.unwrap();
    let other = tokio::spawn({
        let client = client.clone();
        async move { client.invoke(BROKER, heartbeat("other"), 10 * SECOND).await }
    });
    tokio::task::yield_now().await;

    let err = client
        .invoke(BROKER, heartbeat("a"), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err:?}");
    assert!(stuck.is_closed(), "the unanswered connection is closed");
    let other = within(other).await.unwrap().unwrap_err();
    assert!(
        matches!(&other, RemotingError::ConnectionClosed { reason, .. } if reason.contains("got no answer in 1s")),
        "a call waiting on it learns why at once: {other:?}"
    );

    let answer = within(client.invoke(BROKER, heartbeat("b"), SECOND))
        .await
        .unwrap();
    assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "dialed again once"
    );
    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

/// A nameserver that accepts connections and never answers (a GC pause, a
/// deadlock, a load balancer without a backend) fails one call; as in Java,
/// the next call goes to the next nameserver instead of waiting on it again.
#[tokio::test(start_paused = true)]
async fn a_nameserver_that_never_answers_is_passed_over_by_the_next_call() {
    const HUNG: &str = "ns-1:9876";
    const GOOD: &str = "ns-2:9876";
    let net = MemoryNetwork::new();
    let hung = Server::spawn(
        net.bind(HUNG).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| {
                futures::future::pending::<Result<RemotingCommand, RemotingError>>()
            }))
        },
    );
    let good = Server::spawn(
        net.bind(GOOD).unwrap(),
        ConnectionConfig::default(),
        slow_echo,
    );
    let client = memory_client(&net);
    let names = client
        .name_server_service(vec![HUNG.to_owned(), GOOD.to_owned()])
        .starting_at(0);

    let start = Instant::now();
    let err = within(names.invoke(heartbeat("0"))).await.unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err:?}");
    assert_eq!(start.elapsed(), 3 * SECOND, "one request timeout");
    assert_eq!(names.current_addr().as_deref(), Some(GOOD));
    for i in 0..5 {
        let start = Instant::now();
        let answer = within(names.invoke(heartbeat("0"))).await.unwrap();
        assert_eq!(answer.response_code(), ResponseCode::SUCCESS, "call {i}");
        assert_eq!(start.elapsed(), Duration::ZERO, "call {i} waits on nobody");
    }
    within(client.shutdown()).await;
    within(hung.shutdown()).await;
    within(good.shutdown()).await;
}

/// A request the peer is slow to answer, while it answers others: the
/// connection is alive, so the timeout does not close it and take the other
/// calls on it down (Java would close it after a sync call's timeout).
#[tokio::test(start_paused = true)]
async fn a_slow_answer_on_a_talking_connection_keeps_it_open() {
    let net = MemoryNetwork::new();
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        slow_echo,
    );
    let client = memory_client(&net);
    let (conn, _) = client.connection(BROKER).await.unwrap();
    // Answered after 900 ms; its timeout is 500 ms.
    let slow = client.invoke(BROKER, heartbeat("9"), Duration::from_millis(500));
    // Answered at once, while the slow one waits; a long poll waits on.
    let quick = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.invoke(BROKER, heartbeat("0"), SECOND).await
    };
    let long = client.invoke(BROKER, heartbeat("8"), 10 * SECOND);
    let (slow, quick, long) = tokio::join!(slow, quick, long);
    assert!(
        matches!(slow, Err(RemotingError::Timeout { .. })),
        "{slow:?}"
    );
    quick.unwrap();
    long.unwrap();
    assert!(!conn.is_closed());
    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

/// Dials through a memory network, each dial taking `delay`.
#[derive(Clone)]
struct SlowDial {
    net: MemoryNetwork,
    delay: Duration,
}

impl Transport for SlowDial {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxedIo>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.net.connect(addr).await
        })
    }
}

/// A nameserver whose dial took nearly the whole timeout leaves its request
/// 50 ms to be answered: too short to judge the connection, which Java
/// keeps too (`left > 100 || left > timeout / 4`). It was closed, and with
/// a nameserver that always dials that slowly every call failed.
#[tokio::test(start_paused = true)]
async fn a_request_left_little_time_by_a_slow_dial_keeps_its_connection() {
    const NS: &str = "ns-1:9876";
    let net = MemoryNetwork::new();
    let server = Server::spawn(
        net.bind(NS).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| {
                futures::future::pending::<Result<RemotingCommand, RemotingError>>()
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(SlowDial {
            net,
            delay: Duration::from_millis(2_950),
        })
        .build();
    let names = client.name_server_service(vec![NS.to_owned()]);
    let err = within(names.invoke(heartbeat("0"))).await.unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err:?}");
    let start = Instant::now();
    let (conn, _) = within(client.connection(NS)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "kept, not dialed again");
    assert!(!conn.is_closed());
    assert_eq!(conn.pending_count(), 0);
    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

/// Tally of how calls ended.
#[derive(Debug, Default)]
struct Outcomes {
    ok: usize,
    errors: BTreeMap<&'static str, usize>,
}

impl Outcomes {
    fn record(&mut self, result: Result<RemotingCommand, RemotingError>) {
        match result {
            Ok(answer) => {
                assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
                self.ok += 1;
            }
            Err(err) => *self.errors.entry(variant(&err)).or_default() += 1,
        }
    }

    fn failed(&self) -> usize {
        self.errors.values().sum()
    }
}

fn variant(err: &RemotingError) -> &'static str {
    match err {
        RemotingError::ConnectionClosed { .. } => "ConnectionClosed",
        RemotingError::Connect { .. } => "Connect",
        RemotingError::ConnectTimeout { .. } => "ConnectTimeout",
        RemotingError::Timeout { .. } => "Timeout",
        RemotingError::TooManyPending { .. } => "TooManyPending",
        other => panic!("unexpected error kind: {other:?}"),
    }
}

/// Answers after 0 to 900 ms, depending on the request's `who`.
fn slow_echo(_conn: &Connection) -> InboundService {
    InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
        let n: u64 = req
            .ext_fields
            .get("who")
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(n % 10 * 100)).await;
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0))
    }))
}

#[tokio::test(start_paused = true)]
async fn a_thousand_calls_while_the_server_drops_connections_every_second() {
    const CALLS: usize = 1_000;
    let baseline = alive_tasks();
    let net = MemoryNetwork::new();
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        // Room for every call at once: a busy server would answer SYSTEM_BUSY.
        ConnectionConfig {
            max_inbound_in_flight: 1024,
            ..ConnectionConfig::default()
        },
        slow_echo,
    );
    let client = memory_client(&net);

    // Calls start 4 ms apart, over 4 s, each allowed 3 s.
    let mut calls = JoinSet::new();
    for i in 0..CALLS {
        let client = client.clone();
        calls.spawn(async move {
            tokio::time::sleep(Duration::from_millis(4 * i as u64)).await;
            client
                .invoke(BROKER, heartbeat(&i.to_string()), 3 * SECOND)
                .await
        });
    }

    // The server side: at every 1 s tick, close every connection.
    let mut ticks = tokio::time::interval_at(Instant::now() + SECOND, SECOND);
    let mut outcomes = Outcomes::default();
    let mut drops = 0;
    let mut closed = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                drops += 1;
                for conn in server.connections() {
                    conn.close();
                    closed += 1;
                }
            }
            joined = calls.join_next() => match joined {
                Some(joined) => outcomes.record(joined.expect("a call panicked")),
                None => break,
            },
        }
    }

    eprintln!("{CALLS} calls, {drops} drop ticks, {closed} connections closed: {outcomes:?}");
    assert_eq!(outcomes.ok + outcomes.failed(), CALLS);
    assert!(outcomes.ok > 0 && outcomes.failed() > 0, "{outcomes:?}");
    assert!(drops >= 4 && closed >= 4, "{drops} ticks, {closed} closed");
    let (conn, _) = client.connection(BROKER).await.unwrap();
    assert_eq!(conn.pending_count(), 0);
    drop(conn);

    within(client.shutdown()).await;
    within(server.shutdown()).await;
    tasks_settle_to(baseline).await;
}

/// An `io::Write` into a shared buffer, for capturing trace output.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_stay_out_of_debug_output_and_traces() {
    const SECRET: &str = "s3cr3t-key-value";
    const TOKEN: &str = "session-token-value";
    let credentials = Credentials::new("visible-access-key", SECRET).with_security_token(TOKEN);
    let hook = AclHook::new(credentials.clone());
    let net = MemoryNetwork::new();
    let client = RemotingClient::builder()
        .transport(net.clone())
        .rpc_hook(hook.clone())
        .build();
    let shown = format!("{credentials:?} {credentials:#?} {hook:?} {hook:#?} {client:?}");
    assert!(shown.contains("visible-access-key"), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");

    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global, not thread-local: with a per-thread default, a callsite first
    // reached by another test's thread can be cached as disabled and the event
    // missed. The only test of this binary that installs a subscriber.
    tracing::subscriber::set_global_default(subscriber).expect("no other subscriber");
    let server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
                let signed = req.ext_fields.contains_key("Signature");
                let code = if signed {
                    ResponseCode::SUCCESS
                } else {
                    ResponseCode::NO_PERMISSION
                };
                Ok(RemotingCommand::response(code, 0))
            }))
        },
    );
    let answer = client
        .invoke(BROKER, heartbeat("signed"), SECOND)
        .await
        .unwrap();
    assert_eq!(answer.response_code(), ResponseCode::SUCCESS, "signed");
    client.shutdown().await;
    server.shutdown().await;

    let traced = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        traced.contains(BROKER),
        "the capture saw the call: {traced}"
    );
    assert!(!traced.contains(SECRET), "{traced}");
    assert!(!traced.contains(TOKEN), "{traced}");
}
