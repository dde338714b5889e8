//! The instance's background tasks, each stopped by the instance's
//! cancellation token and awaited through its task tracker:
//!
//! - route refresh every `poll_name_server_interval` and on demand (a
//!   route found new or changed, by this task or any other lookup,
//!   rebalances the consumers of its topic);
//! - heartbeat every `heartbeat_broker_interval`, the first right away, and
//!   on demand (a rebalance that changed a push consumer's queues);
//! - rebalance every `rebalance_interval` and on request
//!   (NOTIFY_CONSUMER_IDS_CHANGED, a new consumer);
//! - offset persistence every `persist_consumer_offset_interval`.
//!
//! (Push consumers look for expired messages on a timer of their own, every
//! `consume_timeout`.)

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use rocketmq_kernel::KernelError;
use rocketmq_kernel::wait::{self, deadline_after};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::{ClientInstance, GroupSet, Inner, heartbeat, lock};

/// Wake-ups of the on-demand tasks.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    pub(super) route_refresh: Notify,
    pub(super) heartbeat: Notify,
    rebalance: Notify,
    /// Groups to rebalance; `None` inside means every group.
    rebalance_pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    all: bool,
    groups: GroupSet,
}

impl Signals {
    pub(super) fn request_rebalance(&self, group: Option<&str>) {
        {
            let mut pending = lock(&self.rebalance_pending);
            match group {
                Some(group) => {
                    pending.groups.insert(group.to_owned());
                }
                None => pending.all = true,
            }
        }
        self.rebalance.notify_one();
    }

    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *lock(&self.rebalance_pending))
    }
}

/// Starts every task of `instance`.
pub(super) fn spawn_all(instance: &ClientInstance) {
    let config = instance.config().clone();
    let now = Instant::now();
    let routes =
        Schedule::new(now, config.poll_name_server_interval).on_demand(|s| &s.route_refresh);
    spawn_periodic(instance, "route refresh", routes, refresh_routes);
    let heartbeat =
        Schedule::new(now, config.heartbeat_broker_interval).on_demand(|s| &s.heartbeat);
    spawn_periodic(instance, "heartbeat", heartbeat, |i| async move {
        heartbeat::send_to_all(&i).await;
    });
    let period = config.rebalance_interval;
    spawn_periodic(
        instance,
        "rebalance",
        Schedule::new(deadline_after(now, period), period),
        |i| async move {
            i.request_rebalance(None);
        },
    );
    spawn_rebalancer(instance);
    let period = config.persist_consumer_offset_interval;
    spawn_periodic(
        instance,
        "offset persistence",
        Schedule::new(deadline_after(now, period), period),
        |i| async move {
            for consumer in i.consumers() {
                consumer.persist_offsets().await;
            }
        },
    );
}

/// When a periodic task runs.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    period: Duration,
    /// Also run when this signal fires.
    on_demand: Option<fn(&Signals) -> &Notify>,
}

impl Schedule {
    fn new(start: Instant, period: Duration) -> Self {
        Schedule {
            start,
            period: wait::period(period),
            on_demand: None,
        }
    }

    fn on_demand(mut self, signal: fn(&Signals) -> &Notify) -> Self {
        self.on_demand = Some(signal);
        self
    }
}

/// Runs `work` on `schedule` until the instance is cancelled.
fn spawn_periodic<W, F>(instance: &ClientInstance, name: &'static str, schedule: Schedule, work: W)
where
    W: Fn(ClientInstance) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let me = instance.clone();
    let cancel = instance.cancellation_token().clone();
    instance.task_tracker().spawn(async move {
        let mut ticks = interval_at(schedule.start, schedule.period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let woken = async {
                match schedule.on_demand {
                    Some(signal) => signal(&me.inner().signals).notified().await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {}
                () = woken => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = work(me.clone()) => {}
            }
        }
        tracing::debug!(task = name, "instance task stopped");
    });
}

/// Rebalances the groups requested, as requests arrive.
fn spawn_rebalancer(instance: &ClientInstance) {
    let me = instance.clone();
    let cancel = instance.cancellation_token().clone();
    instance.task_tracker().spawn(async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = me.inner().signals.rebalance.notified() => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = rebalance_pending(&me) => {}
            }
        }
    });
}

async fn rebalance_pending(instance: &ClientInstance) {
    let pending = instance.inner().signals.take_pending();
    for consumer in instance.consumers() {
        if pending.all || pending.groups.contains(consumer.group()) {
            tracing::debug!(group = consumer.group(), "rebalance");
            consumer.rebalance().await;
        }
    }
}

/// Refreshes the route of every known topic and every consumer's topics
/// (the consumers of a topic whose route changed are rebalanced by
/// [`rebalance_readers`]).
async fn refresh_routes(instance: ClientInstance) {
    let mut topics: BTreeSet<String> = instance.routes().table().topics().into_iter().collect();
    for consumer in instance.consumers() {
        topics.extend(consumer.subscribed_topics());
    }
    let mut failed = Vec::new();
    for topic in topics {
        match instance.routes().refresh(&topic).await {
            Ok(true) => tracing::info!(%topic, "route changed"),
            Ok(false) => tracing::debug!(%topic, "route unchanged"),
            // A topic the nameservers do not know is no outage.
            Err(KernelError::NoRoute { .. }) => tracing::debug!(%topic, "no route"),
            Err(error) => {
                tracing::debug!(%topic, %error, "route refresh failed");
                failed.push((topic, error));
            }
        }
    }
    // One line a round however many topics failed: a nameserver outage
    // is seen without every topic writing its own line.
    if let Some((topic, error)) = failed.first() {
        tracing::warn!(failed = failed.len(), first = %topic, %error, "route refresh failed");
    }
}

/// What the route table calls when a lookup finds a topic's route new or
/// changed, whichever task looked: the consumers of that topic rebalance
/// (a topic created after its consumers started, a broker added).
pub(super) fn rebalance_readers(instance: Weak<Inner>) -> impl Fn(&str) + Send + Sync + 'static {
    move |topic| {
        let Some(inner) = instance.upgrade() else {
            return;
        };
        let instance = ClientInstance { inner };
        for consumer in instance.consumers() {
            if consumer.subscribed_topics().iter().any(|t| t == topic) {
                instance.request_rebalance(Some(consumer.group()));
            }
        }
    }
}
