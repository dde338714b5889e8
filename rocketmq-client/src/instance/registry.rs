//! The process-wide registry of client instances by client id: weak
//! references, so an instance lives only as long as its leases and tasks.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use super::{ClientInstance, Inner, lock};
use crate::config::ClientConfig;

static INSTANCES: LazyLock<Mutex<HashMap<String, Weak<Inner>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The running instance of `config`'s client id with one more lease, or a
/// new one made by `start` with its first lease.
pub(super) fn acquire(
    config: ClientConfig,
    start: impl FnOnce(ClientConfig) -> ClientInstance,
) -> ClientInstance {
    let client_id = config.client_id();
    let mut instances = lock(&INSTANCES);
    let running = instances
        .get(&client_id)
        .and_then(Weak::upgrade)
        .filter(|inner| !inner.closing.load(Ordering::Acquire));
    if let Some(inner) = running {
        let ignored = inner.config.differences(&config);
        if !ignored.is_empty() {
            tracing::warn!(
                %client_id,
                ?ignored,
                "a client instance with this id is running; this client shares it, and \
                 these settings of its own are ignored (give it another instance_name to \
                 have its own)"
            );
        }
        inner.users.fetch_add(1, Ordering::AcqRel);
        return ClientInstance { inner };
    }
    let instance = start(config);
    instance.inner.users.store(1, Ordering::Release);
    instances.insert(client_id, Arc::downgrade(&instance.inner));
    instance
}

/// Gives one lease back; true when it was the last one, in which case the
/// instance is marked closing and forgotten, and the caller shuts it down.
pub(super) fn release(instance: &ClientInstance) -> bool {
    let inner = &instance.inner;
    let mut instances = lock(&INSTANCES);
    if inner.users.fetch_sub(1, Ordering::AcqRel) != 1 {
        return false;
    }
    inner.closing.store(true, Ordering::Release);
    let ours = instances
        .get(&inner.client_id)
        .is_some_and(|weak| std::ptr::eq(weak.as_ptr(), Arc::as_ptr(inner)));
    if ours {
        instances.remove(&inner.client_id);
    }
    instances.retain(|_, weak| weak.strong_count() > 0);
    true
}
