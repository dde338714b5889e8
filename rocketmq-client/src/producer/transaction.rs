//! [`TransactionProducer`]: sends half messages, runs the local transaction,
//! commits or rolls back with END_TRANSACTION, and answers the broker's
//! check-backs (PROTOCOL.md §3.8).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use rocketmq_kernel::BrokerApi;
use rocketmq_model::header::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, TransactionResolution,
};
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, OffsetMessageId};
use rocketmq_remoting::calls::EndTransaction;

use super::send::Sender;
use super::{ProducerBuilder, SendResult, SendStatus, register, unregister, validate_options};
use crate::admin::Admin;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, InstanceLease, ProducerHandle};
use crate::panic_text::panic_text;
use crate::trace::EndTransactionTrace;

/// The outcome of a local transaction (Java's `LocalTransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalTransactionState {
    /// Commit: the message becomes visible to consumers.
    CommitMessage,
    /// Roll back: the message is dropped.
    RollbackMessage,
    /// Not known yet (Java's `UNKNOW`): the broker checks back later.
    Unknown,
}

impl LocalTransactionState {
    /// Java's name of the state (message traces carry it).
    fn java_name(self) -> &'static str {
        match self {
            LocalTransactionState::CommitMessage => "COMMIT_MESSAGE",
            LocalTransactionState::RollbackMessage => "ROLLBACK_MESSAGE",
            LocalTransactionState::Unknown => "UNKNOW",
        }
    }

    fn resolution(self) -> TransactionResolution {
        match self {
            LocalTransactionState::CommitMessage => TransactionResolution::Commit,
            LocalTransactionState::RollbackMessage => TransactionResolution::Rollback,
            LocalTransactionState::Unknown => TransactionResolution::Unknown,
        }
    }
}

/// The application's side of a transaction: run the local transaction after
/// the half message is stored, and tell its outcome when the broker asks.
///
/// A method that panics counts as [`LocalTransactionState::Unknown`], as a
/// Java listener's exception does: the producer answers "unknown" with the
/// panic's message as the remark (the broker logs it) and the broker checks
/// back later.
///
/// ```
/// use std::any::Any;
/// use async_trait::async_trait;
/// use rocketmq_client::producer::{LocalTransactionState, TransactionListener};
/// use rocketmq_model::{Message, MessageExt};
///
/// struct Orders;
///
/// #[async_trait]
/// impl TransactionListener for Orders {
///     async fn execute_local_transaction(
///         &self,
///         _msg: &Message,
///         _arg: &(dyn Any + Send + Sync),
///     ) -> LocalTransactionState {
///         LocalTransactionState::CommitMessage
///     }
///
///     async fn check_local_transaction(&self, _msg: &MessageExt) -> LocalTransactionState {
///         LocalTransactionState::CommitMessage
///     }
/// }
/// ```
#[async_trait]
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction of `msg` (stored as a half message) with
    /// the `arg` given to [`TransactionProducer::send_in_transaction`].
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState;

    /// The outcome of the local transaction of `msg`, which the broker
    /// could not resolve (unknown, or END_TRANSACTION lost).
    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState;
}

/// A shared listener, so the application keeps a handle on it.
#[async_trait]
impl<L: TransactionListener> TransactionListener for Arc<L> {
    async fn execute_local_transaction(
        &self,
        msg: &Message,
        arg: &(dyn Any + Send + Sync),
    ) -> LocalTransactionState {
        (**self).execute_local_transaction(msg, arg).await
    }

    async fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        (**self).check_local_transaction(msg).await
    }
}

/// What [`TransactionProducer::send_in_transaction`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    /// The half message's send result.
    pub send_result: SendResult,
    /// The local transaction's outcome (rollback when the half message was
    /// not stored with SEND_OK, without running the transaction).
    pub local_state: LocalTransactionState,
}

/// A producer of transactional messages. Build it with
/// [`ProducerBuilder::build_transactional`].
pub struct TransactionProducer {
    pub(super) sender: Arc<Sender>,
    listener: Arc<dyn TransactionListener>,
    lease: Option<InstanceLease>,
}

impl std::fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("options", &self.sender.options)
            .finish_non_exhaustive()
    }
}

/// The transaction producer as its client instance sees it: it answers
/// check-backs.
struct CheckResponder {
    sender: Arc<Sender>,
    listener: Arc<dyn TransactionListener>,
}

#[async_trait]
impl ProducerHandle for CheckResponder {
    fn group(&self) -> &str {
        self.sender.group()
    }

    async fn check_transaction(
        &self,
        broker_addr: String,
        header: CheckTransactionStateRequestHeader,
        mut msg: MessageExt,
    ) {
        self.sender
            .namespace
            .unwrap_in_place(&mut msg.message.topic);
        let (state, failure) = run_listener(self.listener.check_local_transaction(&msg)).await;
        let remark = failure.map(|panic| {
            tracing::error!(addr = %broker_addr, %panic, "the transaction check panicked; answering unknown");
            format!("checkLocalTransactionState Exception: {panic}")
        });
        let end = check_answer(self.sender.group(), header, &msg, state);
        tracing::debug!(addr = %broker_addr, msg_id = %end.msg_id, ?state, "answering transaction check");
        if let Some(tracer) = &self.sender.tracer {
            let trace = EndTransactionTrace {
                namespace: &self.sender.namespace,
                group: self.sender.group(),
                msg: &msg.message,
                msg_id: &end.msg_id,
                broker_addr: &broker_addr,
                transaction_id: end.transaction_id.as_deref(),
                state: state.java_name(),
                from_transaction_check: true,
            };
            trace.record(tracer);
        }
        end_transaction(&self.sender, &broker_addr, end, remark).await;
    }
}

/// END_TRANSACTION in answer to a check (Java's `processTransactionState`):
/// topic, offsets, transaction id and broker name as the check gave them,
/// and as message id the message's UNIQ_KEY, else its own (offset) id, as
/// Java's `message.getMsgId()` (the check's `msgId` is the UNIQ_KEY too, so
/// it is empty then).
fn check_answer(
    group: &str,
    check: CheckTransactionStateRequestHeader,
    msg: &MessageExt,
    state: LocalTransactionState,
) -> EndTransactionRequestHeader {
    EndTransactionRequestHeader {
        topic: check.topic,
        producer_group: group.to_owned(),
        tran_state_table_offset: check.tran_state_table_offset,
        commit_log_offset: check.commit_log_offset,
        commit_or_rollback: state.resolution(),
        from_transaction_check: true,
        msg_id: msg.msg_id().into_owned(),
        transaction_id: check.transaction_id,
        broker_name: check.broker_name,
    }
}

/// Runs a listener method. A panic is what Java's exception is: the
/// outcome is unknown, and the panic's message is returned for
/// END_TRANSACTION's remark.
async fn run_listener(
    call: impl Future<Output = LocalTransactionState>,
) -> (LocalTransactionState, Option<String>) {
    match AssertUnwindSafe(call).catch_unwind().await {
        Ok(state) => (state, None),
        Err(panic) => (LocalTransactionState::Unknown, Some(panic_text(&*panic))),
    }
}

impl ProducerBuilder {
    /// Starts a [`TransactionProducer`] with this builder's settings and
    /// `listener`.
    pub async fn build_transactional(
        self,
        listener: impl TransactionListener,
    ) -> Result<TransactionProducer> {
        TransactionProducer::start(self, Arc::new(listener)).await
    }
}

impl TransactionProducer {
    async fn start(
        builder: ProducerBuilder,
        listener: Arc<dyn TransactionListener>,
    ) -> Result<TransactionProducer> {
        validate_options(&builder.options)?;
        let for_checks = listener.clone();
        let (lease, sender) = register(
            builder.options,
            builder.config,
            builder.hooks,
            move |sender| {
                Arc::new(CheckResponder {
                    sender: sender.clone(),
                    listener: for_checks,
                })
            },
            true,
        )
        .await?;
        Ok(TransactionProducer {
            sender,
            listener,
            lease: Some(lease),
        })
    }

    /// The client instance the producer uses.
    pub fn instance(&self) -> &ClientInstance {
        &self.sender.instance
    }

    /// Admin calls through the producer's connections, in its namespace.
    pub fn admin(&self) -> Admin {
        let namespace = self.sender.namespace.clone();
        self.sender.instance.admin().in_namespace(namespace)
    }

    /// Sends `msg` as a half message (TRAN_MSG, PGROUP, prepared sysflag;
    /// a delay level is removed, as Java does), runs the local transaction
    /// with `arg` when it was stored, and sends the outcome to the broker
    /// that stored it (END_TRANSACTION, oneway). An unknown outcome is
    /// resolved later by the broker's check-back.
    pub async fn send_in_transaction(
        &self,
        mut msg: Message,
        arg: &(dyn Any + Send + Sync),
    ) -> Result<TransactionSendResult> {
        msg.properties.remove(property::DELAY);
        msg.properties.insert(property::TRAN_MSG, "true")?;
        msg.properties
            .insert(property::PGROUP, self.sender.group().to_owned())?;
        let out = self.sender.prepare(msg)?;
        let send_result = self.sender.send(&out, self.sender.sync_route()).await?;
        // As Java's: a half message stored without SEND_OK (a flush or a
        // slave timed out, no slave) is rolled back without running the
        // local transaction.
        let (local_state, failure) = if send_result.status == SendStatus::SendOk {
            let mut msg = out.message.clone();
            self.sender.namespace.unwrap_in_place(&mut msg.topic);
            if let Some(id) = &send_result.transaction_id {
                msg.properties
                    .insert(property::TRANSACTION_ID, id.clone())?;
            }
            run_listener(self.listener.execute_local_transaction(&msg, arg)).await
        } else {
            (LocalTransactionState::RollbackMessage, None)
        };
        let remark = failure.map(|panic| {
            tracing::error!(
                group = self.sender.group(),
                msg_id = %send_result.msg_id,
                %panic,
                "the local transaction panicked; its outcome is unknown"
            );
            format!("executeLocalTransactionBranch exception: {panic}")
        });
        // As Java's: the local transaction has run, so its outcome is the
        // answer even when END_TRANSACTION cannot be sent (the broker then
        // checks back).
        if let Err(error) = self
            .end(&out.message, &send_result, local_state, remark)
            .await
        {
            tracing::warn!(
                group = self.sender.group(),
                msg_id = %send_result.msg_id,
                %error,
                ?local_state,
                "END_TRANSACTION not sent; the broker will check back"
            );
        }
        Ok(TransactionSendResult {
            send_result,
            local_state,
        })
    }

    /// END_TRANSACTION for a half message just stored, with `remark` (what
    /// the local transaction's panic said): an error when its broker's
    /// address or the message's commit-log offset is not known. The request
    /// itself is oneway; its failure is logged.
    async fn end(
        &self,
        msg: &Message,
        sent: &SendResult,
        state: LocalTransactionState,
        remark: Option<String>,
    ) -> Result<()> {
        let mq = self.sender.namespace.wrap_queue(&sent.message_queue);
        let addr = self.sender.instance.routes().master_addr(&mq).await?;
        // Java falls back to the message id when there is no offset id.
        let commit_log_offset = OffsetMessageId::parse(&sent.offset_msg_id)
            .or_else(|_| OffsetMessageId::parse(&sent.msg_id))
            .map_err(ClientError::from)?
            .commit_log_offset;
        let header = EndTransactionRequestHeader {
            topic: Some(mq.topic.clone()),
            producer_group: self.sender.group().to_owned(),
            tran_state_table_offset: sent.queue_offset,
            commit_log_offset,
            commit_or_rollback: state.resolution(),
            from_transaction_check: false,
            msg_id: sent.msg_id.clone(),
            transaction_id: sent.transaction_id.clone(),
            broker_name: Some(mq.broker_name.clone()),
        };
        if let Some(tracer) = &self.sender.tracer {
            let trace = EndTransactionTrace {
                namespace: &self.sender.namespace,
                group: self.sender.group(),
                msg,
                msg_id: &sent.msg_id,
                broker_addr: &addr,
                transaction_id: sent.transaction_id.as_deref(),
                state: state.java_name(),
                from_transaction_check: false,
            };
            trace.record(tracer);
        }
        end_transaction(&self.sender, &addr, header, remark).await;
        Ok(())
    }

    /// Stops the producer: forgets the group locally, unregisters it from
    /// every broker and releases the client instance; then sends the
    /// message traces left (after the last check-back it answered, as
    /// Java stops its trace dispatcher last).
    pub async fn shutdown(mut self) {
        if let Some(lease) = self.lease.take() {
            unregister(&self.sender, lease).await;
        }
        self.sender.stop_tracing().await;
    }
}

impl Drop for TransactionProducer {
    fn drop(&mut self) {
        if self.lease.is_some() {
            self.sender
                .instance
                .unregister_producer(self.sender.group());
        }
    }
}

/// Sends END_TRANSACTION (oneway) to `addr`, with `remark` for the
/// broker's log; a failure is logged, as the broker will check back.
async fn end_transaction(
    sender: &Sender,
    addr: &str,
    header: EndTransactionRequestHeader,
    remark: Option<String>,
) {
    let resolution = header.commit_or_rollback;
    let request = EndTransaction { header, remark };
    match sender
        .instance
        .broker_api()
        .end_transaction(addr, request)
        .await
    {
        Ok(()) => tracing::debug!(%addr, %resolution, "transaction ended"),
        Err(error) => {
            tracing::warn!(%addr, %error, "END_TRANSACTION failed; the broker will check back")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(msg: &MessageExt) -> CheckTransactionStateRequestHeader {
        // As Java's broker fills it: msgId and transactionId are the
        // message's UNIQ_KEY, absent when it has none.
        let uniq = msg.message.uniq_key().map(str::to_owned);
        CheckTransactionStateRequestHeader {
            topic: Some("ns%T".into()),
            tran_state_table_offset: 5,
            commit_log_offset: msg.commit_log_offset,
            msg_id: uniq.clone(),
            transaction_id: uniq,
            offset_msg_id: Some(msg.offset_msg_id()),
            broker_name: Some("broker-a".into()),
        }
    }

    fn half() -> MessageExt {
        let mut msg = MessageExt {
            commit_log_offset: 4096,
            store_host: "10.0.0.1:10911".parse().unwrap(),
            ..MessageExt::default()
        };
        msg.message.topic = "T".into();
        msg
    }

    /// Java's `processTransactionState`: the UNIQ_KEY, else the message's
    /// own id (`message.getMsgId()`, the offset id of a decoded message),
    /// never an empty id the broker cannot name the message by.
    #[test]
    fn a_check_is_answered_with_the_uniq_key_else_the_offset_id() {
        let msg = half();
        let end = check_answer("pg", check(&msg), &msg, LocalTransactionState::Unknown);
        assert_eq!(end.msg_id, msg.offset_msg_id());
        assert_eq!(end.transaction_id, None);

        let mut msg = half();
        msg.message
            .properties
            .insert(property::UNIQ_KEY, "0A0000010000000000000000000000AB")
            .unwrap();
        let end = check_answer(
            "pg",
            check(&msg),
            &msg,
            LocalTransactionState::CommitMessage,
        );
        assert_eq!(end.msg_id, "0A0000010000000000000000000000AB");
        assert_eq!(
            end.transaction_id.as_deref(),
            Some("0A0000010000000000000000000000AB")
        );
        assert_eq!(end.topic.as_deref(), Some("ns%T"), "the check's topic");
        assert_eq!(end.producer_group, "pg");
        assert_eq!(end.tran_state_table_offset, 5);
        assert_eq!(end.commit_log_offset, 4096);
        assert_eq!(end.commit_or_rollback, TransactionResolution::Commit);
        assert!(end.from_transaction_check);
        assert_eq!(end.broker_name.as_deref(), Some("broker-a"));
    }

    #[tokio::test]
    async fn a_panicking_listener_is_an_unknown_outcome_with_its_message() {
        let (state, remark) = run_listener(async { panic!("db down") }).await;
        assert_eq!(state, LocalTransactionState::Unknown);
        assert_eq!(remark.as_deref(), Some("db down"));
        let (state, remark) = run_listener(async { LocalTransactionState::RollbackMessage }).await;
        assert_eq!(state, LocalTransactionState::RollbackMessage);
        assert_eq!(remark, None);
    }
}
