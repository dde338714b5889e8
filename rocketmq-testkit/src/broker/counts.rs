//! What a broker received and sent, counted so that a test can wait for
//! the next heartbeat or the next transaction check instead of moving the
//! clock on by a guess.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use rocketmq_model::RequestCode;

#[derive(Debug, Default)]
pub(crate) struct Counts {
    /// Requests received, by code (refused ones too).
    received: Mutex<HashMap<i32, u64>>,
    /// CHECK_TRANSACTION_STATE requests written to a producer.
    checks_sent: AtomicU64,
}

impl Counts {
    pub(crate) fn received(&self, code: i32) {
        let mut received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        *received.entry(code).or_default() += 1;
    }

    pub(crate) fn received_of(&self, code: RequestCode) -> u64 {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received.get(&code.0).copied().unwrap_or(0)
    }

    pub(crate) fn check_sent(&self) {
        self.checks_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn checks_sent(&self) -> u64 {
        self.checks_sent.load(Ordering::Relaxed)
    }
}
