//! [`PublishInfo`]: the queues a producer of one topic sends to (Java's
//! `TopicPublishInfo`).

use std::sync::Arc;

use rocketmq_model::{MessageQueue, TopicRouteData};

use crate::select::RoundRobin;

/// The publish queues of a topic (§8.3), whether the topic is ordered, the
/// route they come from, and the topic's shared round-robin position.
#[derive(Debug)]
pub struct PublishInfo {
    topic: String,
    queues: Vec<MessageQueue>,
    ordered: bool,
    route: Arc<TopicRouteData>,
    index: RoundRobin,
}

impl PublishInfo {
    /// The publish info of `topic` from its route, starting at a random
    /// round-robin position.
    pub fn from_route(topic: &str, route: Arc<TopicRouteData>) -> Self {
        Self::with_index(topic, route, RoundRobin::new())
    }

    /// The publish info of `topic` with an explicit round-robin counter.
    pub fn with_index(topic: &str, route: Arc<TopicRouteData>, index: RoundRobin) -> Self {
        let publish = route.publish_queues(topic);
        PublishInfo {
            topic: topic.to_owned(),
            queues: publish.queues,
            ordered: publish.ordered,
            route,
            index,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The queues, in Java's order (brokers sorted by name).
    pub fn queues(&self) -> &[MessageQueue] {
        &self.queues
    }

    /// Whether there is no queue to send to.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Whether the queues come from `orderTopicConf` (an ordered topic).
    pub fn is_ordered(&self) -> bool {
        self.ordered
    }

    /// The route the queues were built from.
    pub fn route(&self) -> &Arc<TopicRouteData> {
        &self.route
    }

    /// The topic's round-robin position, shared by every sender.
    pub fn round_robin(&self) -> &RoundRobin {
        &self.index
    }

    /// The next queue in round-robin order (Java's
    /// `selectOneMessageQueue()`), or `None` when there is no queue.
    pub fn next_queue(&self) -> Option<&MessageQueue> {
        self.queues.get(self.index.next_index(self.queues.len())?)
    }

    /// The next queue in round-robin order that `accept`s, trying each queue
    /// at most once (Java's filtered `selectOneMessageQueue`); `None` when no
    /// queue is accepted.
    pub fn next_queue_where(
        &self,
        accept: impl Fn(&MessageQueue) -> bool,
    ) -> Option<&MessageQueue> {
        (0..self.queues.len())
            .filter_map(|_| self.next_queue())
            .find(|mq| accept(mq))
    }
}

#[cfg(test)]
mod tests {
    use rocketmq_model::route::perm;
    use rocketmq_model::{BrokerData, QueueData};

    use super::*;

    fn route(brokers: &[&str], nums: i32) -> Arc<TopicRouteData> {
        Arc::new(TopicRouteData {
            queue_datas: brokers
                .iter()
                .map(|name| QueueData {
                    broker_name: (*name).into(),
                    read_queue_nums: nums,
                    write_queue_nums: nums,
                    perm: perm::READ | perm::WRITE,
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas: brokers
                .iter()
                .map(|name| BrokerData {
                    broker_name: (*name).into(),
                    broker_addrs: [(0, format!("{name}:10911"))].into(),
                    ..BrokerData::default()
                })
                .collect(),
            ..TopicRouteData::default()
        })
    }

    #[test]
    fn next_queue_is_round_robin() {
        let info = PublishInfo::with_index("T", route(&["a", "b"], 2), RoundRobin::starting_at(0));
        let picks: Vec<String> = (0..5)
            .map(|_| info.next_queue().unwrap().to_string())
            .collect();
        assert_eq!(picks, ["T@a#1", "T@b#0", "T@b#1", "T@a#0", "T@a#1"]);
        assert_eq!(info.topic(), "T");
        assert_eq!(info.route().queue_datas.len(), 2);
    }

    #[test]
    fn filtered_choice_skips_rejected_queues_and_gives_up_after_one_round() {
        let info = PublishInfo::with_index("T", route(&["a", "b"], 2), RoundRobin::starting_at(0));
        for _ in 0..6 {
            assert_eq!(
                info.next_queue_where(|mq| mq.broker_name != "a")
                    .unwrap()
                    .broker_name,
                "b"
            );
        }
        assert_eq!(info.next_queue_where(|_| false), None);
    }

    #[test]
    fn empty_route_has_no_queue() {
        let info = PublishInfo::from_route("T", Arc::new(TopicRouteData::default()));
        assert!(info.is_empty());
        assert_eq!(info.next_queue(), None);
        assert_eq!(info.next_queue_where(|_| true), None);
    }

    #[test]
    fn ordered_topic_conf_marks_the_topic_ordered() {
        let mut ordered = (*route(&["a"], 2)).clone();
        ordered.order_topic_conf = Some("a:3".into());
        let info = PublishInfo::from_route("T", Arc::new(ordered));
        assert!(info.is_ordered());
        assert_eq!(info.queues().len(), 3);
    }
}
