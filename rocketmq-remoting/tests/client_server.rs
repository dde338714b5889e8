//! `RemotingClient` against `Server` over the memory transport (paused time)
//! and over loopback TCP.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::call::Call;
use rocketmq_remoting::client::{Backoff, RemotingClient};
use rocketmq_remoting::connection::{Connection, ConnectionConfig, InboundService};
use rocketmq_remoting::hook::{AclHook, Credentials};
use rocketmq_remoting::server::Server;
use rocketmq_remoting::transport::{BoxedIo, MemoryNetwork, TcpListener, Transport};
use rocketmq_remoting::{RemotingCommand, RemotingError, SerializeType};
use tokio::time::Instant;

const BROKER: &str = "broker-a:10911";

/// Answers every request with SUCCESS and a remark naming its code and the
/// value of its `who` field.
fn echo_handler(_conn: &Connection) -> InboundService {
    InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
        let who = req.ext_fields.get("who").unwrap_or_default().to_owned();
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)
            .with_remark(format!("{} {who}", req.code)))
    }))
}

fn memory_server(net: &MemoryNetwork, addr: &str) -> Server {
    Server::spawn(
        net.bind(addr).unwrap(),
        ConnectionConfig::default(),
        echo_handler,
    )
}

fn memory_client(net: &MemoryNetwork) -> RemotingClient {
    RemotingClient::builder().transport(net.clone()).build()
}

fn heartbeat(who: &str) -> RemotingCommand {
    let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT);
    cmd.ext_fields.insert("who", who);
    cmd
}

const SECOND: Duration = Duration::from_secs(1);

/// Awaits `fut`, failing the test instead of hanging (paused time advances
/// to the deadline as soon as everything is idle).
async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("awaited condition never came")
}

/// A transport that records the dials it passes on, each after `delay`.
#[derive(Clone, Default)]
struct Recording {
    net: MemoryNetwork,
    dialed: Arc<Mutex<Vec<String>>>,
    delay: Duration,
}

impl Transport for Recording {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxedIo>> {
        self.dialed.lock().unwrap().push(addr.to_owned());
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.net.connect(addr).await
        })
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_calls_share_one_connection_over_memory() {
    let net = MemoryNetwork::new();
    let server = memory_server(&net, BROKER);
    // A slow dial, so that every caller arrives while it is under way.
    let recording = Recording {
        net: net.clone(),
        delay: Duration::from_millis(100),
        ..Recording::default()
    };
    let client = RemotingClient::builder()
        .transport(recording.clone())
        .build();
    let calls = (0..10).map(|i| {
        let client = client.clone();
        async move {
            client
                .invoke(BROKER, heartbeat(&i.to_string()), SECOND)
                .await
        }
    });
    let answers = futures::future::join_all(calls).await;
    for (i, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.unwrap().remark.unwrap(), format!("34 {i}"));
    }
    assert_eq!(*recording.dialed.lock().unwrap(), [BROKER]);
    assert_eq!(server.connections().len(), 1);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn server_and_client_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::spawn(listener, ConnectionConfig::default(), echo_handler);
    let addr = server.local_addr().to_owned();
    let client = RemotingClient::new();
    let answer = client
        .invoke(&addr, heartbeat("tcp"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
    assert_eq!(answer.remark.unwrap(), "34 tcp");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn client_reconnects_after_the_server_drops_the_connection() {
    let net = MemoryNetwork::new();
    let server = memory_server(&net, BROKER);
    let client = memory_client(&net);
    client
        .invoke(BROKER, heartbeat("first"), SECOND)
        .await
        .unwrap();
    let (first, first_generation) = client.connection(BROKER).await.unwrap();
    let server_side = server.connections();
    assert_eq!(server_side.len(), 1);
    for conn in server_side {
        conn.close();
    }
    within(first.closed()).await;
    let answer = client
        .invoke(BROKER, heartbeat("again"), SECOND)
        .await
        .unwrap();
    assert_eq!(answer.remark.unwrap(), "34 again");
    let (second, second_generation) = client.connection(BROKER).await.unwrap();
    assert!(!second.is_closed());
    assert!(second_generation > first_generation);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn stale_invalidation_is_a_no_op() {
    let net = MemoryNetwork::new();
    let _server = memory_server(&net, BROKER);
    let client = memory_client(&net);
    let (first, old) = client.connection(BROKER).await.unwrap();
    assert!(client.invalidate(BROKER, old).await);
    assert!(first.is_closed());
    let (second, new) = client.connection(BROKER).await.unwrap();
    assert_ne!(old, new);
    assert!(!client.invalidate(BROKER, old).await, "stale generation");
    assert!(!second.is_closed());
    let (again, same) = client.connection(BROKER).await.unwrap();
    assert_eq!(same, new);
    assert!(!again.is_closed());
}

#[tokio::test(start_paused = true)]
async fn name_server_failover_to_the_second_address() {
    let net = MemoryNetwork::new();
    let _second = memory_server(&net, "ns-2:9876");
    let recording = Recording {
        net: net.clone(),
        ..Recording::default()
    };
    let client = RemotingClient::builder()
        .transport(recording.clone())
        .build();
    let name_servers = client
        .name_server_service(vec!["ns-1:9876".into(), "ns-2:9876".into()])
        .starting_at(0);
    let answer = name_servers.invoke(heartbeat("ns")).await.unwrap();
    assert_eq!(answer.remark.unwrap(), "34 ns");
    assert_eq!(name_servers.current_addr().as_deref(), Some("ns-2:9876"));
    // The next call goes straight to the address that answered.
    name_servers.invoke(heartbeat("ns")).await.unwrap();
    assert_eq!(
        *recording.dialed.lock().unwrap(),
        ["ns-1:9876", "ns-2:9876"]
    );
}

/// A nameserver shutting down gracefully answers GO_AWAY (Java's
/// `NettyRemotingServer` with `enableShutdownGracefully`): the call was not
/// processed, so it is asked of the next nameserver, and the next call
/// starts there, rather than a route lookup failing until it is gone.
#[tokio::test(start_paused = true)]
async fn a_name_server_going_away_is_passed_over() {
    let net = MemoryNetwork::new();
    let _first = Server::spawn(
        net.bind("ns-1:9876").unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_: RemotingCommand| async {
                Ok(RemotingCommand::response(ResponseCode::GO_AWAY, 0))
            }))
        },
    );
    let _second = memory_server(&net, "ns-2:9876");
    let client = memory_client(&net);
    let name_servers = client
        .name_server_service(vec!["ns-1:9876".into(), "ns-2:9876".into()])
        .starting_at(0);
    let answer = name_servers.invoke(heartbeat("ns")).await.unwrap();
    assert_eq!(answer.response_code(), ResponseCode::SUCCESS);
    assert_eq!(answer.remark.unwrap(), "34 ns");
    assert_eq!(name_servers.current_addr().as_deref(), Some("ns-2:9876"));

    // With no other nameserver, GO_AWAY is the answer.
    let alone = client.name_server_service(vec!["ns-1:9876".into()]);
    let answer = alone.invoke(heartbeat("ns")).await.unwrap();
    assert_eq!(answer.response_code(), ResponseCode::GO_AWAY);
}

#[tokio::test(start_paused = true)]
async fn name_server_without_any_reachable_address_fails_with_the_last_error() {
    let client = memory_client(&MemoryNetwork::new());
    let err = client
        .name_server_service(vec!["ns-1:9876".into(), "ns-2:9876".into()])
        .invoke(heartbeat("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RemotingError::Connect { addr, .. } if addr.starts_with("ns-")),
        "{err}"
    );
    let err = client
        .name_server_service(Vec::new())
        .invoke(heartbeat("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::NoAddress(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_failed_dial_delays_the_next_one() {
    let net = MemoryNetwork::new();
    let client = RemotingClient::builder()
        .transport(net.clone())
        .reconnect_backoff(Backoff {
            initial: Duration::from_millis(400),
            max: Duration::from_secs(10),
        })
        .build();
    let err = client
        .invoke(BROKER, heartbeat("x"), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Connect { .. }), "{err}");
    let _server = memory_server(&net, BROKER);
    let start = Instant::now();
    let err = client
        .invoke(BROKER, heartbeat("x"), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Connect { .. }), "{err}");
    assert_eq!(start.elapsed(), Duration::ZERO, "failed at once");
    tokio::time::sleep(Duration::from_millis(400)).await;
    client.invoke(BROKER, heartbeat("x"), SECOND).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn invoke_times_out_and_leaves_nothing_pending() {
    let net = MemoryNetwork::new();
    let _server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| {
                futures::future::pending::<Result<RemotingCommand, RemotingError>>()
            }))
        },
    );
    let client = memory_client(&net);
    let start = Instant::now();
    let err = client
        .invoke(BROKER, heartbeat("x"), SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::Timeout { after, .. } if after == SECOND),
        "{err}"
    );
    assert_eq!(start.elapsed(), SECOND);
    let (conn, _) = client.connection(BROKER).await.unwrap();
    assert_eq!(conn.pending_count(), 0);
    assert!(!conn.is_closed());
}

/// As Java's invokeSync: a call whose budget is already spent is neither
/// dialed nor written; it fails with a timeout at once.
#[tokio::test(start_paused = true)]
async fn invoke_without_time_left_sends_nothing() {
    let transport = Recording::default();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let _server = Server::spawn(
        transport.net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        move |_| {
            let counter = Arc::clone(&counter);
            InboundService::new(tower::service_fn(move |req: RemotingCommand| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move { Ok(RemotingCommand::response(ResponseCode::SUCCESS, req.opaque)) }
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(transport.clone())
        .build();
    let start = Instant::now();
    let err = client
        .invoke(BROKER, heartbeat("late"), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::Timeout { after, .. } if after.is_zero()),
        "{err}"
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(transport.dialed.lock().unwrap().is_empty(), "not dialed");
    // A call with time left goes through; the server saw only that one.
    within(client.invoke(BROKER, heartbeat("on time"), SECOND))
        .await
        .unwrap();
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn server_sends_requests_to_its_client() {
    let net = MemoryNetwork::new();
    let server = memory_server(&net, BROKER);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let client = RemotingClient::builder()
        .transport(net.clone())
        .inbound(move |conn: &Connection| {
            let peer = conn.peer_addr().to_owned();
            let record = Arc::clone(&record);
            InboundService::new(tower::service_fn(move |req: RemotingCommand| {
                record.lock().unwrap().push((peer.clone(), req.code));
                async move {
                    Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_remark("running"))
                }
            }))
        })
        .build();
    client.invoke(BROKER, heartbeat("c"), SECOND).await.unwrap();
    let to_client = server.connections().pop().unwrap();

    let mut notify = RemotingCommand::request(RequestCode::NOTIFY_CONSUMER_IDS_CHANGED);
    notify.set_oneway();
    to_client.send(notify).await.unwrap();
    let running = RemotingCommand::request(RequestCode::GET_CONSUMER_RUNNING_INFO);
    let answer = to_client.send(running).await.unwrap();
    assert!(answer.is_response());
    assert_eq!(answer.remark.unwrap(), "running");
    assert_eq!(
        *seen.lock().unwrap(),
        [(BROKER.to_owned(), 40), (BROKER.to_owned(), 307)]
    );
}

#[tokio::test(start_paused = true)]
async fn acl_hook_signs_what_the_server_receives() {
    let net = MemoryNetwork::new();
    let _server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_| {
            InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
                let signature = req
                    .ext_fields
                    .get("Signature")
                    .unwrap_or_default()
                    .to_owned();
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_remark(signature))
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(net.clone())
        .rpc_hook(AclHook::new(Credentials::new("ak", "sk")))
        .build();
    let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
    cmd.ext_fields.insert("topic", "T");
    let answer = client.invoke(BROKER, cmd, SECOND).await.unwrap();
    // HmacSHA1("sk", "ak" + "T"), computed with Python (see hook::acl tests).
    assert_eq!(answer.remark.unwrap(), "vX6jW2Q9g11lvMjNC+gReuZ8fTQ=");
}

#[tokio::test(start_paused = true)]
async fn oneway_through_the_client_reaches_the_server() {
    let net = MemoryNetwork::new();
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let _server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        move |_| {
            let count = Arc::clone(&count);
            let seen_tx = seen_tx.clone();
            InboundService::new(tower::service_fn(move |req: RemotingCommand| {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = seen_tx.send(req.is_oneway());
                async move { Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)) }
            }))
        },
    );
    let client = memory_client(&net);
    client.invoke_oneway(BROKER, heartbeat("o")).await.unwrap();
    assert_eq!(within(seen_rx.recv()).await, Some(true));
    assert_eq!(received.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdowns_close_connections_on_both_sides() {
    let net = MemoryNetwork::new();
    let server = memory_server(&net, BROKER);
    let client = memory_client(&net);
    client.invoke(BROKER, heartbeat("x"), SECOND).await.unwrap();
    let server_side = server.connections().pop().unwrap();
    client.shutdown().await;
    within(server_side.closed()).await;
    let err = client
        .invoke(BROKER, heartbeat("x"), SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::ConnectionClosed { .. }),
        "{err}"
    );

    let other = memory_client(&net);
    let (conn, _) = other.connection(BROKER).await.unwrap();
    server.shutdown().await;
    within(conn.closed()).await;
    assert!(!net.is_bound(BROKER));
    let err = other
        .invoke(BROKER, heartbeat("x"), SECOND)
        .await
        .unwrap_err();
    assert!(err.is_connection_error(), "{err}");
}

/// A typed call for `invoke_call`.
struct Ping(&'static str);

impl Call for Ping {
    type Response = String;

    fn into_command(self) -> rocketmq_remoting::Result<RemotingCommand> {
        Ok(heartbeat(self.0))
    }

    fn parse_response(response: RemotingCommand) -> rocketmq_remoting::Result<String> {
        Ok(response.remark.unwrap_or_default())
    }
}

#[tokio::test(start_paused = true)]
async fn typed_calls_through_the_client() {
    let net = MemoryNetwork::new();
    let _server = memory_server(&net, BROKER);
    let client = memory_client(&net);
    let answer = client
        .invoke_call(BROKER, Ping("typed"), SECOND)
        .await
        .unwrap();
    assert_eq!(answer, "34 typed");
}

/// A typed call that accepts no answer.
struct Refused;

impl Call for Refused {
    type Response = ();

    fn into_command(self) -> rocketmq_remoting::Result<RemotingCommand> {
        Ok(heartbeat("refused"))
    }

    fn parse_response(response: RemotingCommand) -> rocketmq_remoting::Result<()> {
        Err(rocketmq_remoting::call::rejected(&response))
    }
}

#[tokio::test(start_paused = true)]
async fn a_rejected_typed_call_names_the_peer() {
    let net = MemoryNetwork::new();
    let _server = memory_server(&net, BROKER);
    let client = memory_client(&net);
    let err = client
        .invoke_call(BROKER, Refused, SECOND)
        .await
        .unwrap_err();
    let RemotingError::Response { addr, .. } = &err else {
        panic!("not a rejected code: {err}");
    };
    assert_eq!(addr, BROKER);
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_failed_dial() {
    // A slow dial, so that every caller arrives while it is under way.
    let recording = Recording {
        delay: Duration::from_millis(100),
        ..Recording::default()
    };
    let client = RemotingClient::builder()
        .transport(recording.clone())
        .build();
    let calls = (0..5).map(|_| client.invoke(BROKER, heartbeat("x"), SECOND));
    for result in futures::future::join_all(calls).await {
        let err = result.unwrap_err();
        assert!(matches!(err, RemotingError::Connect { .. }), "{err}");
    }
    assert_eq!(recording.dialed.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn client_sends_headers_in_its_serialize_type() {
    let net = MemoryNetwork::new();
    let _server = Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        |_| {
            InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
                let remark = req.serialize_type.name().to_owned();
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_remark(remark))
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(net.clone())
        .serialize_type(SerializeType::RocketMq)
        .build();
    let answer = client.invoke(BROKER, heartbeat("x"), SECOND).await.unwrap();
    assert_eq!(answer.remark.unwrap(), "ROCKETMQ");
    // A code beyond the int16 of the ROCKETMQ header (the 5.x pop codes)
    // goes as JSON instead of failing to encode.
    let pop = RemotingCommand::request(RequestCode::POP_MESSAGE);
    let answer = client.invoke(BROKER, pop, SECOND).await.unwrap();
    assert_eq!(answer.remark.unwrap(), "JSON");
}

/// A transport on `net` whose connects to `dead` never complete (a host
/// that drops packets), counting them.
#[derive(Clone)]
struct BlackHole {
    net: MemoryNetwork,
    dead: &'static str,
    dials: Arc<AtomicUsize>,
}

impl Transport for BlackHole {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxedIo>> {
        if addr == self.dead {
            self.dials.fetch_add(1, Ordering::SeqCst);
            return Box::pin(std::future::pending());
        }
        self.net.connect(addr)
    }
}

#[tokio::test(start_paused = true)]
async fn a_dial_outlasting_its_caller_still_starts_the_backoff() {
    let dials = Arc::new(AtomicUsize::new(0));
    let client = RemotingClient::builder()
        .transport(BlackHole {
            net: MemoryNetwork::new(),
            dead: BROKER,
            dials: Arc::clone(&dials),
        })
        .connect_timeout(3 * SECOND)
        .reconnect_backoff(Backoff {
            initial: 2 * SECOND,
            max: 10 * SECOND,
        })
        .build();
    // The caller gives up before the connect timeout...
    let err = client
        .invoke(BROKER, heartbeat("x"), Duration::from_millis(2_900))
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err}");
    // ...but the dial runs to it and is recorded as failed: the calls that
    // come during the backoff fail at once instead of each dialing again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let start = Instant::now();
        let err = client
            .invoke(BROKER, heartbeat("x"), SECOND)
            .await
            .unwrap_err();
        assert!(matches!(err, RemotingError::ConnectTimeout { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::ZERO, "failed at once");
    }
    assert_eq!(dials.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_name_server_that_drops_packets_is_passed_over() {
    let net = MemoryNetwork::new();
    let _alive = memory_server(&net, "ns-2:9876");
    let dials = Arc::new(AtomicUsize::new(0));
    let client = RemotingClient::builder()
        .transport(BlackHole {
            net,
            dead: "ns-1:9876",
            dials: Arc::clone(&dials),
        })
        .connect_timeout(5 * SECOND)
        .request_timeout(3 * SECOND)
        .build();
    let name_servers = client
        .name_server_service(vec!["ns-1:9876".into(), "ns-2:9876".into()])
        .starting_at(0);
    // ns-1 gets half of the 3 s for its connection, ns-2 the rest.
    let start = Instant::now();
    let answer = name_servers.invoke(heartbeat("ns")).await.unwrap();
    assert_eq!(answer.remark.unwrap(), "34 ns");
    assert_eq!(start.elapsed(), Duration::from_millis(1_500));
    assert_eq!(name_servers.current_addr().as_deref(), Some("ns-2:9876"));
    // Later calls go straight to ns-2.
    for _ in 0..3 {
        let start = Instant::now();
        name_servers.invoke(heartbeat("ns")).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
    assert_eq!(dials.load(Ordering::SeqCst), 1);
}

/// Connects to `net`, or never completes while `hang` is set.
#[derive(Clone)]
struct Hangs {
    net: MemoryNetwork,
    hang: Arc<std::sync::atomic::AtomicBool>,
}

impl Transport for Hangs {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxedIo>> {
        if self.hang.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        self.net.connect(addr)
    }
}

/// A dial whose task ends without an outcome (here its runtime stops) is
/// recorded as failed: the address is dialled again after the backoff
/// instead of every later call joining a dial that will never answer.
#[test]
fn a_dial_that_never_ended_does_not_hold_its_address() {
    let net = MemoryNetwork::new();
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let client = RemotingClient::builder()
        .transport(Hangs {
            net: net.clone(),
            hang: Arc::clone(&hang),
        })
        .connect_timeout(3 * SECOND)
        .build();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let err = first
        .block_on(client.invoke(BROKER, heartbeat("x"), Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err}");
    drop(first);
    hang.store(false, Ordering::SeqCst);
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    second.block_on(async {
        let _server = memory_server(&net, BROKER);
        // Past the backoff of the recorded failure.
        tokio::time::sleep(2 * SECOND).await;
        client.invoke(BROKER, heartbeat("x"), SECOND).await.unwrap();
    });
}

#[tokio::test(start_paused = true)]
async fn a_name_server_attempt_counts_its_connect_in_the_timeout() {
    let net = MemoryNetwork::new();
    let _silent = Server::spawn(
        net.bind("ns-1:9876").unwrap(),
        ConnectionConfig::default(),
        |_: &Connection| {
            InboundService::new(tower::service_fn(|_req: RemotingCommand| async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0))
            }))
        },
    );
    let client = RemotingClient::builder()
        .transport(Recording {
            net,
            delay: Duration::from_millis(2_500),
            ..Recording::default()
        })
        .connect_timeout(5 * SECOND)
        .request_timeout(3 * SECOND)
        .build();
    let name_servers = client.name_server_service(vec!["ns-1:9876".into()]);
    let start = Instant::now();
    let err = name_servers.invoke(heartbeat("ns")).await.unwrap_err();
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err}");
    assert_eq!(
        start.elapsed(),
        3 * SECOND,
        "2.5 s to connect, then what is left"
    );
}

/// A server going away: every connection before the `from`th answers
/// HEART_BEAT with GO_AWAY, as a Java server shutting down gracefully does,
/// and takes a second over any other request; later connections echo.
fn going_away(net: &MemoryNetwork, from: usize) -> Server {
    let accepted = Arc::new(AtomicUsize::new(0));
    Server::spawn(
        net.bind(BROKER).unwrap(),
        ConnectionConfig::default(),
        move |conn: &Connection| {
            if accepted.fetch_add(1, Ordering::SeqCst) >= from {
                return echo_handler(conn);
            }
            InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
                if req.request_code() == RequestCode::HEART_BEAT {
                    return Ok(RemotingCommand::response(ResponseCode::GO_AWAY, 0)
                        .with_remark("please go away"));
                }
                tokio::time::sleep(SECOND).await;
                Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0).with_remark("slow"))
            }))
        },
    )
}

/// GO_AWAY is the answer (the request was not processed; the caller may
/// send it again), and the connection that said it takes no new calls: the
/// next call dials a new one, while a call already on the old one still
/// gets its answer before it closes.
#[tokio::test(start_paused = true)]
async fn go_away_retires_the_connection() {
    let net = MemoryNetwork::new();
    let server = going_away(&net, 1);
    let recording = Recording {
        net: net.clone(),
        ..Recording::default()
    };
    let client = RemotingClient::builder()
        .transport(recording.clone())
        .build();
    let (_, first_generation) = client.connection(BROKER).await.unwrap();
    let old_server_side = server.connections();
    // A call in progress on the connection that will say GO_AWAY.
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            let cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE);
            client.invoke(BROKER, cmd, 3 * SECOND).await
        }
    });
    tokio::task::yield_now().await;
    let answer = client.invoke(BROKER, heartbeat("x"), SECOND).await.unwrap();
    assert_eq!(answer.response_code(), ResponseCode::GO_AWAY);
    assert_eq!(recording.dialed.lock().unwrap().len(), 1);
    let again = client
        .invoke(BROKER, heartbeat("again"), SECOND)
        .await
        .unwrap();
    assert_eq!(again.response_code(), ResponseCode::SUCCESS);
    assert_eq!(again.remark.unwrap(), "34 again");
    assert_eq!(*recording.dialed.lock().unwrap(), [BROKER, BROKER]);
    let (_, generation) = client.connection(BROKER).await.unwrap();
    assert!(generation > first_generation, "a new connection");
    // The old connection still answers what was asked on it, then closes.
    let slow = within(slow).await.unwrap().unwrap();
    assert_eq!(slow.remark.unwrap(), "slow");
    for conn in old_server_side {
        within(conn.closed()).await;
    }
    assert_eq!(server.connections().len(), 1);
    server.shutdown().await;
}
