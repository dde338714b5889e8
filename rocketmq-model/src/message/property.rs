//! Well-known message property keys (PROTOCOL.md §6.2, Java's `MessageConst`).
//!
//! The constant names drop Java's `PROPERTY_` prefix; the values are exactly
//! what travels on the wire.

/// Tag (a single tag; used for filtering).
pub const TAGS: &str = "TAGS";
/// Business keys, separated by [`KEY_SEPARATOR`]; indexed for QUERY_MESSAGE.
pub const KEYS: &str = "KEYS";
/// The separator between the keys in [`KEYS`].
pub const KEY_SEPARATOR: &str = " ";
/// WAIT_STORE_MSG_OK, "true"/"false"; absent means true.
pub const WAIT: &str = "WAIT";
/// Delay level: 1..=18 with the broker's default table, more with a longer
/// `messageDelayLevel` (§8.7).
pub const DELAY: &str = "DELAY";
/// Original topic of a retry message.
pub const RETRY_TOPIC: &str = "RETRY_TOPIC";
/// Original topic of a scheduled or half message (set by the broker).
pub const REAL_TOPIC: &str = "REAL_TOPIC";
/// Original queue of a scheduled or half message (set by the broker).
pub const REAL_QID: &str = "REAL_QID";
/// "true" for transactional half messages.
pub const TRAN_MSG: &str = "TRAN_MSG";
/// Producer group (transactional messages).
pub const PGROUP: &str = "PGROUP";
/// The queue's minimum offset, added client-side after a pull.
pub const MIN_OFFSET: &str = "MIN_OFFSET";
/// The queue's maximum offset, added client-side after a pull.
pub const MAX_OFFSET: &str = "MAX_OFFSET";
/// Buyer id.
pub const BUYER_ID: &str = "BUYER_ID";
/// First msgId of a retried message.
pub const ORIGIN_MESSAGE_ID: &str = "ORIGIN_MESSAGE_ID";
/// Legacy.
pub const TRANSFER_FLAG: &str = "TRANSFER_FLAG";
/// Legacy.
pub const CORRECTION_FLAG: &str = "CORRECTION_FLAG";
/// Legacy.
pub const MQ2_FLAG: &str = "MQ2_FLAG";
/// Reconsume count on client-resent retry messages.
pub const RECONSUME_TIME: &str = "RECONSUME_TIME";
/// Region id; also a send-response extField.
pub const MSG_REGION: &str = "MSG_REGION";
/// Trace switch; also a send-response extField.
pub const TRACE_ON: &str = "TRACE_ON";
/// The client unique message id (§5.6).
pub const UNIQ_KEY: &str = "UNIQ_KEY";
/// Extended unique-id information.
pub const EXTEND_UNIQ_INFO: &str = "EXTEND_UNIQ_INFO";
/// Max reconsume count carried on retry messages.
pub const MAX_RECONSUME_TIMES: &str = "MAX_RECONSUME_TIMES";
/// Set client-side when consumption starts (epoch ms).
pub const CONSUME_START_TIME: &str = "CONSUME_START_TIME";
/// Inner batch count.
pub const INNER_NUM: &str = "INNER_NUM";
/// Inner batch base offset.
pub const INNER_BASE: &str = "INNER_BASE";
/// Duplicate information.
pub const DUP_INFO: &str = "DUP_INFO";
/// Transaction check delay.
pub const CHECK_IMMUNITY_TIME_IN_SECONDS: &str = "CHECK_IMMUNITY_TIME_IN_SECONDS";
/// Queue offset of a prepared transaction message.
pub const TRAN_PREPARED_QUEUE_OFFSET: &str = "TRAN_PREPARED_QUEUE_OFFSET";
/// Transaction id.
pub const TRANSACTION_ID: &str = "__transactionId__";
/// How many times the broker checked a transaction back.
pub const TRANSACTION_CHECK_TIMES: &str = "TRANSACTION_CHECK_TIMES";
/// Namespace.
pub const INSTANCE_ID: &str = "INSTANCE_ID";
/// Request-reply: correlation id.
pub const CORRELATION_ID: &str = "CORRELATION_ID";
/// Request-reply: the client to reply to.
pub const REPLY_TO_CLIENT: &str = "REPLY_TO_CLIENT";
/// Request-reply: time to live.
pub const TTL: &str = "TTL";
/// Request-reply: arrival time.
pub const ARRIVE_TIME: &str = "ARRIVE_TIME";
/// Request-reply: push time of the reply.
pub const PUSH_REPLY_TIME: &str = "PUSH_REPLY_TIME";
/// Request-reply: cluster.
pub const CLUSTER: &str = "CLUSTER";
/// Request-reply: message type ([`MSG_TYPE_REPLY`] for replies).
pub const MSG_TYPE: &str = "MSG_TYPE";
/// The [`MSG_TYPE`] value of a reply message.
pub const MSG_TYPE_REPLY: &str = "reply";
/// Sharding key (Java's PROPERTY_SHARDING_KEY; the Go client's
/// `SHARDING_KEY` is wrong).
pub const SHARDING_KEY: &str = "__SHARDINGKEY";
/// 5.x timer: absolute delivery time in epoch ms.
pub const TIMER_DELIVER_MS: &str = "TIMER_DELIVER_MS";
/// 5.x timer: relative delay in seconds (needs broker `timerWheelEnable`).
pub const TIMER_DELAY_SEC: &str = "TIMER_DELAY_SEC";
/// 5.x timer: relative delay in ms (needs broker `timerWheelEnable`).
pub const TIMER_DELAY_MS: &str = "TIMER_DELAY_MS";
/// The properties that ask a 5.x broker for a timer delivery (Java's
/// `HookUtils.checkIfTimerMessage` reads these three).
pub const TIMER_REQUESTS: [&str; 3] = [TIMER_DELIVER_MS, TIMER_DELAY_SEC, TIMER_DELAY_MS];
/// Broker-internal timer property.
pub const TIMER_ENQUEUE_MS: &str = "TIMER_ENQUEUE_MS";
/// Broker-internal timer property.
pub const TIMER_DEQUEUE_MS: &str = "TIMER_DEQUEUE_MS";
/// Broker-internal timer property.
pub const TIMER_ROLL_TIMES: &str = "TIMER_ROLL_TIMES";
/// Broker-internal timer property.
pub const TIMER_OUT_MS: &str = "TIMER_OUT_MS";
/// Broker-internal timer property.
pub const TIMER_DEL_UNIQKEY: &str = "TIMER_DEL_UNIQKEY";
/// Broker-internal timer property.
pub const TIMER_DELAY_LEVEL: &str = "TIMER_DELAY_LEVEL";
/// Legacy start-deliver-time literal (Aliyun ONS / OpenMessaging). Not in
/// `MessageConst`; the open-source broker does not schedule on it.
pub const START_DELIVER_TIME: &str = "__STARTDELIVERTIME";
/// Pop consumption checkpoint.
pub const POP_CK: &str = "POP_CK";
/// Pop consumption checkpoint offset.
pub const POP_CK_OFFSET: &str = "POP_CK_OFFSET";
/// Time of the first pop.
pub const FIRST_POP_TIME: &str = "1ST_POP_TIME";
/// Born host.
pub const BORN_HOST: &str = "__BORNHOST";
/// Born timestamp.
pub const BORN_TIMESTAMP: &str = "BORN_TIMESTAMP";
/// Store-side CRC.
pub const CRC32: &str = "__CRC32#";
/// Original topic of a dead-lettered message.
pub const DLQ_ORIGIN_TOPIC: &str = "DLQ_ORIGIN_TOPIC";
/// Original message id of a dead-lettered message.
pub const DLQ_ORIGIN_MESSAGE_ID: &str = "DLQ_ORIGIN_MESSAGE_ID";
/// LMQ: the queues a message is dispatched to.
pub const INNER_MULTI_DISPATCH: &str = "INNER_MULTI_DISPATCH";
/// LMQ: the message's offsets in those queues.
pub const INNER_MULTI_QUEUE_OFFSET: &str = "INNER_MULTI_QUEUE_OFFSET";
/// Trace context.
pub const TRACE_CONTEXT: &str = "TRACE_CONTEXT";
/// Forward queue id.
pub const FORWARD_QUEUE_ID: &str = "PROPERTY_FORWARD_QUEUE_ID";
/// Redirect.
pub const REDIRECT: &str = "REDIRECT";
/// Prefix of transient properties (never stored by the broker).
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";

/// The names above that the client and the broker set themselves (Java's
/// `MessageConst.STRING_HASH_SET`, which `Message.putUserProperty`
/// refuses): a user property of one of these names would change how the
/// message is sent, stored or delivered. The others are user properties in
/// Java too: CHECK_IMMUNITY_TIME_IN_SECONDS (a half message's first check),
/// INNER_MULTI_DISPATCH (LMQ queues), `__STARTDELIVERTIME`, ...
pub const RESERVED: &[&str] = &[
    TAGS,
    KEYS,
    WAIT,
    DELAY,
    RETRY_TOPIC,
    REAL_TOPIC,
    REAL_QID,
    TRAN_MSG,
    PGROUP,
    MIN_OFFSET,
    MAX_OFFSET,
    BUYER_ID,
    ORIGIN_MESSAGE_ID,
    TRANSFER_FLAG,
    CORRECTION_FLAG,
    MQ2_FLAG,
    RECONSUME_TIME,
    MSG_REGION,
    TRACE_ON,
    UNIQ_KEY,
    EXTEND_UNIQ_INFO,
    MAX_RECONSUME_TIMES,
    CONSUME_START_TIME,
    DUP_INFO,
    TRAN_PREPARED_QUEUE_OFFSET,
    INSTANCE_ID,
    CORRELATION_ID,
    REPLY_TO_CLIENT,
    TTL,
    ARRIVE_TIME,
    PUSH_REPLY_TIME,
    CLUSTER,
    MSG_TYPE,
    TIMER_DELIVER_MS,
    TIMER_DELAY_SEC,
    TIMER_DELAY_MS,
    TIMER_ENQUEUE_MS,
    TIMER_DEQUEUE_MS,
    TIMER_ROLL_TIMES,
    TIMER_OUT_MS,
    TIMER_DEL_UNIQKEY,
    TIMER_DELAY_LEVEL,
    POP_CK,
    POP_CK_OFFSET,
    FIRST_POP_TIME,
    BORN_HOST,
    BORN_TIMESTAMP,
    CRC32,
    DLQ_ORIGIN_TOPIC,
    DLQ_ORIGIN_MESSAGE_ID,
    INNER_MULTI_QUEUE_OFFSET,
];

/// Whether `name` is one of the [`RESERVED`] names.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.contains(&name)
}
