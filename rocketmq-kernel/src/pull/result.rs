//! What a FOUND pull answer holds, post-processed as Java's
//! `PullAPIWrapper#processPullResult` does.

use compact_str::ToCompactString;
use rocketmq_model::header::PullMessageResponseHeader;
use rocketmq_model::message::sysflag;
use rocketmq_model::{MessageExt, MessageQueue, SubscriptionData, decode_records, property};
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
/// still starts at the answer's `next_begin_offset`. A body whose records
/// cannot be framed is an error; a message whose body cannot be
/// decompressed is delivered as stored, with its compressed flag, and logged.
pub fn found_messages(
    mq: &MessageQueue,
    response: &PullResponse,
    subscription: &SubscriptionData,
) -> Result<Vec<MessageExt>> {
    let mut msgs = decode_records(response.body.clone())?;
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
    Ok(msgs)
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
        msg.queue_offset += delta;
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
        let msgs = found_messages(&mq, &response, &all).unwrap();
        assert_eq!(msgs.len(), 2, "neither message is lost, the queue goes on");
        assert_eq!(msgs[0].body().as_ref(), b"not zlib at all");
        assert_eq!(msgs[0].sys_flag, 0x301);
        assert_eq!(msgs[1].body().as_ref(), b"plain");
    }
}
