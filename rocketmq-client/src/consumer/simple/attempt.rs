//! The `attemptId` of an orderly consumer's pops (Java 5's
//! `PopMessageRequestHeader.attemptId`).
//!
//! An orderly pop locks the queues it reads until its batch is acknowledged
//! or its invisible duration passes. When its answer is lost (a timeout, a
//! connection closed after the request went, a receive given up on), the
//! queues stay locked for messages nobody got. A Java broker lets a pop
//! through that carries the `attemptId` of the pop that made the batch
//! (`ConsumerOrderInfoManager.OrderInfo.needBlock`) and answers it the same
//! messages, their delivery counts unchanged. So every orderly pop carries
//! an id (a random UUID, as Java's gRPC push consumer sends; its remoting
//! clients send none, and neither do our other pops); the id of a pop whose
//! answer was lost is kept for the next receive of the same topic from the
//! same broker, and that of a pop that got an answer, whatever it was, is
//! dropped.
//!
//! A kept id goes to one pop at a time: two pops under way never share one
//! (both would be answered the same batch). It waits until the broker no
//! longer holds the lost pop (its long polling is over): a held pop woken
//! after the repeat would read the batch again, for nobody, and the
//! repeat's handles would then acknowledge nothing. And it is dropped once
//! the invisible duration of the first pop that carried it is over, when
//! the broker frees the queues anyway: a batch whose answers keep being
//! lost goes back to the group, one delivery more, as it would without ids.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_kernel::KernelError;
use rocketmq_kernel::wait::deadline_after;
use rocketmq_remoting::RemotingError;
use tokio::time::Instant;

/// The most ids kept per topic and broker: one per pop under way when the
/// answers were lost, each taken again by one pop.
const MAX_KEPT: usize = 32;

/// The ids of lost orderly pops, by topic and broker name.
#[derive(Debug, Default)]
pub(super) struct AttemptIds {
    lost: Mutex<HashMap<(String, String), Vec<Lost>>>,
}

/// The id of a pop whose answer was lost.
#[derive(Debug)]
struct Lost {
    id: String,
    /// When the broker stops holding the last pop that carried it.
    usable_from: Instant,
    /// When the invisible duration of the first pop that carried it ends.
    expires: Instant,
}

impl AttemptIds {
    fn lost(&self) -> MutexGuard<'_, HashMap<(String, String), Vec<Lost>>> {
        self.lost.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The id of a pop of `topic` from `broker` about to be sent, which the
    /// broker may hold for `poll` and whose messages stay invisible for
    /// `invisible`: a lost pop's, when one can be repeated, else a new one.
    pub(super) fn begin(
        &self,
        topic: &str,
        broker: &str,
        poll: Duration,
        invisible: Duration,
    ) -> Attempt<'_> {
        let now = Instant::now();
        let key = (topic.to_owned(), broker.to_owned());
        let repeated = self.take(&key, now);
        if let Some(lost) = &repeated {
            tracing::debug!(%topic, %broker, attempt_id = %lost.id,
                "repeating an orderly pop whose answer was lost");
        }
        let (id, expires) = match repeated {
            Some(lost) => (lost.id, lost.expires),
            None => (new_attempt_id(), deadline_after(now, invisible)),
        };
        Attempt {
            ids: self,
            key,
            id,
            usable_from: deadline_after(now, poll),
            expires,
            answered: false,
        }
    }

    /// Takes the oldest kept id of `key` that can be repeated `now`,
    /// dropping the expired ones.
    fn take(&self, key: &(String, String), now: Instant) -> Option<Lost> {
        let mut lost = self.lost();
        let kept = lost.get_mut(key)?;
        kept.retain(|lost| now < lost.expires);
        let taken = (kept.iter())
            .position(|lost| lost.usable_from <= now)
            .map(|at| kept.remove(at));
        if kept.is_empty() {
            lost.remove(key);
        }
        taken
    }

    fn keep(&self, key: (String, String), id: Lost) {
        let now = Instant::now();
        let mut lost = self.lost();
        let kept = lost.entry(key).or_default();
        kept.retain(|lost| now < lost.expires);
        if id.expires <= now {
            return;
        }
        if kept.len() >= MAX_KEPT {
            kept.remove(0);
        }
        kept.push(id);
    }
}

/// The id one orderly pop carries. Unless [`finish`](Self::finish)ed with
/// the broker's answer, it is kept for a later pop, also when the receive
/// is dropped while the pop is under way.
#[derive(Debug)]
pub(super) struct Attempt<'a> {
    ids: &'a AttemptIds,
    key: (String, String),
    id: String,
    usable_from: Instant,
    expires: Instant,
    answered: bool,
}

impl Attempt<'_> {
    pub(super) fn id(&self) -> &str {
        &self.id
    }

    /// Ends the pop with `outcome`: its id is dropped if the broker
    /// answered, kept if the answer may have been lost.
    pub(super) fn finish<T>(mut self, outcome: &Result<T, KernelError>) {
        self.answered = is_answer(outcome);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let lost = Lost {
            id: std::mem::take(&mut self.id),
            usable_from: self.usable_from,
            expires: self.expires,
        };
        self.ids.keep(std::mem::take(&mut self.key), lost);
    }
}

/// Whether a pop's outcome is the broker's answer: a result, a refusal, or
/// an answer that could not be read (which a repeat would get again).
/// Anything else (a timeout, a closed connection, no connection at all)
/// may have lost an answer.
fn is_answer<T>(outcome: &Result<T, KernelError>) -> bool {
    match outcome {
        Ok(_) | Err(KernelError::Model(_)) => true,
        Err(KernelError::Remoting(err)) => {
            matches!(
                err,
                RemotingError::Response { .. } | RemotingError::Model(_)
            )
        }
        Err(_) => false,
    }
}

/// A new attempt id: a random (version 4) UUID in its usual text form, as
/// Java's `UUID.randomUUID().toString()`.
fn new_attempt_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rocketmq_model::{ModelError, ResponseCode};

    use super::*;

    const POLL: Duration = Duration::from_secs(2);
    const INVISIBLE: Duration = Duration::from_secs(30);

    fn timeout() -> Result<(), KernelError> {
        Err(KernelError::Remoting(RemotingError::Timeout {
            addr: "b".into(),
            after: Duration::from_secs(12),
        }))
    }

    fn begin<'a>(ids: &'a AttemptIds, topic: &str, broker: &str) -> Attempt<'a> {
        ids.begin(topic, broker, POLL, INVISIBLE)
    }

    /// The id of a pop of `topic` from `broker` whose answer was lost.
    fn lose(ids: &AttemptIds, topic: &str, broker: &str) -> String {
        let attempt = begin(ids, topic, broker);
        let id = attempt.id().to_owned();
        attempt.finish(&timeout());
        id
    }

    #[test]
    fn a_new_id_is_a_random_uuid() {
        let ids: HashSet<String> = (0..64).map(|_| new_attempt_id()).collect();
        assert_eq!(ids.len(), 64);
        for id in &ids {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
            assert_eq!(&id[14..15], "4", "version 4: {id}");
            assert!("89ab".contains(&id[19..20]), "RFC 4122 variant: {id}");
        }
    }

    #[test]
    fn only_the_brokers_answer_ends_an_attempt() {
        let refused: Result<(), KernelError> =
            Err(KernelError::Remoting(RemotingError::Response {
                addr: "b".into(),
                code: ResponseCode::POLLING_FULL,
                remark: String::new(),
            }));
        let unreadable: Result<(), KernelError> = Err(KernelError::Remoting(RemotingError::Model(
            ModelError::Malformed {
                what: "header",
                reason: "bad".into(),
            },
        )));
        let closed: Result<(), KernelError> =
            Err(KernelError::Remoting(RemotingError::ConnectionClosed {
                addr: "b".into(),
                reason: "reset".into(),
            }));
        assert!(is_answer(&Ok::<(), KernelError>(())));
        assert!(is_answer(&refused));
        assert!(is_answer(&unreadable));
        assert!(!is_answer(&timeout()));
        assert!(!is_answer(&closed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_pops_id_goes_to_the_next_pop_of_its_topic_and_broker() {
        let ids = AttemptIds::default();
        let lost = lose(&ids, "T", "a");
        tokio::time::advance(POLL).await;
        assert_ne!(begin(&ids, "U", "a").id(), lost, "another topic");
        assert_ne!(begin(&ids, "T", "b").id(), lost, "another broker");
        let repeat = begin(&ids, "T", "a");
        assert_eq!(repeat.id(), lost);
        repeat.finish(&Ok::<(), KernelError>(()));
        assert_ne!(begin(&ids, "T", "a").id(), lost, "answered: dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_pop_keeps_its_id() {
        let ids = AttemptIds::default();
        let id = begin(&ids, "T", "a").id().to_owned();
        tokio::time::advance(POLL).await;
        assert_eq!(begin(&ids, "T", "a").id(), id);
    }

    #[tokio::test(start_paused = true)]
    async fn pops_under_way_never_share_an_id() {
        let ids = AttemptIds::default();
        let lost = lose(&ids, "T", "a");
        tokio::time::advance(POLL).await;
        let first = begin(&ids, "T", "a");
        let second = begin(&ids, "T", "a");
        assert_eq!(first.id(), lost);
        assert_ne!(second.id(), lost);
        // Both lost: each goes to one later pop.
        let second_id = second.id().to_owned();
        drop((first, second));
        tokio::time::advance(POLL).await;
        let again: HashSet<String> = [begin(&ids, "T", "a"), begin(&ids, "T", "a")]
            .iter()
            .map(|attempt| attempt.id().to_owned())
            .collect();
        assert_eq!(again, HashSet::from([lost, second_id]));
    }

    #[tokio::test(start_paused = true)]
    async fn the_oldest_ids_go_past_the_most_kept() {
        let ids = AttemptIds::default();
        let under_way: Vec<Attempt<'_>> = (0..=MAX_KEPT).map(|_| begin(&ids, "T", "a")).collect();
        let oldest = under_way[0].id().to_owned();
        drop(under_way);
        let lost = ids.lost();
        let kept = &lost[&("T".to_owned(), "a".to_owned())];
        assert_eq!(kept.len(), MAX_KEPT);
        assert!(kept.iter().all(|lost| lost.id != oldest));
    }

    #[tokio::test(start_paused = true)]
    async fn an_id_waits_for_the_long_poll_and_ends_with_the_first_invisible_duration() {
        let ids = AttemptIds::default();
        let lost = lose(&ids, "T", "a");
        // The broker may still hold the lost pop: a new id meanwhile.
        let meanwhile = begin(&ids, "T", "a");
        assert_ne!(meanwhile.id(), lost);
        meanwhile.finish(&Ok::<(), KernelError>(()));
        tokio::time::advance(POLL).await;
        let repeat = begin(&ids, "T", "a");
        assert_eq!(repeat.id(), lost);
        repeat.finish(&timeout());
        // Repeated and lost again, it still ends with the first pop's
        // invisible duration.
        tokio::time::advance(INVISIBLE - POLL).await;
        let fresh = begin(&ids, "T", "a");
        assert_ne!(fresh.id(), lost);
        fresh.finish(&Ok::<(), KernelError>(()));
        assert!(ids.lost().is_empty(), "the expired id is dropped");
    }
}
