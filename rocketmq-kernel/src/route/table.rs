//! [`RouteTable`]: what a client knows about topics and brokers, updated from
//! nameserver answers; pure state, no network.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use foldhash::HashMap;
use rocketmq_model::route::MASTER_ID;
use rocketmq_model::{BrokerData, MessageQueue, PullAddr, TopicRouteData};

use super::publish::PublishInfo;
use crate::error::{KernelError, Result};

/// Routes per topic, brokers per name, and the broker each queue should be
/// pulled from next.
///
/// Every method takes `&self` (the table is shared behind an `Arc`); locks are
/// held only for the duration of a lookup or an update, never across an
/// `.await`.
#[derive(Debug, Default)]
pub struct RouteTable {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    topics: HashMap<String, TopicEntry>,
    /// Broker name → addresses, from the latest route naming the broker.
    brokers: HashMap<String, BrokerData>,
    /// Broker name → master address, as in `brokers`: every send asks for
    /// one, so it is shared rather than copied out.
    masters: HashMap<String, Arc<str>>,
    /// The broker id the last pull response of a queue suggested.
    pull_from: HashMap<MessageQueue, i64>,
    /// Broker name → how many topics' routes name it: a change of one route
    /// costs its own brokers, not a scan of every topic.
    named: HashMap<String, usize>,
}

impl State {
    /// Counts the brokers of `route` as named once more (`true`) or once
    /// less, and forgets those no route names any more (as Java's
    /// `cleanOfflineBroker` finds them): nothing is sent to them then,
    /// heartbeats included.
    fn count_brokers(&mut self, route: &TopicRouteData, more: bool) {
        let names: HashSet<&str> = route
            .broker_datas
            .iter()
            .map(|broker| broker.broker_name.as_str())
            .collect();
        let mut forgotten = Vec::new();
        for name in names {
            if more {
                *self.named.entry(name.to_owned()).or_default() += 1;
                continue;
            }
            if let Some(count) = self.named.get_mut(name) {
                *count -= 1;
                if *count == 0 {
                    self.named.remove(name);
                    forgotten.push(name.to_owned());
                }
            }
        }
        if forgotten.is_empty() {
            return;
        }
        for name in &forgotten {
            self.brokers.remove(name);
            self.masters.remove(name);
        }
        self.pull_from
            .retain(|mq, _| !forgotten.contains(&mq.broker_name));
    }
}

#[derive(Debug)]
struct TopicEntry {
    route: Arc<TopicRouteData>,
    publish: Arc<PublishInfo>,
    subscribe: Arc<[MessageQueue]>,
}

impl RouteTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `route` as the route of `topic` and returns whether it changed
    /// (a new topic, or different queues or brokers; the order of the route's
    /// lists does not matter). Publish info, subscribe queues and the broker
    /// addresses are rebuilt from it; an unchanged route keeps its publish
    /// info, and so its round-robin position.
    pub fn update(&self, topic: &str, route: TopicRouteData) -> bool {
        let mut state = self.write();
        let changed = state
            .topics
            .get(topic)
            .is_none_or(|old| !same_route(&old.route, &route));
        for broker in &route.broker_datas {
            match broker.master_addr() {
                Some(addr)
                    if state.masters.get(&broker.broker_name).map(|a| &**a) != Some(addr) =>
                {
                    state
                        .masters
                        .insert(broker.broker_name.clone(), addr.into());
                }
                Some(_) => {}
                None => {
                    state.masters.remove(&broker.broker_name);
                }
            }
            state
                .brokers
                .insert(broker.broker_name.clone(), broker.clone());
        }
        if changed {
            let route = Arc::new(route);
            let entry = TopicEntry {
                publish: Arc::new(PublishInfo::from_route(topic, Arc::clone(&route))),
                subscribe: route.subscribe_queues(topic).into(),
                route,
            };
            state.count_brokers(&entry.route, true);
            if let Some(old) = state.topics.insert(topic.to_owned(), entry) {
                state.count_brokers(&old.route, false);
            }
        }
        changed
    }

    /// Forgets `topic`, and every broker no remaining route names.
    pub fn remove(&self, topic: &str) -> bool {
        let mut state = self.write();
        let removed = state.topics.remove(topic);
        if let Some(old) = &removed {
            state.count_brokers(&old.route, false);
        }
        state.pull_from.retain(|mq, _| mq.topic != topic);
        removed.is_some()
    }

    /// The topics with a route.
    pub fn topics(&self) -> Vec<String> {
        self.read().topics.keys().cloned().collect()
    }

    /// The route of `topic`.
    pub fn route(&self, topic: &str) -> Option<Arc<TopicRouteData>> {
        self.read()
            .topics
            .get(topic)
            .map(|entry| Arc::clone(&entry.route))
    }

    /// Where a producer of `topic` may send (§8.3), with its round-robin
    /// position.
    pub fn publish_info(&self, topic: &str) -> Option<Arc<PublishInfo>> {
        self.read()
            .topics
            .get(topic)
            .map(|entry| Arc::clone(&entry.publish))
    }

    /// The queues a consumer of `topic` reads (§8.4).
    pub fn subscribe_queues(&self, topic: &str) -> Option<Arc<[MessageQueue]>> {
        self.read()
            .topics
            .get(topic)
            .map(|entry| Arc::clone(&entry.subscribe))
    }

    /// Every known broker (masters and slaves), e.g. for heartbeats.
    pub fn brokers(&self) -> Vec<BrokerData> {
        self.read().brokers.values().cloned().collect()
    }

    /// The addresses of `broker_name`.
    pub fn broker(&self, broker_name: &str) -> Option<BrokerData> {
        self.read().brokers.get(broker_name).cloned()
    }

    /// The master address of `broker_name`: where sends, offset updates and
    /// queries, send-backs and queue locks go.
    pub fn master_addr(&self, broker_name: &str) -> Result<Arc<str>> {
        self.read()
            .masters
            .get(broker_name)
            .map(Arc::clone)
            .ok_or_else(|| KernelError::NoBrokerAddress {
                broker_name: broker_name.to_owned(),
            })
    }

    /// Remembers the broker id a pull response of `mq` suggested
    /// (`suggestWhichBrokerId`) for the next pull of `mq`.
    pub fn record_pull_suggestion(&self, mq: &MessageQueue, broker_id: i64) {
        let mut state = self.write();
        if broker_id == MASTER_ID {
            state.pull_from.remove(mq);
        } else {
            state.pull_from.insert(mq.clone(), broker_id);
        }
    }

    /// The broker id the next pull of `mq` should use (the master until a
    /// pull response suggested another).
    pub fn suggested_broker_id(&self, mq: &MessageQueue) -> i64 {
        self.read().pull_from.get(mq).copied().unwrap_or(MASTER_ID)
    }

    /// Where to pull `mq` from (§8.4): the suggested broker when it is known,
    /// else the next slave id, else any address of the broker.
    pub fn pull_addr(&self, mq: &MessageQueue) -> Result<PullAddr> {
        let state = self.read();
        let suggested = state.pull_from.get(mq).copied().unwrap_or(MASTER_ID);
        state
            .brokers
            .get(&mq.broker_name)
            .and_then(|broker| broker.select_pull_addr(suggested))
            .ok_or_else(|| KernelError::NoBrokerAddress {
                broker_name: mq.broker_name.clone(),
            })
    }
}

/// Whether two routes have the same content, whatever the order of their
/// queue and broker lists (Java's `topicRouteDataChanged` sorts both first).
fn same_route(old: &TopicRouteData, new: &TopicRouteData) -> bool {
    normalized(old) == normalized(new)
}

fn normalized(route: &TopicRouteData) -> TopicRouteData {
    let mut route = route.clone();
    route
        .queue_datas
        .sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    route
        .broker_datas
        .sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    route
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rocketmq_model::QueueData;
    use rocketmq_model::route::perm;

    use super::*;

    fn broker(name: &str, addrs: &[(i64, &str)]) -> BrokerData {
        BrokerData {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_addrs: addrs
                .iter()
                .map(|(id, addr)| (*id, (*addr).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            ..BrokerData::default()
        }
    }

    fn queue_data(name: &str, nums: i32, perm: i32) -> QueueData {
        QueueData {
            broker_name: name.into(),
            read_queue_nums: nums,
            write_queue_nums: nums,
            perm,
            topic_sys_flag: 0,
        }
    }

    fn two_brokers() -> TopicRouteData {
        TopicRouteData {
            queue_datas: vec![
                queue_data("broker-b", 2, perm::READ | perm::WRITE),
                queue_data("broker-a", 2, perm::READ | perm::WRITE),
            ],
            broker_datas: vec![
                broker("broker-b", &[(0, "b0:10911"), (1, "b1:10911")]),
                broker("broker-a", &[(0, "a0:10911")]),
            ],
            ..TopicRouteData::default()
        }
    }

    #[test]
    fn update_reports_new_and_changed_routes_only() {
        let table = RouteTable::new();
        assert!(table.update("T", two_brokers()));
        assert!(!table.update("T", two_brokers()));
        let mut reordered = two_brokers();
        reordered.queue_datas.reverse();
        reordered.broker_datas.reverse();
        assert!(!table.update("T", reordered), "order does not matter");
        let mut more = two_brokers();
        more.queue_datas[0].write_queue_nums = 4;
        assert!(table.update("T", more));
        let mut moved = two_brokers();
        moved.broker_datas[1] = broker("broker-a", &[(0, "a9:10911")]);
        assert!(table.update("T", moved));
        assert_eq!(&*table.master_addr("broker-a").unwrap(), "a9:10911");
    }

    #[test]
    fn unchanged_route_keeps_its_publish_info() {
        let table = RouteTable::new();
        table.update("T", two_brokers());
        let before = table.publish_info("T").unwrap();
        table.update("T", two_brokers());
        assert!(Arc::ptr_eq(&before, &table.publish_info("T").unwrap()));
    }

    #[test]
    fn publish_and_subscribe_queues_follow_the_route_rules() {
        let table = RouteTable::new();
        let mut route = two_brokers();
        route.queue_datas[0].perm = perm::READ; // broker-b read-only
        table.update("T", route);
        let publish = table.publish_info("T").unwrap();
        let names: Vec<String> = publish.queues().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["T@broker-a#0", "T@broker-a#1"]);
        assert!(!publish.is_ordered());
        assert_eq!(table.subscribe_queues("T").unwrap().len(), 4);
        assert!(table.publish_info("U").is_none());
        assert!(table.subscribe_queues("U").is_none());
    }

    #[test]
    fn master_lookup_and_missing_brokers() {
        let table = RouteTable::new();
        table.update("T", two_brokers());
        assert_eq!(&*table.master_addr("broker-b").unwrap(), "b0:10911");
        let err = table.master_addr("broker-z").unwrap_err();
        assert!(
            matches!(&err, KernelError::NoBrokerAddress { broker_name } if broker_name == "broker-z")
        );
        assert!(err.is_retriable());
        let mut slave_only = two_brokers();
        slave_only.broker_datas[0] = broker("broker-b", &[(1, "b1:10911")]);
        table.update("T", slave_only);
        assert!(table.master_addr("broker-b").is_err());
        table.update("T", two_brokers());
        assert_eq!(&*table.master_addr("broker-b").unwrap(), "b0:10911");
    }

    #[test]
    fn pull_address_follows_the_remembered_suggestion() {
        let table = RouteTable::new();
        table.update("T", two_brokers());
        let mq = MessageQueue::new("T", "broker-b", 0);
        let other = MessageQueue::new("T", "broker-b", 1);
        assert_eq!(table.pull_addr(&mq).unwrap().addr, "b0:10911");
        table.record_pull_suggestion(&mq, 1);
        assert_eq!(table.suggested_broker_id(&mq), 1);
        let addr = table.pull_addr(&mq).unwrap();
        assert_eq!((addr.addr.as_str(), addr.slave), ("b1:10911", true));
        assert_eq!(table.pull_addr(&other).unwrap().addr, "b0:10911");
        table.record_pull_suggestion(&mq, 0);
        assert_eq!(table.pull_addr(&mq).unwrap().addr, "b0:10911");
        let unknown = MessageQueue::new("T", "broker-z", 0);
        assert!(matches!(
            table.pull_addr(&unknown),
            Err(KernelError::NoBrokerAddress { .. })
        ));
    }

    #[test]
    fn remove_forgets_the_topic_and_orphaned_brokers() {
        let table = RouteTable::new();
        table.update("T", two_brokers());
        let mut only_a = two_brokers();
        only_a.queue_datas.remove(0);
        only_a.broker_datas.remove(0);
        table.update("U", only_a);
        table.record_pull_suggestion(&MessageQueue::new("T", "broker-b", 0), 1);
        assert!(table.remove("T"));
        assert!(!table.remove("T"));
        assert_eq!(table.topics(), ["U"]);
        assert!(table.broker("broker-b").is_none());
        assert!(table.master_addr("broker-b").is_err());
        assert!(table.master_addr("broker-a").is_ok());
        assert_eq!(table.brokers().len(), 1);
        assert_eq!(
            table.suggested_broker_id(&MessageQueue::new("T", "broker-b", 0)),
            MASTER_ID
        );
    }

    #[test]
    fn a_broker_that_leaves_every_route_is_forgotten() {
        let table = RouteTable::new();
        table.update("T", two_brokers());
        table.update("U", two_brokers());
        let mut only_a = two_brokers();
        only_a.queue_datas.remove(0);
        only_a.broker_datas.remove(0);
        // broker-b left T, but U still names it.
        assert!(table.update("T", only_a.clone()));
        assert!(table.master_addr("broker-b").is_ok());
        assert_eq!(table.brokers().len(), 2);
        // Gone from U as well: no route names it, so it is forgotten.
        assert!(table.update("U", only_a));
        assert!(table.master_addr("broker-b").is_err());
        assert!(table.broker("broker-b").is_none());
        assert_eq!(table.brokers().len(), 1);
        assert!(table.master_addr("broker-a").is_ok());
    }

    /// The brokers the table knows are exactly those some current route
    /// names, whatever the order of updates and removals (the count kept per
    /// broker against a scan of every route).
    mod known_brokers {
        use proptest::prelude::*;

        use super::*;

        fn route_of(brokers: &[usize]) -> TopicRouteData {
            let names: Vec<String> = brokers.iter().map(|b| format!("broker-{b}")).collect();
            TopicRouteData {
                queue_datas: names
                    .iter()
                    .map(|name| queue_data(name, 1, perm::READ | perm::WRITE))
                    .collect(),
                broker_datas: names
                    .iter()
                    .map(|name| broker(name, &[(0, "h:1")]))
                    .collect(),
                ..TopicRouteData::default()
            }
        }

        proptest! {
            #[test]
            fn follow_the_routes(
                ops in proptest::collection::vec(
                    (0usize..4, proptest::option::of(proptest::collection::vec(0usize..4, 0..4))),
                    1..40,
                )
            ) {
                let table = RouteTable::new();
                let mut model: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
                for (topic, brokers) in ops {
                    let name = format!("T{topic}");
                    match brokers {
                        Some(brokers) => {
                            table.update(&name, route_of(&brokers));
                            model.insert(topic, brokers);
                        }
                        None => {
                            table.remove(&name);
                            model.remove(&topic);
                        }
                    }
                    let expected: std::collections::BTreeSet<String> = model
                        .values()
                        .flatten()
                        .map(|b| format!("broker-{b}"))
                        .collect();
                    let known: std::collections::BTreeSet<String> =
                        table.brokers().into_iter().map(|b| b.broker_name).collect();
                    prop_assert_eq!(&known, &expected);
                    for name in &expected {
                        prop_assert!(table.master_addr(name).is_ok());
                    }
                }
            }
        }
    }
}
