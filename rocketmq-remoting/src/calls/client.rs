//! Client registration calls (PROTOCOL.md §3, §7.2, §7.6): heartbeat,
//! unregister, the members of a consumer group, and the subscription check.

use rocketmq_model::RequestCode;
use rocketmq_model::body::{CheckClientRequestBody, ConsumerListBody, HeartbeatData};
use rocketmq_model::header::{GetConsumerListByGroupRequestHeader, UnregisterClientRequestHeader};

use crate::call::{Call, expect_success, json_body, parse_success, parse_success_json};
use crate::command::RemotingCommand;
use crate::error::Result;

/// HEART_BEAT (34): registers the client's producer and consumer groups (and
/// subscriptions) with a broker. Answers the broker's protocol version, which
/// Java records per broker address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat(pub HeartbeatData);

impl Call for Heartbeat {
    type Response = i32;

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::HEART_BEAT).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<i32> {
        expect_success(response).map(|response| response.version)
    }
}

/// UNREGISTER_CLIENT (35): removes the client from a producer or consumer
/// group on a broker (at shutdown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unregister(pub UnregisterClientRequestHeader);

impl Call for Unregister {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::UNREGISTER_CLIENT,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// GET_CONSUMER_LIST_BY_GROUP (38): the client ids of a consumer group's
/// members, for rebalancing. A broker that knows no member answers
/// SYSTEM_ERROR; a `SUCCESS` without a body is a decode error, as in Java.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetConsumerList(pub GetConsumerListByGroupRequestHeader);

impl Call for GetConsumerList {
    type Response = Vec<String>;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::GET_CONSUMER_LIST_BY_GROUP,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<Vec<String>> {
        parse_success_json::<ConsumerListBody>(response).map(|body| body.consumer_id_list)
    }
}

/// CHECK_CLIENT_CONFIG (46): asks a broker whether it can serve a
/// subscription. Java's push consumer sends it for every non-tag
/// subscription at start and refuses to start on anything but SUCCESS (a
/// broker without `enablePropertyFilter`, or an SQL92 expression that does not
/// compile, answers SYSTEM_ERROR with the reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckClientConfig(pub CheckClientRequestBody);

impl Call for CheckClientConfig {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::CHECK_CLIENT_CONFIG).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;
    use crate::call::execute;
    use crate::calls::test_support::{answer, assert_rejected, peer, sent_fields};
    use crate::error::RemotingError;

    #[tokio::test]
    async fn heartbeat_sends_json_and_answers_the_broker_version() {
        let data = HeartbeatData {
            client_id: "10.0.0.5@12345#98765".into(),
            ..HeartbeatData::default()
        };
        let mut ok = answer(ResponseCode::SUCCESS);
        ok.version = 479;
        let (mut svc, sent) = peer(ok);
        assert_eq!(
            execute(&mut svc, Heartbeat(data.clone())).await.unwrap(),
            479
        );
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::HEART_BEAT);
        assert!(cmd.ext_fields.is_empty());
        assert_eq!(HeartbeatData::decode(&cmd.body).unwrap(), data);
        let err = Heartbeat::parse_response(answer(ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST));
        assert_rejected(err, ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST);
    }

    #[test]
    fn unregister_request_and_answers() {
        let header = UnregisterClientRequestHeader {
            client_id: "10.0.0.5@1".into(),
            producer_group: None,
            consumer_group: Some("cg".into()),
            broker_name: None,
        };
        let cmd = Unregister(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::UNREGISTER_CLIENT);
        assert_eq!(
            sent_fields(&cmd),
            [("clientID", "10.0.0.5@1"), ("consumerGroup", "cg")]
        );
        assert!(Unregister::parse_response(answer(ResponseCode::SUCCESS)).is_ok());
        let err = Unregister::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }

    #[test]
    fn check_client_config_sends_the_subscription_and_needs_success() {
        use rocketmq_model::body::{ExpressionType, SubscriptionData};
        let body = CheckClientRequestBody {
            client_id: "10.0.0.5@1".into(),
            group: "cg".into(),
            subscription_data: SubscriptionData::from_expression(
                "T",
                "a > 1",
                ExpressionType::Sql92,
            )
            .unwrap(),
        };
        let cmd = CheckClientConfig(body.clone()).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::CHECK_CLIENT_CONFIG);
        assert!(cmd.ext_fields.is_empty());
        assert_eq!(CheckClientRequestBody::decode(&cmd.body).unwrap(), body);
        assert!(CheckClientConfig::parse_response(answer(ResponseCode::SUCCESS)).is_ok());
        let err = CheckClientConfig::parse_response(
            answer(ResponseCode::SYSTEM_ERROR)
                .with_remark("The broker does not support consumer to filter message by SQL92"),
        );
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }

    #[test]
    fn consumer_list_request_and_answers() {
        let header = GetConsumerListByGroupRequestHeader {
            consumer_group: "cg".into(),
            broker_name: None,
        };
        let cmd = GetConsumerList(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::GET_CONSUMER_LIST_BY_GROUP);
        assert_eq!(sent_fields(&cmd), [("consumerGroup", "cg")]);
        let body = r#"{"consumerIdList":["10.0.0.5@1","10.0.0.6@2"]}"#;
        let ids = GetConsumerList::parse_response(answer(ResponseCode::SUCCESS).with_body(body));
        assert_eq!(ids.unwrap(), ["10.0.0.5@1", "10.0.0.6@2"]);
        let err = GetConsumerList::parse_response(
            answer(ResponseCode::SYSTEM_ERROR).with_remark("no consumer for this group, cg"),
        );
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
        let empty = GetConsumerList::parse_response(answer(ResponseCode::SUCCESS));
        assert!(matches!(empty, Err(RemotingError::Model(_))), "{empty:?}");
    }
}
