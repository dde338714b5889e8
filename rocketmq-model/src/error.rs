//! The one error type of this crate.

use std::borrow::Cow;

/// What went wrong while reading or writing RocketMQ wire data.
///
/// Every decoder in this crate returns this type; malformed input is always an
/// error, never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A header field the protocol requires was absent.
    #[error("{header}: required field `{field}` is missing")]
    MissingField {
        /// The header type being decoded.
        header: &'static str,
        /// The extFields key that was absent.
        field: &'static str,
    },
    /// A header field was present but could not be parsed.
    #[error("{header}: field `{field}` has invalid value {value:?}: expected {expected}")]
    InvalidField {
        /// The header type being decoded.
        header: &'static str,
        /// The extFields key.
        field: &'static str,
        /// The text that was found.
        value: String,
        /// What was expected instead (e.g. "a 64-bit integer").
        expected: &'static str,
    },
    /// A binary structure ended before all of its fields were read.
    #[error("{what}: truncated, needed {needed} bytes but {available} remain")]
    Truncated {
        /// The structure being decoded.
        what: &'static str,
        /// Bytes needed to continue.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A binary structure is well-formed in length but its content is invalid.
    #[error("{what}: {reason}")]
    Malformed {
        /// The structure being decoded.
        what: &'static str,
        /// A description of the problem.
        reason: Cow<'static, str>,
    },
    /// A message body uses a compression type this build cannot decompress.
    #[error("unsupported compression type {0} (only zlib is supported)")]
    UnsupportedCompression(u8),
    /// A compressed body failed to decompress.
    #[error("body decompression failed: {0}")]
    Decompress(#[source] std::io::Error),
    /// A JSON body could not be parsed or written.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// The body type being decoded.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A message id string is not a valid id.
    #[error("invalid message id {id:?}: {reason}")]
    InvalidMessageId {
        /// The id as given.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A topic name breaks the naming rules (PROTOCOL.md §1).
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic {
        /// The topic as given.
        topic: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A namespace name that cannot prefix topics and groups.
    #[error("invalid namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The namespace as given.
        namespace: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A message property cannot be carried by the properties string (§6.1).
    #[error("invalid message property {name:?}: {reason}")]
    InvalidProperty {
        /// The property's name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Messages that Java's batch rules do not allow in one batch (§5.5).
    #[error("invalid batch: message {index}: {reason}")]
    InvalidBatch {
        /// The position of the offending message in the batch.
        index: usize,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A value is larger than the wire format or a configured limit allows.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What grew too large (e.g. "decompressed body").
        what: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl ModelError {
    /// Shorthand for [`ModelError::Malformed`].
    pub fn malformed(what: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        ModelError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
