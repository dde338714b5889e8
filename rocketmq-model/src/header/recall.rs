//! RECALL_MESSAGE (370, RocketMQ 5.3.1+) headers: take back a timer message
//! before it is due, by the handle its send answered.

command_header! {
    /// RECALL_MESSAGE request header, sent to the broker the handle names.
    pub struct RecallMessageRequestHeader {
        /// The recalling producer's group.
        opt producer_group: String = "producerGroup";
        /// The message's topic (must be the handle's).
        req topic: String = "topic";
        /// The recall handle of the message's send result.
        req recall_handle: String = "recallHandle";
        /// Broker name (5.x `bname`): the handle's.
        opt broker_name: String = "bname";
    }
}

command_header! {
    /// RECALL_MESSAGE response header.
    pub struct RecallMessageResponseHeader {
        /// The recalled message's unique id (its UNIQ_KEY).
        req msg_id: String = "msgId";
    }
}
