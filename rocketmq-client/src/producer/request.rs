//! Request-reply (Java's `DefaultMQProducer.request`): send a message that
//! names this client as the reply target, and wait for the reply the broker
//! pushes back (PUSH_REPLY_MESSAGE_TO_CLIENT). The replier answers with
//! [`create_reply_message`], sent by any producer.

use std::time::Duration;

use bytes::Bytes;
use rocketmq_kernel::QueueSelector;
use rocketmq_kernel::wait::deadline_after;
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt, MessageQueue};
use tokio::time::Instant;

use super::Producer;
use super::send::Route;
use crate::error::{ClientError, Result};

/// The reply topic of a cluster is `<cluster>` + this (Java's
/// `MixAll.getReplyTopic`).
pub const REPLY_TOPIC_SUFFIX: &str = "_REPLY_TOPIC";

/// The reply to `request` (a request message as consumed), with `body`
/// (Java's `MessageUtil.createReplyMessage`): to the reply topic of the
/// request's CLUSTER, with MSG_TYPE "reply" and the request's
/// CORRELATION_ID, REPLY_TO_CLIENT and TTL. Send it with any producer: a
/// reply goes as SEND_REPLY_MESSAGE, which the broker pushes to the
/// requester. An error when `request` has no CLUSTER (it is no request).
pub fn create_reply_message(request: &Message, body: impl Into<Bytes>) -> Result<Message> {
    let Some(cluster) = request.property(property::CLUSTER) else {
        return Err(ClientError::InvalidMessage(format!(
            "create reply message fail, requestMessage error, property[{}] is null.",
            property::CLUSTER
        )));
    };
    let mut reply = Message::new(format!("{cluster}{REPLY_TOPIC_SUFFIX}"), body);
    reply
        .properties
        .insert(property::MSG_TYPE, property::MSG_TYPE_REPLY)?;
    for name in [
        property::CORRELATION_ID,
        property::REPLY_TO_CLIENT,
        property::TTL,
    ] {
        if let Some(value) = request.property(name) {
            reply.properties.insert(name, value.to_owned())?;
        }
    }
    Ok(reply)
}

impl Producer {
    /// Sends `msg` as a request and waits, at most `timeout` in all, for its
    /// reply: the message gets CORRELATION_ID, REPLY_TO_CLIENT (this client's
    /// id), TTL and CLUSTER, as Java sets them; a replier's reply with the
    /// same CORRELATION_ID is pushed by the broker to this client.
    ///
    /// Needs brokers that serve request-reply (the reply topic
    /// `<cluster>_REPLY_TOPIC`). The send has the whole `timeout` (not
    /// `send_msg_timeout`), as in Java, and fails with its own error when
    /// the request was not stored; [`ClientError::RequestTimeout`] means it
    /// was, and no reply came in time. As Java sends a request as an async
    /// send, it is resent `retry_times_when_send_async_failed` times when
    /// an attempt is lost, and a broker's refusal is the answer.
    pub async fn request(&self, msg: Message, timeout: Duration) -> Result<MessageExt> {
        self.request_to(msg, timeout, None).await
    }

    /// [`request`](Self::request) sent to `mq`, once (Java's
    /// `request(msg, mq, timeout)`); `mq` must be a queue of the message's
    /// topic.
    pub async fn request_to_queue(
        &self,
        msg: Message,
        mq: &MessageQueue,
        timeout: Duration,
    ) -> Result<MessageExt> {
        // A wrong queue fails before anything is sent or registered.
        let mq = self.queue_for(&self.sender.namespace.wrap(&msg.topic), mq)?;
        self.request_to(msg, timeout, Some(Route::Queue(&mq))).await
    }

    /// [`request`](Self::request) sent to the queue `selector` chooses among
    /// the topic's publish queues, once (Java's
    /// `request(msg, selector, arg, timeout)`); the selector sees them as
    /// [`send_with_selector`](Self::send_with_selector)'s does.
    pub async fn request_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
        timeout: Duration,
    ) -> Result<MessageExt> {
        let selector = self.in_namespace(selector);
        self.request_to(msg, timeout, Some(Route::Selector(&selector)))
            .await
    }

    /// Sends the request as `route` says (round robin, as an async send,
    /// when `None`) and waits for its reply.
    async fn request_to(
        &self,
        mut msg: Message,
        timeout: Duration,
        route: Option<Route<'_>>,
    ) -> Result<MessageExt> {
        let deadline = deadline_after(Instant::now(), timeout);
        let sender = &self.sender;
        sender.to_namespace(&mut msg);
        let instance = &sender.instance;
        let correlation_id = instance.unique_ids().next_id();
        let send_timed_out = |attempts| ClientError::SendTimeout {
            topic: msg.topic.clone(),
            after: timeout,
            attempts,
        };
        // The route lookup counts against the timeout too.
        let routes = instance.routes();
        let known = routes.cached_publish_info(&msg.topic).is_some();
        let lookup =
            routes.publish_info_or_template(&msg.topic, sender.options.default_topic_queue_nums);
        let info = tokio::time::timeout_at(deadline, lookup)
            .await
            .map_err(|_| send_timed_out(0))??;
        if !known {
            // As Java's prepareSendRequest: every broker of the new route
            // learns this client first, or one that gets the reply (sent to
            // the reply topic round robin) could not push it here.
            tokio::time::timeout_at(deadline, instance.send_heartbeat())
                .await
                .map_err(|_| send_timed_out(0))?;
        }
        let properties = &mut msg.properties;
        properties.insert(property::CORRELATION_ID, correlation_id.clone())?;
        properties.insert(property::REPLY_TO_CLIENT, instance.client_id().to_owned())?;
        properties.insert(property::TTL, timeout.as_millis().to_string())?;
        if let Some(cluster) = info.route().broker_datas.first().map(|b| &b.cluster) {
            if !cluster.is_empty() {
                properties.insert(property::CLUSTER, cluster.clone())?;
            }
        }
        let waiter = instance.expect_reply(&correlation_id);
        let out = sender.prepare(msg)?;
        // Java sends a request as an async send.
        let budget = deadline.saturating_duration_since(Instant::now());
        let route = route.unwrap_or_else(|| sender.async_route());
        sender.send_within(&out, route, budget).await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        waiter
            .wait(remaining)
            .await
            .ok_or_else(|| ClientError::RequestTimeout {
                correlation_id: correlation_id.clone(),
                after: timeout,
            })
    }
}
