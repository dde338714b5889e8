//! Names with a meaning: retry and dead-letter topics, and the system topics
//! and groups that belong to the broker rather than to an application
//! (Java's `MixAll` and `TopicValidator`).

/// The prefix of a consumer group's retry topic, `%RETRY%<group>`.
pub const RETRY_TOPIC_PREFIX: &str = "%RETRY%";

/// The prefix of a consumer group's dead-letter topic, `%DLQ%<group>`.
pub const DLQ_TOPIC_PREFIX: &str = "%DLQ%";

/// The prefix of topics the broker keeps for itself (`rmq_sys_`).
pub const SYSTEM_TOPIC_PREFIX: &str = "rmq_sys_";

/// The prefix of the broker's own consumer groups (`CID_RMQ_SYS_`).
pub const SYSTEM_GROUP_PREFIX: &str = "CID_RMQ_SYS_";

/// The system topics no client may send to (Java's
/// `TopicValidator.NOT_ALLOWED_SEND_TOPIC_SET`).
const NOT_ALLOWED_SEND_TOPICS: [&str; 6] = [
    "SCHEDULE_TOPIC_XXXX",
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// The other system topics Java's `TopicValidator` names one by one.
const SENDABLE_SYSTEM_TOPICS: [&str; 4] = [
    crate::route::AUTO_CREATE_TOPIC,
    "BenchmarkTest",
    crate::body::trace::TRACE_TOPIC,
    "CHECKPOINT_TOPIC",
];

/// Whether `topic` is one of the broker's own topics (Java's
/// `TopicValidator.isSystemTopic`: the named ones, and every `rmq_sys_`
/// topic). A broker also counts its cluster's and its own name as system
/// topics; a client cannot know those.
pub fn is_system_topic(topic: &str) -> bool {
    NOT_ALLOWED_SEND_TOPICS.contains(&topic)
        || SENDABLE_SYSTEM_TOPICS.contains(&topic)
        || topic.starts_with(SYSTEM_TOPIC_PREFIX)
}

/// Whether no client may send to `topic` (Java's
/// `TopicValidator.isNotAllowedSendTopic`): the broker's schedule,
/// transaction, self-test and offset-event topics.
pub fn is_send_forbidden(topic: &str) -> bool {
    NOT_ALLOWED_SEND_TOPICS.contains(&topic)
}

/// Whether `group` is one of the broker's own consumer groups (Java's
/// `MixAll.isSysConsumerGroup`).
pub fn is_system_group(group: &str) -> bool {
    group.starts_with(SYSTEM_GROUP_PREFIX)
}

/// Whether `topic` is a consumer group's retry topic.
pub fn is_retry_topic(topic: &str) -> bool {
    topic.starts_with(RETRY_TOPIC_PREFIX)
}

/// The pop retry topic where `group`'s unacknowledged messages of `topic`
/// return, `%RETRY%<group>_<topic>` (Java's `buildPopRetryTopicV1`, the
/// broker default).
pub fn pop_retry_topic_v1(topic: &str, group: &str) -> String {
    format!("{RETRY_TOPIC_PREFIX}{group}_{topic}")
}

/// The pop retry topic of a broker with `enableRetryTopicV2`,
/// `%RETRY%<group>+<topic>`.
pub fn pop_retry_topic_v2(topic: &str, group: &str) -> String {
    format!("{RETRY_TOPIC_PREFIX}{group}+{topic}")
}

/// Whether `topic` is a consumer group's dead-letter topic.
pub fn is_dlq_topic(topic: &str) -> bool {
    topic.starts_with(DLQ_TOPIC_PREFIX)
}

/// `resource` split into its retry or dead-letter prefix (empty when it has
/// none) and the rest.
pub(crate) fn split_group_prefix(resource: &str) -> (&str, &str) {
    for prefix in [RETRY_TOPIC_PREFIX, DLQ_TOPIC_PREFIX] {
        if let Some(rest) = resource.strip_prefix(prefix) {
            return (prefix, rest);
        }
    }
    ("", resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_topics_and_groups() {
        assert!(is_system_topic("TBW102"));
        assert!(is_system_topic("SCHEDULE_TOPIC_XXXX"));
        assert!(is_system_topic("rmq_sys_wheel_timer"));
        assert!(!is_system_topic("orders"));
        assert!(!is_system_topic("RMQ_SYS_TRANS_HALF_TOPIC_X"));
        assert!(is_system_topic("RMQ_SYS_TRACE_TOPIC"));
        assert!(is_send_forbidden("RMQ_SYS_TRANS_HALF_TOPIC"));
        assert!(!is_send_forbidden("RMQ_SYS_TRACE_TOPIC"));
        assert!(is_system_group("CID_RMQ_SYS_TRANS"));
        assert!(!is_system_group("orders-consumer"));
    }

    #[test]
    fn splits_retry_and_dead_letter_prefixes() {
        assert_eq!(split_group_prefix("%RETRY%g"), ("%RETRY%", "g"));
        assert_eq!(split_group_prefix("%DLQ%g"), ("%DLQ%", "g"));
        assert_eq!(split_group_prefix("T"), ("", "T"));
        assert!(is_retry_topic("%RETRY%g") && !is_retry_topic("%DLQ%g"));
        assert!(is_dlq_topic("%DLQ%g") && !is_dlq_topic("g"));
    }
}
