//! The fake nameserver: routes (GET_ROUTEINFO_BY_TOPIC, 105) and the cluster
//! map (GET_BROKER_CLUSTER_INFO, 106), filled in-process by the brokers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rocketmq_model::header::GetRouteInfoRequestHeader;
use rocketmq_model::route::MASTER_ID;
use rocketmq_model::{
    BrokerData, ClusterInfo, QueueData, RequestCode, ResponseCode, TopicRouteData,
};
use rocketmq_remoting::connection::InboundService;
use rocketmq_remoting::{RemotingCommand, RemotingError};

use crate::acl::Acl;
use crate::faults::{FaultChain, serve_with_faults};
use crate::reply::{self, header};

/// What the nameserver knows: brokers by name and, per topic, the queues each
/// broker serves.
#[derive(Debug, Default)]
pub(crate) struct NameServerState {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    brokers: BTreeMap<String, BrokerData>,
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
}

impl NameServerState {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or re-registers) a master broker.
    pub(crate) fn register_broker(&self, cluster: &str, name: &str, addr: &str) {
        let data = BrokerData {
            cluster: cluster.to_owned(),
            broker_name: name.to_owned(),
            broker_addrs: BTreeMap::from([(MASTER_ID, addr.to_owned())]),
            zone_name: None,
            enable_acting_master: false,
        };
        self.tables().brokers.insert(name.to_owned(), data);
    }

    /// Records that `broker` serves `topic` with these queues and permission.
    pub(crate) fn register_topic(&self, broker: &str, topic: &str, queues: QueueData) {
        self.tables()
            .topics
            .entry(topic.to_owned())
            .or_default()
            .insert(broker.to_owned(), queues);
    }

    /// Forgets a broker and its queues, as after its registration expired.
    pub(crate) fn forget_broker(&self, name: &str) -> bool {
        let mut tables = self.tables();
        let known = tables.brokers.remove(name).is_some();
        for queues in tables.topics.values_mut() {
            queues.remove(name);
        }
        tables.topics.retain(|_, queues| !queues.is_empty());
        known
    }

    /// The route of `topic`, if any broker serves it.
    pub(crate) fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let tables = self.tables();
        let queues = tables.topics.get(topic)?;
        let queue_datas: Vec<QueueData> = queues.values().cloned().collect();
        let broker_datas = queues
            .keys()
            .filter_map(|name| tables.brokers.get(name).cloned())
            .collect();
        Some(TopicRouteData {
            order_topic_conf: None,
            queue_datas,
            broker_datas,
            filter_server_table: Default::default(),
        })
    }

    /// Every broker and cluster.
    pub(crate) fn cluster_info(&self) -> ClusterInfo {
        let tables = self.tables();
        let mut info = ClusterInfo::default();
        for (name, data) in &tables.brokers {
            info.broker_addr_table.insert(name.clone(), data.clone());
            info.cluster_addr_table
                .entry(data.cluster.clone())
                .or_default()
                .insert(name.clone());
        }
        info
    }

    /// Answers one request.
    pub(crate) fn handle(&self, request: &RemotingCommand) -> RemotingCommand {
        match request.request_code() {
            RequestCode::GET_ROUTEINFO_BY_TOPIC => self.route_request(request),
            RequestCode::GET_BROKER_CLUSTER_INFO => encoded(self.cluster_info().encode()),
            other => reply::not_supported(other.0),
        }
    }

    fn route_request(&self, request: &RemotingCommand) -> RemotingCommand {
        let header = header!(request, GetRouteInfoRequestHeader);
        match self.route(&header.topic) {
            Some(route) => encoded(route.encode()),
            None => reply::error(
                ResponseCode::TOPIC_NOT_EXIST,
                format!(
                    "No topic route info in name server for the topic: {}\nSee http://rocketmq.apache.org/docs/faq/ for further details.",
                    header.topic
                ),
            ),
        }
    }
}

fn encoded(body: rocketmq_model::Result<Vec<u8>>) -> RemotingCommand {
    match body {
        Ok(body) => reply::ok().with_body(body),
        Err(error) => reply::error(ResponseCode::SYSTEM_ERROR, error.to_string()),
    }
}

/// The per-connection handler of the nameserver: requests that do not
/// authenticate (when ACL is on) are refused before anything else.
pub(crate) fn inbound(
    state: Arc<NameServerState>,
    faults: FaultChain,
    acl: Arc<Acl>,
) -> InboundService {
    InboundService::new(tower::service_fn(move |request: RemotingCommand| {
        let state = Arc::clone(&state);
        let faults = faults.clone();
        let refusal = acl.refusal(&request);
        async move {
            if let Some(refusal) = refusal {
                return Ok(refusal);
            }
            let response =
                serve_with_faults(&faults, request.code, async { state.handle(&request) }).await;
            Ok::<_, RemotingError>(response)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(n: i32) -> QueueData {
        QueueData {
            broker_name: String::new(),
            read_queue_nums: n,
            write_queue_nums: n,
            perm: 6,
            topic_sys_flag: 0,
        }
    }

    #[test]
    fn routes_name_the_brokers_serving_a_topic_until_forgotten() {
        let ns = NameServerState::default();
        ns.register_broker("c", "broker-a", "a:1");
        ns.register_broker("c", "broker-b", "b:1");
        ns.register_topic(
            "broker-a",
            "T",
            QueueData {
                broker_name: "broker-a".into(),
                ..queues(4)
            },
        );
        ns.register_topic(
            "broker-b",
            "T",
            QueueData {
                broker_name: "broker-b".into(),
                ..queues(2)
            },
        );
        let route = ns.route("T").unwrap();
        assert_eq!(route.queue_datas.len(), 2);
        assert_eq!(route.master_addr("broker-b"), Some("b:1"));
        assert!(ns.route("U").is_none());
        assert!(ns.forget_broker("broker-a"));
        let route = ns.route("T").unwrap();
        assert_eq!(route.broker_datas.len(), 1);
        assert!(ns.forget_broker("broker-b"));
        assert!(ns.route("T").is_none());
        assert!(ns.cluster_info().broker_addr_table.is_empty());
    }
}
