//! [`ClientInstance`]: one per client id, shared by the producers and
//! consumers of a process that use that id.
//!
//! It owns the connections ([`RemotingClient`]), the typed broker API, the
//! route table, the background tasks (route refresh, heartbeat, rebalance,
//! offset persistence; see `tasks`; push consumers clean expired messages on
//! their own timer) and the handler of the
//! requests brokers send (see `processor`). Producers and consumers take a
//! [`InstanceLease`] with [`ClientInstance::acquire`]; when the last lease is
//! released the instance stops its tasks and closes its connections, and a
//! later `acquire` with the same client id creates a fresh one.

mod handles;
mod heartbeat;
mod lanes;
mod processor;
mod registration;
mod registry;
mod replies;
mod tasks;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use rocketmq_kernel::api::{ApiTimeouts, NameServerApi};
use rocketmq_kernel::{RemotingBrokerApi, Routes};
use rocketmq_model::UniqueIdGenerator;
use rocketmq_model::header::UnregisterClientRequestHeader;
use rocketmq_remoting::{AclHook, RemotingClient};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub(crate) use self::registration::Registration;

pub use handles::{ConsumerHandle, ProducerHandle};

use crate::admin::Admin;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};

/// The producer group every Java client reports in its heartbeats.
pub const CLIENT_INNER_PRODUCER_GROUP: &str = "CLIENT_INNER_PRODUCER";

/// A handle on a client instance: cheap to clone, does not keep the instance
/// running (an [`InstanceLease`] does).
#[derive(Clone)]
pub struct ClientInstance {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client_id: String,
    config: ClientConfig,
    remoting: RemotingClient,
    api: Arc<RemotingBrokerApi>,
    routes: Routes,
    unique_ids: UniqueIdGenerator,
    producers: Mutex<BTreeMap<String, Arc<dyn ProducerHandle>>>,
    consumers: Mutex<BTreeMap<String, Arc<dyn ConsumerHandle>>>,
    /// Broker addresses that got at least one heartbeat from this instance.
    heartbeated: Mutex<HashSet<String>>,
    /// Held shared by a heartbeat from before its body is built until it is
    /// answered, and exclusively by an unregister: a heartbeat built before
    /// a group left cannot reach a broker after the group's unregister and
    /// register it again (Java 4.x's `lockHeartbeat`).
    heartbeat_gate: tokio::sync::RwLock<()>,
    signals: tasks::Signals,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// Where the slow work of broker requests runs.
    lanes: lanes::Lanes,
    replies: Arc<replies::ReplyWaiters>,
    /// Leases held; changed only under the registry's lock.
    users: AtomicUsize,
    closing: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl fmt::Debug for ClientInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientInstance")
            .field("client_id", &self.inner.client_id)
            .field("users", &self.inner.users.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ClientInstance {
    /// The running instance of `config`'s client id, created and started
    /// when there is none (its default instance name is first replaced by
    /// `<pid>#<nanos>`, so such clients never share). Must be called within a
    /// tokio runtime; the instance's tasks run on it.
    ///
    /// Instances are shared by client id alone, as in Java: a second
    /// `acquire` with the same id gets the running instance with its
    /// original configuration (transport, credentials, intervals) and
    /// runtime. Give clients that must not share distinct instance names.
    pub fn acquire(mut config: ClientConfig) -> Result<InstanceLease> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ClientError::Config(
                "a client instance needs a tokio runtime".into(),
            ));
        }
        // The field is public: a Java-style "a;b" list may be in it.
        config.namesrv_addrs = crate::config::resolve_namesrv_addrs(
            std::mem::take(&mut config.namesrv_addrs),
            std::env::var(crate::config::NAMESRV_ADDR_ENV).ok(),
        );
        if config.namesrv_addrs.is_empty() {
            return Err(ClientError::Config(format!(
                "no nameserver address: set ClientConfig::namesrv_addrs or {}",
                crate::config::NAMESRV_ADDR_ENV
            )));
        }
        config.check()?;
        config.resolve_instance_name();
        let instance = registry::acquire(config, ClientInstance::start);
        Ok(InstanceLease {
            instance: Some(instance),
        })
    }

    /// Creates the instance and starts its tasks (the registry calls this).
    fn start(config: ClientConfig) -> ClientInstance {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| Inner::new(config, weak.clone()));
        let instance = ClientInstance { inner };
        crate::metrics::describe();
        tasks::spawn_all(&instance);
        tracing::info!(client_id = %instance.inner.client_id, "client instance started");
        instance
    }

    /// The client id (`ip@instance[@unit]`).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The configuration the instance was started with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The connections to brokers and nameservers.
    pub fn remoting(&self) -> &RemotingClient {
        &self.inner.remoting
    }

    /// The typed broker and nameserver API over [`remoting`](Self::remoting).
    pub fn broker_api(&self) -> &Arc<RemotingBrokerApi> {
        &self.inner.api
    }

    /// The nameservers in use: those configured, or the last
    /// [`update_namesrv_addrs`](Self::update_namesrv_addrs) gave.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        match self.inner.api.name_server_addrs() {
            Some(addrs) => addrs.to_vec(),
            None => self.inner.config.namesrv_addrs.clone(),
        }
    }

    /// Replaces the nameservers of this instance, so of every producer and
    /// consumer sharing it (Java's `updateNameServerAddress`), e.g. when a
    /// discovery service reports new ones. Each entry may be a Java-style
    /// list, `"ns1:9876;ns2:9876"`. The next route lookup uses them; routes
    /// already known are kept until it. An error, and nothing changed, for
    /// a list without an address.
    pub fn update_namesrv_addrs<S: Into<String>>(
        &self,
        addrs: impl IntoIterator<Item = S>,
    ) -> Result<()> {
        let addrs = crate::config::split_namesrv_addrs(addrs.into_iter().map(Into::into));
        if addrs.is_empty() {
            return Err(ClientError::Config("no nameserver address given".into()));
        }
        tracing::info!(client_id = %self.inner.client_id, namesrv = ?addrs, "nameservers replaced");
        self.inner.api.set_name_server_addrs(addrs);
        Ok(())
    }

    /// The route table, filled from the nameservers.
    pub fn routes(&self) -> &Routes {
        &self.inner.routes
    }

    /// The generator of UNIQ_KEY ids shared by the instance's producers.
    pub fn unique_ids(&self) -> &UniqueIdGenerator {
        &self.inner.unique_ids
    }

    /// Admin calls through this instance's connections.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// Whether the last lease was released.
    pub fn is_shut_down(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// The tasks the instance owns; a consumer spawns its own work here so
    /// that it stops with the instance.
    pub fn task_tracker(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Cancelled when the instance shuts down.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Registers a producer; fails when its group is already registered.
    pub fn register_producer(&self, producer: Arc<dyn ProducerHandle>) -> Result<()> {
        let group = producer.group().to_owned();
        let mut producers = lock(&self.inner.producers);
        if producers.contains_key(&group) {
            return Err(self.already_registered(group));
        }
        producers.insert(group, producer);
        Ok(())
    }

    /// Forgets the producer of `group` (it stays registered on brokers until
    /// [`unregister_client`](Self::unregister_client)).
    pub fn unregister_producer(&self, group: &str) {
        lock(&self.inner.producers).remove(group);
    }

    /// Registers a consumer; fails when its group is already registered. The
    /// consumer's topics are refreshed and it is rebalanced soon after.
    pub fn register_consumer(&self, consumer: Arc<dyn ConsumerHandle>) -> Result<()> {
        let group = consumer.group().to_owned();
        {
            let mut consumers = lock(&self.inner.consumers);
            if consumers.contains_key(&group) {
                return Err(self.already_registered(group));
            }
            consumers.insert(group.clone(), consumer);
        }
        self.refresh_routes_soon();
        self.request_rebalance(Some(&group));
        Ok(())
    }

    /// Forgets the consumer of `group`.
    pub fn unregister_consumer(&self, group: &str) {
        lock(&self.inner.consumers).remove(group);
    }

    /// [`register_producer`](Self::register_producer) for a builder: undone
    /// if the build does not finish.
    pub(crate) fn register_producer_for_build(
        &self,
        producer: Arc<dyn ProducerHandle>,
    ) -> Result<Registration> {
        let group = producer.group().to_owned();
        self.register_producer(producer)?;
        Ok(Registration::producer(self, &group))
    }

    /// [`register_consumer`](Self::register_consumer) for a builder: undone
    /// if the build does not finish.
    pub(crate) fn register_consumer_for_build(
        &self,
        consumer: Arc<dyn ConsumerHandle>,
    ) -> Result<Registration> {
        let group = consumer.group().to_owned();
        self.register_consumer(consumer)?;
        Ok(Registration::consumer(self, &group))
    }

    fn already_registered(&self, group: String) -> ClientError {
        ClientError::GroupAlreadyRegistered {
            group,
            client_id: self.inner.client_id.clone(),
        }
    }

    /// The producer registered for `group`.
    pub fn producer(&self, group: &str) -> Option<Arc<dyn ProducerHandle>> {
        lock(&self.inner.producers).get(group).cloned()
    }

    /// The consumer registered for `group`.
    pub fn consumer(&self, group: &str) -> Option<Arc<dyn ConsumerHandle>> {
        lock(&self.inner.consumers).get(group).cloned()
    }

    /// The registered producers' groups.
    pub fn producer_groups(&self) -> Vec<String> {
        lock(&self.inner.producers).keys().cloned().collect()
    }

    pub(crate) fn consumers(&self) -> Vec<Arc<dyn ConsumerHandle>> {
        lock(&self.inner.consumers).values().cloned().collect()
    }

    /// Asks the route-refresh task to run now (it coalesces requests).
    pub fn refresh_routes_soon(&self) {
        self.inner.signals.route_refresh.notify_one();
    }

    /// Asks the rebalance task to rebalance `group` (every consumer when
    /// `None`) now, as on NOTIFY_CONSUMER_IDS_CHANGED.
    pub fn request_rebalance(&self, group: Option<&str>) {
        self.inner.signals.request_rebalance(group);
    }

    /// Asks the heartbeat task to send a heartbeat to every broker now,
    /// without waiting for it (requests made while one is sent are served
    /// by one more).
    pub fn heartbeat_soon(&self) {
        self.inner.signals.heartbeat.notify_one();
    }

    /// Sends a heartbeat to every broker of every known route now.
    pub async fn send_heartbeat(&self) {
        heartbeat::send_to_all(self).await;
    }

    /// Whether `addr` got this client's heartbeat on its current connection.
    pub(crate) fn heartbeated(&self, addr: &str) -> bool {
        lock(&self.inner.heartbeated).contains(addr)
    }

    /// Sends a heartbeat to `addr` unless it already got one, so that a
    /// broker learns this client's groups before its first message from it
    /// (transaction check-backs need the producer group).
    pub async fn ensure_heartbeat(&self, addr: &str) {
        if !self.heartbeated(addr) {
            heartbeat::send_to(self, addr).await;
        }
    }

    /// Sends UNREGISTER_CLIENT for these groups to every broker (masters and
    /// slaves) of every known route, as Java does, within `timeout` per
    /// broker; failures are logged. Waits first (within `timeout` too) for
    /// the heartbeats in flight to be answered: the groups must have left
    /// this instance already, so that no later heartbeat names them.
    pub async fn unregister_client(
        &self,
        producer_group: Option<&str>,
        consumer_group: Option<&str>,
        timeout: Duration,
    ) {
        let header = UnregisterClientRequestHeader {
            client_id: self.inner.client_id.clone(),
            producer_group: producer_group.map(str::to_owned),
            consumer_group: consumer_group.map(str::to_owned),
            broker_name: None,
        };
        // After the heartbeats in flight, which may still name the group;
        // but within `timeout`: a heartbeat a broker does not answer holds
        // the gate for the whole request timeout, and a shutdown should not
        // wait for that on top of its own.
        let _no_heartbeat =
            match tokio::time::timeout(timeout, self.inner.heartbeat_gate.write()).await {
                Ok(gate) => Some(gate),
                Err(_) => {
                    tracing::debug!(
                        ?timeout,
                        "a heartbeat in flight is not answered; unregistering all the same"
                    );
                    None
                }
            };
        let addrs = heartbeat::all_addrs(self);
        let calls = addrs.iter().map(|addr| {
            let header = header.clone();
            async move {
                let api = self.broker_api();
                let call = rocketmq_kernel::BrokerApi::unregister_client(&**api, addr, header);
                match tokio::time::timeout(timeout, call).await {
                    Ok(Ok(())) => tracing::debug!(%addr, "client unregistered"),
                    Ok(Err(error)) => tracing::warn!(%addr, %error, "unregister failed"),
                    Err(_) => tracing::warn!(%addr, "unregister timed out"),
                }
            }
        });
        futures::future::join_all(calls).await;
    }

    /// Waits for the reply to the request with `correlation_id`
    /// (request-reply); the wait ends when the waiter is dropped.
    pub(crate) fn expect_reply(&self, correlation_id: &str) -> replies::ReplyWaiter {
        self.inner.replies.expect(correlation_id)
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Stops the tasks, waits for them and closes every connection.
    async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        self.inner.remoting.shutdown().await;
        tracing::info!(client_id = %self.inner.client_id, "client instance shut down");
    }
}

impl Inner {
    fn new(config: ClientConfig, weak: Weak<Inner>) -> Inner {
        let client_id = config.client_id();
        let mut builder = RemotingClient::builder()
            .request_timeout(config.request_timeout)
            .serialize_type(config.serialize_type)
            .inbound(processor::factory(weak.clone()));
        if let Some(transport) = &config.transport {
            builder = builder.shared_transport(transport.clone());
        }
        if let Some(credentials) = &config.credentials {
            builder = builder.rpc_hook(AclHook::new(credentials.clone()));
        }
        let remoting = builder.build();
        let timeouts = ApiTimeouts {
            call: config.request_timeout,
            ..ApiTimeouts::default()
        };
        let api = Arc::new(
            RemotingBrokerApi::new(remoting.clone(), config.namesrv_addrs.clone())
                .with_timeouts(timeouts),
        );
        let name_server: Arc<dyn NameServerApi> = api.clone();
        Inner {
            client_id,
            unique_ids: UniqueIdGenerator::new(Some(config.effective_client_ip())),
            config,
            remoting,
            routes: Routes::new(name_server).on_change(tasks::rebalance_readers(weak.clone())),
            api,
            producers: Mutex::new(BTreeMap::new()),
            consumers: Mutex::new(BTreeMap::new()),
            heartbeated: Mutex::new(HashSet::new()),
            heartbeat_gate: tokio::sync::RwLock::new(()),
            signals: tasks::Signals::default(),
            cancel: CancellationToken::new(),
            tasks: TaskTracker::new(),
            lanes: lanes::Lanes::default(),
            replies: Arc::new(replies::ReplyWaiters::default()),
            users: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
        }
    }
}

/// A counted use of a [`ClientInstance`] (one per producer or consumer).
/// Release it with [`release`](Self::release); the last release shuts the
/// instance down. Dropping a lease releases it too, but can only stop the
/// tasks, not wait for them.
pub struct InstanceLease {
    instance: Option<ClientInstance>,
}

impl fmt::Debug for InstanceLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InstanceLease")
            .field(&self.instance)
            .finish()
    }
}

impl InstanceLease {
    /// Gives the lease back; the last one shuts the instance down (tasks
    /// stopped and awaited, connections closed). Nothing is unregistered
    /// here: producers and consumers unregister their groups first.
    pub async fn release(mut self) {
        if let Some(instance) = self.instance.take() {
            if registry::release(&instance) {
                instance.shutdown().await;
            }
        }
    }

    /// A non-counting handle on the instance.
    pub fn instance(&self) -> ClientInstance {
        (**self).clone()
    }
}

impl Deref for InstanceLease {
    type Target = ClientInstance;

    fn deref(&self) -> &ClientInstance {
        match &self.instance {
            Some(instance) => instance,
            None => unreachable!("a lease holds its instance until released"),
        }
    }
}

impl Drop for InstanceLease {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            if registry::release(&instance) {
                instance.inner.cancel.cancel();
                instance.inner.tasks.close();
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    let remoting = instance.inner.remoting.clone();
                    handle.spawn(async move { remoting.shutdown().await });
                }
            }
        }
    }
}

/// Topics and groups the rebalance task should handle next.
pub(crate) type GroupSet = BTreeSet<String>;
