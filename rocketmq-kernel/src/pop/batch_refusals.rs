//! Which brokers cannot take a BATCH_ACK_MESSAGE: one older than it answers
//! REQUEST_CODE_NOT_SUPPORTED, and rocketmq-broker 1.0 answers SYSTEM_ERROR
//! because it cannot read Java's bit set (docs/interop.md). A Java broker
//! also answers a valid batch with an error now and then: SYSTEM_BUSY when
//! its ack pool is full, SYSTEM_ERROR when processing threw. So only the
//! first kind, or an error answer to two batches in a row whose messages
//! the broker then took one by one, makes a broker get single
//! acknowledgements, and then for [`KEPT`] (it may be upgraded meanwhile).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rocketmq_model::ResponseCode;
use tokio::time::Instant;

/// How long a broker found to refuse batches gets single acknowledgements.
pub(crate) const KEPT: Duration = Duration::from_secs(600);

/// Error answers in a row, to batches taken one by one after, that make a
/// broker count as refusing batches.
const REFUSALS_IN_A_ROW: u32 = 2;

#[derive(Debug, Default)]
struct Broker {
    /// Error answers in a row so far.
    in_a_row: u32,
    /// Since when it counts as refusing batches.
    since: Option<Instant>,
}

/// The brokers' record; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct BatchRefusals {
    brokers: Mutex<HashMap<String, Broker>>,
}

impl BatchRefusals {
    fn brokers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Broker>> {
        self.brokers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `broker` gets single acknowledgements only, for now.
    pub(crate) fn refuses(&self, broker: &str) -> bool {
        let mut brokers = self.brokers();
        let Some(state) = brokers.get_mut(broker) else {
            return false;
        };
        match state.since {
            Some(since) if since.elapsed() < KEPT => true,
            Some(_) => {
                brokers.remove(broker);
                false
            }
            None => false,
        }
    }

    /// `broker` took a batch.
    pub(crate) fn accepted(&self, broker: &str) {
        self.brokers().remove(broker);
    }

    /// `broker` answered a batch with `code`, then took its messages one by
    /// one (`taken`) or not. Answers whether it now counts as refusing
    /// batches.
    pub(crate) fn answered(&self, broker: &str, code: ResponseCode, taken: bool) -> bool {
        if code == ResponseCode::SYSTEM_BUSY || !taken {
            return false;
        }
        let mut brokers = self.brokers();
        let state = brokers.entry(broker.to_owned()).or_default();
        state.in_a_row += 1;
        if code == ResponseCode::REQUEST_CODE_NOT_SUPPORTED || state.in_a_row >= REFUSALS_IN_A_ROW {
            state.since = Some(Instant::now());
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_broker_refuses_batches_after_not_supported_or_two_errors_in_a_row() {
        let refusals = BatchRefusals::default();
        assert!(refusals.answered("old", ResponseCode::REQUEST_CODE_NOT_SUPPORTED, true));
        assert!(refusals.refuses("old"));

        assert!(!refusals.answered("b", ResponseCode::SYSTEM_ERROR, true));
        assert!(!refusals.refuses("b"), "once may be chance");
        assert!(refusals.answered("b", ResponseCode::SYSTEM_ERROR, true));
        assert!(refusals.refuses("b"));

        tokio::time::advance(KEPT).await;
        assert!(!refusals.refuses("b"), "tried again after a while");
        assert!(!refusals.refuses("old"));
    }

    #[test]
    fn busy_answers_untaken_singles_and_a_taken_batch_between_do_not_count() {
        let refusals = BatchRefusals::default();
        for _ in 0..3 {
            assert!(!refusals.answered("b", ResponseCode::SYSTEM_BUSY, true));
            assert!(!refusals.answered("b", ResponseCode::SYSTEM_ERROR, false));
        }
        assert!(!refusals.answered("b", ResponseCode::SYSTEM_ERROR, true));
        refusals.accepted("b");
        assert!(!refusals.answered("b", ResponseCode::SYSTEM_ERROR, true));
        assert!(!refusals.refuses("b"));
    }
}
