//! [`BrokerOffsetRemote`]: the remote offset store's broker calls, sent to
//! the master of each queue's broker.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use rocketmq_model::MessageQueue;
use rocketmq_model::header::{QueryConsumerOffsetRequestHeader, UpdateConsumerOffsetRequestHeader};

use super::{BrokerApi, CallMode};
use crate::error::Result;
use crate::offset::OffsetRemote;
use crate::route::Routes;

/// [`OffsetRemote`] over a [`BrokerApi`]: QUERY_CONSUMER_OFFSET and
/// UPDATE_CONSUMER_OFFSET go to the master of the queue's broker, found in
/// the route table, or, when the master is down, to one of its slaves, as
/// Java's do (`findBrokerAddressInSubscribe(name, MASTER_ID, false)`): a
/// slave answers the offsets it synced from the master, so a queue assigned
/// meanwhile starts where the group was rather than waiting for the master.
///
/// The topic's route is refreshed once first as Java's
/// `RemoteBrokerOffsetStore` does it: a query when the broker has no known
/// master (`fetchConsumeOffsetFromBroker` asks for the master only at first),
/// an update only when the broker has no known address at all
/// (`updateConsumeOffsetToBroker` takes a slave at once), so that persisting
/// every 5 s while a master is down does not ask the nameserver each time.
///
/// The query leaves `setZeroIfNotFound` unset, as Java does: a broker then
/// answers 0 rather than QUERY_NOT_FOUND for a new group on a queue whose
/// messages are all still in memory (PROTOCOL.md §3.5).
#[derive(Clone)]
pub struct BrokerOffsetRemote {
    api: Arc<dyn BrokerApi>,
    routes: Routes,
}

impl fmt::Debug for BrokerOffsetRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerOffsetRemote")
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl BrokerOffsetRemote {
    /// Calls through `api`, addresses from `routes`.
    pub fn new(api: Arc<dyn BrokerApi>, routes: Routes) -> Self {
        BrokerOffsetRemote { api, routes }
    }

    /// Where a query goes: the master of `mq`'s broker (the route
    /// refreshed once when it has none), else the broker's lowest-id
    /// address.
    async fn query_addr(&self, mq: &MessageQueue) -> Result<Arc<str>> {
        let master = self.routes.master_addr(mq).await;
        if master.is_ok() {
            return master;
        }
        match self.slave_addr(mq) {
            Some(addr) => Ok(addr),
            None => master,
        }
    }

    /// Where an update goes: the master of `mq`'s broker, else the
    /// broker's lowest-id address, as the route table has them; the route
    /// is refreshed only when the table has no address of the broker.
    async fn update_addr(&self, mq: &MessageQueue) -> Result<Arc<str>> {
        let known = self.routes.table().master_addr(&mq.broker_name).ok();
        match known.or_else(|| self.slave_addr(mq)) {
            Some(addr) => Ok(addr),
            None => self.query_addr(mq).await,
        }
    }

    /// The lowest-id address the route table has for `mq`'s broker.
    fn slave_addr(&self, mq: &MessageQueue) -> Option<Arc<str>> {
        self.routes
            .table()
            .broker(&mq.broker_name)
            .and_then(|broker| broker.broker_addrs.into_values().next())
            .map(Arc::from)
    }
}

#[async_trait]
impl OffsetRemote for BrokerOffsetRemote {
    async fn query_offset(&self, group: &str, mq: &MessageQueue) -> Result<Option<i64>> {
        let addr = self.query_addr(mq).await?;
        let header = QueryConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            set_zero_if_not_found: None,
            broker_name: Some(mq.broker_name.clone()),
        };
        self.api.query_consumer_offset(&addr, header).await
    }

    async fn update_offset(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
        oneway: bool,
    ) -> Result<()> {
        let addr = self.update_addr(mq).await?;
        let header = UpdateConsumerOffsetRequestHeader {
            consumer_group: group.to_owned(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            commit_offset: offset,
            broker_name: Some(mq.broker_name.clone()),
        };
        let mode = if oneway {
            CallMode::Oneway
        } else {
            CallMode::Sync
        };
        self.api.update_consumer_offset(&addr, header, mode).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use rocketmq_model::route::perm;
    use rocketmq_model::{BrokerData, QueueData, TopicRouteData};

    use super::*;
    use crate::KernelError;
    use crate::api::NameServerApi;

    /// One offset call: (addr, queue id, offset or -1 for a query, mode of
    /// an update).
    type OffsetCall = (String, i32, i64, Option<CallMode>);

    /// Records every offset call.
    #[derive(Default)]
    struct FakeBroker {
        calls: Mutex<Vec<OffsetCall>>,
    }

    #[async_trait]
    impl BrokerApi for FakeBroker {
        async fn query_consumer_offset(
            &self,
            addr: &str,
            header: QueryConsumerOffsetRequestHeader,
        ) -> Result<Option<i64>> {
            assert_eq!(header.broker_name.as_deref(), Some("broker-a"));
            assert_eq!(header.set_zero_if_not_found, None);
            let call = (addr.to_owned(), header.queue_id, -1, None);
            self.calls.lock().unwrap().push(call);
            Ok((header.queue_id == 0).then_some(42))
        }

        async fn update_consumer_offset(
            &self,
            addr: &str,
            header: UpdateConsumerOffsetRequestHeader,
            mode: CallMode,
        ) -> Result<()> {
            assert_eq!(header.consumer_group, "cg");
            let call = (
                addr.to_owned(),
                header.queue_id,
                header.commit_offset,
                Some(mode),
            );
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
    }

    /// Knows topic "T" on broker-a (master a0, slave a1, or only the slave
    /// when `master_down`); counts requests.
    #[derive(Default)]
    struct FakeNameServer {
        asked: AtomicUsize,
        master_down: AtomicBool,
    }

    #[async_trait]
    impl NameServerApi for FakeNameServer {
        async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            if topic != "T" {
                return Err(KernelError::NoRoute {
                    topic: topic.to_owned(),
                });
            }
            Ok(TopicRouteData {
                queue_datas: vec![QueueData {
                    broker_name: "broker-a".into(),
                    read_queue_nums: 4,
                    write_queue_nums: 4,
                    perm: perm::READ | perm::WRITE,
                    topic_sys_flag: 0,
                }],
                broker_datas: vec![BrokerData {
                    broker_name: "broker-a".into(),
                    broker_addrs: if self.master_down.load(Ordering::SeqCst) {
                        [(1, "a1:10911".into())].into()
                    } else {
                        [(0, "a0:10911".into()), (1, "a1:10911".into())].into()
                    },
                    ..BrokerData::default()
                }],
                ..TopicRouteData::default()
            })
        }
    }

    fn remote() -> (BrokerOffsetRemote, Arc<FakeBroker>, Arc<FakeNameServer>) {
        let broker = Arc::new(FakeBroker::default());
        let ns = Arc::new(FakeNameServer::default());
        let routes = Routes::new(ns.clone());
        (BrokerOffsetRemote::new(broker.clone(), routes), broker, ns)
    }

    #[tokio::test]
    async fn offsets_go_to_the_master_found_by_a_route_refresh() {
        let (remote, broker, ns) = remote();
        let mq = MessageQueue::new("T", "broker-a", 0);
        assert_eq!(remote.query_offset("cg", &mq).await.unwrap(), Some(42));
        assert_eq!(
            ns.asked.load(Ordering::SeqCst),
            1,
            "unknown broker: one refresh"
        );
        let other = MessageQueue::new("T", "broker-a", 3);
        assert_eq!(remote.query_offset("cg", &other).await.unwrap(), None);
        remote.update_offset("cg", &other, 77, true).await.unwrap();
        remote.update_offset("cg", &other, 78, false).await.unwrap();
        assert_eq!(
            ns.asked.load(Ordering::SeqCst),
            1,
            "known broker: no refresh"
        );
        let calls = broker.calls.lock().unwrap().clone();
        let a0 = String::from("a0:10911");
        assert_eq!(
            calls,
            [
                (a0.clone(), 0, -1, None),
                (a0.clone(), 3, -1, None),
                (a0.clone(), 3, 77, Some(CallMode::Oneway)),
                (a0, 3, 78, Some(CallMode::Sync)),
            ]
        );
    }

    #[tokio::test]
    async fn unknown_broker_or_topic_is_an_error_without_a_call() {
        let (remote, broker, _) = remote();
        let err = remote
            .query_offset("cg", &MessageQueue::new("U", "broker-a", 0))
            .await
            .unwrap_err();
        assert!(matches!(err, KernelError::NoRoute { .. }));
        let err = remote
            .update_offset("cg", &MessageQueue::new("T", "broker-z", 0), 1, true)
            .await
            .unwrap_err();
        assert!(
            matches!(err, KernelError::NoBrokerAddress { broker_name } if broker_name == "broker-z")
        );
        assert!(broker.calls.lock().unwrap().is_empty());
    }

    /// The master is down (the nameserver names only the slave): as Java's
    /// `RemoteBrokerOffsetStore` (`findBrokerAddressInSubscribe(.., false)`),
    /// the offset is read from and committed to the slave, so a queue
    /// assigned meanwhile starts from the group's offset instead of waiting
    /// for the master to come back.
    #[tokio::test]
    async fn offsets_go_to_a_slave_while_the_master_is_down() {
        let (remote, broker, ns) = remote();
        ns.master_down.store(true, Ordering::SeqCst);
        let mq = MessageQueue::new("T", "broker-a", 0);
        assert_eq!(remote.query_offset("cg", &mq).await.unwrap(), Some(42));
        remote.update_offset("cg", &mq, 50, false).await.unwrap();
        ns.master_down.store(false, Ordering::SeqCst);
        remote.routes.refresh("T").await.unwrap();
        remote.update_offset("cg", &mq, 51, false).await.unwrap();
        let calls = broker.calls.lock().unwrap().clone();
        let (a0, a1) = (String::from("a0:10911"), String::from("a1:10911"));
        assert_eq!(
            calls,
            [
                (a1.clone(), 0, -1, None),
                (a1, 0, 50, Some(CallMode::Sync)),
                (a0, 0, 51, Some(CallMode::Sync)),
            ],
            "the master again once the route names it"
        );
    }

    /// While the master is down, Java's `updateConsumeOffsetToBroker` goes
    /// to the slave its table names without asking the nameserver again
    /// (`findBrokerAddressInSubscribe(name, MASTER_ID, false)` finds it);
    /// only a broker it knows no address of makes it refresh the route.
    #[tokio::test]
    async fn updates_go_to_a_known_slave_without_a_route_refresh() {
        let (offsets, broker, ns) = remote();
        ns.master_down.store(true, Ordering::SeqCst);
        let mq = MessageQueue::new("T", "broker-a", 0);
        assert_eq!(offsets.query_offset("cg", &mq).await.unwrap(), Some(42));
        assert_eq!(ns.asked.load(Ordering::SeqCst), 1);
        for offset in [50, 51, 52] {
            offsets
                .update_offset("cg", &mq, offset, true)
                .await
                .unwrap();
        }
        assert_eq!(
            ns.asked.load(Ordering::SeqCst),
            1,
            "no refresh per persisted offset while the master is down"
        );
        let calls = broker.calls.lock().unwrap().clone();
        assert!(calls[1..].iter().all(|(addr, ..)| addr == "a1:10911"));
        assert_eq!(calls.len(), 4);

        let (offsets, _, ns) = remote();
        ns.master_down.store(true, Ordering::SeqCst);
        offsets.update_offset("cg", &mq, 53, true).await.unwrap();
        assert_eq!(
            ns.asked.load(Ordering::SeqCst),
            1,
            "an unknown broker: one refresh"
        );
    }
}
