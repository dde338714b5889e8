//! Body compression (PROTOCOL.md §5.4). Only ZLIB is implemented; LZ4 and ZSTD
//! are recognised and refused with [`ModelError::UnsupportedCompression`].

use std::cell::RefCell;
use std::io;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::sysflag::COMPRESSION_TYPE_MASK;
use crate::error::{ModelError, Result};

/// The compression level the Java producer uses.
pub const DEFAULT_LEVEL: u32 = 5;

/// A body compression type (sysflag bits 8–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// LZ4 frame format (1). Not supported by this build.
    Lz4,
    /// Zstandard frame (2). Not supported by this build.
    Zstd,
    /// RFC 1950 zlib stream (3, or 0 from pre-5.x senders).
    Zlib,
}

impl CompressionType {
    /// The type's number (1 = LZ4, 2 = ZSTD, 3 = ZLIB).
    pub const fn value(self) -> u8 {
        match self {
            CompressionType::Lz4 => 1,
            CompressionType::Zstd => 2,
            CompressionType::Zlib => 3,
        }
    }

    /// The type's bits in a sysflag (`value << 8`).
    pub const fn sys_flag_bits(self) -> i32 {
        (self.value() as i32) << 8
    }

    /// The type in the sysflag's bits 8–10; 0 means ZLIB, 4..=7 are errors.
    pub fn from_sys_flag(sys_flag: i32) -> Result<Self> {
        // The mask keeps three bits, so the value fits in a u8.
        match ((sys_flag & COMPRESSION_TYPE_MASK) >> 8) as u8 {
            0 | 3 => Ok(CompressionType::Zlib),
            1 => Ok(CompressionType::Lz4),
            2 => Ok(CompressionType::Zstd),
            other => Err(ModelError::UnsupportedCompression(other)),
        }
    }
}

/// Compresses `data` with `kind` at `level` (0..=9 for ZLIB; the producer
/// uses [`DEFAULT_LEVEL`]).
///
/// Each thread keeps one compressor per level and resets it between bodies:
/// building a zlib compressor allocates and clears its whole state, which
/// cost several times the compression of a 4 KiB body.
pub fn compress(data: &[u8], kind: CompressionType, level: u32) -> Result<Bytes> {
    if kind != CompressionType::Zlib {
        return Err(ModelError::UnsupportedCompression(kind.value()));
    }
    let level = level.min(9);
    COMPRESSORS.with(|cell| {
        let mut compressors = cell.borrow_mut();
        let compressor = compressors[level as usize]
            .get_or_insert_with(|| Compress::new(Compression::new(level), true));
        deflate(compressor, data).map(Bytes::from)
    })
}

thread_local! {
    /// One zlib compressor per level (0..=9), made on first use.
    static COMPRESSORS: RefCell<[Option<Compress>; 10]> = RefCell::new(Default::default());
}

/// Compresses `data` into a zlib stream with `compressor`, reset first.
fn deflate(compressor: &mut Compress, data: &[u8]) -> Result<Vec<u8>> {
    compressor.reset();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        let status = compressor
            .compress_vec(input, &mut out, FlushCompress::Finish)
            .map_err(|e| ModelError::malformed("zlib compression", e.to_string()))?;
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
        }
    }
}

/// Decompresses `data` with `kind`, refusing to produce (or allocate) more
/// than `limit` bytes: a decompression bomb gives [`ModelError::TooLarge`].
/// A corrupt or truncated stream gives [`ModelError::Decompress`].
pub fn decompress(data: &[u8], kind: CompressionType, limit: usize) -> Result<Bytes> {
    match kind {
        CompressionType::Zlib => inflate(data, limit).map(Bytes::from),
        other => Err(ModelError::UnsupportedCompression(other.value())),
    }
}

fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    // One byte beyond the limit lets a stream that ends exactly at the limit
    // report its end, and tells an over-long one apart.
    let cap = limit.saturating_add(1);
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).saturating_add(64).min(cap));
    let mut inflater = Decompress::new(true);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= cap {
                return Err(too_large(limit));
            }
            let grown = out.capacity().saturating_mul(2).clamp(64, cap);
            out.reserve_exact(grown - out.len());
        }
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let input = data.get(consumed..).unwrap_or_default();
        let (in_before, out_before) = (inflater.total_in(), out.len());
        let status = inflater
            .decompress_vec(input, &mut out, FlushDecompress::None)
            .map_err(|e| ModelError::Decompress(io::Error::new(io::ErrorKind::InvalidData, e)))?;
        if out.len() > limit {
            return Err(too_large(limit));
        }
        match status {
            Status::StreamEnd => return Ok(out),
            Status::Ok | Status::BufError => {
                let progressed = inflater.total_in() != in_before || out.len() != out_before;
                if !progressed && out.len() < out.capacity() {
                    return Err(ModelError::Decompress(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "zlib stream ended before its end marker",
                    )));
                }
            }
        }
    }
}

fn too_large(limit: usize) -> ModelError {
    ModelError::TooLarge {
        what: "decompressed body",
        limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zlib_round_trip() {
        let data = b"hello hello hello hello hello".repeat(100);
        let packed = compress(&data, CompressionType::Zlib, DEFAULT_LEVEL).unwrap();
        assert!(packed.len() < data.len());
        // RFC 1950 header: CM = 8 (deflate).
        assert_eq!(packed[0] & 0x0F, 8);
        let unpacked = decompress(&packed, CompressionType::Zlib, data.len()).unwrap();
        assert_eq!(&unpacked[..], &data[..]);
        assert_eq!(
            decompress(
                &compress(b"", CompressionType::Zlib, 5).unwrap(),
                CompressionType::Zlib,
                0
            )
            .unwrap(),
            ""
        );
    }

    #[test]
    fn bomb_is_refused() {
        let data = vec![0u8; 10 * 1024 * 1024];
        let packed = compress(&data, CompressionType::Zlib, 9).unwrap();
        assert!(packed.len() < 64 * 1024);
        let err = decompress(&packed, CompressionType::Zlib, 1024 * 1024).unwrap_err();
        assert!(
            matches!(err, ModelError::TooLarge { limit: 1048576, .. }),
            "{err}"
        );
        // One byte short of the real size fails; the exact size succeeds.
        assert!(decompress(&packed, CompressionType::Zlib, data.len() - 1).is_err());
        assert_eq!(
            decompress(&packed, CompressionType::Zlib, data.len())
                .unwrap()
                .len(),
            data.len()
        );
    }

    #[test]
    fn truncated_and_corrupt_streams_fail() {
        let packed = compress(
            &b"some text to compress".repeat(20),
            CompressionType::Zlib,
            5,
        )
        .unwrap();
        let err =
            decompress(&packed[..packed.len() - 5], CompressionType::Zlib, 1 << 20).unwrap_err();
        assert!(matches!(err, ModelError::Decompress(_)), "{err}");
        let err = decompress(b"not zlib at all", CompressionType::Zlib, 1 << 20).unwrap_err();
        assert!(matches!(err, ModelError::Decompress(_)), "{err}");
        assert!(decompress(b"", CompressionType::Zlib, 1 << 20).is_err());
    }

    #[test]
    fn lz4_and_zstd_are_unsupported() {
        assert!(matches!(
            compress(b"x", CompressionType::Lz4, 5),
            Err(ModelError::UnsupportedCompression(1))
        ));
        assert!(matches!(
            decompress(b"x", CompressionType::Zstd, 9),
            Err(ModelError::UnsupportedCompression(2))
        ));
    }

    #[test]
    fn types_from_sys_flag() {
        assert_eq!(
            CompressionType::from_sys_flag(0x001).unwrap(),
            CompressionType::Zlib
        );
        assert_eq!(
            CompressionType::from_sys_flag(0x301).unwrap(),
            CompressionType::Zlib
        );
        assert_eq!(
            CompressionType::from_sys_flag(0x101).unwrap(),
            CompressionType::Lz4
        );
        assert_eq!(CompressionType::Zlib.sys_flag_bits(), 0x300);
        assert!(CompressionType::from_sys_flag(0x701).is_err());
    }

    proptest! {
        #[test]
        fn decompress_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decompress(&bytes, CompressionType::Zlib, 4096);
        }

        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..2048), level in 0u32..10) {
            let packed = compress(&data, CompressionType::Zlib, level).unwrap();
            prop_assert_eq!(&decompress(&packed, CompressionType::Zlib, data.len()).unwrap()[..], &data[..]);
        }
    }
}
