//! Send calls: SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE
//! (320), and for a reply message SEND_REPLY_MESSAGE (324) / _V2 (325),
//! PROTOCOL.md §3.

use bytes::Bytes;
use rocketmq_model::header::{
    SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
use rocketmq_model::message::property;
use rocketmq_model::{RequestCode, ResponseCode};

use crate::call::{Call, rejected};
use crate::command::RemotingCommand;
use crate::error::Result;

/// Which key set a send header travels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SendHeaderKeys {
    /// SEND_MESSAGE (10) with the field names as keys.
    Long,
    /// SEND_MESSAGE_V2 (310) with the one-letter keys `a`..`n`: what the Java
    /// producer sends by default (`sendSmartMsg`).
    #[default]
    Short,
}

/// Sends one message: the header describes it, the body is its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendMessage {
    /// The message's metadata.
    pub header: SendMessageRequestHeader,
    /// The message body.
    pub body: Bytes,
    /// The key set (and so the request code) to use.
    pub keys: SendHeaderKeys,
}

impl SendMessage {
    /// A SEND_MESSAGE_V2 request, as the Java producer sends by default.
    pub fn new(header: SendMessageRequestHeader, body: impl Into<Bytes>) -> Self {
        SendMessage {
            header,
            body: body.into(),
            keys: SendHeaderKeys::Short,
        }
    }

    /// Chooses the key set.
    pub fn with_keys(mut self, keys: SendHeaderKeys) -> Self {
        self.keys = keys;
        self
    }
}

impl Call for SendMessage {
    type Response = SendResponse;

    /// As Java's `MQClientAPIImpl#sendMessage`: a reply message (MSG_TYPE
    /// "reply") goes as SEND_REPLY_MESSAGE(_V2), which the broker pushes to
    /// the requester; sent as SEND_MESSAGE(_V2) it would only be stored.
    fn into_command(self) -> Result<RemotingCommand> {
        let reply = is_reply(self.header.properties.as_deref());
        let cmd = match self.keys {
            SendHeaderKeys::Long => {
                let code = if reply {
                    RequestCode::SEND_REPLY_MESSAGE
                } else {
                    RequestCode::SEND_MESSAGE
                };
                RemotingCommand::request_from_header(code, self.header)
            }
            SendHeaderKeys::Short => {
                let code = if reply {
                    RequestCode::SEND_REPLY_MESSAGE_V2
                } else {
                    RequestCode::SEND_MESSAGE_V2
                };
                RemotingCommand::request_from_header(code, SendMessageRequestHeaderV2(self.header))
            }
        };
        Ok(cmd.with_body(self.body))
    }

    fn parse_response(response: RemotingCommand) -> Result<SendResponse> {
        SendResponse::parse(response)
    }
}

/// Whether an encoded properties string has MSG_TYPE "reply". Every send
/// asks, so it looks only around each name-value separator (a few per
/// message) rather than splitting the string or searching all of it.
fn is_reply(properties: Option<&str>) -> bool {
    const NAME: &[u8] = property::MSG_TYPE.as_bytes();
    const VALUE: &[u8] = property::MSG_TYPE_REPLY.as_bytes();
    let Some(text) = properties else {
        return false;
    };
    let text = text.as_bytes();
    memchr::memchr_iter(1, text).any(|at| {
        let value_end = at + 1 + VALUE.len();
        let Some(name_start) = at.checked_sub(NAME.len()) else {
            return false;
        };
        text.get(at + 1..value_end) == Some(VALUE)
            && text.get(value_end).is_none_or(|&next| next == 2)
            && &text[name_start..at] == NAME
            && (name_start == 0 || text[name_start - 1] == 2)
    })
}

/// Sends a batch: the body is the batch encoding of several messages (made by
/// the message module). Always SEND_BATCH_MESSAGE with the short keys and
/// `batch` set, as Java sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBatch {
    /// The batch's common metadata (topic, queue, producer group, ...).
    pub header: SendMessageRequestHeader,
    /// The encoded messages.
    pub body: Bytes,
}

impl Call for SendBatch {
    type Response = SendResponse;

    fn into_command(self) -> Result<RemotingCommand> {
        let mut header = self.header;
        header.batch = Some(true);
        let header = SendMessageRequestHeaderV2(header);
        let cmd = RemotingCommand::request_from_header(RequestCode::SEND_BATCH_MESSAGE, header);
        Ok(cmd.with_body(self.body))
    }

    fn parse_response(response: RemotingCommand) -> Result<SendResponse> {
        SendResponse::parse(response)
    }
}

/// How durably a sent message was stored (Java's `SendStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendStatus {
    /// SUCCESS: stored as configured.
    SendOk,
    /// FLUSH_DISK_TIMEOUT: stored, but the synchronous disk flush timed out.
    FlushDiskTimeout,
    /// FLUSH_SLAVE_TIMEOUT: stored on the master; the slave sync timed out.
    FlushSlaveTimeout,
    /// SLAVE_NOT_AVAILABLE: stored on the master; no slave to sync to.
    SlaveNotAvailable,
}

impl SendStatus {
    /// The status a response code stands for, or `None` when the message was
    /// not stored.
    pub fn from_code(code: ResponseCode) -> Option<Self> {
        match code {
            ResponseCode::SUCCESS => Some(SendStatus::SendOk),
            ResponseCode::FLUSH_DISK_TIMEOUT => Some(SendStatus::FlushDiskTimeout),
            ResponseCode::FLUSH_SLAVE_TIMEOUT => Some(SendStatus::FlushSlaveTimeout),
            ResponseCode::SLAVE_NOT_AVAILABLE => Some(SendStatus::SlaveNotAvailable),
            _ => None,
        }
    }
}

/// The broker's answer to a stored send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResponse {
    /// How durably the message was stored.
    pub status: SendStatus,
    /// Offset message id, queue, queue offset, transaction id, region, ...
    pub header: SendMessageResponseHeader,
}

impl SendResponse {
    fn parse(response: RemotingCommand) -> Result<SendResponse> {
        let Some(status) = SendStatus::from_code(response.response_code()) else {
            return Err(rejected(&response));
        };
        let header = response.decode_header()?;
        Ok(SendResponse { status, header })
    }

    /// The broker's region (`MSG_REGION`), "DefaultRegion" when absent
    /// ([`DEFAULT_REGION`](rocketmq_model::header::DEFAULT_REGION)).
    pub fn region(&self) -> &str {
        self.header.region()
    }

    /// Whether message tracing is on for the broker (`TRACE_ON` is not "false").
    pub fn trace_on(&self) -> bool {
        self.header.trace_enabled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::test_support::{answer, answer_with, assert_rejected};
    use crate::error::RemotingError;

    fn header() -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: "pg".into(),
            topic: "T".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 2,
            sys_flag: 0,
            born_timestamp: 1_700_000_000_000,
            flag: 0,
            properties: Some("KEYS\u{1}k\u{2}".into()),
            ..SendMessageRequestHeader::default()
        }
    }

    const STORED: [(&str, &str); 3] = [
        ("msgId", "0A00000100002A9F0000000000000064"),
        ("queueId", "2"),
        ("queueOffset", "17"),
    ];

    #[test]
    fn v2_is_the_default_with_short_keys() {
        let cmd = SendMessage::new(header(), "body").into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::SEND_MESSAGE_V2);
        assert_eq!(cmd.ext_fields["a"], "pg");
        assert_eq!(cmd.ext_fields["b"], "T");
        assert_eq!(cmd.ext_fields["i"], "KEYS\u{1}k\u{2}");
        assert!(!cmd.ext_fields.contains_key("topic"));
        assert_eq!(cmd.body, "body");
    }

    #[test]
    fn v1_uses_long_keys_and_code_10() {
        let cmd = SendMessage::new(header(), "body")
            .with_keys(SendHeaderKeys::Long)
            .into_command()
            .unwrap();
        assert_eq!(cmd.request_code(), RequestCode::SEND_MESSAGE);
        assert_eq!(cmd.ext_fields["producerGroup"], "pg");
        assert_eq!(cmd.ext_fields["defaultTopicQueueNums"], "4");
        assert!(!cmd.ext_fields.contains_key("a"));
    }

    #[test]
    fn a_reply_message_goes_as_send_reply_message_as_java_sends_it() {
        let mut reply = header();
        reply.properties = Some("CORRELATION_ID\u{1}c\u{2}MSG_TYPE\u{1}reply\u{2}".into());
        let v2 = SendMessage::new(reply.clone(), "pong");
        let cmd = v2.clone().into_command().unwrap();
        assert_eq!(cmd.request_code(), RequestCode::SEND_REPLY_MESSAGE_V2);
        assert_eq!(cmd.ext_fields["b"], "T");
        let v1 = v2.with_keys(SendHeaderKeys::Long).into_command().unwrap();
        assert_eq!(v1.request_code(), RequestCode::SEND_REPLY_MESSAGE);
        assert_eq!(v1.ext_fields["topic"], "T");
        // Another value, or the text inside another property, is no reply.
        for properties in [
            "MSG_TYPE\u{1}request\u{2}",
            "KEYS\u{1}MSG_TYPE\u{1}reply\u{2}",
            "MSG_TYPE\u{1}replyX\u{2}",
            "XMSG_TYPE\u{1}reply",
        ] {
            let mut plain = header();
            plain.properties = Some(properties.into());
            let cmd = SendMessage::new(plain, "b").into_command().unwrap();
            assert_eq!(
                cmd.request_code(),
                RequestCode::SEND_MESSAGE_V2,
                "{properties:?}"
            );
        }
    }

    proptest::proptest! {
        /// The search finds what splitting the string into entries finds,
        /// whatever the entries (drawn from a few names and values, so that
        /// near misses are common).
        #[test]
        fn a_reply_is_found_as_splitting_finds_it(
            entries in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["MSG_TYPE", "XMSG_TYPE", "KEYS", "", "MSG_TYPE\u{1}reply"]),
                    proptest::sample::select(vec!["reply", "replyX", "request", "", "MSG_TYPE\u{1}reply"]),
                ),
                0..5,
            ),
            trailing in proptest::bool::ANY,
        ) {
            let mut text = entries
                .iter()
                .map(|(k, v)| format!("{k}\u{1}{v}"))
                .collect::<Vec<_>>()
                .join("\u{2}");
            if trailing {
                text.push('\u{2}');
            }
            let split = text
                .split('\u{2}')
                .any(|entry| entry.split_once('\u{1}') == Some(("MSG_TYPE", "reply")));
            proptest::prop_assert_eq!(is_reply(Some(&text)), split, "{:?}", text);
        }
    }

    #[test]
    fn batch_uses_code_320_short_keys_and_the_batch_flag() {
        let cmd = SendBatch {
            header: header(),
            body: Bytes::from_static(b"batch"),
        }
        .into_command()
        .unwrap();
        assert_eq!(cmd.request_code(), RequestCode::SEND_BATCH_MESSAGE);
        assert_eq!(cmd.ext_fields["m"], "true");
        assert_eq!(cmd.ext_fields["b"], "T");
        assert_eq!(cmd.body, "batch");
    }

    #[test]
    fn stored_codes_map_to_statuses() {
        for (code, status) in [
            (ResponseCode::SUCCESS, SendStatus::SendOk),
            (
                ResponseCode::FLUSH_DISK_TIMEOUT,
                SendStatus::FlushDiskTimeout,
            ),
            (
                ResponseCode::FLUSH_SLAVE_TIMEOUT,
                SendStatus::FlushSlaveTimeout,
            ),
            (
                ResponseCode::SLAVE_NOT_AVAILABLE,
                SendStatus::SlaveNotAvailable,
            ),
        ] {
            let sent = SendMessage::parse_response(answer_with(code, &STORED)).unwrap();
            assert_eq!(sent.status, status);
            assert_eq!(sent.header.queue_offset, 17);
            assert_eq!(sent.region(), "DefaultRegion");
            assert!(sent.trace_on());
        }
    }

    #[test]
    fn region_and_trace_switch_come_from_the_response() {
        let mut fields = STORED.to_vec();
        fields.extend([("MSG_REGION", "eu-1"), ("TRACE_ON", "false")]);
        let sent = SendBatch::parse_response(answer_with(ResponseCode::SUCCESS, &fields)).unwrap();
        assert_eq!(sent.region(), "eu-1");
        assert!(!sent.trace_on());
    }

    #[test]
    fn rejected_sends_are_typed_errors() {
        let err = SendMessage::parse_response(
            answer(ResponseCode::SYSTEM_BUSY).with_remark("too many requests"),
        );
        assert_rejected(err, ResponseCode::SYSTEM_BUSY);
        let no_header = SendMessage::parse_response(answer(ResponseCode::SUCCESS));
        assert!(matches!(no_header, Err(RemotingError::Model(_))));
    }
}
