//! What a bench run measured, printed for people and as one JSON line.

use std::time::Duration;

use cpu_time::ProcessTime;
use hdrhistogram::Histogram;

/// Latencies up to an hour, three significant digits, in microseconds.
pub(crate) fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant, valid histogram bounds")
}

/// Records one latency.
pub(crate) fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    histogram.saturating_record(micros);
}

/// The figures of one run.
pub(crate) struct Report {
    /// What ran, e.g. "produce sync".
    pub(crate) label: String,
    /// Messages that succeeded.
    pub(crate) messages: u64,
    /// Messages that failed.
    pub(crate) failures: u64,
    /// Body size in bytes.
    pub(crate) size: usize,
    /// Requests in flight.
    pub(crate) concurrency: usize,
    /// Wall time of the measured part.
    pub(crate) elapsed: Duration,
    /// Per-message latency (send to answer, or store to consume).
    pub(crate) latency: Histogram<u64>,
    /// CPU time of this process (user + system) during the measured part.
    pub(crate) cpu: Duration,
}

/// Starts measuring CPU time.
pub(crate) fn cpu_start() -> ProcessTime {
    ProcessTime::now()
}

impl Report {
    fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.messages as f64 / secs
        } else {
            0.0
        }
    }

    fn cpu_per_message_us(&self) -> f64 {
        if self.messages == 0 {
            return 0.0;
        }
        self.cpu.as_secs_f64() * 1e6 / self.messages as f64
    }

    /// Prints the human summary, then the JSON line; `workers` is the number of
    /// runtime worker threads the run had.
    pub(crate) fn print(&self, workers: usize) {
        println!(
            "{}: {} messages of {} B ({} failed) in {:.2?} with {} in flight, {} worker threads",
            self.label,
            self.messages,
            self.size,
            self.failures,
            self.elapsed,
            self.concurrency,
            workers
        );
        println!(
            "  throughput {:.0} msg/s; latency p50 {} us, p99 {} us, max {} us; client CPU {:.2} us/msg",
            self.throughput(),
            self.latency.value_at_quantile(0.5),
            self.latency.value_at_quantile(0.99),
            self.latency.max(),
            self.cpu_per_message_us()
        );
        let json = serde_json::json!({
            "label": self.label,
            "messages": self.messages,
            "failures": self.failures,
            "size": self.size,
            "concurrency": self.concurrency,
            "workers": workers,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "throughput_per_s": self.throughput(),
            "latency_us": {
                "p50": self.latency.value_at_quantile(0.5),
                "p99": self.latency.value_at_quantile(0.99),
                "max": self.latency.max(),
            },
            "cpu_us_per_msg": self.cpu_per_message_us(),
        });
        println!("{json}");
    }
}
