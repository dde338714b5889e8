//! The bench program: throughput, latency and client CPU time per message, like
//! the Java distribution's benchmark producer and consumer.
//!
//! ```sh
//! cargo run --release -p rocketmq-examples --example bench -- raw --messages 100000 --size 256 --concurrency 8
//! ```
//!
//! Without `--namesrv` (or `ROCKETMQ_NAMESRV_ADDR`) it starts an embedded testkit
//! cluster on loopback. Every
//! run ends with a summary and one JSON line carrying the same figures.

mod consume;
mod pop;
mod produce;
mod raw;
mod report;

use clap::{Parser, Subcommand, ValueEnum};
use rocketmq_remoting::SerializeType;
use rocketmq_remoting::calls::GetRouteInfo;
use rocketmq_remoting::client::RemotingClient;
use rocketmq_testkit::TestCluster;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(about = "RocketMQ client benchmarks")]
struct Cli {
    /// Worker threads of the tokio runtime (default: one per core). With 1 the
    /// figures leave out the cost of waking a second worker thread; 0 runs
    /// everything on tokio's current-thread runtime.
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-encoded SEND_MESSAGE_V2 frames with N in flight: the floor to compare with.
    Raw(RawArgs),
    /// The client's producer: sync, async, oneway or batch sends.
    Produce(ProduceArgs),
    /// A push consumer (or, with `--pop`, a simple consumer) draining a
    /// topic filled beforehand.
    Consume(ConsumeArgs),
}

#[derive(clap::Args)]
struct ConsumeArgs {
    #[command(flatten)]
    target: Target,
    /// Consumer group (a fresh one per run by default).
    #[arg(long)]
    group: Option<String>,
    /// Messages to fill the topic with, then consume.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Fill bodies with pseudo-random bytes, which zlib cannot shrink (the
    /// default, a repeated letter, compresses to almost nothing at 4 KiB and up).
    #[arg(long)]
    random_body: bool,
    /// Consume with a SimpleConsumer (pop) and this many receiving tasks,
    /// instead of a push consumer.
    #[arg(long, value_name = "RECEIVERS")]
    pop: Option<usize>,
    /// With `--pop`: acknowledge each message alone instead of each answer
    /// in one batch.
    #[arg(long, requires = "pop")]
    ack_each: bool,
    /// The push consumer in pop mode: the group switched to POP on the
    /// topic's brokers and the consumer built with `client_rebalance(false)`,
    /// so it pops every broker's queues and acknowledges each message once
    /// consumed (with others consumed meanwhile, in one BATCH_ACK_MESSAGE).
    #[arg(long, conflicts_with = "pop")]
    push_pop: bool,
}

#[derive(clap::Args)]
struct RawArgs {
    #[command(flatten)]
    send: SendArgs,
    /// Write all frames that may go out at once in one `write` (as the
    /// client's writer does), instead of one `write` per frame.
    #[arg(long)]
    coalesce: bool,
}

#[derive(clap::Args)]
struct ProduceArgs {
    #[command(flatten)]
    send: SendArgs,
    /// How messages are sent.
    #[arg(long, value_enum, default_value_t = produce::Mode::Sync)]
    mode: produce::Mode,
    /// Messages per batch in batch mode.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Run the concurrent senders (sync, oneway, batch) as futures of one
    /// task instead of a task each: their wake-ups then stay on one thread.
    #[arg(long)]
    one_task: bool,
    /// Let the producer batch sync and async sends automatically
    /// (`auto_batch`, Java's `autoBatch`).
    #[arg(long)]
    auto_batch: bool,
}

#[derive(clap::Args)]
struct Target {
    /// Nameserver address list ("a:9876;b:9876"); an embedded testkit cluster when absent.
    #[arg(long, env = "ROCKETMQ_NAMESRV_ADDR")]
    namesrv: Option<String>,
    /// Topic to use.
    #[arg(long, default_value = "BenchTopic")]
    topic: String,
    /// Header serialization.
    #[arg(long, value_enum, default_value_t = Serialization::Json)]
    serialization: Serialization,
}

#[derive(clap::Args)]
struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// Messages to send.
    #[arg(long, default_value_t = 100_000)]
    messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Fill bodies with pseudo-random bytes, which zlib cannot shrink (the
    /// default, a repeated letter, compresses to almost nothing at 4 KiB and up).
    #[arg(long)]
    random_body: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Serialization {
    Json,
    Rocketmq,
}

impl From<Serialization> for SerializeType {
    fn from(value: Serialization) -> Self {
        match value {
            Serialization::Json => SerializeType::Json,
            Serialization::Rocketmq => SerializeType::RocketMq,
        }
    }
}

/// The cluster a run talks to: given, or embedded (kept alive for the run).
struct Cluster {
    namesrv: String,
    _embedded: Option<TestCluster>,
}

impl Cluster {
    async fn open(target: &Target) -> Result<Self, BoxError> {
        if let Some(namesrv) = &target.namesrv {
            return Ok(Cluster {
                namesrv: namesrv.clone(),
                _embedded: None,
            });
        }
        let cluster = TestCluster::builder()
            .brokers(1)
            .topic(target.topic.as_str())
            .start_tcp()
            .await?;
        eprintln!(
            "embedded testkit cluster: nameserver {}",
            cluster.namesrv_addr()
        );
        Ok(Cluster {
            namesrv: cluster.namesrv_addr().to_owned(),
            _embedded: Some(cluster),
        })
    }

    /// The master address of the first broker serving `topic` (or TBW102).
    async fn broker_addr(&self, topic: &str) -> Result<String, BoxError> {
        let client = RemotingClient::builder().build();
        let addr = self
            .namesrv
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        let timeout = Duration::from_secs(3);
        let route = match client
            .invoke_call(&addr, GetRouteInfo::new(topic), timeout)
            .await
        {
            Ok(route) => route,
            Err(_) => {
                client
                    .invoke_call(&addr, GetRouteInfo::new("TBW102"), timeout)
                    .await?
            }
        };
        client.shutdown().await;
        route
            .broker_datas
            .iter()
            .find_map(|b| b.master_addr().map(str::to_owned))
            .ok_or_else(|| format!("no broker serves {topic}").into())
    }
}

/// A message body of `size` bytes: one repeated letter, or pseudo-random bytes
/// (xorshift) when `random`.
fn body(size: usize, random: bool) -> bytes::Bytes {
    if !random {
        return bytes::Bytes::from(vec![b'x'; size]);
    }
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut body = Vec::with_capacity(size + 8);
    while body.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        body.extend_from_slice(&state.to_le_bytes());
    }
    body.truncate(size);
    body.into()
}

fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let runtime = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()?
    };
    runtime.block_on(run(cli.command, workers))
}

async fn run(command: Command, workers: usize) -> Result<(), BoxError> {
    match command {
        Command::Raw(RawArgs {
            send: args,
            coalesce,
        }) => {
            let cluster = Cluster::open(&args.target).await?;
            let plan = raw::RawPlan {
                broker_addr: cluster.broker_addr(&args.target.topic).await?,
                topic: args.target.topic.clone(),
                messages: args.messages,
                body: body(args.size, args.random_body),
                concurrency: args.concurrency,
                serialize_type: args.target.serialization.into(),
                coalesce,
            };
            raw::run(plan).await?.print(workers);
        }
        Command::Produce(args) => {
            let send = &args.send;
            let cluster = Cluster::open(&send.target).await?;
            let plan = produce::ProducePlan {
                namesrv: cluster.namesrv.clone(),
                topic: send.target.topic.clone(),
                messages: send.messages,
                body: body(send.size, send.random_body),
                concurrency: send.concurrency,
                mode: args.mode,
                batch_size: args.batch_size,
                serialize_type: send.target.serialization.into(),
                one_task: args.one_task,
                auto_batch: args.auto_batch,
            };
            produce::run(plan).await?.print(workers);
        }
        Command::Consume(args) => {
            let cluster = Cluster::open(&args.target).await?;
            let plan = consume::ConsumePlan {
                namesrv: cluster.namesrv.clone(),
                topic: args.target.topic.clone(),
                group: args
                    .group
                    .unwrap_or_else(|| format!("bench_consumer_{}", std::process::id())),
                messages: args.messages,
                body: body(args.size, args.random_body),
                serialize_type: args.target.serialization.into(),
                push_pop: args.push_pop,
            };
            let report = match args.pop {
                Some(receivers) => pop::run(plan, receivers, args.ack_each).await?,
                None => consume::run(plan).await?,
            };
            report.print(workers);
        }
    }
    Ok(())
}
