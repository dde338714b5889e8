//! Topic routes (PROTOCOL.md §7.1, §3.2) and the pure functions that turn a
//! route into publish and subscribe queue lists (§8.3–8.4).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::body::nonstandard_json::{decode_quoting_integer_keys, json_error};
use crate::error::{ModelError, Result};
use crate::queue::MessageQueue;

/// The broker id of a master (`MixAll.MASTER_ID`).
pub const MASTER_ID: i64 = 0;

/// The template topic producers fall back to for a topic without a route
/// (`TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
pub const AUTO_CREATE_TOPIC: &str = "TBW102";

/// The Java producer's default `defaultTopicQueueNums`.
pub const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;

/// The most queues of one topic on one broker a route may name. Java sets no
/// limit and makes one queue object per count, so a route claiming two
/// billion queues would exhaust memory; real topics have at most a few
/// thousand.
pub const MAX_QUEUES_PER_BROKER: i32 = 65_536;

/// The most readable (or writable) queues a whole route may name, all its
/// brokers together.
pub const MAX_QUEUES_PER_ROUTE: i64 = 262_144;

/// The most bytes of broker names a route's queues may copy, all together
/// (each queue holds its broker's name): a route with a megabyte-long name
/// and many queues is refused too.
pub const MAX_QUEUE_NAME_BYTES: i64 = 64 * 1024 * 1024;

/// Permission bits of a topic or broker (`PermName`).
pub mod perm {
    /// Priority (unused by clients).
    pub const PRIORITY: i32 = 8;
    /// Readable: consumers may pull.
    pub const READ: i32 = 4;
    /// Writable: producers may send.
    pub const WRITE: i32 = 2;
    /// Inherited from the template topic.
    pub const INHERIT: i32 = 1;

    /// Whether `perm` allows reads.
    pub fn is_readable(perm: i32) -> bool {
        perm & READ == READ
    }

    /// Whether `perm` allows writes.
    pub fn is_writeable(perm: i32) -> bool {
        perm & WRITE == WRITE
    }
}

/// `QueueData.topicSysFlag` bits.
pub mod topic_sys_flag {
    /// Unit topic.
    pub const UNIT: i32 = 1;
    /// Unit subscription.
    pub const UNIT_SUB: i32 = 2;
}

/// The route of one topic, as the name server returns it for
/// GET_ROUTEINFO_BY_TOPIC (105).
///
/// `topicQueueMappingByBroker` (5.x static topics) is not kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    /// Explicit writable queue counts of an ordered topic, `"brokerA:4;brokerB:8"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// Queues per broker.
    #[serde(default)]
    pub queue_datas: Vec<QueueData>,
    /// Brokers and their addresses.
    #[serde(default)]
    pub broker_datas: Vec<BrokerData>,
    /// Filter servers per broker address (legacy).
    #[serde(default)]
    pub filter_server_table: HashMap<String, Vec<String>>,
}

/// The queues of a topic on one broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    /// Broker name.
    pub broker_name: String,
    /// Readable queue count.
    #[serde(default)]
    pub read_queue_nums: i32,
    /// Writable queue count.
    #[serde(default)]
    pub write_queue_nums: i32,
    /// Permission bits ([`perm`]).
    #[serde(default)]
    pub perm: i32,
    /// [`topic_sys_flag`] bits; route data from 4.8 and older spells the key
    /// `topicSynFlag`, which is accepted on read.
    #[serde(default, alias = "topicSynFlag")]
    pub topic_sys_flag: i32,
}

/// One broker (a master and its slaves) and its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// Cluster name.
    #[serde(default)]
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// Broker id → "host:port"; id [`MASTER_ID`] is the master.
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    /// 5.x zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    /// 5.x: a slave may act as master while the master is down.
    #[serde(default)]
    pub enable_acting_master: bool,
}

/// The whole cluster, as GET_BROKER_CLUSTER_INFO (106) returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// Broker name → broker.
    #[serde(default)]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Cluster name → broker names.
    #[serde(default)]
    pub cluster_addr_table: BTreeMap<String, BTreeSet<String>>,
}

/// The queues a producer may send to (`TopicPublishInfo`'s queue list).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishQueues {
    /// Queues in the order Java builds them.
    pub queues: Vec<MessageQueue>,
    /// True when the route came from `orderTopicConf` (an ordered topic).
    pub ordered: bool,
}

/// Where to pull from (`FindBrokerResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullAddr {
    /// "host:port".
    pub addr: String,
    /// Whether the address is a slave's (commit-offset bits are cleared then).
    pub slave: bool,
}

impl BrokerData {
    /// The master's address, if the broker has one.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }

    /// The master's address, else the lowest-id one (Java's
    /// `BrokerData.selectBrokerAddr` prefers the master too): where a
    /// request any of the broker's nodes can answer goes.
    pub fn any_addr(&self) -> Option<&str> {
        (self.master_addr()).or_else(|| self.broker_addrs.values().next().map(String::as_str))
    }

    /// `findBrokerAddressInSubscribe` (§8.4): the suggested id; for a slave id
    /// that is absent, the next id; otherwise any address (the lowest id).
    pub fn select_pull_addr(&self, suggested_id: i64) -> Option<PullAddr> {
        let slave = suggested_id != MASTER_ID;
        if let Some(addr) = self.broker_addrs.get(&suggested_id) {
            return Some(PullAddr {
                addr: addr.clone(),
                slave,
            });
        }
        if slave {
            let next = suggested_id
                .checked_add(1)
                .and_then(|id| self.broker_addrs.get(&id));
            if let Some(addr) = next {
                return Some(PullAddr {
                    addr: addr.clone(),
                    slave,
                });
            }
        }
        let (&id, addr) = self.broker_addrs.iter().next()?;
        Some(PullAddr {
            addr: addr.clone(),
            slave: id != MASTER_ID,
        })
    }
}

impl TopicRouteData {
    /// Decodes the route JSON, accepting bare integer `brokerAddrs` keys from
    /// old name servers and both `topicSysFlag` spellings (§7.1).
    /// A queue count above [`MAX_QUEUES_PER_BROKER`] is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let route: TopicRouteData = decode_quoting_integer_keys("TopicRouteData", bytes)?;
        route.check_queue_counts()?;
        Ok(route)
    }

    fn check_queue_counts(&self) -> Result<()> {
        let too_many = |broker: &str, what: &str, count: i32| {
            ModelError::malformed(
                "TopicRouteData",
                format!(
                    "{what} {count} of broker {broker} is above the limit of {MAX_QUEUES_PER_BROKER}"
                ),
            )
        };
        for qd in &self.queue_datas {
            if qd.read_queue_nums > MAX_QUEUES_PER_BROKER {
                return Err(too_many(
                    &qd.broker_name,
                    "readQueueNums",
                    qd.read_queue_nums,
                ));
            }
            if qd.write_queue_nums > MAX_QUEUES_PER_BROKER {
                return Err(too_many(
                    &qd.broker_name,
                    "writeQueueNums",
                    qd.write_queue_nums,
                ));
            }
        }
        let mut ordered = 0;
        // i64 and counts at most MAX_QUEUES_PER_BROKER: no overflow.
        let name_bytes = |name: &str, count: i32| i64::from(count.max(0)) * name.len() as i64;
        let mut names = 0;
        for (broker, count) in order_conf_entries(self.order_topic_conf.as_deref().unwrap_or("")) {
            if count > MAX_QUEUES_PER_BROKER {
                return Err(too_many(broker, "the orderTopicConf count", count));
            }
            ordered += i64::from(count.max(0));
            names += name_bytes(broker, count);
        }
        for qd in &self.queue_datas {
            // Subscribe queues copy it per read queue, publish queues per
            // write queue.
            names += name_bytes(&qd.broker_name, qd.read_queue_nums);
            names += name_bytes(&qd.broker_name, qd.write_queue_nums);
        }
        if names > MAX_QUEUE_NAME_BYTES {
            return Err(ModelError::malformed(
                "TopicRouteData",
                format!(
                    "the route's queues would copy {names} bytes of broker names, above the limit of {MAX_QUEUE_NAME_BYTES}"
                ),
            ));
        }
        let total = |count: fn(&QueueData) -> i32| -> i64 {
            self.queue_datas
                .iter()
                .map(|qd| i64::from(count(qd).max(0)))
                .sum()
        };
        let totals = [
            ("readQueueNums", total(|qd| qd.read_queue_nums)),
            ("writeQueueNums", total(|qd| qd.write_queue_nums)),
            ("orderTopicConf", ordered),
        ];
        match totals.iter().find(|(_, sum)| *sum > MAX_QUEUES_PER_ROUTE) {
            Some((what, sum)) => Err(ModelError::malformed(
                "TopicRouteData",
                format!(
                    "the route's {what} add up to {sum}, above the limit of {MAX_QUEUES_PER_ROUTE}"
                ),
            )),
            None => Ok(()),
        }
    }

    /// Encodes standard JSON (quoted map keys).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| json_error("TopicRouteData", e))
    }

    /// The broker named `broker_name`.
    pub fn broker(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }

    /// The master address of `broker_name`.
    pub fn master_addr(&self, broker_name: &str) -> Option<&str> {
        self.broker(broker_name)?.master_addr()
    }

    /// Where to pull `broker_name`'s queues from, given the broker id the last
    /// pull response suggested (§8.4).
    pub fn select_pull_addr(&self, broker_name: &str, suggested_id: i64) -> Option<PullAddr> {
        self.broker(broker_name)?.select_pull_addr(suggested_id)
    }

    /// The queues a producer of `topic` sends to (§8.3,
    /// `topicRouteData2TopicPublishInfo`): from `orderTopicConf` when set (an
    /// ordered topic; malformed entries are skipped), otherwise every writable
    /// queue of every broker with a master, brokers sorted by name.
    pub fn publish_queues(&self, topic: &str) -> PublishQueues {
        match self
            .order_topic_conf
            .as_deref()
            .filter(|conf| !conf.is_empty())
        {
            Some(conf) => PublishQueues {
                queues: ordered_queues(topic, conf),
                ordered: true,
            },
            None => PublishQueues {
                queues: self.writable_queues(topic),
                ordered: false,
            },
        }
    }

    fn writable_queues(&self, topic: &str) -> Vec<MessageQueue> {
        let mut queue_datas: Vec<&QueueData> = self.queue_datas.iter().collect();
        queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
        queue_datas
            .into_iter()
            .filter(|qd| perm::is_writeable(qd.perm) && self.master_addr(&qd.broker_name).is_some())
            .flat_map(|qd| queue_range(topic, &qd.broker_name, qd.write_queue_nums))
            .collect()
    }

    /// The queues a consumer of `topic` reads (§8.4): every queue of every
    /// readable queueData, in route order.
    pub fn subscribe_queues(&self, topic: &str) -> Vec<MessageQueue> {
        self.queue_datas
            .iter()
            .filter(|qd| perm::is_readable(qd.perm))
            .flat_map(|qd| queue_range(topic, &qd.broker_name, qd.read_queue_nums))
            .collect()
    }

    /// Adapts the route of [`AUTO_CREATE_TOPIC`] for a topic that has none
    /// yet (§8.3): every queueData's read and write counts become
    /// `min(default_topic_queue_nums, readQueueNums)`, as Java does (it caps
    /// both by the *read* count).
    pub fn cap_for_auto_create(&mut self, default_topic_queue_nums: i32) {
        for qd in &mut self.queue_datas {
            let nums = default_topic_queue_nums.min(qd.read_queue_nums);
            qd.read_queue_nums = nums;
            qd.write_queue_nums = nums;
        }
    }
}

fn queue_range<'a>(
    topic: &'a str,
    broker_name: &'a str,
    count: i32,
) -> impl Iterator<Item = MessageQueue> + 'a {
    // Decoded routes are checked; one built in code is held to the limit too.
    (0..count.clamp(0, MAX_QUEUES_PER_BROKER))
        .map(move |id| MessageQueue::new(topic, broker_name, id))
}

/// The well-formed `broker:count` entries of an `orderTopicConf`.
fn order_conf_entries(conf: &str) -> impl Iterator<Item = (&str, i32)> {
    conf.split(';').filter_map(|entry| {
        let (broker, nums) = entry.split_once(':')?;
        Some((broker, nums.trim().parse::<i32>().ok()?))
    })
}

fn ordered_queues(topic: &str, conf: &str) -> Vec<MessageQueue> {
    order_conf_entries(conf)
        .flat_map(|(broker, nums)| queue_range(topic, broker, nums).collect::<Vec<_>>())
        .collect()
}

impl ClusterInfo {
    /// Decodes the JSON, accepting bare integer `brokerAddrs` keys.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        decode_quoting_integer_keys("ClusterInfo", bytes)
    }

    /// Encodes standard JSON.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| json_error("ClusterInfo", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JAVA_BARE_KEYS: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false},{"brokerAddrs":{1:"10.0.0.4:10911"},"brokerName":"broker-c","cluster":"DefaultCluster"},{"brokerAddrs":{0:"10.0.0.3:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","zoneName":"z1"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-b","perm":6,"readQueueNums":4,"topicSysFlag":0,"writeQueueNums":2},{"brokerName":"broker-c","perm":6,"readQueueNums":1,"topicSysFlag":0,"writeQueueNums":1},{"brokerName":"broker-a","perm":4,"readQueueNums":2,"topicSynFlag":1,"writeQueueNums":2}]}"#;

    fn route() -> TopicRouteData {
        TopicRouteData::decode(JAVA_BARE_KEYS.as_bytes()).unwrap()
    }

    #[test]
    fn queue_counts_past_the_limit_are_refused() {
        let route = |queue_data: &str, order: &str| {
            format!(
                r#"{{"brokerDatas":[{{"brokerAddrs":{{"0":"10.0.0.1:10911"}},"brokerName":"b","cluster":"c"}}],"queueDatas":[{queue_data}]{order}}}"#
            )
        };
        let queues = |r: i32, w: i32| {
            format!(r#"{{"brokerName":"b","perm":6,"readQueueNums":{r},"writeQueueNums":{w}}}"#)
        };
        let limit = MAX_QUEUES_PER_BROKER;
        let fine = TopicRouteData::decode(route(&queues(limit, limit), "").as_bytes()).unwrap();
        assert_eq!(fine.subscribe_queues("T").len(), limit as usize);
        for bad in [
            route(&queues(i32::MAX, 4), ""),
            route(&queues(4, limit + 1), ""),
            route(&queues(4, 4), r#","orderTopicConf":"b:2147483647""#),
        ] {
            match TopicRouteData::decode(bad.as_bytes()) {
                Err(ModelError::Malformed { reason, .. }) => {
                    assert!(reason.contains("above the limit"), "{reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        let many_brokers = (0..5)
            .map(|i| queues(limit, 1).replace(r#""b""#, &format!(r#""b{i}""#)))
            .collect::<Vec<_>>()
            .join(",");
        match TopicRouteData::decode(route(&many_brokers, "").as_bytes()) {
            Err(ModelError::Malformed { reason, .. }) => {
                assert!(
                    reason.contains("readQueueNums add up to 327680"),
                    "{reason}"
                );
            }
            other => panic!("five brokers at the limit: {other:?}"),
        }
        // A long broker name times many queues is refused too.
        let long_name =
            queues(limit, limit).replace(r#""b""#, &format!("\"{}\"", "b".repeat(2048)));
        match TopicRouteData::decode(route(&long_name, "").as_bytes()) {
            Err(ModelError::Malformed { reason, .. }) => {
                assert!(reason.contains("bytes of broker names"), "{reason}");
            }
            other => panic!("a 2 KiB broker name on 65536 queues: {other:?}"),
        }
        // A route built in code is held to the limit when it makes queues.
        let mut built = fine;
        built.queue_datas[0].read_queue_nums = i32::MAX;
        assert_eq!(built.subscribe_queues("T").len(), limit as usize);
    }

    #[test]
    fn decodes_bare_keys_and_both_sys_flag_spellings() {
        let route = route();
        assert_eq!(route.master_addr("broker-b"), Some("10.0.0.1:10911"));
        assert_eq!(
            route.broker("broker-b").unwrap().broker_addrs[&1],
            "10.0.0.2:10911"
        );
        assert_eq!(
            route.broker("broker-a").unwrap().zone_name.as_deref(),
            Some("z1")
        );
        assert_eq!(route.queue_datas[2].topic_sys_flag, 1);
        let standard = r#"{"brokerDatas":[{"brokerAddrs":{"0":"h:1"},"brokerName":"b"}],"queueDatas":[{"brokerName":"b","perm":6,"readQueueNums":1,"topicSysFlag":2,"writeQueueNums":1}]}"#;
        let route = TopicRouteData::decode(standard.as_bytes()).unwrap();
        assert_eq!(route.master_addr("b"), Some("h:1"));
        assert_eq!(route.queue_datas[0].topic_sys_flag, 2);
    }

    #[test]
    fn encodes_standard_json_that_decodes_back() {
        let route = route();
        let bytes = route.encode().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#),
            "{text}"
        );
        assert!(text.contains(r#""topicSysFlag":1"#), "{text}");
        assert_eq!(TopicRouteData::decode(&bytes).unwrap(), route);
    }

    #[test]
    fn rejects_garbage() {
        for input in [&b"{"[..], b"[]", b"{\"queueDatas\":5}", b"\xff{"] {
            assert!(TopicRouteData::decode(input).is_err(), "{input:?}");
        }
    }

    #[test]
    fn publish_queues_sorted_writable_with_master() {
        let queues = route().publish_queues("T");
        assert!(!queues.ordered);
        // broker-a is read-only, broker-c has no master: only broker-b's 2 write queues.
        assert_eq!(
            queues.queues,
            [
                MessageQueue::new("T", "broker-b", 0),
                MessageQueue::new("T", "broker-b", 1)
            ]
        );
        let mut route = route();
        route.queue_datas[2].perm = perm::READ | perm::WRITE;
        let names: Vec<String> = route
            .publish_queues("T")
            .queues
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "T@broker-a#0",
                "T@broker-a#1",
                "T@broker-b#0",
                "T@broker-b#1"
            ]
        );
    }

    #[test]
    fn publish_queues_from_order_topic_conf() {
        let mut route = route();
        route.order_topic_conf = Some("broker-z:2;bad;broker-y:x;broker-a:1".into());
        let queues = route.publish_queues("T");
        assert!(queues.ordered);
        let names: Vec<String> = queues.queues.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["T@broker-z#0", "T@broker-z#1", "T@broker-a#0"]);
        route.order_topic_conf = Some(String::new());
        assert!(!route.publish_queues("T").ordered);
    }

    #[test]
    fn subscribe_queues_readable_in_route_order() {
        let mut route = route();
        route.queue_datas[1].perm = perm::WRITE;
        let names: Vec<String> = route
            .subscribe_queues("T")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "T@broker-b#0",
                "T@broker-b#1",
                "T@broker-b#2",
                "T@broker-b#3",
                "T@broker-a#0",
                "T@broker-a#1"
            ]
        );
    }

    #[test]
    fn pull_address_rules() {
        let mut broker = BrokerData {
            broker_name: "b".into(),
            ..Default::default()
        };
        broker.broker_addrs.insert(0, "m".into());
        broker.broker_addrs.insert(2, "s2".into());
        let pick = |b: &BrokerData, id| b.select_pull_addr(id).map(|p| (p.addr, p.slave));
        assert_eq!(pick(&broker, 0), Some(("m".into(), false)));
        assert_eq!(pick(&broker, 2), Some(("s2".into(), true)));
        // Absent slave id: try id + 1.
        assert_eq!(pick(&broker, 1), Some(("s2".into(), true)));
        // Absent slave id and id + 1: any address (the lowest id).
        assert_eq!(pick(&broker, 5), Some(("m".into(), false)));
        broker.broker_addrs.remove(&0);
        assert_eq!(pick(&broker, 0), Some(("s2".into(), true)));
        assert_eq!(pick(&broker, i64::MAX), Some(("s2".into(), true)));
        broker.broker_addrs.clear();
        assert_eq!(pick(&broker, 0), None);
        assert_eq!(route().select_pull_addr("nope", 0), None);
        assert_eq!(route().master_addr("broker-c"), None);
    }

    #[test]
    fn any_address_prefers_the_master_then_the_lowest_id() {
        let mut broker = BrokerData::default();
        broker.broker_addrs.insert(3, "s3".into());
        broker.broker_addrs.insert(2, "s2".into());
        assert_eq!(broker.any_addr(), Some("s2"));
        broker.broker_addrs.insert(0, "m".into());
        assert_eq!(broker.any_addr(), Some("m"));
        broker.broker_addrs.clear();
        assert_eq!(broker.any_addr(), None);
    }

    #[test]
    fn auto_create_cap_uses_read_count() {
        let mut route = route();
        route.queue_datas[0].read_queue_nums = 8;
        route.queue_datas[0].write_queue_nums = 16;
        route.cap_for_auto_create(DEFAULT_TOPIC_QUEUE_NUMS);
        let nums: Vec<(i32, i32)> = route
            .queue_datas
            .iter()
            .map(|qd| (qd.read_queue_nums, qd.write_queue_nums))
            .collect();
        assert_eq!(nums, [(4, 4), (1, 1), (2, 2)]);
    }

    #[test]
    fn cluster_info_with_bare_keys() {
        let json = r#"{"brokerAddrTable":{"b":{"brokerAddrs":{0:"h:1"},"brokerName":"b","cluster":"c"}},"clusterAddrTable":{"c":["b"]}}"#;
        let info = ClusterInfo::decode(json.as_bytes()).unwrap();
        assert_eq!(info.broker_addr_table["b"].master_addr(), Some("h:1"));
        assert!(info.cluster_addr_table["c"].contains("b"));
        assert_eq!(ClusterInfo::decode(&info.encode().unwrap()).unwrap(), info);
    }

    fn arb_broker() -> impl Strategy<Value = BrokerData> {
        (
            "[a-z]{1,6}",
            "[a-z-]{1,8}",
            prop::collection::btree_map(-2_i64..4, "[0-9.:]{1,12}", 0..4),
            prop::option::of("[a-z]{1,4}"),
            any::<bool>(),
        )
            .prop_map(
                |(cluster, broker_name, broker_addrs, zone_name, enable_acting_master)| {
                    BrokerData {
                        cluster,
                        broker_name,
                        broker_addrs,
                        zone_name,
                        enable_acting_master,
                    }
                },
            )
    }

    fn arb_queue_data() -> impl Strategy<Value = QueueData> {
        ("[a-z-]{1,8}", 0..16, 0..16, 0..16, 0..4).prop_map(|(broker_name, r, w, perm, flag)| {
            QueueData {
                broker_name,
                read_queue_nums: r,
                write_queue_nums: w,
                perm,
                topic_sys_flag: flag,
            }
        })
    }

    proptest! {
        #[test]
        fn route_round_trips(
            order_topic_conf in prop::option::of("[a-z:;0-9]{0,12}"),
            queue_datas in prop::collection::vec(arb_queue_data(), 0..4),
            broker_datas in prop::collection::vec(arb_broker(), 0..4),
        ) {
            let route = TopicRouteData { order_topic_conf, queue_datas, broker_datas, ..Default::default() };
            let too_many = order_conf_entries(route.order_topic_conf.as_deref().unwrap_or(""))
                .any(|(_, count)| count > MAX_QUEUES_PER_BROKER);
            match TopicRouteData::decode(&route.encode().unwrap()) {
                Ok(decoded) => {
                    prop_assert!(!too_many, "a count past the limit was accepted");
                    prop_assert_eq!(decoded, route.clone());
                }
                Err(error) => prop_assert!(too_many, "{error}"),
            }
            // Publish queues are always writable queues of brokers with a master.
            for mq in route.publish_queues("T").queues {
                prop_assert!(mq.queue_id >= 0);
            }
        }

        #[test]
        fn cluster_info_round_trips(
            brokers in prop::collection::btree_map("[a-z-]{1,8}", arb_broker(), 0..3),
            clusters in prop::collection::btree_map("[a-z]{1,6}", prop::collection::btree_set("[a-z-]{1,8}", 0..3), 0..3),
        ) {
            let info = ClusterInfo { broker_addr_table: brokers, cluster_addr_table: clusters };
            prop_assert_eq!(ClusterInfo::decode(&info.encode().unwrap()).unwrap(), info);
        }

        #[test]
        fn route_decode_never_panics(input in "\\PC{0,64}") {
            let _ = TopicRouteData::decode(input.as_bytes());
        }
    }
}
