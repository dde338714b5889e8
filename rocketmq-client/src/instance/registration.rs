//! [`Registration`]: a group registered on an instance by a builder that has
//! not finished yet.

use super::ClientInstance;

/// A producer or consumer group a builder registered, undone when dropped
/// unless [`keep`](Self::keep) was called. A builder registers its group and
/// then awaits (a heartbeat, the first rebalance); dropped there, say by a
/// timeout around `build()`, it must not leave the group registered on an
/// instance that other clients keep running: the instance would heartbeat
/// a member that never consumes, and a retried build would find the group
/// taken.
#[must_use = "dropping it undoes the registration"]
pub(crate) struct Registration {
    instance: ClientInstance,
    group: String,
    role: Role,
    kept: bool,
}

enum Role {
    Producer,
    Consumer,
}

impl Registration {
    pub(super) fn producer(instance: &ClientInstance, group: &str) -> Self {
        Self::new(instance, group, Role::Producer)
    }

    pub(super) fn consumer(instance: &ClientInstance, group: &str) -> Self {
        Self::new(instance, group, Role::Consumer)
    }

    fn new(instance: &ClientInstance, group: &str, role: Role) -> Self {
        Registration {
            instance: instance.clone(),
            group: group.to_owned(),
            role,
            kept: false,
        }
    }

    /// The builder finished: the registration stays.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        tracing::debug!(group = %self.group, "build abandoned; group unregistered");
        match self.role {
            Role::Producer => self.instance.unregister_producer(&self.group),
            Role::Consumer => self.instance.unregister_consumer(&self.group),
        }
    }
}
