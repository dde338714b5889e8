//! Client-registration headers and the headers of broker→client requests
//! (PROTOCOL.md §3.6 and §3.9).

command_header! {
    /// UNREGISTER_CLIENT (35) request header.
    pub struct UnregisterClientRequestHeader {
        /// The client id; the wire key is `clientID` (capital "ID").
        req client_id: String = "clientID";
        /// The producer group being unregistered, if any.
        opt producer_group: String = "producerGroup";
        /// The consumer group being unregistered, if any.
        opt consumer_group: String = "consumerGroup";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_CONSUMER_LIST_BY_GROUP (38) request header.
    pub struct GetConsumerListByGroupRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// NOTIFY_CONSUMER_IDS_CHANGED (40) header, broker→client.
    pub struct NotifyConsumerIdsChangedRequestHeader {
        /// The group whose membership changed.
        req consumer_group: String = "consumerGroup";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// RESET_CONSUMER_CLIENT_OFFSET (220) header, broker→client.
    pub struct ResetOffsetRequestHeader {
        /// Consumer group.
        req group: String = "group";
        /// Topic.
        req topic: String = "topic";
        /// Queue id; −1 (the Java default, always written) means every queue.
        default(-1) queue_id: i32 = "queueId";
        /// The target offset, when resetting to an offset.
        opt offset: i64 = "offset";
        /// The target time in ms.
        req timestamp: i64 = "timestamp";
        /// Reset even to a larger offset; the wire key is literally `isForce`.
        req is_force: bool = "isForce";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_CONSUMER_STATUS_FROM_CLIENT (221) header, broker→client (deprecated).
    pub struct GetConsumerStatusRequestHeader {
        /// Topic.
        req topic: String = "topic";
        /// Consumer group.
        req group: String = "group";
        /// The client address asked about.
        opt client_addr: String = "clientAddr";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// GET_CONSUMER_RUNNING_INFO (307) header, broker→client.
    pub struct GetConsumerRunningInfoRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// The client id; the wire key is `clientId` (lowercase "d").
        req client_id: String = "clientId";
        /// Include a thread dump (a Java primitive: always written).
        default(false) jstack_enable: bool = "jstackEnable";
        /// Broker name (5.x `bname`).
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// CONSUME_MESSAGE_DIRECTLY (309) header, broker→client.
    pub struct ConsumeMessageDirectlyResultRequestHeader {
        /// Consumer group.
        req consumer_group: String = "consumerGroup";
        /// The client asked to consume.
        opt client_id: String = "clientId";
        /// The message's offset msgId.
        opt msg_id: String = "msgId";
        /// The broker holding the message (a field of its own, not `bname`).
        opt broker_name: String = "brokerName";
        /// Topic.
        opt topic: String = "topic";
        /// The topic's system flag.
        opt topic_sys_flag: i32 = "topicSysFlag";
        /// The group's system flag.
        opt group_sys_flag: i32 = "groupSysFlag";
        /// Broker name (5.x `bname`).
        opt bname: String = "bname";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{CommandHeader, ExtFields};

    #[test]
    fn java_keys() {
        let header = UnregisterClientRequestHeader {
            client_id: "c".into(),
            ..Default::default()
        };
        assert_eq!(header.to_ext_fields()["clientID"], "c");
        let header = GetConsumerRunningInfoRequestHeader {
            client_id: "c".into(),
            ..Default::default()
        };
        let fields = header.to_ext_fields();
        assert_eq!(fields["clientId"], "c");
        assert_eq!(fields["jstackEnable"], "false");
    }

    #[test]
    fn reset_offset_defaults_queue_id_and_needs_is_force() {
        let mut fields: ExtFields = [("group", "g"), ("topic", "t"), ("timestamp", "5")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let err = ResetOffsetRequestHeader::from_ext_fields(&fields).unwrap_err();
        assert!(err.to_string().contains("`isForce`"), "{err}");
        fields.insert("isForce", "true");
        let header = ResetOffsetRequestHeader::from_ext_fields(&fields).unwrap();
        assert_eq!(header.queue_id, -1);
        assert!(header.is_force);
        assert_eq!(header.offset, None);
    }
}
