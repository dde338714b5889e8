//! The one error type of this crate.

use std::time::Duration;

use rocketmq_model::{ModelError, ResponseCode};

/// What went wrong on the wire or in a call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// A frame announced a length over the configured limit. The connection is
    /// closed; nothing of that size was allocated.
    #[error("frame of {actual} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// The configured maximum.
        limit: usize,
        /// The length the peer announced.
        actual: usize,
    },
    /// A frame could not be decoded or encoded (bad lengths, bad header).
    #[error("malformed frame: {0}")]
    MalformedFrame(String),
    /// Dialing an address failed.
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The address dialed.
        addr: String,
        /// The transport's error.
        #[source]
        source: std::io::Error,
    },
    /// Dialing an address did not finish in time.
    #[error("connect to {addr} timed out after {after:?}")]
    ConnectTimeout {
        /// The address dialed.
        addr: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The connection closed (or failed) before the call got its answer.
    #[error("connection to {addr} closed: {reason}")]
    ConnectionClosed {
        /// The peer's address.
        addr: String,
        /// Why it closed.
        reason: String,
    },
    /// No answer arrived in time.
    #[error("call to {addr} timed out after {after:?}")]
    Timeout {
        /// The peer's address.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// Too many calls are waiting for answers on one connection.
    #[error("too many pending calls on the connection to {addr} (limit {limit})")]
    TooManyPending {
        /// The peer's address.
        addr: String,
        /// The configured limit.
        limit: usize,
    },
    /// The peer answered with a code the call does not accept.
    #[error("{code} from {addr}: {remark}")]
    Response {
        /// The peer's address (empty when unknown).
        addr: String,
        /// The response code.
        code: ResponseCode,
        /// The response's remark (empty when none).
        remark: String,
    },
    /// A header or body of an answer could not be decoded.
    #[error("bad answer from peer: {0}")]
    Model(#[from] ModelError),
    /// No address to send to (e.g. an empty nameserver list).
    #[error("no address available: {0}")]
    NoAddress(String),
    /// An I/O error outside of a connection's life (e.g. binding a listener).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl RemotingError {
    /// Whether the call may succeed if sent again (possibly elsewhere): the
    /// connection failed, or the peer was busy or unavailable.
    pub fn is_retriable(&self) -> bool {
        match self {
            RemotingError::Connect { .. }
            | RemotingError::ConnectTimeout { .. }
            | RemotingError::ConnectionClosed { .. }
            | RemotingError::Timeout { .. }
            | RemotingError::TooManyPending { .. } => true,
            RemotingError::Response { code, .. } => code.is_send_retriable(),
            _ => false,
        }
    }

    /// Whether the connection is unusable: it could not be dialled or it closed.
    ///
    /// A frame that is too large or malformed on *receipt* closes the connection,
    /// and the calls on it fail with [`ConnectionClosed`](Self::ConnectionClosed);
    /// the same errors on *encode* concern one request only, so they do not count.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            RemotingError::Connect { .. }
                | RemotingError::ConnectTimeout { .. }
                | RemotingError::ConnectionClosed { .. }
        )
    }

    /// The response code, when the peer answered with one the call rejected.
    pub fn response_code(&self) -> Option<ResponseCode> {
        match self {
            RemotingError::Response { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// `Result` with [`RemotingError`].
pub type Result<T, E = RemotingError> = std::result::Result<T, E>;
