//! [`ClientError`]: the one error type of this crate.

use std::sync::Arc;
use std::time::Duration;

use rocketmq_kernel::KernelError;
use rocketmq_model::{ModelError, ResponseCode};
use rocketmq_remoting::RemotingError;

/// What went wrong in a producer, a consumer or the client instance.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A decision of the kernel failed (route lookup, offsets, ...).
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A call to a broker or nameserver failed.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// A message, header or body could not be built, encoded or decoded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A message (or an encoded batch) is larger than the producer's
    /// `max_message_size`; nothing was sent.
    #[error("message of {size} bytes exceeds the maximum message size of {limit} bytes")]
    MessageTooLarge {
        /// The body size (the encoded size for a batch).
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The message is not acceptable (empty body, bad topic, a batch mixing
    /// topics, ...); nothing was sent.
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The topic has no route and could not be created through `TBW102`.
    #[error(
        "no route for topic {topic}: create the topic, or let the brokers create it (autoCreateTopicEnable)"
    )]
    NoRoute {
        /// The topic.
        topic: String,
    },
    /// The queue selector chose no queue (or an index out of range).
    #[error("the queue selector chose no queue of topic {topic}")]
    NoQueueSelected {
        /// The topic.
        topic: String,
    },
    /// A send (with its retries) did not complete within its timeout.
    #[error("send to topic {topic} timed out after {after:?} ({attempts} attempts)")]
    SendTimeout {
        /// The topic.
        topic: String,
        /// The send timeout.
        after: Duration,
        /// Attempts made before the budget ran out.
        attempts: u32,
    },
    /// A request (request-reply) got no reply in time; the request itself
    /// was stored.
    #[error("no reply to the request {correlation_id} within {after:?}")]
    RequestTimeout {
        /// The request's CORRELATION_ID.
        correlation_id: String,
        /// The request timeout.
        after: Duration,
    },
    /// A group name is already used by another producer or consumer of the
    /// same client instance.
    #[error("group {group} is already registered with client {client_id}")]
    GroupAlreadyRegistered {
        /// The group.
        group: String,
        /// The client id of the instance.
        client_id: String,
    },
    /// A broker refused a subscription at start (CHECK_CLIENT_CONFIG): it does
    /// not filter by properties, or the SQL92 expression does not compile.
    /// The consumer did not start.
    #[error("broker {addr} refused the subscription to {topic} ({expression}): {reason}")]
    SubscriptionRefused {
        /// The subscribed topic.
        topic: String,
        /// The expression as written.
        expression: String,
        /// The broker that refused it.
        addr: String,
        /// The broker's answer (or why it could not be asked).
        reason: String,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A call that does not fit the consumer as built (e.g. `assign` on a
    /// consumer that subscribes).
    #[error("{0}")]
    InvalidCall(String),
    /// The queue is not read by this consumer (not assigned to it, or taken
    /// away by a rebalance).
    #[error("queue {0} is not read by this consumer")]
    NotAssigned(rocketmq_model::MessageQueue),
    /// A seek to an offset the queue does not have (Java's "Seek offset
    /// illegal"): it must lie within the queue's bounds as its broker
    /// reports them, `min..=max` (`max` is where the next message will be
    /// stored).
    #[error("offset {offset} is outside queue {queue}'s offsets {min}..={max}")]
    OffsetOutOfRange {
        /// The queue sought.
        queue: rocketmq_model::MessageQueue,
        /// The offset asked for.
        offset: i64,
        /// The queue's first stored offset.
        min: i64,
        /// The queue's end: the next message's offset.
        max: i64,
    },
    /// The producer, consumer or instance was shut down.
    #[error("{0} is shut down")]
    Shutdown(&'static str),
    /// The automatic batch a message was sent in failed (with
    /// `ProducerBuilder::auto_batch`): every message of the batch gets the
    /// batch's error.
    #[error("the batch the message was sent in failed: {0}")]
    BatchFailed(Arc<ClientError>),
    /// Code run for the call on a task of the client's panicked (a send
    /// hook, say): the call's outcome is unknown.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What was running.
        what: &'static str,
        /// The panic's message.
        message: String,
    },
}

impl ClientError {
    /// Whether trying again (possibly on another broker, or later) may
    /// succeed: connection failures, timeouts, busy or unavailable brokers,
    /// missing routes.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Kernel(err) => err.is_retriable(),
            ClientError::Remoting(err) => err.is_retriable(),
            ClientError::NoRoute { .. } | ClientError::SendTimeout { .. } => true,
            ClientError::BatchFailed(err) => err.is_retriable(),
            _ => false,
        }
    }

    /// The code a broker or nameserver answered with, when the error is its
    /// refusal (Java's `MQBrokerException.getResponseCode`), e.g.
    /// SYSTEM_BUSY or NO_PERMISSION.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            ClientError::Remoting(err) | ClientError::Kernel(KernelError::Remoting(err)) => {
                err.response_code()
            }
            ClientError::BatchFailed(err) => err.response_code(),
            _ => None,
        }
    }
}

/// `Result` with [`ClientError`].
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use rocketmq_model::ResponseCode;

    use super::*;

    fn response(code: ResponseCode) -> ClientError {
        ClientError::Remoting(RemotingError::Response {
            addr: "b:10911".into(),
            code,
            remark: String::new(),
        })
    }

    #[test]
    fn busy_brokers_and_missing_routes_are_retriable() {
        assert!(response(ResponseCode::SYSTEM_BUSY).is_retriable());
        assert_eq!(
            response(ResponseCode::SYSTEM_BUSY).response_code(),
            Some(ResponseCode::SYSTEM_BUSY)
        );
        assert_eq!(ClientError::Shutdown("producer").response_code(), None);
        assert!(ClientError::Kernel(KernelError::NoRoute { topic: "t".into() }).is_retriable());
        assert!(
            ClientError::Kernel(KernelError::Remoting(RemotingError::Timeout {
                addr: "b".into(),
                after: Duration::from_secs(1),
            }))
            .is_retriable()
        );
    }

    #[test]
    fn refusals_and_local_errors_are_not() {
        assert!(!response(ResponseCode::MESSAGE_ILLEGAL).is_retriable());
        assert!(!ClientError::MessageTooLarge { size: 5, limit: 4 }.is_retriable());
        assert!(!ClientError::Shutdown("producer").is_retriable());
        let text = ClientError::MessageTooLarge {
            size: 5_000_000,
            limit: 4_194_304,
        }
        .to_string();
        assert!(
            text.contains("5000000") && text.contains("4194304"),
            "{text}"
        );
    }
}
