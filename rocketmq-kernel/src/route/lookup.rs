//! [`Routes`]: the route table with nameserver lookups, one request per topic
//! at a time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use rocketmq_model::route::AUTO_CREATE_TOPIC;
use rocketmq_model::{MessageQueue, TopicRouteData};
use rocketmq_remoting::RemotingError;

use super::publish::PublishInfo;
use super::table::RouteTable;
use crate::api::NameServerApi;
use crate::error::{KernelError, Result};

/// What one nameserver request for a topic produced: the route, or the error
/// every waiter gets a copy of.
type Fetched = std::result::Result<Arc<TopicRouteData>, Arc<KernelError>>;

/// One nameserver request in flight, awaited by every caller that missed.
type Flight = Shared<BoxFuture<'static, Fetched>>;

/// Told the topic whose route a lookup found new or changed.
type OnChange = Arc<dyn Fn(&str) + Send + Sync>;

/// A [`RouteTable`] that fetches what it lacks from the nameservers.
///
/// Lookups are single-flight: concurrent lookups of one topic share one
/// nameserver request and its result (or a copy of its error). Cheap to
/// clone; clones share the table and the requests in flight.
#[derive(Clone)]
pub struct Routes {
    table: Arc<RouteTable>,
    name_server: Arc<dyn NameServerApi>,
    flights: Arc<Mutex<HashMap<String, Flight>>>,
    on_change: Option<OnChange>,
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Routes")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// An empty table filled from `name_server`.
    pub fn new(name_server: Arc<dyn NameServerApi>) -> Self {
        Self::with_table(Arc::new(RouteTable::new()), name_server)
    }

    /// `table`, filled from `name_server`.
    pub fn with_table(table: Arc<RouteTable>, name_server: Arc<dyn NameServerApi>) -> Self {
        Routes {
            table,
            name_server,
            flights: Arc::new(Mutex::new(HashMap::new())),
            on_change: None,
        }
    }

    /// Calls `on_change` with the topic each time a lookup finds its route
    /// new or changed, whoever looked it up (the periodic refresh, a
    /// consumer's rebalance, a producer's first send), so that every
    /// consumer of the topic can rebalance at once. It runs on the caller's
    /// task: it must not block.
    pub fn on_change(mut self, on_change: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_change = Some(Arc::new(on_change));
        self
    }

    /// The table (addresses, publish and subscribe queues, pull suggestions).
    pub fn table(&self) -> &Arc<RouteTable> {
        &self.table
    }

    /// The route of `topic`: the table's, else fetched from the nameserver
    /// (single-flight) and stored.
    pub async fn route(&self, topic: &str) -> Result<Arc<TopicRouteData>> {
        if let Some(route) = self.table.route(topic) {
            return Ok(route);
        }
        self.refresh(topic).await?;
        self.table.route(topic).ok_or_else(|| KernelError::NoRoute {
            topic: topic.to_owned(),
        })
    }

    /// The master address of `mq`'s broker, refreshing the route of its
    /// topic once when the broker is unknown (as Java's `MQAdminImpl` and
    /// offset store do before giving up).
    pub async fn master_addr(&self, mq: &MessageQueue) -> Result<Arc<str>> {
        if let Ok(addr) = self.table.master_addr(&mq.broker_name) {
            return Ok(addr);
        }
        self.refresh(&mq.topic).await?;
        self.table.master_addr(&mq.broker_name)
    }

    /// Asks the nameserver for the route of `topic` (joining a request in
    /// flight), stores it and returns whether it changed, so that a consumer
    /// can rebalance on a route change.
    pub async fn refresh(&self, topic: &str) -> Result<bool> {
        let route = self.fetch(topic).await?;
        let changed = self.table.update(topic, (*route).clone());
        if changed && let Some(on_change) = &self.on_change {
            on_change(topic);
        }
        Ok(changed)
    }

    /// Where a producer of `topic` sends: the table's publish info, else the
    /// route fetched from the nameserver. Fails with
    /// [`KernelError::NoRoute`] when the topic has no route or no writable
    /// queue (see [`publish_info_or_template`](Self::publish_info_or_template)).
    pub async fn publish_info(&self, topic: &str) -> Result<Arc<PublishInfo>> {
        if let Some(info) = self.cached_publish_info(topic) {
            return Ok(info);
        }
        self.refresh(topic).await?;
        self.cached_publish_info(topic)
            .ok_or_else(|| KernelError::NoRoute {
                topic: topic.to_owned(),
            })
    }

    /// The table's publish info of `topic` if it has a writable queue: what
    /// [`publish_info`](Self::publish_info) answers without waiting, for a
    /// caller that would otherwise set up a timer around it.
    pub fn cached_publish_info(&self, topic: &str) -> Option<Arc<PublishInfo>> {
        self.table
            .publish_info(topic)
            .filter(|info| !info.is_empty())
    }

    /// [`publish_info`](Self::publish_info), falling back to the template
    /// route for a topic with no route at all (one whose route has no
    /// writable queue stays [`KernelError::NoRoute`]) (§8.3, Java's
    /// `tryToFindTopicPublishInfo`): the route of `TBW102` with every
    /// broker's queue counts capped at `default_topic_queue_nums` (Java's
    /// producer default is
    /// [`DEFAULT_TOPIC_QUEUE_NUMS`](rocketmq_model::route::DEFAULT_TOPIC_QUEUE_NUMS)), stored as the
    /// topic's route. Sends to it carry `defaultTopic = "TBW102"`, and the
    /// broker creates the topic if it allows auto-creation.
    pub async fn publish_info_or_template(
        &self,
        topic: &str,
        default_topic_queue_nums: i32,
    ) -> Result<Arc<PublishInfo>> {
        match self.publish_info(topic).await {
            // A route without a writable queue (read-only, no write queues)
            // is the topic's all the same: nothing is sent, as in Java
            // (`isHaveTopicRouterInfo`). The broker would store what the
            // template sends.
            Err(KernelError::NoRoute { .. }) if self.table.route(topic).is_none() => {
                self.use_template_route(topic, default_topic_queue_nums)
                    .await
            }
            // Another lookup stored a route (the template, say) while this
            // one asked the nameserver.
            Err(error @ KernelError::NoRoute { .. }) => {
                self.cached_publish_info(topic).ok_or(error)
            }
            other => other,
        }
    }

    /// Stores the capped template route as the route of `topic` (the
    /// fallback of [`publish_info_or_template`](Self::publish_info_or_template)).
    pub async fn use_template_route(
        &self,
        topic: &str,
        default_topic_queue_nums: i32,
    ) -> Result<Arc<PublishInfo>> {
        let mut route = (*self.fetch(AUTO_CREATE_TOPIC).await?).clone();
        route.cap_for_auto_create(default_topic_queue_nums);
        self.table.update(topic, route);
        self.table
            .publish_info(topic)
            .filter(|info| !info.is_empty())
            .ok_or_else(|| KernelError::NoRoute {
                topic: topic.to_owned(),
            })
    }

    /// Fetches the route of `topic`, joining the request in flight if there
    /// is one.
    ///
    /// A flight lands (leaves the table of flights) when a caller sees it
    /// end, and also when a caller gives up on it (say, at its send
    /// timeout): a flight no one polls makes no progress, and a later lookup
    /// joining it would get an answer as old as the wait (or a timeout that
    /// elapsed long ago) instead of asking again. Callers still waiting keep
    /// theirs; the next caller starts a new one.
    async fn fetch(&self, topic: &str) -> Result<Arc<TopicRouteData>> {
        let flight = self.join_or_start(topic);
        let landing = Landing {
            routes: self,
            topic,
            flight: &flight,
        };
        let fetched = flight.clone().await;
        drop(landing);
        fetched.map_err(|error| copy_error(&error))
    }

    /// The flight of `topic`, started if none is in the air.
    fn join_or_start(&self, topic: &str) -> Flight {
        let mut flights = self.flights();
        if let Some(flight) = flights.get(topic) {
            return flight.clone();
        }
        let name_server = Arc::clone(&self.name_server);
        let owned = topic.to_owned();
        let flight = async move {
            tracing::debug!(topic = %owned, "fetching route");
            name_server
                .topic_route(&owned)
                .await
                .map(Arc::new)
                .map_err(Arc::new)
        }
        .boxed()
        .shared();
        flights.insert(topic.to_owned(), flight.clone());
        flight
    }

    /// Removes `flight`, unless a newer one replaced it.
    fn land(&self, topic: &str, flight: &Flight) {
        let mut flights = self.flights();
        if flights.get(topic).is_some_and(|f| f.ptr_eq(flight)) {
            flights.remove(topic);
        }
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A copy of a shared lookup error for one waiter: the same variant and
/// message (an I/O source keeps its kind and text).
fn copy_error(error: &KernelError) -> KernelError {
    match error {
        KernelError::Remoting(remoting) => KernelError::Remoting(copy_remoting_error(remoting)),
        KernelError::NoRoute { topic } => KernelError::NoRoute {
            topic: topic.clone(),
        },
        KernelError::NoBrokerAddress { broker_name } => KernelError::NoBrokerAddress {
            broker_name: broker_name.clone(),
        },
        KernelError::Io { what, source } => KernelError::Io {
            what: what.clone(),
            source: copy_io_error(source),
        },
        KernelError::Config(text) => KernelError::Config(text.clone()),
        KernelError::Shutdown(what) => KernelError::Shutdown(what),
        other => KernelError::Remoting(RemotingError::MalformedFrame(other.to_string())),
    }
}

fn copy_remoting_error(error: &RemotingError) -> RemotingError {
    match error {
        RemotingError::Response { addr, code, remark } => RemotingError::Response {
            addr: addr.clone(),
            code: *code,
            remark: remark.clone(),
        },
        RemotingError::Timeout { addr, after } => RemotingError::Timeout {
            addr: addr.clone(),
            after: *after,
        },
        RemotingError::ConnectTimeout { addr, after } => RemotingError::ConnectTimeout {
            addr: addr.clone(),
            after: *after,
        },
        RemotingError::Connect { addr, source } => RemotingError::Connect {
            addr: addr.clone(),
            source: copy_io_error(source),
        },
        RemotingError::ConnectionClosed { addr, reason } => RemotingError::ConnectionClosed {
            addr: addr.clone(),
            reason: reason.clone(),
        },
        RemotingError::TooManyPending { addr, limit } => RemotingError::TooManyPending {
            addr: addr.clone(),
            limit: *limit,
        },
        RemotingError::NoAddress(text) => RemotingError::NoAddress(text.clone()),
        RemotingError::Io(source) => RemotingError::Io(copy_io_error(source)),
        other => RemotingError::MalformedFrame(other.to_string()),
    }
}

fn copy_io_error(error: &std::io::Error) -> std::io::Error {
    std::io::Error::new(error.kind(), error.to_string())
}

/// Lands a flight when its caller is done with it, done or not.
struct Landing<'a> {
    routes: &'a Routes,
    topic: &'a str,
    flight: &'a Flight,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.routes.land(self.topic, self.flight);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use async_trait::async_trait;
    use rocketmq_model::route::{DEFAULT_TOPIC_QUEUE_NUMS, perm};
    use rocketmq_model::{BrokerData, QueueData, ResponseCode};

    use super::*;

    fn route(broker: &str, nums: i32) -> TopicRouteData {
        TopicRouteData {
            queue_datas: vec![QueueData {
                broker_name: broker.into(),
                read_queue_nums: nums,
                write_queue_nums: nums,
                perm: perm::READ | perm::WRITE,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                broker_name: broker.into(),
                broker_addrs: [(0, format!("{broker}:10911"))].into(),
                ..BrokerData::default()
            }],
            ..TopicRouteData::default()
        }
    }

    /// A nameserver knowing `TBW102` (8 queues) and whatever `known` holds,
    /// counting requests per topic, answering after 10 ms.
    #[derive(Default)]
    struct FakeNameServer {
        known: Mutex<HashMap<String, TopicRouteData>>,
        asked: Mutex<HashMap<String, usize>>,
        failures: AtomicUsize,
    }

    impl FakeNameServer {
        fn asked(&self, topic: &str) -> usize {
            self.asked.lock().unwrap().get(topic).copied().unwrap_or(0)
        }
    }

    #[async_trait]
    impl NameServerApi for FakeNameServer {
        async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
            *self
                .asked
                .lock()
                .unwrap()
                .entry(topic.to_owned())
                .or_default() += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            if self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                return Err(KernelError::Remoting(RemotingError::Response {
                    addr: "ns:9876".into(),
                    code: ResponseCode::SYSTEM_ERROR,
                    remark: "name server not ready".into(),
                }));
            }
            if topic == AUTO_CREATE_TOPIC {
                return Ok(route("broker-t", 8));
            }
            self.known
                .lock()
                .unwrap()
                .get(topic)
                .cloned()
                .ok_or_else(|| KernelError::NoRoute {
                    topic: topic.to_owned(),
                })
        }
    }

    fn routes_with(known: &[(&str, TopicRouteData)]) -> (Routes, Arc<FakeNameServer>) {
        let ns = Arc::new(FakeNameServer::default());
        for (topic, route) in known {
            ns.known
                .lock()
                .unwrap()
                .insert((*topic).into(), route.clone());
        }
        (Routes::new(ns.clone()), ns)
    }

    #[tokio::test(start_paused = true)]
    async fn a_miss_is_fetched_once_and_then_served_from_the_table() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        let first = routes.route("T").await.unwrap();
        let second = routes.route("T").await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(ns.asked("T"), 1);
        assert_eq!(
            &*routes.table().master_addr("broker-a").unwrap(),
            "broker-a:10911"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_master_address_is_looked_up_with_one_refresh_at_most() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        let mq = MessageQueue::new("T", "broker-a", 0);
        assert_eq!(&*routes.master_addr(&mq).await.unwrap(), "broker-a:10911");
        assert_eq!(&*routes.master_addr(&mq).await.unwrap(), "broker-a:10911");
        assert_eq!(ns.asked("T"), 1, "the second lookup is the table's");
        let gone = MessageQueue::new("T", "broker-z", 0);
        assert!(matches!(
            routes.master_addr(&gone).await,
            Err(KernelError::NoBrokerAddress { .. })
        ));
        assert_eq!(ns.asked("T"), 2, "one refresh for the unknown broker");
    }

    #[tokio::test(start_paused = true)]
    async fn the_cached_publish_info_needs_a_fetched_writable_route() {
        let mut read_only = route("broker-r", 4);
        read_only.queue_datas[0].perm = perm::READ;
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4)), ("R", read_only)]);
        assert!(routes.cached_publish_info("T").is_none(), "not fetched yet");
        let fetched = routes.publish_info("T").await.unwrap();
        let cached = routes.cached_publish_info("T").unwrap();
        assert!(Arc::ptr_eq(&fetched, &cached));
        assert_eq!(ns.asked("T"), 1, "the cache asks nobody");
        routes.refresh("R").await.unwrap();
        assert!(
            routes.cached_publish_info("R").is_none(),
            "no writable queue"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_given_up_on_is_not_joined_later() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        // The caller gives up before the 10 ms answer.
        let early = tokio::time::timeout(Duration::from_millis(5), routes.refresh("T")).await;
        assert!(early.is_err());
        tokio::time::sleep(Duration::from_secs(30)).await;
        ns.known
            .lock()
            .unwrap()
            .insert("T".into(), route("broker-b", 4));
        // Much later: asked again, not served the abandoned request's answer.
        routes.refresh("T").await.unwrap();
        assert_eq!(ns.asked("T"), 2);
        assert!(routes.table().master_addr("broker-b").is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_reports_changes() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        assert!(routes.refresh("T").await.unwrap());
        assert!(!routes.refresh("T").await.unwrap());
        ns.known
            .lock()
            .unwrap()
            .insert("T".into(), route("broker-a", 8));
        assert!(routes.refresh("T").await.unwrap());
        assert_eq!(routes.table().subscribe_queues("T").unwrap().len(), 8);
        assert_eq!(ns.asked("T"), 3);
    }

    /// Whoever looks a route up, the hook hears of each new or changed
    /// route once, and of nothing else (not of a template route either).
    #[tokio::test(start_paused = true)]
    async fn the_change_hook_hears_of_new_and_changed_routes_only() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let routes = routes.on_change({
            let heard = Arc::clone(&heard);
            move |topic| heard.lock().unwrap().push(topic.to_owned())
        });
        routes.route("T").await.unwrap();
        routes.refresh("T").await.unwrap();
        routes.publish_info("T").await.unwrap();
        assert_eq!(*heard.lock().unwrap(), ["T"]);
        ns.known
            .lock()
            .unwrap()
            .insert("T".into(), route("broker-b", 4));
        routes.clone().refresh("T").await.unwrap();
        routes.use_template_route("N", 4).await.unwrap();
        assert_eq!(*heard.lock().unwrap(), ["T", "T"]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_failures_are_shared_and_not_cached() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 4))]);
        ns.failures.store(1, Ordering::SeqCst);
        let (a, b) = tokio::join!(routes.route("T"), routes.route("T"));
        for result in [a, b] {
            let err = result.unwrap_err();
            assert!(
                matches!(
                    &err,
                    KernelError::Remoting(RemotingError::Response { code: ResponseCode::SYSTEM_ERROR, remark, .. })
                        if remark == "name server not ready"
                ),
                "{err:?}"
            );
        }
        assert_eq!(ns.asked("T"), 1);
        assert!(
            routes.route("T").await.is_ok(),
            "the next lookup asks again"
        );
        assert_eq!(ns.asked("T"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_topic_is_no_route_unless_the_template_is_used() {
        let (routes, ns) = routes_with(&[]);
        assert!(matches!(
            routes.publish_info("NEW").await,
            Err(KernelError::NoRoute { topic }) if topic == "NEW"
        ));
        let info = routes
            .publish_info_or_template("NEW", DEFAULT_TOPIC_QUEUE_NUMS)
            .await
            .unwrap();
        let names: Vec<String> = info.queues().iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "NEW@broker-t#0",
                "NEW@broker-t#1",
                "NEW@broker-t#2",
                "NEW@broker-t#3"
            ]
        );
        assert_eq!(ns.asked(AUTO_CREATE_TOPIC), 1);
        // The template route is now the topic's route.
        assert_eq!(routes.publish_info("NEW").await.unwrap().queues().len(), 4);
        assert_eq!(ns.asked("NEW"), 2);
    }

    /// A topic whose route has no writable queue (read-only, or no write
    /// queues: what an admin sets to stop its writes; or its broker's
    /// master is down) is not sent to through the template, as in Java
    /// (`isHaveTopicRouterInfo`): the broker does not check a topic's write
    /// permission on a send, so the template's queues would store the
    /// messages (or create the topic on other brokers), and the template
    /// would replace the topic's route, which its consumers read.
    #[tokio::test(start_paused = true)]
    async fn a_topic_without_writable_queues_does_not_use_the_template() {
        let mut read_only = route("broker-r", 4);
        read_only.queue_datas[0].perm = perm::READ;
        let mut master_down = route("broker-s", 4);
        master_down.broker_datas[0].broker_addrs = [(1, "broker-s1:10911".into())].into();
        let (routes, ns) = routes_with(&[("R", read_only), ("S", master_down)]);
        for (topic, broker) in [("R", "broker-r"), ("S", "broker-s")] {
            assert!(matches!(
                routes.publish_info_or_template(topic, 4).await,
                Err(KernelError::NoRoute { topic: t }) if t == topic
            ));
            let queues = routes.table().subscribe_queues(topic).unwrap();
            assert_eq!(queues.len(), 4);
            assert!(queues.iter().all(|mq| mq.broker_name == broker));
        }
        assert_eq!(ns.asked(AUTO_CREATE_TOPIC), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn known_topic_does_not_use_the_template() {
        let (routes, ns) = routes_with(&[("T", route("broker-a", 2))]);
        let info = routes.publish_info_or_template("T", 4).await.unwrap();
        assert_eq!(info.queues().len(), 2);
        assert_eq!(ns.asked(AUTO_CREATE_TOPIC), 0);
    }

    #[test]
    fn copied_errors_keep_variant_and_text() {
        let errors = [
            KernelError::NoRoute { topic: "T".into() },
            KernelError::NoBrokerAddress {
                broker_name: "b".into(),
            },
            KernelError::Config("bad".into()),
            KernelError::Shutdown("routes"),
            KernelError::Io {
                what: "read x".into(),
                source: std::io::Error::other("disk"),
            },
            KernelError::Remoting(RemotingError::Timeout {
                addr: "a".into(),
                after: Duration::from_secs(3),
            }),
            KernelError::Remoting(RemotingError::Connect {
                addr: "a".into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            }),
            KernelError::Remoting(RemotingError::ConnectionClosed {
                addr: "a".into(),
                reason: "eof".into(),
            }),
        ];
        for error in &errors {
            let copy = copy_error(error);
            assert_eq!(copy.to_string(), error.to_string());
            assert_eq!(copy.is_retriable(), error.is_retriable());
            assert_eq!(std::mem::discriminant(&copy), std::mem::discriminant(error));
        }
    }
}
