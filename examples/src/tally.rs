//! [`Tally`]: what a consumer received, by body, so an example can check
//! that every message arrived and count the duplicates.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocketmq_model::MessageExt;

/// The body of `msg` as text (invalid UTF-8 replaced).
pub fn body_text(msg: &MessageExt) -> Cow<'_, str> {
    String::from_utf8_lossy(msg.body())
}

/// Received message bodies and how many times each came. Clones share the
/// same tally, so a listener can record into it while `main` reads it.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    seen: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Tally {
    /// An empty tally.
    pub fn new() -> Self {
        Tally::default()
    }

    fn seen(&self) -> MutexGuard<'_, BTreeMap<String, usize>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one delivery of `msg`; answers how many times its body has
    /// now been seen.
    pub fn record(&self, msg: &MessageExt) -> usize {
        let mut seen = self.seen();
        let count = seen.entry(body_text(msg).into_owned()).or_default();
        *count += 1;
        *count
    }

    /// Different bodies received.
    pub fn distinct(&self) -> usize {
        self.seen().len()
    }

    /// Deliveries in all, duplicates included.
    pub fn deliveries(&self) -> usize {
        self.seen().values().sum()
    }

    /// Deliveries beyond the first of each body.
    pub fn duplicates(&self) -> usize {
        self.deliveries() - self.distinct()
    }

    /// Whether `body` was received.
    pub fn contains(&self, body: &str) -> bool {
        self.seen().contains_key(body)
    }

    /// Whether every one of `bodies` was received.
    pub fn contains_all<S: AsRef<str>>(&self, bodies: impl IntoIterator<Item = S>) -> bool {
        let seen = self.seen();
        bodies.into_iter().all(|b| seen.contains_key(b.as_ref()))
    }

    /// The bodies received, sorted.
    pub fn bodies(&self) -> Vec<String> {
        self.seen().keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::Message;

    use super::*;

    fn msg(body: &str) -> MessageExt {
        MessageExt::from(Message::new("T", body.to_owned()))
    }

    #[test]
    fn counts_distinct_bodies_and_duplicates() {
        let tally = Tally::new();
        let shared = tally.clone();
        assert_eq!(shared.record(&msg("a")), 1);
        assert_eq!(shared.record(&msg("b")), 1);
        assert_eq!(shared.record(&msg("a")), 2);
        assert_eq!(
            (tally.distinct(), tally.deliveries(), tally.duplicates()),
            (2, 3, 1)
        );
        assert!(tally.contains("a") && !tally.contains("c"));
        assert!(tally.contains_all(["a", "b"]));
        assert!(!tally.contains_all(["a", "c"]));
        assert_eq!(tally.bodies(), ["a", "b"]);
    }

    #[test]
    fn bodies_are_read_as_text() {
        let bytes = MessageExt::from(Message::new("T", vec![b'o', b'k', 0xff]));
        assert_eq!(body_text(&bytes), "ok\u{fffd}");
    }
}
