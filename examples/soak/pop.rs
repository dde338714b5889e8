//! Pop mode (`--pop`): the group's members are [`SimpleConsumer`]s, each
//! run by a task of its own that receives (up to 32 messages, invisible for
//! [`INVISIBLE`], in [`LANES`] loops at once) and acknowledges what it
//! received, until it is asked to leave. Most receives are acknowledged with one `ack_batch`; every
//! [`ONE_BY_ONE_EVERY`]th one message by message with `ack`, and in every
//! [`CHANGE_EVERY`]th the first message has its invisible duration changed
//! before its acknowledgement, so that those paths run under the faults too.
//!
//! What a member leaves unacknowledged (a failed ack or change, or a batch
//! dropped when it leaves) comes back to the group when its invisible
//! duration ends; the ledger is told ([`Ledger::released`]), which is what
//! explains such a redelivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rocketmq_client::consumer::{
    ConsumeFromWhere, MessageSelector, ReceivedMessage, SimpleConsumer,
};
use rocketmq_client::{ClientConfig, ClientError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ledger::Ledger;

/// How long a received message stays invisible to the rest of the group:
/// short, so that what is left unacknowledged comes back within the run.
pub(crate) const INVISIBLE: Duration = Duration::from_secs(8);
/// How long a receive waits for messages to arrive.
const AWAIT: Duration = Duration::from_secs(1);
/// Messages asked for per receive (the most a broker gives).
const RECEIVE_MAX: usize = 32;
/// Receive loops per member. A receive pops from the subscribed brokers in
/// turn and waits up to [`AWAIT`] on one with nothing to pop, also while
/// another holds a backlog: one loop takes at most 32 messages per await
/// duration then.
const LANES: usize = 8;
/// Every this many receives with messages, they are acknowledged one by one.
const ONE_BY_ONE_EVERY: u64 = 10;
/// Every this many receives with messages, the first one's invisible
/// duration is changed before it is acknowledged.
const CHANGE_EVERY: u64 = 7;
/// The pause after a failed receive (its broker may be down).
const RECEIVE_PAUSE: Duration = Duration::from_millis(200);
/// Receives a member asked to drop what it holds makes, at most, when it
/// holds nothing (it was waiting between receives), to have something to
/// drop.
const DROP_TRIES: u32 = 3;

/// What a leaving member does with the messages of its last receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLeave {
    /// Acknowledges them.
    Ack,
    /// Drops them unacknowledged: they come back to the group after their
    /// invisible duration.
    Drop,
}

/// What the pop members did, counted over the run.
#[derive(Debug, Default)]
pub(crate) struct PopCounters {
    receives: AtomicU64,
    empty_receives: AtomicU64,
    receive_failures: AtomicU64,
    received: AtomicU64,
    batch_acks: AtomicU64,
    single_acks: AtomicU64,
    changes: AtomicU64,
    ack_failures: AtomicU64,
    change_failures: AtomicU64,
    dropped: AtomicU64,
}

/// [`PopCounters`] at the end of a run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PopFigures {
    /// Receives answered (with messages or without).
    pub(crate) receives: u64,
    /// Receives answered with no message.
    pub(crate) empty_receives: u64,
    /// Receives that failed (broker down, connection lost, answer lost).
    pub(crate) receive_failures: u64,
    /// Messages received.
    pub(crate) received: u64,
    /// `ack_batch` calls that succeeded.
    pub(crate) batch_acks: u64,
    /// `ack` calls that succeeded.
    pub(crate) single_acks: u64,
    /// `change_invisible_duration` calls that succeeded.
    pub(crate) changes: u64,
    /// Messages whose acknowledgement failed.
    pub(crate) ack_failures: u64,
    /// Messages whose change of invisible duration failed.
    pub(crate) change_failures: u64,
    /// Messages dropped unacknowledged by leaving members.
    pub(crate) dropped: u64,
    /// Messages left unacknowledged that were not delivered again (an
    /// acknowledgement that failed at the client may have reached the
    /// broker).
    pub(crate) released_not_returned: u64,
}

impl PopCounters {
    /// The counts so far; `released_not_returned` from the ledger.
    pub(crate) fn figures(&self, released_not_returned: u64) -> PopFigures {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        PopFigures {
            receives: get(&self.receives),
            empty_receives: get(&self.empty_receives),
            receive_failures: get(&self.receive_failures),
            received: get(&self.received),
            batch_acks: get(&self.batch_acks),
            single_acks: get(&self.single_acks),
            changes: get(&self.changes),
            ack_failures: get(&self.ack_failures),
            change_failures: get(&self.change_failures),
            dropped: get(&self.dropped),
            released_not_returned,
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// One member of the group in pop mode: its task owns the consumer.
pub(crate) struct PopMember {
    leave: watch::Sender<Option<OnLeave>>,
    task: JoinHandle<()>,
}

/// What a member needs besides its consumer.
struct Books {
    name: String,
    ledger: Arc<Ledger>,
    counters: Arc<PopCounters>,
}

impl PopMember {
    /// Starts the consumer `name` of `group` on `topic` and its task.
    pub(crate) async fn start(
        name: String,
        group: String,
        topic: String,
        config: ClientConfig,
        ledger: Arc<Ledger>,
        counters: Arc<PopCounters>,
    ) -> rocketmq_client::Result<Self> {
        let consumer = SimpleConsumer::builder(group, config)
            .subscribe(topic, MessageSelector::all())
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .await_duration(AWAIT)
            .build()
            .await?;
        let (leave, asked) = watch::channel(None);
        let books = Books {
            name,
            ledger,
            counters,
        };
        let task = tokio::spawn(member(consumer, books, asked));
        Ok(PopMember { leave, task })
    }

    /// Asks the member to leave (after its current receive, doing
    /// `on_leave` with what that received) and waits up to `limit` for its
    /// consumer to have shut down and its task to have ended; on an error
    /// the task is aborted.
    pub(crate) async fn stop(self, on_leave: OnLeave, limit: Duration) -> Result<(), String> {
        self.leave.send_replace(Some(on_leave));
        let abort = self.task.abort_handle();
        match tokio::time::timeout(limit, self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("its task failed: {err}")),
            Err(_) => {
                abort.abort();
                Err(format!("it did not leave within {limit:?}"))
            }
        }
    }
}

/// A member: [`LANES`] receive loops on its consumer, in its one task,
/// then the consumer's shutdown.
async fn member(consumer: SimpleConsumer, books: Books, asked: watch::Receiver<Option<OnLeave>>) {
    let turns = AtomicU64::new(0);
    let lanes = (0..LANES).map(|_| lane(&consumer, &books, &turns, asked.clone()));
    futures::future::join_all(lanes).await;
    consumer.shutdown().await;
}

/// One receive loop of a member: receive, record, acknowledge. Asked to
/// leave, it finishes its receive in flight and acknowledges what that
/// brought, or drops it; one asked to drop while it holds nothing (between
/// receives) receives again, up to [`DROP_TRIES`] times, so that the drop
/// path runs.
async fn lane(
    consumer: &SimpleConsumer,
    books: &Books,
    turns: &AtomicU64,
    mut asked: watch::Receiver<Option<OnLeave>>,
) {
    let counters = &*books.counters;
    let mut drop_tries = 0;
    loop {
        let leaving = *asked.borrow();
        match leaving {
            Some(OnLeave::Drop) if drop_tries < DROP_TRIES => drop_tries += 1,
            Some(_) => break,
            // A dropped sender (the member was never stopped) leaves too.
            None if asked.has_changed().is_err() => break,
            None => {}
        }
        let mut batch = match consumer.receive(RECEIVE_MAX, INVISIBLE).await {
            Ok(batch) => batch,
            Err(err) => {
                counters.receive_failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(member = %books.name, error = %err, "a receive failed");
                tokio::select! {
                    () = tokio::time::sleep(RECEIVE_PAUSE) => {}
                    _ = asked.changed() => {}
                }
                continue;
            }
        };
        counters.receives.fetch_add(1, Ordering::Relaxed);
        if batch.is_empty() {
            counters.empty_receives.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        add(&counters.received, batch.len());
        let popped = batch
            .iter()
            .map(|m| (m.message(), m.receipt_handle().pop_time));
        books.ledger.received(&books.name, popped);
        let leaving = *asked.borrow();
        if leaving == Some(OnLeave::Drop) {
            add(&counters.dropped, batch.len());
            books.ledger.released(
                format!(
                    "{} leaves dropping {} unacknowledged from {}",
                    books.name,
                    batch.len(),
                    broker(&batch)
                ),
                ids(&batch),
            );
            break;
        }
        let turn = turns.fetch_add(1, Ordering::Relaxed) + 1;
        acknowledge(consumer, books, turn, &mut batch).await;
        if leaving.is_some() {
            break;
        }
    }
}

/// Acknowledges one receive's messages (all from one broker): in one batch,
/// or every [`ONE_BY_ONE_EVERY`]th time one by one; every
/// [`CHANGE_EVERY`]th time the first message's invisible duration is
/// changed first. What fails is released to the ledger.
async fn acknowledge(
    consumer: &SimpleConsumer,
    books: &Books,
    turn: u64,
    batch: &mut [ReceivedMessage],
) {
    let counters = &*books.counters;
    let name = &books.name;
    let broker = broker(batch);
    if turn.is_multiple_of(CHANGE_EVERY) {
        if let Some(first) = batch.first_mut() {
            match consumer.change_invisible_duration(first, INVISIBLE).await {
                Ok(()) => add(&counters.changes, 1),
                Err(err) => {
                    add(&counters.change_failures, 1);
                    failed(books, "change of invisible duration", &err);
                    books.ledger.released(
                        format!("{name} change failed: 1 from {broker}"),
                        [first.message().msg_id().into_owned()],
                    );
                }
            }
        }
    }
    if turn.is_multiple_of(ONE_BY_ONE_EVERY) {
        let mut unacked = Vec::new();
        for received in batch.iter() {
            match consumer.ack(received).await {
                Ok(()) => add(&counters.single_acks, 1),
                Err(err) => {
                    failed(books, "ack", &err);
                    unacked.push(received.message().msg_id().into_owned());
                }
            }
        }
        if !unacked.is_empty() {
            add(&counters.ack_failures, unacked.len());
            books.ledger.released(
                format!(
                    "{name} ack failed: {} of {} from {broker}",
                    unacked.len(),
                    batch.len()
                ),
                unacked,
            );
        }
    } else {
        match consumer.ack_batch(batch).await {
            Ok(()) => add(&counters.batch_acks, 1),
            Err(err) => {
                failed(books, "batch ack", &err);
                add(&counters.ack_failures, batch.len());
                books.ledger.released(
                    format!("{name} batch ack failed: {} from {broker}", batch.len()),
                    ids(batch),
                );
            }
        }
    }
}

fn failed(books: &Books, what: &str, err: &ClientError) {
    tracing::warn!(member = %books.name, error = %err, "a {what} failed");
}

/// The broker a receive's messages came from.
fn broker(batch: &[ReceivedMessage]) -> String {
    batch
        .first()
        .map(|m| m.receipt_handle().broker_name.clone())
        .unwrap_or_default()
}

fn ids(batch: &[ReceivedMessage]) -> Vec<String> {
    batch
        .iter()
        .map(|m| m.message().msg_id().into_owned())
        .collect()
}
