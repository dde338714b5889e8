//! What both consumer builders share, written once: their common setters
//! and the default offset store.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use rocketmq_kernel::ConsumerOptions;
use rocketmq_kernel::api::{BrokerApi, BrokerOffsetRemote};
use rocketmq_kernel::consume::ConsumeHook;
use rocketmq_kernel::offset::{LocalFileOffsetStore, OffsetStore, RemoteOffsetStore};
use rocketmq_model::body::MessageModel;
use rocketmq_model::{MessageQueue, Namespace, UniqueIdGenerator};

use super::report::ShutdownReport;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, InstanceLease};
use crate::trace::{Side, TraceConsumeHook, Tracer};

/// A consumer's last steps at shutdown, once its offsets are persisted:
/// the instance stops reporting `group`, the brokers are told it left
/// (UNREGISTER_CLIENT, as Java's `unregisterClientWithLock`), and the
/// instance lease is given back.
pub(super) async fn leave(instance: &ClientInstance, group: &str, lease: Option<InstanceLease>) {
    instance.unregister_consumer(group);
    let timeout = instance.config().request_timeout;
    instance.unregister_client(None, Some(group), timeout).await;
    if let Some(lease) = lease {
        lease.release().await;
    }
}

/// Persists every offset at shutdown. A broker just back from an outage
/// may still be inside this client's dial backoff (calls to it fail at once
/// for up to a second after the last failed dial), and a shutdown then
/// would lose its last offsets, so the group's next owner consumes them
/// again: after a connection error the offsets are persisted once more,
/// once the longest backoff has passed.
pub(super) async fn persist_at_shutdown(store: &dyn OffsetStore) -> rocketmq_kernel::Result<()> {
    match store.persist_all().await {
        Err(rocketmq_kernel::KernelError::Remoting(error)) if error.is_connection_error() => {
            tracing::debug!(%error, "persisting offsets at shutdown failed; once more after the dial backoff");
            tokio::time::sleep(rocketmq_remoting::client::Backoff::default().max).await;
            store.persist_all().await
        }
        result => result,
    }
}

/// Runs a consumer's shutdown to its end even when the caller stops
/// waiting for it (a timeout around `shutdown`, shorter than the drain): cut
/// short, it would persist no offset and leave the group registered with
/// the brokers, and what was consumed would be delivered again. A panic of
/// the shutdown is the caller's.
pub(super) async fn shut_down_fully(
    shutdown: impl Future<Output = ShutdownReport> + Send + 'static,
) -> ShutdownReport {
    match tokio::spawn(shutdown).await {
        Ok(report) => report,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        // The runtime is shutting down: nothing runs any more.
        Err(_) => ShutdownReport::default(),
    }
}

/// Puts a consumer's group and topics in the namespace its `config` gives
/// (they arrive as the application names them) and records the namespace
/// in `options`, so that everything after works with the brokers' names.
pub(super) fn to_namespace<'a>(
    config: &ClientConfig,
    options: &mut ConsumerOptions,
    topics: impl IntoIterator<Item = &'a mut String>,
) -> Result<()> {
    let namespace = config.effective_namespace()?;
    if namespace.is_none() {
        return Ok(());
    }
    options.group = namespace.wrap(&options.group).into_owned();
    for topic in topics {
        *topic = namespace.wrap(topic).into_owned();
    }
    options.namespace = namespace;
    Ok(())
}

/// Starts a consumer's tracer when `trace_topic` is set, and adds its hook
/// to `hooks`.
pub(super) async fn start_tracing(
    config: &ClientConfig,
    options: &ConsumerOptions,
    trace_topic: Option<String>,
    hooks: &mut Vec<Arc<dyn ConsumeHook>>,
) -> Result<Option<Arc<Tracer>>> {
    let Some(topic) = trace_topic else {
        return Ok(None);
    };
    // Java names the trace producer after the group as the application
    // named it.
    let group = options.namespace.unwrap(&options.group);
    let tracer = Tracer::start(config, &group, Side::Consume, topic).await?;
    hooks.push(Arc::new(TraceConsumeHook {
        tracer: Arc::clone(&tracer),
        namespace: options.namespace.clone(),
        ids: UniqueIdGenerator::new(Some(config.effective_client_ip())),
        consume_timeout: options.consume_timeout,
    }));
    Ok(Some(tracer))
}

/// `queues` as the application names them: out of `namespace`.
pub(super) fn user_queues(
    namespace: &Namespace,
    queues: BTreeSet<MessageQueue>,
) -> BTreeSet<MessageQueue> {
    if namespace.is_none() {
        return queues;
    }
    (queues.iter())
        .map(|mq| namespace.unwrap_queue(mq).into_owned())
        .collect()
}

/// A map by queue with its queues as the application names them.
pub(crate) fn user_queue_map<V>(
    namespace: &Namespace,
    map: BTreeMap<MessageQueue, V>,
) -> BTreeMap<MessageQueue, V> {
    if namespace.is_none() {
        return map;
    }
    (map.into_iter())
        .map(|(mq, value)| (namespace.unwrap_queue(&mq).into_owned(), value))
        .collect()
}

/// The offset store of a group that names none: the brokers (through `api`)
/// when clustering; when broadcasting, a local file under `dir`, or under
/// Java's default directory, in a directory named by the client id as
/// `config` gives it. With the default instance name that is
/// `ip@DEFAULT`, as in Java (only a clustering consumer's instance name is
/// made unique there): the file is found again after a restart, while the
/// consumer's instance, `<pid>#<nanos>`, is its own.
///
/// A local file is claimed for the consumer's life (the returned claim):
/// a second consumer of the process that would use the same file (same
/// group and client id, e.g. both with the default instance name) is
/// refused, as Java refuses a group registered twice, rather than have the
/// two overwrite each other's offsets.
pub(super) fn default_offset_store(
    options: &ConsumerOptions,
    dir: Option<&PathBuf>,
    config: &ClientConfig,
    instance: &ClientInstance,
    api: Arc<dyn BrokerApi>,
) -> Result<(Arc<dyn OffsetStore>, Option<OffsetsFileClaim>)> {
    let group = &options.group;
    if options.message_model == MessageModel::Clustering {
        let remote = BrokerOffsetRemote::new(api, instance.routes().clone());
        let store = RemoteOffsetStore::new(group.clone(), Arc::new(remote)).oneway(false);
        return Ok((Arc::new(store), None));
    }
    let dir = dir
        .cloned()
        .or_else(LocalFileOffsetStore::default_base_dir)
        .ok_or_else(|| ClientError::Config("no offset store directory (HOME is not set)".into()))?;
    let store = LocalFileOffsetStore::new(dir, &config.client_id(), group);
    let claim = OffsetsFileClaim::new(store.path())?;
    Ok((Arc::new(store), Some(claim)))
}

/// The local offsets files consumers of this process use.
static OFFSETS_FILES: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Mutex::default);

/// A consumer's hold on its local offsets file, given up when dropped.
#[derive(Debug)]
pub(crate) struct OffsetsFileClaim(PathBuf);

impl OffsetsFileClaim {
    fn new(path: &Path) -> Result<Self> {
        let mut files = OFFSETS_FILES.lock().unwrap_or_else(PoisonError::into_inner);
        if !files.insert(path.to_owned()) {
            return Err(ClientError::Config(format!(
                "the offsets file {} is in use by another consumer of this process \
                 (same group and client id): give this one another instance_name",
                path.display()
            )));
        }
        Ok(OffsetsFileClaim(path.to_owned()))
    }
}

impl Drop for OffsetsFileClaim {
    fn drop(&mut self) {
        OFFSETS_FILES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

/// Expands, inside the `impl` of a consumer builder, to the setters of what
/// both builders hold: `options` (the kernel's `ConsumerOptions`),
/// `config`, `strategy`, `store`, `offset_store_dir`, `consume_hooks` and
/// `trace_topic`. Where the two
/// consumers' defaults differ, the documentation names both.
macro_rules! shared_consumer_setters {
    () => {
        /// Adds a hook called around every listener call (Java's
        /// `registerConsumeMessageHook`); a lite pull consumer calls it when
        /// a poll hands messages out (a stream, for each message it yields),
        /// as a success, as Java's does.
        pub fn consume_hook(mut self, hook: impl rocketmq_kernel::consume::ConsumeHook) -> Self {
            self.consume_hooks.push(std::sync::Arc::new(hook));
            self
        }

        /// Records message traces (Java's `enableMsgTrace`, off by
        /// default): a record for every message handed to the application
        /// and one for what became of it, sent to `RMQ_SYS_TRACE_TOPIC`,
        /// which the brokers must have (Java's broker setting
        /// `traceTopicEnable`; a Java 5.1+ broker refuses to create it
        /// through the admin call, as a system topic), or to `trace_topic`.
        pub fn enable_trace(mut self, enable: bool) -> Self {
            self.trace_topic = enable.then(|| rocketmq_model::body::trace::TRACE_TOPIC.to_owned());
            self
        }

        /// Records message traces in `topic` (Java's `customizedTraceTopic`).
        pub fn trace_topic(mut self, topic: impl Into<String>) -> Self {
            self.trace_topic = Some(topic.into());
            self
        }

        /// The namespace of the group and its topics
        /// ([`ClientConfig::namespace`](crate::ClientConfig::namespace)):
        /// the group and topics are named here without it.
        pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
            self.config.namespace = Some(namespace.into());
            self
        }

        /// Clustering (members share the queues; default) or broadcasting
        /// (every member gets every message).
        pub fn message_model(mut self, model: MessageModel) -> Self {
            self.options.message_model = model;
            self
        }

        /// Where a queue without a committed offset starts (default the last
        /// offset). As with Java's brokers, a new group reads a queue from
        /// its first message anyway while that message is still in the
        /// broker's memory (the broker answers 0 for the group's offset), so
        /// a group started on a young topic gets what was sent before it.
        pub fn consume_from_where(mut self, from: ConsumeFromWhere) -> Self {
            self.options.consume_from_where = from;
            self
        }

        /// Start from this point in time (sets `consume_from_where` to
        /// timestamp; default half an hour before start).
        pub fn consume_timestamp(mut self, at: SystemTime) -> Self {
            self.options.consume_from_where = ConsumeFromWhere::Timestamp;
            self.options.consume_timestamp = at;
            self
        }

        /// How queues are shared among the group's members (default
        /// averagely; every member must use the same).
        pub fn allocate_strategy(mut self, strategy: Arc<dyn AllocateStrategy>) -> Self {
            self.strategy = strategy;
            self
        }

        /// Where offsets are kept (default: the brokers when clustering, a
        /// local file when broadcasting).
        pub fn offset_store(mut self, store: Arc<dyn OffsetStore>) -> Self {
            self.store = Some(store);
            self
        }

        /// The directory of the broadcasting default offset store (default
        /// `$HOME/.rocketmq_offsets`, Java's); files go to
        /// `<dir>/<client id>/<group>/offsets.json`.
        pub fn offset_store_dir(mut self, dir: impl Into<PathBuf>) -> Self {
            self.offset_store_dir = Some(dir.into());
            self
        }

        /// Messages per pull (push consumer 32; lite pull consumer 10, as
        /// Java's).
        pub fn pull_batch_size(mut self, n: i32) -> Self {
            self.options.pull_batch_size = n;
            self
        }

        /// Buffered messages per queue before pulling pauses (1000).
        pub fn pull_threshold_for_queue(mut self, n: usize) -> Self {
            self.options.pull_threshold_for_queue = n;
            self
        }

        /// Buffered body bytes per queue before pulling pauses (100 MiB).
        pub fn pull_threshold_size_for_queue(mut self, bytes: u64) -> Self {
            self.options.pull_threshold_size_for_queue = bytes;
            self
        }

        /// Wait while a queue buffers too much (50 ms).
        pub fn pull_time_delay_when_flow_control(mut self, delay: Duration) -> Self {
            self.options.pull_time_delay_when_flow_control = delay;
            self
        }

        /// Wait after a failed pull (1 s, Java 5.x's default for both
        /// consumers).
        pub fn pull_time_delay_when_exception(mut self, delay: Duration) -> Self {
            self.options.pull_time_delay_when_exception = delay;
            self
        }

        /// How long the broker holds a pull with nothing new (push consumer
        /// 15 s, lite pull consumer 20 s).
        pub fn broker_suspend_max_time(mut self, time: Duration) -> Self {
            self.options.broker_suspend_max_time = time;
            self
        }
    };
}

pub(super) use shared_consumer_setters;
