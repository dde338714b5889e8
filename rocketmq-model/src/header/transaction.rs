//! Transaction headers (PROTOCOL.md §3.8).

use std::fmt;

use super::value::FieldValue;
use super::{FieldKey, FieldReader, FieldWriter};
use crate::error::Result;

command_header! {
    /// END_TRANSACTION (37) request header, sent oneway to the master that
    /// stored the half message.
    pub struct EndTransactionRequestHeader {
        /// Topic of the half message.
        opt topic: String = "topic";
        /// Producer group.
        req producer_group: String = "producerGroup";
        /// The half message's queue offset.
        req tran_state_table_offset: i64 = "tranStateTableOffset";
        /// The half message's commit-log offset.
        req commit_log_offset: i64 = "commitLogOffset";
        /// Commit, roll back, or leave for a later check.
        req commit_or_rollback: TransactionResolution = "commitOrRollback";
        /// True when answering CHECK_TRANSACTION_STATE (Java default false,
        /// always written).
        default(false) from_transaction_check: bool = "fromTransactionCheck";
        /// The message's UNIQ_KEY.
        req msg_id: String = "msgId";
        /// Transaction id.
        opt transaction_id: String = "transactionId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// CHECK_TRANSACTION_STATE (39) header, broker→client.
    pub struct CheckTransactionStateRequestHeader {
        /// Topic of the half message.
        opt topic: String = "topic";
        /// The half message's queue offset.
        req tran_state_table_offset: i64 = "tranStateTableOffset";
        /// The half message's commit-log offset.
        req commit_log_offset: i64 = "commitLogOffset";
        /// The message's UNIQ_KEY.
        opt msg_id: String = "msgId";
        /// Transaction id.
        opt transaction_id: String = "transactionId";
        /// The message's offset msgId.
        opt offset_msg_id: String = "offsetMsgId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

/// The `commitOrRollback` of END_TRANSACTION: MessageSysFlag transaction types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransactionResolution {
    /// 0 (TRANSACTION_NOT_TYPE): state unknown; the broker checks back later.
    #[default]
    Unknown,
    /// 8 (TRANSACTION_COMMIT_TYPE).
    Commit,
    /// 12 (TRANSACTION_ROLLBACK_TYPE).
    Rollback,
}

impl TransactionResolution {
    /// The wire value.
    pub fn code(self) -> i32 {
        match self {
            TransactionResolution::Unknown => 0,
            TransactionResolution::Commit => 8,
            TransactionResolution::Rollback => 12,
        }
    }

    /// From the wire value; the broker rejects anything but 0, 8 and 12.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => Some(TransactionResolution::Unknown),
            8 => Some(TransactionResolution::Commit),
            12 => Some(TransactionResolution::Rollback),
            _ => None,
        }
    }
}

impl fmt::Display for TransactionResolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

const RESOLUTION_EXPECTED: &str = "0 (unknown), 8 (commit) or 12 (rollback)";

impl FieldValue for TransactionResolution {
    fn parse(
        fields: &FieldReader<'_>,
        key: &'static str,
        text: Option<&str>,
    ) -> Result<Option<Self>> {
        let Some(code) = fields.parse_number::<i32>(key, text)? else {
            return Ok(None);
        };
        match TransactionResolution::from_code(code) {
            Some(resolution) => Ok(Some(resolution)),
            None => Err(fields.invalid(key, &code.to_string(), RESOLUTION_EXPECTED)),
        }
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_int_at(key, self.code());
    }
}

#[cfg(test)]
impl super::value::arbitrary::ArbitraryField for TransactionResolution {
    fn strategy() -> proptest::strategy::BoxedStrategy<Self> {
        use proptest::prelude::*;
        prop_oneof![
            Just(TransactionResolution::Unknown),
            Just(TransactionResolution::Commit),
            Just(TransactionResolution::Rollback),
        ]
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ModelError;
    use crate::header::CommandHeader;

    #[test]
    fn resolution_codes_and_unknown_values() {
        let header = EndTransactionRequestHeader {
            producer_group: "pg".into(),
            commit_or_rollback: TransactionResolution::Rollback,
            msg_id: "id".into(),
            ..Default::default()
        };
        let mut fields = header.to_ext_fields();
        assert_eq!(fields["commitOrRollback"], "12");
        assert_eq!(fields["fromTransactionCheck"], "false");
        fields.insert("commitOrRollback", "4");
        let err = EndTransactionRequestHeader::from_ext_fields(&fields).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::InvalidField {
                    field: "commitOrRollback",
                    ..
                }
            ),
            "{err}"
        );
    }
}
