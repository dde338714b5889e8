//! How the group's members consume: which kind of consumer they are, and
//! what follows from it for the books.

use std::time::Duration;

use crate::{pop, push_pop};

/// The kind of the group's members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ConsumerMode {
    /// Push consumers that rebalance themselves and pull (the default).
    #[default]
    Push,
    /// Simple consumers, pop consumption (`--pop`; [`crate::pop`]).
    Pop,
    /// Push consumers that leave rebalancing to the brokers, the group
    /// switched to pop mode (`--push-pop`; [`crate::push_pop`]).
    PushPop,
}

impl ConsumerMode {
    /// The mode's name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ConsumerMode::Push => "push",
            ConsumerMode::Pop => "pop",
            ConsumerMode::PushPop => "push-pop",
        }
    }

    /// How long a popped message stays invisible to the rest of the group;
    /// `None` when the members pull.
    pub(crate) fn invisible(self) -> Option<Duration> {
        match self {
            ConsumerMode::Push => None,
            ConsumerMode::Pop => Some(pop::INVISIBLE),
            ConsumerMode::PushPop => Some(push_pop::INVISIBLE),
        }
    }

    /// Whether the members pop: no queue changes hands and no client
    /// offset is kept, so every duplicate has a cause of its own, which
    /// the run must know.
    pub(crate) fn pops(self) -> bool {
        self.invisible().is_some()
    }
}
