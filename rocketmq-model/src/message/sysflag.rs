//! Message sysflag bits (PROTOCOL.md §5.2, Java's `MessageSysFlag`) and pull
//! sysflag bits (§8.6, Java's `PullSysFlag`).
//!
//! Sysflags are plain `i32`s on the wire and in [`MessageExt`](super::MessageExt);
//! these constants and helpers read and build them.

use super::compression::CompressionType;
use crate::error::Result;

/// The body is compressed (its type is in [`COMPRESSION_TYPE_MASK`]).
pub const COMPRESSED_FLAG: i32 = 0x1;
/// Unused by clients.
pub const MULTI_TAGS_FLAG: i32 = 0x2;
/// The bits holding the [`TransactionType`].
pub const TRANSACTION_TYPE_MASK: i32 = 0xC;
/// The born host is IPv6 (16-byte address in the record).
pub const BORNHOST_V6_FLAG: i32 = 0x10;
/// The store host is IPv6 (16-byte address in the record).
pub const STOREHOSTADDRESS_V6_FLAG: i32 = 0x20;
/// With [`INNER_BATCH_FLAG`]: the body is a batch to unwrap (§5.5).
pub const NEED_UNWRAP_FLAG: i32 = 0x40;
/// The record is a broker-side inner batch (§5.5).
pub const INNER_BATCH_FLAG: i32 = 0x80;
/// The bits holding the compression type (see [`CompressionType`]).
pub const COMPRESSION_TYPE_MASK: i32 = 0x700;

/// The transaction type in sysflag bits 2–3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TransactionType {
    /// Not a transactional message (0).
    #[default]
    NotTransaction,
    /// A half (prepared) message (0x4).
    Prepared,
    /// A committed transaction (0x8).
    Commit,
    /// A rolled-back transaction (0xC).
    Rollback,
}

impl TransactionType {
    /// The sysflag bits of this type.
    pub const fn bits(self) -> i32 {
        match self {
            TransactionType::NotTransaction => 0,
            TransactionType::Prepared => 0x4,
            TransactionType::Commit => 0x8,
            TransactionType::Rollback => 0xC,
        }
    }

    /// The type encoded in `sys_flag`.
    pub const fn from_sys_flag(sys_flag: i32) -> Self {
        match sys_flag & TRANSACTION_TYPE_MASK {
            0x4 => TransactionType::Prepared,
            0x8 => TransactionType::Commit,
            0xC => TransactionType::Rollback,
            _ => TransactionType::NotTransaction,
        }
    }
}

/// Whether every bit of `bits` is set in `sys_flag`.
pub const fn has(sys_flag: i32, bits: i32) -> bool {
    sys_flag & bits == bits
}

/// The transaction type of `sys_flag`.
pub const fn transaction_type(sys_flag: i32) -> TransactionType {
    TransactionType::from_sys_flag(sys_flag)
}

/// `sys_flag` with its transaction type replaced by `kind`.
pub const fn with_transaction_type(sys_flag: i32, kind: TransactionType) -> i32 {
    (sys_flag & !TRANSACTION_TYPE_MASK) | kind.bits()
}

/// The compression type of a compressed body, or `None` when bit 0 is clear.
///
/// A type field of 0 means ZLIB (pre-5.x senders); 4..=7 are unknown and give
/// [`ModelError::UnsupportedCompression`](crate::ModelError::UnsupportedCompression).
pub fn compression_type(sys_flag: i32) -> Result<Option<CompressionType>> {
    if has(sys_flag, COMPRESSED_FLAG) {
        CompressionType::from_sys_flag(sys_flag).map(Some)
    } else {
        Ok(None)
    }
}

/// `sys_flag` marked as compressed with `kind` (bit 0 plus the type bits), as
/// the Java 5.x producer sets it.
pub const fn with_compression(sys_flag: i32, kind: CompressionType) -> i32 {
    (sys_flag & !COMPRESSION_TYPE_MASK) | COMPRESSED_FLAG | kind.sys_flag_bits()
}

/// Whether a pulled record is an inner batch to expand (both
/// [`INNER_BATCH_FLAG`] and [`NEED_UNWRAP_FLAG`]).
pub const fn needs_unwrap(sys_flag: i32) -> bool {
    has(sys_flag, INNER_BATCH_FLAG | NEED_UNWRAP_FLAG)
}

/// Pull request sysflag bits (§8.6, Java's `PullSysFlag`).
pub mod pull {
    /// Commit the consumer's offset with this pull.
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// Long-poll: the broker may hold the request.
    pub const SUSPEND: i32 = 0x2;
    /// The request carries a subscription expression.
    pub const SUBSCRIPTION: i32 = 0x4;
    /// Class filter mode (legacy).
    pub const CLASS_FILTER: i32 = 0x8;
    /// A lite-pull consumer's request (sent as LITE_PULL_MESSAGE).
    pub const LITE_PULL: i32 = 0x10;

    /// Builds a pull sysflag from its parts, as `PullSysFlag.buildSysFlag` does.
    pub const fn build(
        commit_offset: bool,
        suspend: bool,
        subscription: bool,
        class_filter: bool,
    ) -> i32 {
        let mut flag = 0;
        if commit_offset {
            flag |= COMMIT_OFFSET;
        }
        if suspend {
            flag |= SUSPEND;
        }
        if subscription {
            flag |= SUBSCRIPTION;
        }
        if class_filter {
            flag |= CLASS_FILTER;
        }
        flag
    }

    /// `flag` without [`COMMIT_OFFSET`] (used when pulling from a slave).
    pub const fn clear_commit_offset(flag: i32) -> i32 {
        flag & !COMMIT_OFFSET
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ModelError;

    #[test]
    fn transaction_types() {
        for kind in [
            TransactionType::NotTransaction,
            TransactionType::Prepared,
            TransactionType::Commit,
            TransactionType::Rollback,
        ] {
            let flag =
                with_transaction_type(COMPRESSED_FLAG | TransactionType::Rollback.bits(), kind);
            assert_eq!(transaction_type(flag), kind);
            assert!(has(flag, COMPRESSED_FLAG));
        }
    }

    #[test]
    fn compression_bits() {
        assert_eq!(compression_type(0x300).unwrap(), None);
        assert_eq!(compression_type(0x1).unwrap(), Some(CompressionType::Zlib));
        assert_eq!(
            compression_type(0x301).unwrap(),
            Some(CompressionType::Zlib)
        );
        assert_eq!(compression_type(0x101).unwrap(), Some(CompressionType::Lz4));
        assert_eq!(
            compression_type(0x201).unwrap(),
            Some(CompressionType::Zstd)
        );
        assert!(matches!(
            compression_type(0x401),
            Err(ModelError::UnsupportedCompression(4))
        ));
        assert_eq!(with_compression(0x10, CompressionType::Zlib), 0x311);
        assert_eq!(with_compression(0x101, CompressionType::Zstd), 0x201);
    }

    #[test]
    fn unwrap_needs_both_bits() {
        assert!(needs_unwrap(0xC0));
        assert!(!needs_unwrap(0x80));
        assert!(!needs_unwrap(0x40));
    }

    #[test]
    fn pull_flags() {
        assert_eq!(pull::build(true, true, false, false), 0x3);
        assert_eq!(pull::build(false, true, true, true), 0xE);
        assert_eq!(pull::clear_commit_offset(0x7), 0x6);
    }
}
