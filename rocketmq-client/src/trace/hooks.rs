//! Where trace records come from: a send hook (a message sent), a consume
//! hook (a message handed to the listener, and what the listener made of
//! it), and the transaction producer's END_TRANSACTION. Names in the
//! records are out of the client's namespace, as Java writes them.

use rocketmq_model::time::epoch_millis;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rocketmq_kernel::consume::{ConsumeHook, ConsumeHookContext, ConsumeOutcome, ConsumeSpan};
use rocketmq_model::body::trace::{
    ConsumeReturnType, EndTransaction, Pub, SubAfter, SubBefore, TraceMessageType, TraceRecord,
};
use rocketmq_model::header::DEFAULT_REGION;
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, Namespace, UniqueIdGenerator};

use super::Tracer;
use crate::error::ClientError;
use crate::producer::{SendContext, SendHook, SendResult, SendStatus};

/// Whole milliseconds of `elapsed` per one of `count` messages.
fn cost_ms(elapsed: Duration, count: usize) -> i32 {
    let per = elapsed.as_millis() / u128::try_from(count.max(1)).unwrap_or(1);
    i32::try_from(per).unwrap_or(i32::MAX)
}

/// Records a Pub for every send the broker answered, unless it said it
/// does not trace (Java's `SendMessageTraceHookImpl`).
pub(crate) struct TraceSendHook {
    pub(crate) tracer: Arc<Tracer>,
    pub(crate) namespace: Namespace,
}

/// How Java's producer names a message's kind in a trace.
fn message_type(msg: &Message) -> TraceMessageType {
    if msg.property(property::DELAY).is_some()
        || msg.property(property::START_DELIVER_TIME).is_some()
    {
        TraceMessageType::Delay
    } else if msg.is_transaction_prepared() {
        TraceMessageType::TransactionHalf
    } else {
        TraceMessageType::Normal
    }
}

impl SendHook for TraceSendHook {
    fn after_send(&self, ctx: &SendContext<'_>, result: Result<&SendResult, &ClientError>) {
        let Ok(result) = result else { return };
        if !result.trace_on || self.tracer.is_trace_topic(&ctx.message.topic) {
            return;
        }
        let msg = ctx.message;
        let elapsed = SystemTime::now()
            .duration_since(ctx.started)
            .unwrap_or_default();
        let topic = self.namespace.unwrap(&msg.topic).into_owned();
        // Java traces a batch as the one message it sends: no tags or keys
        // of its own, and the ids of all its messages.
        let (tags, keys) = match ctx.batch {
            true => (None, None),
            false => (
                msg.tags().map(str::to_owned),
                msg.property(property::KEYS).map(str::to_owned),
            ),
        };
        let record = TraceRecord::Pub(Pub {
            timestamp: epoch_millis(ctx.started),
            region_id: result.region_id.clone(),
            group: self.namespace.unwrap(ctx.producer_group).into_owned(),
            topic: topic.clone(),
            msg_id: result.msg_id.clone(),
            tags,
            keys,
            store_host: ctx.broker_addr.to_owned(),
            // Java's hook sees the body as sent (compressed, or the batch).
            body_length: i32::try_from(ctx.wire_body_len).unwrap_or(i32::MAX),
            cost_ms: cost_ms(elapsed, 1),
            msg_type: message_type(msg),
            offset_msg_id: Some(result.offset_msg_id.clone()),
            success: result.status == SendStatus::SendOk,
        });
        self.tracer.record(&topic, record);
    }
}

/// Records a SubBefore for every message handed to the listener and a
/// SubAfter once it returned (Java's `ConsumeMessageTraceHookImpl`).
pub(crate) struct TraceConsumeHook {
    pub(crate) tracer: Arc<Tracer>,
    pub(crate) namespace: Namespace,
    /// Makes each listener call's request id.
    pub(crate) ids: UniqueIdGenerator,
    /// A call that took this long counts as timed out.
    pub(crate) consume_timeout: Duration,
}

impl ConsumeHook for TraceConsumeHook {
    fn before_consume(&self, ctx: &ConsumeHookContext<'_>) -> Option<Box<dyn ConsumeSpan>> {
        // A message the broker stored with tracing off is not traced.
        let traced: Vec<&MessageExt> = (ctx.msgs.iter())
            .filter(|msg| msg.property(property::TRACE_ON) != Some("false"))
            .collect();
        if traced.is_empty() {
            return None;
        }
        let timestamp = epoch_millis(SystemTime::now());
        let group = self.namespace.unwrap(ctx.group).into_owned();
        let request_id = self.ids.next_id();
        let mut after = Vec::with_capacity(traced.len());
        for msg in traced {
            let before = SubBefore {
                timestamp,
                region_id: msg
                    .property(property::MSG_REGION)
                    .unwrap_or(DEFAULT_REGION)
                    .to_owned(),
                group: group.clone(),
                request_id: request_id.clone(),
                msg_id: msg.msg_id().into_owned(),
                retry_times: msg.reconsume_times,
                keys: msg.property(property::KEYS).map(str::to_owned),
            };
            after.push((
                msg.topic().to_owned(),
                before.msg_id.clone(),
                before.keys.clone(),
            ));
            self.tracer
                .record(msg.topic(), TraceRecord::SubBefore(before));
        }
        Some(Box::new(ConsumeTrace {
            tracer: Arc::clone(&self.tracer),
            request_id,
            group,
            consume_timeout: self.consume_timeout,
            msgs: after,
        }))
    }
}

/// A listener call being traced: what its SubAfter records need.
struct ConsumeTrace {
    tracer: Arc<Tracer>,
    request_id: String,
    group: String,
    consume_timeout: Duration,
    /// Topic, message id and keys of each traced message.
    msgs: Vec<(String, String, Option<String>)>,
}

impl ConsumeSpan for ConsumeTrace {
    fn after_consume(self: Box<Self>, outcome: ConsumeOutcome, elapsed: Duration) {
        // Java's order: an exception first, then a timeout, then the status.
        let returned = match outcome {
            ConsumeOutcome::Panicked => ConsumeReturnType::Exception,
            _ if elapsed >= self.consume_timeout => ConsumeReturnType::TimeOut,
            ConsumeOutcome::Failed => ConsumeReturnType::Failed,
            ConsumeOutcome::Success => ConsumeReturnType::Success,
        };
        let cost = cost_ms(elapsed, self.msgs.len());
        // When the listener returned, as Java's SubAfter (a context of its
        // own, made after the call): the dashboard ends the consume span
        // there.
        let timestamp = epoch_millis(SystemTime::now());
        for (topic, msg_id, keys) in self.msgs {
            let record = TraceRecord::SubAfter(SubAfter {
                request_id: self.request_id.clone(),
                msg_id,
                cost_ms: cost,
                success: outcome == ConsumeOutcome::Success,
                keys,
                context_code: returned.code(),
                timestamp,
                group: self.group.clone(),
            });
            self.tracer.record(&topic, record);
        }
    }
}

/// What an END_TRANSACTION of `msg` (as sent, in the namespace) to
/// `broker_addr` records (Java's `EndTransactionTraceHookImpl`).
pub(crate) struct EndTransactionTrace<'a> {
    pub(crate) namespace: &'a Namespace,
    pub(crate) group: &'a str,
    pub(crate) msg: &'a Message,
    pub(crate) msg_id: &'a str,
    pub(crate) broker_addr: &'a str,
    pub(crate) transaction_id: Option<&'a str>,
    /// Java's `LocalTransactionState` name.
    pub(crate) state: &'static str,
    pub(crate) from_transaction_check: bool,
}

impl EndTransactionTrace<'_> {
    /// Records the end in `tracer`.
    pub(crate) fn record(&self, tracer: &Tracer) {
        let (topic, record) = self.to_record();
        tracer.record(&topic, record);
    }

    /// The EndTransaction record, with its topic out of the namespace.
    fn to_record(&self) -> (String, TraceRecord) {
        let end = self;
        let msg = end.msg;
        let topic = end.namespace.unwrap(&msg.topic).into_owned();
        let record = TraceRecord::EndTransaction(EndTransaction {
            timestamp: epoch_millis(SystemTime::now()),
            region_id: msg
                .property(property::MSG_REGION)
                .unwrap_or(DEFAULT_REGION)
                .to_owned(),
            group: end.namespace.unwrap(end.group).into_owned(),
            topic: topic.clone(),
            msg_id: end.msg_id.to_owned(),
            tags: msg.tags().map(str::to_owned),
            keys: msg.property(property::KEYS).map(str::to_owned),
            store_host: end.broker_addr.to_owned(),
            msg_type: TraceMessageType::TransactionCommit,
            transaction_id: end.transaction_id.map(str::to_owned),
            state: end.state.to_owned(),
            from_transaction_check: end.from_transaction_check,
        });
        (topic, record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_as_java_names_them() {
        let plain = Message::new("T", "x");
        assert_eq!(message_type(&plain), TraceMessageType::Normal);
        let delayed = Message::builder("T")
            .body("x")
            .delay_level(3)
            .build()
            .unwrap();
        assert_eq!(message_type(&delayed), TraceMessageType::Delay);
    }

    /// A tracer whose records land in the returned receiver.
    fn bare_tracer() -> (
        Arc<Tracer>,
        tokio::sync::mpsc::Receiver<super::super::Traced>,
    ) {
        let (records, receiver) = tokio::sync::mpsc::channel(16);
        let tracer = Tracer {
            topic: super::super::TRACE_TOPIC.to_owned(),
            records,
            stop: tokio_util::sync::CancellationToken::new(),
            task: std::sync::Mutex::new(None),
            dropped: std::sync::atomic::AtomicU64::new(0),
            reported: std::sync::Mutex::new(None),
        };
        (Arc::new(tracer), receiver)
    }

    #[test]
    fn sends_to_the_trace_topic_are_not_traced() {
        let (tracer, mut receiver) = bare_tracer();
        let hook = TraceSendHook {
            tracer,
            namespace: Namespace::none(),
        };
        let mq = rocketmq_model::MessageQueue::new("T", "b", 0);
        let result = SendResult {
            status: SendStatus::SendOk,
            msg_id: "M".into(),
            offset_msg_id: "O".into(),
            message_queue: mq.clone(),
            queue_offset: 0,
            transaction_id: None,
            recall_handle: None,
            region_id: DEFAULT_REGION.into(),
            trace_on: true,
        };
        for topic in ["T", super::super::TRACE_TOPIC] {
            let msg = Message::new(topic, "x");
            let ctx = SendContext::new("pg", "b:10911", &mq, &msg);
            hook.after_send(&ctx, Ok(&result));
        }
        let traced = receiver.try_recv().unwrap();
        assert_eq!(traced.topic, "T");
        assert!(
            receiver.try_recv().is_err(),
            "the trace topic's send is not traced"
        );
    }

    #[test]
    fn a_sub_after_is_stamped_when_the_listener_returned() {
        let (tracer, mut receiver) = bare_tracer();
        let hook = TraceConsumeHook {
            tracer,
            namespace: Namespace::none(),
            ids: UniqueIdGenerator::new(None),
            consume_timeout: Duration::from_secs(900),
        };
        let mq = rocketmq_model::MessageQueue::new("T", "b", 0);
        let msgs = [MessageExt::from(Message::new("T", "x"))];
        let ctx = ConsumeHookContext::new("cg", &mq, &msgs);
        let span = hook.before_consume(&ctx).unwrap();
        // The listener returns in a later millisecond than it was called
        // in: waited for on the wall clock, which the records read.
        let called = epoch_millis(SystemTime::now());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while epoch_millis(SystemTime::now()) <= called {
            assert!(std::time::Instant::now() < deadline, "the clock stands");
            std::thread::yield_now();
        }
        span.after_consume(ConsumeOutcome::Success, Duration::from_millis(1));

        let before = match receiver.try_recv().unwrap().record {
            TraceRecord::SubBefore(before) => before,
            other => panic!("a SubBefore first: {other:?}"),
        };
        let after = match receiver.try_recv().unwrap().record {
            TraceRecord::SubAfter(after) => after,
            other => panic!("then a SubAfter: {other:?}"),
        };
        // Java's SubAfter is a context of its own, made after the call; the
        // dashboard ends the consume span at its timestamp.
        assert!(
            after.timestamp > called && called >= before.timestamp,
            "before {} after {}",
            before.timestamp,
            after.timestamp
        );
    }

    #[test]
    fn costs_are_per_message_in_whole_milliseconds() {
        assert_eq!(cost_ms(Duration::from_millis(10), 3), 3);
        assert_eq!(cost_ms(Duration::from_millis(10), 0), 10);
        assert_eq!(cost_ms(Duration::MAX, 1), i32::MAX);
    }
}
