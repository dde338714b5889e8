//! Pop consumption headers (5.x): POP_MESSAGE (200050), ACK_MESSAGE
//! (200051) and CHANGE_MESSAGE_INVISIBLETIME (200053). Their codes do not fit
//! the ROCKETMQ binary header's int16, so they always travel as JSON.

command_header! {
    /// POP_MESSAGE request header.
    pub struct PopMessageRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// Topic.
        req topic: String = "topic";
        /// Queue to pop from; -1 pops from every queue of the broker.
        req queue_id: i32 = "queueId";
        /// Most messages to answer; a Java broker refuses more than 32.
        req max_msg_nums: i32 = "maxMsgNums";
        /// How long the answered messages stay hidden from the group, in ms.
        req invisible_time: i64 = "invisibleTime";
        /// How long the broker may hold the request for messages to arrive,
        /// in ms (long polling); 0 answers at once.
        req poll_time: i64 = "pollTime";
        /// When the request was made (epoch ms); with `pollTime`, the broker
        /// answers POLLING_TIMEOUT to a request already over 500 ms late.
        req born_time: i64 = "bornTime";
        /// Where a group without a committed offset starts: 0 the queue's
        /// first message, 1 its end (Java's `ConsumeInitMode`).
        req init_mode: i32 = "initMode";
        /// "TAG" or "SQL92".
        opt exp_type: String = "expType";
        /// Filter expression, e.g. `*` or `TagA || TagB`.
        opt exp: String = "exp";
        /// Orderly pop: a queue's next messages wait for these to be acknowledged.
        default(false) order: bool = "order";
        /// Orderly pop: the attempt a retried request repeats.
        opt attempt_id: String = "attemptId";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// POP_MESSAGE response header.
    pub struct PopMessageResponseHeader {
        /// When the broker popped the messages (epoch ms).
        req pop_time: i64 = "popTime";
        /// The invisible time the broker applied, in ms.
        req invisible_time: i64 = "invisibleTime";
        /// The broker's revive queue for this pop (999 for orderly pops).
        req revive_qid: i32 = "reviveQid";
        /// Messages left after these.
        req rest_num: i64 = "restNum";
        /// Per queue popped, where the pop began: `retry queueId offset`,
        /// `;`-separated.
        opt start_offset_info: String = "startOffsetInfo";
        /// Per queue popped, the offsets answered: `retry queueId o1,o2`,
        /// `;`-separated.
        opt msg_offset_info: String = "msgOffsetInfo";
        /// Orderly pop: how often each message was answered before.
        opt order_count_info: String = "orderCountInfo";
    }
}

command_header! {
    /// ACK_MESSAGE request header.
    pub struct AckMessageRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// The topic the message was popped from: the pop retry topic for a
        /// redelivered message.
        req topic: String = "topic";
        /// The message's queue.
        req queue_id: i32 = "queueId";
        /// The message's receipt handle (its POP_CK property).
        req extra_info: String = "extraInfo";
        /// The message's queue offset.
        req offset: i64 = "offset";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME request header.
    pub struct ChangeInvisibleTimeRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// As [`AckMessageRequestHeader::topic`].
        req topic: String = "topic";
        /// The message's queue.
        req queue_id: i32 = "queueId";
        /// The message's receipt handle (its POP_CK property).
        req extra_info: String = "extraInfo";
        /// The message's queue offset.
        req offset: i64 = "offset";
        /// The new invisible time, from now, in ms.
        req invisible_time: i64 = "invisibleTime";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// CHANGE_MESSAGE_INVISIBLETIME response header: the message's new pop.
    pub struct ChangeInvisibleTimeResponseHeader {
        /// When the broker made the new pop (epoch ms).
        req pop_time: i64 = "popTime";
        /// The new invisible time, in ms.
        req invisible_time: i64 = "invisibleTime";
        /// The new pop's revive queue.
        req revive_qid: i32 = "reviveQid";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CommandHeader;

    #[test]
    fn pop_request_uses_java_keys_and_sends_order() {
        let header = PopMessageRequestHeader {
            consumer_group: "cg".into(),
            topic: "T".into(),
            queue_id: -1,
            max_msg_nums: 32,
            invisible_time: 30_000,
            poll_time: 20_000,
            born_time: 1,
            init_mode: 1,
            exp_type: Some("TAG".into()),
            exp: Some("*".into()),
            order: false,
            attempt_id: None,
            broker_name: Some("b".into()),
        };
        let fields = header.to_ext_fields();
        let mut pairs: Vec<(&str, &str)> = fields.iter().collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            [
                ("bname", "b"),
                ("bornTime", "1"),
                ("consumerGroup", "cg"),
                ("exp", "*"),
                ("expType", "TAG"),
                ("initMode", "1"),
                ("invisibleTime", "30000"),
                ("maxMsgNums", "32"),
                ("order", "false"),
                ("pollTime", "20000"),
                ("queueId", "-1"),
                ("topic", "T"),
            ]
        );
        assert_eq!(
            PopMessageRequestHeader::from_ext_fields(&fields).unwrap(),
            header
        );
    }

    #[test]
    fn pop_response_reads_a_java_answer() {
        let fields = [
            ("popTime", "1700000000000"),
            ("invisibleTime", "60000"),
            ("reviveQid", "3"),
            ("restNum", "0"),
            ("startOffsetInfo", "0 1 5;1 0 2"),
            ("msgOffsetInfo", "0 1 5,6;1 0 2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let header = PopMessageResponseHeader::from_ext_fields(&fields).unwrap();
        assert_eq!(header.pop_time, 1_700_000_000_000);
        assert_eq!(header.revive_qid, 3);
        assert_eq!(header.start_offset_info.as_deref(), Some("0 1 5;1 0 2"));
        assert_eq!(header.order_count_info, None);
        let mut fields = fields;
        fields.remove("reviveQid");
        let err = PopMessageResponseHeader::from_ext_fields(&fields).unwrap_err();
        assert!(err.to_string().contains("`reviveQid`"), "{err}");
    }
}
