//! What a FOUND pull answer holds, post-processed as Java's
//! `PullAPIWrapper#processPullResult` does.

use compact_str::ToCompactString;
use rocketmq_model::header::PullMessageResponseHeader;
use rocketmq_model::message::decode_records_prefix;
use rocketmq_model::message::sysflag;
use rocketmq_model::{MessageExt, MessageQueue, SubscriptionData, property};
use rocketmq_remoting::calls::PullResponse;

use crate::error::Result;

/// The messages of a FOUND pull answer of `mq`, as a consumer must see
/// them (PROTOCOL.md §3.4, Java's `processPullResult`):
///
/// - decoded from the body, inner batches expanded;
/// - re-filtered by tag *string* when the subscription names tags (the
///   broker filters by tag hash code only, so a colliding tag gets through);
///   a message without a tag is dropped then;
/// - MIN_OFFSET and MAX_OFFSET set from the answer's header;
/// - for a transactional half message (TRAN_MSG true), the transaction id
///   (`__transactionId__`) set from UNIQ_KEY;
/// - the queue id set from `mq` and, for a static topic, the answer's
///   `offsetDelta` added to each queue offset.
///
/// The result may be empty when everything was filtered out; the next pull
/// still starts at the answer's `next_begin_offset`.
///
/// A body whose first record cannot be decoded is an error (the queue pulls
/// the same offset again, then the record alone, then skips it: see
/// [`Undecodable`](super::Undecodable)). A body that breaks off at a later record
/// gives the messages before it, and the next pull starts at the broken
/// record: Java delivers the same messages but moves on to
/// `next_begin_offset`, losing the rest of the answer. A message whose body
/// cannot be decompressed is delivered as stored, with its compressed flag,
/// and logged.
pub fn found_messages(
    mq: &MessageQueue,
    response: &PullResponse,
    subscription: &SubscriptionData,
) -> Result<Found> {
    let decoded = decode_records_prefix(response.body.clone());
    let mut msgs = decoded.messages;
    // The record after the last one decoded, in the queue's offsets.
    let after_last = |last: &MessageExt| {
        last.queue_offset
            .saturating_add(1)
            .saturating_add(response.header.offset_delta.unwrap_or(0))
    };
    let next_offset = match (decoded.malformed, msgs.last()) {
        (None, Some(last)) if decoded.reached_total => {
            let resume = after_last(last);
            tracing::info!(%mq, resume, next_begin = response.header.next_begin_offset,
                "a pull answer's bodies reach the decompression total; the rest is pulled again");
            resume
        }
        (None, _) => response.header.next_begin_offset,
        (Some(error), None) => return Err(error.into()),
        (Some(error), Some(last)) => {
            let resume = after_last(last);
            tracing::error!(%mq, resume, next_begin = response.header.next_begin_offset, %error,
                "a pull answer breaks off at a malformed record; the messages before it are delivered and the next pull starts at it");
            resume
        }
    };
    for msg in &msgs {
        if sysflag::has(msg.sys_flag, sysflag::COMPRESSED_FLAG) {
            tracing::warn!(%mq, offset = msg.queue_offset, sys_flag = msg.sys_flag,
                "a body could not be decompressed; it is delivered as stored (sysflag bit 0 set)");
        }
    }
    if !subscription.tags_set.is_empty() && !subscription.class_filter_mode {
        msgs.retain(|msg| {
            msg.tags()
                .is_some_and(|tag| subscription.tags_set.contains(tag))
        });
    }
    for msg in &mut msgs {
        annotate(msg, mq, &response.header)?;
    }
    Ok(Found {
        messages: msgs,
        next_offset,
    })
}

/// The messages of a FOUND pull answer, and where the next pull starts.
#[derive(Debug)]
pub struct Found {
    /// The messages a consumer sees (see [`found_messages`]).
    pub messages: Vec<MessageExt>,
    /// The answer's `next_begin_offset`, or the offset of the record it
    /// broke off at.
    pub next_offset: i64,
}

fn annotate(
    msg: &mut MessageExt,
    mq: &MessageQueue,
    header: &PullMessageResponseHeader,
) -> Result<()> {
    let transaction_id = msg
        .message
        .is_transaction_prepared()
        .then(|| msg.message.uniq_key().map(str::to_owned))
        .flatten();
    if let Some(uniq) = transaction_id {
        msg.message
            .properties
            .insert(property::TRANSACTION_ID, uniq)?;
    }
    let properties = &mut msg.message.properties;
    // Formatted in place: a number fits a compact string without a heap copy.
    properties.insert(property::MIN_OFFSET, header.min_offset.to_compact_string())?;
    properties.insert(property::MAX_OFFSET, header.max_offset.to_compact_string())?;
    msg.queue_id = mq.queue_id;
    if let Some(delta) = header.offset_delta {
        // The broker's numbers: no overflow panics (debug) or wraps.
        msg.queue_offset = msg.queue_offset.saturating_add(delta);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};
    use rocketmq_model::Message;
    use rocketmq_model::message::encode_record;
    use rocketmq_remoting::calls::PullStatus;

    use super::*;

    /// A FOUND answer whose body holds records at `offsets`, then (when
    /// `broken`) a record cut short.
    fn answer(offsets: &[i64], broken: bool, offset_delta: Option<i64>) -> PullResponse {
        let mut body = BytesMut::new();
        for &offset in offsets {
            let mut ext = MessageExt::from(Message::new("T", "m"));
            ext.message.properties.insert(property::TAGS, "a").unwrap();
            ext.queue_offset = offset;
            encode_record(&ext, &mut body).unwrap();
        }
        if broken {
            let mut cut = BytesMut::new();
            encode_record(&MessageExt::from(Message::new("T", "lost")), &mut cut).unwrap();
            body.extend_from_slice(&cut[..cut.len() / 2]);
        }
        PullResponse {
            status: PullStatus::Found,
            header: PullMessageResponseHeader {
                next_begin_offset: 100,
                offset_delta,
                ..PullMessageResponseHeader::default()
            },
            body: Bytes::from(body),
        }
    }

    #[test]
    fn a_broken_answer_delivers_what_precedes_the_break_and_resumes_there() {
        let mq = MessageQueue::new("T", "b", 0);
        let all = SubscriptionData::from_expression("T", "*", Default::default()).unwrap();
        let whole = found_messages(&mq, &answer(&[40, 41], false, None), &all).unwrap();
        assert_eq!((whole.messages.len(), whole.next_offset), (2, 100));

        let broken = found_messages(&mq, &answer(&[40, 41], true, None), &all).unwrap();
        let offsets: Vec<i64> = broken.messages.iter().map(|m| m.queue_offset).collect();
        assert_eq!(offsets, [40, 41]);
        assert_eq!(
            broken.next_offset, 42,
            "the next pull starts at the broken record"
        );

        // A static topic's offsets are the answer's plus its delta.
        let moved = found_messages(&mq, &answer(&[40, 41], true, Some(1000)), &all).unwrap();
        assert_eq!(moved.messages[1].queue_offset, 1041);
        assert_eq!(moved.next_offset, 1042);

        // A delta that overflows saturates rather than panic or wrap.
        let huge = found_messages(&mq, &answer(&[40, 41], true, Some(i64::MAX)), &all).unwrap();
        assert_eq!(huge.messages[1].queue_offset, i64::MAX);
        assert_eq!(huge.next_offset, i64::MAX);

        // Filtered away, the messages before the break still move the queue on.
        let other_tag = SubscriptionData::from_expression("T", "b", Default::default()).unwrap();
        let filtered = found_messages(&mq, &answer(&[40, 41], true, None), &other_tag).unwrap();
        assert!(filtered.messages.is_empty());
        assert_eq!(filtered.next_offset, 42);

        assert!(
            found_messages(&mq, &answer(&[], true, None), &all).is_err(),
            "nothing decodable: the same offset is pulled again"
        );
    }

    #[test]
    fn a_body_that_cannot_be_decompressed_is_delivered_as_stored() {
        let mq = MessageQueue::new("T", "b", 0);
        let mut broken = MessageExt::from(Message::new("T", "not zlib at all"));
        broken.sys_flag = 0x301;
        let fine = MessageExt::from(Message::new("T", "plain"));
        let mut body = BytesMut::new();
        encode_record(&broken, &mut body).unwrap();
        encode_record(&fine, &mut body).unwrap();
        let response = PullResponse {
            status: PullStatus::Found,
            header: PullMessageResponseHeader::default(),
            body: Bytes::from(body),
        };
        let all = SubscriptionData::from_expression("T", "*", Default::default()).unwrap();
        let msgs = found_messages(&mq, &response, &all).unwrap().messages;
        assert_eq!(msgs.len(), 2, "neither message is lost, the queue goes on");
        assert_eq!(msgs[0].body().as_ref(), b"not zlib at all");
        assert_eq!(msgs[0].sys_flag, 0x301);
        assert_eq!(msgs[1].body().as_ref(), b"plain");
    }
}
