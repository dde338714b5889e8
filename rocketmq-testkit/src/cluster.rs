//! [`TestCluster`]: a nameserver and N brokers, in memory or on loopback TCP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::{RequestCode, ResponseCode};
use rocketmq_remoting::transport::Listener;
use rocketmq_remoting::transport::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rocketmq_remoting::{MemoryNetwork, Server, TcpTransport, Transport};

use crate::acl::Acl;
use crate::broker::topics::TopicConfig;
use crate::broker::{BrokerSettings, TransactionSettings};
use crate::error::{Result, TestkitError};
use crate::faults::{FaultChain, Faults};
use crate::handle::{Broker, Network, server_config};
use crate::namesrv::{self, NameServerState};
use crate::tls::{SocketListener, TlsIdentity, TlsServing};

/// The nameserver address in memory mode.
pub const MEMORY_NAMESRV_ADDR: &str = "namesrv:9876";
/// The port brokers listen on in memory mode.
const MEMORY_BROKER_PORT: u16 = 10911;
/// Java's `channelExpiredTimeout`: a client silent this long is dropped.
const DEFAULT_CLIENT_EXPIRY: Duration = Duration::from_secs(120);

/// A fake RocketMQ cluster: one nameserver and its brokers.
///
/// ```
/// # async fn demo() -> Result<(), rocketmq_testkit::TestkitError> {
/// use rocketmq_testkit::TestCluster;
///
/// let cluster = TestCluster::builder()
///     .brokers(2)
///     .queues(4, 4)
///     .topic("T")
///     .auto_create_topics(true)
///     .retry_max_times("group", 3)
///     .build()
///     .await?;
/// let _transport = cluster.transport(); // give it to the client
/// assert_eq!(cluster.namesrv_addr(), "namesrv:9876");
/// cluster.broker(1).stop().await;
/// cluster.broker(1).restart().await?;
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TestCluster {
    network: Network,
    namesrv_addr: String,
    namesrv: Arc<NameServerState>,
    namesrv_server: Option<Server>,
    namesrv_faults: Arc<Faults>,
    brokers: Vec<Broker>,
    faults: Arc<Faults>,
}

impl TestCluster {
    /// A builder with the defaults: one broker `broker-a` in `DefaultCluster`,
    /// 4 read and 4 write queues per topic, topic auto-creation on, every
    /// group's retry limit 16, transaction checks every 30 s after 6 s, at
    /// most 15 times (Java 5.x defaults).
    pub fn builder() -> TestClusterBuilder {
        TestClusterBuilder::default()
    }

    /// The nameserver address to give a client.
    pub fn namesrv_addr(&self) -> &str {
        &self.namesrv_addr
    }

    /// The nameserver address list (one entry), as a client takes it.
    pub fn namesrv_addrs(&self) -> Vec<String> {
        vec![self.namesrv_addr.clone()]
    }

    /// The transport that reaches this cluster: its memory network, or TCP.
    pub fn transport(&self) -> Arc<dyn Transport> {
        match &self.network {
            Network::Memory(net) => Arc::new(net.clone()),
            Network::Tcp => Arc::new(TcpTransport::new()),
            Network::Tls(tls) => Arc::new(tls.client.clone()),
        }
    }

    /// The memory network, in memory mode.
    pub fn memory_network(&self) -> Option<&MemoryNetwork> {
        match &self.network {
            Network::Memory(net) => Some(net),
            Network::Tcp | Network::Tls(_) => None,
        }
    }

    /// Every broker, in the order they were named.
    pub fn brokers(&self) -> &[Broker] {
        &self.brokers
    }

    /// Broker number `index`.
    ///
    /// # Panics
    ///
    /// When the cluster has no such broker.
    pub fn broker(&self, index: usize) -> &Broker {
        &self.brokers[index]
    }

    /// The broker called `name`.
    pub fn broker_named(&self, name: &str) -> Option<&Broker> {
        self.brokers.iter().find(|b| b.name() == name)
    }

    /// Creates (or updates) a topic on every broker.
    pub fn create_topic(&self, topic: &str, config: TopicConfig) {
        for broker in &self.brokers {
            broker.create_topic(topic, config);
        }
    }

    /// Answers the next `times` requests with `code`, to any server of the
    /// cluster, with `response` instead of handling them (a send answered
    /// with a degraded-durability code is stored, as on a Java broker).
    /// `usize::MAX` means until [`clear_faults`](Self::clear_faults).
    pub fn fail_requests(&self, code: RequestCode, response: ResponseCode, times: usize) {
        self.faults.fail_requests(code, response, times);
    }

    /// Holds every response to `code` from any server for `delay` (zero
    /// removes the delay).
    pub fn delay_responses(&self, code: RequestCode, delay: Duration) {
        self.faults.delay_responses(code, delay);
    }

    /// Holds every request with `code` to any server for `delay` before
    /// handling it (zero removes the delay): requests a connection sends
    /// after it may be handled first.
    pub fn delay_requests(&self, code: RequestCode, delay: Duration) {
        self.faults.delay_requests(code, delay);
    }

    /// Answers the next `times` requests with `code` to the nameserver with
    /// `response`.
    pub fn fail_namesrv_requests(&self, code: RequestCode, response: ResponseCode, times: usize) {
        self.namesrv_faults.fail_requests(code, response, times);
    }

    /// Removes every cluster-wide and nameserver fault (brokers keep theirs).
    pub fn clear_faults(&self) {
        self.faults.clear();
        self.namesrv_faults.clear();
    }

    /// Makes the nameserver forget a broker and its routes, as when its
    /// registration expires; a restart of the broker registers it again.
    /// Answers whether it knew the broker.
    pub fn forget_broker(&self, name: &str) -> bool {
        self.namesrv.forget_broker(name)
    }

    /// Closes every connection to every broker.
    pub async fn drop_connections(&self) {
        for broker in &self.brokers {
            broker.drop_connections().await;
        }
    }

    /// Stops every broker and the nameserver.
    pub async fn shutdown(mut self) {
        for broker in &self.brokers {
            broker.stop().await;
        }
        if let Some(server) = self.namesrv_server.take() {
            server.shutdown().await;
        }
    }
}

/// Builds a [`TestCluster`].
#[derive(Debug, Clone)]
pub struct TestClusterBuilder {
    broker_names: Vec<String>,
    cluster_name: String,
    queues: (i32, i32),
    topics: Vec<(String, Option<TopicConfig>)>,
    auto_create_topics: bool,
    property_filter: bool,
    recall_messages: bool,
    retry_max_times: HashMap<String, i32>,
    transactions: TransactionSettings,
    client_expiry: Duration,
    listen: String,
    tls: Option<TlsIdentity>,
    acl: Acl,
    namesrv_acl: bool,
}

impl Default for TestClusterBuilder {
    fn default() -> Self {
        TestClusterBuilder {
            broker_names: vec![broker_name(0)],
            cluster_name: "DefaultCluster".to_owned(),
            queues: (4, 4),
            topics: Vec::new(),
            auto_create_topics: true,
            property_filter: false,
            recall_messages: false,
            retry_max_times: HashMap::new(),
            transactions: TransactionSettings::default(),
            client_expiry: DEFAULT_CLIENT_EXPIRY,
            listen: "127.0.0.1:0".to_owned(),
            tls: None,
            acl: Acl::default(),
            namesrv_acl: true,
        }
    }
}

/// `broker-a`, `broker-b`, ..., `broker-z`, `broker-26`, ...
fn broker_name(index: usize) -> String {
    match u8::try_from(index).ok().filter(|&i| i < 26) {
        Some(i) => format!("broker-{}", char::from(b'a' + i)),
        None => format!("broker-{index}"),
    }
}

impl TestClusterBuilder {
    /// `n` brokers named `broker-a`, `broker-b`, ...
    pub fn brokers(mut self, n: usize) -> Self {
        self.broker_names = (0..n).map(broker_name).collect();
        self
    }

    /// Brokers with these names.
    pub fn broker_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.broker_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// The cluster name the brokers register under.
    pub fn cluster_name(mut self, name: impl Into<String>) -> Self {
        self.cluster_name = name.into();
        self
    }

    /// Read and write queues of topics created up front and of `TBW102`.
    pub fn queues(mut self, read: i32, write: i32) -> Self {
        self.queues = (read, write);
        self
    }

    /// A topic created up front on every broker, with the default queues,
    /// readable and writable.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push((topic.into(), None));
        self
    }

    /// A topic created up front on every broker with its own queues and
    /// permission.
    pub fn topic_with(mut self, topic: impl Into<String>, config: TopicConfig) -> Self {
        self.topics.push((topic.into(), Some(config)));
        self
    }

    /// Whether brokers create unknown topics a producer sends to (through
    /// `TBW102`, Java's `autoCreateTopicEnable`; on by default).
    pub fn auto_create_topics(mut self, enabled: bool) -> Self {
        self.auto_create_topics = enabled;
        self
    }

    /// Whether brokers serve SQL92 subscriptions (Java's
    /// `enablePropertyFilter`; off by default, as in Java, when such pulls are
    /// answered SYSTEM_ERROR).
    pub fn property_filter(mut self, enabled: bool) -> Self {
        self.property_filter = enabled;
        self
    }

    /// Whether brokers let producers recall timer messages (Java 5.3.1+'s
    /// `recallMessageEnable`; off by default, as in Java, when a recall is
    /// answered NO_PERMISSION). Sends of timer messages answer a recall
    /// handle either way.
    pub fn recall_messages(mut self, enabled: bool) -> Self {
        self.recall_messages = enabled;
        self
    }

    /// The retry limit (`retryMaxTimes`) of a consumer group (default 16).
    pub fn retry_max_times(mut self, group: impl Into<String>, times: i32) -> Self {
        self.retry_max_times.insert(group.into(), times);
        self
    }

    /// How often unresolved transactions are checked back (default 30 s).
    pub fn transaction_check_interval(mut self, interval: Duration) -> Self {
        self.transactions.check_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How old a half message must be before it is checked (default 6 s).
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transactions.timeout = timeout;
        self
    }

    /// How many times a half message is checked before it is dropped
    /// (default 15).
    pub fn transaction_check_max(mut self, times: u32) -> Self {
        self.transactions.max_checks = times;
        self
    }

    /// How long a registered producer or consumer may go without a heartbeat
    /// before a broker closes its connection, removing it from its groups and
    /// telling the remaining consumers (default 120 s, Java's
    /// `channelExpiredTimeout`; brokers look every 10 s).
    pub fn client_expiry(mut self, expiry: Duration) -> Self {
        self.client_expiry = expiry;
        self
    }

    /// For [`start_tcp`](Self::start_tcp): the nameserver's listen address
    /// (default `127.0.0.1:0`); brokers listen on its host, on free ports.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// For [`start_tcp`](Self::start_tcp): every server speaks TLS, presenting
    /// `cert_chain` (leaf first) and `private_key`; clients must dial with a
    /// [`TlsTransport`](rocketmq_remoting::TlsTransport) that trusts the
    /// chain. [`TestCluster::transport`] then trusts the last certificate of
    /// the chain (its root end, or the certificate itself when it is
    /// self-signed), so end the chain with its CA; a
    /// [`TestCertificates`](crate::TestCertificates) chain does. Off by
    /// default; [`build`](Self::build) refuses it (memory mode has no TLS).
    pub fn tls(
        mut self,
        cert_chain: Vec<CertificateDer<'static>>,
        private_key: PrivateKeyDer<'static>,
    ) -> Self {
        self.tls = Some(TlsIdentity {
            chain: cert_chain,
            key: Arc::new(private_key),
        });
        self
    }

    /// Turns on ACL and adds a user (call it again for more users): every
    /// broker and the nameserver answer a request NO_PERMISSION unless it
    /// carries a known `AccessKey` and the `Signature` that user's secret
    /// makes (PROTOCOL.md §9), as a broker with authentication on does. Off
    /// by default.
    pub fn acl(mut self, access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        self.acl.add_user(access_key.into(), secret_key.into());
        self
    }

    /// Whether the nameserver checks signatures too when ACL is on (default
    /// `true`; a Java nameserver does not, so `false` is the Java setup).
    pub fn namesrv_acl(mut self, enabled: bool) -> Self {
        self.namesrv_acl = enabled;
        self
    }

    fn settings(&self, name: &str, acl: &Arc<Acl>) -> BrokerSettings {
        let (read, write) = self.queues;
        BrokerSettings {
            name: name.to_owned(),
            cluster: self.cluster_name.clone(),
            auto_create_topics: self.auto_create_topics,
            property_filter: self.property_filter,
            recall_messages: self.recall_messages,
            default_queues: self.queues,
            topics: self
                .topics
                .iter()
                .map(|(topic, config)| {
                    (
                        topic.clone(),
                        config.unwrap_or_else(|| TopicConfig::new(read, write)),
                    )
                })
                .collect(),
            retry_max_times: self.retry_max_times.clone(),
            transactions: self.transactions,
            client_expiry: self.client_expiry,
            acl: Arc::clone(acl),
        }
    }

    fn check(&self) -> Result<()> {
        if self.broker_names.is_empty() {
            return Err(TestkitError::InvalidSetting(
                "a cluster needs a broker".into(),
            ));
        }
        let (read, write) = self.queues;
        if read < 1 || write < 1 {
            return Err(TestkitError::InvalidSetting(format!(
                "queues ({read}, {write})"
            )));
        }
        Ok(())
    }

    /// Starts the cluster on a fresh in-memory network: the nameserver at
    /// [`MEMORY_NAMESRV_ADDR`], brokers at `<name>:10911`.
    pub async fn build(self) -> Result<TestCluster> {
        self.check()?;
        if self.tls.is_some() {
            return Err(TestkitError::InvalidSetting(
                "TLS is served by start_tcp only".into(),
            ));
        }
        let net = MemoryNetwork::new();
        let listener = net
            .bind(MEMORY_NAMESRV_ADDR)
            .map_err(|source| TestkitError::Bind {
                addr: MEMORY_NAMESRV_ADDR.to_owned(),
                source,
            })?;
        let addrs = self
            .broker_names
            .iter()
            .map(|name| format!("{name}:{MEMORY_BROKER_PORT}"))
            .collect();
        self.start(Network::Memory(net), listener, addrs).await
    }

    /// Starts the cluster on loopback TCP: the nameserver on the
    /// [`listen`](Self::listen) address, brokers on free ports of its host;
    /// over TLS when [`tls`](Self::tls) was given.
    pub async fn start_tcp(self) -> Result<TestCluster> {
        self.check()?;
        let network = match &self.tls {
            Some(identity) => Network::Tls(TlsServing::new(identity)?),
            None => Network::Tcp,
        };
        let listener = SocketListener::bind(&self.listen, network.tls()).await?;
        let host = listener
            .local_addr()
            .rsplit_once(':')
            .map_or_else(|| "127.0.0.1".to_owned(), |(host, _)| host.to_owned());
        let addrs = self
            .broker_names
            .iter()
            .map(|_| format!("{host}:0"))
            .collect();
        self.start(network, listener, addrs).await
    }

    async fn start(
        self,
        network: Network,
        listener: impl Listener,
        broker_addrs: Vec<String>,
    ) -> Result<TestCluster> {
        let faults = Arc::new(Faults::default());
        let namesrv_faults = Arc::new(Faults::default());
        let namesrv = Arc::new(NameServerState::default());
        let namesrv_addr = listener.local_addr();
        let chain = FaultChain(vec![Arc::clone(&namesrv_faults), Arc::clone(&faults)]);
        let state = Arc::clone(&namesrv);
        let acl = Arc::new(self.acl.clone());
        let namesrv_acl = if self.namesrv_acl {
            Arc::clone(&acl)
        } else {
            Arc::new(Acl::default())
        };
        let server = Server::spawn(listener, server_config(), move |_conn| {
            namesrv::inbound(Arc::clone(&state), chain.clone(), Arc::clone(&namesrv_acl))
        });
        let mut brokers = Vec::new();
        for (index, (name, addr)) in self.broker_names.iter().zip(&broker_addrs).enumerate() {
            let settings = self.settings(name, &acl);
            let broker = Broker::launch(
                settings,
                index,
                network.clone(),
                addr,
                Arc::clone(&namesrv),
                Arc::clone(&faults),
            )
            .await?;
            brokers.push(broker);
        }
        Ok(TestCluster {
            network,
            namesrv_addr,
            namesrv,
            namesrv_server: Some(server),
            namesrv_faults,
            brokers,
            faults,
        })
    }
}
