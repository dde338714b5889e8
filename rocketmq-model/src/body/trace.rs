//! Message trace data: what a client with tracing on sends to the trace
//! topic (`RMQ_SYS_TRACE_TOPIC`) about each message it sent, consumed or
//! ended a transaction of, in the text format of Java's `TraceDataEncoder`,
//! which the RocketMQ dashboard reads.
//!
//! A trace message's body is a run of records, each ended by `\u{2}`, their
//! fields separated by `\u{1}`. An absent text field is written `null`, as
//! Java's `StringBuilder` writes a null string.

use std::fmt::Write as _;

use crate::error::{ModelError, Result};

/// Separates the fields of a record (Java's `CONTENT_SPLITOR`).
pub const FIELD_SEPARATOR: char = '\u{1}';

/// Ends a record (Java's `FIELD_SPLITOR`).
pub const RECORD_END: char = '\u{2}';

/// The default trace topic (Java's `TopicValidator.RMQ_SYS_TRACE_TOPIC`).
pub const TRACE_TOPIC: &str = "RMQ_SYS_TRACE_TOPIC";

/// How a traced message was sent (Java's `MessageType`, written as its
/// ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceMessageType {
    /// A plain message.
    Normal,
    /// A transaction's half message.
    TransactionHalf,
    /// A transaction's end (commit, rollback or unknown).
    TransactionCommit,
    /// A delayed message.
    Delay,
    /// An ordered message.
    Order,
}

impl TraceMessageType {
    const ALL: [TraceMessageType; 5] = [
        TraceMessageType::Normal,
        TraceMessageType::TransactionHalf,
        TraceMessageType::TransactionCommit,
        TraceMessageType::Delay,
        TraceMessageType::Order,
    ];

    fn ordinal(self) -> usize {
        self as usize
    }
}

/// How a consumption ended (Java's `ConsumeReturnType`, written as its
/// ordinal in a [`SubAfter`] record's context code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumeReturnType {
    /// The listener acknowledged the messages.
    Success,
    /// The listener took longer than the consume timeout.
    TimeOut,
    /// The listener failed (here: panicked).
    Exception,
    /// The listener returned nothing (Java only).
    ReturnNull,
    /// The listener asked for the messages again.
    Failed,
}

impl ConsumeReturnType {
    /// The code a [`SubAfter`] record carries.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A message sent (Java's `Pub` trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pub {
    /// When the send began, in milliseconds since the epoch.
    pub timestamp: i64,
    /// The broker's region.
    pub region_id: String,
    /// The producer group, out of its namespace.
    pub group: String,
    /// The topic, out of its namespace.
    pub topic: String,
    /// The message's UNIQ_KEY.
    pub msg_id: String,
    /// TAGS.
    pub tags: Option<String>,
    /// KEYS, as the property holds them (space separated).
    pub keys: Option<String>,
    /// The broker the message went to.
    pub store_host: String,
    /// The body's length in bytes.
    pub body_length: i32,
    /// How long the send took, in milliseconds.
    pub cost_ms: i32,
    /// How it was sent.
    pub msg_type: TraceMessageType,
    /// The broker's offset message id.
    pub offset_msg_id: Option<String>,
    /// Whether it was stored with SEND_OK.
    pub success: bool,
}

/// A message handed to a listener (Java's `SubBefore` trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubBefore {
    /// When the listener was called, in milliseconds since the epoch.
    pub timestamp: i64,
    /// The region the broker stored the message in (its MSG_REGION).
    pub region_id: String,
    /// The consumer group, out of its namespace.
    pub group: String,
    /// Ties this record to its [`SubAfter`]: one per listener call.
    pub request_id: String,
    /// The message's id.
    pub msg_id: String,
    /// How many times it was consumed before.
    pub retry_times: i32,
    /// KEYS.
    pub keys: Option<String>,
}

/// What the listener made of a message (Java's `SubAfter` trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAfter {
    /// The [`SubBefore`] record's request id.
    pub request_id: String,
    /// The message's id.
    pub msg_id: String,
    /// The listener's time per message of its batch, in milliseconds.
    pub cost_ms: i32,
    /// Whether the listener acknowledged it.
    pub success: bool,
    /// KEYS.
    pub keys: Option<String>,
    /// [`ConsumeReturnType::code`].
    pub context_code: i32,
    /// When the listener returned, in milliseconds since the epoch (the
    /// dashboard's end of the consumption).
    pub timestamp: i64,
    /// The consumer group, out of its namespace.
    pub group: String,
}

/// The end of a transaction (Java's `EndTransaction` trace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTransaction {
    /// When END_TRANSACTION was sent, in milliseconds since the epoch.
    pub timestamp: i64,
    /// The half message's region.
    pub region_id: String,
    /// The producer group, out of its namespace.
    pub group: String,
    /// The topic, out of its namespace.
    pub topic: String,
    /// The message's UNIQ_KEY.
    pub msg_id: String,
    /// TAGS.
    pub tags: Option<String>,
    /// KEYS.
    pub keys: Option<String>,
    /// The broker the transaction ended on.
    pub store_host: String,
    /// Always [`TraceMessageType::TransactionCommit`] in Java's traces.
    pub msg_type: TraceMessageType,
    /// The broker's transaction id.
    pub transaction_id: Option<String>,
    /// Java's `LocalTransactionState` name: `COMMIT_MESSAGE`,
    /// `ROLLBACK_MESSAGE` or `UNKNOW`.
    pub state: String,
    /// Whether a check-back asked for it.
    pub from_transaction_check: bool,
}

/// One record of trace data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceRecord {
    /// A message sent.
    Pub(Pub),
    /// A message handed to a listener.
    SubBefore(SubBefore),
    /// What the listener made of it.
    SubAfter(SubAfter),
    /// A transaction ended.
    EndTransaction(EndTransaction),
}

impl TraceRecord {
    /// The record's topic, when it names one (a consume record does not).
    pub fn topic(&self) -> Option<&str> {
        match self {
            TraceRecord::Pub(p) => Some(&p.topic),
            TraceRecord::EndTransaction(e) => Some(&e.topic),
            TraceRecord::SubBefore(_) | TraceRecord::SubAfter(_) => None,
        }
    }

    /// The message id the record is about.
    pub fn msg_id(&self) -> &str {
        match self {
            TraceRecord::Pub(p) => &p.msg_id,
            TraceRecord::SubBefore(s) => &s.msg_id,
            TraceRecord::SubAfter(s) => &s.msg_id,
            TraceRecord::EndTransaction(e) => &e.msg_id,
        }
    }

    /// The record's message keys (KEYS), if any.
    pub fn keys(&self) -> Option<&str> {
        match self {
            TraceRecord::Pub(p) => p.keys.as_deref(),
            TraceRecord::SubBefore(s) => s.keys.as_deref(),
            TraceRecord::SubAfter(s) => s.keys.as_deref(),
            TraceRecord::EndTransaction(e) => e.keys.as_deref(),
        }
    }

    /// The keys a trace message carrying this record is indexed by, so that
    /// a lookup by message id or business key finds it (Java's
    /// `TraceTransferBean.transKey`): the message id, then each KEYS entry.
    pub fn index_keys(&self) -> impl Iterator<Item = &str> {
        let keys = self.keys().unwrap_or_default();
        std::iter::once(self.msg_id()).chain(keys.split(' ').filter(|k| !k.is_empty()))
    }

    /// Appends the record, with its end marker, to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let mut fields = Fields(out);
        match self {
            TraceRecord::Pub(p) => {
                fields.text("Pub");
                fields.num(p.timestamp);
                fields.text(&p.region_id);
                fields.text(&p.group);
                fields.text(&p.topic);
                fields.text(&p.msg_id);
                fields.opt(p.tags.as_deref());
                fields.opt(p.keys.as_deref());
                fields.text(&p.store_host);
                fields.num(p.body_length);
                fields.num(p.cost_ms);
                fields.num(p.msg_type.ordinal());
                fields.opt(p.offset_msg_id.as_deref());
                fields.last(p.success);
            }
            TraceRecord::SubBefore(s) => {
                fields.text("SubBefore");
                fields.num(s.timestamp);
                fields.text(&s.region_id);
                fields.text(&s.group);
                fields.text(&s.request_id);
                fields.text(&s.msg_id);
                fields.num(s.retry_times);
                fields.last(s.keys.as_deref().unwrap_or("null"));
            }
            TraceRecord::SubAfter(s) => {
                fields.text("SubAfter");
                fields.text(&s.request_id);
                fields.text(&s.msg_id);
                fields.num(s.cost_ms);
                fields.num(s.success);
                fields.opt(s.keys.as_deref());
                fields.num(s.context_code);
                fields.num(s.timestamp);
                fields.last(&s.group);
            }
            TraceRecord::EndTransaction(e) => {
                fields.text("EndTransaction");
                fields.num(e.timestamp);
                fields.text(&e.region_id);
                fields.text(&e.group);
                fields.text(&e.topic);
                fields.text(&e.msg_id);
                fields.opt(e.tags.as_deref());
                fields.opt(e.keys.as_deref());
                fields.text(&e.store_host);
                fields.num(e.msg_type.ordinal());
                fields.opt(e.transaction_id.as_deref());
                fields.text(&e.state);
                fields.last(e.from_transaction_check);
            }
        }
    }

    /// The records of a trace message's body (Java's
    /// `decoderFromTraceDataString`, for the formats Java writes today).
    pub fn decode_all(data: &str) -> Result<Vec<TraceRecord>> {
        data.split(RECORD_END)
            .filter(|record| !record.is_empty())
            .map(TraceRecord::decode)
            .collect()
    }

    fn decode(record: &str) -> Result<TraceRecord> {
        let fields: Vec<&str> = record.split(FIELD_SEPARATOR).collect();
        let mut at = Reader {
            fields: &fields,
            next: 1,
        };
        let decoded = match fields[0] {
            "Pub" => TraceRecord::Pub(Pub {
                timestamp: at.num()?,
                region_id: at.text()?,
                group: at.text()?,
                topic: at.text()?,
                msg_id: at.text()?,
                tags: at.opt()?,
                keys: at.opt()?,
                store_host: at.text()?,
                body_length: at.num()?,
                cost_ms: at.num()?,
                msg_type: at.msg_type()?,
                offset_msg_id: at.opt()?,
                success: at.num()?,
            }),
            "SubBefore" => TraceRecord::SubBefore(SubBefore {
                timestamp: at.num()?,
                region_id: at.text()?,
                group: at.text()?,
                request_id: at.text()?,
                msg_id: at.text()?,
                retry_times: at.num()?,
                keys: at.opt()?,
            }),
            "SubAfter" => TraceRecord::SubAfter(SubAfter {
                request_id: at.text()?,
                msg_id: at.text()?,
                cost_ms: at.num()?,
                success: at.num()?,
                keys: at.opt()?,
                context_code: at.num()?,
                timestamp: at.num()?,
                group: at.text()?,
            }),
            "EndTransaction" => TraceRecord::EndTransaction(EndTransaction {
                timestamp: at.num()?,
                region_id: at.text()?,
                group: at.text()?,
                topic: at.text()?,
                msg_id: at.text()?,
                tags: at.opt()?,
                keys: at.opt()?,
                store_host: at.text()?,
                msg_type: at.msg_type()?,
                transaction_id: at.opt()?,
                state: at.text()?,
                from_transaction_check: at.num()?,
            }),
            other => {
                return Err(ModelError::malformed(
                    "trace data",
                    format!("unknown record type {other:?}"),
                ));
            }
        };
        Ok(decoded)
    }
}

/// Writes a record's fields, separated.
struct Fields<'a>(&'a mut String);

impl Fields<'_> {
    fn text(&mut self, value: &str) {
        self.0.push_str(value);
        self.0.push(FIELD_SEPARATOR);
    }

    fn opt(&mut self, value: Option<&str>) {
        self.text(value.unwrap_or("null"));
    }

    fn num(&mut self, value: impl std::fmt::Display) {
        // Writing to a String cannot fail.
        let _ = write!(self.0, "{value}{FIELD_SEPARATOR}");
    }

    fn last(&mut self, value: impl std::fmt::Display) {
        let _ = write!(self.0, "{value}{RECORD_END}");
    }
}

/// Reads a record's fields in order.
struct Reader<'a> {
    fields: &'a [&'a str],
    next: usize,
}

impl<'a> Reader<'a> {
    fn field(&mut self) -> Result<&'a str> {
        let fields = self.fields;
        let field = fields.get(self.next).ok_or_else(|| {
            ModelError::malformed(
                "trace data",
                format!("{} record ends after {} fields", self.fields[0], self.next),
            )
        })?;
        self.next += 1;
        Ok(field)
    }

    fn text(&mut self) -> Result<String> {
        self.field().map(str::to_owned)
    }

    fn opt(&mut self) -> Result<Option<String>> {
        let field = self.field()?;
        Ok((field != "null").then(|| field.to_owned()))
    }

    fn num<T: std::str::FromStr>(&mut self) -> Result<T> {
        let field = self.field()?;
        field.parse().map_err(|_| {
            ModelError::malformed(
                "trace data",
                format!(
                    "field {} of a {} record: {field:?}",
                    self.next - 1,
                    self.fields[0]
                ),
            )
        })
    }

    fn msg_type(&mut self) -> Result<TraceMessageType> {
        let ordinal: usize = self.num()?;
        TraceMessageType::ALL.get(ordinal).copied().ok_or_else(|| {
            ModelError::malformed("trace data", format!("unknown message type {ordinal}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn publish() -> Pub {
        Pub {
            timestamp: 1_700_000_000_000,
            region_id: "DefaultRegion".into(),
            group: "pg".into(),
            topic: "T".into(),
            msg_id: "UNIQ1".into(),
            tags: Some("TagA".into()),
            keys: None,
            store_host: "10.0.0.1:10911".into(),
            body_length: 5,
            cost_ms: 3,
            msg_type: TraceMessageType::Delay,
            offset_msg_id: Some("OFF1".into()),
            success: true,
        }
    }

    fn encoded(record: &TraceRecord) -> String {
        let mut out = String::new();
        record.encode_into(&mut out);
        out
    }

    // The texts below are what Java's TraceDataEncoder.encoderFromContextBean
    // writes for the same values (its field order, `null` for a null string,
    // the message type's ordinal, Boolean.toString).
    #[test]
    fn a_pub_record_reads_as_javas() {
        let text = encoded(&TraceRecord::Pub(publish()));
        assert_eq!(
            text,
            "Pub\u{1}1700000000000\u{1}DefaultRegion\u{1}pg\u{1}T\u{1}UNIQ1\u{1}TagA\u{1}null\u{1}\
             10.0.0.1:10911\u{1}5\u{1}3\u{1}3\u{1}OFF1\u{1}true\u{2}"
        );
    }

    #[test]
    fn consume_records_read_as_javas() {
        let before = TraceRecord::SubBefore(SubBefore {
            timestamp: 7,
            region_id: "r".into(),
            group: "cg".into(),
            request_id: "REQ".into(),
            msg_id: "M".into(),
            retry_times: 2,
            keys: Some("k1 k2".into()),
        });
        assert_eq!(
            encoded(&before),
            "SubBefore\u{1}7\u{1}r\u{1}cg\u{1}REQ\u{1}M\u{1}2\u{1}k1 k2\u{2}"
        );
        let after = TraceRecord::SubAfter(SubAfter {
            request_id: "REQ".into(),
            msg_id: "M".into(),
            cost_ms: 12,
            success: false,
            keys: None,
            context_code: ConsumeReturnType::Failed.code(),
            timestamp: 7,
            group: "cg".into(),
        });
        assert_eq!(
            encoded(&after),
            "SubAfter\u{1}REQ\u{1}M\u{1}12\u{1}false\u{1}null\u{1}4\u{1}7\u{1}cg\u{2}"
        );
        assert_eq!(before.index_keys().collect::<Vec<_>>(), ["M", "k1", "k2"]);
    }

    #[test]
    fn an_end_transaction_record_reads_as_javas() {
        let end = TraceRecord::EndTransaction(EndTransaction {
            timestamp: 9,
            region_id: "DefaultRegion".into(),
            group: "txg".into(),
            topic: "T".into(),
            msg_id: "M".into(),
            tags: None,
            keys: None,
            store_host: "b:10911".into(),
            msg_type: TraceMessageType::TransactionCommit,
            transaction_id: Some("TX".into()),
            state: "COMMIT_MESSAGE".into(),
            from_transaction_check: true,
        });
        assert_eq!(
            encoded(&end),
            "EndTransaction\u{1}9\u{1}DefaultRegion\u{1}txg\u{1}T\u{1}M\u{1}null\u{1}null\u{1}\
             b:10911\u{1}2\u{1}TX\u{1}COMMIT_MESSAGE\u{1}true\u{2}"
        );
    }

    #[test]
    fn bad_trace_data_is_an_error() {
        for bad in [
            "Pub\u{1}x\u{2}",
            "Pub\u{1}1\u{2}",
            "Nope\u{1}1\u{2}",
            "SubAfter\u{1}R\u{1}M\u{1}1\u{1}maybe\u{1}k\u{1}0\u{1}1\u{1}g\u{2}",
        ] {
            assert!(TraceRecord::decode_all(bad).is_err(), "{bad:?}");
        }
        let bad_type =
            encoded(&TraceRecord::Pub(publish())).replace("\u{1}3\u{1}OFF1", "\u{1}9\u{1}OFF1");
        assert!(TraceRecord::decode_all(&bad_type).is_err());
    }

    proptest! {
        #[test]
        fn records_read_back(
            text in "[a-zA-Z0-9_:. -]{1,12}",
            opt in proptest::option::of("[a-zA-Z0-9_ ]{1,12}"),
            number in any::<i32>(),
            flag in any::<bool>(),
            kind in 0usize..5,
        ) {
            let opt = opt.filter(|o| o != "null");
            let mut p = publish();
            p.group = text.clone();
            p.keys = opt.clone();
            p.cost_ms = number;
            p.success = flag;
            p.msg_type = TraceMessageType::ALL[kind];
            let records = vec![
                TraceRecord::Pub(p),
                TraceRecord::SubAfter(SubAfter {
                    request_id: text.clone(),
                    msg_id: text.clone(),
                    cost_ms: number,
                    success: flag,
                    keys: opt,
                    context_code: number,
                    timestamp: i64::from(number),
                    group: text,
                }),
            ];
            let mut out = String::new();
            for record in &records {
                record.encode_into(&mut out);
            }
            prop_assert_eq!(TraceRecord::decode_all(&out).unwrap(), records);
        }

        #[test]
        fn any_text_decodes_or_fails_cleanly(data in "\\PC{0,80}") {
            let _ = TraceRecord::decode_all(&data);
        }
    }
}
