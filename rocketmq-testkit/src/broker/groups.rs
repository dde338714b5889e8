//! Producer and consumer groups registered by heartbeats, their members'
//! connections, and the NOTIFY_CONSUMER_IDS_CHANGED sent when a consumer
//! group's membership changes (Java's `ConsumerManager`/`ProducerManager`).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rocketmq_model::body::{ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel};
use rocketmq_model::header::NotifyConsumerIdsChangedRequestHeader;
use rocketmq_model::{RequestCode, SubscriptionData};
use rocketmq_remoting::{LanguageCode, RemotingCommand, WeakConnection};
use tokio::time::Instant;

/// How long a oneway notify may wait for room in a member's write queue.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(3);

/// One member: a client id on one connection.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) conn_id: u64,
    pub(crate) client_id: String,
    pub(crate) conn: WeakConnection,
    pub(crate) language: LanguageCode,
    pub(crate) version: i32,
    /// When its last heartbeat came (every heartbeat registers it anew).
    pub(crate) last_heartbeat: Instant,
}

/// A consumer group as the broker knows it.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerGroup {
    pub(crate) consume_type: ConsumeType,
    pub(crate) message_model: MessageModel,
    pub(crate) consume_from_where: ConsumeFromWhere,
    pub(crate) subscriptions: BTreeMap<String, SubscriptionData>,
    pub(crate) members: BTreeMap<u64, Member>,
}

impl ConsumerGroup {
    fn new(data: &ConsumerData) -> Self {
        ConsumerGroup {
            consume_type: data.consume_type,
            message_model: data.message_model,
            consume_from_where: data.consume_from_where,
            subscriptions: BTreeMap::new(),
            members: BTreeMap::new(),
        }
    }

    /// Java's `updateSubscription`: newer versions replace older ones; the
    /// group changed when a topic was added or removed.
    fn update_subscriptions(&mut self, subs: &[SubscriptionData]) -> bool {
        let mut changed = false;
        for sub in subs {
            match self.subscriptions.get(&sub.topic) {
                None => {
                    self.subscriptions.insert(sub.topic.clone(), sub.clone());
                    changed = true;
                }
                Some(old) if sub.sub_version > old.sub_version => {
                    self.subscriptions.insert(sub.topic.clone(), sub.clone());
                }
                Some(_) => {}
            }
        }
        let before = self.subscriptions.len();
        self.subscriptions
            .retain(|topic, _| subs.iter().any(|s| &s.topic == topic));
        changed || before != self.subscriptions.len()
    }

    /// The members' client ids, in connection order.
    pub(crate) fn client_ids(&self) -> Vec<String> {
        self.members.values().map(|m| m.client_id.clone()).collect()
    }

    /// The notification of a change to every member; broadcasting groups
    /// are not notified (they do not rebalance).
    fn change(&self, group: &str) -> Option<GroupChange> {
        (self.message_model != MessageModel::Broadcasting).then(|| GroupChange {
            group: group.to_owned(),
            members: self.members.values().map(|m| m.conn.clone()).collect(),
        })
    }
}

#[derive(Debug, Default)]
struct Tables {
    producers: BTreeMap<String, BTreeMap<u64, Member>>,
    consumers: BTreeMap<String, ConsumerGroup>,
    fingerprints: BTreeMap<String, i32>,
}

/// Every group registered on one broker. Emptied when the broker stops.
#[derive(Debug, Default)]
pub(crate) struct Groups {
    tables: Mutex<Tables>,
}

/// A consumer group whose members must be told that it changed.
#[derive(Debug)]
pub(crate) struct GroupChange {
    group: String,
    members: Vec<WeakConnection>,
}

impl Groups {
    fn tables(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a producer group member.
    pub(crate) fn register_producer(&self, group: &str, member: Member) {
        self.tables()
            .producers
            .entry(group.to_owned())
            .or_default()
            .insert(member.conn_id, member);
    }

    /// Records a group's heartbeat fingerprint (5.x heartbeat v2); answers
    /// whether it differs from the one recorded before.
    pub(crate) fn record_fingerprint(&self, group: &str, fingerprint: i32) -> bool {
        let previous = self
            .tables()
            .fingerprints
            .insert(group.to_owned(), fingerprint);
        previous.is_some_and(|previous| previous != fingerprint)
    }

    /// Registers a consumer group member, with its subscriptions unless
    /// `keep_subscriptions` (a v2 heartbeat without them); returns the change
    /// to notify when the member is new or the topics changed.
    pub(crate) fn register_consumer(
        &self,
        data: &ConsumerData,
        member: Member,
        keep_subscriptions: bool,
    ) -> Option<GroupChange> {
        let mut tables = self.tables();
        let group = tables
            .consumers
            .entry(data.group_name.clone())
            .or_insert_with(|| ConsumerGroup::new(data));
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        let joined = group.members.insert(member.conn_id, member).is_none();
        let resubscribed =
            !keep_subscriptions && group.update_subscriptions(&data.subscription_data_set);
        (joined || resubscribed)
            .then(|| group.change(&data.group_name))
            .flatten()
    }

    /// Removes the member on `conn_id` from a producer group.
    pub(crate) fn unregister_producer(&self, group: &str, conn_id: u64) {
        let mut tables = self.tables();
        if let Some(members) = tables.producers.get_mut(group) {
            members.remove(&conn_id);
            if members.is_empty() {
                tables.producers.remove(group);
            }
        }
    }

    /// Removes the member on `conn_id` from a consumer group; returns the
    /// change to notify when members remain (Java notifies them even when
    /// the connection was no member).
    pub(crate) fn unregister_consumer(&self, group: &str, conn_id: u64) -> Option<GroupChange> {
        let mut tables = self.tables();
        let info = tables.consumers.get_mut(group)?;
        info.members.remove(&conn_id);
        if info.members.is_empty() {
            tables.consumers.remove(group);
            return None;
        }
        info.change(group)
    }

    /// Forgets a closed connection everywhere; returns the consumer groups
    /// whose remaining members must be notified.
    pub(crate) fn connection_closed(&self, conn_id: u64) -> Vec<GroupChange> {
        let mut tables = self.tables();
        for members in tables.producers.values_mut() {
            members.remove(&conn_id);
        }
        tables.producers.retain(|_, members| !members.is_empty());
        let mut changes = Vec::new();
        for (name, info) in &mut tables.consumers {
            if info.members.remove(&conn_id).is_some() && !info.members.is_empty() {
                changes.extend(info.change(name));
            }
        }
        tables.consumers.retain(|_, info| !info.members.is_empty());
        changes
    }

    /// A consumer group, if it has members.
    pub(crate) fn consumer_group(&self, group: &str) -> Option<ConsumerGroup> {
        self.tables().consumers.get(group).cloned()
    }

    /// Every consumer group.
    pub(crate) fn consumer_groups(&self) -> BTreeMap<String, ConsumerGroup> {
        self.tables().consumers.clone()
    }

    /// Every producer group's members.
    pub(crate) fn producer_groups(&self) -> BTreeMap<String, Vec<Member>> {
        self.tables()
            .producers
            .iter()
            .map(|(group, members)| (group.clone(), members.values().cloned().collect()))
            .collect()
    }

    /// An open connection of a producer of `group` (for transaction checks).
    pub(crate) fn producer_connection(&self, group: &str) -> Option<rocketmq_remoting::Connection> {
        let tables = self.tables();
        tables
            .producers
            .get(group)?
            .values()
            .find_map(|member| member.conn.upgrade())
    }

    /// An open connection on which `client_id` registered a producer (Java's
    /// `ProducerManager#findChannel`, for reply pushes).
    pub(crate) fn producer_connection_of(
        &self,
        client_id: &str,
    ) -> Option<rocketmq_remoting::Connection> {
        let tables = self.tables();
        tables
            .producers
            .values()
            .flat_map(BTreeMap::values)
            .filter(|member| member.client_id == client_id)
            .find_map(|member| member.conn.upgrade())
    }

    /// The member `client_id` of consumer group `group`.
    pub(crate) fn consumer_member(&self, group: &str, client_id: &str) -> Option<Member> {
        let tables = self.tables();
        let info = tables.consumers.get(group)?;
        info.members
            .values()
            .find(|m| m.client_id == client_id)
            .cloned()
    }

    /// Every connection on which `client_id` registered a group, once each.
    pub(crate) fn connections_of(&self, client_id: &str) -> Vec<WeakConnection> {
        let tables = self.tables();
        let producers = tables.producers.values().flat_map(BTreeMap::values);
        let consumers = tables.consumers.values().flat_map(|g| g.members.values());
        producers
            .chain(consumers)
            .filter(|m| m.client_id == client_id)
            .map(|m| (m.conn_id, m.conn.clone()))
            .collect::<BTreeMap<_, _>>()
            .into_values()
            .collect()
    }

    /// Removes every producer and consumer registration older than `expiry`
    /// at `now` (no heartbeat since), telling no one (Java's
    /// `scanNotActiveChannel`); returns their connections, once each, to be
    /// closed. Closing them then removes what was still live on them.
    pub(crate) fn expire(&self, now: Instant, expiry: Duration) -> Vec<(u64, WeakConnection)> {
        let expired = |m: &Member| now.saturating_duration_since(m.last_heartbeat) > expiry;
        let mut gone = BTreeMap::new();
        let mut take = |members: &mut BTreeMap<u64, Member>| {
            members.retain(|&conn_id, member| {
                if expired(member) {
                    gone.insert(conn_id, member.conn.clone());
                }
                !expired(member)
            });
        };
        let mut tables = self.tables();
        tables.producers.values_mut().for_each(&mut take);
        tables.producers.retain(|_, members| !members.is_empty());
        tables
            .consumers
            .values_mut()
            .for_each(|group| take(&mut group.members));
        tables
            .consumers
            .retain(|_, group| !group.members.is_empty());
        gone.into_iter().collect()
    }

    /// Forgets everything (the broker stopped).
    pub(crate) fn clear(&self) {
        *self.tables() = Tables::default();
    }
}

impl GroupChange {
    /// Sends NOTIFY_CONSUMER_IDS_CHANGED (oneway) to every member.
    pub(crate) async fn notify(self) {
        let header = NotifyConsumerIdsChangedRequestHeader {
            consumer_group: self.group.clone(),
            broker_name: None,
        };
        for member in self.members {
            let Some(conn) = member.upgrade() else {
                continue;
            };
            let mut cmd = RemotingCommand::request_with_header(
                RequestCode::NOTIFY_CONSUMER_IDS_CHANGED,
                &header,
            );
            cmd.set_oneway();
            match tokio::time::timeout(NOTIFY_TIMEOUT, conn.send(cmd)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::debug!(group = %self.group, peer = conn.peer_addr(), %error, "notify failed");
                }
                Err(_) => {
                    tracing::debug!(group = %self.group, peer = conn.peer_addr(), "notify timed out")
                }
            }
        }
    }
}
