//! `RemotingClient` against `Server` over loopback TLS, with certificates made
//! by `rcgen` in each test: verification against a CA file, the insecure
//! switch, a wrong server name, mutual TLS and hostile handshakes.

#![cfg(feature = "tls")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::call::Call;
use rocketmq_remoting::client::{Backoff, RemotingClient};
use rocketmq_remoting::connection::{Connection, ConnectionConfig, InboundService};
use rocketmq_remoting::server::Server;
use rocketmq_remoting::transport::tls::rustls;
use rocketmq_remoting::transport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rocketmq_remoting::transport::{TlsListener, TlsTransport};
use rocketmq_remoting::{RemotingCodec, RemotingCommand, RemotingError};
use tokio::io::AsyncWriteExt;

/// Bounds every await of these tests: a hang fails instead of blocking CI.
const DEADLINE: Duration = Duration::from_secs(20);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("did not finish before the deadline")
}

/// A certificate authority made for one test.
struct TestCa {
    cert: CertificateDer<'static>,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            cert: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate for `names` (DNS names or IP addresses) and its key.
    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Identity {
        let (params, key) = leaf_params(names, purpose);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity::new(cert, key)
    }
}

fn leaf_params(names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (CertificateParams, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "rocketmq test");
    params.extended_key_usages.push(purpose);
    (params, KeyPair::generate().unwrap())
}

/// A certificate and its private key.
struct Identity {
    cert: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
    key_der: Vec<u8>,
}

impl Identity {
    fn new(cert: rcgen::Certificate, key: KeyPair) -> Identity {
        Identity {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        }
    }

    fn self_signed(names: &[&str]) -> Identity {
        let (params, key) = leaf_params(names, ExtendedKeyUsagePurpose::ServerAuth);
        let cert = params.self_signed(&key).unwrap();
        Identity::new(cert, key)
    }

    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone()]
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone().into())
    }
}

fn server_identity(ca: &TestCa) -> Identity {
    ca.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    )
}

/// A file in a directory of its own under the system temp dir, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn with(name: &str, contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rmq-tls-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile { dir, path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Answers every request with SUCCESS and a remark naming its code and `who`.
fn echo_handler(_conn: &Connection) -> InboundService {
    InboundService::new(tower::service_fn(|req: RemotingCommand| async move {
        let who = req.ext_fields.get("who").unwrap_or_default().to_owned();
        Ok(RemotingCommand::response(ResponseCode::SUCCESS, 0)
            .with_remark(format!("{} {who}", req.code)))
    }))
}

/// A typed call: a heartbeat whose answer reads as its remark.
struct Ping(&'static str);

impl Call for Ping {
    type Response = String;

    fn into_command(self) -> rocketmq_remoting::Result<RemotingCommand> {
        let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT);
        cmd.ext_fields.insert("who", self.0);
        Ok(cmd)
    }

    fn parse_response(response: RemotingCommand) -> rocketmq_remoting::Result<String> {
        rocketmq_remoting::call::expect_codes(response, &[ResponseCode::SUCCESS])
            .map(|ok| ok.remark.unwrap_or_default())
    }
}

async fn tls_server(identity: &Identity) -> Server {
    let listener = TlsListener::bind("127.0.0.1:0", identity.chain(), identity.key())
        .await
        .unwrap();
    Server::spawn(listener, ConnectionConfig::default(), echo_handler)
}

fn client_over(tls: TlsTransport) -> RemotingClient {
    RemotingClient::builder()
        .transport(tls)
        .connect_timeout(CALL_TIMEOUT)
        .build()
}

/// Asserts a failed TLS dial: a connect error whose I/O kind is `InvalidData`
/// (rustls rejected the certificate) and whose text contains `needle`.
fn assert_rejected_certificate(err: &RemotingError, needle: &str) {
    let RemotingError::Connect { source, .. } = err else {
        panic!("expected a connect error, got {err:?}");
    };
    assert_eq!(source.kind(), std::io::ErrorKind::InvalidData, "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(text.contains(needle), "{text}");
}

#[tokio::test]
async fn typed_call_round_trip_over_tls_with_a_ca_file() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&server_identity(&ca)).await;
    let ca_file = TempFile::with("ca.pem", &ca.pem);
    let tls = TlsTransport::builder()
        .trust_ca_file(&ca_file.path)
        .build()
        .unwrap();
    let client = client_over(tls);
    let addr = server.local_addr().to_owned();

    let answer = within(client.invoke_call(&addr, Ping("over tls"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "34 over tls");
    let again = within(client.invoke_call(&addr, Ping("again"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(again, "34 again");
    assert_eq!(server.connections().len(), 1, "one TLS connection reused");

    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

#[tokio::test]
async fn client_trusting_another_ca_fails_with_a_connect_error() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&server_identity(&ca)).await;
    let other = TestCa::new("some other CA");
    let tls = TlsTransport::builder()
        .trust_ca_certificates([other.cert.clone()])
        .build()
        .unwrap();
    let client = client_over(tls);

    let err = within(client.invoke_call(server.local_addr(), Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert_rejected_certificate(&err, "UnknownIssuer");
    assert!(err.is_connection_error() && err.is_retriable());
    assert!(server.connections().is_empty());
    within(server.shutdown()).await;
}

#[tokio::test]
async fn insecure_switch_connects_to_a_self_signed_server() {
    let server = tls_server(&Identity::self_signed(&["localhost"])).await;
    let addr = server.local_addr().to_owned();

    // Verified, the self-signed certificate is refused...
    let ca_of_nobody = TestCa::new("unrelated");
    let verified = client_over(
        TlsTransport::builder()
            .trust_ca_certificates([ca_of_nobody.cert.clone()])
            .build()
            .unwrap(),
    );
    let err = within(verified.invoke_call(&addr, Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert_rejected_certificate(&err, "invalid peer certificate");

    // ...and with the switch it is accepted, though it does not even name
    // the address dialed (127.0.0.1).
    let insecure = client_over(
        TlsTransport::builder()
            .danger_accept_invalid_certs_insecure()
            .build()
            .unwrap(),
    );
    let answer = within(insecure.invoke_call(&addr, Ping("insecure"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "34 insecure");
    within(insecure.shutdown()).await;
    within(server.shutdown()).await;
}

#[tokio::test]
async fn wrong_server_name_fails_and_the_right_override_succeeds() {
    let ca = TestCa::new("test CA");
    // Valid for "broker-a.rocketmq.test" only, not for the dialed 127.0.0.1.
    let identity = ca.issue(
        &["broker-a.rocketmq.test"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server = tls_server(&identity).await;
    let addr = server.local_addr().to_owned();
    let trusting = || TlsTransport::builder().trust_ca_certificates([ca.cert.clone()]);

    let by_address = client_over(trusting().build().unwrap());
    let err = within(by_address.invoke_call(&addr, Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert_rejected_certificate(&err, "not valid for name");

    let wrong = client_over(
        trusting()
            .server_name("broker-b.rocketmq.test")
            .build()
            .unwrap(),
    );
    let err = within(wrong.invoke_call(&addr, Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert_rejected_certificate(&err, "broker-b.rocketmq.test");

    let right = client_over(
        trusting()
            .server_name("broker-a.rocketmq.test")
            .build()
            .unwrap(),
    );
    let answer = within(right.invoke_call(&addr, Ping("named"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "34 named");
    within(right.shutdown()).await;
    within(server.shutdown()).await;
}

/// A server configuration that requires a client certificate issued by `ca`.
fn mutual_tls_config(server: &Identity, ca: &TestCa) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain(), server.key())
        .unwrap();
    Arc::new(config)
}

#[tokio::test]
async fn mutual_tls_requires_the_client_certificate() {
    let ca = TestCa::new("test CA");
    let config = mutual_tls_config(&server_identity(&ca), &ca);
    let listener = TlsListener::bind_with_config("127.0.0.1:0", config)
        .await
        .unwrap();
    let server = Server::spawn(listener, ConnectionConfig::default(), echo_handler);
    let addr = server.local_addr().to_owned();

    let client_cert = ca.issue(
        &["client.rocketmq.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = TempFile::with("client.pem", &client_cert.cert_pem);
    let key_file = TempFile::with("client.key", &client_cert.key_pem);
    let with_identity = client_over(
        TlsTransport::builder()
            .trust_ca_certificates([ca.cert.clone()])
            .client_identity_pem_files(&cert_file.path, &key_file.path)
            .build()
            .unwrap(),
    );
    let answer = within(with_identity.invoke_call(&addr, Ping("mtls"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "34 mtls");

    // Without a certificate: under TLS 1.3 the client finishes its handshake
    // before the server refuses it, so the refusal may arrive as the
    // connection closing under the first call.
    let anonymous = client_over(
        TlsTransport::builder()
            .trust_ca_certificates([ca.cert.clone()])
            .build()
            .unwrap(),
    );
    let err = within(anonymous.invoke_call(&addr, Ping("anon"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    assert_eq!(
        server.connections().len(),
        1,
        "only the client with a certificate"
    );
    within(with_identity.shutdown()).await;
    within(server.shutdown()).await;
}

#[tokio::test]
async fn a_server_that_never_answers_the_handshake_hits_the_connect_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    // Accepts and holds the connection, never says a word.
    let holder = tokio::spawn(async move {
        let (stream, _) = silent.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(stream);
    });
    let connect_timeout = Duration::from_millis(300);
    let client = RemotingClient::builder()
        .transport(
            TlsTransport::builder()
                .danger_accept_invalid_certs_insecure()
                .build()
                .unwrap(),
        )
        .connect_timeout(connect_timeout)
        .reconnect_backoff(Backoff::default())
        .build();
    let err = within(client.invoke_call(&addr, Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RemotingError::ConnectTimeout { after, .. } if after == connect_timeout),
        "{err:?}"
    );
    holder.abort();
}

#[tokio::test]
async fn listener_serves_good_clients_while_others_stall_or_speak_garbage() {
    let ca = TestCa::new("test CA");
    let identity = server_identity(&ca);
    let listener = TlsListener::bind("127.0.0.1:0", identity.chain(), identity.key())
        .await
        .unwrap()
        .with_handshake_timeout(Duration::from_secs(30));
    let server = Server::spawn(listener, ConnectionConfig::default(), echo_handler);
    let addr = server.local_addr().to_owned();

    // One peer connects and says nothing; another sends a plaintext frame.
    let _staller = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut plaintext = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plaintext
        .write_all(&[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();

    let client = client_over(
        TlsTransport::builder()
            .trust_ca_certificates([ca.cert.clone()])
            .build()
            .unwrap(),
    );
    let answer = within(client.invoke_call(&addr, Ping("served"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "34 served");
    assert_eq!(server.connections().len(), 1);
    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

#[test]
fn bind_with_a_key_that_does_not_match_fails_with_invalid_input() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ca = TestCa::new("test CA");
    let a = server_identity(&ca);
    let b = server_identity(&ca);
    let err = runtime
        .block_on(TlsListener::bind("127.0.0.1:0", a.chain(), b.key()))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

#[tokio::test]
async fn a_tls_client_dialing_a_plain_server_is_told_the_peer_may_not_speak_tls() {
    let listener = rocketmq_remoting::transport::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let server = Server::spawn(listener, ConnectionConfig::default(), echo_handler);
    let client = client_over(
        TlsTransport::builder()
            .danger_accept_invalid_certs_insecure()
            .build()
            .unwrap(),
    );
    let err = within(client.invoke_call(server.local_addr(), Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert!(matches!(err, RemotingError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("TLS handshake"), "{text}");
    assert!(text.contains("does the peer speak TLS?"), "{text}");
    within(server.shutdown()).await;
}

#[tokio::test]
async fn a_plain_client_dialing_a_tls_server_is_told_the_peer_speaks_tls() {
    let ca = TestCa::new("test CA");
    let server = tls_server(&server_identity(&ca)).await;
    let client = RemotingClient::builder().build();
    let err = within(client.invoke_call(server.local_addr(), Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap_err();
    assert!(err.is_connection_error(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("the peer speaks TLS"), "{text}");
    within(client.shutdown()).await;
    within(server.shutdown()).await;
}

#[test]
fn a_ca_file_whose_certificate_rustls_cannot_use_names_the_file() {
    // Good PEM around bytes that are no certificate.
    let ca_file = TempFile::with(
        "bad-ca.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let err = TlsTransport::builder()
        .trust_ca_file(&ca_file.path)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&ca_file.path.display().to_string()), "{text}");
}

#[test]
fn a_client_key_that_does_not_match_its_certificate_names_both_files() {
    let ca = TestCa::new("test CA");
    let cert = ca.issue(
        &["client.rocketmq.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let other = ca.issue(
        &["client.rocketmq.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let cert_file = TempFile::with("client.pem", &cert.cert_pem);
    let key_file = TempFile::with("other.key", &other.key_pem);
    let err = TlsTransport::builder()
        .trust_ca_certificates([ca.cert.clone()])
        .client_identity_pem_files(&cert_file.path, &key_file.path)
        .build()
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&cert_file.path.display().to_string())
            && text.contains(&key_file.path.display().to_string()),
        "{text}"
    );
}

type PeerStream = tokio_util::codec::Framed<rocketmq_remoting::transport::BoxedIo, RemotingCodec>;

/// A TLS peer at the returned address that answers one request with
/// `remark`, then does `then` with its end of the connection; and a client
/// trusting it.
async fn answering_once<T: Send + 'static, F: Future<Output = T> + Send + 'static>(
    remark: &'static str,
    then: impl FnOnce(PeerStream) -> F + Send + 'static,
) -> (String, tokio::task::JoinHandle<T>, RemotingClient) {
    use futures::{SinkExt, StreamExt};
    use rocketmq_remoting::transport::Listener;

    let ca = TestCa::new("test CA");
    let identity = server_identity(&ca);
    let mut listener = TlsListener::bind("127.0.0.1:0", identity.chain(), identity.key())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let peer = tokio::spawn(async move {
        let accepted = listener.accept().await.unwrap();
        let mut framed = PeerStream::new(accepted.io, RemotingCodec::default());
        let request = framed.next().await.unwrap().unwrap();
        let answer =
            RemotingCommand::response(ResponseCode::SUCCESS, request.opaque).with_remark(remark);
        framed.send(answer).await.unwrap();
        then(framed).await
    });
    let client = client_over(
        TlsTransport::builder()
            .trust_ca_certificates([ca.cert.clone()])
            .build()
            .unwrap(),
    );
    (addr, peer, client)
}

#[tokio::test]
async fn an_answer_sent_just_before_the_peer_closes_without_close_notify_arrives() {
    // The peer drops the TCP connection at once: no close_notify, the
    // answer and the FIN arrive together.
    let (addr, peer, client) =
        answering_once("last words", |framed| async move { drop(framed) }).await;
    let answer = within(client.invoke_call(&addr, Ping("x"), CALL_TIMEOUT))
        .await
        .unwrap();
    assert_eq!(answer, "last words");
    within(peer).await.unwrap();
    within(client.shutdown()).await;
}

#[tokio::test]
async fn a_client_closing_its_connection_sends_close_notify() {
    use tokio::io::AsyncReadExt;

    // The peer reads on until the client has gone: a clean end
    // (close_notify, then the FIN) reads as 0 bytes, a FIN without
    // close_notify as an `UnexpectedEof` error.
    let (addr, peer, client) = answering_once("", |framed| async move {
        let mut io = framed.into_inner();
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await;
    let answer = within(client.invoke_call(&addr, Ping("x"), CALL_TIMEOUT)).await;
    assert_eq!(answer.unwrap(), "");
    within(client.shutdown()).await;
    let read = within(peer).await.unwrap();
    assert_eq!(read.unwrap(), Vec::<u8>::new(), "the client ends cleanly");
}
