//! Resident memory of this process, sampled during the run from
//! `/proc/self/status` (Linux; elsewhere the figures stay 0).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often resident memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_kib(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The sampling task and the peak it saw.
pub(crate) struct MemorySampler {
    peak_kib: Arc<AtomicU64>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl MemorySampler {
    /// Starts sampling `VmRSS` on the current runtime.
    pub(crate) fn start() -> Self {
        let peak_kib = Arc::new(AtomicU64::new(status_kib("VmRSS")));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(sample(Arc::clone(&peak_kib), cancel.clone()));
        MemorySampler {
            peak_kib,
            cancel,
            task,
        }
    }

    /// Stops sampling (and waits for the task); answers the peak `VmRSS`
    /// seen, in KiB.
    pub(crate) async fn stop(self) -> u64 {
        self.cancel.cancel();
        if let Err(err) = self.task.await {
            tracing::warn!(error = %err, "the memory sampler failed");
        }
        self.peak_kib.load(Ordering::Relaxed)
    }
}

async fn sample(peak_kib: Arc<AtomicU64>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {
                peak_kib.fetch_max(status_kib("VmRSS"), Ordering::Relaxed);
            }
        }
    }
}
