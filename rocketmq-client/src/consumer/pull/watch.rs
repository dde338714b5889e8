//! Watching a topic's queues (Java's
//! `registerTopicMessageQueueChangeListener`): an application that assigns
//! queues itself learns when a topic gains or loses some, and assigns
//! again.

use std::time::Duration;

use rocketmq_model::MessageQueue;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::PullConsumer;
use crate::admin::Admin;
use crate::error::Result;

/// How often a watched topic's route is asked for (Java's
/// `topicMetadataCheckIntervalMillis`, 30 s).
pub const QUEUE_CHECK_INTERVAL: Duration = Duration::from_secs(30);

impl PullConsumer {
    /// The queues of `topic` now, in a receiver that changes whenever they
    /// do: the route is asked for every [`QUEUE_CHECK_INTERVAL`], as
    /// Java's lite pull consumer checks the topics it watches. A failed
    /// check changes nothing. The receiver's `changed()` fails once the
    /// consumer shuts down.
    ///
    /// ```no_run
    /// # async fn run(consumer: rocketmq_client::PullConsumer) -> rocketmq_client::Result<()> {
    /// let mut queues = consumer.watch_message_queues("orders").await?;
    /// consumer.assign(queues.borrow_and_update().clone()).await?;
    /// while queues.changed().await.is_ok() {
    ///     consumer.assign(queues.borrow_and_update().clone()).await?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch_message_queues(
        &self,
        topic: &str,
    ) -> Result<watch::Receiver<Vec<MessageQueue>>> {
        let admin = (self.core.instance.admin()).in_namespace(self.namespace().clone());
        let queues = sorted(admin.subscribe_queues(topic).await?);
        let (sender, receiver) = watch::channel(queues);
        let cancel = self.core.cancel.clone();
        let topic = topic.to_owned();
        self.core.tasks.spawn(async move {
            let mut checks = tokio::time::interval(QUEUE_CHECK_INTERVAL);
            checks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            checks.tick().await;
            loop {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = sender.closed() => break,
                    _ = checks.tick() => check(&admin, &topic, &sender).await,
                }
            }
        });
        Ok(receiver)
    }
}

/// Asks for `topic`'s queues and tells `sender` when they changed.
async fn check(admin: &Admin, topic: &str, sender: &watch::Sender<Vec<MessageQueue>>) {
    match admin.subscribe_queues(topic).await {
        Ok(queues) => {
            let queues = sorted(queues);
            sender.send_if_modified(|known| {
                let changed = *known != queues;
                if changed {
                    tracing::info!(%topic, queues = queues.len(), "the topic's queues changed");
                    *known = queues;
                }
                changed
            });
        }
        Err(error) => tracing::debug!(%topic, %error, "checking the topic's queues failed"),
    }
}

fn sorted(mut queues: Vec<MessageQueue>) -> Vec<MessageQueue> {
    queues.sort();
    queues
}
