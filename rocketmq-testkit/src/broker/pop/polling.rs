//! What a held pop waits on (Java's `PopLongPollingService`): the arrivals
//! in the queues it reads, of a message its filter matches.

use futures::future::select_all;
use rocketmq_model::header::PopMessageRequestHeader;
use tokio::sync::watch;
use tokio::time::Instant;

use super::super::BrokerCore;
use super::super::pull::Filter;

/// The arrival channels of the queues a held pop waits on, with the max
/// offset each had when last looked at.
pub(super) struct Arrivals {
    topic: String,
    queues: Vec<(i32, watch::Receiver<i64>, i64)>,
}

impl Arrivals {
    /// Subscribes before the pop reads, so that nothing stored after the
    /// read is missed.
    pub(super) fn subscribe(
        core: &BrokerCore,
        header: &PopMessageRequestHeader,
        read_queues: i32,
    ) -> Self {
        let ids: Vec<i32> = if header.queue_id < 0 {
            (0..read_queues).collect()
        } else {
            vec![header.queue_id]
        };
        let queues = (ids.into_iter())
            .map(|queue_id| {
                let receiver = core.store.arrivals(&header.topic, queue_id);
                let max = *receiver.borrow();
                (queue_id, receiver, max)
            })
            .collect();
        Arrivals {
            topic: header.topic.clone(),
            queues,
        }
    }

    /// Returns when a message `filter` matches arrived, or at `deadline`.
    pub(super) async fn wait(&mut self, core: &BrokerCore, filter: &Filter, deadline: Instant) {
        if self.queues.is_empty() {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        loop {
            let woken = {
                let changes =
                    (self.queues.iter_mut()).map(|(_, receiver, _)| Box::pin(receiver.changed()));
                tokio::select! {
                    (changed, index, _) = select_all(changes) => Some((index, changed.is_ok())),
                    () = tokio::time::sleep_until(deadline) => None,
                }
            };
            let Some((index, open)) = woken else {
                return;
            };
            let Some((queue_id, receiver, seen)) = self.queues.get_mut(index) else {
                return;
            };
            let from = *seen;
            *seen = *receiver.borrow_and_update();
            let matched =
                (core.store).has_match_from(&self.topic, *queue_id, from, |m| filter.matches(m));
            if !open || matched {
                return;
            }
        }
    }
}
