//! One fake broker: its persistent core (topics, store, offsets, delayed and
//! half messages) and, while it runs, a server whose per-connection handler
//! dispatches requests by code.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rocketmq_model::message::{TransactionType, sysflag};
use rocketmq_model::route::{AUTO_CREATE_TOPIC, perm};
use rocketmq_model::{QueueData, RequestCode, UniqueIdGenerator};
use rocketmq_remoting::connection::InboundService;
use rocketmq_remoting::{Connection, RemotingCommand, RemotingError, WeakConnection};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::acl::Acl;
use crate::faults::{FaultChain, serve_with_faults};
use crate::namesrv::NameServerState;
use crate::reply;

pub(crate) mod admin;
mod assignment;
pub(crate) mod clients;
mod counts;
pub(crate) mod delay;
pub(crate) mod groups;
pub(crate) mod locks;
mod lookup;
pub(crate) mod offsets;
pub(crate) mod pop;
mod pull;
mod recall;
mod replies;
mod retry;
mod send;
pub(crate) mod server_reset;
mod sql92;
pub(crate) mod store;
mod subscription_groups;
pub(crate) mod topics;
pub(crate) mod transaction;

use assignment::RequestModes;
use counts::Counts;
use delay::Schedule;
use groups::Groups;
use locks::Locks;
use offsets::Offsets;
use server_reset::PendingResets;
use store::{NewMessage, Store, StoredMessage};
use subscription_groups::SubscriptionGroups;
use topics::{Lookup, TopicConfig, Topics};
use transaction::HalfMessages;

/// Java's default `retryMaxTimes` of a subscription group.
pub(crate) const DEFAULT_RETRY_MAX_TIMES: i32 = 16;

/// Transaction check-back settings (Java: `transactionCheckInterval`,
/// `transactionTimeOut`, `transactionCheckMax`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransactionSettings {
    pub(crate) check_interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) max_checks: u32,
}

impl Default for TransactionSettings {
    fn default() -> Self {
        TransactionSettings {
            check_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(6),
            max_checks: 15,
        }
    }
}

/// What a broker is configured with.
#[derive(Debug, Clone)]
pub(crate) struct BrokerSettings {
    pub(crate) name: String,
    pub(crate) cluster: String,
    pub(crate) auto_create_topics: bool,
    /// Java's `enablePropertyFilter`: SQL92 subscriptions are served.
    pub(crate) property_filter: bool,
    /// Java's `recallMessageEnable`: timer messages may be recalled.
    pub(crate) recall_messages: bool,
    pub(crate) default_queues: (i32, i32),
    pub(crate) topics: Vec<(String, TopicConfig)>,
    pub(crate) retry_max_times: HashMap<String, i32>,
    pub(crate) transactions: TransactionSettings,
    /// How long a registered client may go without a heartbeat before its
    /// connection is closed (Java's `channelExpiredTimeout`, 120 s).
    pub(crate) client_expiry: Duration,
    /// The users requests must authenticate as (none: ACL off).
    pub(crate) acl: Arc<Acl>,
}

/// A broker's state, which outlives its runs (as its disk would).
#[derive(Debug)]
pub(crate) struct BrokerCore {
    pub(crate) settings: BrokerSettings,
    pub(crate) addr: String,
    pub(crate) namesrv: Arc<NameServerState>,
    pub(crate) topics: Topics,
    pub(crate) store: Store,
    pub(crate) offsets: Offsets,
    /// Server-side offset resets not yet taken by a pull or a pop (not
    /// kept over restarts, as Java's).
    pub(crate) resets: PendingResets,
    pub(crate) groups: Groups,
    /// The subscription groups known, which survive restarts.
    pub(crate) subscription_groups: SubscriptionGroups,
    pub(crate) locks: Locks,
    pub(crate) schedule: Schedule,
    pub(crate) half: HalfMessages,
    pub(crate) faults: FaultChain,
    /// Makes UNIQ_KEYs for sends that came without one (Java 5.x).
    pub(crate) unique_ids: UniqueIdGenerator,
    next_conn_id: AtomicU64,
    /// Pulls held (long polling) right now.
    pub(crate) held_pulls: AtomicUsize,
    /// When held pulls are checked (restarted with each run).
    pub(crate) hold_checks: pull::HoldChecks,
    /// Pops in flight and held (over restarts, as Java's revive topic).
    pub(crate) pop: pop::PopState,
    /// Pull or pop, per topic and group (SET_MESSAGE_REQUEST_MODE), over
    /// restarts.
    pub(crate) request_modes: RequestModes,
    /// Requests received and checks sent, over restarts.
    pub(crate) counts: Counts,
}

impl BrokerCore {
    pub(crate) fn new(
        settings: BrokerSettings,
        addr: String,
        store_host: SocketAddr,
        namesrv: Arc<NameServerState>,
        faults: FaultChain,
    ) -> Self {
        let topics = Topics::default();
        if settings.auto_create_topics {
            let (read, write) = settings.default_queues;
            let all = perm::READ | perm::WRITE | perm::INHERIT;
            topics.put(
                AUTO_CREATE_TOPIC,
                TopicConfig::new(read, write).with_perm(all),
            );
        }
        // As Java's `TopicConfigManager`: the cluster's reply topic.
        let (reply_topic, reply_config) = replies::reply_topic(&settings.cluster);
        topics.put(&reply_topic, reply_config);
        for (topic, config) in &settings.topics {
            topics.put(topic, *config);
        }
        BrokerCore {
            settings,
            addr,
            namesrv,
            topics,
            store: Store::new(store_host),
            offsets: Offsets::default(),
            resets: PendingResets::default(),
            groups: Groups::default(),
            subscription_groups: SubscriptionGroups::default(),
            locks: Locks::default(),
            schedule: Schedule::default(),
            half: HalfMessages::default(),
            faults,
            unique_ids: UniqueIdGenerator::new(Some(store_host.ip())),
            next_conn_id: AtomicU64::new(0),
            held_pulls: AtomicUsize::new(0),
            hold_checks: pull::HoldChecks::default(),
            pop: pop::PopState::default(),
            request_modes: RequestModes::default(),
            counts: Counts::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.settings.name
    }

    /// Registers the broker and every topic with the nameserver.
    pub(crate) fn register_all(&self) {
        let settings = &self.settings;
        self.namesrv
            .register_broker(&settings.cluster, &settings.name, &self.addr);
        for (topic, config) in self.topics.all() {
            self.register_topic(&topic, config);
        }
    }

    /// Makes the nameserver forget the broker and its queues.
    pub(crate) fn unregister(&self) {
        self.namesrv.forget_broker(&self.settings.name);
    }

    /// Tells the nameserver about one topic (done in-process, at once).
    pub(crate) fn register_topic(&self, topic: &str, config: TopicConfig) {
        let queues = QueueData {
            broker_name: self.settings.name.clone(),
            read_queue_nums: config.read_queue_nums,
            write_queue_nums: config.write_queue_nums,
            perm: config.perm,
            topic_sys_flag: config.topic_sys_flag,
        };
        self.namesrv
            .register_topic(&self.settings.name, topic, queues);
    }

    /// Creates or updates a topic and registers it.
    pub(crate) fn create_topic(&self, topic: &str, config: TopicConfig) {
        self.topics.put(topic, config);
        self.register_topic(topic, config);
    }

    /// A topic the broker itself writes (retry, DLQ, schedule, ...), created
    /// with `queues` queues and `perm` when missing.
    pub(crate) fn internal_topic(&self, topic: &str, queues: i32, perm: i32) -> TopicConfig {
        let lookup = self.topics.get_or_create_internal(topic, queues, perm);
        if let Lookup::Created(config) = lookup {
            self.register_topic(topic, config);
        }
        lookup
            .config()
            .unwrap_or_else(|| TopicConfig::new(queues, queues))
    }

    /// The group's `retryMaxTimes`.
    pub(crate) fn retry_max_times(&self, group: &str) -> i32 {
        self.settings
            .retry_max_times
            .get(group)
            .copied()
            .unwrap_or(DEFAULT_RETRY_MAX_TIMES)
    }

    /// Stores a message the way Java's commit log routes it: a prepared
    /// transactional message to the half topic, a message with a delay level
    /// or a future `TIMER_DELIVER_MS` to its schedule topic, anything else to
    /// its own topic and queue.
    pub(crate) fn put_message(
        &self,
        mut new: NewMessage,
    ) -> rocketmq_model::Result<Arc<StoredMessage>> {
        let kind = sysflag::transaction_type(new.sys_flag);
        if kind == TransactionType::Prepared {
            return transaction::park_half(self, new);
        }
        match delay::parking(&mut new)? {
            Some(parking) => delay::park(self, new, parking),
            None => self.store.put(new),
        }
    }
}

/// Everything a request handler knows about its connection.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    pub(crate) core: Arc<BrokerCore>,
    pub(crate) conn: WeakConnection,
    pub(crate) conn_id: u64,
    pub(crate) peer: SocketAddr,
}

/// The address a peer string stands for; memory peers ("memory-client-7")
/// become 127.0.0.1 with their number as port.
pub(crate) fn peer_socket_addr(peer: &str) -> SocketAddr {
    if let Ok(addr) = peer.parse() {
        return addr;
    }
    let port = peer
        .rsplit('-')
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |n| u16::try_from(n % 65_536).unwrap_or(0));
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

/// Makes the handler of a newly accepted connection and watches it, so that
/// its close counts as its groups' members leaving.
pub(crate) fn accept(
    core: &Arc<BrokerCore>,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
    conn: &Connection,
) -> InboundService {
    let conn_id = core.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let ctx = Arc::new(ConnCtx {
        core: Arc::clone(core),
        conn: conn.downgrade(),
        conn_id,
        peer: peer_socket_addr(conn.peer_addr()),
    });
    tasks.spawn(watch_close(
        Arc::clone(core),
        conn.clone(),
        conn_id,
        cancel.clone(),
    ));
    InboundService::new(tower::service_fn(move |request: RemotingCommand| {
        let ctx = Arc::clone(&ctx);
        async move {
            ctx.core.counts.received(request.code);
            if let Some(refusal) = ctx.core.settings.acl.refusal(&request) {
                return Ok(refusal);
            }
            let faults = ctx.core.faults.clone();
            let response = serve_with_faults(&faults, request.code, dispatch(&ctx, request)).await;
            Ok::<_, RemotingError>(response)
        }
    }))
}

async fn watch_close(
    core: Arc<BrokerCore>,
    conn: Connection,
    conn_id: u64,
    cancel: CancellationToken,
) {
    tokio::select! {
        () = conn.closed() => {}
        () = cancel.cancelled() => return,
    }
    drop(conn);
    for change in core.groups.connection_closed(conn_id) {
        change.notify().await;
    }
}

/// Answers one request by its code.
async fn dispatch(ctx: &ConnCtx, request: RemotingCommand) -> RemotingCommand {
    match request.request_code() {
        RequestCode::SEND_MESSAGE
        | RequestCode::SEND_MESSAGE_V2
        | RequestCode::SEND_BATCH_MESSAGE => send::handle(ctx, &request),
        RequestCode::SEND_REPLY_MESSAGE | RequestCode::SEND_REPLY_MESSAGE_V2 => {
            replies::handle(ctx, &request).await
        }
        RequestCode::PULL_MESSAGE | RequestCode::LITE_PULL_MESSAGE => {
            pull::handle(ctx, &request).await
        }
        RequestCode::POP_MESSAGE => pop::handle(ctx, &request).await,
        RequestCode::ACK_MESSAGE => pop::ack(ctx, &request),
        RequestCode::BATCH_ACK_MESSAGE => pop::batch_ack(ctx, &request),
        RequestCode::CHANGE_MESSAGE_INVISIBLETIME => pop::change_invisible_time(ctx, &request),
        RequestCode::QUERY_CONSUMER_OFFSET => offsets::query(ctx, &request),
        RequestCode::UPDATE_CONSUMER_OFFSET => offsets::update(ctx, &request),
        RequestCode::GET_MAX_OFFSET => offsets::max(ctx, &request),
        RequestCode::GET_MIN_OFFSET => offsets::min(ctx, &request),
        RequestCode::SEARCH_OFFSET_BY_TIMESTAMP => offsets::search(ctx, &request),
        RequestCode::GET_EARLIEST_MSG_STORETIME => offsets::earliest(ctx, &request),
        RequestCode::GET_CONSUME_STATS => offsets::consume_stats(ctx, &request),
        RequestCode::HEART_BEAT => clients::heartbeat(ctx, &request).await,
        RequestCode::UNREGISTER_CLIENT => clients::unregister(ctx, &request).await,
        RequestCode::CHECK_CLIENT_CONFIG => clients::check_config(ctx, &request),
        RequestCode::GET_CONSUMER_LIST_BY_GROUP => clients::consumer_list(ctx, &request),
        RequestCode::QUERY_ASSIGNMENT => assignment::query(ctx, &request),
        RequestCode::SET_MESSAGE_REQUEST_MODE => assignment::set_mode(ctx, &request),
        RequestCode::LOCK_BATCH_MQ => clients::lock(ctx, &request),
        RequestCode::UNLOCK_BATCH_MQ => clients::unlock(ctx, &request),
        RequestCode::CONSUMER_SEND_MSG_BACK => retry::send_back(ctx, &request),
        RequestCode::END_TRANSACTION => transaction::end(ctx, &request),
        RequestCode::RECALL_MESSAGE => recall::recall(ctx, &request),
        RequestCode::VIEW_MESSAGE_BY_ID => lookup::view(ctx, &request),
        RequestCode::QUERY_MESSAGE => lookup::query(ctx, &request),
        RequestCode::UPDATE_AND_CREATE_TOPIC => lookup::create_topic(ctx, &request),
        other => reply::not_supported(other.0),
    }
}
