//! [`PullConsumer`]: you ask for messages (`poll`, or a `Stream`); fetch
//! tasks keep a bounded buffer of each queue's next messages, pulled with
//! long polling, and offsets advance past what `poll` handed out when
//! committed (Java's `DefaultLitePullConsumer`).

mod builder;
mod core;
mod fetch;
mod queues;
mod rebalance;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use rocketmq_kernel::api::BrokerApi;
use rocketmq_kernel::offset::ReadOffsetType;
use rocketmq_model::header::BoundaryType;
use rocketmq_model::{MessageExt, MessageQueue};
use tokio::sync::mpsc;

pub use self::builder::{DEFAULT_POLL_TIMEOUT, PullConsumerBuilder};
use self::core::{Mode, PullCore};
use self::queues::Fetched;
use super::report::ShutdownReport;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ConsumerHandle, InstanceLease};

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
    ) -> Self {
        PullConsumer {
            core,
            receiver: tokio::sync::Mutex::new(receiver),
            lease: Some(lease),
            poll_timeout,
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        self.core.group()
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.core.client_id
    }

    /// The next messages of one queue, waiting up to `timeout` for some;
    /// empty when none came. With auto commit, what earlier polls handed
    /// out is committed first.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<MessageExt>> {
        if self.core.cancel.is_cancelled() {
            return Err(ClientError::Shutdown("pull consumer"));
        }
        if self.core.auto_commit {
            self.core.commit();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut receiver = self.receiver.lock().await;
        loop {
            let batch = match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Err(_elapsed) => return Ok(Vec::new()),
                Ok(None) => return Err(ClientError::Shutdown("pull consumer")),
                Ok(Some(batch)) => batch,
            };
            if let Some(msgs) = self.core.queues.accept(batch) {
                return Ok(msgs);
            }
        }
    }

    /// [`poll`](Self::poll) with the builder's `poll_timeout`.
    pub async fn poll_default(&self) -> Result<Vec<MessageExt>> {
        self.poll(self.poll_timeout).await
    }

    /// The messages as a stream, polling with the builder's
    /// `poll_timeout` (an empty poll just polls again). It does not end by
    /// itself: stop reading it (e.g. `take`, or drop it) to stop. An error
    /// of `poll` is yielded once and ends it.
    pub fn stream(&self) -> impl Stream<Item = Result<MessageExt>> + '_ {
        futures::stream::unfold(
            (self, VecDeque::new(), false),
            |(consumer, mut ready, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(msg) = ready.pop_front() {
                        return Some((Ok(msg), (consumer, ready, false)));
                    }
                    match consumer.poll(consumer.poll_timeout).await {
                        Ok(msgs) => ready.extend(msgs),
                        Err(err) => return Some((Err(err), (consumer, ready, true))),
                    }
                }
            },
        )
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

    /// The committed offsets (in memory).
    pub fn committed_offsets(&self) -> BTreeMap<MessageQueue, i64> {
        self.core.store.snapshot()
    }

    /// The committed offset of `mq` (in memory, else from the store).
    pub async fn committed(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        Ok(self
            .core
            .store
            .read(mq, ReadOffsetType::MemoryThenStore)
            .await?)
    }

    /// The queues read now.
    pub fn assignment(&self) -> BTreeSet<MessageQueue> {
        self.core.assigned()
    }

    /// Reads exactly `queues` from now on (assign mode only).
    pub async fn assign(&self, queues: impl IntoIterator<Item = MessageQueue>) -> Result<()> {
        if self.core.mode != Mode::Assign {
            return Err(ClientError::Config(
                "assign is for consumers built with assign".into(),
            ));
        }
        let queues: BTreeSet<MessageQueue> = queues.into_iter().collect();
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

    /// Runs a rebalance round now (subscribe mode).
    pub async fn rebalance(&self) {
        self.core.rebalance().await;
    }

    /// Continues `mq` at `offset`: what was buffered is dropped and the
    /// offset is committed. An error when `mq` is not read by this
    /// consumer.
    pub fn seek(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        if self.core.seek(mq, offset) {
            Ok(())
        } else {
            Err(ClientError::Config(format!(
                "{mq} is not assigned to this consumer"
            )))
        }
    }

    /// Continues `mq` at its first stored message.
    pub async fn seek_to_begin(&self, mq: &MessageQueue) -> Result<()> {
        let addr = self.core.routes.master_addr(mq).await?;
        let offset = self.core.api.min_offset(&addr, mq).await?;
        self.seek(mq, offset)
    }

    /// Continues `mq` after its last stored message.
    pub async fn seek_to_end(&self, mq: &MessageQueue) -> Result<()> {
        let addr = self.core.routes.master_addr(mq).await?;
        let offset = self.core.api.max_offset(&addr, mq).await?;
        self.seek(mq, offset)
    }

    /// Continues `mq` at the first message stored at or after `time`.
    pub async fn seek_by_timestamp(&self, mq: &MessageQueue, time: SystemTime) -> Result<()> {
        let addr = self.core.routes.master_addr(mq).await?;
        let api: &dyn BrokerApi = self.core.api.as_ref();
        let offset = api
            .search_offset(&addr, mq, time, BoundaryType::Lower)
            .await?;
        self.seek(mq, offset)
    }

    /// Stops fetching `queues` and drops what they buffered; `poll`
    /// returns none of their messages until [`resume`](Self::resume).
    pub fn pause<'a>(&self, queues: impl IntoIterator<Item = &'a MessageQueue>) {
        for mq in queues {
            self.core.set_paused(mq, true);
        }
    }

    /// Resumes paused queues where `poll` left them.
    pub fn resume<'a>(&self, queues: impl IntoIterator<Item = &'a MessageQueue>) {
        for mq in queues {
            self.core.set_paused(mq, false);
        }
    }

    /// Stops the consumer: stops fetching; with auto commit, commits what
    /// was handed out; persists the offsets; unregisters the group;
    /// releases the client instance.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let core = Arc::clone(&self.core);
        let group = core.group().to_owned();
        let mut report = ShutdownReport::default();
        core.stop_fetching().await;
        if core.auto_commit {
            core.commit();
        }
        report.messages_left = core.buffered();
        report.offsets_committed = core.store.snapshot();
        if let Err(err) = core.store.persist_all().await {
            report.errors.push(err.into());
        }
        core.instance.unregister_consumer(&group);
        let timeout = core.instance.config().request_timeout;
        core.instance
            .unregister_client(None, Some(&group), timeout)
            .await;
        if let Some(lease) = self.lease.take() {
            lease.release().await;
        }
        tracing::info!(%group, "pull consumer shut down");
        report
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
