//! A fake consumer for the instance tests: records what the client instance
//! asks of it and answers with fixed figures.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rocketmq_client::{ClientConfig, ConsumerHandle};
use rocketmq_model::body::{
    ConsumeFromWhere, ConsumeMessageDirectlyResult, ConsumeResult, ConsumeType, ConsumerData,
    ExpressionType, MessageModel, ProcessQueueInfo, property_keys,
};
use rocketmq_model::{ConsumerRunningInfo, MessageExt, MessageQueue, SubscriptionData};
use rocketmq_testkit::TestCluster;

#[path = "../waiting/mod.rs"]
mod waiting;

/// A client config on the cluster's in-memory network.
pub fn config(cluster: &TestCluster, instance: &str) -> ClientConfig {
    let mut config = ClientConfig::new(cluster.namesrv_addrs());
    config.instance_name = instance.into();
    config.client_ip = Some("10.9.8.7".parse().unwrap());
    config.transport = Some(cluster.transport());
    config
}

/// Awaits `condition` on tokio time, failing after a minute.
pub async fn eventually(condition: impl FnMut() -> bool) {
    waiting::wait_until("the condition", Duration::from_secs(60), condition).await;
}

/// Records every call of the instance.
#[derive(Default)]
pub struct FakeConsumer {
    pub group: String,
    pub topic: String,
    pub rebalances: AtomicUsize,
    pub persists: AtomicUsize,
    pub resets: Mutex<Vec<(String, HashMap<MessageQueue, i64>)>>,
    pub consumed: Mutex<Vec<(MessageExt, Option<String>)>>,
}

impl FakeConsumer {
    pub fn new(group: &str, topic: &str) -> Self {
        FakeConsumer {
            group: group.into(),
            topic: topic.into(),
            ..FakeConsumer::default()
        }
    }

    pub fn count(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }

    pub fn queue(&self) -> MessageQueue {
        MessageQueue::new(&self.topic, "broker-a", 1)
    }
}

#[async_trait]
impl ConsumerHandle for FakeConsumer {
    fn group(&self) -> &str {
        &self.group
    }

    fn heartbeat_data(&self) -> ConsumerData {
        ConsumerData {
            consume_from_where: ConsumeFromWhere::LastOffset,
            consume_type: ConsumeType::ConsumePassively,
            group_name: self.group.clone(),
            message_model: MessageModel::Clustering,
            subscription_data_set: vec![
                SubscriptionData::from_expression(&self.topic, "*", ExpressionType::Tag).unwrap(),
            ],
            unit_mode: false,
        }
    }

    fn subscribed_topics(&self) -> Vec<String> {
        vec![self.topic.clone()]
    }

    async fn rebalance(&self) {
        self.rebalances.fetch_add(1, Ordering::SeqCst);
    }

    async fn persist_offsets(&self) {
        self.persists.fetch_add(1, Ordering::SeqCst);
    }

    async fn reset_offset(&self, topic: &str, offsets: HashMap<MessageQueue, i64>) {
        self.resets
            .lock()
            .unwrap()
            .push((topic.to_owned(), offsets));
    }

    fn running_info(&self) -> ConsumerRunningInfo {
        let mut info = ConsumerRunningInfo::default();
        info.properties.insert(
            property_keys::PROP_CONSUME_TYPE.to_owned(),
            "CONSUME_PASSIVELY".to_owned(),
        );
        let queue = ProcessQueueInfo {
            commit_offset: 7,
            cached_msg_count: 2,
            ..ProcessQueueInfo::default()
        };
        info.mq_table = BTreeMap::from([(self.queue(), queue)]);
        info
    }

    fn consumer_status(&self, topic: &str) -> HashMap<MessageQueue, i64> {
        if topic == self.topic {
            HashMap::from([(self.queue(), 5)])
        } else {
            HashMap::new()
        }
    }

    async fn consume_directly(
        &self,
        msg: MessageExt,
        broker_name: Option<String>,
    ) -> Option<ConsumeMessageDirectlyResult> {
        let remark = String::from_utf8_lossy(&msg.message.body).into_owned();
        self.consumed.lock().unwrap().push((msg, broker_name));
        Some(ConsumeMessageDirectlyResult {
            consume_result: Some(ConsumeResult::Success),
            remark: Some(remark),
            ..ConsumeMessageDirectlyResult::default()
        })
    }
}
