//! END_TRANSACTION (37), PROTOCOL.md §3: a producer's verdict on a half message.

use rocketmq_model::RequestCode;
use rocketmq_model::header::EndTransactionRequestHeader;

use crate::call::Call;
use crate::command::RemotingCommand;
use crate::error::Result;

/// Commits or rolls back a transactional half message. Oneway, as Java sends it
/// both after a local transaction and in answer to a broker's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndTransaction {
    /// Which half message, and the verdict.
    pub header: EndTransactionRequestHeader,
    /// Free text for the broker's log (Java sends the local transaction's
    /// exception, if any).
    pub remark: Option<String>,
}

impl Call for EndTransaction {
    type Response = ();
    const ONEWAY: bool = true;

    fn into_command(self) -> Result<RemotingCommand> {
        let mut cmd =
            RemotingCommand::request_from_header(RequestCode::END_TRANSACTION, self.header);
        cmd.remark = self.remark;
        cmd.set_oneway();
        Ok(cmd)
    }

    fn parse_response(_response: RemotingCommand) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;
    use rocketmq_model::header::TransactionResolution;

    use super::*;
    use crate::call::execute;
    use crate::calls::test_support::{answer, peer};

    #[tokio::test]
    async fn end_transaction_is_oneway_with_header_and_remark() {
        let header = EndTransactionRequestHeader {
            topic: Some("T".into()),
            producer_group: "pg".into(),
            tran_state_table_offset: 5,
            commit_log_offset: 4096,
            commit_or_rollback: TransactionResolution::Commit,
            from_transaction_check: true,
            msg_id: "7F0000010B2C18B4AAC27A1E4C4B0000".into(),
            transaction_id: Some("tx-1".into()),
            broker_name: None,
        };
        let call = EndTransaction {
            header,
            remark: Some("checked".into()),
        };
        let (mut svc, sent) = peer(answer(ResponseCode::SYSTEM_ERROR));
        execute(&mut svc, call).await.unwrap();
        let cmd = sent.last();
        assert_eq!(cmd.request_code(), RequestCode::END_TRANSACTION);
        assert!(cmd.is_oneway());
        assert_eq!(cmd.remark.as_deref(), Some("checked"));
        assert_eq!(cmd.ext_fields["commitOrRollback"], "8");
        assert_eq!(cmd.ext_fields["fromTransactionCheck"], "true");
        assert_eq!(cmd.ext_fields["commitLogOffset"], "4096");
        assert_eq!(cmd.ext_fields["producerGroup"], "pg");
    }
}
