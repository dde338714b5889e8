//! The `rocketmq-testkit` binary, started as a separate process on loopback,
//! serves a send and a pull from this process, then stops cleanly on SIGINT.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rocketmq_model::header::{PullMessageRequestHeader, SendMessageRequestHeader};
use rocketmq_model::message::sysflag::pull;
use rocketmq_model::{Message, ResponseCode, decode_records};
use rocketmq_remoting::calls::{GetRouteInfo, PullMessage, PullStatus, SendMessage};
use rocketmq_remoting::{AclHook, Credentials, RemotingClient, RemotingError};
use rocketmq_testkit::TestCertificates;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the process if the test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the announced addresses up to `ready`: (namesrv, brokers).
fn addresses(child: &mut Child) -> (String, Vec<(String, String)>) {
    let stdout = child.stdout.take().unwrap();
    let mut namesrv = String::new();
    let mut brokers = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["namesrv", addr] => namesrv = (*addr).to_owned(),
            ["broker", name, addr] => brokers.push(((*name).to_owned(), (*addr).to_owned())),
            ["ready"] => break,
            _ => panic!("unexpected line {line:?}"),
        }
    }
    (namesrv, brokers)
}

fn wait_for_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_a_send_and_a_pull_from_another_process() {
    let child = Command::new(env!("CARGO_BIN_EXE_rocketmq-testkit"))
        .args(["--listen", "127.0.0.1:0", "--brokers", "2", "--topic", "T"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let (namesrv, brokers) = tokio::task::block_in_place(|| addresses(&mut server.0));
    assert!(namesrv.starts_with("127.0.0.1:"), "{namesrv}");
    assert_eq!(brokers.len(), 2);

    let client = RemotingClient::builder().request_timeout(TIMEOUT).build();
    let route = client
        .invoke_call(&namesrv, GetRouteInfo::new("T"), TIMEOUT)
        .await
        .unwrap();
    let addr = route.master_addr("broker-b").unwrap().to_owned();
    assert_eq!(addr, brokers[1].1);

    let message = Message::builder("T")
        .body("across processes")
        .tags("a")
        .build()
        .unwrap();
    let header = SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: "T".into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id: 1,
        born_timestamp: 1,
        properties: Some(message.properties.encode()),
        ..SendMessageRequestHeader::default()
    };
    let sent = client
        .invoke_call(
            &addr,
            SendMessage::new(header, message.body.clone()),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(sent.header.queue_offset, 0);

    let pull_header = PullMessageRequestHeader {
        consumer_group: "cg".into(),
        topic: "T".into(),
        queue_id: 1,
        queue_offset: 0,
        max_msg_nums: 32,
        sys_flag: pull::SUBSCRIPTION,
        subscription: Some("*".into()),
        expression_type: Some("TAG".into()),
        ..PullMessageRequestHeader::default()
    };
    let pulled = client
        .invoke_call(&addr, PullMessage(pull_header), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(pulled.status, PullStatus::Found);
    let messages = decode_records(pulled.body).unwrap();
    assert_eq!(&messages[0].message.body[..], b"across processes");
    client.shutdown().await;

    let pid = server.0.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(signalled.success());
    let status = tokio::task::block_in_place(|| wait_for_exit(&mut server.0));
    assert!(status.success(), "exit status {status:?}");
}

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("rmq-testkit-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_tls_and_checks_signatures() {
    let certs = TestCertificates::generate().unwrap();
    let dir = TempDir::new();
    let cert = dir.file("chain.pem", &certs.chain_pem());
    let key = dir.file("key.pem", &certs.key_pem());
    let child = Command::new(env!("CARGO_BIN_EXE_rocketmq-testkit"))
        .args(["--listen", "127.0.0.1:0", "--topic", "T"])
        .args([
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--acl",
            "app:app-secret",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let (namesrv, _) = tokio::task::block_in_place(|| addresses(&mut server.0));

    let signed = RemotingClient::builder()
        .transport(certs.client_transport().unwrap())
        .rpc_hook(AclHook::new(Credentials::new("app", "app-secret")))
        .build();
    let route = signed
        .invoke_call(&namesrv, GetRouteInfo::new("T"), TIMEOUT)
        .await
        .unwrap();
    assert!(route.master_addr("broker-a").is_some());
    let unsigned = RemotingClient::builder()
        .transport(certs.client_transport().unwrap())
        .build();
    let refused = unsigned
        .invoke_call(&namesrv, GetRouteInfo::new("T"), TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            RemotingError::Response {
                code: ResponseCode::NO_PERMISSION,
                ..
            }
        ),
        "{refused:?}"
    );
    signed.shutdown().await;
    unsigned.shutdown().await;
}
