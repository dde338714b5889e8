//! Flow control before a pull (Java's checks at the top of
//! `DefaultMQPushConsumerImpl#pullMessage`).

use crate::consumer_options::ConsumerOptions;
use crate::process_queue::ProcessQueue;

/// Why a queue is not pulled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowControl {
    /// More messages cached than the per-queue limit.
    Count { cached: usize, limit: usize },
    /// More body bytes cached than the per-queue limit.
    Bytes { cached: u64, limit: u64 },
    /// Concurrent consumption: the cached offsets span more than allowed.
    Span { span: i64, limit: i64 },
}

/// The per-queue limits of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    count: usize,
    bytes: u64,
    /// `None` for orderly consumption, which does not check the span.
    span: Option<i64>,
}

impl Limits {
    /// The limits of a queue of a consumer that owns `owned_queues` queues
    /// (of all its topics, the retry topic included): a per-topic threshold,
    /// when set, is divided over them (at least 1 each) and replaces the
    /// per-queue one, as Java's `messageQueueChanged` divides it by the
    /// size of the process queue table.
    pub(crate) fn new(options: &ConsumerOptions, owned_queues: usize, orderly: bool) -> Self {
        let queues = owned_queues.max(1);
        let count = options
            .pull_threshold_for_topic
            .map_or(options.pull_threshold_for_queue, |topic| {
                (topic / queues).max(1)
            });
        let bytes = options
            .pull_threshold_size_for_topic
            .map_or(options.pull_threshold_size_for_queue, |topic| {
                (topic / queues as u64).max(1)
            });
        Limits {
            count,
            bytes,
            span: (!orderly).then_some(options.consume_concurrently_max_span),
        }
    }
}

/// Whether `pq` must wait before its next pull.
pub(crate) fn check(pq: &ProcessQueue, limits: &Limits) -> Option<FlowControl> {
    let cached = pq.cached_count();
    if cached > limits.count {
        return Some(FlowControl::Count {
            cached,
            limit: limits.count,
        });
    }
    let cached = pq.cached_bytes();
    if cached > limits.bytes {
        return Some(FlowControl::Bytes {
            cached,
            limit: limits.bytes,
        });
    }
    match limits.span {
        Some(limit) if pq.span() > limit => Some(FlowControl::Span {
            span: pq.span(),
            limit,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rocketmq_model::{Message, MessageExt};
    use tokio::time::Instant;

    use super::*;

    fn msg(offset: i64, body: &'static str) -> Arc<MessageExt> {
        Arc::new(MessageExt {
            message: Message::new("T", body),
            queue_offset: offset,
            ..MessageExt::default()
        })
    }

    fn options() -> ConsumerOptions {
        ConsumerOptions {
            pull_threshold_for_queue: 2,
            pull_threshold_size_for_queue: 10,
            consume_concurrently_max_span: 5,
            ..ConsumerOptions::new("cg")
        }
    }

    #[test]
    fn topic_thresholds_are_divided_over_the_topic_queues() {
        let topic = ConsumerOptions {
            pull_threshold_for_topic: Some(1000),
            pull_threshold_size_for_topic: Some(3),
            ..options()
        };
        let limits = Limits::new(&topic, 8, false);
        assert_eq!((limits.count, limits.bytes), (125, 1));
        assert_eq!(Limits::new(&topic, 0, false).count, 1000);
        let limits = Limits::new(&options(), 8, true);
        assert_eq!((limits.count, limits.bytes, limits.span), (2, 10, None));
    }

    #[test]
    fn count_bytes_and_span_each_stop_a_pull() {
        let now = Instant::now();
        let limits = Limits::new(&options(), 1, false);
        let pq = ProcessQueue::new(now);
        pq.put(&[msg(0, "1234"), msg(1, "1234")]);
        assert_eq!(check(&pq, &limits), None, "at the limit is allowed");
        pq.put(&[msg(2, "1")]);
        assert_eq!(
            check(&pq, &limits),
            Some(FlowControl::Count {
                cached: 3,
                limit: 2
            })
        );

        let pq = ProcessQueue::new(now);
        pq.put(&[msg(0, "12345678901")]);
        assert_eq!(
            check(&pq, &limits),
            Some(FlowControl::Bytes {
                cached: 11,
                limit: 10
            })
        );

        let pq = ProcessQueue::new(now);
        pq.put(&[msg(0, "a"), msg(6, "b")]);
        assert_eq!(
            check(&pq, &limits),
            Some(FlowControl::Span { span: 6, limit: 5 })
        );
        let orderly = Limits::new(&options(), 1, true);
        assert_eq!(check(&pq, &orderly), None, "orderly ignores the span");
    }
}
