//! The soak itself: producers send while consumers join and leave and a
//! broker is stopped and restarted, at points spread over the sends; then
//! every acknowledged message must have been consumed, a cleanly restarted
//! consumer must consume nothing twice, and no task may outlive shutdown.
//! The consumers are push consumers, with `--pop` simple (pop) consumers
//! ([`crate::pop`]), or with `--push-pop` push consumers the brokers tell
//! to pop ([`crate::push_pop`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rocketmq_client::consumer::{ConcurrentContext, ConcurrentResult, ConsumeFromWhere};
use rocketmq_client::{ClientConfig, Producer, PullConsumer, PushConsumer};
use rocketmq_model::header::CreateTopicRequestHeader;
use rocketmq_model::{Message, MessageExt, MessageQueue};
use tokio::runtime::Handle;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::faults::BrokerFaults;
use crate::ledger::{Attribution, FAULT_WINDOW, Ledger};
use crate::memory::{MemorySampler, status_kib};
use crate::mode::ConsumerMode;
use crate::outcome::Outcome;
use crate::pop::{OnLeave, PopCounters, PopMember};
use crate::push_pop::{self, KernelWarnings, PushPopBooks};

/// The shortest time a stopped broker stays down.
const MIN_DOWNTIME: Duration = Duration::from_secs(3);
/// The longest, unless the plan's shortest is longer: it restarts then even
/// when its share of the sends is not done (sends slow down while it is down).
const MAX_DOWNTIME: Duration = Duration::from_secs(10);
/// How long deliveries must pause before the run counts as settled.
const QUIET: Duration = Duration::from_secs(2);
/// How long a consumer or producer shutdown may take before it is a hang.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(60);
/// How often a run still waiting for messages says which queues each
/// consumer holds.
const STUCK_REPORT: Duration = Duration::from_secs(10);
/// Most missing messages looked up in the brokers' stores at a time.
const STORE_LOOKUPS: usize = 200;
/// How long tasks may take to end after everything was shut down.
const TASK_GRACE: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Nameserver addresses.
    pub(crate) namesrv: Vec<String>,
    /// The topic (created up front, or auto-created by the first send).
    pub(crate) topic: String,
    /// The consumer group.
    pub(crate) group: String,
    /// Messages in the main phase.
    pub(crate) messages: u64,
    /// Producers sending them.
    pub(crate) producers: usize,
    /// Sends in flight per producer.
    pub(crate) concurrency: usize,
    /// Body size in bytes.
    pub(crate) size: usize,
    /// Producers batch sends automatically.
    pub(crate) auto_batch: bool,
    /// Consumers taking part (one at the start, the others join).
    pub(crate) consumers: usize,
    /// The kind of consumers the group's members are.
    pub(crate) mode: ConsumerMode,
    /// Broker stop/restart cycles (0 without a broker to stop).
    pub(crate) restarts: usize,
    /// Messages of the clean-restart check.
    pub(crate) restart_check: u64,
    /// The bound on the whole run.
    pub(crate) time_limit: Duration,
    /// The cluster to create the topic on, on every master (a real cluster;
    /// `None`: the first send auto-creates it, on one broker).
    pub(crate) cluster: Option<String>,
    /// The shortest time a stopped broker stays down (at least
    /// [`MIN_DOWNTIME`]).
    pub(crate) min_downtime: Duration,
}

/// One step of the fault plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Join(usize),
    Leave(usize),
    StopBroker,
    RestartBroker,
}

/// The steps, in order: the other consumers join; then each broker cycle,
/// with consumer 0 leaving after the first and coming back after the
/// second; then the last consumer leaves.
fn schedule(consumers: usize, restarts: usize) -> Vec<Step> {
    let mut steps: Vec<Step> = (1..consumers).map(Step::Join).collect();
    let mut churn = vec![Step::Leave(0), Step::Join(0)].into_iter();
    for _ in 0..restarts {
        steps.extend([Step::StopBroker, Step::RestartBroker]);
        steps.extend(churn.next());
    }
    steps.extend(churn);
    if consumers > 1 {
        steps.push(Step::Leave(consumers - 1));
    }
    steps
}

/// A member of the group.
enum Member {
    Push(PushConsumer),
    Pop(PopMember),
}

/// The state the run shares with its producers and consumers.
struct Run {
    plan: Plan,
    ledger: Arc<Ledger>,
    /// What the pop members did (pop mode).
    pop: Arc<PopCounters>,
    /// The push pop members' books (push pop mode).
    push_pop: Option<Arc<PushPopBooks>>,
    /// Main-phase sends finished (acknowledged or failed).
    progress: AtomicU64,
    /// Cancelled when the time limit runs out.
    deadline: CancellationToken,
    started: Instant,
    outcome: std::sync::Mutex<Outcome>,
    /// The broker restarted last and when its start returned, until a send
    /// to it is acknowledged.
    awaiting_recovery: std::sync::Mutex<Option<(String, Instant)>>,
}

impl Run {
    fn note_hang(&self, what: String) {
        tracing::error!(%what, "shutdown hung");
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.hangs.push(what);
        }
    }

    fn note(&self, what: String) {
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.notes.push(what);
        }
    }

    fn note_unclean(&self, what: String) {
        if let Ok(mut outcome) = self.outcome.lock() {
            outcome.unclean_shutdowns.push(what);
        }
    }

    /// Starts timing the recovery of sends to `broker`, which serves again.
    fn await_recovery(&self, broker: String) {
        self.note_recovery_missed();
        if let Ok(mut awaiting) = self.awaiting_recovery.lock() {
            *awaiting = Some((broker, Instant::now()));
        }
    }

    /// Records the time since the restart of `broker` if a send to it was
    /// awaited.
    fn note_recovery(&self, broker: &str) {
        let recovered = self.awaiting_recovery.lock().ok().and_then(|mut awaiting| {
            awaiting
                .take_if(|(name, _)| name == broker)
                .map(|(name, since)| (name, since.elapsed()))
        });
        if let Some((name, took)) = recovered {
            if let Ok(mut outcome) = self.outcome.lock() {
                outcome.send_recoveries.push((name, Some(took)));
            }
        }
    }

    /// Records a restart after which no send to the broker was acknowledged.
    fn note_recovery_missed(&self) {
        let missed = self
            .awaiting_recovery
            .lock()
            .ok()
            .and_then(|mut awaiting| awaiting.take());
        if let (Some((name, _)), Ok(mut outcome)) = (missed, self.outcome.lock()) {
            outcome.send_recoveries.push((name, None));
        }
    }

    fn time_left(&self) -> Duration {
        self.plan.time_limit.saturating_sub(self.started.elapsed())
    }

    fn config(&self, name: &str) -> ClientConfig {
        let mut config = ClientConfig::new(self.plan.namesrv.clone());
        config.instance_name = format!("soak{}-{name}", std::process::id());
        config
    }

    fn message(&self, n: u64) -> Result<Message, rocketmq_model::ModelError> {
        let mut body = format!("soak-{n:010}-");
        let pad = self.plan.size.saturating_sub(body.len());
        body.extend(std::iter::repeat_n('x', pad));
        Message::builder(&self.plan.topic)
            .body(body)
            .tags("soak")
            .build()
    }

    async fn send(&self, producer: &Producer, n: u64) {
        let msg = match self.message(n) {
            Ok(msg) => msg,
            Err(err) => {
                tracing::error!(error = %err, "cannot build a message");
                self.ledger.send_failed();
                return;
            }
        };
        match producer.send(msg).await {
            Ok(result) => {
                self.note_recovery(&result.message_queue.broker_name);
                self.ledger.acked(result.msg_id);
            }
            Err(err) => {
                tracing::warn!(n, error = %err, "send failed");
                self.ledger.send_failed();
            }
        }
    }

    async fn start_consumer(&self, index: usize) -> rocketmq_client::Result<Member> {
        let name = format!("c{index}");
        let config = self.config(&name);
        let (group, topic) = (self.plan.group.clone(), self.plan.topic.clone());
        if let Some(books) = &self.push_pop {
            return push_pop::start(name, group, topic, config, Arc::clone(books))
                .await
                .map(Member::Push);
        }
        if self.plan.mode == ConsumerMode::Pop {
            return PopMember::start(
                name,
                group,
                topic,
                config,
                Arc::clone(&self.ledger),
                Arc::clone(&self.pop),
            )
            .await
            .map(Member::Pop);
        }
        let ledger = Arc::clone(&self.ledger);
        let listener_name = name.clone();
        PushConsumer::builder(group, config)
            .subscribe(topic, "*")
            .consume_from_where(ConsumeFromWhere::FirstOffset)
            .consume_concurrently(move |msgs: Vec<MessageExt>, _ctx: ConcurrentContext| {
                let ledger = Arc::clone(&ledger);
                let name = listener_name.clone();
                async move {
                    ledger.delivered(&name, &msgs);
                    ConcurrentResult::Success
                }
            })
            .build()
            .await
            .map(Member::Push)
    }

    /// Stops a member; a pop member does `on_leave` with what it holds; a
    /// push pop member's report tells its books what it left unsettled.
    async fn stop_consumer(&self, index: usize, member: Member, on_leave: OnLeave) {
        match member {
            Member::Push(consumer) => {
                let since = self.ledger.elapsed();
                match tokio::time::timeout(SHUTDOWN_LIMIT, consumer.shutdown()).await {
                    Ok(report) if report.is_clean() => {}
                    Ok(report) => {
                        if let Some(books) = &self.push_pop {
                            books.left(&format!("c{index}"), since, &report);
                        }
                        self.note_unclean(format!("c{index}: {report:?}"));
                    }
                    Err(_) => self.note_hang(format!("shutdown of consumer c{index}")),
                }
            }
            Member::Pop(member) => {
                if let Err(err) = member.stop(on_leave, SHUTDOWN_LIMIT).await {
                    self.note_hang(format!("shutdown of pop consumer c{index}: {err}"));
                }
            }
        }
    }

    /// Waits until `done` holds or the time limit runs out; answers `done`.
    async fn wait_for(&self, mut done: impl FnMut() -> bool) -> bool {
        while !done() {
            if self.deadline.is_cancelled() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits until no delivery happened for [`QUIET`] (or the time limit).
    async fn settle(&self) {
        let mut last = self.ledger.delivery_count();
        let mut quiet_since = Instant::now();
        while quiet_since.elapsed() < QUIET && !self.deadline.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.ledger.delivery_count();
            if now != last {
                last = now;
                quiet_since = Instant::now();
            }
        }
    }
}

/// Runs the soak on the current runtime (which should hold nothing else)
/// and answers what it found; in push pop mode the kernel's `warnings`
/// go to the run's books meanwhile.
pub(crate) async fn run(
    plan: Plan,
    faults: Option<BrokerFaults>,
    warnings: &KernelWarnings,
) -> Outcome {
    let sampler = MemorySampler::start();
    let attribution = match plan.mode.invisible() {
        Some(invisible) => Attribution::Releases { invisible },
        None => Attribution::LatestFault,
    };
    let ledger = Arc::new(Ledger::new(attribution));
    let push_pop = (plan.mode == ConsumerMode::PushPop)
        .then(|| Arc::new(PushPopBooks::new(Arc::clone(&ledger))));
    warnings.attach(push_pop.clone());
    let run = Arc::new(Run {
        ledger,
        pop: Arc::new(PopCounters::default()),
        push_pop,
        progress: AtomicU64::new(0),
        deadline: CancellationToken::new(),
        started: Instant::now(),
        outcome: std::sync::Mutex::new(Outcome::default()),
        awaiting_recovery: std::sync::Mutex::new(None),
        plan,
    });
    let watchdog = {
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(run.time_left()) => run.deadline.cancel(),
                () = run.deadline.cancelled() => {}
            }
        })
    };
    if let Err(err) = phases(&run, faults.as_ref()).await {
        tracing::error!(error = %err, "the soak could not run");
        if let Ok(mut outcome) = run.outcome.lock() {
            outcome.notes.push(format!("aborted: {err}"));
            outcome.aborted = true;
        }
    }
    run.note_recovery_missed();
    let timed_out = run.deadline.is_cancelled();
    run.deadline.cancel();
    if let Err(err) = watchdog.await {
        tracing::warn!(error = %err, "the watchdog failed");
    }
    let peak_rss_kib = sampler.stop().await;
    let tasks_alive = tasks_after_shutdown().await;
    let mut outcome = run
        .outcome
        .lock()
        .map(|mut o| std::mem::take(&mut *o))
        .unwrap_or_default();
    outcome.verdict = run.ledger.verdict();
    warnings.attach(None);
    if run.plan.mode == ConsumerMode::Pop {
        outcome.pop = Some(run.pop.figures(run.ledger.unreturned(None)));
    }
    outcome.push_pop = run.push_pop.as_ref().map(|books| books.figures());
    outcome.mode = run.plan.mode;
    outcome.faults = run.ledger.faults();
    outcome.timed_out = timed_out;
    outcome.peak_rss_kib = peak_rss_kib;
    outcome.hwm_kib = status_kib("VmHWM");
    outcome.tasks_alive = tasks_alive;
    outcome.run_time = run.started.elapsed();
    outcome.embedded_brokers = run.plan.cluster.is_none();
    if faults.is_none() && run.plan.restarts > 0 {
        outcome
            .notes
            .push("broker stop/restart skipped: a real cluster and no --broker-stop-cmd".into());
    }
    outcome
}

/// Tasks alive on the current runtime, after giving ending tasks a moment.
async fn tasks_after_shutdown() -> usize {
    let metrics = Handle::current().metrics();
    let until = Instant::now() + TASK_GRACE;
    while metrics.num_alive_tasks() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    metrics.num_alive_tasks()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The main phase, the clean-restart check and the shutdown of every client.
async fn phases(run: &Arc<Run>, faults: Option<&BrokerFaults>) -> Result<(), BoxError> {
    let mut producers = Vec::new();
    for i in 0..run.plan.producers.max(1) {
        let producer = Producer::builder()
            .client_config(run.config(&format!("p{i}")))
            .producer_group(format!("{}-producers", run.plan.group))
            .auto_batch(run.plan.auto_batch)
            .build()
            .await?;
        producers.push(Arc::new(producer));
    }
    if let Some(cluster) = &run.plan.cluster {
        create_topic(run, &producers[0], cluster).await;
    }
    // The first send creates the topic on a real cluster if it is not there
    // yet (auto-creation), so that consumers find its route when they start.
    run.send(&producers[0], u64::MAX).await;
    if run.plan.mode == ConsumerMode::PushPop {
        push_pop::switch_to_pop(&producers[0], &run.plan.topic, &run.plan.group).await?;
    }
    let mut members: Vec<Option<Member>> = (0..run.plan.consumers).map(|_| None).collect();
    if let Some(first) = members.first_mut() {
        run.ledger.fault("join c0");
        *first = Some(run.start_consumer(0).await?);
    }
    let send_start = Instant::now();
    let mut sending = JoinSet::new();
    for (index, producer) in producers.iter().enumerate() {
        sending.spawn(produce(Arc::clone(run), Arc::clone(producer), index));
    }
    drive(run, faults, &mut members).await;
    while let Some(joined) = sending.join_next().await {
        if let Err(err) = joined {
            tracing::error!(error = %err, "a producer task failed");
        }
    }
    let send_time = send_start.elapsed();
    if let Ok(mut outcome) = run.outcome.lock() {
        outcome.send_time = send_time;
    }
    wait_for_missing(run, &producers[0], &members).await;
    if let Some(invisible) = run.plan.mode.invisible() {
        // What was left unacknowledged comes back before the members go.
        run.wait_for(|| run.ledger.unreturned(Some(invisible + FAULT_WINDOW)) == 0)
            .await;
    }
    run.settle().await;
    for (index, member) in members.iter_mut().enumerate() {
        if let Some(consumer) = member.take() {
            run.ledger.fault(format!("leave c{index}"));
            run.stop_consumer(index, consumer, OnLeave::Ack).await;
        }
    }
    restart_check(run, &producers[0]).await?;
    let missing = run.ledger.missing_ids(usize::MAX);
    if !missing.is_empty() {
        let absent = absent_from_store(run, &producers[0], &missing).await;
        let absent = u64::try_from(absent.len()).unwrap_or(u64::MAX);
        if let Ok(mut outcome) = run.outcome.lock() {
            outcome.lost_by_broker = absent;
        }
    }
    for producer in producers {
        match Arc::try_unwrap(producer) {
            Ok(producer) => {
                if tokio::time::timeout(SHUTDOWN_LIMIT, producer.shutdown())
                    .await
                    .is_err()
                {
                    run.note_hang("shutdown of a producer".into());
                }
            }
            Err(_) => run.note_hang("a producer is still shared".into()),
        }
    }
    Ok(())
}

/// Creates the topic on every master of `cluster` (so that a stopped broker
/// is not the only one holding it) and waits until its route names every one
/// of them; on failure, auto-creation by the first send is what is left.
async fn create_topic(run: &Run, producer: &Producer, cluster: &str) {
    let header = CreateTopicRequestHeader::new(run.plan.topic.as_str(), 4);
    let created = match producer
        .admin()
        .create_topic_in_cluster(cluster, header)
        .await
    {
        Ok(created) => created,
        Err(err) => {
            run.note(format!("could not create the topic in {cluster}: {err}"));
            return;
        }
    };
    let routes = producer.instance().routes().clone();
    let topic = run.plan.topic.as_str();
    let all_there = || async {
        if routes.refresh(topic).await.is_err() {
            return false;
        }
        let brokers: HashSet<String> = match routes.publish_info(topic).await {
            Ok(info) => info
                .queues()
                .iter()
                .map(|q| q.broker_name.clone())
                .collect(),
            Err(_) => return false,
        };
        brokers.len() >= created.len()
    };
    while !all_there().await {
        if run.deadline.is_cancelled() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every acknowledged message was consumed, or the time limit.
/// Every [`STUCK_REPORT`] it says which queues each consumer holds, and
/// looks the missing messages up in the brokers' stores: when none of them
/// is stored any more, the broker lost them and waiting longer is no use.
async fn wait_for_missing(run: &Run, producer: &Producer, members: &[Option<Member>]) {
    loop {
        let next_check = Instant::now() + STUCK_REPORT;
        run.wait_for(|| run.ledger.missing() == 0 || Instant::now() >= next_check)
            .await;
        let missing = run.ledger.missing();
        if missing == 0 || run.deadline.is_cancelled() {
            return;
        }
        report_assignments(members, missing);
        if run.plan.mode == ConsumerMode::Pop {
            let pop = run.pop.figures(run.ledger.unreturned(None));
            tracing::info!(target: "soak", missing, ?pop, "still waiting");
        }
        if let Some(books) = &run.push_pop {
            let push_pop = books.figures();
            tracing::info!(target: "soak", missing, ?push_pop, "still waiting");
        }
        let ids = run.ledger.missing_ids(STORE_LOOKUPS);
        if u64::try_from(ids.len()).unwrap_or(u64::MAX) == missing {
            let absent = absent_from_store(run, producer, &ids).await;
            if absent.len() == ids.len() {
                tracing::info!(target: "soak", missing, "no broker can deliver the missing messages");
                return;
            }
        }
    }
}

/// The ids among `ids` that no consumer can get from a broker: not in its
/// store (UNIQ_KEY lookup), or stored but not at the queue offset the
/// message names (the consume queue holds another message there, so no pull
/// returns it). Both are the broker's loss. A lookup that fails counts as
/// reachable.
async fn absent_from_store(run: &Run, producer: &Producer, ids: &[String]) -> Vec<String> {
    let admin = producer.admin();
    let mut absent = Vec::new();
    for id in ids {
        match admin.query_message_by_uniq_key(&run.plan.topic, id).await {
            Ok(None) => absent.push(id.clone()),
            Ok(Some(msg)) => {
                let held = held_at(run, producer, &msg).await;
                tracing::info!(target: "soak", %id, store = %msg.store_host, queue = msg.queue_id,
                    offset = msg.queue_offset, held_there = ?held, "a missing message is stored");
                if held.is_some_and(|other| other != *id) {
                    absent.push(id.clone());
                }
            }
            Err(err) => tracing::warn!(%id, error = %err, "looking a missing message up failed"),
        }
    }
    absent
}

/// The id of the message a pull at `msg`'s queue and offset returns, if the
/// pull answers.
async fn held_at(run: &Run, producer: &Producer, msg: &MessageExt) -> Option<String> {
    let store = msg.store_host.to_string();
    let route = producer
        .instance()
        .routes()
        .table()
        .route(&run.plan.topic)?;
    let broker = route
        .broker_datas
        .iter()
        .find(|b| b.broker_addrs.values().any(|addr| *addr == store))?;
    let mq = MessageQueue::new(
        run.plan.topic.as_str(),
        broker.broker_name.as_str(),
        msg.queue_id,
    );
    let consumer = PullConsumer::builder(format!("{}-audit", run.plan.group), run.config("audit"))
        .assign([mq.clone()])
        .auto_commit(false)
        .build()
        .await
        .ok()?;
    let held = match consumer.seek(&mq, msg.queue_offset).await {
        Ok(()) => consumer
            .poll(Duration::from_secs(5))
            .await
            .ok()
            .and_then(|msgs| {
                msgs.into_iter()
                    .find(|m| m.queue_offset == msg.queue_offset)
            })
            .map(|m| m.msg_id().into_owned()),
        Err(_) => None,
    };
    consumer.shutdown().await;
    held
}

/// Logs the queues each running push consumer holds, while `missing`
/// messages wait to be consumed (pop consumers hold no queues).
fn report_assignments(members: &[Option<Member>], missing: u64) {
    for (index, member) in members.iter().enumerate() {
        if let Some(Member::Push(consumer)) = member {
            let mut queues: Vec<String> = consumer
                .assigned()
                .iter()
                .map(|mq| format!("{}@{}#{}", mq.topic, mq.broker_name, mq.queue_id))
                .collect();
            queues.sort();
            tracing::info!(target: "soak", missing, consumer = index, ?queues, "still waiting");
        }
    }
}

/// Sends this producer's share of the main phase: messages `index`,
/// `index + producers`, ..., `concurrency` at a time, until done or the
/// time limit.
async fn produce(run: Arc<Run>, producer: Arc<Producer>, index: usize) {
    let step = run.plan.producers.max(1);
    let numbers = (index as u64..run.plan.messages).step_by(step);
    futures::stream::iter(numbers)
        .take_until(run.deadline.clone().cancelled_owned())
        .for_each_concurrent(run.plan.concurrency.max(1), |n| {
            let (run, producer) = (&run, &producer);
            async move {
                run.send(producer, n).await;
                run.progress.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
}

/// Runs the fault plan, each step when its share of the sends is done. In
/// pop mode every other leaving member (the first, the third, ...) drops
/// what it holds unacknowledged.
async fn drive(run: &Run, faults: Option<&BrokerFaults>, members: &mut [Option<Member>]) {
    let restarts = if faults.is_some() {
        run.plan.restarts
    } else {
        0
    };
    let steps = schedule(run.plan.consumers, restarts);
    let total = u64::try_from(steps.len()).unwrap_or(u64::MAX) + 1;
    let min_downtime = run.plan.min_downtime.max(MIN_DOWNTIME);
    let max_downtime = MAX_DOWNTIME.max(min_downtime);
    let mut stopped_at = Instant::now();
    // A broker stays up as long as the shortest downtime before it is
    // stopped again, so that each restart is seen serving.
    let mut restarted_at: Option<Instant> = None;
    let mut cycle = 0;
    let mut leaves = 0;
    for (i, step) in steps.into_iter().enumerate() {
        let threshold = run.plan.messages * (u64::try_from(i).unwrap_or(0) + 1) / total;
        let restarting = step == Step::RestartBroker;
        run.wait_for(|| {
            run.progress.load(Ordering::Relaxed) >= threshold
                || (restarting && stopped_at.elapsed() >= max_downtime)
        })
        .await;
        match (step, faults) {
            (Step::Join(c), _) => {
                run.ledger.fault(format!("join c{c}"));
                match run.start_consumer(c).await {
                    Ok(consumer) => members[c] = Some(consumer),
                    Err(err) => tracing::error!(consumer = c, error = %err, "cannot start"),
                }
            }
            (Step::Leave(c), _) => {
                if let Some(consumer) = members[c].take() {
                    let on_leave = if run.plan.mode == ConsumerMode::Pop && leaves % 2 == 0 {
                        run.ledger
                            .fault(format!("leave c{c} (dropping what it holds)"));
                        OnLeave::Drop
                    } else {
                        run.ledger.fault(format!("leave c{c}"));
                        OnLeave::Ack
                    };
                    leaves += 1;
                    run.stop_consumer(c, consumer, on_leave).await;
                }
            }
            (Step::StopBroker, Some(faults)) => {
                if let Some(at) = restarted_at {
                    tokio::time::sleep_until(at + min_downtime).await;
                }
                run.ledger.fault(faults.stop_label(cycle));
                if let Err(err) = faults.stop(cycle).await {
                    tracing::error!(error = %err, "stopping the broker failed");
                    run.note(format!("stop {cycle}: {err}"));
                }
                stopped_at = Instant::now();
                cycle += 1;
            }
            (Step::RestartBroker, Some(faults)) => {
                tokio::time::sleep_until(stopped_at + min_downtime).await;
                run.ledger.fault(format!("restart {}", faults.name()));
                match faults.restart().await {
                    Ok(()) => {
                        run.ledger
                            .broker_back(format!("{} serves again", faults.name()));
                        run.await_recovery(faults.name());
                        restarted_at = Some(Instant::now());
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "the broker did not restart");
                        run.note(format!("restart: {err}"));
                    }
                }
            }
            (Step::StopBroker | Step::RestartBroker, None) => {}
        }
    }
}

/// A consumer shut down cleanly and started again consumes nothing twice:
/// with every consumer down, sends a few more messages, starts consumer 0
/// again, and counts redeliveries of what was consumed before. When the
/// members pop (no client offsets) this checks that the brokers kept the
/// acknowledgements: the new member consumes on for an invisible duration
/// more, by when anything popped and not acknowledged would be back.
async fn restart_check(run: &Run, producer: &Producer) -> Result<(), BoxError> {
    if run.plan.restart_check == 0 || run.plan.consumers == 0 {
        return Ok(());
    }
    let mark = run.ledger.elapsed();
    let first = run.plan.messages;
    for n in first..first + run.plan.restart_check {
        run.send(producer, n).await;
    }
    run.ledger.fault("restart c0 (clean-restart check)");
    let consumer = run.start_consumer(0).await?;
    wait_for_missing(run, producer, &[]).await;
    if let Some(invisible) = run.plan.mode.invisible() {
        tokio::select! {
            () = tokio::time::sleep(invisible + QUIET) => {}
            () = run.deadline.cancelled() => {}
        }
    }
    run.settle().await;
    let redeliveries = run.ledger.redelivered_after(mark);
    if redeliveries > 0 {
        let sample = run.ledger.redelivered_after_sample(mark);
        run.note(format!(
            "clean-restart redeliveries from {}",
            sample.join(", ")
        ));
    }
    if let Ok(mut outcome) = run.outcome.lock() {
        outcome.restart_redeliveries = redeliveries;
    }
    run.ledger.fault("leave c0");
    run.stop_consumer(0, consumer, OnLeave::Ack).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_joins_cycles_and_churns() {
        use Step::*;
        assert_eq!(
            schedule(3, 2),
            vec![
                Join(1),
                Join(2),
                StopBroker,
                RestartBroker,
                Leave(0),
                StopBroker,
                RestartBroker,
                Join(0),
                Leave(2),
            ]
        );
        assert_eq!(schedule(1, 0), vec![Leave(0), Join(0)]);
    }
}
