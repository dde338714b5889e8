//! Admin and lookup calls (PROTOCOL.md §3): create a topic, read a message by
//! its commit-log offset, query messages by key, a group's consume stats.

use bytes::Bytes;
use rocketmq_model::body::ConsumeStats;
use rocketmq_model::header::{
    CreateTopicRequestHeader, GetConsumeStatsRequestHeader, QueryMessageRequestHeader,
    QueryMessageResponseHeader, ViewMessageRequestHeader,
};
use rocketmq_model::{RequestCode, ResponseCode};

use crate::call::{Call, expect_codes, parse_success, parse_success_body, parse_success_json};
use crate::command::RemotingCommand;
use crate::error::Result;

/// UPDATE_AND_CREATE_TOPIC (17): creates or updates a topic on one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTopic(pub CreateTopicRequestHeader);

impl Call for CreateTopic {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::UPDATE_AND_CREATE_TOPIC,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// VIEW_MESSAGE_BY_ID (33): one message by its commit-log offset. Answers the
/// encoded message; decoding it is left to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewMessage(pub ViewMessageRequestHeader);

impl Call for ViewMessage {
    type Response = Bytes;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::VIEW_MESSAGE_BY_ID,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<Bytes> {
        parse_success_body(response)
    }
}

/// QUERY_MESSAGE (12): messages of a topic by key (or by unique key when
/// `unique_key_query` is set) within a time range, from one broker.
///
/// Answers `None` when the broker found nothing (QUERY_NOT_FOUND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMessage(pub QueryMessageRequestHeader);

/// Messages found by [`QueryMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryMessageResponse {
    /// The index's last update, for merging answers of several brokers.
    pub header: QueryMessageResponseHeader,
    /// The encoded messages; decoding them is left to the caller.
    pub body: Bytes,
}

impl Call for QueryMessage {
    type Response = Option<QueryMessageResponse>;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::QUERY_MESSAGE,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<Option<QueryMessageResponse>> {
        let accepted = [ResponseCode::SUCCESS, ResponseCode::QUERY_NOT_FOUND];
        let response = expect_codes(response, &accepted)?;
        if response.response_code() == ResponseCode::QUERY_NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(QueryMessageResponse {
            header: response.decode_header()?,
            body: response.body,
        }))
    }
}

/// GET_CONSUME_STATS (208): a consumer group's offsets on one broker
/// against its queues' ends, and its consume rate there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumeStats(pub GetConsumeStatsRequestHeader);

impl Call for GetConsumeStats {
    type Response = ConsumeStats;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_CONSUME_STATS,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<ConsumeStats> {
        parse_success_json(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, answer_with, assert_rejected, sent_fields};

    #[test]
    fn consume_stats_request_and_answers() {
        let header = GetConsumeStatsRequestHeader {
            consumer_group: "cg".into(),
            topic: Some("T".into()),
            topic_list: None,
        };
        let cmd = GetConsumeStats(header).into_command().unwrap();
        assert_eq!(cmd.request_code().0, 208);
        assert_eq!(cmd.ext_fields["consumerGroup"], "cg");
        assert_eq!(cmd.ext_fields["topic"], "T");
        assert!(!cmd.ext_fields.contains_key("topicList"));
        let body = br#"{"consumeTps":0.0,"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:{"brokerOffset":5,"consumerOffset":2,"lastTimestamp":0,"pullOffset":2}}}"#;
        let ok = answer(ResponseCode::SUCCESS).with_body(&body[..]);
        assert_eq!(GetConsumeStats::parse_response(ok).unwrap().total_lag(), 3);
        let err = GetConsumeStats::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }

    #[test]
    fn create_topic_request_and_answers() {
        let header = CreateTopicRequestHeader {
            topic: "T".into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 8,
            write_queue_nums: 8,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: Some(0),
            ..CreateTopicRequestHeader::default()
        };
        let cmd = CreateTopic(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::UPDATE_AND_CREATE_TOPIC);
        assert_eq!(cmd.request_code().0, 17);
        assert_eq!(cmd.ext_fields["defaultTopic"], "TBW102");
        assert_eq!(cmd.ext_fields["perm"], "6");
        assert_eq!(cmd.ext_fields["topicFilterType"], "SINGLE_TAG");
        assert!(CreateTopic::parse_response(answer(ResponseCode::SUCCESS)).is_ok());
        let err = CreateTopic::parse_response(answer(ResponseCode::NO_PERMISSION));
        assert_rejected(err, ResponseCode::NO_PERMISSION);
    }

    #[test]
    fn view_message_answers_the_raw_body() {
        let header = ViewMessageRequestHeader {
            topic: Some("T".into()),
            offset: 4096,
        };
        let cmd = ViewMessage(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::VIEW_MESSAGE_BY_ID);
        assert_eq!(sent_fields(&cmd), [("offset", "4096"), ("topic", "T")]);
        let found = answer(ResponseCode::SUCCESS).with_body("encoded");
        assert_eq!(ViewMessage::parse_response(found).unwrap(), "encoded");
        let err = ViewMessage::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }

    #[test]
    fn query_message_found_not_found_and_rejected() {
        let header = QueryMessageRequestHeader {
            topic: "T".into(),
            key: "order-42".into(),
            max_num: 32,
            begin_timestamp: 0,
            end_timestamp: i64::MAX,
            unique_key_query: true,
            broker_name: None,
        };
        let cmd = QueryMessage(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::QUERY_MESSAGE);
        assert_eq!(cmd.ext_fields["key"], "order-42");
        assert_eq!(cmd.ext_fields["_UNIQUE_KEY_QUERY"], "true");

        let fields = [
            ("indexLastUpdateTimestamp", "10"),
            ("indexLastUpdatePhyoffset", "20"),
        ];
        let found = answer_with(ResponseCode::SUCCESS, &fields).with_body("msgs");
        let found = QueryMessage::parse_response(found).unwrap().unwrap();
        assert_eq!(found.header.index_last_update_phyoffset, 20);
        assert_eq!(found.body, "msgs");
        let none = QueryMessage::parse_response(answer(ResponseCode::QUERY_NOT_FOUND)).unwrap();
        assert_eq!(none, None);
        let err = QueryMessage::parse_response(answer(ResponseCode::SYSTEM_BUSY));
        assert_rejected(err, ResponseCode::SYSTEM_BUSY);
    }
}
