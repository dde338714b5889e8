//! [`TransactionProducer`]: sends half messages, runs the local transaction,
//! commits or rolls back with END_TRANSACTION, and answers the broker's
//! check-backs (PROTOCOL.md §3.8).

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
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
    sender: Arc<Sender>,
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
        let state = self.listener.check_local_transaction(&msg).await;
        let end = EndTransactionRequestHeader {
            topic: header.topic.clone(),
            producer_group: self.sender.group().to_owned(),
            tran_state_table_offset: header.tran_state_table_offset,
            commit_log_offset: header.commit_log_offset,
            commit_or_rollback: state.resolution(),
            from_transaction_check: true,
            msg_id: msg
                .message
                .uniq_key()
                .map(str::to_owned)
                .or(header.msg_id)
                .unwrap_or_default(),
            transaction_id: header.transaction_id,
            broker_name: header.broker_name,
        };
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
        end_transaction(&self.sender, &broker_addr, end).await;
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
        let local_state = if send_result.status == SendStatus::SendOk {
            let mut msg = out.message.clone();
            self.sender.namespace.unwrap_in_place(&mut msg.topic);
            if let Some(id) = &send_result.transaction_id {
                msg.properties
                    .insert(property::TRANSACTION_ID, id.clone())?;
            }
            self.listener.execute_local_transaction(&msg, arg).await
        } else {
            LocalTransactionState::RollbackMessage
        };
        // As Java's: the local transaction has run, so its outcome is the
        // answer even when END_TRANSACTION cannot be sent (the broker then
        // checks back).
        if let Err(error) = self.end(&out.message, &send_result, local_state).await {
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

    /// END_TRANSACTION for a half message just stored: an error when its
    /// broker's address or the message's commit-log offset is not known.
    /// The request itself is oneway; its failure is logged.
    async fn end(
        &self,
        msg: &Message,
        sent: &SendResult,
        state: LocalTransactionState,
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
        end_transaction(&self.sender, &addr, header).await;
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

/// Sends END_TRANSACTION (oneway) to `addr`; a failure is logged, as the
/// broker will check back.
async fn end_transaction(sender: &Sender, addr: &str, header: EndTransactionRequestHeader) {
    let resolution = header.commit_or_rollback;
    let request = EndTransaction {
        header,
        remark: None,
    };
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
