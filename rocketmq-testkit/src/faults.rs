//! Fault injection, modelled on librdkafka's mock cluster: answer a request
//! code with a chosen response code N times, delay the responses to a code,
//! hold the requests of a code before handling them.
//!
//! A [`Faults`] set belongs to one server (the nameserver or a broker) or to
//! the whole cluster; a server consults its own set, then the cluster's.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::RemotingCommand;

/// Injected failures and delays, keyed by request code.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Runs of failures in order: answer with the code this many times.
    failures: HashMap<i32, VecDeque<(ResponseCode, usize)>>,
    delays: HashMap<i32, Duration>,
    /// How long requests wait before they are handled.
    request_delays: HashMap<i32, Duration>,
}

impl Faults {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Answers the next `times` requests with `code` by `response` (see
    /// [`serve_with_faults`] for the degraded-durability codes).
    pub(crate) fn fail_requests(&self, code: RequestCode, response: ResponseCode, times: usize) {
        if times == 0 {
            return;
        }
        let mut inner = self.inner();
        let runs = inner.failures.entry(code.0).or_default();
        match runs.back_mut() {
            Some((last, left)) if *last == response => *left = left.saturating_add(times),
            _ => runs.push_back((response, times)),
        }
    }

    /// Delays every response to `code` by `delay` (zero removes the delay).
    pub(crate) fn delay_responses(&self, code: RequestCode, delay: Duration) {
        set_delay(&mut self.inner().delays, code, delay);
    }

    /// Holds every request with `code` for `delay` before handling it
    /// (zero removes the delay).
    pub(crate) fn delay_requests(&self, code: RequestCode, delay: Duration) {
        set_delay(&mut self.inner().request_delays, code, delay);
    }

    /// Removes every injected failure and delay.
    pub(crate) fn clear(&self) {
        let mut inner = self.inner();
        inner.failures.clear();
        inner.delays.clear();
        inner.request_delays.clear();
    }

    /// The injected answer for the next request with `code`, consuming it.
    pub(crate) fn take_failure(&self, code: i32) -> Option<ResponseCode> {
        let mut inner = self.inner();
        let runs = inner.failures.get_mut(&code)?;
        let (failure, left) = runs.front_mut()?;
        let failure = *failure;
        *left -= 1;
        if *left == 0 {
            runs.pop_front();
            if runs.is_empty() {
                inner.failures.remove(&code);
            }
        }
        Some(failure)
    }

    /// The delay of responses to `code`.
    pub(crate) fn delay(&self, code: i32) -> Option<Duration> {
        self.inner().delays.get(&code).copied()
    }

    /// How long requests with `code` wait before they are handled.
    pub(crate) fn request_delay(&self, code: i32) -> Option<Duration> {
        self.inner().request_delays.get(&code).copied()
    }
}

/// Sets the delay of `code` in `delays`; zero removes it.
fn set_delay(delays: &mut HashMap<i32, Duration>, code: RequestCode, delay: Duration) {
    if delay.is_zero() {
        delays.remove(&code.0);
    } else {
        delays.insert(code.0, delay);
    }
}

/// The fault sets a server consults, most specific first.
#[derive(Debug, Clone)]
pub(crate) struct FaultChain(pub(crate) Vec<std::sync::Arc<Faults>>);

impl FaultChain {
    /// The injected answer for a request with `code`, if any set has one left.
    pub(crate) fn take_failure(&self, code: i32) -> Option<ResponseCode> {
        self.0.iter().find_map(|faults| faults.take_failure(code))
    }

    /// The delay of responses to `code`: the first set's that has one.
    pub(crate) fn delay(&self, code: i32) -> Option<Duration> {
        self.0.iter().find_map(|faults| faults.delay(code))
    }

    /// How long requests with `code` wait before they are handled: the
    /// first set's that has a delay.
    pub(crate) fn request_delay(&self, code: i32) -> Option<Duration> {
        self.0.iter().find_map(|faults| faults.request_delay(code))
    }
}

/// Runs `handle` unless a failure is injected for `code`, then holds the
/// response for the injected delay, if any. A request delay holds the
/// request before all that, as a busy broker's queue of work does: the
/// requests a connection sends after it may be handled first.
///
/// An injected code that means "stored, with degraded durability"
/// (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE) is what a
/// Java broker answers a send that it did store: the request is handled, and
/// a successful answer, with its header, gets the injected code.
pub(crate) async fn serve_with_faults(
    chain: &FaultChain,
    code: i32,
    handle: impl Future<Output = RemotingCommand>,
) -> RemotingCommand {
    if let Some(delay) = chain.request_delay(code) {
        tokio::time::sleep(delay).await;
    }
    let response = match chain.take_failure(code) {
        Some(injected) if injected.is_stored() => {
            let mut response = handle.await;
            if response.code == ResponseCode::SUCCESS.0 {
                response.code = injected.0;
            }
            response
        }
        Some(injected) => crate::reply::error(injected, "injected by rocketmq-testkit"),
        None => handle.await,
    };
    if let Some(delay) = chain.delay(code) {
        tokio::time::sleep(delay).await;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_consumed_in_order_and_delays_kept() {
        let faults = Faults::default();
        faults.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_BUSY, 2);
        faults.fail_requests(RequestCode::SEND_MESSAGE_V2, ResponseCode::SYSTEM_ERROR, 1);
        let code = RequestCode::SEND_MESSAGE_V2.0;
        assert_eq!(faults.take_failure(code), Some(ResponseCode::SYSTEM_BUSY));
        assert_eq!(faults.take_failure(code), Some(ResponseCode::SYSTEM_BUSY));
        assert_eq!(faults.take_failure(code), Some(ResponseCode::SYSTEM_ERROR));
        assert_eq!(faults.take_failure(code), None);
        faults.delay_responses(RequestCode::PULL_MESSAGE, Duration::from_secs(1));
        assert_eq!(faults.delay(11), Some(Duration::from_secs(1)));
        faults.delay_responses(RequestCode::PULL_MESSAGE, Duration::ZERO);
        assert_eq!(faults.delay(11), None);
    }

    /// A held request is handled after one sent later: what a busy broker
    /// does with a heartbeat queued behind other work.
    #[tokio::test(start_paused = true)]
    async fn a_held_request_is_handled_after_those_sent_later() {
        let faults = std::sync::Arc::new(Faults::default());
        faults.delay_requests(RequestCode::HEART_BEAT, Duration::from_secs(1));
        let chain = FaultChain(vec![faults]);
        let handled = Mutex::new(Vec::new());
        let handle = |code: RequestCode| {
            let handled = &handled;
            async move {
                handled.lock().unwrap().push(code);
                crate::reply::error(ResponseCode::SUCCESS, "")
            }
        };
        let heartbeat = RequestCode::HEART_BEAT;
        let unregister = RequestCode::UNREGISTER_CLIENT;
        tokio::join!(
            serve_with_faults(&chain, heartbeat.0, handle(heartbeat)),
            serve_with_faults(&chain, unregister.0, handle(unregister)),
        );
        assert_eq!(*handled.lock().unwrap(), [unregister, heartbeat]);
    }

    /// "Fail every one until cleared": a count as large as `usize::MAX`
    /// is kept as a count, not as that many entries.
    #[test]
    fn a_failure_without_end_costs_nothing() {
        let faults = Faults::default();
        let code = RequestCode::PULL_MESSAGE;
        faults.fail_requests(code, ResponseCode::SYSTEM_BUSY, usize::MAX);
        faults.fail_requests(code, ResponseCode::SYSTEM_BUSY, 5);
        for _ in 0..1000 {
            assert_eq!(faults.take_failure(code.0), Some(ResponseCode::SYSTEM_BUSY));
        }
        faults.fail_requests(code, ResponseCode::FLOW_CONTROL, 0);
        faults.clear();
        assert_eq!(faults.take_failure(code.0), None);
    }
}
