//! The soak: many messages through producers and push consumers (or, with
//! `--pop`, simple consumers: pop consumption; with `--push-pop`, push
//! consumers the brokers tell to pop) while consumers join and leave and a
//! broker is stopped and restarted; it checks that nothing acknowledged is
//! lost, explains every duplicate by the faults around it, samples
//! resident memory and counts the tasks left after shutdown.
//!
//! ```sh
//! cargo run --release -p rocketmq-examples --example soak
//! cargo run --release -p rocketmq-examples --example soak -- --pop
//! cargo run --release -p rocketmq-examples --example soak -- --push-pop
//! cargo run --release -p rocketmq-examples --example soak -- --messages 5000 --namesrv 127.0.0.1:9876
//! ```
//!
//! Without `--namesrv` (or `ROCKETMQ_NAMESRV_ADDR`) it runs against an
//! embedded two-broker testkit cluster on loopback TCP, on a runtime of its
//! own, and stops and restarts its second broker. Against a real cluster it
//! stops and starts a broker through `--broker-stop-cmd` and
//! `--broker-start-cmd` (e.g. `scripts/real-cluster.sh stop-broker broker-b
//! KILL`), and skips the broker faults without them. It ends with a summary and one JSON line, and
//! exits non-zero when a message was lost, a task outlived shutdown, a
//! restarted consumer got a message twice, something hung or the run broke
//! off (with `--pop` or `--push-pop` also when a duplicate is
//! unexplained).

mod faults;
mod ledger;
mod memory;
mod mode;
mod outcome;
mod pop;
mod push_pop;
mod report;
mod scenario;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rocketmq_testkit::TestCluster;
use tokio::runtime::{Builder, Runtime};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use faults::BrokerFaults;
use mode::ConsumerMode;
use push_pop::KernelWarnings;
use scenario::Plan;

#[derive(Parser)]
#[command(about = "RocketMQ client soak under faults")]
struct Cli {
    /// Messages in the main phase.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Producers sending them.
    #[arg(long, default_value_t = 2)]
    producers: usize,
    /// Consumers of the group (one at the start, the others join).
    #[arg(long, default_value_t = 3)]
    consumers: usize,
    /// The group's members are simple consumers (pop consumption: receive,
    /// ack, change invisible duration) instead of push consumers; every
    /// other leaving member drops what it holds unacknowledged, and every
    /// duplicate must be explained.
    #[arg(long, conflicts_with = "push_pop")]
    pop: bool,
    /// The group's members are push consumers that leave rebalancing to
    /// the brokers (`client_rebalance(false)`), the group switched to pop
    /// mode on the topic first (every member pops every broker); every
    /// duplicate must be explained.
    #[arg(long)]
    push_pop: bool,
    /// Stop/restart cycles of the second broker (of a real cluster: with
    /// `--broker-stop-cmd` and `--broker-start-cmd`).
    #[arg(long, default_value_t = 2)]
    restarts: usize,
    /// Nameserver address list ("a:9876;b:9876"); default `ROCKETMQ_NAMESRV_ADDR`, else an
    /// embedded testkit cluster.
    #[arg(long)]
    namesrv: Option<String>,
    /// Sends in flight per producer.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Producers batch their sends automatically (`auto_batch`); with
    /// `--concurrency` above 1, concurrent sends share batches.
    #[arg(long)]
    auto_batch: bool,
    /// Messages of the clean-restart check (0 skips it).
    #[arg(long, default_value_t = 1_000)]
    restart_check: u64,
    /// Bound on the whole run, in seconds.
    #[arg(long, default_value_t = 900)]
    time_limit: u64,
    /// Topic (default: a fresh one per run).
    #[arg(long)]
    topic: Option<String>,
    /// Shell command that stops a broker of the real cluster; repeat it to
    /// stop differently by cycle (the last one serves the later cycles).
    #[arg(long = "broker-stop-cmd", requires = "broker_start_cmd")]
    broker_stop_cmd: Vec<String>,
    /// Shell command that starts that broker again and returns once it
    /// serves (the nameserver routes to it).
    #[arg(long, requires = "broker_stop_cmd")]
    broker_start_cmd: Option<String>,
    /// The `brokerName` of the broker the commands stop.
    #[arg(long, default_value = "broker-b")]
    broker_name: String,
    /// The cluster of a real cluster's brokers: the topic is created on
    /// each of its masters (with `--topic`, an existing topic is updated).
    #[arg(long, default_value = "DefaultCluster")]
    cluster: String,
    /// Shortest time a stopped broker stays down, in seconds (at least 3).
    #[arg(long, default_value_t = 3)]
    broker_down: u64,
}

type BoxError = Box<dyn std::error::Error>;

fn runtime(workers: usize) -> std::io::Result<Runtime> {
    Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

fn main() -> Result<ExitCode, BoxError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let warnings = Arc::new(KernelWarnings::default());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .with(warnings.layer())
        .init();
    let mut cli = Cli::parse();
    if cli.namesrv.is_none() {
        cli.namesrv = std::env::var("ROCKETMQ_NAMESRV_ADDR")
            .ok()
            .filter(|addr| !addr.is_empty());
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let topic = cli
        .topic
        .clone()
        .unwrap_or_else(|| format!("SoakTopic{stamp}"));
    let mut plan = Plan {
        namesrv: Vec::new(),
        group: format!("soak-group-{stamp}"),
        topic,
        messages: cli.messages,
        producers: cli.producers,
        concurrency: cli.concurrency,
        size: cli.size,
        auto_batch: cli.auto_batch,
        consumers: cli.consumers,
        mode: if cli.pop {
            ConsumerMode::Pop
        } else if cli.push_pop {
            ConsumerMode::PushPop
        } else {
            ConsumerMode::Push
        },
        restarts: cli.restarts,
        restart_check: cli.restart_check,
        time_limit: Duration::from_secs(cli.time_limit),
        cluster: None,
        min_downtime: Duration::from_secs(cli.broker_down),
    };
    let client_runtime = runtime(2)?;
    let (outcome, target) = match &cli.namesrv {
        Some(namesrv) => {
            plan.namesrv = namesrv.split(';').map(str::to_owned).collect();
            plan.cluster = Some(cli.cluster.clone());
            let faults = cli
                .broker_start_cmd
                .take()
                .map(|start| BrokerFaults::Commands {
                    name: cli.broker_name.clone(),
                    stop: std::mem::take(&mut cli.broker_stop_cmd),
                    start,
                });
            let outcome = client_runtime.block_on(scenario::run(plan.clone(), faults, &warnings));
            (outcome, format!("cluster at {namesrv}"))
        }
        None => {
            let cluster_runtime = runtime(2)?;
            let cluster = cluster_runtime.block_on(
                TestCluster::builder()
                    .brokers(2)
                    .topic(plan.topic.as_str())
                    .start_tcp(),
            )?;
            plan.namesrv = cluster.namesrv_addrs();
            let cluster = Arc::new(cluster);
            let faults = BrokerFaults::Embedded {
                cluster: Arc::clone(&cluster),
                runtime: cluster_runtime.handle().clone(),
                index: 1,
            };
            let outcome =
                client_runtime.block_on(scenario::run(plan.clone(), Some(faults), &warnings));
            match Arc::try_unwrap(cluster) {
                Ok(cluster) => cluster_runtime.block_on(cluster.shutdown()),
                Err(_) => eprintln!("the embedded cluster is still shared; not shut down"),
            }
            (
                outcome,
                "embedded testkit cluster (loopback TCP)".to_owned(),
            )
        }
    };
    report::print(&plan, &target, &outcome);
    Ok(if outcome.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
