//! Delayed messages: the 18 default delay levels and 5.x `TIMER_DELIVER_MS`.
//! A delayed message is parked in `SCHEDULE_TOPIC_XXXX` (queue = level − 1)
//! or the timer topic with REAL_TOPIC and REAL_QID, and delivered to its real
//! queue when due on tokio time, so paused-time tests take no real time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_model::message::{MAX_DELAY_LEVEL, property};
use rocketmq_model::{ModelError, Properties};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::BrokerCore;
use super::store::{NewMessage, StoredMessage, now_millis};

/// Where delay-level messages wait (Java's `TopicValidator.RMQ_SYS_SCHEDULE_TOPIC`).
pub(crate) const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Where timer messages wait (Java's `TimerMessageStore.TIMER_TOPIC`).
pub(crate) const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";

/// The broker default `messageDelayLevel`: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m
/// 7m 8m 9m 10m 20m 30m 1h 2h".
pub(crate) const DELAY_LEVELS: [Duration; MAX_DELAY_LEVEL as usize] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(180),
    Duration::from_secs(240),
    Duration::from_secs(300),
    Duration::from_secs(360),
    Duration::from_secs(420),
    Duration::from_secs(480),
    Duration::from_secs(540),
    Duration::from_secs(600),
    Duration::from_secs(1200),
    Duration::from_secs(1800),
    Duration::from_secs(3600),
    Duration::from_secs(7200),
];

/// Java's `timerMaxDelaySec`: 3 days.
pub(crate) const TIMER_MAX_DELAY_MS: i64 = 3 * 24 * 3600 * 1000;
/// Java's `timerPrecisionMs`.
const TIMER_PRECISION_MS: i64 = 1000;

/// How a message is delayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parking {
    /// A delay level, 1..=18 (larger levels are clamped, as Java does).
    Level(u8),
    /// A 5.x timer, due at `deliver_ms` (epoch ms, rounded to the timer's
    /// precision).
    Timer { deliver_ms: i64 },
}

fn timer_illegal() -> ModelError {
    ModelError::malformed(
        "timer message",
        format!(
            "timer message illegal, the delay time should not be bigger than the max delay {TIMER_MAX_DELAY_MS}ms; or if set del msg, the delay time should be bigger than the current time"
        ),
    )
}

/// Whether and how `new` must wait before delivery (Java's
/// `HookUtils.handleScheduleMessage`): a delay level wins and drops the timer
/// properties; otherwise `TIMER_DELAY_SEC`, `TIMER_DELAY_MS` or
/// `TIMER_DELIVER_MS` in the future make it a timer message, which may not be
/// more than 3 days ahead.
pub(crate) fn parking(new: &mut NewMessage) -> rocketmq_model::Result<Option<Parking>> {
    let level = new.message.delay_level();
    let properties = &mut new.message.properties;
    if let Some(level) = level {
        for name in property::TIMER_REQUESTS {
            properties.remove(name);
        }
        // Java's HookUtils.transformDelayLevelMessage: above the longest
        // level is the longest level.
        let level = u8::try_from(level).map_or(MAX_DELAY_LEVEL, |l| l.min(MAX_DELAY_LEVEL));
        return Ok(Some(Parking::Level(level)));
    }
    if new.message.topic == TIMER_TOPIC || properties.contains(property::TIMER_OUT_MS) {
        return Ok(None);
    }
    let now = now_millis();
    let number = |name: &str| -> rocketmq_model::Result<Option<i64>> {
        properties
            .get(name)
            .map(|v| v.trim().parse::<i64>().map_err(|_| timer_illegal()))
            .transpose()
    };
    let deliver_ms = if let Some(sec) = number(property::TIMER_DELAY_SEC)? {
        now.saturating_add(sec.saturating_mul(1000))
    } else if let Some(ms) = number(property::TIMER_DELAY_MS)? {
        now.saturating_add(ms)
    } else if let Some(at) = number(property::TIMER_DELIVER_MS)? {
        at
    } else {
        return Ok(None);
    };
    if deliver_ms <= now {
        return Ok(None);
    }
    if deliver_ms - now > TIMER_MAX_DELAY_MS {
        return Err(timer_illegal());
    }
    let rounded = if deliver_ms % TIMER_PRECISION_MS == 0 {
        deliver_ms - TIMER_PRECISION_MS
    } else {
        deliver_ms / TIMER_PRECISION_MS * TIMER_PRECISION_MS
    };
    Ok(Some(Parking::Timer {
        deliver_ms: rounded,
    }))
}

/// Parks `new` in its schedule topic and schedules its delivery.
pub(crate) fn park(
    core: &BrokerCore,
    mut new: NewMessage,
    parking: Parking,
) -> rocketmq_model::Result<Arc<StoredMessage>> {
    let properties = &mut new.message.properties;
    properties.insert(property::REAL_TOPIC, new.message.topic.clone())?;
    properties.insert(property::REAL_QID, new.queue_id.to_string())?;
    let (topic, queue_id, after) = match parking {
        Parking::Level(level) => {
            let index = usize::from(level.max(1) - 1);
            (SCHEDULE_TOPIC, i32::from(level) - 1, DELAY_LEVELS[index])
        }
        Parking::Timer { deliver_ms } => {
            properties.insert(property::TIMER_OUT_MS, deliver_ms.to_string())?;
            let wait = u64::try_from(deliver_ms - now_millis()).unwrap_or(0);
            (TIMER_TOPIC, 0, Duration::from_millis(wait))
        }
    };
    new.message.topic = topic.to_owned();
    new.queue_id = queue_id;
    let stored = core.store.put(new)?;
    core.schedule
        .add(Instant::now() + after, stored.ext.commit_log_offset);
    Ok(stored)
}

/// Parked messages by due time.
#[derive(Debug, Default)]
pub(crate) struct Schedule {
    due: Mutex<BTreeSet<(Instant, i64)>>,
    /// The commit-log offsets of parked messages recalled before they were
    /// due.
    recalled: Mutex<BTreeSet<i64>>,
    wake: Notify,
}

impl Schedule {
    fn due(&self) -> MutexGuard<'_, BTreeSet<(Instant, i64)>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn add(&self, at: Instant, commit_log_offset: i64) {
        self.due().insert((at, commit_log_offset));
        self.wake.notify_one();
    }

    /// Messages waiting for delivery.
    pub(crate) fn len(&self) -> usize {
        self.due().len()
    }

    /// Takes the parked message at `commit_log_offset` out of the
    /// schedule; false when it was delivered already (true when it was
    /// recalled before).
    pub(crate) fn recall(&self, commit_log_offset: i64) -> bool {
        let mut due = self.due();
        let before = due.len();
        due.retain(|(_, offset)| *offset != commit_log_offset);
        let mut recalled = self.recalled.lock().unwrap_or_else(PoisonError::into_inner);
        if due.len() < before {
            recalled.insert(commit_log_offset);
        }
        recalled.contains(&commit_log_offset)
    }

    fn take_due(&self, now: Instant) -> Vec<i64> {
        let mut due = self.due();
        let later = due.split_off(&(now, i64::MAX));
        let ready = std::mem::replace(&mut *due, later);
        ready.into_iter().map(|(_, offset)| offset).collect()
    }

    fn next_due(&self) -> Option<Instant> {
        self.due().first().map(|(at, _)| *at)
    }
}

/// Delivers parked messages when due until `cancel` fires.
pub(crate) async fn run_scheduler(core: Arc<BrokerCore>, cancel: CancellationToken) {
    loop {
        for offset in core.schedule.take_due(Instant::now()) {
            deliver(&core, offset);
        }
        let next = core.schedule.next_due();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = core.schedule.wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// Delivers a parked message to REAL_TOPIC/REAL_QID with WAIT=false (Java's
/// `ScheduleMessageService.messageTimeUp`, which also clears DELAY and the
/// timer properties, or `TimerMessageStore.convertMessage`, which clears
/// REAL_TOPIC/REAL_QID and adds TIMER_ENQUEUE_MS and TIMER_DEQUEUE_MS).
fn deliver(core: &BrokerCore, commit_log_offset: i64) {
    let Some(parked) = core.store.by_commit_log_offset(commit_log_offset) else {
        return;
    };
    let ext = &parked.ext;
    let mut message = ext.message.clone();
    let real_qid = message
        .property(property::REAL_QID)
        .and_then(|q| q.parse().ok());
    let (Some(topic), Some(queue_id)) = (message.property(property::REAL_TOPIC), real_qid) else {
        tracing::warn!(
            commit_log_offset,
            "parked message without REAL_TOPIC/REAL_QID dropped"
        );
        return;
    };
    message.topic = topic.to_owned();
    if let Err(error) = unpark_properties(
        &mut message.properties,
        ext.message.topic == TIMER_TOPIC,
        ext.store_timestamp,
    ) {
        tracing::warn!(commit_log_offset, %error, "delayed message not delivered");
        return;
    }
    let new = NewMessage {
        message,
        queue_id,
        sys_flag: ext.sys_flag,
        born_timestamp: ext.born_timestamp,
        born_host: ext.born_host,
        reconsume_times: ext.reconsume_times,
        prepared_transaction_offset: ext.prepared_transaction_offset,
    };
    if let Err(error) = core.store.put(new) {
        tracing::warn!(commit_log_offset, %error, "delayed message not delivered");
    }
}

fn unpark_properties(
    properties: &mut Properties,
    timer: bool,
    enqueued_ms: i64,
) -> rocketmq_model::Result<()> {
    properties.insert(property::WAIT, "false")?;
    if timer {
        properties.remove(property::REAL_TOPIC);
        properties.remove(property::REAL_QID);
        properties.insert(property::TIMER_ENQUEUE_MS, enqueued_ms.to_string())?;
        properties.insert(property::TIMER_DEQUEUE_MS, now_millis().to_string())?;
    } else {
        for name in [
            property::DELAY,
            property::TIMER_DELIVER_MS,
            property::TIMER_DELAY_SEC,
        ] {
            properties.remove(name);
        }
    }
    Ok(())
}
