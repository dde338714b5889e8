//! What tests can see of a broker: its clients, registered groups and pops
//! in flight.

use rocketmq_model::SubscriptionData;
use rocketmq_model::body::{ConsumeFromWhere, ConsumeType, MessageModel};
use rocketmq_remoting::LanguageCode;

/// A connected client that registered a group by heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client id from its heartbeat.
    pub client_id: String,
    /// The language its heartbeat announced.
    pub language: LanguageCode,
    /// The protocol version its heartbeat announced.
    pub version: i32,
    /// The producer groups it registered on this broker.
    pub producer_groups: Vec<String>,
    /// The consumer groups it registered on this broker.
    pub consumer_groups: Vec<String>,
}

/// A consumer group registered on a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupInfo {
    /// The group name.
    pub group: String,
    /// Push, pull or pop.
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// Where new members start.
    pub consume_from_where: ConsumeFromWhere,
    /// Subscriptions by topic, as the latest heartbeat gave them.
    pub subscriptions: Vec<SubscriptionData>,
    /// The members' client ids.
    pub client_ids: Vec<String>,
}

/// A producer group registered on a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerGroupInfo {
    /// The group name.
    pub group: String,
    /// The members' client ids.
    pub client_ids: Vec<String>,
}

/// Every group registered on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisteredGroups {
    /// Producer groups, by name.
    pub producers: Vec<ProducerGroupInfo>,
    /// Consumer groups, by name.
    pub consumers: Vec<ConsumerGroupInfo>,
}

/// A message a group popped and has not acknowledged, and that was not
/// revived yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlightMessage {
    /// The topic it was read from: the subscribed topic or the group's pop
    /// retry topic (`%RETRY%<group>_<topic>`).
    pub topic: String,
    /// Its queue in that topic.
    pub queue_id: i32,
    /// Its offset in that queue.
    pub queue_offset: i64,
    /// When it was popped (epoch ms), or its invisible time last changed.
    pub pop_time: i64,
    /// When it becomes visible again unless acknowledged (epoch ms).
    pub visible_at_ms: i64,
    /// The revive queue of its pop.
    pub revive_qid: i32,
}
