//! Offset calls (PROTOCOL.md §3): consumer offsets kept by the broker, and the
//! bounds and time lookups of a queue.

use rocketmq_model::header::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
use rocketmq_model::{RequestCode, ResponseCode};

use crate::call::{Call, expect_codes, parse_success, parse_success_header};
use crate::command::RemotingCommand;
use crate::error::Result;

/// QUERY_CONSUMER_OFFSET (14): the offset a consumer group stored for a queue.
///
/// Answers `None` when the broker has no offset (QUERY_NOT_FOUND), never a
/// made-up 0. A 5.x broker answers 0 instead of QUERY_NOT_FOUND for a queue
/// whose messages all remain, unless `set_zero_if_not_found` is `Some(false)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryConsumerOffset(pub QueryConsumerOffsetRequestHeader);

impl Call for QueryConsumerOffset {
    type Response = Option<i64>;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::QUERY_CONSUMER_OFFSET,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<Option<i64>> {
        let accepted = [ResponseCode::SUCCESS, ResponseCode::QUERY_NOT_FOUND];
        let response = expect_codes(response, &accepted)?;
        if response.response_code() == ResponseCode::QUERY_NOT_FOUND {
            return Ok(None);
        }
        let header: QueryConsumerOffsetResponseHeader = response.decode_header()?;
        Ok(Some(header.offset))
    }
}

/// UPDATE_CONSUMER_OFFSET (15): stores a consumer group's offset for a queue.
/// Send it wrapped in [`Oneway`](crate::call::Oneway) to not wait, as Java does
/// when persisting periodically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateConsumerOffset(pub UpdateConsumerOffsetRequestHeader);

impl Call for UpdateConsumerOffset {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::UPDATE_CONSUMER_OFFSET,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// GET_MAX_OFFSET (30): the next offset to be written in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMaxOffset(pub GetMaxOffsetRequestHeader);

impl Call for GetMaxOffset {
    type Response = i64;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_MAX_OFFSET,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<i64> {
        parse_success_header::<GetMaxOffsetResponseHeader>(response).map(|h| h.offset)
    }
}

/// GET_MIN_OFFSET (31): the lowest offset still stored in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetMinOffset(pub GetMinOffsetRequestHeader);

impl Call for GetMinOffset {
    type Response = i64;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_MIN_OFFSET,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<i64> {
        parse_success_header::<GetMinOffsetResponseHeader>(response).map(|h| h.offset)
    }
}

/// SEARCH_OFFSET_BY_TIMESTAMP (29): the offset of a queue at a point in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchOffset(pub SearchOffsetRequestHeader);

impl Call for SearchOffset {
    type Response = i64;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::SEARCH_OFFSET_BY_TIMESTAMP,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<i64> {
        parse_success_header::<SearchOffsetResponseHeader>(response).map(|h| h.offset)
    }
}

/// GET_EARLIEST_MSG_STORETIME (32): the store time (ms since the epoch) of the
/// earliest message still in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEarliestMsgStoreTime(pub GetEarliestMsgStoretimeRequestHeader);

impl Call for GetEarliestMsgStoreTime {
    type Response = i64;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_EARLIEST_MSG_STORETIME,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<i64> {
        parse_success_header::<GetEarliestMsgStoretimeResponseHeader>(response).map(|h| h.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{Oneway, execute};
    use crate::calls::test_support::{answer, answer_with, assert_rejected, peer, sent_fields};
    use crate::error::RemotingError;

    fn query() -> QueryConsumerOffsetRequestHeader {
        QueryConsumerOffsetRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: 3,
            set_zero_if_not_found: Some(false),
            broker_name: None,
        }
    }

    #[test]
    fn query_consumer_offset_request() {
        let cmd = QueryConsumerOffset(query()).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::QUERY_CONSUMER_OFFSET);
        assert_eq!(
            sent_fields(&cmd),
            [
                ("consumerGroup", "cg"),
                ("queueId", "3"),
                ("setZeroIfNotFound", "false"),
                ("topic", "T")
            ]
        );
    }

    #[test]
    fn query_consumer_offset_found_missing_and_rejected() {
        let found = answer_with(ResponseCode::SUCCESS, &[("offset", "42")]);
        assert_eq!(
            QueryConsumerOffset::parse_response(found).unwrap(),
            Some(42)
        );
        let zero = answer_with(ResponseCode::SUCCESS, &[("offset", "0")]);
        assert_eq!(QueryConsumerOffset::parse_response(zero).unwrap(), Some(0));
        let missing = answer(ResponseCode::QUERY_NOT_FOUND);
        assert_eq!(QueryConsumerOffset::parse_response(missing).unwrap(), None);
        let err = QueryConsumerOffset::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
        let no_header = QueryConsumerOffset::parse_response(answer(ResponseCode::SUCCESS));
        assert!(
            matches!(no_header, Err(RemotingError::Model(_))),
            "{no_header:?}"
        );
    }

    #[tokio::test]
    async fn update_consumer_offset_sync_and_oneway() {
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: 1,
            commit_offset: 99,
            broker_name: Some("broker-a".into()),
        };
        let cmd = UpdateConsumerOffset(header.clone()).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::UPDATE_CONSUMER_OFFSET);
        assert_eq!(
            sent_fields(&cmd),
            [
                ("bname", "broker-a"),
                ("commitOffset", "99"),
                ("consumerGroup", "cg"),
                ("queueId", "1"),
                ("topic", "T")
            ]
        );
        let (mut svc, sent) = peer(answer(ResponseCode::SUCCESS));
        execute(&mut svc, UpdateConsumerOffset(header.clone()))
            .await
            .unwrap();
        assert!(!sent.last().is_oneway());
        let (mut svc, sent) = peer(answer(ResponseCode::SYSTEM_ERROR));
        execute(&mut svc, Oneway(UpdateConsumerOffset(header)))
            .await
            .unwrap();
        assert!(sent.last().is_oneway());
        let err =
            UpdateConsumerOffset::parse_response(answer(ResponseCode::SUBSCRIPTION_NOT_EXIST));
        assert_rejected(err, ResponseCode::SUBSCRIPTION_NOT_EXIST);
    }

    #[test]
    fn queue_bounds_and_time_lookups() {
        let max = GetMaxOffset(GetMaxOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 0,
            committed: true,
            broker_name: None,
        });
        let cmd = max.into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::GET_MAX_OFFSET);
        assert_eq!(
            sent_fields(&cmd),
            [("committed", "true"), ("queueId", "0"), ("topic", "T")]
        );
        let ok = answer_with(ResponseCode::SUCCESS, &[("offset", "1000")]);
        assert_eq!(GetMaxOffset::parse_response(ok.clone()).unwrap(), 1000);
        assert_eq!(GetMinOffset::parse_response(ok.clone()).unwrap(), 1000);
        assert_eq!(SearchOffset::parse_response(ok).unwrap(), 1000);
        assert_rejected(
            GetMinOffset::parse_response(answer(ResponseCode::SYSTEM_ERROR)),
            ResponseCode::SYSTEM_ERROR,
        );

        let min = GetMinOffset(GetMinOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 2,
            broker_name: None,
        });
        assert_eq!(
            min.into_command().unwrap().request_code(),
            RequestCode::GET_MIN_OFFSET
        );

        let search = SearchOffset(SearchOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 2,
            timestamp: 1_700_000_000_000,
            boundary_type: None,
            broker_name: None,
        });
        let cmd = search.into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::SEARCH_OFFSET_BY_TIMESTAMP);
        assert_eq!(cmd.ext_fields["timestamp"], "1700000000000");

        let earliest = GetEarliestMsgStoreTime(GetEarliestMsgStoretimeRequestHeader {
            topic: "T".into(),
            queue_id: 2,
            broker_name: None,
        });
        assert_eq!(
            earliest.into_command().unwrap().request_code(),
            RequestCode::GET_EARLIEST_MSG_STORETIME
        );
        let ok = answer_with(ResponseCode::SUCCESS, &[("timestamp", "1700000000123")]);
        assert_eq!(
            GetEarliestMsgStoreTime::parse_response(ok).unwrap(),
            1_700_000_000_123
        );
    }
}
