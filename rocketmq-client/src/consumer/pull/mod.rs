//! [`PullConsumer`]: you ask for messages (`poll`, or a `Stream`); fetch
//! tasks keep a bounded buffer of each queue's next messages, pulled with
//! long polling, and offsets advance past what `poll` handed out when
//! committed (Java's `DefaultLitePullConsumer`).

mod builder;
mod core;
mod fetch;
mod queues;
mod rebalance;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::consume::{ConsumeHookContext, ConsumeOutcome};
use rocketmq_kernel::offset::ReadOffsetType;
use rocketmq_kernel::wait::deadline_after;
use rocketmq_model::header::BoundaryType;
use rocketmq_model::{MessageExt, MessageQueue, Namespace};
use tokio::sync::mpsc;

pub use self::builder::{
    DEFAULT_POLL_TIMEOUT, DEFAULT_PULL_THRESHOLD_FOR_ALL, PullConsumerBuilder,
};
use self::core::{Mode, PullCore};
use self::queues::Fetched;
pub use self::watch::QUEUE_CHECK_INTERVAL;
use super::report::ShutdownReport;
use super::shared::{
    OffsetsFileClaim, leave, persist_at_shutdown, shut_down_fully, user_queue_map, user_queues,
};
use crate::admin::Admin;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, ConsumerHandle, InstanceLease};

/// A pull consumer: subscribe (queues rebalanced among the group) or
/// assign queues, then `poll` or read [`stream`](Self::stream).
///
/// ```no_run
/// use std::time::Duration;
///
/// use rocketmq_client::ClientConfig;
/// use rocketmq_client::consumer::PullConsumer;
///
/// # async fn run() -> rocketmq_client::Result<()> {
/// let consumer = PullConsumer::builder("my-group", ClientConfig::new(["127.0.0.1:9876"]))
///     .subscribe("orders", "*")
///     .auto_commit(false)
///     .build()
///     .await?;
/// loop {
///     let msgs = consumer.poll(Duration::from_secs(1)).await?;
///     if msgs.is_empty() {
///         break;
///     }
///     for msg in &msgs {
///         println!("{} @ {}", msg.msg_id(), msg.queue_offset);
///     }
///     consumer.commit_sync().await?;
/// }
/// consumer.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct PullConsumer {
    core: Arc<PullCore>,
    receiver: tokio::sync::Mutex<mpsc::Receiver<Fetched>>,
    lease: Option<InstanceLease>,
    poll_timeout: Duration,
    /// The local offsets file (broadcasting), held by the handle rather
    /// than the core, which fetch tasks may hold a moment after a drop:
    /// a consumer built again at once must find the file free.
    offsets_file: Option<OffsetsFileClaim>,
}

impl fmt::Debug for PullConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullConsumer")
            .field("group", &self.core.group())
            .field("client_id", &self.core.client_id)
            .field("mode", &self.core.mode)
            .finish_non_exhaustive()
    }
}

impl PullConsumer {
    /// A builder for a consumer of `group` with the client settings
    /// `config`.
    pub fn builder(group: impl Into<String>, config: ClientConfig) -> PullConsumerBuilder {
        PullConsumerBuilder::new(group.into(), config)
    }

    fn new(
        core: Arc<PullCore>,
        receiver: mpsc::Receiver<Fetched>,
        lease: InstanceLease,
        poll_timeout: Duration,
        offsets_file: Option<OffsetsFileClaim>,
    ) -> Self {
        PullConsumer {
            core,
            receiver: tokio::sync::Mutex::new(receiver),
            lease: Some(lease),
            poll_timeout,
            offsets_file,
        }
    }

    /// The consumer group, as the brokers know it (in the namespace, if
    /// the consumer has one).
    pub fn group(&self) -> &str {
        self.core.group()
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.core.client_id
    }

    /// The next messages of one queue, waiting up to `timeout` for some;
    /// empty when none came. With auto commit, what earlier polls handed
    /// out is committed first (and only then: Java's lite pull consumer
    /// commits in `poll` alone, so a batch still being processed is never
    /// committed behind the application's back).
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageExt>> {
        let Some(batch) = self.poll_batch(timeout).await? else {
            return Ok(Vec::new());
        };
        self.run_hooks(&batch.mq, &batch.msgs);
        Ok(batch.msgs)
    }

    /// [`poll`](Self::poll), keeping the batch's queue and position, and
    /// without the consume hooks: the caller runs them on what it hands
    /// out (a stream, one message at a time as it yields them).
    async fn poll_batch(&self, timeout: Duration) -> Result<Option<Fetched>> {
        if self.core.cancel.is_cancelled() {
            return Err(ClientError::Shutdown("pull consumer"));
        }
        if self.core.auto_commit {
            self.core.commit();
        }
        let deadline = deadline_after(tokio::time::Instant::now(), timeout);
        let mut receiver = self.receiver.lock().await;
        loop {
            let batch = match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Err(_elapsed) => return Ok(None),
                Ok(None) => return Err(ClientError::Shutdown("pull consumer")),
                Ok(Some(batch)) => batch,
            };
            if let Some(mut batch) = self.core.queues.accept(batch) {
                for msg in &mut batch.msgs {
                    self.namespace().unwrap_in_place(&mut msg.message.topic);
                }
                return Ok(Some(batch));
            }
        }
    }

    /// Tells the consume hooks that `msgs` of `mq` (in the namespace) were
    /// handed out: consumed, as far as they can know (Java's lite pull
    /// consumer says so too).
    fn run_hooks(&self, mq: &MessageQueue, msgs: &[MessageExt]) {
        let hooks = &self.core.hooks;
        if hooks.is_empty() {
            return;
        }
        let mq = self.namespace().unwrap_queue(mq);
        let ctx = ConsumeHookContext::new(self.core.group(), &mq, msgs);
        hooks
            .before(&ctx)
            .after(ConsumeOutcome::Success, Duration::ZERO);
    }

    /// [`poll`](Self::poll) with the builder's `poll_timeout`.
    pub async fn poll_default(&self) -> Result<Vec<MessageExt>> {
        self.poll(self.poll_timeout).await
    }

    /// The messages as a stream, polling with the builder's
    /// `poll_timeout` (an empty poll just polls again). It does not end by
    /// itself: stop reading it (e.g. `take`, or drop it) to stop. An error
    /// of `poll` is yielded once and ends it.
    ///
    /// A poll hands out a batch, which the stream yields one message at a
    /// time. A commit covers the messages the stream has yielded, not the
    /// rest of its batch. When the stream is dropped before the end of a
    /// batch, the messages it did not yield are given back: their queue is
    /// consumed only up to the first of them, which the next poll gets
    /// again (unless the queue was sought, paused or polled further since).
    /// The consume hooks (and message traces) hear of each message when the
    /// stream yields it, so a message given back is not reported twice.
    pub fn stream(&self) -> impl Stream<Item = Result<MessageExt>> + '_ {
        let unyielded = Unyielded::new(self);
        futures::stream::unfold((unyielded, false), |(mut unyielded, done)| async move {
            if done {
                return None;
            }
            loop {
                if let Some(msg) = unyielded.next() {
                    return Some((Ok(msg), (unyielded, false)));
                }
                match unyielded
                    .consumer
                    .poll_batch(unyielded.consumer.poll_timeout)
                    .await
                {
                    Ok(Some(batch)) => unyielded.start(batch),
                    Ok(None) => {}
                    Err(err) => return Some((Err(err), (unyielded, true))),
                }
            }
        })
    }

    /// Records what `poll` handed out as consumed (in memory; persisted
    /// within 5 s, or at once by [`commit_sync`](Self::commit_sync)).
    pub fn commit(&self) {
        self.core.commit();
    }

    /// Commits what `poll` handed out and persists it now.
    pub async fn commit_sync(&self) -> Result<()> {
        self.core.commit();
        Ok(self.core.store.persist_all().await?)
    }

    /// Commits what `poll` handed out of `queues` only (Java's
    /// `commit(Set<MessageQueue>, persist)`), e.g. once the application is
    /// done with those queues' messages while others are still in work;
    /// with `persist`, the queues' offsets are written to the store now,
    /// else within 5 s. Each queue must be read by this consumer
    /// ([`ClientError::NotAssigned`] otherwise, and nothing is committed).
    /// With auto commit on, the next `poll` commits every queue anyway.
    pub async fn commit_queues<'a>(
        &self,
        queues: impl IntoIterator<Item = &'a MessageQueue>,
        persist: bool,
    ) -> Result<()> {
        let namespace = self.namespace();
        let queues: BTreeSet<MessageQueue> = (queues.into_iter())
            .map(|mq| namespace.wrap_queue(mq).into_owned())
            .collect();
        self.core
            .commit_queues(&queues)
            .map_err(|mq| ClientError::NotAssigned(namespace.unwrap_queue(&mq).into_owned()))?;
        if persist {
            for mq in &queues {
                self.core.store.persist(mq).await?;
            }
        }
        Ok(())
    }

    /// Commits chosen offsets (per queue, the offset of the next message to
    /// read), for an application that finishes queues at its own pace (Java's
    /// `commit(offsets, persist)`); with `persist`, they are written to the
    /// store now, else within 5 s. Each queue must be read by this consumer
    /// ([`ClientError::NotAssigned`] otherwise, and nothing is committed),
    /// and each offset at least 0. With auto commit on, the next `poll`
    /// commits everything handed out again, so use this with
    /// `auto_commit(false)`.
    pub async fn commit_offsets(
        &self,
        offsets: impl IntoIterator<Item = (MessageQueue, i64)>,
        persist: bool,
    ) -> Result<()> {
        let offsets: BTreeMap<MessageQueue, i64> = offsets.into_iter().collect();
        if let Some((mq, offset)) = offsets.iter().find(|(_, offset)| **offset < 0) {
            return Err(ClientError::InvalidCall(format!(
                "offset {offset} of {mq} is negative"
            )));
        }
        let namespace = self.namespace();
        let offsets: BTreeMap<MessageQueue, i64> = (offsets.iter())
            .map(|(mq, offset)| (namespace.wrap_queue(mq).into_owned(), *offset))
            .collect();
        self.core
            .force_offsets(&offsets)
            .map_err(|mq| ClientError::NotAssigned(namespace.unwrap_queue(&mq).into_owned()))?;
        if persist {
            for mq in offsets.keys() {
                self.core.store.persist(mq).await?;
            }
        }
        Ok(())
    }

    /// The committed offsets (in memory).
    pub fn committed_offsets(&self) -> BTreeMap<MessageQueue, i64> {
        user_queue_map(self.namespace(), self.core.store.snapshot())
    }

    /// The committed offset of `mq` (in memory, else from the store).
    pub async fn committed(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        let mq = &*self.namespace().wrap_queue(mq);
        let store = &self.core.store;
        if let Some(offset) = store.read(mq, ReadOffsetType::Memory).await? {
            return Ok(Some(offset));
        }
        // Reading the store keeps the offset in memory, and everything in
        // memory is persisted: for a queue another member owns, that would
        // write this stale offset over the owner's every 5 s. No rebalance
        // may add the queue in between.
        let _no_reassigning = self.core.reassigning.lock().await;
        let stored = store.read(mq, ReadOffsetType::Store).await?;
        if !self.core.assigned().contains(mq) {
            store.remove(mq);
        }
        Ok(stored)
    }

    /// The queues read now.
    pub fn assignment(&self) -> BTreeSet<MessageQueue> {
        user_queues(self.namespace(), self.core.assigned())
    }

    /// The queues of `topic`, from a route asked of the nameserver now
    /// (Java's `fetchMessageQueues`): what to [`assign`](Self::assign).
    pub async fn fetch_message_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.admin().subscribe_queues(topic).await
    }

    /// The client instance the consumer uses (shared by the producers and
    /// consumers of the same client id).
    pub fn instance(&self) -> &ClientInstance {
        &self.core.instance
    }

    /// Admin calls through the consumer's connections, in its namespace
    /// (what Java's consumer offers as `MQAdmin`: offsets, message lookup,
    /// topic creation), e.g. [`Admin::consume_stats`] of its own group.
    pub fn admin(&self) -> Admin {
        let admin = self.core.instance.admin();
        admin.in_namespace(self.namespace().clone())
    }

    /// Replaces the nameservers this consumer asks for routes (Java's
    /// `updateNameServerAddress`), e.g. when a discovery service reports
    /// new ones: those of its client instance, so of every producer and
    /// consumer sharing it. Each entry may be a Java-style list,
    /// `"ns1:9876;ns2:9876"`. An error, and nothing changed, for a list
    /// without an address.
    pub fn update_namesrv_addrs<S: Into<String>>(
        &self,
        addrs: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        self.core.instance.update_namesrv_addrs(addrs)
    }

    /// The queues read now, in a receiver that changes whenever they do:
    /// after a rebalance gives this member other queues (Java's
    /// `MessageQueueListener` of `subscribe`), or an `assign`. Its
    /// `changed()` fails once the consumer has shut down and is gone.
    pub fn watch_assignment(&self) -> tokio::sync::watch::Receiver<BTreeSet<MessageQueue>> {
        self.core.assignment.subscribe()
    }

    /// Reads exactly `queues` from now on (assign mode only).
    pub async fn assign(&self, queues: impl IntoIterator<Item = MessageQueue>) -> Result<()> {
        self.require_mode(Mode::Assign, "assign")?;
        let namespace = self.namespace();
        let queues: BTreeSet<MessageQueue> = (queues.into_iter())
            .map(|mq| namespace.wrap_queue(&mq).into_owned())
            .collect();
        let mut new_topic = false;
        for mq in &queues {
            if self.core.subscriptions.get(&mq.topic).is_none() {
                let sub = super::MessageSelector::all().subscription(&mq.topic)?;
                self.core.subscriptions.insert(sub);
                new_topic = true;
            }
        }
        if new_topic {
            self.core.instance.send_heartbeat().await;
        }
        let _one_at_a_time = self.core.reassigning.lock().await;
        self.core.reassign(queues).await;
        Ok(())
    }

    /// Subscribes to another topic, or gives a topic another selector,
    /// while running (subscribe mode; Java's `subscribe` after `start`):
    /// the brokers learn it from a heartbeat sent now, and a rebalance
    /// gives this member its share of the topic's queues.
    pub async fn subscribe(
        &self,
        topic: impl Into<String>,
        selector: impl Into<super::MessageSelector>,
    ) -> Result<()> {
        self.require_mode(Mode::Subscribe, "subscribe")?;
        let topic = topic.into();
        if topic.is_empty() {
            // As Java's "Topic can not be null or empty".
            return Err(ClientError::InvalidCall("the topic is empty".into()));
        }
        let topic = self.namespace().wrap(&topic).into_owned();
        let subscription = selector.into().subscription(&topic)?;
        self.core.subscriptions.insert(subscription);
        self.core.instance.send_heartbeat().await;
        self.core.rebalance().await;
        Ok(())
    }

    /// Stops reading `topic` (subscribe mode; Java's `unsubscribe`): its
    /// queues are released and their committed offsets persisted; what
    /// was fetched of them and not polled is dropped.
    pub async fn unsubscribe(&self, topic: &str) -> Result<()> {
        self.require_mode(Mode::Subscribe, "unsubscribe")?;
        let topic = self.namespace().wrap(topic);
        self.core.subscriptions.remove(&topic);
        // The queues go first: their fetches have no subscription now.
        self.core.rebalance().await;
        self.core.instance.send_heartbeat().await;
        Ok(())
    }

    /// Refuses `call` unless the consumer was built in `mode` (Java's lite
    /// consumer does not mix subscribing and assigning either).
    fn require_mode(&self, mode: Mode, call: &str) -> Result<()> {
        if self.core.mode == mode {
            return Ok(());
        }
        let (built, now) = match mode {
            Mode::Assign => ("assign", "subscribes"),
            Mode::Subscribe => ("subscribe", "is assigned its queues"),
        };
        Err(ClientError::InvalidCall(format!(
            "{call} is for consumers built with {built}; this one {now}"
        )))
    }

    /// Runs a rebalance round now (subscribe mode).
    pub async fn rebalance(&self) {
        self.core.rebalance().await;
    }

    /// Continues `mq` at `offset`: what was buffered is dropped and the
    /// offset is committed. The queue's broker is asked for its bounds
    /// first, as Java's `seek` does: an offset outside them is
    /// [`ClientError::OffsetOutOfRange`], a queue not read by this consumer
    /// [`ClientError::NotAssigned`]. (To set an offset without asking the
    /// broker, e.g. one the application stored, use
    /// [`commit_offsets`](Self::commit_offsets) after assigning.)
    pub async fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        let user_mq = mq;
        let mq = &*self.namespace().wrap_queue(user_mq);
        if !self.core.assigned().contains(mq) {
            return Err(ClientError::NotAssigned(user_mq.clone()));
        }
        let addr = self.core.routes.master_addr(mq).await?;
        let api = self.core.api.as_ref();
        let (min, max) = tokio::try_join!(api.min_offset(&addr, mq), api.max_offset(&addr, mq))?;
        if !(min..=max).contains(&offset) {
            return Err(ClientError::OffsetOutOfRange {
                queue: user_mq.clone(),
                offset,
                min,
                max,
            });
        }
        self.seek_within(user_mq, offset)
    }

    /// Continues `mq` at its first stored message.
    pub async fn seek_to_begin(&self, mq: &MessageQueue) -> Result<()> {
        let wrapped = self.namespace().wrap_queue(mq);
        let addr = self.core.routes.master_addr(&wrapped).await?;
        let offset = self.core.api.min_offset(&addr, &wrapped).await?;
        self.seek_within(mq, offset)
    }

    /// Continues `mq` after its last stored message.
    pub async fn seek_to_end(&self, mq: &MessageQueue) -> Result<()> {
        let wrapped = self.namespace().wrap_queue(mq);
        let addr = self.core.routes.master_addr(&wrapped).await?;
        let offset = self.core.api.max_offset(&addr, &wrapped).await?;
        self.seek_within(mq, offset)
    }

    /// Continues `mq` at the first message stored at or after `time`.
    pub async fn seek_by_timestamp(&self, mq: &MessageQueue, time: SystemTime) -> Result<()> {
        let offset = self.offset_for_timestamp(mq, time).await?;
        self.seek_within(mq, offset)
    }

    /// The offset of the first message of `mq` stored at or after `time`,
    /// as its broker answers (Java's `offsetForTimestamp`). Any queue of
    /// the cluster, read by this consumer or not; nothing moves (see
    /// [`seek_by_timestamp`](Self::seek_by_timestamp) for that).
    pub async fn offset_for_timestamp(&self, mq: &MessageQueue, time: SystemTime) -> Result<i64> {
        let wrapped = self.namespace().wrap_queue(mq);
        let addr = self.core.routes.master_addr(&wrapped).await?;
        let api: &dyn BrokerApi = self.core.api.as_ref();
        Ok(api
            .search_offset(&addr, &wrapped, time, BoundaryType::Lower)
            .await?)
    }

    /// Seeks to an offset the broker gave for `mq` (as the application
    /// names it), so one within its bounds.
    fn seek_within(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        if self.core.seek(&self.namespace().wrap_queue(mq), offset) {
            Ok(())
        } else {
            Err(ClientError::NotAssigned(mq.clone()))
        }
    }

    /// Stops fetching `queues` and drops what they buffered; `poll`
    /// returns none of their messages until [`resume`](Self::resume).
    pub fn pause<'a>(&self, queues: impl IntoIterator<Item = &'a MessageQueue>) {
        for mq in queues {
            self.core.set_paused(&self.namespace().wrap_queue(mq), true);
        }
    }

    /// Resumes paused queues where `poll` left them.
    pub fn resume<'a>(&self, queues: impl IntoIterator<Item = &'a MessageQueue>) {
        for mq in queues {
            self.core
                .set_paused(&self.namespace().wrap_queue(mq), false);
        }
    }

    /// The namespace of the group and its topics.
    fn namespace(&self) -> &Namespace {
        &self.core.options.namespace
    }

    /// Stops the consumer: stops fetching; persists the committed offsets;
    /// unregisters the group; releases the client instance; sends the
    /// message traces still waiting (with tracing on). What the last
    /// poll handed out is not committed here, even with auto commit (as
    /// Java's): it may still be in processing. Call
    /// [`commit_sync`](Self::commit_sync) first once it is done, or it is
    /// delivered again.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let core = Arc::clone(&self.core);
        let lease = self.lease.take();
        let offsets_file = self.offsets_file.take();
        shut_down_fully(async move {
            let report = shut_down(core, lease).await;
            drop(offsets_file);
            report
        })
        .await
    }
}

/// The steps of [`PullConsumer::shutdown`], in their order.
async fn shut_down(core: Arc<PullCore>, lease: Option<InstanceLease>) -> ShutdownReport {
    let group = core.group().to_owned();
    let mut report = ShutdownReport::default();
    core.stop_fetching().await;
    report.messages_left = core.buffered();
    report.offsets_committed = user_queue_map(&core.options.namespace, core.store.snapshot());
    if let Err(err) = persist_at_shutdown(core.store.as_ref()).await {
        // The store logs each queue's failure at debug only (a periodic
        // round's caller reports it once): say it here, or a consumer whose
        // report is not read would lose its last offsets without a word.
        tracing::warn!(%group, error = %err, "persisting offsets at shutdown failed");
        report.errors.push(err.into());
    }
    leave(&core.instance, &group, lease).await;
    // Last, as for the push consumer: a slow trace topic holds back
    // neither the offsets nor the group's queues.
    if let Some(tracer) = &core.tracer {
        tracer.shutdown().await;
    }
    tracing::info!(%group, "pull consumer shut down");
    report
}

/// The stream's batch and what of it is still to be yielded; dropped with
/// the stream, it gives that back.
struct Unyielded<'a> {
    consumer: &'a PullConsumer,
    /// The batch being yielded (its messages moved to `rest`).
    batch: Option<Fetched>,
    /// Its messages not yet yielded, in offset order.
    rest: std::vec::IntoIter<MessageExt>,
}

impl<'a> Unyielded<'a> {
    fn new(consumer: &'a PullConsumer) -> Self {
        Unyielded {
            consumer,
            batch: None,
            rest: Vec::new().into_iter(),
        }
    }

    fn start(&mut self, mut batch: Fetched) {
        self.rest = std::mem::take(&mut batch.msgs).into_iter();
        self.batch = Some(batch);
    }

    /// The next message, and a commit from now on covers it (and no
    /// message after it). None once the batch is done, or no longer its
    /// queue's (paused, sought or released since: the queue goes on from
    /// where the stream stopped, or from where it was sought).
    fn next(&mut self) -> Option<MessageExt> {
        let batch = self.batch.as_ref()?;
        if !self.consumer.core.queues.is_current(batch) {
            self.batch = None;
            self.rest = Vec::new().into_iter();
            return None;
        }
        let msg = self.rest.next()?;
        let next = self.rest.as_slice().first().map(|m| m.queue_offset);
        self.consumer.core.queues.yielded_up_to(batch, next);
        // Handed out now: what the stream never yields goes back to its
        // queue, and the hooks hear of it when it is handed out again.
        self.consumer
            .run_hooks(&batch.mq, std::slice::from_ref(&msg));
        if next.is_none() {
            self.batch = None;
        }
        Some(msg)
    }
}

impl Drop for Unyielded<'_> {
    fn drop(&mut self) {
        let (Some(batch), Some(first)) = (&self.batch, self.rest.as_slice().first()) else {
            return;
        };
        let from = first.queue_offset;
        if self.consumer.core.queues.give_back(batch, from) {
            tracing::debug!(mq = %batch.mq, from, "stream dropped; unyielded messages given back");
        }
    }
}

impl Drop for PullConsumer {
    fn drop(&mut self) {
        if self.lease.is_some() {
            self.core.cancel.cancel();
            self.core.instance.unregister_consumer(self.core.group());
        }
    }
}
