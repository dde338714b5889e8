//! Consumer-side broker calls (PROTOCOL.md §3, §7.5): send a failed message
//! back for retry, lock and unlock queues for orderly consumption.

use std::collections::BTreeSet;

use rocketmq_model::body::{LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody};
use rocketmq_model::header::ConsumerSendMsgBackRequestHeader;
use rocketmq_model::{MessageQueue, RequestCode};

use crate::call::{Call, json_body, parse_success, parse_success_json};
use crate::command::RemotingCommand;
use crate::error::Result;

/// CONSUMER_SEND_MSG_BACK (36): hands a message the consumer failed to process
/// back to the broker, which redelivers it later through the group's retry
/// topic (or dead-letters it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSendMsgBack(pub ConsumerSendMsgBackRequestHeader);

impl Call for ConsumerSendMsgBack {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::CONSUMER_SEND_MSG_BACK,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// LOCK_BATCH_MQ (41): locks queues for this client's orderly consumption.
/// Answers the queues actually locked, which may be fewer than asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockBatchMq(pub LockBatchRequestBody);

impl Call for LockBatchMq {
    type Response = BTreeSet<MessageQueue>;

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::LOCK_BATCH_MQ).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<BTreeSet<MessageQueue>> {
        parse_success_json::<LockBatchResponseBody>(response).map(|body| body.lock_ok_mq_set)
    }
}

/// UNLOCK_BATCH_MQ (42): releases queue locks. Send it wrapped in
/// [`Oneway`](crate::call::Oneway) to not wait, as Java does on shutdown and
/// rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockBatchMq(pub UnlockBatchRequestBody);

impl Call for UnlockBatchMq {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        let body = json_body(&self.0)?;
        Ok(RemotingCommand::request(RequestCode::UNLOCK_BATCH_MQ).with_body(body))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;
    use crate::call::{Oneway, execute};
    use crate::calls::test_support::{answer, assert_rejected, peer};
    use crate::error::RemotingError;

    fn queues() -> BTreeSet<MessageQueue> {
        [
            MessageQueue::new("T", "broker-a", 0),
            MessageQueue::new("T", "broker-a", 1),
        ]
        .into()
    }

    #[test]
    fn send_back_request_and_answers() {
        let header = ConsumerSendMsgBackRequestHeader {
            offset: 4096,
            group: "cg".into(),
            delay_level: 0,
            origin_msg_id: Some("0A00000100002A9F0000000000001000".into()),
            origin_topic: Some("T".into()),
            max_reconsume_times: Some(16),
            ..ConsumerSendMsgBackRequestHeader::default()
        };
        let cmd = ConsumerSendMsgBack(header).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::CONSUMER_SEND_MSG_BACK);
        assert_eq!(cmd.ext_fields["offset"], "4096");
        assert_eq!(cmd.ext_fields["delayLevel"], "0");
        assert_eq!(cmd.ext_fields["maxReconsumeTimes"], "16");
        assert!(ConsumerSendMsgBack::parse_response(answer(ResponseCode::SUCCESS)).is_ok());
        let err = ConsumerSendMsgBack::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }

    #[tokio::test]
    async fn lock_sends_json_and_answers_the_locked_set() {
        let request = LockBatchRequestBody {
            client_id: "10.0.0.5@1".into(),
            consumer_group: "cg".into(),
            mq_set: queues(),
            only_this_broker: false,
        };
        let locked = r#"{"lockOKMQSet":[{"brokerName":"broker-a","queueId":1,"topic":"T"}]}"#;
        let (mut svc, sent) = peer(answer(ResponseCode::SUCCESS).with_body(locked));
        let got = execute(&mut svc, LockBatchMq(request.clone()))
            .await
            .unwrap();
        assert_eq!(got, [MessageQueue::new("T", "broker-a", 1)].into());
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::LOCK_BATCH_MQ);
        assert!(cmd.ext_fields.is_empty());
        assert_eq!(LockBatchRequestBody::decode(&cmd.body).unwrap(), request);
    }

    #[test]
    fn lock_rejections_and_bad_bodies_are_errors() {
        let err = LockBatchMq::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
        let bad = LockBatchMq::parse_response(answer(ResponseCode::SUCCESS).with_body("[1]"));
        assert!(matches!(bad, Err(RemotingError::Model(_))), "{bad:?}");
    }

    #[tokio::test]
    async fn unlock_sync_and_oneway() {
        let request = UnlockBatchRequestBody {
            client_id: "10.0.0.5@1".into(),
            consumer_group: "cg".into(),
            mq_set: queues(),
            only_this_broker: true,
        };
        let (mut svc, sent) = peer(answer(ResponseCode::SUCCESS));
        execute(&mut svc, UnlockBatchMq(request.clone()))
            .await
            .unwrap();
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::UNLOCK_BATCH_MQ);
        assert!(!cmd.is_oneway());
        assert_eq!(UnlockBatchRequestBody::decode(&cmd.body).unwrap(), request);

        let (mut svc, sent) = peer(answer(ResponseCode::SYSTEM_ERROR));
        execute(&mut svc, Oneway(UnlockBatchMq(request)))
            .await
            .unwrap();
        assert!(sent.last().is_oneway());
        let err = UnlockBatchMq::parse_response(answer(ResponseCode::SYSTEM_ERROR));
        assert_rejected(err, ResponseCode::SYSTEM_ERROR);
    }
}
