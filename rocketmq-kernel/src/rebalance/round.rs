//! One rebalance round: per subscribed topic, gather the queues and the
//! group's client ids, allocate, and apply the difference to the
//! assignment (Java's `RebalanceImpl#doRebalance`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use rocketmq_model::MessageQueue;
use rocketmq_model::body::{MessageModel, MessageRequestMode, QueryAssignmentRequestBody};
use tokio::time::Instant;

use super::add_failures::AddFailure;
use super::assignment::Owned;
use super::lock;
use super::pop_retry;
use super::shared::Shared;
use super::start_offset::start_offset;
use crate::allocate::allocate_caught;
use crate::api::CallMode;
use crate::consumer_options::RETRY_TOPIC_PREFIX;
use crate::error::{KernelError, Result};
use crate::pop::PopQueue;
use crate::process_queue::ProcessQueue;

/// How long removing a dropped orderly queue waits for its consume lock
/// (a batch in progress) before trying again in the next round.
const CONSUME_LOCK_WAIT: Duration = Duration::from_millis(500);

/// A dropped orderly queue whose lock was not renewed for this long is
/// unlocked without waiting for its consume lock (Java's
/// `rocketmq.client.unlockDelayTimeMills`).
const UNLOCK_DELAY: Duration = Duration::from_secs(20);

/// What a round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundOutcome {
    /// False when a queue was not added because its broker lock was refused:
    /// the next round should come soon (Java rebalances again after 500 ms).
    pub(crate) all_locked: bool,
    /// False when a queue was not added because its start offset could not
    /// be computed: the next round should come soon too (Java 5 runs again
    /// after its 1 s `minInterval` when a round left the assignment short).
    pub(crate) all_added: bool,
}

/// Runs one round over every subscribed topic. The caller holds the
/// rebalance lock.
pub(crate) async fn run(shared: &Arc<Shared>) -> RoundOutcome {
    let mut changed = false;
    let mut changed_topics = Vec::new();
    let mut outcome = RoundOutcome {
        all_locked: true,
        all_added: true,
    };
    let topics = shared.topics();
    for topic in &topics {
        let allocation = if shared.broker_rebalances() {
            broker_assignment(shared, topic).await
        } else {
            allocation(shared, topic).await.map(Some)
        };
        match allocation {
            // The broker could not tell (it may not know this client yet):
            // the queues stay as they are, and the next round comes soon.
            Ok(None) => {
                tracing::debug!(group = %shared.options.group, %topic, "no assignment from the broker yet");
                // A retry topic may not exist yet; its next round can wait.
                outcome.all_added &= topic.starts_with(RETRY_TOPIC_PREFIX);
            }
            Ok(Some(allocated)) => {
                if pop_retry::follow(shared, topic, &allocated) {
                    shared.trigger.request();
                }
                let (topic_changed, topic_outcome) = apply(shared, topic, &allocated).await;
                if topic_changed {
                    changed = true;
                    changed_topics.push(topic.clone());
                }
                outcome.all_locked &= topic_outcome.all_locked;
                outcome.all_added &= topic_outcome.all_added;
            }
            Err(err) if topic.starts_with(RETRY_TOPIC_PREFIX) => {
                tracing::debug!(group = %shared.options.group, %topic, error = %err, "rebalance skipped the topic");
            }
            Err(err) => {
                tracing::warn!(group = %shared.options.group, %topic, error = %err, "rebalance skipped the topic");
            }
        }
    }
    let subscribed: BTreeSet<String> = topics.into_iter().collect();
    shared
        .add_failures
        .retain(|mq| subscribed.contains(&mq.topic));
    for mq in shared.assignment.outside(&subscribed) {
        changed |= remove_queue(shared, &mq).await;
    }
    if changed {
        shared.assignment_changed();
    }
    if let (Some(listener), false) = (&shared.on_change, changed_topics.is_empty()) {
        tracing::info!(group = %shared.options.group, topics = ?changed_topics, "rebalance changed the queues");
        listener(&changed_topics);
    }
    outcome
}

/// What the client reads of each queue it owns.
type Allocated = BTreeMap<MessageQueue, MessageRequestMode>;

/// The queues of `topic` this client should own, all pulled: all of them
/// when broadcasting, its share by the allocation strategy when clustering.
async fn allocation(shared: &Shared, topic: &str) -> Result<Allocated> {
    let pulled = |mq: &MessageQueue| (mq.clone(), MessageRequestMode::Pull);
    let queues = subscribe_queues(shared, topic).await?;
    if shared.options.message_model == MessageModel::Broadcasting {
        return Ok(queues.iter().map(pulled).collect());
    }
    let client_ids = consumer_ids(shared, topic).await?;
    // A panicking strategy skips the topic this round; its queues are kept.
    let own = allocate_caught(
        shared.strategy.as_ref(),
        &shared.options.group,
        &shared.client_id,
        &queues,
        &client_ids,
    )?;
    tracing::debug!(
        group = %shared.options.group,
        %topic,
        strategy = shared.strategy.name(),
        queues = queues.len(),
        clients = client_ids.len(),
        allocated = own.len(),
        "allocated"
    );
    Ok(own.iter().map(pulled).collect())
}

/// The queues of `topic` a broker of it assigns this client, and whether to
/// pull or pop each (QUERY_ASSIGNMENT, Java's `getRebalanceResultFromBroker`);
/// `None` when the broker could not tell. Assignments of another topic are
/// left out.
async fn broker_assignment(shared: &Shared, topic: &str) -> Result<Option<Allocated>> {
    let addr = any_broker_addr(shared, topic).await?;
    let body = QueryAssignmentRequestBody {
        client_id: shared.client_id.clone(),
        consumer_group: shared.options.group.clone(),
        message_model: shared.options.message_model,
        strategy_name: shared.strategy.name().to_owned(),
        topic: topic.to_owned(),
    };
    let Some(assignments) = shared.broker.query_assignment(&addr, body).await? else {
        return Ok(None);
    };
    let allocated: Allocated = assignments
        .into_iter()
        .filter_map(|assignment| Some((assignment.message_queue?, assignment.mode)))
        .filter(|(mq, _)| mq.topic == topic)
        .collect();
    tracing::debug!(
        group = %shared.options.group,
        %topic,
        %addr,
        pulled = allocated.values().filter(|mode| **mode == MessageRequestMode::Pull).count(),
        popped = allocated.values().filter(|mode| **mode == MessageRequestMode::Pop).count(),
        "assigned by the broker"
    );
    Ok(Some(allocated))
}

/// The readable queues of `topic` (§8.4), fetching its route when unknown.
async fn subscribe_queues(shared: &Shared, topic: &str) -> Result<Arc<[MessageQueue]>> {
    if let Some(queues) = shared.routes.table().subscribe_queues(topic) {
        return Ok(queues);
    }
    shared.routes.route(topic).await?;
    shared
        .routes
        .table()
        .subscribe_queues(topic)
        .ok_or_else(|| KernelError::NoRoute {
            topic: topic.to_owned(),
        })
}

/// The client ids of the group, asked of a broker serving `topic` (Java's
/// `findConsumerIdList`).
async fn consumer_ids(shared: &Shared, topic: &str) -> Result<Vec<String>> {
    let addr = any_broker_addr(shared, topic).await?;
    shared
        .broker
        .consumer_list(&addr, &shared.options.group)
        .await
}

/// A random broker of `topic`'s route, by its master when it has one.
async fn any_broker_addr(shared: &Shared, topic: &str) -> Result<String> {
    let route = shared.routes.route(topic).await?;
    let no_route = || KernelError::NoRoute {
        topic: topic.to_owned(),
    };
    if route.broker_datas.is_empty() {
        return Err(no_route());
    }
    let broker = &route.broker_datas[rand::rng().random_range(0..route.broker_datas.len())];
    broker
        .master_addr()
        .or_else(|| broker.broker_addrs.values().next().map(String::as_str))
        .map(str::to_owned)
        .ok_or_else(no_route)
}

/// Applies the allocation of `topic`: removes what is no longer (or no
/// longer properly) owned, adds what is new. Returns whether the assignment
/// changed, and what was not added.
async fn apply(shared: &Arc<Shared>, topic: &str, allocated: &Allocated) -> (bool, RoundOutcome) {
    let mut changed = false;
    for mq in shared.assignment.to_remove(topic, allocated) {
        changed |= remove_queue(shared, &mq).await;
    }
    shared
        .add_failures
        .retain(|mq| mq.topic != topic || allocated.contains_key(mq));
    let mut outcome = RoundOutcome {
        all_locked: true,
        all_added: true,
    };
    for (mq, mode) in allocated {
        if shared.assignment.contains(mq) {
            continue;
        }
        if *mode == MessageRequestMode::Pop {
            add_popped_queue(shared, mq);
            changed = true;
            continue;
        }
        match add_queue(shared, mq).await {
            Added::Yes => changed = true,
            Added::LockRefused => outcome.all_locked = false,
            Added::Failed => outcome.all_added = false,
        }
    }
    (changed, outcome)
}

/// Drops `mq`: marks its process queue dropped, stops its pull task, then
/// persists and forgets its offset (orderly: under its consume lock, then
/// unlocks it on the broker). Returns whether it left the table; a dropped
/// orderly queue whose batch is still being consumed stays, to be removed
/// in a later round.
///
/// Cancelled half way (a shutdown stops the round), the dropped queue goes
/// back into the table, so that the shutdown still persists its offset and
/// unlocks it: a queue in neither place would stay locked on the broker
/// until the lock expires, and its next owner would wait that long.
pub(crate) async fn remove_queue(shared: &Shared, mq: &MessageQueue) -> bool {
    let Some(owned) = shared.assignment.take(mq) else {
        return false;
    };
    owned.pq.mark_dropped();
    let mut removing = Removing {
        shared,
        mq,
        pq: Some(Arc::clone(&owned.pq)),
        popped: owned.popped.clone(),
    };
    // Without a pull task: a placeholder of a queue whose add was cut short
    // or whose lock request failed, never consumed here.
    let was_consumed = owned.pull.is_some();
    if let Some(pull) = owned.pull {
        pull.stop().await;
    }
    let removed = if owned.popped.is_some() {
        // The broker keeps a popped queue's offset.
        true
    } else if shared.locks_queues() {
        release_locked(shared, mq, &owned.pq).await
    } else {
        persist_and_forget(shared, mq).await;
        true
    };
    if removed {
        removing.pq = None;
        if was_consumed {
            tracing::info!(group = %shared.options.group, %mq, "queue removed");
        } else {
            tracing::debug!(group = %shared.options.group, %mq, "placeholder of a queue not added removed");
        }
    }
    removed
}

/// A queue being removed; unless defused (`pq` taken), put back into the
/// table, dropped and without a pull task, when it goes out of scope: a
/// removal that did not finish, or was refused because a batch is still
/// being consumed.
struct Removing<'a> {
    shared: &'a Shared,
    mq: &'a MessageQueue,
    pq: Option<Arc<ProcessQueue>>,
    popped: Option<Arc<PopQueue>>,
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        if let Some(pq) = self.pq.take() {
            self.shared.assignment.insert(
                self.mq.clone(),
                Owned {
                    pq,
                    pull: None,
                    popped: self.popped.take(),
                },
            );
        }
    }
}

/// Writes the offset of a dropped queue to the store, then removes it from
/// the store's memory so that nothing commits it afterwards.
async fn persist_and_forget(shared: &Shared, mq: &MessageQueue) {
    if let Err(err) = shared.store.persist(mq).await {
        tracing::warn!(group = %shared.options.group, %mq, error = %err, "persisting a removed queue's offset failed");
    }
    shared.store.remove(mq);
}

/// Orderly: waits briefly for the queue's consume lock (no batch in
/// progress), persists and forgets the offset and unlocks the queue on the
/// broker (oneway). False when a batch is still being consumed (Java's
/// `tryRemoveOrderMessageQueue`).
async fn release_locked(shared: &Shared, mq: &MessageQueue, pq: &ProcessQueue) -> bool {
    let force = Instant::now().saturating_duration_since(pq.last_lock_time()) > UNLOCK_DELAY;
    let _consuming = if force {
        None
    } else {
        match tokio::time::timeout(CONSUME_LOCK_WAIT, pq.consume_lock().lock()).await {
            Ok(guard) => Some(guard),
            Err(_) => {
                let tries = pq.record_unlock_attempt();
                tracing::info!(group = %shared.options.group, %mq, tries, "queue busy consuming; unlock later");
                return false;
            }
        }
    };
    persist_and_forget(shared, mq).await;
    pq.lock_lost();
    lock::unlock(
        shared,
        &mq.broker_name,
        BTreeSet::from([mq.clone()]),
        CallMode::Oneway,
    )
    .await;
    true
}

/// Adds `mq`, assigned by a broker in pop mode: a process queue (which
/// only says whether it was dropped) and a pop task. Nothing to lock or to
/// start from: the broker keeps the group's offset of a popped queue.
fn add_popped_queue(shared: &Arc<Shared>, mq: &MessageQueue) {
    let pq = Arc::new(ProcessQueue::new(Instant::now()));
    let popped = Arc::new(PopQueue::new());
    let pop = crate::pop::task::spawn(shared, mq.clone(), Arc::clone(&pq), Arc::clone(&popped));
    shared.assignment.insert(
        mq.clone(),
        Owned {
            pq,
            pull: Some(pop),
            popped: Some(popped),
        },
    );
    shared.add_failures.added(mq);
    tracing::info!(group = %shared.options.group, %mq, "queue added, to pop");
}

/// What adding a queue did.
enum Added {
    Yes,
    /// Orderly: the broker refused the lock; try again soon.
    LockRefused,
    /// The start offset could not be computed; try again soon.
    Failed,
}

/// Adds `mq`: locks it first (orderly), computes its start offset (after
/// removing any dirty offset from memory, as Java does), creates its process
/// queue and starts its pull task.
async fn add_queue(shared: &Arc<Shared>, mq: &MessageQueue) -> Added {
    let group = &shared.options.group;
    let mut locked = None;
    if shared.locks_queues() {
        // Armed before the request: the broker may grant the lock while the
        // add is cut short waiting for its answer.
        let guard = LockedForAdding {
            shared,
            mq,
            armed: true,
        };
        match lock::lock_one(shared, mq).await {
            Ok(true) => locked = Some(guard),
            Ok(false) => {
                guard.disarm();
                shared
                    .add_failures
                    .failed(group, mq, AddFailure::LockRefused, None);
                return Added::LockRefused;
            }
            Err(err) => {
                // A request whose answer was lost (e.g. timed out) may have
                // been granted: the guard, still armed, puts the queue into
                // the table dropped, so that the next round or the shutdown
                // unlocks it. One that never reached the broker, or that
                // the broker refused, holds nothing.
                if !lock::may_have_locked(&err) {
                    guard.disarm();
                }
                shared
                    .add_failures
                    .failed(group, mq, AddFailure::LockRequestFailed, Some(&err));
                return Added::LockRefused;
            }
        }
    }
    shared.store.remove(mq);
    let offset = match start_offset(
        mq,
        &shared.options,
        shared.store.as_ref(),
        shared.broker.as_ref(),
        &shared.routes,
    )
    .await
    {
        Ok(offset) => offset,
        Err(err) => {
            shared
                .add_failures
                .failed(group, mq, AddFailure::NoStartOffset, Some(&err));
            // The lock lapses on the broker unless the next round adds it.
            if let Some(locked) = locked {
                locked.disarm();
            }
            return Added::Failed;
        }
    };
    let now = Instant::now();
    let pq = Arc::new(ProcessQueue::new(now));
    // Java marks every new process queue locked (orderly broadcasting
    // consumers never lock on the broker).
    pq.lock_granted(now);
    let pull = crate::pull::spawn(shared, mq.clone(), Arc::clone(&pq), offset);
    shared.assignment.insert(
        mq.clone(),
        Owned {
            pq,
            pull: Some(pull),
            popped: None,
        },
    );
    if let Some(locked) = locked {
        locked.disarm();
    }
    match shared.add_failures.added(mq) {
        Some(failed) => {
            tracing::info!(%group, %mq, offset, failed_attempts = failed, "queue added")
        }
        None => tracing::info!(%group, %mq, offset, "queue added"),
    }
    Added::Yes
}

/// A queue locked (or being locked) on the broker for this client while it
/// is being added: if the add is cut short (a shutdown stopping the round
/// mid-way), the queue goes into the table dropped and without a pull task, as a [`Removing`]
/// queue does, so that the shutdown unlocks it rather than leaving its next
/// owner to wait for the broker's lock to expire.
struct LockedForAdding<'a> {
    shared: &'a Shared,
    mq: &'a MessageQueue,
    armed: bool,
}

impl LockedForAdding<'_> {
    /// The add went its way (done, or given up on with the lock left to
    /// lapse).
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for LockedForAdding<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let pq = Arc::new(ProcessQueue::new(Instant::now()));
        pq.mark_dropped();
        self.shared.assignment.insert(
            self.mq.clone(),
            Owned {
                pq,
                pull: None,
                popped: None,
            },
        );
    }
}
