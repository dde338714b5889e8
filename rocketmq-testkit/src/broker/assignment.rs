//! Broker-side rebalance (Java 5's `QueryAssignmentProcessor`):
//! QUERY_ASSIGNMENT allocates a topic's queues (those of every broker of
//! the cluster) among the group's members as the client would, in the
//! group's pull or pop mode; SET_MESSAGE_REQUEST_MODE sets that mode.
//!
//! As Java with `serverLoadBalancerEnable` on (its default; not
//! configurable here). Java's broker keeps the topic's queues from the
//! nameserver for up to 30 s; this one asks the nameserver state each time.
//! LMQ topics (`%LMQ%`), which Java answers with the broker's one LMQ queue,
//! are not supported: they are looked up as any other topic.

mod allocate;
mod modes;

use std::collections::BTreeSet;

use rocketmq_model::body::{
    MessageModel, MessageQueueAssignment, QueryAssignmentRequestBody, QueryAssignmentResponseBody,
    SetMessageRequestModeRequestBody,
};
use rocketmq_model::resource::RETRY_TOPIC_PREFIX;
use rocketmq_model::{MessageQueue, ResponseCode};
use rocketmq_remoting::RemotingCommand;

use super::{BrokerCore, ConnCtx};
use crate::reply;
use allocate::Strategy;
pub(crate) use modes::{RequestMode, RequestModes};

/// A body that does not decode: Java's decoder throws, and its remoting
/// layer answers SYSTEM_ERROR with the exception's text.
fn bad_body(error: &rocketmq_model::ModelError) -> RemotingCommand {
    reply::error(ResponseCode::SYSTEM_ERROR, error.to_string())
}

/// QUERY_ASSIGNMENT: the queues of the topic the client is to read, each
/// with the group's mode; no `messageQueueAssignments` when the broker
/// cannot tell (unknown topic, no member, unknown strategy, or an
/// allocation Java's would refuse).
pub(crate) fn query(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let body = match QueryAssignmentRequestBody::decode(&request.body) {
        Ok(body) => body,
        Err(error) => return bad_body(&error),
    };
    let core = &ctx.core;
    let mode = core.request_modes.of(&body.topic, &body.consumer_group);
    let assignments = assigned_queues(core, &body, mode).map(|queues| {
        (queues.into_iter())
            .map(|queue| MessageQueueAssignment {
                attachments: None,
                message_queue: Some(queue),
                mode: mode.mode,
            })
            .collect()
    });
    let answer = QueryAssignmentResponseBody {
        message_queue_assignments: assignments,
    };
    match answer.encode() {
        Ok(bytes) => reply::ok().with_body(bytes),
        Err(error) => bad_body(&error),
    }
}

/// Java's `doLoadBalance`: every queue of the topic for a broadcasting
/// group; a clustering group's share of them.
fn assigned_queues(
    core: &BrokerCore,
    body: &QueryAssignmentRequestBody,
    mode: RequestMode,
) -> Option<BTreeSet<MessageQueue>> {
    let queues = topic_queues(core, &body.topic);
    if body.message_model == MessageModel::Broadcasting {
        return queues.map(|queues| queues.into_iter().collect());
    }
    let Some(mut queues) = queues else {
        tracing::debug!(topic = %body.topic, "no assignment: the topic has no route");
        return None;
    };
    let Some(mut clients) = members(core, &body.consumer_group) else {
        tracing::debug!(group = %body.consumer_group, "no assignment: the group has no member");
        return None;
    };
    queues.sort();
    clients.sort();
    let Some(strategy) = Strategy::named(&body.strategy_name) else {
        tracing::debug!(strategy = %body.strategy_name, "no assignment: unknown strategy");
        return None;
    };
    let allocated = allocate::allocate(
        strategy,
        mode.mode,
        mode.pop_share_queue_num,
        &body.client_id,
        &queues,
        &clients,
    );
    match allocated {
        Ok(allocated) => Some(allocated.into_iter().collect()),
        Err(refused) => {
            tracing::debug!(reason = refused.0, "no assignment: allocation refused");
            None
        }
    }
}

/// The readable queues of every broker the topic's route names (Java's
/// `TopicRouteInfoManager.getTopicSubscribeInfo`); `None` with no route.
fn topic_queues(core: &BrokerCore, topic: &str) -> Option<Vec<MessageQueue>> {
    let route = core.namesrv.route(topic)?;
    Some(route.subscribe_queues(topic))
}

/// The group's client ids on this broker, as GET_CONSUMER_LIST_BY_GROUP
/// answers them; `None` when it has none.
fn members(core: &BrokerCore, group: &str) -> Option<Vec<String>> {
    let ids = core.groups.consumer_group(group)?.client_ids();
    (!ids.is_empty()).then_some(ids)
}

/// SET_MESSAGE_REQUEST_MODE, with Java's checks in Java's order: not for a
/// retry topic, only for a topic of this broker and a group it knows (or
/// creates, as auto-creation of groups is on).
pub(crate) fn set_mode(ctx: &ConnCtx, request: &RemotingCommand) -> RemotingCommand {
    let body = match SetMessageRequestModeRequestBody::decode(&request.body) {
        Ok(body) => body,
        Err(error) => return bad_body(&error),
    };
    let core = &ctx.core;
    let topic = &body.topic;
    if topic.starts_with(RETRY_TOPIC_PREFIX) {
        return reply::error(
            ResponseCode::NO_PERMISSION,
            "retry topic is not allowed to set mode",
        );
    }
    if core.topics.get(topic).is_none() {
        return reply::error(
            ResponseCode::TOPIC_NOT_EXIST,
            format!("topic[{topic}] not exist"),
        );
    }
    if !core.subscription_groups.find(&body.consumer_group) {
        return reply::error(
            ResponseCode::SUBSCRIPTION_GROUP_NOT_EXIST,
            "subscription group does not exist",
        );
    }
    let mode = RequestMode {
        mode: body.mode,
        pop_share_queue_num: body.pop_share_queue_num,
    };
    core.request_modes.set(topic, &body.consumer_group, mode);
    reply::ok()
}
