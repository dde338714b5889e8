//! The testkit's one error type.

use std::io;

use rocketmq_model::ModelError;
use rocketmq_remoting::RemotingError;
use rocketmq_remoting::transport::TlsConfigError;

/// What can go wrong starting a cluster or acting on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// A listener could not be bound (address in use, bad address, ...).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The broker is stopped.
    #[error("broker {0} is stopped")]
    BrokerStopped(String),
    /// The broker is already running.
    #[error("broker {0} is already running")]
    BrokerRunning(String),
    /// No client with this id is connected in this group.
    #[error("client {client_id} of group {group} is not connected")]
    ClientNotFound {
        /// The consumer group.
        group: String,
        /// The client id.
        client_id: String,
    },
    /// The consumer group has no member on this broker.
    #[error("consumer group {0} has no member online")]
    GroupNotOnline(String),
    /// A reset needs the group's committed offset of every queue (Java:
    /// `THe consumer group <g> not exist`).
    #[error("consumer group {group} has no committed offset for {topic} queue {queue_id}")]
    NoCommittedOffset {
        /// The consumer group.
        group: String,
        /// The topic.
        topic: String,
        /// The queue.
        queue_id: i32,
    },
    /// The broker does not know the subscription group (Java's
    /// SUBSCRIPTION_GROUP_NOT_EXIST).
    #[error("subscription group {0} does not exist")]
    SubscriptionGroupNotFound(String),
    /// A server-side offset reset was refused (Java's SYSTEM_ERROR, with
    /// its remark).
    #[error("offset reset refused: {0}")]
    ResetRefused(String),
    /// The topic is unknown to the broker.
    #[error("topic {0} does not exist")]
    TopicNotFound(String),
    /// No stored message has this id.
    #[error("no message with id {0}")]
    MessageNotFound(String),
    /// The builder was given an invalid setting.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A TLS configuration was refused (a key that does not match its
    /// certificate, a certificate that does not parse, ...).
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// Test certificates could not be generated.
    #[error("cannot generate certificates: {0}")]
    Certificate(String),
    /// A call to a client failed.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// A body or header could not be encoded or decoded.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The testkit's result type.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
