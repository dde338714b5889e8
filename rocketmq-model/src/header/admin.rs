//! Message lookup and admin headers (PROTOCOL.md §3.11; UPDATE_AND_CREATE_TOPIC).

command_header! {
    /// VIEW_MESSAGE_BY_ID (33) request header.
    pub struct ViewMessageRequestHeader {
        /// Topic (optional).
        opt topic: String = "topic";
        /// The commit-log offset decoded from an offset msgId.
        req offset: i64 = "offset";
    }
}

command_header! {
    /// QUERY_MESSAGE (12) request header.
    pub struct QueryMessageRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// The key (a KEYS entry or a UNIQ_KEY).
        req key: String = "key";
        /// Most messages to return.
        req max_num: i32 = "maxNum";
        /// Start of the time window, in ms.
        req begin_timestamp: i64 = "beginTimestamp";
        /// End of the time window, in ms.
        req end_timestamp: i64 = "endTimestamp";
        /// The `_UNIQUE_KEY_QUERY` extField: true when `key` is a UNIQ_KEY.
        /// Always written, as Java does (it is part of the signed content, §9.3).
        default(false) unique_key_query: bool = "_UNIQUE_KEY_QUERY";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// QUERY_MESSAGE response header.
    pub struct QueryMessageResponseHeader {
        /// Last index update time, in ms.
        req index_last_update_timestamp: i64 = "indexLastUpdateTimestamp";
        /// Commit-log offset of the last index update.
        req index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset";
    }
}

command_header! {
    /// UPDATE_AND_CREATE_TOPIC (17) request header (Java
    /// `CreateTopicRequestHeader`).
    pub struct CreateTopicRequestHeader {
        /// Topic to create or update.
        req topic: String = "topic";
        /// Template topic ("TBW102").
        req default_topic: String = "defaultTopic";
        /// Readable queue count.
        req read_queue_nums: i32 = "readQueueNums";
        /// Writable queue count.
        req write_queue_nums: i32 = "writeQueueNums";
        /// Permission bits (see [`crate::route::perm`]).
        req perm: i32 = "perm";
        /// `SINGLE_TAG` or `MULTI_TAG` (Java `TopicFilterType`).
        req topic_filter_type: String = "topicFilterType";
        /// Topic system flag.
        opt topic_sys_flag: i32 = "topicSysFlag";
        /// Ordered topic (Java default false, always written).
        default(false) order: bool = "order";
        /// 5.x topic attributes, e.g. "+message.type=NORMAL".
        opt attributes: String = "attributes";
        /// 5.x: overwrite even if attributes conflict (Java default false, always
        /// written).
        default(false) force: bool = "force";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

impl CreateTopicRequestHeader {
    /// A read-write, single-tag topic with `queue_nums` read and write queues,
    /// as `mqadmin updateTopic` creates by default.
    pub fn new(topic: impl Into<String>, queue_nums: i32) -> Self {
        CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: crate::route::AUTO_CREATE_TOPIC.to_owned(),
            read_queue_nums: queue_nums,
            write_queue_nums: queue_nums,
            perm: crate::route::perm::READ | crate::route::perm::WRITE,
            topic_filter_type: "SINGLE_TAG".to_owned(),
            ..Default::default()
        }
    }
}

command_header! {
    /// GET_CONSUME_STATS (208) request header.
    pub struct GetConsumeStatsRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// One topic; without it (and without `topic_list`) the broker
        /// answers every topic the group has offsets of.
        opt topic: String = "topic";
        /// Several topics, `;`-separated (5.x); takes precedence over
        /// `topic`.
        opt topic_list: String = "topicList";
    }
}
