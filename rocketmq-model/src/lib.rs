//! RocketMQ wire data: messages, queues, routes, codes, command headers and
//! bodies. Pure data: nothing here knows that sockets exist.
//!
//! Every decoder returns a [`Result`]; malformed input is a
//! [`ModelError`], never a panic.

pub mod body;
pub mod code;
pub mod error;
pub mod header;
pub mod message;
pub mod namespace;
pub mod queue;
pub mod resource;
pub mod route;
pub mod time;

pub use code::{RequestCode, ResponseCode};
pub use error::{ModelError, Result};
pub use header::{CommandHeader, ExtFields};
pub use namespace::Namespace;
pub use queue::MessageQueue;

pub use message::{
    CompressionType, DecodeOptions, Message, MessageBuilder, MessageExt, OffsetMessageId,
    Properties, TransactionType, UniqueIdGenerator, decode_batch, decode_records, encode_batch,
    encode_record, property,
};

pub use body::{ConsumerRunningInfo, HeartbeatData, JsonBody, SubscriptionData, java_string_hash};
pub use route::{BrokerData, ClusterInfo, PublishQueues, PullAddr, QueueData, TopicRouteData};
