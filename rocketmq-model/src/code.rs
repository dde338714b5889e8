//! Request and response codes (PROTOCOL.md §3.1 and §4).
//!
//! Codes are open sets: a peer may send a code this crate has never heard of, and
//! it must survive a round trip unchanged. So a code is a newtype over `i32` with
//! named constants, not a closed enum.

use std::fmt;

macro_rules! codes {
    ($(#[$meta:meta])* $ty:ident { $($(#[$doc:meta])* $name:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(pub i32);

        impl $ty {
            $($(#[$doc])* pub const $name: $ty = $ty($value);)*

            /// The protocol name of this code, or `None` for a code this crate
            /// does not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(name) => write!(f, "{}({})", name, self.0),
                    None => write!(f, "{}({})", stringify!($ty), self.0),
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<i32> for $ty {
            fn from(code: i32) -> Self {
                $ty(code)
            }
        }

        impl From<$ty> for i32 {
            fn from(code: $ty) -> i32 {
                code.0
            }
        }
    };
}

codes! {
    /// The code of a request: what the sender asks for.
    RequestCode {
        /// Send a message (v1 header keys).
        SEND_MESSAGE = 10,
        /// Pull messages from a queue.
        PULL_MESSAGE = 11,
        /// Look messages up by key.
        QUERY_MESSAGE = 12,
        /// Read a consumer group's offset of one queue.
        QUERY_CONSUMER_OFFSET = 14,
        /// Store a consumer group's offset of one queue.
        UPDATE_CONSUMER_OFFSET = 15,
        /// Create or update a topic on a broker (admin).
        UPDATE_AND_CREATE_TOPIC = 17,
        /// Find the offset of a queue at a timestamp.
        SEARCH_OFFSET_BY_TIMESTAMP = 29,
        /// The next offset to be written in a queue.
        GET_MAX_OFFSET = 30,
        /// The lowest offset still stored in a queue.
        GET_MIN_OFFSET = 31,
        /// The store time of the earliest message of a queue.
        GET_EARLIEST_MSG_STORETIME = 32,
        /// Read one message by its commit-log offset.
        VIEW_MESSAGE_BY_ID = 33,
        /// Register the client's producer and consumer groups.
        HEART_BEAT = 34,
        /// Unregister a client's group.
        UNREGISTER_CLIENT = 35,
        /// Send a failed message back for a later retry.
        CONSUMER_SEND_MSG_BACK = 36,
        /// Commit or roll back a transactional half message.
        END_TRANSACTION = 37,
        /// The client ids of a consumer group.
        GET_CONSUMER_LIST_BY_GROUP = 38,
        /// Broker asks a producer for the state of a half message.
        CHECK_TRANSACTION_STATE = 39,
        /// Broker tells a consumer that its group's membership changed.
        NOTIFY_CONSUMER_IDS_CHANGED = 40,
        /// Lock queues for orderly consumption.
        LOCK_BATCH_MQ = 41,
        /// Unlock queues held for orderly consumption.
        UNLOCK_BATCH_MQ = 42,
        /// Ask a broker whether it can serve a subscription (an SQL92
        /// expression needs `enablePropertyFilter`, and must compile).
        CHECK_CLIENT_CONFIG = 46,
        /// The route of a topic (nameserver).
        GET_ROUTEINFO_BY_TOPIC = 105,
        /// Every broker and cluster (nameserver).
        GET_BROKER_CLUSTER_INFO = 106,
        /// A consumer group's offsets on a broker against the queues' ends
        /// (admin; Java's `examineConsumeStats`).
        GET_CONSUME_STATS = 208,
        /// Broker tells a consumer to reset its offsets.
        RESET_CONSUMER_CLIENT_OFFSET = 220,
        /// Broker asks a consumer for its offsets (deprecated).
        GET_CONSUMER_STATUS_FROM_CLIENT = 221,
        /// Broker (or admin) asks a consumer for its running state.
        GET_CONSUMER_RUNNING_INFO = 307,
        /// Broker (or admin) asks a consumer to consume one message now.
        CONSUME_MESSAGE_DIRECTLY = 309,
        /// Send a message (v2 short header keys).
        SEND_MESSAGE_V2 = 310,
        /// Send a batch of messages.
        SEND_BATCH_MESSAGE = 320,
        /// Send a reply message (request-reply, v1 keys).
        SEND_REPLY_MESSAGE = 324,
        /// Send a reply message (request-reply, v2 keys).
        SEND_REPLY_MESSAGE_V2 = 325,
        /// Broker pushes a reply message to the requesting client.
        PUSH_REPLY_MESSAGE_TO_CLIENT = 326,
        /// Pull for a lite pull consumer.
        LITE_PULL_MESSAGE = 361,
        /// Take back a timer message before it is due, by the recall handle
        /// its send answered (5.3.1+).
        RECALL_MESSAGE = 370,
        /// Ask a broker which queues of a topic to consume, and whether to
        /// pull or pop them (5.x broker-side rebalance).
        QUERY_ASSIGNMENT = 400,
        /// Set whether a group's clients pull or pop a topic (5.x admin).
        SET_MESSAGE_REQUEST_MODE = 401,
        /// Pop messages: the broker hides what it answers from the group
        /// until acknowledged or the invisible time passes (5.x; JSON
        /// headers only, the code does not fit the ROCKETMQ header).
        POP_MESSAGE = 200050,
        /// Acknowledge one popped message.
        ACK_MESSAGE = 200051,
        /// Give a popped message a new invisible time, from now.
        CHANGE_MESSAGE_INVISIBLETIME = 200053,
        /// Acknowledge popped messages in one request (5.x).
        BATCH_ACK_MESSAGE = 200151,
    }
}

codes! {
    /// The code of a response: how the request went.
    ResponseCode {
        /// Success.
        SUCCESS = 0,
        /// Generic server error; the remark has details.
        SYSTEM_ERROR = 1,
        /// Server flow control; back off or retry elsewhere.
        SYSTEM_BUSY = 2,
        /// The peer does not know the request code.
        REQUEST_CODE_NOT_SUPPORTED = 3,
        /// A transaction failed.
        TRANSACTION_FAILED = 4,
        /// Stored, but the synchronous disk flush timed out.
        FLUSH_DISK_TIMEOUT = 10,
        /// Stored on the master, no slave available.
        SLAVE_NOT_AVAILABLE = 11,
        /// Stored on the master, slave synchronisation timed out.
        FLUSH_SLAVE_TIMEOUT = 12,
        /// The message is illegal (size, properties, topic, timer).
        MESSAGE_ILLEGAL = 13,
        /// The service is unavailable (disk full, slave, shutting down).
        SERVICE_NOT_AVAILABLE = 14,
        /// The version is not supported.
        VERSION_NOT_SUPPORTED = 15,
        /// No permission: perm bits or ACL.
        NO_PERMISSION = 16,
        /// The topic does not exist.
        TOPIC_NOT_EXIST = 17,
        /// The topic already exists.
        TOPIC_EXIST_ALREADY = 18,
        /// No new message (long poll expired).
        PULL_NOT_FOUND = 19,
        /// Everything was filtered out; continue at nextBeginOffset.
        PULL_RETRY_IMMEDIATELY = 20,
        /// Illegal pull offset; continue at nextBeginOffset.
        PULL_OFFSET_MOVED = 21,
        /// No consumer offset, or no message found.
        QUERY_NOT_FOUND = 22,
        /// The subscription expression could not be parsed.
        SUBSCRIPTION_PARSE_FAILED = 23,
        /// The broker has no subscription for the group.
        SUBSCRIPTION_NOT_EXIST = 24,
        /// The registered subscription is older than the request's.
        SUBSCRIPTION_NOT_LATEST = 25,
        /// The subscription group does not exist.
        SUBSCRIPTION_GROUP_NOT_EXIST = 26,
        /// Filter data does not exist.
        FILTER_DATA_NOT_EXIST = 27,
        /// Filter data is not the latest.
        FILTER_DATA_NOT_LATEST = 28,
        /// An invalid parameter (5.x).
        INVALID_PARAMETER = 29,
        /// Transaction state: commit.
        TRANSACTION_SHOULD_COMMIT = 200,
        /// Transaction state: roll back.
        TRANSACTION_SHOULD_ROLLBACK = 201,
        /// Transaction state: unknown.
        TRANSACTION_STATE_UNKNOW = 202,
        /// Transaction state: wrong group.
        TRANSACTION_STATE_GROUP_WRONG = 203,
        /// No buyer id.
        NO_BUYER_ID = 204,
        /// Not in the current unit.
        NOT_IN_CURRENT_UNIT = 205,
        /// The consumer is not online.
        CONSUMER_NOT_ONLINE = 206,
        /// Consuming the message timed out.
        CONSUME_MSG_TIMEOUT = 207,
        /// No message.
        NO_MESSAGE = 208,
        /// Polling is full (5.x; 4.x: ACL config update failed).
        POLLING_FULL = 209,
        /// Polling timed out (5.x; 4.x: ACL config delete failed).
        POLLING_TIMEOUT = 210,
        /// The broker does not exist (5.x).
        BROKER_NOT_EXIST = 211,
        /// Broker dispatch not complete.
        BROKER_DISPATCH_NOT_COMPLETE = 212,
        /// Broadcast consumption.
        BROADCAST_CONSUMPTION = 213,
        /// Flow control.
        FLOW_CONTROL = 215,
        /// Not the leader for this queue (static topics).
        NOT_LEADER_FOR_QUEUE = 501,
        /// Illegal operation.
        ILLEGAL_OPERATION = 604,
        /// The server is shutting down: reconnect and retry.
        GO_AWAY = 1500,
    }
}

impl ResponseCode {
    /// Whether a send answered with this code stored the message (SEND_OK or one
    /// of the degraded-durability codes).
    pub fn is_stored(self) -> bool {
        matches!(
            self,
            ResponseCode::SUCCESS
                | ResponseCode::FLUSH_DISK_TIMEOUT
                | ResponseCode::FLUSH_SLAVE_TIMEOUT
                | ResponseCode::SLAVE_NOT_AVAILABLE
        )
    }

    /// The codes after which the Java producer resends a sync send to
    /// another broker by default (`DefaultMQProducer.retryResponseCodes`).
    pub const SEND_RETRY_CODES: [ResponseCode; 8] = [
        ResponseCode::TOPIC_NOT_EXIST,
        ResponseCode::SERVICE_NOT_AVAILABLE,
        ResponseCode::SYSTEM_ERROR,
        ResponseCode::SYSTEM_BUSY,
        ResponseCode::NO_PERMISSION,
        ResponseCode::NO_BUYER_ID,
        ResponseCode::NOT_IN_CURRENT_UNIT,
        ResponseCode::GO_AWAY,
    ];

    /// Whether the Java producer retries a send on another broker after this
    /// code by default: one of [`SEND_RETRY_CODES`](Self::SEND_RETRY_CODES).
    pub fn is_send_retriable(self) -> bool {
        Self::SEND_RETRY_CODES.contains(&self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_have_names_and_numbers() {
        assert_eq!(RequestCode::SEND_MESSAGE_V2.0, 310);
        assert_eq!(
            RequestCode::GET_ROUTEINFO_BY_TOPIC.name(),
            Some("GET_ROUTEINFO_BY_TOPIC")
        );
        assert_eq!(ResponseCode::PULL_OFFSET_MOVED.0, 21);
        assert_eq!(
            format!("{:?}", ResponseCode::QUERY_NOT_FOUND),
            "QUERY_NOT_FOUND(22)"
        );
    }

    #[test]
    fn unknown_codes_are_preserved() {
        let code = RequestCode::from(199_999);
        assert_eq!(code.name(), None);
        assert_eq!(i32::from(code), 199_999);
        assert_eq!(format!("{code:?}"), "RequestCode(199999)");
    }

    #[test]
    fn stored_and_retriable_send_codes() {
        assert!(ResponseCode::FLUSH_DISK_TIMEOUT.is_stored());
        assert!(!ResponseCode::SYSTEM_BUSY.is_stored());
        assert!(ResponseCode::SYSTEM_BUSY.is_send_retriable());
        assert!(!ResponseCode::MESSAGE_ILLEGAL.is_send_retriable());
    }
}
