//! PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361), PROTOCOL.md §3.

use bytes::Bytes;
use rocketmq_model::header::{PullMessageRequestHeader, PullMessageResponseHeader};
use rocketmq_model::{RequestCode, ResponseCode};

use crate::call::{Call, rejected};
use crate::command::RemotingCommand;
use crate::error::Result;

/// The LITE_PULL sysflag bit (PROTOCOL.md §8.6): such pulls go out as
/// LITE_PULL_MESSAGE, as Java sends them.
const LITE_PULL_FLAG: i32 = 0x10;

/// Pulls messages from one queue (long polling when the SUSPEND sysflag is set).
///
/// The request code follows the header's sysflag like Java's: LITE_PULL_MESSAGE
/// (361) when the LITE_PULL bit is set, else PULL_MESSAGE (11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullMessage(pub PullMessageRequestHeader);

/// How a pull went: the four outcomes Java's `PullStatus` distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PullStatus {
    /// SUCCESS: the body holds messages.
    Found,
    /// PULL_NOT_FOUND: nothing new (the long poll expired).
    NoNewMsg,
    /// PULL_RETRY_IMMEDIATELY: messages were all filtered out; continue at
    /// `next_begin_offset`.
    NoMatchedMsg,
    /// PULL_OFFSET_MOVED: the requested offset is illegal; continue at
    /// `next_begin_offset`.
    OffsetMoved,
}

impl PullStatus {
    /// The status a response code stands for, or `None` for a rejection.
    pub fn from_code(code: ResponseCode) -> Option<Self> {
        match code {
            ResponseCode::SUCCESS => Some(PullStatus::Found),
            ResponseCode::PULL_NOT_FOUND => Some(PullStatus::NoNewMsg),
            ResponseCode::PULL_RETRY_IMMEDIATELY => Some(PullStatus::NoMatchedMsg),
            ResponseCode::PULL_OFFSET_MOVED => Some(PullStatus::OffsetMoved),
            _ => None,
        }
    }
}

/// The answer to a pull. The body holds the encoded messages (when
/// [`PullStatus::Found`]); decoding them is left to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResponse {
    /// How the pull went.
    pub status: PullStatus,
    /// Offsets and the suggested broker for the next pull.
    pub header: PullMessageResponseHeader,
    /// The encoded messages, shared with the frame it arrived in.
    pub body: Bytes,
}

impl Call for PullMessage {
    type Response = PullResponse;

    fn into_command(self) -> Result<RemotingCommand> {
        let code = if self.0.sys_flag & LITE_PULL_FLAG != 0 {
            RequestCode::LITE_PULL_MESSAGE
        } else {
            RequestCode::PULL_MESSAGE
        };
        Ok(RemotingCommand::request_from_header(code, self.0))
    }

    fn parse_response(response: RemotingCommand) -> Result<PullResponse> {
        let Some(status) = PullStatus::from_code(response.response_code()) else {
            return Err(rejected(&response));
        };
        Ok(PullResponse {
            status,
            header: response.decode_header()?,
            body: response.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, answer_with, assert_rejected};
    use crate::error::RemotingError;

    fn header(sys_flag: i32) -> PullMessageRequestHeader {
        PullMessageRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: 1,
            queue_offset: 100,
            max_msg_nums: 32,
            sys_flag,
            commit_offset: 90,
            suspend_timeout_millis: 15_000,
            subscription: Some("*".into()),
            sub_version: 7,
            expression_type: Some("TAG".into()),
            ..PullMessageRequestHeader::default()
        }
    }

    const OFFSETS: [(&str, &str); 4] = [
        ("suggestWhichBrokerId", "1"),
        ("nextBeginOffset", "132"),
        ("minOffset", "0"),
        ("maxOffset", "500"),
    ];

    #[test]
    fn code_follows_the_lite_pull_flag() {
        let cmd = PullMessage(header(0x2 | 0x1)).into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::PULL_MESSAGE);
        assert_eq!(cmd.ext_fields["queueOffset"], "100");
        assert_eq!(cmd.ext_fields["suspendTimeoutMillis"], "15000");
        assert_eq!(cmd.ext_fields["sysFlag"], "3");
        let lite = PullMessage(header(0x10 | 0x4)).into_command().unwrap();
        assert_eq!(lite.request_code(), RequestCode::LITE_PULL_MESSAGE);
    }

    #[test]
    fn every_pull_status_keeps_header_and_body() {
        for (code, status) in [
            (ResponseCode::SUCCESS, PullStatus::Found),
            (ResponseCode::PULL_NOT_FOUND, PullStatus::NoNewMsg),
            (
                ResponseCode::PULL_RETRY_IMMEDIATELY,
                PullStatus::NoMatchedMsg,
            ),
            (ResponseCode::PULL_OFFSET_MOVED, PullStatus::OffsetMoved),
        ] {
            let response = answer_with(code, &OFFSETS).with_body("records");
            let pulled = PullMessage::parse_response(response).unwrap();
            assert_eq!(pulled.status, status);
            assert_eq!(pulled.header.next_begin_offset, 132);
            assert_eq!(pulled.header.suggest_which_broker_id, 1);
            assert_eq!(pulled.body, "records");
        }
    }

    #[test]
    fn rejections_and_bad_headers_are_errors() {
        let err = PullMessage::parse_response(answer(ResponseCode::SUBSCRIPTION_NOT_LATEST));
        assert_rejected(err, ResponseCode::SUBSCRIPTION_NOT_LATEST);
        let bad = answer_with(ResponseCode::SUCCESS, &[("nextBeginOffset", "x")]);
        assert!(matches!(
            PullMessage::parse_response(bad),
            Err(RemotingError::Model(_))
        ));
    }
}
