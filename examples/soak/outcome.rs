//! What a soak run found, and whether it passed.

use std::time::Duration;

use crate::ledger::{FaultEvent, Verdict};
use crate::mode::ConsumerMode;
use crate::pop::PopFigures;
use crate::push_pop::PushPopFigures;

/// What a run found.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Lost, consumed, duplicates.
    pub(crate) verdict: Verdict,
    /// Faults and membership changes, in order.
    pub(crate) faults: Vec<FaultEvent>,
    /// Redeliveries, to the cleanly restarted consumer, of messages
    /// consumed before its restart: must be 0.
    pub(crate) restart_redeliveries: u64,
    /// Consumer shutdowns that left messages or errors behind.
    pub(crate) unclean_shutdowns: Vec<String>,
    /// The kind of consumers the group's members were.
    pub(crate) mode: ConsumerMode,
    /// What the pop consumers did (pop mode only).
    pub(crate) pop: Option<PopFigures>,
    /// What the push pop members' books hold (push pop mode only).
    pub(crate) push_pop: Option<PushPopFigures>,
    /// Peak `VmRSS` sampled during the run, KiB.
    pub(crate) peak_rss_kib: u64,
    /// `VmHWM` at the end, KiB.
    pub(crate) hwm_kib: u64,
    /// Tasks alive on the client runtime after everything shut down.
    pub(crate) tasks_alive: usize,
    /// Time spent sending the main phase.
    pub(crate) send_time: Duration,
    /// The whole run.
    pub(crate) run_time: Duration,
    /// For each broker restart, how long after it served again (its start
    /// returned) the first send to one of its queues was acknowledged; `None`
    /// when none was.
    pub(crate) send_recoveries: Vec<(String, Option<Duration>)>,
    /// Acknowledged messages never consumed that no broker can deliver: not
    /// in its store (looked up by UNIQ_KEY), or stored but not at the queue
    /// offset they were acknowledged with. The broker's loss.
    pub(crate) lost_by_broker: u64,
    /// Whether the brokers are the embedded testkit's: a queue offset it
    /// hands out in two pops is a testkit bug, and fails the run.
    pub(crate) embedded_brokers: bool,
    /// Whether the time limit ran out (something hung or was lost).
    pub(crate) timed_out: bool,
    /// Whether the run broke off (a client could not be built, or the
    /// group could not be switched to pop mode).
    pub(crate) aborted: bool,
    /// Shutdowns that did not end within their limit.
    pub(crate) hangs: Vec<String>,
    /// What the run could not do.
    pub(crate) notes: Vec<String>,
}

impl Outcome {
    /// Whether the run passed: it ran to its end, nothing lost, nothing
    /// redelivered to the restarted consumer, no task left, nothing hung;
    /// when the members pop (`--pop`, `--push-pop`) also every duplicate
    /// explained: by a release of the message itself (see
    /// [`Attribution::Releases`](crate::ledger::Attribution::Releases)),
    /// or, of a real broker, as the broker's: a queue offset it handed out
    /// in two pops (`popped_twice`, reported apart as the broker's loss
    /// is). The embedded testkit must never do that (it reads a queue for
    /// one pop at a time, as Java's broker).
    pub(crate) fn passed(&self) -> bool {
        let dups = &self.verdict.duplicates;
        self.client_lost() == 0
            && self.restart_redeliveries == 0
            && self.tasks_alive == 0
            && !self.timed_out
            && !self.aborted
            && self.hangs.is_empty()
            && (!self.mode.pops() || dups.unexplained == 0)
            && !(self.embedded_brokers && dups.popped_twice > 0)
    }
}

impl Outcome {
    /// Lost messages the brokers still store: the client's loss. A message a
    /// broker acknowledged and then lost (a SIGKILL before its store was
    /// flushed) is the broker's, and reported apart.
    pub(crate) fn client_lost(&self) -> u64 {
        self.verdict.lost.saturating_sub(self.lost_by_broker)
    }
}
