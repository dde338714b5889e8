//! Broker-side rebalance (5.x): QUERY_ASSIGNMENT (400), which a consumer
//! that leaves rebalancing to the brokers sends instead of allocating
//! queues itself, and SET_MESSAGE_REQUEST_MODE (401), the administrator's
//! switch between pulling and popping.

use rocketmq_model::RequestCode;
use rocketmq_model::body::{
    MessageQueueAssignment, QueryAssignmentRequestBody, QueryAssignmentResponseBody,
    SetMessageRequestModeRequestBody,
};

use crate::call::{Call, json_body, parse_success, parse_success_json};
use crate::command::RemotingCommand;
use crate::error::Result;

/// Asks a broker which queues of a topic the client should consume, and
/// whether to pull or pop each. Answers `None` when the broker could not
/// tell (the client keeps its queues), an empty list when the client is to
/// let them all go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryAssignment(pub QueryAssignmentRequestBody);

impl Call for QueryAssignment {
    type Response = Option<Vec<MessageQueueAssignment>>;

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::QUERY_ASSIGNMENT).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<Self::Response> {
        if response.body.is_empty() {
            // A successful answer without a body holds no assignment.
            return parse_success(response).map(|()| None);
        }
        parse_success_json::<QueryAssignmentResponseBody>(response)
            .map(|body| body.message_queue_assignments)
    }
}

/// Sets whether a group's clients pull or pop a topic (Java's `mqadmin
/// setConsumeMode`), on one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetMessageRequestMode(pub SetMessageRequestModeRequestBody);

impl Call for SetMessageRequestMode {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::SET_MESSAGE_REQUEST_MODE).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::body::{MessageModel, MessageRequestMode};
    use rocketmq_model::{MessageQueue, ResponseCode};

    use super::*;
    use crate::call::execute;
    use crate::calls::test_support::{answer, assert_rejected, peer};

    fn query() -> QueryAssignmentRequestBody {
        QueryAssignmentRequestBody {
            client_id: "10.0.0.5@1".into(),
            consumer_group: "cg".into(),
            message_model: MessageModel::Clustering,
            strategy_name: "AVG".into(),
            topic: "T".into(),
        }
    }

    #[tokio::test]
    async fn query_sends_json_and_reads_the_assignments() {
        let reply = r#"{"messageQueueAssignments":[{"messageQueue":{"brokerName":"b","queueId":-1,"topic":"T"},"mode":"POP"}]}"#;
        let (mut svc, sent) = peer(answer(ResponseCode::SUCCESS).with_body(reply));
        let got = execute(&mut svc, QueryAssignment(query())).await.unwrap();
        let assignments = got.expect("an assignment");
        assert_eq!(
            assignments[0].message_queue,
            Some(MessageQueue::new("T", "b", -1))
        );
        assert_eq!(assignments[0].mode, MessageRequestMode::Pop);
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::QUERY_ASSIGNMENT);
        assert!(cmd.ext_fields.is_empty());
        assert_eq!(
            QueryAssignmentRequestBody::decode(&cmd.body).unwrap(),
            query()
        );
    }

    #[test]
    fn query_answers_tell_none_from_empty_and_errors() {
        let none = QueryAssignment::parse_response(answer(ResponseCode::SUCCESS)).unwrap();
        assert_eq!(none, None);
        let null = QueryAssignment::parse_response(answer(ResponseCode::SUCCESS).with_body("{}"));
        assert_eq!(null.unwrap(), None);
        let empty = QueryAssignment::parse_response(
            answer(ResponseCode::SUCCESS).with_body(r#"{"messageQueueAssignments":[]}"#),
        );
        assert_eq!(empty.unwrap(), Some(Vec::new()));
        assert_rejected(
            QueryAssignment::parse_response(answer(ResponseCode::REQUEST_CODE_NOT_SUPPORTED)),
            ResponseCode::REQUEST_CODE_NOT_SUPPORTED,
        );
        assert!(
            QueryAssignment::parse_response(answer(ResponseCode::SUCCESS).with_body("{\"mess"))
                .is_err()
        );
    }

    #[tokio::test]
    async fn set_mode_sends_json() {
        let body = SetMessageRequestModeRequestBody {
            consumer_group: "cg".into(),
            mode: MessageRequestMode::Pop,
            pop_share_queue_num: 0,
            topic: "T".into(),
        };
        let (mut svc, sent) = peer(answer(ResponseCode::SUCCESS));
        execute(&mut svc, SetMessageRequestMode(body.clone()))
            .await
            .unwrap();
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::SET_MESSAGE_REQUEST_MODE);
        assert_eq!(
            SetMessageRequestModeRequestBody::decode(&cmd.body).unwrap(),
            body
        );
        assert_rejected(
            SetMessageRequestMode::parse_response(answer(ResponseCode::TOPIC_NOT_EXIST)),
            ResponseCode::TOPIC_NOT_EXIST,
        );
    }
}
