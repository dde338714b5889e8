//! Where a newly assigned queue starts: Java's `computePullFromWhere`
//! (`RebalancePushImpl#computePullFromWhereWithException`).

use rocketmq_model::body::ConsumeFromWhere;
use rocketmq_model::header::BoundaryType;
use rocketmq_model::{MessageQueue, ModelError};

use crate::api::BrokerApi;
use crate::consumer_options::{ConsumerOptions, RETRY_TOPIC_PREFIX};
use crate::error::Result;
use crate::offset::{OffsetStore, ReadOffsetType};
use crate::route::Routes;

/// The offset a consumer starts pulling `mq` from when the queue is assigned
/// to it, exactly as Java's push consumer computes it:
///
/// 1. The offset the store holds for the group (read from the store itself,
///    [`ReadOffsetType::Store`], not from memory), when there is one.
/// 2. Otherwise (a new group on this queue), by
///    [`ConsumerOptions::consume_from_where`]:
///    - last offset, and its deprecated kin (min offset, max offset, last
///      offset and min when booting first): 0 for a `%RETRY%` topic, else the
///      queue's max offset on the broker;
///    - first offset: 0 (a queue whose first messages are gone is corrected
///      by the pull's OFFSET_ILLEGAL answer);
///    - timestamp: for a `%RETRY%` topic the max offset, else the broker's
///      offset at [`ConsumerOptions::consume_timestamp`].
///
/// An error (the store or the broker unreachable) means "try again in the
/// next rebalance", never a made-up offset: Java's −2 and its exceptions.
pub async fn start_offset(
    mq: &MessageQueue,
    options: &ConsumerOptions,
    store: &dyn OffsetStore,
    broker: &dyn BrokerApi,
    routes: &Routes,
) -> Result<i64> {
    if let Some(stored) = store
        .read(mq, ReadOffsetType::Store)
        .await?
        .filter(|offset| *offset >= 0)
    {
        return Ok(stored);
    }
    let retry_topic = mq.topic.starts_with(RETRY_TOPIC_PREFIX);
    let offset = match options.consume_from_where {
        ConsumeFromWhere::LastOffset
        | ConsumeFromWhere::LastOffsetAndFromMinWhenBootFirst
        | ConsumeFromWhere::MinOffset
        | ConsumeFromWhere::MaxOffset => {
            if retry_topic {
                0
            } else {
                broker
                    .max_offset(&routes.master_addr(mq).await?, mq)
                    .await?
            }
        }
        ConsumeFromWhere::FirstOffset => 0,
        ConsumeFromWhere::Timestamp => {
            let addr = routes.master_addr(mq).await?;
            if retry_topic {
                broker.max_offset(&addr, mq).await?
            } else {
                broker
                    .search_offset(&addr, mq, options.consume_timestamp, BoundaryType::Lower)
                    .await?
            }
        }
    };
    if offset < 0 {
        return Err(ModelError::malformed(
            "start offset",
            format!("the broker answered the negative offset {offset} for {mq}"),
        )
        .into());
    }
    Ok(offset)
}
