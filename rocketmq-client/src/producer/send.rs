//! The send path shared by [`Producer`](super::Producer) and
//! [`TransactionProducer`](super::TransactionProducer): validation, UNIQ_KEY,
//! compression, queue choice with fault avoidance, retries on another broker
//! within the send-timeout budget, hooks and metrics.

use rocketmq_model::time::epoch_millis;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use rocketmq_kernel::fault::FaultConfig;
use rocketmq_kernel::route::PublishInfo;
use rocketmq_kernel::select::{SelectByShardingKey, select_queue};
use rocketmq_kernel::wait::deadline_after;
use rocketmq_kernel::{FaultStrategy, KernelError, QueueSelector};
use rocketmq_model::header::SendMessageRequestHeader;
use rocketmq_model::message::{property, sysflag, validate_topic};
use rocketmq_model::route::AUTO_CREATE_TOPIC;
use rocketmq_model::{Message, MessageQueue, Namespace, ResponseCode, encode_batch};
use rocketmq_remoting::calls::{SendBatch, SendMessage, SendResponse};
use rocketmq_remoting::{Oneway, RemotingError};
use tokio::time::Instant;
use tracing::Instrument;

use super::builder::ProducerOptions;
use super::hook::{SendContext, SendHook};
use super::result::{SendResult, SendStatus};
use super::wire_body::wire_body;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::metrics::SendSeries;
use crate::trace::Tracer;

/// A message (or batch) ready for the wire.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The message as given, with its UNIQ_KEY (the first of a batch).
    pub(crate) message: Message,
    pub(crate) body: Bytes,
    pub(crate) sys_flag: i32,
    pub(crate) properties: String,
    /// The comma-joined ids of a batch's messages; a single message's id is
    /// its UNIQ_KEY.
    batch_ids: Option<String>,
    pub(crate) batch: bool,
    reconsume_times: Option<i32>,
    max_reconsume_times: Option<i32>,
}

impl Outgoing {
    pub(crate) fn topic(&self) -> &str {
        &self.message.topic
    }

    /// UNIQ_KEY, or the comma-joined ids of a batch.
    pub(crate) fn msg_id(&self) -> &str {
        match &self.batch_ids {
            Some(ids) => ids,
            None => self.message.uniq_key().unwrap_or_default(),
        }
    }
}

/// How a send chooses its queue.
pub(crate) enum Route<'a> {
    /// Round robin with fault avoidance, retried on another broker after a
    /// retriable failure; with `resend_not_ok`, also after a result stored
    /// without SEND_OK (sync sends with `retry_another_broker_when_not_store_ok`;
    /// Java never resends an async one). Without `resend_refused`, a broker's
    /// refusal (a response code, SYSTEM_BUSY say) ends the send: Java's async
    /// sends are retried only when the request or its answer was lost.
    Balanced {
        retries: u32,
        resend_not_ok: bool,
        resend_refused: bool,
    },
    /// Exactly this queue, once (twice after a GO_AWAY).
    Queue(&'a MessageQueue),
    /// The selector's choice among the publish queues, once (twice after a
    /// GO_AWAY).
    Selector(&'a dyn QueueSelector),
}

/// An application's selector in the producer's namespace: it is shown the
/// queues and the message as the application names them, out of the
/// namespace, and its choice is the broker's queue at the same index (as
/// Java's `invokeMessageQueueSelector` shows them).
pub(crate) struct InNamespace<'a> {
    pub(crate) selector: &'a dyn QueueSelector,
    pub(crate) namespace: &'a Namespace,
}

impl QueueSelector for InNamespace<'_> {
    fn select(&self, queues: &[MessageQueue], msg: &Message) -> Option<usize> {
        let namespace = self.namespace;
        if namespace.is_none() {
            return self.selector.select(queues, msg);
        }
        let queues: Vec<MessageQueue> = (queues.iter())
            .map(|mq| namespace.unwrap_queue(mq).into_owned())
            .collect();
        let mut msg = msg.clone();
        namespace.unwrap_in_place(&mut msg.topic);
        self.selector.select(&queues, &msg)
    }
}

/// How long a send may take: its deadline, and the budget it was given
/// (which a timeout error reports).
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: Instant,
    after: Duration,
}

impl Budget {
    fn starting_at(start: Instant, after: Duration) -> Self {
        Budget {
            deadline: deadline_after(start, after),
            after,
        }
    }

    fn starting_now(after: Duration) -> Self {
        Self::starting_at(Instant::now(), after)
    }
}

/// The producer's sending machinery.
pub(crate) struct Sender {
    pub(crate) options: ProducerOptions,
    pub(crate) instance: ClientInstance,
    fault: FaultStrategy,
    hooks: Vec<Arc<dyn SendHook>>,
    /// Send a heartbeat to a broker before the first message to it
    /// (transaction producers, whose check-backs need the group registered).
    heartbeat_first: bool,
    /// The send metrics, their keys made once per topic.
    metrics: SendSeries,
    /// The namespace of the producer's topics and group.
    pub(crate) namespace: Namespace,
    /// Where message traces go, when tracing is on.
    pub(crate) tracer: Option<Arc<Tracer>>,
}

impl Sender {
    pub(crate) fn new(
        options: ProducerOptions,
        instance: ClientInstance,
        hooks: Vec<Arc<dyn SendHook>>,
        heartbeat_first: bool,
        namespace: Namespace,
    ) -> Self {
        let fault = FaultStrategy::new(FaultConfig::java_5x(options.send_latency_fault_enable));
        Sender {
            options,
            instance,
            fault,
            hooks,
            heartbeat_first,
            metrics: SendSeries::default(),
            namespace,
            tracer: None,
        }
    }

    pub(crate) fn group(&self) -> &str {
        &self.options.producer_group
    }

    /// Sends the message traces still waiting and stops tracing.
    pub(crate) async fn stop_tracing(&self) {
        if let Some(tracer) = &self.tracer {
            tracer.shutdown().await;
        }
    }

    /// Puts `msg`'s topic in the producer's namespace. A reply keeps its
    /// topic: it names its cluster's reply topic, which the broker made and
    /// no namespace prefixes (Java would prefix it, and reach the reply
    /// topic only where the broker creates topics on first use).
    pub(crate) fn to_namespace(&self, msg: &mut Message) {
        if self.namespace.is_none()
            || msg.property(property::MSG_TYPE) == Some(property::MSG_TYPE_REPLY)
        {
            return;
        }
        if let Cow::Owned(topic) = self.namespace.wrap(&msg.topic) {
            msg.topic = topic;
        }
    }

    /// Puts `msg` in the namespace, checks it and gives it its UNIQ_KEY:
    /// what a message needs before it waits in an automatic batch.
    pub(crate) fn ready(&self, msg: &mut Message) -> Result<()> {
        self.to_namespace(msg);
        self.check_message(msg)?;
        self.assign_uniq_key(msg)
    }

    /// Validates `msg` and makes it ready: the topic in the namespace,
    /// UNIQ_KEY, compression, retry fields. Fails before any request when
    /// it is too large.
    pub(crate) fn prepare(&self, mut msg: Message) -> Result<Outgoing> {
        self.ready(&mut msg)?;
        self.name_instance(&mut msg.properties)?;
        let (reconsume_times, max_reconsume_times) = take_retry_fields(&mut msg);
        let (body, mut sys_flag) = wire_body(&msg.body, &self.options)?;
        if msg.is_transaction_prepared() {
            sys_flag = sysflag::with_transaction_type(sys_flag, sysflag::TransactionType::Prepared);
        }
        Ok(Outgoing {
            properties: msg.properties.encode(),
            message: msg,
            body,
            sys_flag,
            batch_ids: None,
            batch: false,
            reconsume_times,
            max_reconsume_times,
        })
    }

    /// Validates a batch (Java's rules), gives every message its UNIQ_KEY and
    /// encodes it; batches are never compressed.
    pub(crate) fn prepare_batch(&self, mut msgs: Vec<Message>) -> Result<Outgoing> {
        for msg in &mut msgs {
            self.ready(msg)?;
        }
        let ids: Vec<&str> = msgs
            .iter()
            .map(|msg| msg.uniq_key().unwrap_or_default())
            .collect();
        let batch_ids = ids.join(",");
        let body = encode_batch(&msgs)?;
        if body.len() > self.options.max_message_size {
            return Err(ClientError::MessageTooLarge {
                size: body.len(),
                limit: self.options.max_message_size,
            });
        }
        let first = msgs.swap_remove(0);
        // The batch's own header properties: WAIT, and INSTANCE_ID in a
        // namespace. Java 5.x's producer also gives the batch a UNIQ_KEY of
        // its own (for BatchCQ inner batches), but brokers before
        // apache/rocketmq#9417 (May 2025) and rocketmq-broker 1.0 append the
        // header's properties to every message of the batch, so each would
        // be consumed with the batch's id instead of its own
        // (docs/interop.md).
        let mut properties = rocketmq_model::Properties::new();
        properties.insert(property::WAIT, first.wait_store_ok().to_string())?;
        self.name_instance(&mut properties)?;
        Ok(Outgoing {
            properties: properties.encode(),
            message: first,
            body,
            sys_flag: 0,
            batch_ids: Some(batch_ids),
            batch: true,
            reconsume_times: None,
            max_reconsume_times: None,
        })
    }

    fn check_message(&self, msg: &Message) -> Result<()> {
        validate_topic(&msg.topic).map_err(|e| ClientError::InvalidMessage(e.to_string()))?;
        if rocketmq_model::resource::is_send_forbidden(&msg.topic) {
            return Err(ClientError::InvalidMessage(format!(
                "sending message to topic {} is forbidden",
                msg.topic
            )));
        }
        if msg.body.is_empty() {
            return Err(ClientError::InvalidMessage(
                "the message body is empty".into(),
            ));
        }
        if msg.body.len() > self.options.max_message_size {
            return Err(ClientError::MessageTooLarge {
                size: msg.body.len(),
                limit: self.options.max_message_size,
            });
        }
        // The broker makes a file of each LMQ queue named here (Java's
        // `Validators.checkMessage`).
        if let Some(queues) = msg.property(property::INNER_MULTI_DISPATCH) {
            if queues.contains(std::path::MAIN_SEPARATOR) {
                return Err(ClientError::InvalidMessage(format!(
                    "{} {queues} may not hold the character {}",
                    property::INNER_MULTI_DISPATCH,
                    std::path::MAIN_SEPARATOR
                )));
            }
        }
        Ok(())
    }

    /// Names the producer's namespace in INSTANCE_ID, as Java's
    /// `sendKernelImpl` does for every message (a batch: in its header).
    fn name_instance(&self, properties: &mut rocketmq_model::Properties) -> Result<()> {
        if let Some(namespace) = self.namespace.as_str() {
            properties.insert(property::INSTANCE_ID, namespace)?;
        }
        Ok(())
    }

    /// Gives `msg` a UNIQ_KEY unless it has one.
    fn assign_uniq_key(&self, msg: &mut Message) -> Result<()> {
        if msg.uniq_key().is_none() {
            let id = self.instance.unique_ids().next_id();
            msg.properties.insert(property::UNIQ_KEY, id)?;
        }
        Ok(())
    }

    /// The route of a sync send: round robin with
    /// `retry_times_when_send_failed` retries, resending a result stored
    /// without SEND_OK when `retry_another_broker_when_not_store_ok` asks.
    pub(crate) fn sync_route(&self) -> Route<'static> {
        Route::Balanced {
            retries: self.options.retry_times_when_send_failed,
            resend_not_ok: self.options.retry_another_broker_when_not_store_ok,
            resend_refused: true,
        }
    }

    /// The route of an async send, and of a request (Java sends one as an
    /// async send): round robin with `retry_times_when_send_async_failed`
    /// retries after a lost attempt only; a broker's refusal, or a result
    /// stored without SEND_OK, is the answer.
    pub(crate) fn async_route(&self) -> Route<'static> {
        Route::Balanced {
            retries: self.options.retry_times_when_send_async_failed,
            resend_not_ok: false,
            resend_refused: false,
        }
    }

    /// Sends `out` as `route` says, within the send timeout.
    pub(crate) async fn send(&self, out: &Outgoing, route: Route<'_>) -> Result<SendResult> {
        self.send_within(out, route, self.options.send_msg_timeout)
            .await
    }

    /// Sends `out` as `route` says, within `budget`. A message with a
    /// sharding key sent round robin goes to the queue of its key instead,
    /// once, whatever the send mode.
    pub(crate) async fn send_within(
        &self,
        out: &Outgoing,
        route: Route<'_>,
        budget: Duration,
    ) -> Result<SendResult> {
        let started = Instant::now();
        let budget = Budget::starting_at(started, budget);
        let route = match route {
            // A batch's messages may have keys of their own: it stays balanced.
            Route::Balanced { .. } if !out.batch && out.message.sharding_key().is_some() => {
                Route::Selector(&SelectByShardingKey)
            }
            route => route,
        };
        let span = tracing::debug_span!("send", topic = out.topic(), msg_id = %out.msg_id());
        let result = self.send_routed(out, route, budget).instrument(span).await;
        self.metrics
            .record_send(out.topic(), result.as_ref().map(|_| ()), started.elapsed());
        result
    }

    async fn send_routed(
        &self,
        out: &Outgoing,
        route: Route<'_>,
        budget: Budget,
    ) -> Result<SendResult> {
        match route {
            Route::Balanced {
                retries,
                resend_not_ok,
                resend_refused,
            } => {
                self.send_balanced(out, retries, resend_not_ok, resend_refused, budget)
                    .await
            }
            Route::Queue(mq) => {
                self.publish_info(out.topic(), budget).await?;
                self.attempt_to(out, mq, budget).await
            }
            Route::Selector(selector) => {
                let mq = self.select_within(&out.message, selector, budget).await?;
                self.attempt_to(out, &mq, budget).await
            }
        }
    }

    /// The one attempt of a send to a chosen queue, sent again to that
    /// queue, once, when the broker answered GO_AWAY: it did not process
    /// it, and its connection is retired, so the second goes on a new one
    /// (Java's `NettyRemotingClient.invokeImpl` resends any request so,
    /// once, whatever the send mode).
    async fn attempt_to(
        &self,
        out: &Outgoing,
        mq: &MessageQueue,
        budget: Budget,
    ) -> Result<SendResult> {
        match self.attempt(out, mq, 0, budget).await {
            Err(error) if error.response_code() == Some(ResponseCode::GO_AWAY) => {
                tracing::debug!(topic = out.topic(), broker = %mq.broker_name, queue_id = mq.queue_id, "GO_AWAY; sending again on a new connection");
                self.metrics.record_retry(out.topic());
                self.attempt(out, mq, 1, budget).await
            }
            result => result,
        }
    }

    /// The queue `selector` chooses for `out` among its topic's publish
    /// queues, the route looked up within the send timeout if need be (for
    /// async and oneway sends, which choose before they start).
    pub(crate) async fn select(
        &self,
        msg: &Message,
        selector: &dyn QueueSelector,
    ) -> Result<MessageQueue> {
        let budget = Budget::starting_now(self.options.send_msg_timeout);
        self.select_within(msg, selector, budget).await
    }

    /// The queue `selector` chooses for `msg` (ready: in the namespace)
    /// among its topic's publish queues.
    async fn select_within(
        &self,
        msg: &Message,
        selector: &dyn QueueSelector,
        budget: Budget,
    ) -> Result<MessageQueue> {
        let info = self.publish_info(&msg.topic, budget).await?;
        let mq = select_queue(selector, info.queues(), msg).ok_or_else(|| {
            ClientError::NoQueueSelected {
                topic: msg.topic.clone(),
            }
        })?;
        Ok(mq.clone())
    }

    /// Up to `1 + retries` attempts, each on another broker than the last
    /// failed one, all before `deadline`. A message stored without SEND_OK
    /// and then resent stays stored: when no later attempt does better, its
    /// result is the answer, whatever failed after it (as Java's
    /// `sendDefaultImpl`), so that the caller does not send it a third time.
    async fn send_balanced(
        &self,
        out: &Outgoing,
        retries: u32,
        resend_not_ok: bool,
        resend_refused: bool,
        budget: Budget,
    ) -> Result<SendResult> {
        let mut last_failed: Option<String> = None;
        let mut last_error = None;
        let mut stored: Option<SendResult> = None;
        for attempt in 0..=retries {
            if attempt > 0 {
                self.metrics.record_retry(out.topic());
            }
            let info = match self.publish_info(out.topic(), budget).await {
                Ok(info) => info,
                // The nameserver's answer: looking again will not change it
                // (Java looks the route up once, before its attempts).
                Err(error @ ClientError::NoRoute { .. }) => return stored.ok_or(error),
                Err(error) if error.is_retriable() && Instant::now() < budget.deadline => {
                    last_error = Some(error);
                    continue;
                }
                Err(error) => return stored.ok_or(error),
            };
            let Some(mq) = self.fault.select_queue(&info, last_failed.as_deref()) else {
                return stored.ok_or_else(|| no_route(out.topic()));
            };
            match self.attempt(out, mq, attempt, budget).await {
                Ok(result)
                    if result.status != SendStatus::SendOk
                        && resend_not_ok
                        && attempt < retries =>
                {
                    tracing::info!(topic = out.topic(), broker = %mq.broker_name, status = ?result.status, "stored without SEND_OK; retrying");
                    last_failed = Some(mq.broker_name.clone());
                    stored = Some(result);
                }
                Ok(result) => return Ok(result),
                Err(error @ ClientError::SendTimeout { .. }) => return stored.ok_or(error),
                Err(error) if self.may_resend(&error, resend_refused) => {
                    // Per send, so at debug level (a broker refusing every
                    // send would write thousands a minute); the retry
                    // counter shows them, and the caller gets the last error.
                    if attempt < retries {
                        tracing::debug!(topic = out.topic(), broker = %mq.broker_name, queue_id = mq.queue_id, %error, attempt, "send failed; retrying");
                    }
                    last_failed = Some(mq.broker_name.clone());
                    last_error = Some(error);
                }
                Err(error) => return stored.ok_or(error),
            }
        }
        stored.ok_or_else(|| last_error.unwrap_or_else(|| timeout(out, retries + 1, budget)))
    }

    /// Whether an attempt that failed with `error` may be resent: when its
    /// request or answer was lost, or the broker said GO_AWAY (it is
    /// shutting down and did not process it; Java's client resends such a
    /// request on a new connection, whatever the send mode); or, with
    /// `resend_refused`, when the broker refused it with one of
    /// `retry_response_codes`.
    fn may_resend(&self, error: &ClientError, resend_refused: bool) -> bool {
        // A code is the broker's answer: the request and answer were not lost.
        match error.response_code() {
            Some(ResponseCode::GO_AWAY) => true,
            Some(code) => resend_refused && self.options.retry_response_codes.contains(&code),
            None => error.is_retriable(),
        }
    }

    async fn publish_info(&self, topic: &str, budget: Budget) -> Result<Arc<PublishInfo>> {
        let routes = self.instance.routes();
        // The usual case, a known route, needs no timer.
        if let Some(info) = routes.cached_publish_info(topic) {
            return Ok(info);
        }
        let lookup = routes.publish_info_or_template(topic, self.options.default_topic_queue_nums);
        match tokio::time::timeout_at(budget.deadline, lookup).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(KernelError::NoRoute { .. })) => Err(no_route(topic)),
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(ClientError::SendTimeout {
                topic: topic.to_owned(),
                after: budget.after,
                attempts: 0,
            }),
        }
    }

    /// One attempt to `mq`'s master, bounded by `deadline`; reports the
    /// outcome to the fault strategy and the hooks.
    async fn attempt(
        &self,
        out: &Outgoing,
        mq: &MessageQueue,
        attempt: u32,
        budget: Budget,
    ) -> Result<SendResult> {
        // Java gives up before an attempt once the budget is spent, rather
        // than write a request nobody will wait for (the broker would store it
        // while the caller is told it failed). The attempt's latency counts
        // from here, hooks included, as Java's `beginTimestampPrev`.
        let began = Instant::now();
        if began >= budget.deadline {
            return Err(timeout(out, attempt, budget));
        }
        let addr = self.master_addr(mq)?;
        // No clock read for the hooks' context when there are none.
        let ctx = (!self.hooks.is_empty()).then(|| self.context(out, mq, &addr, attempt));
        if let Some(ctx) = &ctx {
            self.hooks.iter().for_each(|hook| hook.before_send(ctx));
        }
        let result = self.attempt_call(out, mq, &addr, budget, began).await;
        let result = match result {
            // The call had what was left of the budget, and used it up.
            Err(error) if timed_out(&error) && Instant::now() >= budget.deadline => {
                Err(timeout(out, attempt + 1, budget))
            }
            result => result,
        };
        let latency = began.elapsed();
        match &result {
            Ok(_) => self.fault.record_latency(&mq.broker_name, latency),
            Err(_) => self.fault.record_failure(&mq.broker_name, latency),
        }
        if let Some(ctx) = &ctx {
            (self.hooks.iter()).for_each(|hook| hook.after_send(ctx, result.as_ref()));
        }
        tracing::debug!(addr = %addr, queue_id = mq.queue_id, ok = result.is_ok(), ?latency, "send attempt");
        result
    }

    /// What the hooks see of an attempt of `out` to `mq` at `addr`.
    fn context<'a>(
        &'a self,
        out: &'a Outgoing,
        mq: &'a MessageQueue,
        addr: &'a str,
        attempt: u32,
    ) -> SendContext<'a> {
        SendContext {
            producer_group: self.group(),
            broker_addr: addr,
            message_queue: mq,
            message: &out.message,
            batch: out.batch,
            wire_body_len: out.body.len(),
            attempt,
            started: SystemTime::now(),
        }
    }

    fn master_addr(&self, mq: &MessageQueue) -> Result<Arc<str>> {
        Ok(self
            .instance
            .routes()
            .table()
            .master_addr(&mq.broker_name)?)
    }

    /// The request of one attempt begun at `began`, within what was left of
    /// the budget then (Java passes `timeout - costTime` to each call, its
    /// cost counted to the attempt's start): one timer bounds it, the API's.
    async fn attempt_call(
        &self,
        out: &Outgoing,
        mq: &MessageQueue,
        addr: &str,
        budget: Budget,
        began: Instant,
    ) -> Result<SendResult> {
        let mut now = began;
        if self.heartbeat_first {
            let heartbeat = self.instance.ensure_heartbeat(addr);
            if tokio::time::timeout_at(budget.deadline, heartbeat)
                .await
                .is_err()
            {
                return Err(ClientError::Remoting(RemotingError::Timeout {
                    addr: addr.to_owned(),
                    after: budget.after,
                }));
            }
            now = Instant::now();
        }
        let remaining = budget.deadline.saturating_duration_since(now);
        let header = self.header(out, mq);
        let api = self.instance.broker_api();
        let response: SendResponse = if out.batch {
            let request = SendBatch {
                header,
                body: out.body.clone(),
            };
            api.send_batch(addr, request, remaining).await?
        } else {
            let request = SendMessage::new(header, out.body.clone());
            api.send_message(addr, request, remaining).await?
        };
        Ok(SendResult::from_response(
            response,
            out.msg_id().to_owned(),
            &self.namespace.unwrap(out.topic()),
            &mq.broker_name,
        ))
    }

    /// Sends `out` once without waiting for the broker (oneway); counted in
    /// the send metrics once written.
    /// Writes `out` as a oneway send: round robin, or to `queue`.
    pub(crate) async fn send_oneway(
        &self,
        out: &Outgoing,
        queue: Option<&MessageQueue>,
    ) -> Result<()> {
        let written = self.write_oneway(out, queue).await;
        self.metrics
            .record_oneway(out.topic(), written.as_ref().copied());
        written
    }

    async fn write_oneway(&self, out: &Outgoing, queue: Option<&MessageQueue>) -> Result<()> {
        let budget = Budget::starting_now(self.options.send_msg_timeout);
        let info = self.publish_info(out.topic(), budget).await?;
        let mq = match (queue, out.message.sharding_key()) {
            (Some(mq), _) => Some(mq),
            (None, Some(_)) => select_queue(&SelectByShardingKey, info.queues(), &out.message),
            (None, None) => self.fault.select_queue(&info, None),
        }
        .ok_or_else(|| no_route(out.topic()))?;
        let addr = self.master_addr(mq)?;
        // As an attempt: no clock read for the hooks' context without hooks.
        let ctx = (!self.hooks.is_empty()).then(|| self.context(out, mq, &addr, 0));
        if let Some(ctx) = &ctx {
            self.hooks.iter().for_each(|hook| hook.before_send(ctx));
        }
        let call = Oneway(SendMessage::new(self.header(out, mq), out.body.clone()));
        let remoting = self.instance.remoting();
        let began = Instant::now();
        let written: Result<()> = remoting
            .invoke_call(&addr, call, self.options.send_msg_timeout)
            .await
            .map_err(Into::into);
        // As Java's sendDefaultImpl: a broker that cannot even be written to
        // is avoided by the next sends when fault avoidance is on.
        match &written {
            Ok(()) => self.fault.record_latency(&mq.broker_name, began.elapsed()),
            Err(_) => self.fault.record_failure(&mq.broker_name, began.elapsed()),
        }
        if let Some(ctx) = &ctx {
            (self.hooks.iter()).for_each(|hook| hook.after_oneway(ctx, written.as_ref().copied()));
        }
        written?;
        tracing::debug!(addr = %addr, topic = out.topic(), queue_id = mq.queue_id, "oneway send");
        Ok(())
    }

    /// The send header of `out` to `mq`.
    pub(crate) fn header(&self, out: &Outgoing, mq: &MessageQueue) -> SendMessageRequestHeader {
        SendMessageRequestHeader {
            producer_group: self.group().into(),
            topic: out.topic().into(),
            default_topic: AUTO_CREATE_TOPIC.into(),
            default_topic_queue_nums: self.options.default_topic_queue_nums,
            queue_id: mq.queue_id,
            sys_flag: out.sys_flag,
            born_timestamp: epoch_millis(SystemTime::now()),
            flag: out.message.flag,
            properties: Some(out.properties.clone()),
            reconsume_times: Some(out.reconsume_times.unwrap_or(0)),
            unit_mode: Some(false),
            max_reconsume_times: out.max_reconsume_times,
            batch: Some(out.batch),
            broker_name: Some(mq.broker_name.as_str().into()),
        }
    }
}

/// The error of a send whose budget ran out after `attempts` attempts.
fn timeout(out: &Outgoing, attempts: u32, budget: Budget) -> ClientError {
    ClientError::SendTimeout {
        topic: out.topic().to_owned(),
        after: budget.after,
        attempts,
    }
}

/// Whether a call failed for lack of time.
fn timed_out(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Remoting(RemotingError::Timeout { .. })
            | ClientError::Kernel(KernelError::Remoting(RemotingError::Timeout { .. }))
    )
}

fn no_route(topic: &str) -> ClientError {
    ClientError::NoRoute {
        topic: topic.to_owned(),
    }
}

/// For a `%RETRY%` topic, the reconsume count and maximum travel in the
/// header and leave the properties (as Java sends them).
fn take_retry_fields(msg: &mut Message) -> (Option<i32>, Option<i32>) {
    if !rocketmq_model::resource::is_retry_topic(&msg.topic) {
        return (None, None);
    }
    let mut take = |name: &str| {
        msg.properties
            .remove(name)
            .and_then(|v: String| v.trim().parse::<i32>().ok())
    };
    (
        take(property::RECONSUME_TIME),
        take(property::MAX_RECONSUME_TIMES),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use rocketmq_model::Properties;

    #[tokio::test]
    async fn a_batch_header_carries_wait_and_no_uniq_key() {
        let (lease, sender) = sender_in("", "batch_header").await;
        let msgs = vec![Message::new("T", "a"), Message::new("T", "b")];
        let out = sender.prepare_batch(msgs).unwrap();
        let header = Properties::parse(&out.properties);
        assert_eq!(header.get(property::WAIT), Some("true"));
        // A broker that appends the header's properties to each message
        // would give them all this key.
        assert_eq!(header.get(property::UNIQ_KEY), None);
        let message_keys = out.batch_ids.as_deref().unwrap();
        assert_eq!(message_keys.split(',').count(), 2);
        lease.release().await;
    }

    async fn sender_in(
        namespace: &str,
        instance: &str,
    ) -> (crate::instance::InstanceLease, Sender) {
        let mut config = ClientConfig::new(["127.0.0.1:1"]);
        config.instance_name = instance.into();
        config.client_ip = Some("10.0.0.1".parse().unwrap());
        let lease = ClientInstance::acquire(config).unwrap();
        let sender = Sender::new(
            ProducerOptions::default(),
            lease.instance(),
            Vec::new(),
            false,
            Namespace::new(namespace).unwrap(),
        );
        (lease, sender)
    }

    #[tokio::test]
    async fn a_namespaced_send_names_its_instance() {
        let (lease, sender) = sender_in("ns1", "instance_id").await;
        let out = sender.prepare(Message::new("T", "a")).unwrap();
        assert_eq!(out.topic(), "ns1%T");
        let properties = Properties::parse(&out.properties);
        assert_eq!(properties.get(property::INSTANCE_ID), Some("ns1"));
        let msgs = vec![Message::new("T", "a"), Message::new("T", "b")];
        let out = sender.prepare_batch(msgs).unwrap();
        let header = Properties::parse(&out.properties);
        assert_eq!(header.get(property::INSTANCE_ID), Some("ns1"));
        lease.release().await;

        let (lease, sender) = sender_in("", "no_instance_id").await;
        let out = sender.prepare(Message::new("T", "a")).unwrap();
        let properties = Properties::parse(&out.properties);
        assert_eq!(properties.get(property::INSTANCE_ID), None);
        lease.release().await;
    }

    #[tokio::test]
    async fn lmq_queues_may_not_name_a_path() {
        let (lease, sender) = sender_in("", "lmq_path").await;
        let lmq = |queues: &str| {
            Message::builder("T")
                .body("a")
                .property(property::INNER_MULTI_DISPATCH, queues)
                .build()
                .unwrap()
        };
        assert!(sender.prepare(lmq("%LMQ%1,%LMQ%2")).is_ok());
        let bad = format!("%LMQ%..{}x", std::path::MAIN_SEPARATOR);
        assert!(matches!(
            sender.prepare(lmq(&bad)),
            Err(ClientError::InvalidMessage(_))
        ));
        lease.release().await;
    }

    #[test]
    fn retry_fields_move_from_properties_to_the_header() {
        let mut retry = Message::new("%RETRY%cg", "b");
        retry
            .properties
            .insert(property::RECONSUME_TIME, "2")
            .unwrap();
        retry
            .properties
            .insert(property::MAX_RECONSUME_TIMES, "16")
            .unwrap();
        assert_eq!(take_retry_fields(&mut retry), (Some(2), Some(16)));
        assert!(retry.property(property::RECONSUME_TIME).is_none());
        assert!(retry.property(property::MAX_RECONSUME_TIMES).is_none());

        let mut plain = Message::new("T", "b");
        plain
            .properties
            .insert(property::RECONSUME_TIME, "2")
            .unwrap();
        assert_eq!(take_retry_fields(&mut plain), (None, None));
        assert_eq!(plain.property(property::RECONSUME_TIME), Some("2"));
    }
}
