//! PUSH_REPLY_MESSAGE_TO_CLIENT (326) header (PROTOCOL.md §3.9).

command_header! {
    /// PUSH_REPLY_MESSAGE_TO_CLIENT request header: a reply message the broker
    /// forwards to the requesting client.
    pub struct ReplyMessageRequestHeader {
        /// Producer group of the replier.
        req producer_group: String = "producerGroup";
        /// Reply topic.
        req topic: String = "topic";
        /// Auto-create template topic.
        req default_topic: String = "defaultTopic";
        /// Queue count for auto-creation.
        req default_topic_queue_nums: i32 = "defaultTopicQueueNums";
        /// Queue id.
        req queue_id: i32 = "queueId";
        /// Message system flag (§5.2); bit 0 means the body is compressed.
        req sys_flag: i32 = "sysFlag";
        /// Born time in ms.
        req born_timestamp: i64 = "bornTimestamp";
        /// User flag.
        req flag: i32 = "flag";
        /// Properties string (§6).
        opt properties: String = "properties";
        /// Reconsume count.
        opt reconsume_times: i32 = "reconsumeTimes";
        /// Unit mode (a Java primitive: always written).
        default(false) unit_mode: bool = "unitMode";
        /// Born host, "ip:port".
        req born_host: String = "bornHost";
        /// Store host, "ip:port".
        req store_host: String = "storeHost";
        /// Store time in ms.
        req store_timestamp: i64 = "storeTimestamp";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}
