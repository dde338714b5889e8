//! Transactional messages (Java's `TransactionalMessageService`): a half
//! message waits, invisible, in `RMQ_SYS_TRANS_HALF_TOPIC` until
//! END_TRANSACTION commits it to its real topic or rolls it back; an
//! unresolved one is checked back with CHECK_TRANSACTION_STATE on a connection
//! of its producer group, every check interval, up to the maximum number of
//! checks, after which it is dropped into `TRANS_CHECK_MAX_TIME_TOPIC`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use rocketmq_model::header::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, TransactionResolution,
};
use rocketmq_model::message::{TransactionType, property, sysflag};
use rocketmq_model::{RequestCode, ResponseCode, encode_record};
use rocketmq_remoting::RemotingCommand;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::store::{NewMessage, StoredMessage};
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, header};

/// Where half messages wait.
pub(crate) const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Where half messages go once checked the maximum number of times.
pub(crate) const CHECK_MAX_TOPIC: &str = "TRANS_CHECK_MAX_TIME_TOPIC";
/// How long a oneway check may wait for room in the producer's write queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
struct Half {
    producer_group: String,
    stored_at: Instant,
    /// CHECK_IMMUNITY_TIME_IN_SECONDS, when the message set it.
    immunity: Option<Duration>,
    checks: u32,
}

impl Half {
    /// How long the half message waits for its producer before the broker
    /// checks it back (Java's `TransactionalMessageUtil.getImmunityTime`:
    /// the message's immunity, but never less than the timeout).
    fn check_after(&self, timeout: Duration) -> Duration {
        self.immunity
            .map_or(timeout, |immunity| immunity.max(timeout))
    }
}

/// Unresolved half messages by commit-log offset. They survive restarts.
#[derive(Debug, Default)]
pub(crate) struct HalfMessages {
    table: Mutex<BTreeMap<i64, Half>>,
}

impl HalfMessages {
    fn table(&self) -> MutexGuard<'_, BTreeMap<i64, Half>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Unresolved half messages.
    pub(crate) fn len(&self) -> usize {
        self.table().len()
    }
}

/// Parks a prepared message in the half topic (Java's `parseHalfMessageInner`).
pub(crate) fn park_half(
    core: &BrokerCore,
    mut new: NewMessage,
) -> rocketmq_model::Result<Arc<StoredMessage>> {
    let properties = &mut new.message.properties;
    properties.insert(property::REAL_TOPIC, new.message.topic.clone())?;
    properties.insert(property::REAL_QID, new.queue_id.to_string())?;
    let producer_group = new
        .message
        .property(property::PGROUP)
        .unwrap_or_default()
        .to_owned();
    let immunity = new
        .message
        .property(property::CHECK_IMMUNITY_TIME_IN_SECONDS)
        // Java reads what it cannot parse as 0 (then the timeout).
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .map_or(Duration::ZERO, Duration::from_secs)
        });
    new.sys_flag = sysflag::with_transaction_type(new.sys_flag, TransactionType::NotTransaction);
    new.message.topic = HALF_TOPIC.to_owned();
    new.queue_id = 0;
    let stored = core.store.put(new)?;
    let half = Half {
        producer_group,
        stored_at: Instant::now(),
        immunity,
        checks: 0,
    };
    core.half.table().insert(stored.ext.commit_log_offset, half);
    Ok(stored)
}

/// END_TRANSACTION (Java's `EndTransactionProcessor`).
pub(crate) fn end(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, EndTransactionRequestHeader);
    let core = &ctx.core;
    let commit = match header.commit_or_rollback {
        TransactionResolution::Unknown => return reply::ok(),
        TransactionResolution::Commit => true,
        TransactionResolution::Rollback => false,
    };
    let pending = core.half.table().get(&header.commit_log_offset).cloned();
    let stored = core.store.by_commit_log_offset(header.commit_log_offset);
    let (Some(half), Some(stored)) = (pending, stored) else {
        return reply::error(
            ResponseCode::SYSTEM_ERROR,
            "Find prepared transaction message failed",
        );
    };
    if half.producer_group != header.producer_group {
        return reply::error(ResponseCode::SYSTEM_ERROR, "The producer group wrong");
    }
    if stored.ext.queue_offset != header.tran_state_table_offset {
        return reply::error(
            ResponseCode::SYSTEM_ERROR,
            "The transaction state table offset wrong",
        );
    }
    // Java's rejectCommitOrRollback: a message with its own immunity time,
    // resolved late and not in answer to a check, waits for the check.
    let late = half.immunity.is_some()
        && half.stored_at.elapsed() > half.check_after(core.settings.transactions.timeout);
    if late && !header.from_transaction_check {
        return reply::error(
            ResponseCode::ILLEGAL_OPERATION,
            "Message commit fail [producer end]. currentTimeMillis - bornTime > checkImmunityTime, wait check",
        );
    }
    core.half.table().remove(&header.commit_log_offset);
    if !commit {
        return reply::ok();
    }
    let mut message = committed(&stored);
    if half.checks > 0 {
        // Java stores the half message again, with its check count, before
        // each check; the committed message is made from that copy.
        let checks = half.checks.to_string();
        let counted = message
            .message
            .properties
            .insert(property::TRANSACTION_CHECK_TIMES, checks);
        if let Err(error) = counted {
            return reply::error(ResponseCode::SYSTEM_ERROR, error.to_string());
        }
    }
    match core.put_message(message) {
        Ok(_) => reply::ok(),
        Err(error) => reply::error(ResponseCode::SYSTEM_ERROR, error.to_string()),
    }
}

/// The committed message (Java's `EndTransactionProcessor`): real topic and
/// queue, REAL_TOPIC, REAL_QID and TRAN_MSG cleared (the other properties,
/// PGROUP among them, are copied), COMMIT transaction type, the half
/// message's offset as prepared offset.
fn committed(half: &StoredMessage) -> NewMessage {
    let ext = &half.ext;
    let mut message = ext.message.clone();
    let queue_id = message
        .property(property::REAL_QID)
        .and_then(|q| q.parse().ok())
        .unwrap_or(0);
    message.topic = message
        .property(property::REAL_TOPIC)
        .unwrap_or_default()
        .to_owned();
    for name in [property::REAL_TOPIC, property::REAL_QID, property::TRAN_MSG] {
        message.properties.remove(name);
    }
    NewMessage {
        message,
        queue_id,
        sys_flag: sysflag::with_transaction_type(ext.sys_flag, TransactionType::Commit),
        born_timestamp: ext.born_timestamp,
        born_host: ext.born_host,
        reconsume_times: ext.reconsume_times,
        prepared_transaction_offset: ext.commit_log_offset,
    }
}

/// Checks unresolved half messages every check interval until `cancel`.
pub(crate) async fn run_checker(core: Arc<BrokerCore>, cancel: CancellationToken) {
    let every = core.settings.transactions.check_interval;
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => check_once(&core).await,
        }
    }
}

/// One round: drop the half messages checked too often, check the others
/// old enough.
async fn check_once(core: &BrokerCore) {
    let settings = core.settings.transactions;
    let now = Instant::now();
    let mut to_check = Vec::new();
    let mut exhausted = Vec::new();
    {
        let mut table = core.half.table();
        for (&offset, half) in table.iter_mut() {
            let wait = half.check_after(settings.timeout);
            if now.duration_since(half.stored_at) < wait {
                continue;
            }
            if half.checks >= settings.max_checks {
                exhausted.push((offset, half.checks));
            } else {
                half.checks += 1;
                to_check.push((offset, half.producer_group.clone(), half.checks));
            }
        }
        for (offset, _) in &exhausted {
            table.remove(offset);
        }
    }
    for (offset, checks) in exhausted {
        discard(core, offset, checks);
    }
    for (offset, group, checks) in to_check {
        send_check(core, offset, &group, checks).await;
    }
}

/// Moves a half message checked the maximum number of times to
/// `TRANS_CHECK_MAX_TIME_TOPIC` as it is (Java's `resolveDiscardMsg`): its
/// properties, REAL_TOPIC, REAL_QID and TRAN_MSG among them, with the check
/// count it last had.
fn discard(core: &BrokerCore, offset: i64, checks: u32) {
    let Some(stored) = core.store.by_commit_log_offset(offset) else {
        return;
    };
    let ext = &stored.ext;
    let mut message = ext.message.clone();
    message.topic = CHECK_MAX_TOPIC.to_owned();
    if checks > 0 {
        let counted = message
            .properties
            .insert(property::TRANSACTION_CHECK_TIMES, checks.to_string());
        if let Err(error) = counted {
            tracing::warn!(offset, %error, "half message not discarded");
            return;
        }
    }
    let new = NewMessage {
        message,
        queue_id: 0,
        sys_flag: ext.sys_flag,
        born_timestamp: ext.born_timestamp,
        born_host: ext.born_host,
        reconsume_times: ext.reconsume_times,
        prepared_transaction_offset: ext.prepared_transaction_offset,
    };
    if let Err(error) = core.store.put(new) {
        tracing::warn!(offset, %error, "half message not discarded");
    }
}

/// Sends CHECK_TRANSACTION_STATE (oneway) to a producer of `group`; the body
/// is the half message with its real topic and queue.
async fn send_check(core: &BrokerCore, offset: i64, group: &str, checks: u32) {
    let Some(stored) = core.store.by_commit_log_offset(offset) else {
        return;
    };
    let Some(conn) = core.groups.producer_connection(group) else {
        tracing::debug!(group, offset, "no producer online for a transaction check");
        return;
    };
    let Some(cmd) = check_request(core, &stored, checks) else {
        return;
    };
    match tokio::time::timeout(SEND_TIMEOUT, conn.send(cmd)).await {
        Ok(Ok(_)) => core.counts.check_sent(),
        Ok(Err(error)) => tracing::debug!(group, offset, %error, "transaction check failed"),
        Err(_) => tracing::debug!(group, offset, "transaction check timed out"),
    }
}

fn check_request(
    core: &BrokerCore,
    stored: &StoredMessage,
    checks: u32,
) -> Option<RemotingCommand> {
    let mut ext = stored.ext.clone();
    let real = committed(stored);
    ext.message.topic = real.message.topic;
    ext.queue_id = real.queue_id;
    let uniq = ext.message.uniq_key().map(str::to_owned);
    ext.message
        .properties
        .insert(property::TRANSACTION_CHECK_TIMES, checks.to_string())
        .ok()?;
    let mut body = BytesMut::new();
    encode_record(&ext, &mut body).ok()?;
    let header = CheckTransactionStateRequestHeader {
        topic: Some(ext.message.topic.clone()),
        tran_state_table_offset: stored.ext.queue_offset,
        commit_log_offset: stored.ext.commit_log_offset,
        msg_id: uniq.clone(),
        transaction_id: uniq,
        offset_msg_id: Some(stored.offset_msg_id()),
        broker_name: Some(core.name().to_owned()),
    };
    let mut cmd =
        RemotingCommand::request_with_header(RequestCode::CHECK_TRANSACTION_STATE, &header)
            .with_body(body.freeze());
    cmd.set_oneway();
    Some(cmd)
}
