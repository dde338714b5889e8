//! RECALL_MESSAGE (370, RocketMQ 5.3.1+): takes back a timer message before
//! it is due.

use rocketmq_model::RequestCode;
use rocketmq_model::header::{RecallMessageRequestHeader, RecallMessageResponseHeader};

use crate::call::{Call, parse_success_header};
use crate::command::RemotingCommand;
use crate::error::Result;

/// Recalls the message a recall handle names, on the broker that stores it.
/// Answers the message's unique id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecallMessage(pub RecallMessageRequestHeader);

impl Call for RecallMessage {
    type Response = String;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::RECALL_MESSAGE,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<String> {
        parse_success_header::<RecallMessageResponseHeader>(response).map(|header| header.msg_id)
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;
    use crate::calls::test_support::{answer, answer_with, assert_rejected, sent_fields};

    #[test]
    fn recall_request_and_answers() {
        let header = RecallMessageRequestHeader {
            producer_group: Some("pg".into()),
            topic: "T".into(),
            recall_handle: "aGFuZGxl".into(),
            broker_name: Some("b".into()),
        };
        let cmd = RecallMessage(header).into_command().unwrap();
        assert_eq!(cmd.request_code().0, 370);
        assert_eq!(
            sent_fields(&cmd),
            [
                ("bname", "b"),
                ("producerGroup", "pg"),
                ("recallHandle", "aGFuZGxl"),
                ("topic", "T"),
            ]
        );
        let ok = answer_with(ResponseCode::SUCCESS, &[("msgId", "ID")]);
        assert_eq!(RecallMessage::parse_response(ok).unwrap(), "ID");
        let refused = answer(ResponseCode::ILLEGAL_OPERATION);
        assert_rejected(
            RecallMessage::parse_response(refused),
            ResponseCode::ILLEGAL_OPERATION,
        );
    }
}
