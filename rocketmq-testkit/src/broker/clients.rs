//! Client registration (Java's `ClientManageProcessor` and the lock calls of
//! `AdminBrokerProcessor`): heartbeat, unregister, the subscription check,
//! consumer list, queue locks.

use rocketmq_model::body::{
    CheckClientRequestBody, ConsumerListBody, ExpressionType, LockBatchRequestBody,
    LockBatchResponseBody, UnlockBatchRequestBody,
};
use rocketmq_model::header::{GetConsumerListByGroupRequestHeader, UnregisterClientRequestHeader};
use rocketmq_model::route::perm;
use rocketmq_model::{HeartbeatData, ResponseCode};
use rocketmq_remoting::RemotingCommand;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::groups::Member;
use super::retry::RETRY_PREFIX;
use super::sql92::Sql92;
use super::{BrokerCore, ConnCtx};
use crate::reply::{self, header};

fn member(ctx: &ConnCtx, request: &RemotingCommand, client_id: &str) -> Member {
    Member {
        conn_id: ctx.conn_id,
        client_id: client_id.to_owned(),
        conn: ctx.conn.clone(),
        language: request.language,
        version: request.version,
        last_heartbeat: Instant::now(),
    }
}

fn bad_body(error: &rocketmq_model::ModelError) -> RemotingCommand {
    reply::error(ResponseCode::SYSTEM_ERROR, error.to_string())
}

/// HEART_BEAT: registers the client's groups (and creates their retry
/// topics); a clustering consumer group that gained a member or changed
/// topics is told so before the heartbeat is answered. A 5.x "v2" heartbeat
/// (non-zero fingerprint) may leave the subscriptions out while its
/// fingerprint is unchanged; a changed one is answered `IS_SUB_CHANGE`.
pub(crate) async fn heartbeat(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let data = match HeartbeatData::decode(&request.body) {
        Ok(data) => data,
        Err(error) => return bad_body(&error),
    };
    let core = &ctx.core;
    let v2 = data.heartbeat_fingerprint != 0;
    let mut subscriptions_changed = false;
    for consumer in &data.consumer_data_set {
        let group = &consumer.group_name;
        core.subscription_groups.note(group);
        subscriptions_changed |= core
            .groups
            .record_fingerprint(group, data.heartbeat_fingerprint)
            && v2;
        core.internal_topic(
            &format!("{RETRY_PREFIX}{group}"),
            1,
            perm::READ | perm::WRITE,
        );
        let member = member(ctx, request, &data.client_id);
        let keep = v2 && data.without_sub;
        if let Some(change) = core.groups.register_consumer(consumer, member, keep) {
            change.notify().await;
        }
    }
    for producer in &data.producer_data_set {
        let member = member(ctx, request, &data.client_id);
        core.groups.register_producer(&producer.group_name, member);
    }
    let sub_change = if v2 { subscriptions_changed } else { true };
    let mut response = reply::ok();
    response
        .ext_fields
        .insert("IS_SUPPORT_HEART_BEAT_V2".to_owned(), "true".to_owned());
    response
        .ext_fields
        .insert("IS_SUB_CHANGE".to_owned(), sub_change.to_string());
    response
}

/// UNREGISTER_CLIENT: removes this connection from the named groups.
pub(crate) async fn unregister(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, UnregisterClientRequestHeader);
    let groups = &ctx.core.groups;
    if let Some(group) = &header.producer_group {
        groups.unregister_producer(group, ctx.conn_id);
    }
    if let Some(group) = &header.consumer_group {
        if let Some(change) = groups.unregister_consumer(group, ctx.conn_id) {
            change.notify().await;
        }
    }
    reply::ok()
}

/// CHECK_CLIENT_CONFIG: SUCCESS for a tag subscription (or none); an SQL92
/// one needs property filtering (SYSTEM_ERROR otherwise) and must compile
/// (SUBSCRIPTION_PARSE_FAILED otherwise), as Java's `checkClientConfig`.
pub(crate) fn check_config(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    if request.body.is_empty() {
        return reply::ok();
    }
    let subscription = match CheckClientRequestBody::decode(&request.body) {
        Ok(body) => body.subscription_data,
        Err(error) => return bad_body(&error),
    };
    if subscription.expression_type == ExpressionType::Tag {
        return reply::ok();
    }
    if !ctx.core.settings.property_filter {
        return reply::error(
            ResponseCode::SYSTEM_ERROR,
            format!(
                "The broker does not support consumer to filter message by {}",
                subscription.expression_type.as_str()
            ),
        );
    }
    match Sql92::parse(&subscription.sub_string) {
        Ok(_) => reply::ok(),
        Err(error) => reply::error(
            ResponseCode::SUBSCRIPTION_PARSE_FAILED,
            format!(
                "the expression {:?} does not compile: {}",
                subscription.sub_string, error.0
            ),
        ),
    }
}

pub(crate) fn consumer_list(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let header = header!(request, GetConsumerListByGroupRequestHeader);
    let ids = ctx
        .core
        .groups
        .consumer_group(&header.consumer_group)
        .map(|group| group.client_ids())
        .unwrap_or_default();
    if ids.is_empty() {
        return reply::error(
            ResponseCode::SYSTEM_ERROR,
            format!("no consumer for this group, {}", header.consumer_group),
        );
    }
    match (ConsumerListBody {
        consumer_id_list: ids,
    })
    .encode()
    {
        Ok(body) => reply::ok().with_body(body),
        Err(error) => bad_body(&error),
    }
}

/// LOCK_BATCH_MQ: answers the queues now locked by the client.
pub(crate) fn lock(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let body = match LockBatchRequestBody::decode(&request.body) {
        Ok(body) => body,
        Err(error) => return bad_body(&error),
    };
    let locked = ctx
        .core
        .locks
        .lock(&body.consumer_group, &body.client_id, &body.mq_set);
    match (LockBatchResponseBody {
        lock_ok_mq_set: locked,
    })
    .encode()
    {
        Ok(body) => reply::ok().with_body(body),
        Err(error) => bad_body(&error),
    }
}

/// UNLOCK_BATCH_MQ.
pub(crate) fn unlock(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let body = match UnlockBatchRequestBody::decode(&request.body) {
        Ok(body) => body,
        Err(error) => return bad_body(&error),
    };
    ctx.core
        .locks
        .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
    reply::ok()
}

/// How often silent clients are looked for (Java's `ClientHousekeepingService`).
const EXPIRY_SCAN_EVERY: Duration = Duration::from_secs(10);

/// Java's client housekeeping: every 10 s, a producer or consumer
/// registration that has had no heartbeat for longer than the broker's client
/// expiry (Java's `channelExpiredTimeout`, 120 s) is removed and its
/// connection closed. Java's `scanNotActiveChannel` removes it before the
/// close, so the close finds it gone and the remaining consumers are not
/// told: they rebalance at their next periodic rebalance. Runs until
/// `cancel`.
pub(crate) async fn run_expiry(core: Arc<BrokerCore>, cancel: CancellationToken) {
    let mut ticks = tokio::time::interval_at(Instant::now() + EXPIRY_SCAN_EVERY, EXPIRY_SCAN_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => expire_silent(&core),
        }
    }
}

fn expire_silent(core: &BrokerCore) {
    for (conn_id, conn) in core
        .groups
        .expire(Instant::now(), core.settings.client_expiry)
    {
        // Its close watcher forgets what was still live on it (and tells
        // those groups).
        if let Some(conn) = conn.upgrade() {
            tracing::info!(conn_id, "closing a client that stopped heartbeating");
            conn.close();
        }
    }
}
