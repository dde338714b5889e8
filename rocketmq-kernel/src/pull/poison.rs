//! What a queue does about a record it cannot decode at the front of a pull
//! answer (a "poison" record): such a record can never be delivered, and
//! pulling its offset again for ever would stop the queue for good.
//!
//! Java's consumer moves on to the answer's `nextBeginOffset` at once,
//! losing the whole answer (up to a pull batch of good messages after the
//! bad one). Here the queue first pulls the same offset again a few times
//! (in case the answer was damaged on the way), then pulls it one message at
//! a time, so that what it finally skips is the bad record alone.

/// Pulls of the same offset whose answer could not be decoded, before the
/// queue pulls it alone.
pub const UNDECODABLE_RETRIES: u32 = 3;

/// A queue's count of undecodable answers, and the offset they were pulled
/// at: an answer at another offset starts the count again, however the
/// queue got there (a decoded answer, NO_NEW_MSG, a seek, a reset).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Undecodable {
    at: i64,
    failures: u32,
}

/// What to do after an answer that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonStep {
    /// Pull the same offset again after the usual delay.
    RetryLater,
    /// Give up on the record and go on from this offset.
    Skip {
        /// Where the next pull starts.
        to: i64,
    },
}

impl Undecodable {
    /// How many messages to ask for at `offset`: `normal`, or one while
    /// isolating the record there that could not be decoded.
    pub fn batch_size(&self, offset: i64, normal: i32) -> i32 {
        if self.at == offset && self.failures >= UNDECODABLE_RETRIES {
            1
        } else {
            normal
        }
    }

    /// An answer to a pull at `requested` could not be decoded; the broker
    /// said to continue at `next_begin`.
    pub fn failed(&mut self, requested: i64, next_begin: i64) -> PoisonStep {
        if self.at != requested {
            *self = Undecodable {
                at: requested,
                failures: 0,
            };
        }
        if self.failures < UNDECODABLE_RETRIES {
            self.failures += 1;
            return PoisonStep::RetryLater;
        }
        // The answer held one record: skip it, never backwards.
        self.failures = 0;
        PoisonStep::Skip {
            to: next_begin.max(requested.saturating_add(1)),
        }
    }

    /// An answer was decoded: the count starts again.
    pub fn decoded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_then_isolates_then_skips_one_record() {
        let mut queue = Undecodable::default();
        for _ in 0..UNDECODABLE_RETRIES {
            assert_eq!(queue.batch_size(7, 32), 32);
            assert_eq!(queue.failed(7, 39), PoisonStep::RetryLater);
        }
        assert_eq!(queue.batch_size(7, 32), 1, "the record is pulled alone");
        assert_eq!(queue.batch_size(9, 32), 32, "another offset is not");
        assert_eq!(queue.failed(7, 8), PoisonStep::Skip { to: 8 });
        assert_eq!(queue.batch_size(7, 32), 32, "and then the queue goes on");
        // A broker answer that would not move on still moves on by one.
        for _ in 0..UNDECODABLE_RETRIES {
            queue.failed(8, 8);
        }
        assert_eq!(queue.failed(8, 3), PoisonStep::Skip { to: 9 });
        // A decoded answer in between starts the count again.
        queue.failed(9, 40);
        queue.decoded();
        for _ in 0..UNDECODABLE_RETRIES {
            assert_eq!(queue.failed(9, 40), PoisonStep::RetryLater);
        }
        // So does a failure at another offset (the queue moved meanwhile).
        for _ in 0..UNDECODABLE_RETRIES {
            assert_eq!(queue.failed(20, 40), PoisonStep::RetryLater);
        }
        assert_eq!(queue.batch_size(20, 32), 1);
    }
}
