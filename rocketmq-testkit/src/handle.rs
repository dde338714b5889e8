//! [`Broker`]: one fake broker of a [`TestCluster`](crate::TestCluster), with
//! its inspection hooks, admin calls toward its clients, and faults.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rocketmq_model::body::ConsumeMessageDirectlyResult;
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue, RequestCode, ResponseCode};
use rocketmq_remoting::connection::ConnectionConfig;
use rocketmq_remoting::{MemoryNetwork, Server};
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use crate::broker::server_reset::{self, ResetTarget};
use crate::broker::topics::TopicConfig;
use crate::broker::{self, BrokerCore, BrokerSettings, admin, delay, transaction};
use crate::error::{Result, TestkitError};
use crate::faults::{FaultChain, Faults};
use crate::inspect::{
    ClientInfo, ConsumerGroupInfo, InFlightMessage, ProducerGroupInfo, RegisteredGroups,
};
use crate::namesrv::NameServerState;
use crate::tls::{SocketListener, TlsServing};

/// How servers are reached: an in-memory network, loopback TCP, or TLS over
/// loopback TCP.
#[derive(Debug, Clone)]
pub(crate) enum Network {
    Memory(MemoryNetwork),
    Tcp,
    Tls(TlsServing),
}

impl Network {
    /// The TLS settings of a TLS network.
    pub(crate) fn tls(&self) -> Option<&TlsServing> {
        match self {
            Network::Tls(tls) => Some(tls),
            Network::Memory(_) | Network::Tcp => None,
        }
    }
}

/// The connection limits of every server: many long polls may be held on
/// one connection at once.
pub(crate) fn server_config() -> ConnectionConfig {
    ConnectionConfig {
        max_inbound_in_flight: 4096,
        ..ConnectionConfig::default()
    }
}

/// A running broker: its servers and background tasks. Dropping it (with
/// the cluster) stops the servers and the tasks.
#[derive(Debug)]
struct Running {
    servers: Vec<Server>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    _stop_on_drop: DropGuard,
}

/// One fake broker (a master; there are no slaves).
///
/// Its stored messages, topics, committed offsets, delayed and half messages
/// survive [`stop`](Self::stop) and [`restart`](Self::restart), as a real
/// broker's disk does; its connections, registered clients and queue locks
/// do not.
#[derive(Debug)]
pub struct Broker {
    core: Arc<BrokerCore>,
    network: Network,
    /// The memory address of the store host, so that an offset message id's
    /// address reaches this broker too.
    alias: Option<String>,
    faults: Arc<Faults>,
    running: Mutex<Option<Running>>,
}

/// The store host of broker `index` when its address is not an IP: a
/// loopback address of its own, with the address's port.
fn memory_store_host(addr: &str, index: usize) -> SocketAddr {
    let port = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(10911);
    let last = u8::try_from(index % 254 + 1).unwrap_or(1);
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), port)
}

impl Broker {
    /// Binds `listen`, builds the broker and starts it.
    pub(crate) async fn launch(
        settings: BrokerSettings,
        index: usize,
        network: Network,
        listen: &str,
        namesrv: Arc<NameServerState>,
        cluster_faults: Arc<Faults>,
    ) -> Result<Broker> {
        let faults = Arc::new(Faults::default());
        let chain = FaultChain(vec![Arc::clone(&faults), cluster_faults]);
        let (addr, store_host, alias, listener) = match &network {
            Network::Memory(_) => {
                let host = memory_store_host(listen, index);
                (listen.to_owned(), host, Some(host.to_string()), None)
            }
            Network::Tcp | Network::Tls(_) => {
                let listener = SocketListener::bind(listen, network.tls()).await?;
                let addr = rocketmq_remoting::transport::Listener::local_addr(&listener);
                let host = addr
                    .parse()
                    .map_err(|_| TestkitError::InvalidSetting(format!("address {addr}")))?;
                (addr, host, None, Some(listener))
            }
        };
        let core = Arc::new(BrokerCore::new(settings, addr, store_host, namesrv, chain));
        let broker = Broker {
            core,
            network,
            alias,
            faults,
            running: Mutex::new(None),
        };
        broker.start(listener).await?;
        Ok(broker)
    }

    /// The broker name.
    pub fn name(&self) -> &str {
        self.core.name()
    }

    /// The address clients dial (what the nameserver hands out).
    pub fn addr(&self) -> &str {
        &self.core.addr
    }

    /// The address in this broker's offset message ids.
    pub fn store_host(&self) -> SocketAddr {
        self.core.store.store_host()
    }

    /// Whether the broker is running.
    pub async fn is_running(&self) -> bool {
        self.running.lock().await.is_some()
    }

    async fn start(&self, socket: Option<SocketListener>) -> Result<()> {
        let mut running = self.running.lock().await;
        if running.is_some() {
            return Err(TestkitError::BrokerRunning(self.name().to_owned()));
        }
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut servers = Vec::new();
        match &self.network {
            Network::Memory(net) => {
                for addr in std::iter::once(&self.core.addr).chain(self.alias.as_ref()) {
                    let listener = net.bind(addr).map_err(|source| TestkitError::Bind {
                        addr: addr.clone(),
                        source,
                    })?;
                    servers.push(self.spawn_server(listener, &tasks, &cancel));
                }
            }
            Network::Tcp | Network::Tls(_) => {
                let listener = match socket {
                    Some(listener) => listener,
                    None => SocketListener::bind(&self.core.addr, self.network.tls()).await?,
                };
                servers.push(self.spawn_server(listener, &tasks, &cancel));
            }
        }
        self.core.hold_checks.restart();
        tasks.spawn(delay::run_scheduler(Arc::clone(&self.core), cancel.clone()));
        tasks.spawn(broker::pop::run_reviver(
            Arc::clone(&self.core),
            cancel.clone(),
        ));
        tasks.spawn(transaction::run_checker(
            Arc::clone(&self.core),
            cancel.clone(),
        ));
        tasks.spawn(broker::clients::run_expiry(
            Arc::clone(&self.core),
            cancel.clone(),
        ));
        self.core.register_all();
        *running = Some(Running {
            servers,
            _stop_on_drop: cancel.clone().drop_guard(),
            cancel,
            tasks,
        });
        Ok(())
    }

    fn spawn_server(
        &self,
        listener: impl rocketmq_remoting::transport::Listener,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) -> Server {
        let core = Arc::clone(&self.core);
        let (tasks, cancel) = (tasks.clone(), cancel.clone());
        Server::spawn(listener, server_config(), move |conn| {
            broker::accept(&core, &tasks, &cancel, conn)
        })
    }

    /// Stops the broker as a crash would: its address refuses connections,
    /// every connection closes, held pulls and timers stop, and the
    /// nameserver drops its route, as Java's does when a broker's connection
    /// closes (clients keep the route they cached until their next refresh).
    /// Its stored messages, consumer offsets and topics are kept, as by a
    /// broker that flushed them: a Java broker killed without a clean
    /// shutdown can lose up to 5 s of committed offsets
    /// (`flushConsumerOffsetInterval`) and redeliver those messages, which
    /// this does not model. Server-side offset resets not yet taken are
    /// forgotten, as Java keeps them in memory only. Stopping a stopped
    /// broker does nothing.
    pub async fn stop(&self) {
        let Some(running) = self.running.lock().await.take() else {
            return;
        };
        running.cancel.cancel();
        for server in running.servers {
            server.shutdown().await;
        }
        running.tasks.close();
        running.tasks.wait().await;
        self.core.groups.clear();
        self.core.locks.clear();
        self.core.resets.clear();
        self.core.unregister();
    }

    /// Stops the broker if it runs, then starts it again on the same address
    /// with its stored messages, offsets and topics; it registers with the
    /// nameserver again.
    pub async fn restart(&self) -> Result<()> {
        self.stop().await;
        self.start(None).await
    }

    // --- inspection ---

    /// The messages stored in a queue, in offset order, as a pull would
    /// decode them (bodies as stored, possibly compressed).
    pub fn messages(&self, topic: &str, queue_id: i32) -> Vec<MessageExt> {
        self.core
            .store
            .messages(topic, queue_id)
            .iter()
            .map(|stored| stored.ext.clone())
            .collect()
    }

    /// The next offset to be written in a queue.
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.core.store.max_offset(topic, queue_id)
    }

    /// The offset a consumer group committed for a queue of this broker.
    pub fn committed_offset(&self, group: &str, mq: &MessageQueue) -> Option<i64> {
        self.core.offsets.get(group, &mq.topic, mq.queue_id)
    }

    /// The offset of a server-side reset of a group's queue that no pull or
    /// pop of the group has taken yet (see
    /// [`reset_offset_server_side`](Self::reset_offset_server_side)).
    pub fn pending_offset_reset(&self, group: &str, mq: &MessageQueue) -> Option<i64> {
        self.core.resets.get(&mq.topic, group, mq.queue_id)
    }

    /// A topic's configuration on this broker.
    pub fn topic(&self, topic: &str) -> Option<TopicConfig> {
        self.core.topics.get(topic)
    }

    /// Creates or updates a topic and registers it with the nameserver.
    pub fn create_topic(&self, topic: &str, config: TopicConfig) {
        self.core.create_topic(topic, config);
    }

    /// Pulls this broker holds right now (long polling, waiting for a
    /// message or their suspend time): a test that injects pull failures
    /// can wait for the pulls held before to be answered.
    pub fn held_pulls(&self) -> usize {
        self.core
            .held_pulls
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Pops this broker holds right now (long polling, waiting for a
    /// message or their poll time).
    pub fn held_pops(&self) -> usize {
        self.core.pop.held()
    }

    /// The messages `group` popped from this broker and has neither
    /// acknowledged nor seen revived, in the order of their pops: a test
    /// can see what a consumer holds, and what will come back.
    pub fn in_flight_pops(&self, group: &str) -> Vec<InFlightMessage> {
        (self.core.pop.in_flight().into_iter())
            .filter(|ck| ck.group == group)
            .flat_map(|ck| {
                let visible_at_ms = ck.pop_time.saturating_add(ck.invisible_time);
                ck.unacked()
                    .map(|queue_offset| InFlightMessage {
                        topic: ck.topic.clone(),
                        queue_id: ck.queue_id,
                        queue_offset,
                        pop_time: ck.pop_time,
                        visible_at_ms,
                        revive_qid: ck.revive_qid,
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Requests with `code` this broker has received since it was built
    /// (over restarts; refused ones too): a test can wait for the next
    /// heartbeat rather than move the clock past its period.
    pub fn requests_received(&self, code: RequestCode) -> u64 {
        self.core.counts.received_of(code)
    }

    /// CHECK_TRANSACTION_STATE requests this broker has written to its
    /// producers since it was built.
    pub fn transaction_checks_sent(&self) -> u64 {
        self.core.counts.checks_sent()
    }

    /// Delayed messages not yet delivered.
    pub fn scheduled_count(&self) -> usize {
        self.core.schedule.len()
    }

    /// Transactional half messages neither committed nor rolled back.
    pub fn pending_transactions(&self) -> usize {
        self.core.half.len()
    }

    /// The client holding the lock of a queue for `group`, if the lease is
    /// live.
    pub fn lock_holder(&self, group: &str, mq: &MessageQueue) -> Option<String> {
        self.core.locks.holder(group, mq)
    }

    /// The clients that registered groups by heartbeat, by client id.
    pub fn clients(&self) -> Vec<ClientInfo> {
        let groups = &self.core.groups;
        let producers = groups
            .producer_groups()
            .into_iter()
            .flat_map(|(group, members)| {
                members.into_iter().map(move |m| (m, group.clone(), true))
            });
        let consumers = groups
            .consumer_groups()
            .into_iter()
            .flat_map(|(group, info)| {
                info.members
                    .into_values()
                    .map(move |m| (m, group.clone(), false))
            });
        let mut clients: BTreeMap<String, ClientInfo> = BTreeMap::new();
        for (member, group, producer) in producers.chain(consumers) {
            let info = clients
                .entry(member.client_id.clone())
                .or_insert_with(|| ClientInfo {
                    client_id: member.client_id.clone(),
                    language: member.language,
                    version: member.version,
                    producer_groups: Vec::new(),
                    consumer_groups: Vec::new(),
                });
            if producer {
                info.producer_groups.push(group);
            } else {
                info.consumer_groups.push(group);
            }
        }
        clients.into_values().collect()
    }

    /// The producer and consumer groups registered on this broker.
    pub fn groups(&self) -> RegisteredGroups {
        let groups = &self.core.groups;
        let producers = groups
            .producer_groups()
            .into_iter()
            .map(|(group, members)| ProducerGroupInfo {
                group,
                client_ids: members.into_iter().map(|m| m.client_id).collect(),
            })
            .collect();
        let consumers = groups
            .consumer_groups()
            .into_iter()
            .map(|(group, info)| ConsumerGroupInfo {
                group,
                consume_type: info.consume_type,
                message_model: info.message_model,
                consume_from_where: info.consume_from_where,
                client_ids: info.client_ids(),
                subscriptions: info.subscriptions.into_values().collect(),
            })
            .collect();
        RegisteredGroups {
            producers,
            consumers,
        }
    }

    // --- admin calls toward clients ---

    /// Asks a consumer for its running info (GET_CONSUMER_RUNNING_INFO).
    pub async fn consumer_running_info(
        &self,
        group: &str,
        client_id: &str,
        jstack: bool,
    ) -> Result<ConsumerRunningInfo> {
        admin::consumer_running_info(&self.core, group, client_id, jstack).await
    }

    /// Asks every consumer of a group for its offsets of `topic`
    /// (GET_CONSUMER_STATUS_FROM_CLIENT), by client id.
    pub async fn consumer_status(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<BTreeMap<String, BTreeMap<MessageQueue, i64>>> {
        admin::consumer_status(&self.core, group, topic).await
    }

    /// Pushes RESET_CONSUMER_CLIENT_OFFSET to every consumer of a group
    /// (Java's `Broker2Client.resetOffset`, the path of a broker with
    /// `useServerSideResetOffset` off): each queue of `topic` goes to its
    /// offset at `timestamp_ms` (-1: the max offset) when `force` or when
    /// that is behind the committed offset. Answers the offsets pushed.
    pub async fn reset_offset(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
        force: bool,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        admin::reset_offset(&self.core, group, topic, timestamp_ms, force).await
    }

    /// Resets a group's offsets of `topic` on the broker, as a Java 5 broker
    /// does by default (`useServerSideResetOffset`): each readable queue to
    /// its offset at `timestamp_ms` (negative: its max offset), committed at
    /// once and pending until the group's next pull of the queue, answered
    /// PULL_OFFSET_MOVED with that offset, or its next pop, which starts
    /// there; meanwhile UPDATE_CONSUMER_OFFSET of the queue is ignored. No
    /// request goes to the clients. Answers the offsets set. Errors for a
    /// topic or subscription group the broker does not have.
    pub fn reset_offset_server_side(
        &self,
        group: &str,
        topic: &str,
        timestamp_ms: i64,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        let target = ResetTarget::AllAt(timestamp_ms);
        server_reset::reset_offset(&self.core, group, topic, target)
    }

    /// [`reset_offset_server_side`](Self::reset_offset_server_side) of one
    /// queue to `offset`, which must lie between the queue's min offset and
    /// one past its max offset (Java's check), else
    /// [`TestkitError::ResetRefused`]; refused too for a queue id the topic
    /// does not have (Java resets every queue by time for a negative one).
    pub fn reset_queue_offset_server_side(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> Result<BTreeMap<MessageQueue, i64>> {
        let target = ResetTarget::QueueTo {
            queue_id: mq.queue_id,
            offset,
        };
        server_reset::reset_offset(&self.core, group, &mq.topic, target)
    }

    /// Asks a consumer to consume the message with offset message id
    /// `msg_id` now (CONSUME_MESSAGE_DIRECTLY).
    pub async fn consume_message_directly(
        &self,
        group: &str,
        client_id: &str,
        msg_id: &str,
    ) -> Result<ConsumeMessageDirectlyResult> {
        admin::consume_message_directly(&self.core, group, client_id, msg_id).await
    }

    // --- faults ---

    /// Answers the next `times` requests with `code` to this broker with
    /// `response` instead of handling them. A degraded-durability code
    /// (FLUSH_DISK_TIMEOUT, FLUSH_SLAVE_TIMEOUT, SLAVE_NOT_AVAILABLE) answers
    /// a send as a Java broker does: the message is stored, and its answer
    /// carries that code.
    pub fn fail_requests(&self, code: RequestCode, response: ResponseCode, times: usize) {
        self.faults.fail_requests(code, response, times);
    }

    /// Holds every response to `code` from this broker for `delay` (zero
    /// removes the delay).
    pub fn delay_responses(&self, code: RequestCode, delay: Duration) {
        self.faults.delay_responses(code, delay);
    }

    /// Holds every request with `code` to this broker for `delay` before
    /// handling it, as a busy broker's queue of work does: requests a
    /// connection sends after it may be handled first (zero removes the
    /// delay).
    pub fn delay_requests(&self, code: RequestCode, delay: Duration) {
        self.faults.delay_requests(code, delay);
    }

    /// Corrupts the stored record of the message at `offset` of a queue, as
    /// a damaged disk would: pulls still answer it, but no client can decode
    /// it. False when there is no such message. Tests how consumers get past
    /// a message that can never be delivered.
    pub fn corrupt_message(&self, topic: &str, queue_id: i32, offset: i64) -> bool {
        self.core.store.corrupt(topic, queue_id, offset)
    }

    /// Removes this broker's injected failures and delays.
    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// Closes every connection to this broker; clients must reconnect.
    pub async fn drop_connections(&self) {
        let running = self.running.lock().await;
        for server in running.iter().flat_map(|r| &r.servers) {
            for conn in server.connections() {
                conn.close();
            }
        }
    }

    /// Closes the connections of the client with `client_id` (those it
    /// registered groups on); answers how many were closed.
    pub fn drop_client_connections(&self, client_id: &str) -> usize {
        let mut closed = 0;
        for weak in self.core.groups.connections_of(client_id) {
            if let Some(conn) = weak.upgrade() {
                conn.close();
                closed += 1;
            }
        }
        closed
    }
}
