//! Serves a fake RocketMQ cluster on loopback for any client, ours or another
//! language's: `rocketmq-testkit --listen 127.0.0.1:9876 --brokers 2`.
//!
//! `--tls-cert chain.pem --tls-key key.pem` serves TLS; `--acl ak:sk`
//! (repeatable) checks ACL signatures.
//!
//! Prints one line per server on stdout (`namesrv <addr>`, then
//! `broker <name> <addr>` per broker), then `ready`, and runs until Ctrl-C
//! (SIGINT) or SIGTERM, when it stops every server and exits with status 0.

use std::io::Write;
use std::process::ExitCode;

use std::path::PathBuf;

use clap::Parser;
use rocketmq_remoting::transport::tls::{certificates_from_pem_file, private_key_from_pem_file};
use rocketmq_testkit::{TestCluster, TestClusterBuilder, TestkitError};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(
    name = "rocketmq-testkit",
    version,
    about = "A fake RocketMQ nameserver and brokers on loopback"
)]
struct Options {
    /// The nameserver's address; port 0 picks a free port. Brokers listen on
    /// free ports of the same host.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: String,
    /// How many brokers (named broker-a, broker-b, ...).
    #[arg(long, default_value_t = 1)]
    brokers: usize,
    /// The cluster name the brokers register under.
    #[arg(long, default_value = "DefaultCluster")]
    cluster: String,
    /// Read and write queues of each topic.
    #[arg(long, default_value_t = 4)]
    queues: i32,
    /// A topic to create up front on every broker (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Refuse sends to unknown topics instead of creating them through TBW102.
    #[arg(long)]
    no_auto_create: bool,
    /// Serve SQL92 subscriptions (Java's `enablePropertyFilter`).
    #[arg(long)]
    property_filter: bool,
    /// Let producers recall timer messages (Java's `recallMessageEnable`).
    #[arg(long)]
    recall_messages: bool,
    /// Serve TLS with this PEM certificate chain (leaf first); needs
    /// `--tls-key`.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of `--tls-cert` (unencrypted).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Check ACL signatures, accepting this user as `ACCESS_KEY:SECRET_KEY`
    /// (repeatable). The secret shows in the process list: test secrets only.
    #[arg(long = "acl", value_name = "ACCESS_KEY:SECRET_KEY")]
    acl_users: Vec<String>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let options = Options::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rocketmq-testkit: cannot start a runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rocketmq-testkit: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: Options) -> Result<(), TestkitError> {
    let mut builder = TestCluster::builder()
        .brokers(options.brokers)
        .cluster_name(options.cluster)
        .queues(options.queues, options.queues)
        .auto_create_topics(!options.no_auto_create)
        .property_filter(options.property_filter)
        .recall_messages(options.recall_messages)
        .listen(options.listen);
    for topic in options.topics {
        builder = builder.topic(topic);
    }
    let builder = secure(
        builder,
        options.tls_cert,
        options.tls_key,
        &options.acl_users,
    )?;
    let cluster = builder.start_tcp().await?;
    // Listening for the signals before saying "ready": a SIGINT sent as soon
    // as a caller reads it must stop the servers, not kill the process.
    let stop = shutdown_signal();
    announce(&cluster);
    stop.await;
    eprintln!("rocketmq-testkit: stopping");
    cluster.shutdown().await;
    Ok(())
}

/// Adds TLS (when both files are given) and the ACL users to `builder`.
fn secure(
    mut builder: TestClusterBuilder,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    acl_users: &[String],
) -> Result<TestClusterBuilder, TestkitError> {
    if let (Some(cert), Some(key)) = (cert, key) {
        let chain = certificates_from_pem_file(cert)?;
        builder = builder.tls(chain, private_key_from_pem_file(key)?);
    }
    for user in acl_users {
        let (access_key, secret_key) = user
            .split_once(':')
            .filter(|(ak, _)| !ak.is_empty())
            .ok_or_else(|| {
                TestkitError::InvalidSetting("--acl takes ACCESS_KEY:SECRET_KEY".into())
            })?;
        builder = builder.acl(access_key, secret_key);
    }
    Ok(builder)
}

/// Prints the addresses, one server a line, then `ready`.
fn announce(cluster: &TestCluster) {
    let mut out = std::io::stdout().lock();
    let mut lines = vec![format!("namesrv {}", cluster.namesrv_addr())];
    for broker in cluster.brokers() {
        lines.push(format!("broker {} {}", broker.name(), broker.addr()));
    }
    lines.push("ready".to_owned());
    for line in lines {
        // A closed stdout must not stop the servers.
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. On Unix the handlers
/// are installed when this is called, not when the future is first polled.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        // A handler that could not be installed never fires; the other may.
        let wait = |signal: std::io::Result<tokio::signal::unix::Signal>| async move {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
    }
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
