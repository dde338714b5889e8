//! JSON bodies of remoting commands (PROTOCOL.md §7).
//!
//! Every body implements [`JsonBody`] (and has the same `decode`/`encode` as
//! inherent methods, so no import is needed). Bodies that Java writes with
//! non-standard JSON (maps keyed by [`MessageQueue`](crate::MessageQueue)
//! objects) read both that and standard JSON, and write it Java's way; see
//! [`nonstandard_json`].

/// Implements [`JsonBody`] and inherent `decode`/`encode` for a type whose JSON
/// is standard (plain serde).
macro_rules! standard_json_body {
    ($ty:ident) => {
        impl $ty {
            /// Decodes the body from JSON.
            pub fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $crate::body::nonstandard_json::decode_standard(stringify!($ty), bytes)
            }

            /// Encodes the body as JSON.
            pub fn encode(&self) -> $crate::Result<Vec<u8>> {
                serde_json::to_vec(self)
                    .map_err(|e| $crate::body::nonstandard_json::json_error(stringify!($ty), e))
            }
        }

        json_body_trait!($ty);
    };
}

/// Implements [`JsonBody`] by delegating to inherent `decode`/`encode`.
macro_rules! json_body_trait {
    ($ty:ident) => {
        impl $crate::body::JsonBody for $ty {
            const NAME: &'static str = stringify!($ty);

            fn decode(bytes: &[u8]) -> $crate::Result<Self> {
                $ty::decode(bytes)
            }

            fn encode(&self) -> $crate::Result<Vec<u8>> {
                $ty::encode(self)
            }
        }
    };
}

mod assignment;
mod batch_ack;
mod check_client;
mod consume_directly;
mod consume_stats;
mod consumer_list;
mod heartbeat;
mod lock;
pub mod nonstandard_json;
mod reset_offset;
mod running_info;
pub mod trace;

pub use assignment::{
    MessageQueueAssignment, MessageRequestMode, QueryAssignmentRequestBody,
    QueryAssignmentResponseBody, SetMessageRequestModeRequestBody,
};
pub use batch_ack::{AckBits, BatchAck, BatchAckMessageRequestBody};
pub use check_client::CheckClientRequestBody;
pub use consume_directly::{ConsumeMessageDirectlyResult, ConsumeResult};
pub use consume_stats::{ConsumeStats, QueueOffsets};
pub use consumer_list::ConsumerListBody;
pub use heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, ExpressionType, HeartbeatData, MessageModel,
    ProducerData, SUB_ALL, SubscriptionData, java_string_hash,
};
pub use lock::{LockBatchRequestBody, LockBatchResponseBody, UnlockBatchRequestBody};
pub use reset_offset::{GetConsumerStatusBody, ResetOffsetBody};
pub use running_info::{
    ConsumeStatus, ConsumerRunningInfo, PopProcessQueueInfo, ProcessQueueInfo, property_keys,
};

/// A JSON command body.
pub trait JsonBody: Sized {
    /// The body's name in errors (the Java class name).
    const NAME: &'static str;

    /// Decodes the body.
    fn decode(bytes: &[u8]) -> crate::Result<Self>;

    /// Encodes the body as Java writes it.
    fn encode(&self) -> crate::Result<Vec<u8>>;
}

json_body_trait!(TopicRouteData);
json_body_trait!(ClusterInfo);

use crate::route::{ClusterInfo, TopicRouteData};
