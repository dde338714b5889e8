//! The one error type of this crate.

use std::sync::Arc;

use rocketmq_model::ModelError;
use rocketmq_remoting::RemotingError;

/// What went wrong while a client decided or did something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A call to a broker or nameserver failed.
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// Data could not be encoded or decoded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A topic has no route (the nameserver does not know it).
    #[error("no route for topic {topic}")]
    NoRoute {
        /// The topic.
        topic: String,
    },
    /// A broker name has no (master) address in the known routes.
    #[error("no address for broker {broker_name}")]
    NoBrokerAddress {
        /// The broker name.
        broker_name: String,
    },
    /// Reading or writing a local file failed (e.g. the local offset store).
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The component was shut down.
    #[error("{0} is shut down")]
    Shutdown(&'static str),
    /// The failure of one request made for several callers (a batch of
    /// acknowledgements), as each of them sees it.
    #[error(transparent)]
    Shared(Arc<KernelError>),
}

impl KernelError {
    /// Whether trying again (possibly elsewhere or later) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            KernelError::Remoting(err) => err.is_retriable(),
            KernelError::NoRoute { .. } | KernelError::NoBrokerAddress { .. } => true,
            KernelError::Shared(err) => err.is_retriable(),
            _ => false,
        }
    }
}

/// `Result` with [`KernelError`].
pub type Result<T, E = KernelError> = std::result::Result<T, E>;
