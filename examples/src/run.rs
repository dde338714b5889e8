//! What every example's `main` does around its work: logging, waiting for
//! a condition with a deadline, and turning the outcome into an exit code.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio::time::Instant;

/// The error type of the examples: anything, with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How often [`wait_until`] checks its condition.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// What an example says when given arguments: it takes none, only the
/// environment.
fn usage(name: &str) -> String {
    format!(
        "usage: cargo run -p rocketmq-examples --example {name}\n\n\
         It takes no arguments. With {env}=host:port[;host:port] it runs\n\
         against that cluster; without it, against an embedded testkit\n\
         cluster on loopback. RUST_LOG sets the log filter (default warn).",
        env = crate::NAMESRV_ADDR_ENV
    )
}

/// What an example's command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Run,
    Help,
    Unexpected(String),
}

fn asked(mut args: impl Iterator<Item = String>) -> Asked {
    match args.next() {
        None => Asked::Run,
        Some(arg) if arg == "-h" || arg == "--help" => Asked::Help,
        Some(arg) => Asked::Unexpected(arg),
    }
}

/// Runs an example's `main`: refuses arguments (printing its usage, and
/// exiting 0 for `--help`), sets up logging, runs `work` and turns its
/// outcome into the exit code.
pub async fn run_example(name: &str, work: impl Future<Output = Result<(), BoxError>>) -> ExitCode {
    match asked(std::env::args().skip(1)) {
        Asked::Run => {
            init_tracing();
            exit_code(name, work.await)
        }
        Asked::Help => {
            println!("{}", usage(name));
            ExitCode::SUCCESS
        }
        Asked::Unexpected(arg) => {
            eprintln!("{name}: unexpected argument {arg:?}\n\n{}", usage(name));
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (e.g. from a test) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Waits until `condition` holds, checking every 20 ms; answers whether it
/// held before `limit` passed.
pub async fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Prints the outcome of example `name` and maps it to the process exit
/// code: success, or failure with the error on stderr.
pub fn exit_code(name: &str, outcome: Result<(), BoxError>) -> ExitCode {
    match outcome {
        Ok(()) => {
            println!("{name}: OK");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{name}: FAILED: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_take_no_arguments_but_help() {
        let asked_for = |args: &[&str]| asked(args.iter().map(|a| (*a).to_owned()));
        assert_eq!(asked_for(&[]), Asked::Run);
        assert_eq!(asked_for(&["--help"]), Asked::Help);
        assert_eq!(asked_for(&["-h", "x"]), Asked::Help);
        assert_eq!(
            asked_for(&["127.0.0.1:9876"]),
            Asked::Unexpected("127.0.0.1:9876".into())
        );
        assert!(usage("quickstart").contains("--example quickstart"));
    }

    // Real time, kept short: paused time would need tokio's `test-util`
    // feature, which this package's dev-dependencies would then switch on
    // for the bench program too (examples build with them), slowing every
    // clock read it measures.
    #[tokio::test]
    async fn wait_until_sees_a_condition_come_true() {
        let mut checks = 0;
        let held = wait_until(Duration::from_secs(5), || {
            checks += 1;
            checks == 3
        })
        .await;
        assert!(held);
        assert_eq!(checks, 3, "checked until it held, then stopped");
    }

    #[tokio::test]
    async fn wait_until_gives_up_at_the_limit() {
        let mut checks = 0;
        let held = wait_until(Duration::from_millis(50), || {
            checks += 1;
            false
        })
        .await;
        assert!(!held);
        assert!(checks >= 2, "checked again after waiting, {checks} checks");
    }

    #[test]
    fn exit_codes_follow_the_outcome() {
        assert_eq!(exit_code("t", Ok(())), ExitCode::SUCCESS);
        assert_eq!(exit_code("t", Err("broken".into())), ExitCode::FAILURE);
    }
}
