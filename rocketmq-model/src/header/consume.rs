//! CONSUMER_SEND_MSG_BACK (36) header (PROTOCOL.md §3.7).

command_header! {
    /// CONSUMER_SEND_MSG_BACK request header: return a failed message to the
    /// broker for a delayed retry (or the DLQ).
    pub struct ConsumerSendMsgBackRequestHeader {
        /// The message's commit-log offset.
        req offset: i64 = "offset";
        /// Consumer group.
        req group: String = "group";
        /// 0: the broker picks 3 + reconsumeTimes; negative: straight to the
        /// DLQ; otherwise this level.
        req delay_level: i32 = "delayLevel";
        /// The message's msgId.
        opt origin_msg_id: String = "originMsgId";
        /// The message's topic.
        opt origin_topic: String = "originTopic";
        /// Unit mode (a Java primitive: always written).
        default(false) unit_mode: bool = "unitMode";
        /// Retries before the DLQ (Java default 16).
        opt max_reconsume_times: i32 = "maxReconsumeTimes";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}
