//! Request-reply (Java's `DefaultMQProducer.request`): send a message that
//! names this client as the reply target, and wait for the reply the broker
//! pushes back (PUSH_REPLY_MESSAGE_TO_CLIENT).

use std::time::Duration;

use rocketmq_kernel::wait::deadline_after;
use rocketmq_model::message::property;
use rocketmq_model::{Message, MessageExt};
use tokio::time::Instant;

use super::Producer;
use super::send::Route;
use crate::error::{ClientError, Result};

impl Producer {
    /// Sends `msg` as a request and waits, at most `timeout` in all, for its
    /// reply: the message gets CORRELATION_ID, REPLY_TO_CLIENT (this client's
    /// id), TTL and CLUSTER, as Java sets them; a replier's reply with the
    /// same CORRELATION_ID is pushed by the broker to this client.
    ///
    /// Needs brokers that serve request-reply (the reply topic
    /// `<cluster>_REPLY_TOPIC`). Fails with [`ClientError::RequestTimeout`]
    /// when no reply came in time.
    pub async fn request(&self, mut msg: Message, timeout: Duration) -> Result<MessageExt> {
        let deadline = deadline_after(Instant::now(), timeout);
        let sender = &self.sender;
        let instance = &sender.instance;
        let correlation_id = instance.unique_ids().next_id();
        let timed_out = || ClientError::RequestTimeout {
            correlation_id: correlation_id.clone(),
            after: timeout,
        };
        // The route lookup counts against the timeout too.
        let lookup = instance
            .routes()
            .publish_info_or_template(&msg.topic, sender.options.default_topic_queue_nums);
        let info = tokio::time::timeout_at(deadline, lookup)
            .await
            .map_err(|_| timed_out())??;
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
        let retries = sender.options.retry_times_when_send_failed;
        // Java sends a request as an async send: a result stored without
        // SEND_OK is not sent again.
        let route = Route::Balanced {
            retries,
            resend_not_ok: false,
        };
        let sent = tokio::time::timeout_at(deadline, sender.send(&out, route));
        sent.await.map_err(|_| timed_out())??;
        let remaining = deadline.saturating_duration_since(Instant::now());
        waiter.wait(remaining).await.ok_or_else(timed_out)
    }
}
