//! Pop consumption (5.x): POP_MESSAGE (200050), ACK_MESSAGE (200051) and
//! CHANGE_MESSAGE_INVISIBLETIME (200053). The connection sends them as JSON
//! whatever it is configured with: their codes do not fit the ROCKETMQ
//! header's int16.

use bytes::Bytes;
use rocketmq_model::body::BatchAckMessageRequestBody;
use rocketmq_model::header::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
use rocketmq_model::{RequestCode, ResponseCode};

use crate::call::{Call, json_body, parse_success, parse_success_header, rejected};
use crate::command::RemotingCommand;
use crate::error::Result;

/// Pops messages from one queue of a broker, or from all of them (queue -1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopMessage(pub PopMessageRequestHeader);

/// How a pop went (Java's `PopStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PopStatus {
    /// SUCCESS: the body holds messages, now invisible to the group.
    Found,
    /// POLLING_FULL: the broker holds too many long polls; nothing popped.
    PollingFull,
    /// POLLING_TIMEOUT or PULL_NOT_FOUND: nothing to pop before the poll
    /// time ran out.
    NoNewMsg,
}

impl PopStatus {
    /// The status a response code stands for, or `None` for a rejection.
    pub fn from_code(code: ResponseCode) -> Option<Self> {
        match code {
            ResponseCode::SUCCESS => Some(PopStatus::Found),
            ResponseCode::POLLING_FULL => Some(PopStatus::PollingFull),
            ResponseCode::POLLING_TIMEOUT | ResponseCode::PULL_NOT_FOUND => {
                Some(PopStatus::NoNewMsg)
            }
            _ => None,
        }
    }
}

/// The answer to a pop. The body holds the encoded messages (when
/// [`PopStatus::Found`]); decoding them is left to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopResponse {
    /// How the pop went.
    pub status: PopStatus,
    /// The pop's time, invisible time and offsets: required when messages
    /// were found, read when present otherwise.
    pub header: Option<PopMessageResponseHeader>,
    /// The encoded messages, shared with the frame they arrived in.
    pub body: Bytes,
}

impl Call for PopMessage {
    type Response = PopResponse;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::POP_MESSAGE,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<PopResponse> {
        let Some(status) = PopStatus::from_code(response.response_code()) else {
            return Err(rejected(&response));
        };
        let header = match status {
            PopStatus::Found => Some(response.decode_header()?),
            PopStatus::PollingFull | PopStatus::NoNewMsg => response.decode_header().ok(),
        };
        Ok(PopResponse {
            status,
            header,
            body: response.body,
        })
    }
}

/// Acknowledges one popped message: the broker will not deliver it again.
/// A Java broker answers NO_MESSAGE only for an offset outside the queue,
/// MESSAGE_ILLEGAL for a queue the topic does not have; it does not look
/// whether the pop is still in flight, so an acknowledgement that comes
/// after the invisible time (the message is delivered again) or twice is
/// answered SUCCESS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckMessage(pub AckMessageRequestHeader);

impl Call for AckMessage {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::ACK_MESSAGE,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// Acknowledges popped messages of one broker in one request (5.x). The
/// broker answers SUCCESS whatever it finds; NO_MESSAGE for an empty body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAckMessage(pub BatchAckMessageRequestBody);

impl Call for BatchAckMessage {
    type Response = ();

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request(RequestCode::BATCH_ACK_MESSAGE).with_body(json_body(&self.0)?))
    }

    fn parse_response(response: RemotingCommand) -> Result<()> {
        parse_success(response)
    }
}

/// Gives a popped message a new invisible time, from now; the answer is the
/// message's new pop, whose receipt handle replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInvisibleTime(pub ChangeInvisibleTimeRequestHeader);

impl Call for ChangeInvisibleTime {
    type Response = ChangeInvisibleTimeResponseHeader;

    fn into_command(self) -> Result<RemotingCommand> {
        Ok(RemotingCommand::request_from_header(
            RequestCode::CHANGE_MESSAGE_INVISIBLETIME,
            self.0,
        ))
    }

    fn parse_response(response: RemotingCommand) -> Result<ChangeInvisibleTimeResponseHeader> {
        parse_success_header(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, answer_with, assert_rejected, sent_fields};

    fn pop_header() -> PopMessageRequestHeader {
        PopMessageRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: -1,
            max_msg_nums: 16,
            invisible_time: 30_000,
            poll_time: 15_000,
            born_time: 1_700_000_000_000,
            init_mode: 1,
            exp_type: Some("TAG".into()),
            exp: Some("*".into()),
            ..PopMessageRequestHeader::default()
        }
    }

    const POPPED: [(&str, &str); 6] = [
        ("popTime", "1700000000000"),
        ("invisibleTime", "30000"),
        ("reviveQid", "2"),
        ("restNum", "4"),
        ("startOffsetInfo", "0 1 5"),
        ("msgOffsetInfo", "0 1 5,6"),
    ];

    #[test]
    fn pop_reads_every_status() {
        let cmd = PopMessage(pop_header()).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::POP_MESSAGE);
        assert_eq!(cmd.ext_fields["queueId"], "-1");
        assert_eq!(cmd.ext_fields["pollTime"], "15000");

        let found = answer_with(ResponseCode::SUCCESS, &POPPED).with_body(&b"msgs"[..]);
        let found = PopMessage::parse_response(found).unwrap();
        assert_eq!(found.status, PopStatus::Found);
        assert_eq!(found.header.unwrap().rest_num, 4);
        assert_eq!(&found.body[..], b"msgs");

        for (code, status) in [
            (ResponseCode::POLLING_FULL, PopStatus::PollingFull),
            (ResponseCode::POLLING_TIMEOUT, PopStatus::NoNewMsg),
            (ResponseCode::PULL_NOT_FOUND, PopStatus::NoNewMsg),
        ] {
            let empty = PopMessage::parse_response(answer(code)).unwrap();
            assert_eq!((empty.status, empty.header), (status, None));
        }
        // A found answer without its offsets cannot be acknowledged.
        let bare = answer(ResponseCode::SUCCESS).with_body(&b"msgs"[..]);
        assert!(PopMessage::parse_response(bare).is_err());
        assert_rejected(
            PopMessage::parse_response(answer(ResponseCode::INVALID_PARAMETER)),
            ResponseCode::INVALID_PARAMETER,
        );
    }

    #[test]
    fn ack_and_change_invisible_time() {
        let ack = AckMessage(AckMessageRequestHeader {
            consumer_group: "cg".into(),
            topic: "%RETRY%cg_T".into(),
            queue_id: 0,
            extra_info: "5 1 30000 2 1 b 0 5".into(),
            offset: 5,
            broker_name: Some("b".into()),
        })
        .into_command()
        .unwrap();
        assert_eq!(ack.request_code(), RequestCode::ACK_MESSAGE);
        assert_eq!(
            sent_fields(&ack),
            [
                ("bname", "b"),
                ("consumerGroup", "cg"),
                ("extraInfo", "5 1 30000 2 1 b 0 5"),
                ("offset", "5"),
                ("queueId", "0"),
                ("topic", "%RETRY%cg_T"),
            ]
        );
        AckMessage::parse_response(answer(ResponseCode::SUCCESS)).unwrap();
        assert_rejected(
            AckMessage::parse_response(answer(ResponseCode::NO_MESSAGE)),
            ResponseCode::NO_MESSAGE,
        );

        let batch = BatchAckMessage(BatchAckMessageRequestBody {
            broker_name: "b".into(),
            acks: Vec::new(),
        })
        .into_command()
        .unwrap();
        assert_eq!(batch.request_code(), RequestCode::BATCH_ACK_MESSAGE);
        assert_eq!(&batch.body[..], br#"{"brokerName":"b","acks":[]}"#);
        BatchAckMessage::parse_response(answer(ResponseCode::SUCCESS)).unwrap();

        let change = ChangeInvisibleTime(ChangeInvisibleTimeRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: 1,
            extra_info: "5 1 30000 2 0 b 1 6".into(),
            offset: 6,
            invisible_time: 10_000,
            broker_name: None,
        })
        .into_command()
        .unwrap();
        assert_eq!(
            change.request_code(),
            RequestCode::CHANGE_MESSAGE_INVISIBLETIME
        );
        assert_eq!(change.ext_fields["invisibleTime"], "10000");
        let renewed = answer_with(
            ResponseCode::SUCCESS,
            &[
                ("popTime", "9"),
                ("invisibleTime", "10000"),
                ("reviveQid", "3"),
            ],
        );
        let header = ChangeInvisibleTime::parse_response(renewed).unwrap();
        assert_eq!((header.pop_time, header.revive_qid), (9, 3));
    }
}
