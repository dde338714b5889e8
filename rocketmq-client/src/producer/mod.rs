//! Producers: [`Producer`] (sync, async, oneway, batch, ordered sends) and
//! [`TransactionProducer`], their builder, results and hooks.

mod accumulate;
mod builder;
mod hook;
mod recall;
mod request;
mod result;
mod send;
mod transaction;
mod wire_body;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_kernel::QueueSelector;
use rocketmq_model::{Message, MessageQueue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

pub use builder::{DEFAULT_PRODUCER_GROUP, ProducerBuilder, ProducerOptions};
pub use hook::{SendContext, SendHook};
pub use request::{REPLY_TOPIC_SUFFIX, create_reply_message};
pub use result::{SendResult, SendStatus};
pub use transaction::{
    LocalTransactionState, TransactionListener, TransactionProducer, TransactionSendResult,
};

use accumulate::{Accumulator, Held, Mode};
use send::{InNamespace, Outgoing, Route, Sender};

use crate::admin::Admin;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, InstanceLease, ProducerHandle};
use crate::panic_text::panic_text;
use crate::trace::{Side, TraceSendHook, Tracer};

/// Sends messages. Built started by [`Producer::builder`]; every send takes
/// `&self`, so one producer serves many tasks (share it in an `Arc`).
/// Call [`shutdown`](Self::shutdown) when done: it waits for asynchronous
/// sends, unregisters the group from the brokers and releases the client
/// instance.
pub struct Producer {
    sender: Arc<Sender>,
    lease: Option<InstanceLease>,
    async_slots: Arc<Semaphore>,
    /// Body bytes of the async sends in flight, one permit a byte.
    async_bytes: Arc<Semaphore>,
    async_sends: TaskTracker,
    /// The open automatic batches, with `auto_batch`.
    batches: Option<Arc<Accumulator>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("options", &self.sender.options)
            .field("client_id", &self.sender.instance.client_id())
            .finish_non_exhaustive()
    }
}

/// The producer as its client instance sees it.
struct PlainProducer {
    group: String,
}

#[async_trait]
impl ProducerHandle for PlainProducer {
    fn group(&self) -> &str {
        &self.group
    }
}

impl Producer {
    /// A builder with Java's `DefaultMQProducer` defaults.
    pub fn builder() -> ProducerBuilder {
        ProducerBuilder::default()
    }

    async fn start(builder: ProducerBuilder) -> Result<Producer> {
        let ProducerBuilder {
            options,
            config,
            hooks,
        } = builder;
        validate_options(&options)?;
        let make_handle = |sender: &Arc<Sender>| -> Arc<dyn ProducerHandle> {
            Arc::new(PlainProducer {
                group: sender.group().to_owned(),
            })
        };
        let (lease, sender) = register(options, config, hooks, make_handle, false).await?;
        let slots = (sender.options.max_in_flight_async_sends).clamp(1, Semaphore::MAX_PERMITS);
        let bytes = async_byte_permits(&sender.options);
        Ok(Producer {
            batches: Accumulator::for_sender(&sender),
            sender,
            lease: Some(lease),
            async_slots: Arc::new(Semaphore::new(slots)),
            async_bytes: Arc::new(Semaphore::new(bytes)),
            async_sends: TaskTracker::new(),
        })
    }

    /// The producer's settings (its group as the brokers know it: in the
    /// namespace, if the producer has one).
    pub fn options(&self) -> &ProducerOptions {
        &self.sender.options
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

    /// The queues of `topic` a send may go to, from a route asked of the
    /// nameserver now (Java's `fetchPublishMessageQueues`), e.g. for
    /// [`send_to_queue`](Self::send_to_queue).
    pub async fn fetch_publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.admin().publish_queues(topic).await
    }

    /// Sends `msg` and waits for the broker: a queue chosen round robin
    /// (avoiding isolated brokers when fault avoidance is on), retried up to
    /// `retry_times_when_send_failed` times on another broker after a
    /// retriable failure, all within `send_msg_timeout`. A message with a
    /// sharding key goes to the queue of its key instead, once; so it does
    /// with every send mode (async, oneway, request, transactional).
    ///
    /// With [`auto_batch`](ProducerBuilder::auto_batch), the message may
    /// wait up to `batch_max_delay` for others to go with it.
    pub async fn send(&self, msg: Message) -> Result<SendResult> {
        if let Some(batches) = &self.batches {
            // Boxed: the usual path's future stays as small as it was.
            return Box::pin(self.send_batched(batches, msg, None)).await;
        }
        let out = self.sender.prepare(msg)?;
        self.sender.send(&out, self.sender.sync_route()).await
    }

    /// A sync send (to `mq`, if given) with automatic batching on: in a
    /// batch, or alone when the message may not go in one.
    async fn send_batched(
        &self,
        batches: &Arc<Accumulator>,
        msg: Message,
        mq: Option<&MessageQueue>,
    ) -> Result<SendResult> {
        let msg = match self.batch(batches, msg, mq, Mode::Sync)? {
            Held::Waiting(result) => return batched(result).await,
            Held::Declined(msg) => msg,
        };
        let out = self.sender.prepare(msg)?;
        match mq {
            Some(mq) => self.send_prepared_to_queue(&out, mq).await,
            None => self.sender.send(&out, self.sender.sync_route()).await,
        }
    }

    /// Puts `msg` (to `queue`, as the application names it) in an
    /// automatic batch when it may go in one.
    fn batch(
        &self,
        batches: &Arc<Accumulator>,
        msg: Message,
        queue: Option<&MessageQueue>,
        mode: Mode,
    ) -> Result<Held> {
        let queue = match queue {
            Some(mq) => Some(self.queue_for(&self.sender.namespace.wrap(&msg.topic), mq)?),
            None => None,
        };
        batches.hold(msg, queue, mode)
    }

    /// Starts sending `msg` and returns a handle resolving to the result.
    /// Waits only while `max_in_flight_async_sends` sends, or
    /// `max_in_flight_async_bytes` of bodies, are in flight (back-pressure;
    /// it never fails for lack of room). The send runs
    /// whether or not the handle is awaited, with
    /// `retry_times_when_send_async_failed` retries when a request or its
    /// answer is lost (a broker's refusal, SYSTEM_BUSY say, is the answer, as
    /// in Java's async sends).
    pub async fn send_async(&self, msg: Message) -> Result<SendHandle> {
        self.start_async(msg, None).await
    }

    /// [`send_async`](Self::send_async) to `mq`, once (Java's
    /// `send(msg, mq, callback)`).
    pub async fn send_async_to_queue(&self, msg: Message, mq: &MessageQueue) -> Result<SendHandle> {
        self.start_async(msg, Some(mq)).await
    }

    /// Starts the async send of `msg`, round robin or to `mq`, in an
    /// automatic batch or alone, once there is room for it.
    async fn start_async(&self, msg: Message, mq: Option<&MessageQueue>) -> Result<SendHandle> {
        let (msg, permits) = if let Some(batches) = &self.batches {
            // Room first: a message put in a batch is on its way.
            let permits = self.async_permits(msg.body.len()).await?;
            match self.batch(batches, msg, mq, Mode::Async)? {
                Held::Waiting(result) => return Ok(self.spawn_async(permits, batched(result))),
                Held::Declined(msg) => (msg, Some(permits)),
            }
        } else {
            (msg, None)
        };
        let out = self.sender.prepare(msg)?;
        let queue = mq.map(|mq| self.queue_for(out.topic(), mq)).transpose()?;
        self.start_prepared_async(out, queue, permits).await
    }

    /// Starts the async send of `out` alone, round robin or to `queue` (in
    /// the namespace), with `permits` or once there is room for it.
    async fn start_prepared_async(
        &self,
        out: Outgoing,
        queue: Option<MessageQueue>,
        permits: Option<AsyncPermits>,
    ) -> Result<SendHandle> {
        let permits = match permits {
            Some(permits) => permits,
            None => self.async_permits(out.message.body.len()).await?,
        };
        let sender = self.sender.clone();
        Ok(self.spawn_async(permits, async move {
            match &queue {
                Some(mq) => sender.send(&out, Route::Queue(mq)).await,
                None => sender.send(&out, sender.async_route()).await,
            }
        }))
    }

    /// Runs an async send, holding its permits until it is done.
    fn spawn_async(
        &self,
        permits: AsyncPermits,
        send: impl Future<Output = Result<SendResult>> + Send + 'static,
    ) -> SendHandle {
        let task = self.async_sends.spawn(async move {
            let _permits = permits;
            send.await
        });
        SendHandle { task }
    }

    /// A slot and `body` byte permits for an async send, waited for.
    async fn async_permits(&self, body: usize) -> Result<AsyncPermits> {
        let closed = |_| ClientError::Shutdown("producer");
        let permit = self
            .async_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(closed)?;
        let total = async_byte_permits(&self.sender.options);
        // At least one (an empty batch body), at most all of them (a body
        // larger than the limit goes alone).
        let bytes = u32::try_from(body.clamp(1, total)).unwrap_or(u32::MAX);
        let bytes = self
            .async_bytes
            .clone()
            .acquire_many_owned(bytes)
            .await
            .map_err(closed)?;
        Ok((permit, bytes))
    }

    /// Sends `msg` without waiting for the broker's answer: done once
    /// written. No retry.
    pub async fn send_oneway(&self, msg: Message) -> Result<()> {
        let out = self.sender.prepare(msg)?;
        self.sender.send_oneway(&out, None).await
    }

    /// [`send_oneway`](Self::send_oneway) to `mq` (Java's
    /// `sendOneway(msg, mq)`).
    pub async fn send_oneway_to_queue(&self, msg: Message, mq: &MessageQueue) -> Result<()> {
        let out = self.sender.prepare(msg)?;
        let mq = self.queue_for(out.topic(), mq)?;
        self.sender.send_oneway(&out, Some(&mq)).await
    }

    /// Sends several messages of one topic as one SEND_BATCH_MESSAGE (Java's
    /// rules: same topic and WAIT, no delay, no retry topic); every message
    /// gets its UNIQ_KEY; batches are not compressed.
    pub async fn send_batch(&self, msgs: Vec<Message>) -> Result<SendResult> {
        let out = self.sender.prepare_batch(msgs)?;
        self.sender.send(&out, self.sender.sync_route()).await
    }

    /// Sends `msg` to `mq`, once.
    pub async fn send_to_queue(&self, msg: Message, mq: &MessageQueue) -> Result<SendResult> {
        if let Some(batches) = &self.batches {
            return Box::pin(self.send_batched(batches, msg, Some(mq))).await;
        }
        let out = self.sender.prepare(msg)?;
        self.send_prepared_to_queue(&out, mq).await
    }

    /// Sends `msgs` as one batch to `mq`, once (Java's `send(msgs, mq)`):
    /// stored in that queue one after another, e.g. an order's events.
    pub async fn send_batch_to_queue(
        &self,
        msgs: Vec<Message>,
        mq: &MessageQueue,
    ) -> Result<SendResult> {
        let out = self.sender.prepare_batch(msgs)?;
        self.send_prepared_to_queue(&out, mq).await
    }

    async fn send_prepared_to_queue(
        &self,
        out: &Outgoing,
        mq: &MessageQueue,
    ) -> Result<SendResult> {
        let mq = self.queue_for(out.topic(), mq)?;
        self.sender.send(out, Route::Queue(&mq)).await
    }

    /// `mq` in the producer's namespace, if a message to `topic` (in the
    /// namespace too) may go there.
    fn queue_for(&self, topic: &str, mq: &MessageQueue) -> Result<MessageQueue> {
        let namespace = &self.sender.namespace;
        let mq = namespace.wrap_queue(mq);
        if topic != mq.topic {
            // Named as the application names them.
            return Err(ClientError::InvalidMessage(format!(
                "message topic {} differs from queue topic {}",
                namespace.unwrap(topic),
                namespace.unwrap(&mq.topic)
            )));
        }
        Ok(mq.into_owned())
    }

    /// `selector` shown the queues and messages as the application names
    /// them.
    fn in_namespace<'a>(&'a self, selector: &'a dyn QueueSelector) -> InNamespace<'a> {
        InNamespace {
            selector,
            namespace: &self.sender.namespace,
        }
    }

    /// Sends `msg` to the queue `selector` chooses among the topic's publish
    /// queues, once (no retry on another queue, which would break order).
    /// The selector sees the queues and the message as the application
    /// names them, out of the producer's namespace if it has one (as Java's
    /// selectors do). Java's `arg` is whatever the selector captures, e.g.
    /// `SelectByKey(order_id)`.
    pub async fn send_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
    ) -> Result<SendResult> {
        if let Some(batches) = &self.batches {
            let batched = async {
                let (msg, mq) = self.ready_and_select(msg, selector).await?;
                self.send_batched(batches, msg, Some(&mq)).await
            };
            return Box::pin(batched).await;
        }
        let out = self.sender.prepare(msg)?;
        let selector = self.in_namespace(selector);
        self.sender.send(&out, Route::Selector(&selector)).await
    }

    /// With automatic batching, a send through a selector chooses its
    /// queue first, then goes in a batch to it (as Java's
    /// `send(msg, selector, arg)` with `autoBatch`): `msg` made ready and
    /// the queue `selector` chose (in the namespace).
    async fn ready_and_select(
        &self,
        mut msg: Message,
        selector: &dyn QueueSelector,
    ) -> Result<(Message, MessageQueue)> {
        self.sender.ready(&mut msg)?;
        let mq = (self.sender)
            .select(&msg, &self.in_namespace(selector))
            .await?;
        Ok((msg, mq))
    }

    /// [`send_async`](Self::send_async) to the queue `selector` chooses,
    /// once (Java's `send(msg, selector, arg, callback)`). The selector runs
    /// before this returns (looking the topic's route up first if need be),
    /// so it may borrow from the caller; its error, or a route that cannot
    /// be found, is this call's.
    pub async fn send_async_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
    ) -> Result<SendHandle> {
        if self.batches.is_some() {
            let (msg, mq) = self.ready_and_select(msg, selector).await?;
            return self.start_async(msg, Some(&mq)).await;
        }
        let out = self.sender.prepare(msg)?;
        let mq = self
            .sender
            .select(&out.message, &self.in_namespace(selector))
            .await?;
        self.start_prepared_async(out, Some(mq), None).await
    }

    /// [`send_oneway`](Self::send_oneway) to the queue `selector` chooses
    /// (Java's `sendOneway(msg, selector, arg)`).
    pub async fn send_oneway_with_selector(
        &self,
        msg: Message,
        selector: &dyn QueueSelector,
    ) -> Result<()> {
        let out = self.sender.prepare(msg)?;
        let mq = self
            .sender
            .select(&out.message, &self.in_namespace(selector))
            .await?;
        self.sender.send_oneway(&out, Some(&mq)).await
    }

    /// Stops the producer: waits for asynchronous sends in flight, forgets
    /// the group locally, sends UNREGISTER_CLIENT for it to every broker,
    /// then releases the client instance (the last user shuts it down);
    /// last, sends the message traces left (as Java stops its trace
    /// dispatcher last).
    pub async fn shutdown(mut self) {
        if let Some(batches) = &self.batches {
            batches.close().await;
        }
        self.async_sends.close();
        self.async_sends.wait().await;
        if let Some(lease) = self.lease.take() {
            unregister(&self.sender, lease).await;
        }
        self.sender.stop_tracing().await;
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.lease.is_some() {
            // Not shut down: what waits in a batch goes now rather than
            // after its delay (an async send's handle may outlive the
            // producer); with the instance released it fails, as async
            // sends in flight do.
            if let (Some(batches), Ok(_)) = (&self.batches, tokio::runtime::Handle::try_current()) {
                batches.send_all_now();
            }
            self.sender
                .instance
                .unregister_producer(self.sender.group());
        }
    }
}

/// The permits of one async send in flight: a slot and its body's bytes.
type AsyncPermits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// The result of a message sent in an automatic batch.
async fn batched(result: oneshot::Receiver<Result<SendResult>>) -> Result<SendResult> {
    result
        .await
        .unwrap_or(Err(ClientError::Shutdown("producer")))
}

/// The outcome of [`Producer::send_async`]: a future of the send's result.
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct SendHandle {
    task: JoinHandle<Result<SendResult>>,
}

impl Future for SendHandle {
    type Output = Result<SendResult>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.task)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                Err(err) if err.is_panic() => Err(ClientError::Panicked {
                    what: "an asynchronous send",
                    message: panic_text(&*err.into_panic()),
                }),
                Err(_) => Err(ClientError::Shutdown("asynchronous send")),
            })
    }
}

fn validate_options(options: &ProducerOptions) -> Result<()> {
    crate::config::check_group("producer", &options.producer_group)?;
    if options.producer_group == DEFAULT_PRODUCER_GROUP {
        // Java refuses it for every producer: the broker checks a
        // transaction back with any producer of its group, and unrelated
        // applications left on the default would share one group there.
        return Err(ClientError::Config(format!(
            "the producer group can not be {DEFAULT_PRODUCER_GROUP}; name one with producer_group()"
        )));
    }
    if options.max_message_size == 0 {
        return Err(ClientError::Config(
            "max_message_size must be above zero".into(),
        ));
    }
    // Java's ranges for its `ProduceAccumulator`.
    let delay = options.batch_max_delay;
    if delay < Duration::from_millis(1) || delay > Duration::from_secs(30) {
        return Err(ClientError::Config(format!(
            "batch_max_delay must be between 1 ms and 30 s, not {delay:?}"
        )));
    }
    if !(1..=MAX_BATCH_BYTES).contains(&options.batch_max_bytes) {
        return Err(ClientError::Config(format!(
            "batch_max_bytes must be between 1 and {MAX_BATCH_BYTES}, not {}",
            options.batch_max_bytes
        )));
    }
    if options.total_batch_max_bytes == 0 {
        return Err(ClientError::Config(
            "total_batch_max_bytes must be above zero".into(),
        ));
    }
    Ok(())
}

/// Joins the client instance, registers `handle` and sends a first
/// heartbeat; undoes the lease when registration fails.
async fn register<H>(
    options: ProducerOptions,
    config: crate::config::ClientConfig,
    hooks: Vec<Arc<dyn SendHook>>,
    make_handle: H,
    heartbeat_first: bool,
) -> Result<(InstanceLease, Arc<Sender>)>
where
    H: FnOnce(&Arc<Sender>) -> Arc<dyn ProducerHandle>,
{
    let namespace = config.effective_namespace()?;
    let mut options = options;
    if let Cow::Owned(group) = namespace.wrap(&options.producer_group) {
        crate::config::check_group("producer", &group)?;
        options.producer_group = group;
    }
    let tracer = match options.enable_trace {
        true => {
            let topic = options.trace_topic.clone();
            let group = namespace.unwrap(&options.producer_group);
            Some(Tracer::start(&config, &group, Side::Produce, topic).await?)
        }
        false => None,
    };
    let mut hooks = hooks;
    if let Some(tracer) = &tracer {
        hooks.push(Arc::new(TraceSendHook {
            tracer: Arc::clone(tracer),
            namespace: namespace.clone(),
        }));
    }
    let lease = match ClientInstance::acquire(config) {
        Ok(lease) => lease,
        Err(error) => {
            if let Some(tracer) = &tracer {
                tracer.shutdown().await;
            }
            return Err(error);
        }
    };
    let mut sender = Sender::new(options, lease.instance(), hooks, heartbeat_first, namespace);
    sender.tracer = tracer;
    let sender = Arc::new(sender);
    let registration = match lease.register_producer_for_build(make_handle(&sender)) {
        Ok(registration) => registration,
        Err(error) => {
            lease.release().await;
            sender.stop_tracing().await;
            return Err(error);
        }
    };
    lease.send_heartbeat().await;
    registration.keep();
    Ok((lease, sender))
}

/// Forgets the group, unregisters it from every broker and releases the
/// instance.
async fn unregister(sender: &Sender, lease: InstanceLease) {
    let group = sender.group();
    lease.unregister_producer(group);
    lease
        .unregister_client(Some(group), None, sender.options.send_msg_timeout)
        .await;
    lease.release().await;
}

/// The byte permits of the async sends: `max_in_flight_async_bytes`, at
/// least 1 MiB (as Java raises `backPressureForAsyncSendSize` to it), at
/// most what one acquisition may take (`u32`).
fn async_byte_permits(options: &ProducerOptions) -> usize {
    (options.max_in_flight_async_bytes).clamp(MIN_ASYNC_BYTES, u32::MAX as usize)
}

/// The largest `batch_max_bytes` (Java's: 2 MiB).
const MAX_BATCH_BYTES: usize = 2 * 1024 * 1024;

/// The least `max_in_flight_async_bytes` (Java's floor).
const MIN_ASYNC_BYTES: usize = 1024 * 1024;
