//! The broker the soak stops and restarts: a broker of the embedded testkit
//! cluster, or one of a real cluster through shell commands the user gives
//! (e.g. `scripts/real-cluster.sh stop-broker broker-b KILL`).

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rocketmq_testkit::TestCluster;
use tokio::runtime::Handle;

/// A broker the soak may stop and restart.
pub(crate) enum BrokerFaults {
    /// A broker of an embedded cluster; the cluster runs on its own runtime
    /// so that the client's runtime holds nothing but the client's tasks.
    Embedded {
        /// The embedded cluster.
        cluster: Arc<TestCluster>,
        /// The runtime the cluster runs on.
        runtime: Handle,
        /// Which broker to stop.
        index: usize,
    },
    /// A broker of a real cluster, stopped and started by shell commands.
    Commands {
        /// The broker's name (`brokerName`), to tell its sends from others'.
        name: String,
        /// Stop commands by cycle; the last one serves every later cycle.
        stop: Vec<String>,
        /// The start command: it should return once the broker serves again
        /// (the nameserver routes to it).
        start: String,
    },
}

impl BrokerFaults {
    /// The name of the broker that is stopped.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::Embedded { cluster, index, .. } => cluster.broker(*index).name().to_owned(),
            Self::Commands { name, .. } => name.clone(),
        }
    }

    /// How the broker is stopped in `cycle` (0-based), for the fault log.
    pub(crate) fn stop_label(&self, cycle: usize) -> String {
        match self {
            Self::Embedded { .. } => format!("stop {}", self.name()),
            Self::Commands { name, stop, .. } => match stop_command(stop, cycle) {
                Some(cmd) => format!("stop {name} ({cmd})"),
                None => format!("stop {name} (no command)"),
            },
        }
    }

    /// Stops the broker (cycle `cycle`, 0-based).
    pub(crate) async fn stop(&self, cycle: usize) -> Result<(), String> {
        match self {
            Self::Embedded {
                cluster,
                runtime,
                index,
            } => {
                let (cluster, index) = (Arc::clone(cluster), *index);
                on_runtime(runtime, async move { cluster.broker(index).stop().await }).await
            }
            Self::Commands { stop, .. } => match stop_command(stop, cycle) {
                Some(cmd) => run_shell(cmd.to_owned()).await,
                None => Err("no --broker-stop-cmd".into()),
            },
        }
    }

    /// Starts the broker again, with its data kept.
    pub(crate) async fn restart(&self) -> Result<(), String> {
        match self {
            Self::Embedded {
                cluster,
                runtime,
                index,
            } => {
                let (cluster, index) = (Arc::clone(cluster), *index);
                on_runtime(
                    runtime,
                    async move { cluster.broker(index).restart().await },
                )
                .await?
                .map_err(|err| err.to_string())
            }
            Self::Commands { start, .. } => run_shell(start.clone()).await,
        }
    }
}

/// Runs `work` on the embedded cluster's runtime and waits for it.
async fn on_runtime<T: Send + 'static>(
    runtime: &Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, String> {
    runtime.spawn(work).await.map_err(|err| err.to_string())
}

fn stop_command(stop: &[String], cycle: usize) -> Option<&str> {
    stop.get(cycle).or_else(|| stop.last()).map(String::as_str)
}

/// Runs `cmd` with `sh -c` on the blocking pool, its output on stderr (the
/// soak's stdout is its report); an exit status other than 0 is an error.
async fn run_shell(cmd: String) -> Result<(), String> {
    let ran = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("sh");
        command.arg("-c").arg(&cmd).stdin(Stdio::null());
        if let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() {
            command.stdout(Stdio::from(stderr));
        }
        command
            .status()
            .map_err(|err| format!("`{cmd}` did not run: {err}"))
            .and_then(|status| {
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("`{cmd}` failed: {status}"))
                }
            })
    })
    .await;
    ran.map_err(|err| err.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_cycles_reuse_the_last_stop_command() {
        let stop = vec!["a".to_owned(), "b".to_owned()];
        assert_eq!(stop_command(&stop, 0), Some("a"));
        assert_eq!(stop_command(&stop, 1), Some("b"));
        assert_eq!(stop_command(&stop, 5), Some("b"));
        assert_eq!(stop_command(&[], 0), None);
    }
}
