//! PULL_MESSAGE (11) / LITE_PULL_MESSAGE (361) headers (PROTOCOL.md §3.4).

command_header! {
    /// PULL_MESSAGE / LITE_PULL_MESSAGE request header.
    pub struct PullMessageRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// Topic.
        req topic: String = "topic";
        /// Queue to pull from.
        req queue_id: i32 = "queueId";
        /// Offset to start from.
        req queue_offset: i64 = "queueOffset";
        /// Most messages to return (push default 32).
        req max_msg_nums: i32 = "maxMsgNums";
        /// PullSysFlag bits (§8.6).
        req sys_flag: i32 = "sysFlag";
        /// Offset to commit when the commit bit is set; 0 otherwise.
        req commit_offset: i64 = "commitOffset";
        /// How long the broker may hold the request (long polling), in ms.
        req suspend_timeout_millis: i64 = "suspendTimeoutMillis";
        /// Subscription expression, e.g. `*` or `TagA || TagB`.
        opt subscription: String = "subscription";
        /// The subscription's version (its creation time in ms).
        req sub_version: i64 = "subVersion";
        /// "TAG" or "SQL92".
        opt expression_type: String = "expressionType";
        /// Most bytes to return (push default 262144).
        opt max_msg_bytes: i32 = "maxMsgBytes";
        /// Proxy use.
        opt request_source: i32 = "requestSource";
        /// Proxy use; the misspelt key is the wire key.
        opt proxy_forward_client_id: String = "proxyFrowardClientId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// PULL_MESSAGE response header.
    pub struct PullMessageResponseHeader {
        /// Broker id to pull from next; 0 is the master.
        req suggest_which_broker_id: i64 = "suggestWhichBrokerId";
        /// Offset to pull from next.
        req next_begin_offset: i64 = "nextBeginOffset";
        /// Lowest offset of the queue.
        req min_offset: i64 = "minOffset";
        /// Next offset to be written in the queue.
        req max_offset: i64 = "maxOffset";
        /// Static topics: add to each message's queue offset.
        opt offset_delta: i64 = "offsetDelta";
        /// The topic's system flag.
        opt topic_sys_flag: i32 = "topicSysFlag";
        /// The group's system flag.
        opt group_sys_flag: i32 = "groupSysFlag";
        /// Proxy use.
        opt forbidden_type: i32 = "forbiddenType";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CommandHeader;

    #[test]
    fn request_uses_java_keys() {
        let header = PullMessageRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            subscription: Some("*".into()),
            expression_type: Some("TAG".into()),
            max_msg_bytes: Some(262_144),
            request_source: Some(1),
            proxy_forward_client_id: Some("c".into()),
            broker_name: Some("b".into()),
            ..Default::default()
        };
        let fields = header.to_ext_fields();
        let mut keys: Vec<&str> = fields.keys().collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bname",
                "commitOffset",
                "consumerGroup",
                "expressionType",
                "maxMsgBytes",
                "maxMsgNums",
                "proxyFrowardClientId",
                "queueId",
                "queueOffset",
                "requestSource",
                "subVersion",
                "subscription",
                "suspendTimeoutMillis",
                "sysFlag",
                "topic",
            ]
        );
    }

    #[test]
    fn response_from_broker_fields() {
        let fields = [
            ("suggestWhichBrokerId", "1"),
            ("nextBeginOffset", "42"),
            ("minOffset", "0"),
            ("maxOffset", "100"),
            ("topicSysFlag", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let header = PullMessageResponseHeader::from_ext_fields(&fields).unwrap();
        assert_eq!(header.suggest_which_broker_id, 1);
        assert_eq!(header.next_begin_offset, 42);
        assert_eq!(header.offset_delta, None);
        assert_eq!(header.topic_sys_flag, Some(0));
        let mut fields = fields;
        fields.insert("maxOffset", "12x");
        let err = PullMessageResponseHeader::from_ext_fields(&fields).unwrap_err();
        assert!(err.to_string().contains("`maxOffset`"), "{err}");
    }
}
