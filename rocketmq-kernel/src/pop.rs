//! What a FOUND pop answer holds, post-processed as Java's
//! `MQClientAPIImpl#processPopResponse` and the push consumer's
//! `processPopResult` do: each message with the receipt handle that
//! acknowledges it; and, for a push consumer the brokers tell to pop its
//! queues, the pop task of each such queue (`pop/task.rs`), the acknowledgements
//! and retries of what it consumed ([`PopAcks`], [`settle`]) and the count
//! that holds its pops back ([`PopQueue`]).

use std::collections::HashMap;

use compact_str::ToCompactString;
use rocketmq_model::message::pop::{
    PopQueueKey, PopTopicKind, ReceiptHandle, order_count, parse_msg_offset_info,
    parse_order_count_info, parse_start_offset_info,
};
use rocketmq_model::message::{decode_records_prefix, sysflag};
use rocketmq_model::{MessageExt, ModelError, SubscriptionData, property};
use rocketmq_remoting::calls::PopResponse;

use crate::error::Result;

mod acks;
mod batch_body;
mod batch_refusals;
mod coalesce;
mod queue;
mod settle;
pub(crate) mod task;

pub use self::acks::{AckTarget, PopAcks};
pub use self::coalesce::CoalescedAcks;
pub use self::queue::PopQueue;
pub use self::settle::{POP_DELAY_SECONDS, Settling, retry_delay, settle};

/// A popped message and what acknowledges it.
#[derive(Debug, Clone)]
pub struct PoppedMessage {
    /// The message; its `POP_CK` property holds the handle too, and
    /// `1ST_POP_TIME` when it was first popped.
    pub message: MessageExt,
    /// The receipt handle: acknowledges the message, or changes how long
    /// it stays invisible.
    pub handle: ReceiptHandle,
}

/// The messages of a FOUND pop answer.
#[derive(Debug, Default)]
pub struct Popped {
    /// The messages the subscription selects.
    pub messages: Vec<PoppedMessage>,
    /// Handles of messages the broker answered but the subscription does not
    /// select (a tag whose hash collides with a subscribed one's): the
    /// caller acknowledges them, as Java does, or they come back.
    pub filtered_out: Vec<ReceiptHandle>,
}

/// The messages of `response`, a FOUND answer of `broker_name` to a pop
/// under `subscription`:
///
/// - decoded from the body, inner batches expanded; a body that breaks off
///   gives the messages before the break (the rest come back when their
///   invisible time passes);
/// - each given its receipt handle: the broker's own (`POP_CK`) on a
///   redelivered message, else built from the answer's `startOffsetInfo`
///   and `msgOffsetInfo` (or, from a broker that sends neither, from the
///   first offset of each queue answered, as Java's client does);
/// - for an orderly pop, given the reconsume times its `orderCountInfo`
///   names (the message's entry, else its queue's), as Java's client;
/// - re-filtered by tag *string* when the subscription names tags.
///
/// A message whose queue the offset infos do not name is an error: no
/// handle could acknowledge it.
pub fn popped_messages(
    broker_name: &str,
    response: &PopResponse,
    subscription: &SubscriptionData,
) -> Result<Popped> {
    let Some(header) = &response.header else {
        return Err(malformed("a found answer without its pop header").into());
    };
    let decoded = decode_records_prefix(response.body.clone());
    if let Some(error) = &decoded.malformed {
        tracing::error!(broker = broker_name, %error,
            "a pop answer breaks off at a malformed record; the rest come back after their invisible time");
    } else if decoded.reached_total {
        tracing::info!(
            broker = broker_name,
            "a pop answer's bodies reach the decompression total; the rest come back after their invisible time"
        );
    }
    let starts = parse_start_offset_info(header.start_offset_info.as_deref().unwrap_or(""))?;
    let offsets = parse_msg_offset_info(header.msg_offset_info.as_deref().unwrap_or(""))?;
    let order_counts = parse_order_count_info(header.order_count_info.as_deref().unwrap_or(""))?;
    let handles = Handles {
        broker_name,
        pop_time: header.pop_time,
        invisible_time: header.invisible_time,
        revive_qid: header.revive_qid,
        starts,
        offsets,
    };
    let sorted = sort_map(&decoded.messages)?;
    let mut first_offsets: HashMap<PopQueueKey, i64> = HashMap::new();
    let mut popped = Popped::default();
    for mut message in decoded.messages {
        if sysflag::has(message.sys_flag, sysflag::COMPRESSED_FLAG) {
            tracing::warn!(
                broker = broker_name,
                offset = message.queue_offset,
                "a body could not be decompressed; it is delivered as stored (sysflag bit 0 set)"
            );
        }
        let handle = match message.message.property(property::POP_CK) {
            Some(own) => ReceiptHandle::parse(own)?,
            None => {
                let key = (
                    PopTopicKind::of_topic(&message.message.topic),
                    message.queue_id,
                );
                // Java's `indexOf`: the first answer of this offset.
                let index = (sorted.get(&key))
                    .and_then(|queue| queue.iter().position(|&o| o == message.queue_offset))
                    .unwrap_or_default();
                let first = *first_offsets.entry(key).or_insert(message.queue_offset);
                let handle = handles.build(key, index, first, message.queue_offset)?;
                if let Some(count) = order_count(&order_counts, key, message.queue_offset) {
                    // An orderly pop answering a message again.
                    message.reconsume_times = count;
                }
                message
                    .message
                    .properties
                    .insert(property::POP_CK, handle.encode())?;
                handle
            }
        };
        if message.message.property(property::FIRST_POP_TIME).is_none() {
            message.message.properties.insert(
                property::FIRST_POP_TIME,
                header.pop_time.to_compact_string(),
            )?;
        }
        let selected = subscription.tags_set.is_empty()
            || subscription.class_filter_mode
            || message
                .message
                .tags()
                .is_some_and(|tag| subscription.tags_set.contains(tag));
        if selected {
            popped.messages.push(PoppedMessage { message, handle });
        } else {
            popped.filtered_out.push(handle);
        }
    }
    Ok(popped)
}

/// Java's `buildQueueOffsetSortedMap`: the offsets answered per queue, in
/// the answer's order, every message counted, under the kind its `POP_CK`
/// names when it has one (the broker answers a redelivered message with
/// the subscribed topic, so only the handle tells it came from the retry
/// topic), else under its topic's. A message's place in its queue's list is
/// its place in `msgOffsetInfo`: a message with a handle of its own (one a
/// producer left on it, say) still takes up its place, so the handles of the
/// messages after it are not shifted onto their neighbours' offsets.
fn sort_map(messages: &[MessageExt]) -> Result<HashMap<PopQueueKey, Vec<i64>>> {
    let mut sorted: HashMap<PopQueueKey, Vec<i64>> = HashMap::new();
    for message in messages {
        let kind = match message.message.property(property::POP_CK) {
            Some(own) => ReceiptHandle::parse(own)?.kind,
            None => PopTopicKind::of_topic(&message.message.topic),
        };
        (sorted.entry((kind, message.queue_id)).or_default()).push(message.queue_offset);
    }
    Ok(sorted)
}

/// What a pop answer says of every message it holds.
struct Handles<'a> {
    broker_name: &'a str,
    pop_time: i64,
    invisible_time: i64,
    revive_qid: i32,
    starts: HashMap<PopQueueKey, i64>,
    offsets: HashMap<PopQueueKey, Vec<i64>>,
}

impl Handles<'_> {
    /// The handle of the `index`th message answered from queue `key`, at
    /// `stored_offset`; `first` is the first offset answered from it.
    fn build(
        &self,
        key: PopQueueKey,
        index: usize,
        first: i64,
        stored_offset: i64,
    ) -> Result<ReceiptHandle> {
        let (ck_queue_offset, queue_offset) = if self.starts.is_empty() {
            // A broker before the offset infos: the pop began at the first
            // message answered, and offsets are the stored ones.
            (first, stored_offset)
        } else {
            let start = self.starts.get(&key);
            let offset = self.offsets.get(&key).and_then(|list| list.get(index));
            match (start, offset) {
                (Some(&start), Some(&offset)) => (start, offset),
                _ => {
                    return Err(malformed(format!(
                        "the offset infos name no offset for message {index} of queue {} ({})",
                        key.1,
                        key.0.as_str()
                    ))
                    .into());
                }
            }
        };
        if queue_offset != stored_offset {
            tracing::warn!(
                broker = self.broker_name,
                queue = key.1,
                stored_offset,
                queue_offset,
                "a popped message's offset differs from the one its answer lists; the answer's is acknowledged"
            );
        }
        Ok(ReceiptHandle {
            ck_queue_offset,
            pop_time: self.pop_time,
            invisible_time: self.invisible_time,
            revive_qid: self.revive_qid,
            kind: key.0,
            broker_name: self.broker_name.to_owned(),
            queue_id: key.1,
            queue_offset,
        })
    }
}

fn malformed(reason: impl Into<String>) -> ModelError {
    ModelError::malformed("pop answer", reason.into())
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use rocketmq_model::header::PopMessageResponseHeader;
    use rocketmq_model::message::encode_record;
    use rocketmq_model::{Message, SubscriptionData};
    use rocketmq_remoting::calls::PopStatus;

    use super::*;

    fn record(topic: &str, queue_id: i32, offset: i64, tag: &str) -> MessageExt {
        let mut ext = MessageExt::from(Message::new(topic, "m"));
        ext.message.properties.insert(property::TAGS, tag).unwrap();
        ext.queue_id = queue_id;
        ext.queue_offset = offset;
        ext
    }

    fn answer(records: &[MessageExt], starts: &str, offsets: &str) -> PopResponse {
        let mut body = BytesMut::new();
        for ext in records {
            encode_record(ext, &mut body).unwrap();
        }
        PopResponse {
            status: PopStatus::Found,
            header: Some(PopMessageResponseHeader {
                pop_time: 1_000,
                invisible_time: 60_000,
                revive_qid: 2,
                rest_num: 0,
                start_offset_info: Some(starts.to_owned()),
                msg_offset_info: Some(offsets.to_owned()),
                order_count_info: None,
            }),
            body: body.freeze(),
        }
    }

    fn all() -> SubscriptionData {
        SubscriptionData::from_expression("T", "*", Default::default()).unwrap()
    }

    #[test]
    fn every_message_gets_the_handle_java_builds() {
        let records = [
            record("T", 1, 5, "a"),
            record("T", 1, 6, "a"),
            record("T", 0, 2, "a"),
        ];
        let response = answer(&records, "0 1 4;0 0 2", "0 1 5,6;0 0 2");
        let popped = popped_messages("broker-a", &response, &all()).unwrap();
        let handles: Vec<String> = popped.messages.iter().map(|m| m.handle.encode()).collect();
        assert_eq!(
            handles,
            [
                "4 1000 60000 2 0 broker-a 1 5",
                "4 1000 60000 2 0 broker-a 1 6",
                "2 1000 60000 2 0 broker-a 0 2",
            ]
        );
        let first = &popped.messages[0].message;
        assert_eq!(
            first.message.property(property::POP_CK),
            Some(handles[0].as_str())
        );
        assert_eq!(
            first.message.property(property::FIRST_POP_TIME),
            Some("1000")
        );
        assert!(popped.filtered_out.is_empty());
    }

    #[test]
    fn a_redelivered_message_keeps_the_brokers_handle() {
        let mut retried = record("T", 0, 9, "a");
        let own = "3 1000 60000 2 1 broker-a 0 9";
        retried
            .message
            .properties
            .insert(property::POP_CK, own)
            .unwrap();
        retried
            .message
            .properties
            .insert(property::FIRST_POP_TIME, "7")
            .unwrap();
        let response = answer(&[retried], "1 0 3", "1 0 9");
        let popped = popped_messages("broker-a", &response, &all()).unwrap();
        let only = &popped.messages[0];
        assert_eq!(only.handle.kind, PopTopicKind::RetryV1);
        assert_eq!(only.handle.encode(), own);
        assert_eq!(
            only.message.message.property(property::FIRST_POP_TIME),
            Some("7")
        );
    }

    #[test]
    fn a_message_with_its_own_handle_keeps_its_place_in_the_offset_infos() {
        // Offset 5 carries a handle a producer left on it (Java's client
        // keeps it): it still counts in queue 1's list, as Java's
        // `buildQueueOffsetSortedMap` counts it, so 6 and 7 keep theirs.
        let mut stale = record("T", 1, 5, "a");
        (stale.message.properties)
            .insert(property::POP_CK, "0 1 60000 1 0 other 3 9")
            .unwrap();
        let records = [stale, record("T", 1, 6, "a"), record("T", 1, 7, "a")];
        let response = answer(&records, "0 1 5", "0 1 5,6,7");
        let popped = popped_messages("b", &response, &all()).unwrap();
        let offsets: Vec<i64> = (popped.messages.iter())
            .map(|m| m.handle.queue_offset)
            .collect();
        assert_eq!(offsets, [9, 6, 7]);
        // A redelivered message sorts under its handle's kind, not under
        // the subscribed topic it is answered with.
        let mut retried = record("T", 0, 3, "a");
        (retried.message.properties)
            .insert(property::POP_CK, "3 1000 60000 2 1 b 0 3")
            .unwrap();
        let records = [retried, record("T", 0, 8, "a")];
        let response = answer(&records, "1 0 3;0 0 8", "1 0 3;0 0 8");
        let popped = popped_messages("b", &response, &all()).unwrap();
        assert_eq!(popped.messages[1].handle.encode(), "8 1000 60000 2 0 b 0 8");
    }

    #[test]
    fn an_orderly_pop_gives_its_order_counts_as_reconsume_times() {
        let records = [
            record("T", 1, 5, "a"),
            record("T", 1, 6, "a"),
            record("T", 2, 0, "a"),
        ];
        let mut response = answer(&records, "0 1 5;0 2 0", "0 1 5,6;0 2 0");
        let header = response.header.as_mut().unwrap();
        header.revive_qid = 999;
        header.order_count_info = Some("0 qo1%5 2;0 1 1".into());
        let popped = popped_messages("b", &response, &all()).unwrap();
        let counts: Vec<i32> = (popped.messages.iter())
            .map(|m| m.message.reconsume_times)
            .collect();
        assert_eq!(counts, [2, 1, 0]);
        assert!(popped.messages[0].handle.is_orderly());
    }

    #[test]
    fn without_offset_infos_the_first_offset_is_the_checkpoint() {
        let records = [record("T", 1, 5, "a"), record("T", 1, 6, "a")];
        let response = answer(&records, "", "");
        let popped = popped_messages("b", &response, &all()).unwrap();
        assert_eq!(popped.messages[1].handle.encode(), "5 1000 60000 2 0 b 1 6");
    }

    #[test]
    fn a_tag_collision_is_handed_back_for_acknowledgement() {
        let records = [record("T", 0, 1, "a"), record("T", 0, 2, "b")];
        let response = answer(&records, "0 0 1", "0 0 1,2");
        let popped = popped_messages(
            "b",
            &response,
            &SubscriptionData::from_expression("T", "a", Default::default()).unwrap(),
        )
        .unwrap();
        assert_eq!(popped.messages.len(), 1);
        assert_eq!(popped.filtered_out.len(), 1);
        assert_eq!(popped.filtered_out[0].queue_offset, 2);
    }

    #[test]
    fn an_answer_that_cannot_be_acknowledged_is_an_error() {
        let records = [record("T", 3, 5, "a")];
        let response = answer(&records, "0 1 4", "0 1 5");
        let err = popped_messages("b", &response, &all()).unwrap_err();
        assert!(err.to_string().contains("queue 3"), "{err}");
        let mut headless = answer(&records, "0 3 4", "0 3 5");
        headless.header = None;
        assert!(popped_messages("b", &headless, &all()).is_err());
        let short = answer(
            &[record("T", 3, 5, "a"), record("T", 3, 6, "a")],
            "0 3 4",
            "0 3 5",
        );
        assert!(popped_messages("b", &short, &all()).is_err());
    }
}
