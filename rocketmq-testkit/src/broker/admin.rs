//! What an admin tool makes a broker ask its clients (Java's `Broker2Client`
//! and `AdminBrokerProcessor.callConsumer`): running info, consume status,
//! offset resets and direct consumption, each over the client's own
//! connection.

use std::collections::BTreeMap;
use std::time::Duration;

use rocketmq_model::body::{ConsumeMessageDirectlyResult, GetConsumerStatusBody, ResetOffsetBody};
use rocketmq_model::header::{
    ConsumeMessageDirectlyResultRequestHeader, GetConsumerRunningInfoRequestHeader,
    GetConsumerStatusRequestHeader, ResetOffsetRequestHeader,
};
use rocketmq_model::{ConsumerRunningInfo, MessageQueue, OffsetMessageId, RequestCode};
use rocketmq_remoting::call::parse_success_json;
use rocketmq_remoting::{Connection, RemotingCommand, RemotingError};

use super::BrokerCore;
use super::groups::Member;
use crate::error::{Result, TestkitError};

/// Java's timeout of GET_CONSUMER_STATUS_FROM_CLIENT.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// Java's timeout of GET_CONSUMER_RUNNING_INFO and CONSUME_MESSAGE_DIRECTLY.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients from V3_0_7_SNAPSHOT on take offset resets and status requests.
const V3_0_7_SNAPSHOT: i32 = 28;
/// Clients from V3_1_8_SNAPSHOT on take running-info and consume requests.
const V3_1_8_SNAPSHOT: i32 = 62;

fn connection(member: &Member, group: &str) -> Result<Connection> {
    member
        .conn
        .upgrade()
        .ok_or_else(|| TestkitError::ClientNotFound {
            group: group.to_owned(),
            client_id: member.client_id.clone(),
        })
}

fn online_member(core: &BrokerCore, group: &str, client_id: &str) -> Result<Member> {
    let member = core
        .groups
        .consumer_member(group, client_id)
        .filter(|m| m.version >= V3_1_8_SNAPSHOT)
        .ok_or_else(|| TestkitError::ClientNotFound {
            group: group.to_owned(),
            client_id: client_id.to_owned(),
        })?;
    Ok(member)
}

async fn call(
    conn: &Connection,
    cmd: RemotingCommand,
    timeout: Duration,
) -> Result<RemotingCommand> {
    let addr = conn.peer_addr().to_owned();
    match tokio::time::timeout(timeout, conn.send(cmd)).await {
        Ok(response) => Ok(response?),
        Err(_) => Err(RemotingError::Timeout {
            addr,
            after: timeout,
        }
        .into()),
    }
}

/// GET_CONSUMER_RUNNING_INFO to one client of a group.
pub(crate) async fn consumer_running_info(
    core: &BrokerCore,
    group: &str,
    client_id: &str,
    jstack: bool,
) -> Result<ConsumerRunningInfo> {
    let member = online_member(core, group, client_id)?;
    let header = GetConsumerRunningInfoRequestHeader {
        consumer_group: group.to_owned(),
        client_id: client_id.to_owned(),
        jstack_enable: jstack,
        broker_name: None,
    };
    let cmd = RemotingCommand::request_with_header(RequestCode::GET_CONSUMER_RUNNING_INFO, &header);
    let response = call(&connection(&member, group)?, cmd, CALL_TIMEOUT).await?;
    Ok(parse_success_json(response)?)
}

/// GET_CONSUMER_STATUS_FROM_CLIENT to every client of a group: each one's
/// offsets of `topic`, by client id.
pub(crate) async fn consumer_status(
    core: &BrokerCore,
    group: &str,
    topic: &str,
) -> Result<BTreeMap<String, BTreeMap<MessageQueue, i64>>> {
    let members = members(core, group)?;
    let header = GetConsumerStatusRequestHeader {
        topic: topic.to_owned(),
        group: group.to_owned(),
        client_addr: None,
        broker_name: None,
    };
    let mut status = BTreeMap::new();
    for member in members.iter().filter(|m| m.version >= V3_0_7_SNAPSHOT) {
        let cmd = RemotingCommand::request_with_header(
            RequestCode::GET_CONSUMER_STATUS_FROM_CLIENT,
            &header,
        );
        let response = call(&connection(member, group)?, cmd, STATUS_TIMEOUT).await?;
        let body: GetConsumerStatusBody = parse_success_json(response)?;
        status.insert(member.client_id.clone(), body.message_queue_table);
    }
    Ok(status)
}

fn members(core: &BrokerCore, group: &str) -> Result<Vec<Member>> {
    let group_info = core
        .groups
        .consumer_group(group)
        .ok_or_else(|| TestkitError::GroupNotOnline(group.to_owned()))?;
    Ok(group_info.members.into_values().collect())
}

/// Java's `Broker2Client.resetOffset`: per queue of `topic` (every queue
/// needs a committed offset), the offset at `timestamp` (-1: the max offset)
/// when forced or behind the committed one, else the committed one; pushed
/// to every client of the group with RESET_CONSUMER_CLIENT_OFFSET (oneway).
/// Answers the table sent. The broker's own offsets are left to the clients
/// to update, as in Java.
pub(crate) async fn reset_offset(
    core: &BrokerCore,
    group: &str,
    topic: &str,
    timestamp: i64,
    force: bool,
) -> Result<BTreeMap<MessageQueue, i64>> {
    let config = core
        .topics
        .get(topic)
        .ok_or_else(|| TestkitError::TopicNotFound(topic.to_owned()))?;
    let members = members(core, group)?;
    let mut table = BTreeMap::new();
    for queue_id in 0..config.write_queue_nums {
        let committed = core.offsets.get(group, topic, queue_id).ok_or_else(|| {
            TestkitError::NoCommittedOffset {
                group: group.to_owned(),
                topic: topic.to_owned(),
                queue_id,
            }
        })?;
        let at_time = if timestamp == -1 {
            core.store.max_offset(topic, queue_id)
        } else {
            core.store.search_offset(topic, queue_id, timestamp, false)
        };
        let at_time = at_time.max(0);
        let offset = if force || at_time < committed {
            at_time
        } else {
            committed
        };
        table.insert(MessageQueue::new(topic, core.name(), queue_id), offset);
    }
    let body = ResetOffsetBody {
        offset_table: table.clone(),
    }
    .encode()?;
    let header = ResetOffsetRequestHeader {
        group: group.to_owned(),
        topic: topic.to_owned(),
        queue_id: -1,
        offset: None,
        timestamp,
        is_force: force,
        broker_name: None,
    };
    for member in members.iter().filter(|m| m.version >= V3_0_7_SNAPSHOT) {
        let mut cmd = RemotingCommand::request_with_header(
            RequestCode::RESET_CONSUMER_CLIENT_OFFSET,
            &header,
        )
        .with_body(body.clone());
        cmd.set_oneway();
        call(&connection(member, group)?, cmd, STATUS_TIMEOUT).await?;
    }
    Ok(table)
}

/// CONSUME_MESSAGE_DIRECTLY: asks one client to consume the message with
/// offset message id `msg_id`.
pub(crate) async fn consume_message_directly(
    core: &BrokerCore,
    group: &str,
    client_id: &str,
    msg_id: &str,
) -> Result<ConsumeMessageDirectlyResult> {
    let member = online_member(core, group, client_id)?;
    let id = OffsetMessageId::parse(msg_id)?;
    let stored = core
        .store
        .by_commit_log_offset(id.commit_log_offset)
        .ok_or_else(|| TestkitError::MessageNotFound(msg_id.to_owned()))?;
    let header = ConsumeMessageDirectlyResultRequestHeader {
        consumer_group: group.to_owned(),
        client_id: Some(client_id.to_owned()),
        msg_id: Some(msg_id.to_owned()),
        broker_name: Some(core.name().to_owned()),
        topic: Some(stored.ext.message.topic.clone()),
        topic_sys_flag: None,
        group_sys_flag: None,
        bname: None,
    };
    let cmd = RemotingCommand::request_with_header(RequestCode::CONSUME_MESSAGE_DIRECTLY, &header)
        .with_body(stored.record.clone());
    let response = call(&connection(&member, group)?, cmd, CALL_TIMEOUT).await?;
    Ok(parse_success_json(response)?)
}
