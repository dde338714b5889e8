//! [`Admin`]: the basic admin calls (create a topic, offsets, message lookup)
//! through a client instance's connections.

use rocketmq_model::time::epoch_millis;
use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rocketmq_kernel::BrokerApi;
use rocketmq_kernel::api::NameServerApi;
use rocketmq_model::body::{ConsumeStats, MessageRequestMode, SetMessageRequestModeRequestBody};
use rocketmq_model::header::{
    BoundaryType, CreateTopicRequestHeader, GetConsumeStatsRequestHeader, QueryMessageRequestHeader,
};
use rocketmq_model::message::validate_topic;
use rocketmq_model::resource::RETRY_TOPIC_PREFIX;
use rocketmq_model::resource::is_system_topic;
use rocketmq_model::route::{MASTER_ID, perm};
use rocketmq_model::{BrokerData, MessageExt, MessageQueue, Namespace, OffsetMessageId};

use crate::consumer::user_queue_map;
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;

/// Tries of each master by `create_topic_in_cluster` (Java's 5).
const CREATE_TOPIC_ATTEMPTS: u32 = 5;

/// How far back [`Admin::query_message_by_uniq_key`] looks (Java: 3 days).
const UNIQ_KEY_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);
/// Most messages asked of each broker by a unique-key lookup (Java: 32).
const UNIQ_KEY_MAX_NUM: i32 = 32;

/// Admin calls; get one from [`ClientInstance::admin`] (or a producer's
/// `admin()`). Cheap to clone.
///
/// A producer's admin works in the producer's namespace: the topics and
/// queues given to it are put in it, and the messages it finds come back
/// with their topics taken out of it. The instance's admin has no
/// namespace: it names topics as the brokers do.
#[derive(Debug, Clone)]
pub struct Admin {
    instance: ClientInstance,
    namespace: Namespace,
}

/// A lookup by key: which topic, which key, how many and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQuery {
    /// The topic.
    pub topic: String,
    /// A business key (KEYS entry) or, with `unique_key`, a UNIQ_KEY.
    pub key: String,
    /// Most messages asked of each broker.
    pub max_num: i32,
    /// Start of the store-time window.
    pub begin: SystemTime,
    /// End of the store-time window.
    pub end: SystemTime,
    /// Whether `key` is a UNIQ_KEY rather than a KEYS entry.
    pub unique_key: bool,
}

impl KeyQuery {
    /// Messages of `topic` with KEYS entry `key`, any store time, at most 64
    /// per broker (the `mqadmin queryMsgByKey` default).
    pub fn by_key(topic: impl Into<String>, key: impl Into<String>) -> Self {
        KeyQuery {
            topic: topic.into(),
            key: key.into(),
            max_num: 64,
            begin: UNIX_EPOCH,
            end: far_future(),
            unique_key: false,
        }
    }
}

/// The end of an open time window: Java's `Long.MAX_VALUE` milliseconds
/// where the platform's clock reaches that far (it does not on Windows,
/// whose `SystemTime` ends in the year 30828; there, the year 9999).
fn far_future() -> SystemTime {
    const YEAR_9999: Duration = Duration::from_secs(253_402_300_799);
    UNIX_EPOCH
        .checked_add(Duration::from_millis(i64::MAX.unsigned_abs()))
        .unwrap_or(UNIX_EPOCH + YEAR_9999)
}

impl Admin {
    pub(crate) fn new(instance: ClientInstance) -> Self {
        Admin {
            instance,
            namespace: Namespace::none(),
        }
    }

    /// The same admin working in `namespace`.
    pub(crate) fn in_namespace(self, namespace: Namespace) -> Self {
        Admin { namespace, ..self }
    }

    /// Creates (or updates) a topic on the broker at `broker_addr`
    /// (UPDATE_AND_CREATE_TOPIC). A permission outside `0..8` is refused
    /// here, before any request, as Java's `MQClientAPIImpl.createTopic`
    /// does: a broker would store it as it is.
    pub async fn create_topic(
        &self,
        broker_addr: &str,
        mut header: CreateTopicRequestHeader,
    ) -> Result<()> {
        check_perm(header.perm)?;
        if let Cow::Owned(topic) = self.namespace.wrap(&header.topic) {
            header.topic = topic;
        }
        self.instance
            .broker_api()
            .create_topic(broker_addr, header)
            .await?;
        Ok(())
    }

    /// Creates (or updates) a topic on every master of `cluster`; answers the
    /// addresses it was created on. As Java's `createTopic`, each master is
    /// tried up to five times, and the call succeeds when at least one
    /// master took the topic (the others are logged); it fails with the
    /// last error when none did. As Java's, it first checks the topic (its
    /// name, not a system topic) and the permission, and refuses a bad one
    /// without asking any broker.
    pub async fn create_topic_in_cluster(
        &self,
        cluster: &str,
        header: CreateTopicRequestHeader,
    ) -> Result<Vec<String>> {
        check_new_topic(&self.namespace.wrap(&header.topic))?;
        check_perm(header.perm)?;
        let info = self.instance.broker_api().cluster_info().await?;
        let names = info
            .cluster_addr_table
            .get(cluster)
            .ok_or_else(|| ClientError::Config(format!("unknown cluster {cluster}")))?;
        let mut created = Vec::new();
        let mut last_error = None;
        for name in names {
            let Some(addr) = info
                .broker_addr_table
                .get(name)
                .and_then(|b| b.broker_addrs.get(&MASTER_ID))
            else {
                continue;
            };
            for attempt in 1..=CREATE_TOPIC_ATTEMPTS {
                match self.create_topic(addr, header.clone()).await {
                    Ok(()) => {
                        created.push(addr.clone());
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%addr, topic = %header.topic, attempt, %error, "creating the topic failed");
                        last_error = Some(error);
                    }
                }
            }
        }
        match last_error {
            Some(error) if created.is_empty() => Err(error),
            _ => Ok(created),
        }
    }

    /// The queues a consumer of `topic` reads (each broker's read queues),
    /// from a route asked of the nameserver now (Java's
    /// `fetchSubscribeMessageQueues`), e.g. to assign them to a pull
    /// consumer. [`ClientError::NoRoute`] when the topic has none or no
    /// readable queue.
    pub async fn subscribe_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let topic = self.namespace.wrap(topic);
        let routes = self.instance.routes();
        self.refresh(&topic).await?;
        let queues = (routes.table().subscribe_queues(&topic))
            .filter(|queues| !queues.is_empty())
            .ok_or_else(|| no_route(&topic))?;
        Ok(self.user_queues(&queues))
    }

    /// The queues a producer of `topic` writes (each broker's write queues
    /// on a master), from a route asked of the nameserver now (Java's
    /// `fetchPublishMessageQueues`). [`ClientError::NoRoute`] when the
    /// topic has none or no writable queue.
    pub async fn publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        let topic = self.namespace.wrap(topic);
        let routes = self.instance.routes();
        self.refresh(&topic).await?;
        let info = routes
            .cached_publish_info(&topic)
            .ok_or_else(|| no_route(&topic))?;
        Ok(self.user_queues(info.queues()))
    }

    /// Tells the brokers of `topic` whether the clients of `group` that leave
    /// rebalancing to them (a push consumer with
    /// [`client_rebalance(false)`](crate::consumer::PushConsumerBuilder::client_rebalance))
    /// pull its queues or pop them (SET_MESSAGE_REQUEST_MODE on every
    /// master of the topic's route; Java's `mqadmin setConsumeMode`). In pop
    /// mode with `pop_share_queue_num` 0 every client pops every queue;
    /// with n, each pops its own share and those of the n clients after it.
    /// The clients follow at their next rebalance (within 20 s). A broker
    /// refuses a retry topic, an unknown topic or an unknown group; any
    /// broker's refusal fails the call (the others may have taken it).
    pub async fn set_message_request_mode(
        &self,
        topic: &str,
        group: &str,
        mode: MessageRequestMode,
        pop_share_queue_num: i32,
    ) -> Result<()> {
        let topic = self.namespace.wrap(topic).into_owned();
        let group = self.namespace.wrap(group).into_owned();
        self.refresh(&topic).await?;
        let route = self.instance.routes().route(&topic).await?;
        let masters: Vec<&str> = (route.broker_datas.iter())
            .filter_map(|broker| broker.master_addr())
            .collect();
        if masters.is_empty() {
            return Err(no_route(&topic));
        }
        let body = SetMessageRequestModeRequestBody {
            consumer_group: group,
            mode,
            pop_share_queue_num,
            topic,
        };
        let api = self.instance.broker_api();
        let answers = futures::future::join_all(
            (masters.into_iter()).map(|addr| api.set_message_request_mode(addr, body.clone())),
        )
        .await;
        answers
            .into_iter()
            .try_for_each(|answer| answer.map_err(ClientError::from))
    }

    /// Asks the nameserver for `topic`'s route now; a topic it has no route
    /// for is [`ClientError::NoRoute`], as a send reports it.
    async fn refresh(&self, topic: &str) -> Result<()> {
        match self.instance.routes().refresh(topic).await {
            Ok(_) => Ok(()),
            Err(rocketmq_kernel::KernelError::NoRoute { .. }) => Err(no_route(topic)),
            Err(error) => Err(error.into()),
        }
    }

    /// `queues` as the application names them.
    fn user_queues(&self, queues: &[MessageQueue]) -> Vec<MessageQueue> {
        (queues.iter())
            .map(|mq| self.namespace.unwrap_queue(mq).into_owned())
            .collect()
    }

    /// The next offset to be written in `mq` (GET_MAX_OFFSET).
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        let mq = self.namespace.wrap_queue(mq);
        let addr = self.instance.routes().master_addr(&mq).await?;
        Ok(self.instance.broker_api().max_offset(&addr, &mq).await?)
    }

    /// The lowest offset still stored in `mq` (GET_MIN_OFFSET).
    pub async fn min_offset(&self, mq: &MessageQueue) -> Result<i64> {
        let mq = self.namespace.wrap_queue(mq);
        let addr = self.instance.routes().master_addr(&mq).await?;
        Ok(self.instance.broker_api().min_offset(&addr, &mq).await?)
    }

    /// The offset of the first message of `mq` stored at or after `time`
    /// (SEARCH_OFFSET_BY_TIMESTAMP, lower boundary).
    pub async fn search_offset(&self, mq: &MessageQueue, time: SystemTime) -> Result<i64> {
        self.search_offset_with_boundary(mq, time, BoundaryType::Lower)
            .await
    }

    /// [`search_offset`](Self::search_offset) with the boundary chosen
    /// (Java's `searchOffset(mq, timestamp, boundaryType)`): `Lower` is the
    /// first message stored at or after `time` (the max offset when none
    /// is), `Upper` the last one stored at or before it (0 when none is).
    pub async fn search_offset_with_boundary(
        &self,
        mq: &MessageQueue,
        time: SystemTime,
        boundary: BoundaryType,
    ) -> Result<i64> {
        let mq = self.namespace.wrap_queue(mq);
        let addr = self.instance.routes().master_addr(&mq).await?;
        let api = self.instance.broker_api();
        Ok(api.search_offset(&addr, &mq, time, boundary).await?)
    }

    /// When the earliest message still in `mq` was stored
    /// (GET_EARLIEST_MSG_STORETIME, Java's `earliestMsgStoreTime`); `None`
    /// when the queue holds no message.
    pub async fn earliest_msg_store_time(&self, mq: &MessageQueue) -> Result<Option<SystemTime>> {
        let mq = self.namespace.wrap_queue(mq);
        let addr = self.instance.routes().master_addr(&mq).await?;
        let api = self.instance.broker_api();
        Ok(api.earliest_store_time(&addr, &mq).await?)
    }

    /// The message with offset message id `offset_msg_id` (VIEW_MESSAGE_BY_ID
    /// to the store host the id names). For an id that may be a unique key
    /// (a send's `msg_id`), see [`view_message_in`](Self::view_message_in).
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let id = OffsetMessageId::parse(offset_msg_id)?;
        let addr = id.store_host.to_string();
        let api = self.instance.broker_api();
        let mut msg = api.view_message(&addr, None, id.commit_log_offset).await?;
        self.namespace.unwrap_in_place(&mut msg.message.topic);
        Ok(msg)
    }

    /// The message of `topic` with id `msg_id`, which may be either id a
    /// send answers (Java's `viewMessage(topic, msgId)` of producers and
    /// consumers): first as an offset message id (VIEW_MESSAGE_BY_ID, naming
    /// the topic); when that id does not decode, or its broker does not
    /// answer with the message, as a unique key
    /// ([`query_message_by_uniq_key`](Self::query_message_by_uniq_key)).
    /// `None` when neither finds it.
    pub async fn view_message_in(&self, topic: &str, msg_id: &str) -> Result<Option<MessageExt>> {
        if let Ok(id) = OffsetMessageId::parse(msg_id) {
            let addr = id.store_host.to_string();
            let wrapped = self.namespace.wrap(topic);
            let api = self.instance.broker_api();
            match api
                .view_message(&addr, Some(&wrapped), id.commit_log_offset)
                .await
            {
                Ok(mut msg) => {
                    self.namespace.unwrap_in_place(&mut msg.message.topic);
                    return Ok(Some(msg));
                }
                Err(error) => {
                    tracing::debug!(%addr, %error, msg_id, "no message at the offset id; trying it as a unique key");
                }
            }
        }
        self.query_message_by_uniq_key(topic, msg_id).await
    }

    /// Messages matching `query`, merged from every broker of the topic; the
    /// broker index is hash-based, so only messages whose KEYS (or UNIQ_KEY)
    /// really hold the key are kept (PROTOCOL.md §3.11).
    pub async fn query_message(&self, query: &KeyQuery) -> Result<Vec<MessageExt>> {
        let query = &KeyQuery {
            topic: self.namespace.wrap(&query.topic).into_owned(),
            ..query.clone()
        };
        let route = self.instance.routes().route(&query.topic).await?;
        let header = QueryMessageRequestHeader {
            topic: query.topic.clone(),
            key: query.key.clone(),
            max_num: query.max_num,
            begin_timestamp: epoch_millis(query.begin),
            end_timestamp: epoch_millis(query.end),
            unique_key_query: query.unique_key,
            broker_name: None,
        };
        let addrs: HashSet<&str> = route
            .broker_datas
            .iter()
            .filter_map(BrokerData::any_addr)
            .collect();
        let api = self.instance.broker_api();
        let answers = futures::future::join_all(addrs.into_iter().map(|addr| {
            let header = header.clone();
            async move { (addr, api.query_message(addr, header).await) }
        }))
        .await;
        let mut found = Vec::new();
        for (addr, answer) in answers {
            match answer {
                Ok(result) => found.extend(result.messages),
                Err(error) => tracing::warn!(%addr, %error, "query message failed"),
            }
        }
        found.retain(|msg| matches_key(msg, query));
        found.sort_by_key(|msg| msg.store_timestamp);
        for msg in &mut found {
            self.namespace.unwrap_in_place(&mut msg.message.topic);
        }
        Ok(found)
    }

    /// How far consumer group `group` is behind: each queue's end against
    /// the group's committed offset, and the group's consume rate, from
    /// every broker serving the group (GET_CONSUME_STATS, Java's admin
    /// `examineConsumeStats`). With a topic, that topic's queues; without,
    /// every topic the group has committed offsets of (its retry topic
    /// among them). The brokers are those of the group's retry topic (made
    /// by its consumers' heartbeats), else of `topic`, looked up now. Any
    /// broker's failure fails the call: a partial lag would read as a
    /// smaller one. [`ConsumeStats::total_lag`] sums the queues' lags.
    pub async fn consume_stats(&self, group: &str, topic: Option<&str>) -> Result<ConsumeStats> {
        let group = self.namespace.wrap(group).into_owned();
        let topic = topic.map(|topic| self.namespace.wrap(topic).into_owned());
        let api = self.instance.broker_api();
        let retry_topic = format!("{RETRY_TOPIC_PREFIX}{group}");
        let route = match (api.topic_route(&retry_topic).await, &topic) {
            (Ok(route), _) => route,
            (Err(_), Some(topic)) => api.topic_route(topic).await?,
            (Err(error), None) => return Err(error.into()),
        };
        let header = GetConsumeStatsRequestHeader {
            consumer_group: group,
            topic,
            topic_list: None,
        };
        let addrs: HashSet<&str> = route
            .broker_datas
            .iter()
            .filter_map(BrokerData::any_addr)
            .collect();
        let answers = futures::future::join_all(
            (addrs.into_iter()).map(|addr| api.consume_stats(addr, header.clone())),
        )
        .await;
        let mut stats = ConsumeStats::default();
        for answer in answers {
            stats.merge(answer?);
        }
        stats.offset_table = user_queue_map(&self.namespace, stats.offset_table);
        Ok(stats)
    }

    /// The message of `topic` with UNIQ_KEY `uniq_key` (the first found when
    /// the broker stored it more than once).
    pub async fn query_message_by_uniq_key(
        &self,
        topic: &str,
        uniq_key: &str,
    ) -> Result<Option<MessageExt>> {
        let now = SystemTime::now();
        let query = KeyQuery {
            topic: topic.to_owned(),
            key: uniq_key.to_owned(),
            max_num: UNIQ_KEY_MAX_NUM,
            begin: now.checked_sub(UNIQ_KEY_WINDOW).unwrap_or(UNIX_EPOCH),
            end: far_future(),
            unique_key: true,
        };
        Ok(self.query_message(&query).await?.into_iter().next())
    }
}

/// Java's `Validators.checkTopic` and `isSystemTopic` on a topic to create
/// (`MQAdminImpl.createTopic`).
fn check_new_topic(topic: &str) -> Result<()> {
    validate_topic(topic)?;
    if is_system_topic(topic) {
        return Err(ClientError::Config(format!(
            "the topic {topic} is a system topic"
        )));
    }
    Ok(())
}

/// Java's `Validators.checkTopicConfig`: a permission is a set of the
/// read, write and inherit bits (`PermName.isValid`).
fn check_perm(perm: i32) -> Result<()> {
    if (0..perm::PRIORITY).contains(&perm) {
        return Ok(());
    }
    Err(ClientError::Config(format!(
        "topic permission {perm} is invalid: only the read (4), write (2) and inherit (1) bits may be set"
    )))
}

fn no_route(topic: &str) -> ClientError {
    ClientError::NoRoute {
        topic: topic.to_owned(),
    }
}

/// Whether `msg` is what `query` asked for: the broker's index matches a
/// hash of topic and key, so both are checked (Java's `MQAdminImpl`).
fn matches_key(msg: &MessageExt, query: &KeyQuery) -> bool {
    if msg.message.topic != query.topic {
        return false;
    }
    if query.unique_key {
        msg.message.uniq_key() == Some(query.key.as_str())
    } else {
        msg.message.keys().any(|key| key == query.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_query_keeps_only_its_topic_and_key() {
        let query = |unique_key| KeyQuery {
            topic: "T".into(),
            key: "k".into(),
            max_num: 32,
            begin: UNIX_EPOCH,
            end: far_future(),
            unique_key,
        };
        let with = |topic: &str, keys: &str, uniq: &str| {
            let mut msg = MessageExt::from(rocketmq_model::Message::new(topic, "body"));
            let properties = &mut msg.message.properties;
            properties
                .insert(rocketmq_model::property::KEYS, keys)
                .unwrap();
            properties
                .insert(rocketmq_model::property::UNIQ_KEY, uniq)
                .unwrap();
            msg
        };
        assert!(matches_key(&with("T", "a k", "x"), &query(false)));
        // The broker's index matches a hash of topic and key: another topic
        // with the same key can come back.
        assert!(!matches_key(&with("U", "k", "x"), &query(false)));
        assert!(!matches_key(&with("T", "kk", "x"), &query(false)));
        assert!(matches_key(&with("T", "x", "k"), &query(true)));
        assert!(!matches_key(&with("U", "x", "k"), &query(true)));
    }

    #[test]
    fn an_open_window_ends_at_javas_long_max_where_the_clock_reaches_it() {
        let end = far_future();
        assert!(end > SystemTime::now() + Duration::from_secs(3_600 * 24 * 365 * 1_000));
        if UNIX_EPOCH
            .checked_add(Duration::from_millis(i64::MAX.unsigned_abs()))
            .is_some()
        {
            assert_eq!(epoch_millis(end), i64::MAX);
        }
    }
}
