//! The body of a BATCH_ACK_MESSAGE: one broker's acknowledgements, one entry
//! per pop of a queue (Java's `batchAckMessageAsync` merge key: topic, topic
//! kind, queue, checkpoint offset, pop time), each message a bit at its
//! distance from the pop's start.

use std::collections::BTreeMap;

use rocketmq_model::body::{BatchAck, BatchAckMessageRequestBody};
use rocketmq_model::message::ReceiptHandle;

/// The farthest a message may lie from its pop's start to be acknowledged
/// in a batch: the bit set travels whole, one bit per offset between.
const MAX_ACK_BIT: u32 = 1 << 16;

/// The bit that stands for `handle`'s message in its pop's entry, if it has
/// one (a message further from the start than [`MAX_ACK_BIT`], or before
/// it, is acknowledged alone; Java could not batch it either).
pub(crate) fn ack_bit(handle: &ReceiptHandle) -> Option<u32> {
    handle
        .queue_offset
        .checked_sub(handle.ck_queue_offset)
        .and_then(|distance| u32::try_from(distance).ok())
        .filter(|&distance| distance <= MAX_ACK_BIT)
}

type EntryKey<'a> = (&'a str, &'static str, i32, i64, i64);

/// One broker's acknowledgements as they are gathered.
#[derive(Debug, Default)]
pub(crate) struct BatchBody<'a> {
    entries: BTreeMap<EntryKey<'a>, BatchAck>,
}

impl<'a> BatchBody<'a> {
    /// Adds the message `handle` names, popped from `topic` (as the broker
    /// knows it), as bit `bit` of its pop's entry ([`ack_bit`]).
    pub(crate) fn add(&mut self, topic: &'a str, handle: &ReceiptHandle, bit: u32) {
        let kind = handle.kind.as_str();
        let key = (
            topic,
            kind,
            handle.queue_id,
            handle.ck_queue_offset,
            handle.pop_time,
        );
        let entry = self.entries.entry(key).or_insert_with(|| BatchAck {
            topic: topic.to_owned(),
            retry: kind.to_owned(),
            start_offset: handle.ck_queue_offset,
            queue_id: handle.queue_id,
            revive_queue_id: handle.revive_qid,
            pop_time: handle.pop_time,
            invisible_time: handle.invisible_time,
            ..BatchAck::default()
        });
        entry.bits.insert(bit);
    }

    /// The request body for `broker_name`, every entry of `group`.
    pub(crate) fn into_body(self, broker_name: &str, group: &str) -> BatchAckMessageRequestBody {
        BatchAckMessageRequestBody {
            broker_name: broker_name.to_owned(),
            acks: (self.entries.into_values())
                .map(|ack| BatchAck {
                    consumer_group: group.to_owned(),
                    ..ack
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::message::pop::PopTopicKind;

    use super::*;

    fn handle(queue_id: i32, ck_offset: i64, offset: i64, pop_time: i64) -> ReceiptHandle {
        ReceiptHandle {
            ck_queue_offset: ck_offset,
            queue_offset: offset,
            pop_time,
            invisible_time: 60_000,
            revive_qid: 2,
            kind: PopTopicKind::Normal,
            broker_name: "broker-a".into(),
            queue_id,
        }
    }

    #[test]
    fn messages_of_one_pop_share_an_entry_and_other_pops_get_their_own() {
        let mut body = BatchBody::default();
        for handle in [
            handle(1, 100, 100, 7),
            handle(1, 100, 103, 7),
            handle(1, 100, 164, 7),
            handle(2, 100, 101, 7),
            handle(1, 100, 102, 8),
        ] {
            let bit = ack_bit(&handle).expect("within range");
            body.add("T", &handle, bit);
        }
        let body = body.into_body("broker-a", "G");
        assert_eq!(body.broker_name, "broker-a");
        assert_eq!(body.acks.len(), 3);
        let first = &body.acks[0];
        assert_eq!(
            (first.queue_id, first.start_offset, first.pop_time),
            (1, 100, 7)
        );
        assert_eq!(first.bits.iter().collect::<Vec<_>>(), [0, 3, 64]);
        assert_eq!(first.consumer_group, "G");
        assert_eq!((first.revive_queue_id, first.invisible_time), (2, 60_000));
        assert_eq!(body.acks[1].bits.iter().collect::<Vec<_>>(), [2]);
        assert_eq!(body.acks[1].pop_time, 8);
        assert_eq!(body.acks[2].queue_id, 2);
    }

    #[test]
    fn redelivered_messages_name_the_subscribed_topic_and_their_kind() {
        // Java's client writes `t` as the topic subscribed and `r` as the
        // kind of topic the message was popped from; the broker puts the
        // pop retry topic's name together from them.
        let mut body = BatchBody::default();
        for kind in [
            PopTopicKind::Normal,
            PopTopicKind::RetryV1,
            PopTopicKind::RetryV2,
        ] {
            let handle = ReceiptHandle {
                kind,
                ..handle(1, 100, 101, 7)
            };
            body.add("T", &handle, 1);
        }
        let body = body.into_body("broker-a", "G");
        let entries: Vec<(&str, &str)> = (body.acks.iter())
            .map(|ack| (ack.topic.as_str(), ack.retry.as_str()))
            .collect();
        assert_eq!(entries, [("T", "0"), ("T", "1"), ("T", "2")]);
    }

    #[test]
    fn a_message_before_its_pop_or_too_far_from_it_has_no_bit() {
        assert_eq!(ack_bit(&handle(1, 100, 99, 7)), None);
        assert_eq!(ack_bit(&handle(1, 0, i64::from(MAX_ACK_BIT) + 1, 7)), None);
        assert_eq!(
            ack_bit(&handle(1, 0, i64::from(MAX_ACK_BIT), 7)),
            Some(MAX_ACK_BIT)
        );
    }
}
