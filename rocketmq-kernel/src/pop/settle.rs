//! What becomes of popped messages once the listener has seen them (Java's
//! `ConsumeMessagePopConcurrentlyService#processConsumeResult`): those it
//! acknowledged are acknowledged to the broker; a failed one is hidden for
//! the delay of its retry (Java's pop delay table) and comes back then,
//! unless it has been retried `max_reconsume_times` times already (or the
//! listener asked for delay level -1), when it goes to the group's
//! dead-letter topic (Java's push consumer retries it for some hours, then
//! drops it; Java's proxy dead-letters it, and so does this client).

use std::time::Duration;

use futures::future::join_all;
use rocketmq_model::MessageExt;
use rocketmq_model::message::ReceiptHandle;

use super::coalesce::CoalescedAcks;

/// Seconds a failed popped message stays hidden, by delay level (Java's
/// `popDelayLevel`); a level past the end takes the last.
pub const POP_DELAY_SECONDS: [u64; 16] = [
    10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
];

/// How long a failed popped message stays hidden before it comes back:
/// `delay_level` as the listener set it (Java's `delayLevelWhenNextConsume`),
/// 0 (the default) meaning the message's reconsume times. (A negative
/// level sends the message to the dead-letter topic instead: [`settle`].)
pub fn retry_delay(delay_level: i32, reconsume_times: i32) -> Duration {
    let level = if delay_level == 0 {
        reconsume_times
    } else {
        delay_level
    };
    let index = usize::try_from(level)
        .unwrap_or(0)
        .min(POP_DELAY_SECONDS.len() - 1);
    Duration::from_secs(POP_DELAY_SECONDS[index])
}

/// One popped message as the consume side holds it.
#[derive(Debug, Clone, Copy)]
pub struct Settling<'a> {
    /// The message.
    pub message: &'a MessageExt,
    /// What acknowledges it.
    pub handle: &'a ReceiptHandle,
}

/// Settles a listener call's messages, popped from `topic` (the subscribed
/// topic as the broker knows it): the first `acked` are acknowledged, the
/// rest retried later or dead-lettered. The calls run together (the
/// acknowledgements gathered with others of their broker); a failed one is
/// logged and its message comes back when its invisible time passes.
pub async fn settle(
    acks: &CoalescedAcks,
    topic: &str,
    messages: &[Settling<'_>],
    acked: usize,
    delay_level: i32,
    max_reconsume_times: i32,
) {
    let calls = messages
        .iter()
        .enumerate()
        .map(|(index, settling)| async move {
            let Settling { message, handle } = *settling;
            let (what, result) = if index < acked {
                (
                    "acknowledging a consumed message",
                    acks.ack(topic, handle).await,
                )
            } else if delay_level < 0 || message.reconsume_times >= max_reconsume_times {
                let moved = acks.acks().to_dead_letters(topic, message, handle).await;
                if moved.is_ok() {
                    tracing::info!(%topic, id = message.message.uniq_key().unwrap_or_default(),
                    reconsume_times = message.reconsume_times,
                    "message moved to the dead-letter topic");
                }
                ("moving a message to the dead-letter topic", moved)
            } else {
                let delay = retry_delay(delay_level, message.reconsume_times);
                let changed = acks
                    .acks()
                    .change_invisible_time(topic, handle, delay)
                    .await;
                ("delaying a failed message's retry", changed.map(|_| ()))
            };
            if let Err(err) = result {
                tracing::warn!(%topic, handle = %handle, error = %err,
                "{what} failed; the message comes back when its invisible time passes");
            }
        });
    join_all(calls).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_javas_table() {
        assert_eq!(retry_delay(0, 0), Duration::from_secs(10));
        assert_eq!(retry_delay(0, 3), Duration::from_secs(120));
        assert_eq!(retry_delay(2, 9), Duration::from_secs(60));
        assert_eq!(retry_delay(0, 99), Duration::from_secs(7200));
        assert_eq!(retry_delay(-1, 0), Duration::from_secs(10));
    }
}
