//! Body compression (PROTOCOL.md §5.4): ZLIB (the Java producer's default),
//! LZ4 frames and Zstandard frames, all three read and written.

use std::cell::RefCell;
use std::io::{self, Read};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::sysflag::COMPRESSION_TYPE_MASK;
use crate::error::{ModelError, Result};

mod estimate;
mod lz4;
mod zstd;

pub use estimate::{WORTH_PERCENT, looks_compressible};

/// The compression level the Java producer uses.
pub const DEFAULT_LEVEL: u32 = 5;

/// A body compression type (sysflag bits 8–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// LZ4 frame format (1).
    Lz4,
    /// Zstandard frame (2).
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
/// uses [`DEFAULT_LEVEL`]; LZ4 ignores it, as Java does, and ZSTD always uses
/// its fastest level).
///
/// Each thread keeps one compressor per level and resets it between bodies:
/// building a zlib compressor allocates and clears its whole state, which
/// cost several times the compression of a 4 KiB body.
pub fn compress(data: &[u8], kind: CompressionType, level: u32) -> Result<Bytes> {
    match kind {
        CompressionType::Zlib => zlib_compress(data, level),
        CompressionType::Lz4 => lz4::compress(data).map(Bytes::from),
        CompressionType::Zstd => Ok(Bytes::from(zstd::compress(data))),
    }
}

fn zlib_compress(data: &[u8], level: u32) -> Result<Bytes> {
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
    let body = match kind {
        CompressionType::Zlib => inflate(data, limit)?,
        CompressionType::Lz4 => lz4::decompress(data, limit)?,
        CompressionType::Zstd => zstd::decompress(data, limit)?,
    };
    Ok(Bytes::from(body))
}

/// Reads a decoder to its end, failing once it yields more than `limit`
/// bytes. The buffer grows with what is actually produced, never with what a
/// header claims.
fn read_limited(decoder: impl Read, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut out)
        .map_err(ModelError::Decompress)?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
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

    /// `printf 'hello rocketmq hello rocketmq hello rocketmq'` through the C
    /// tools: `lz4 -B7 -BI --no-frame-crc` (independent blocks and no content
    /// checksum, as lz4-java's LZ4FrameOutputStream writes), `lz4` with its
    /// defaults (content checksum), and `zstd`.
    const HELLO: &[u8] = b"hello rocketmq hello rocketmq hello rocketmq";
    const HELLO_LZ4_JAVA_LIKE: &str =
        "04224d186040821a000000ff0068656c6c6f20726f636b65746d71200f0005506b65746d7100000000";
    const HELLO_LZ4_CHECKSUMMED: &str = "04224d186440a71a000000ff0068656c6c6f20726f636b65746d71200f0005506b65746d7100000000a07213fa";
    const HELLO_ZSTD: &str = "28b52ffd242cad00007868656c6c6f20726f636b65746d7120010072cf3a19bd1207";

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn reads_frames_written_by_the_reference_tools() {
        for (kind, frame) in [
            (CompressionType::Lz4, HELLO_LZ4_JAVA_LIKE),
            (CompressionType::Lz4, HELLO_LZ4_CHECKSUMMED),
            (CompressionType::Zstd, HELLO_ZSTD),
        ] {
            assert_eq!(
                decompress(&hex(frame), kind, 1 << 20).unwrap(),
                HELLO,
                "{kind:?}"
            );
            let err = decompress(&hex(frame), kind, HELLO.len() - 1).unwrap_err();
            assert!(
                matches!(err, ModelError::TooLarge { .. }),
                "{kind:?}: {err}"
            );
        }
    }

    #[test]
    fn lz4_and_zstd_refuse_corrupt_and_truncated_frames() {
        for (kind, frame) in [
            (CompressionType::Lz4, HELLO_LZ4_CHECKSUMMED),
            (CompressionType::Zstd, HELLO_ZSTD),
        ] {
            let frame = hex(frame);
            let truncated = decompress(&frame[..frame.len() - 10], kind, 1 << 20);
            assert!(truncated.is_err(), "{kind:?} truncated: {truncated:?}");
            let mut flipped = frame.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 0xff;
            let corrupt = decompress(&flipped, kind, 1 << 20);
            assert!(corrupt.is_err(), "{kind:?} corrupt: {corrupt:?}");
            assert!(decompress(b"not a frame at all", kind, 1 << 20).is_err());
        }
    }

    #[test]
    fn zstd_frames_back_to_back_are_all_decoded_and_garbage_after_is_refused() {
        let first = compress(b"first half ", CompressionType::Zstd, 5).unwrap();
        let second = compress(b"second half", CompressionType::Zstd, 5).unwrap();
        let both = [&first[..], &second[..]].concat();
        assert_eq!(
            decompress(&both, CompressionType::Zstd, 1 << 20)
                .unwrap()
                .as_ref(),
            b"first half second half".as_slice()
        );
        // The limit holds for all frames together.
        assert!(decompress(&both, CompressionType::Zstd, 15).is_err());
        let trailing = [&first[..], b"garbage"].concat();
        assert!(decompress(&trailing, CompressionType::Zstd, 1 << 20).is_err());
        // Java's frame (with its checksum) still decodes alone.
        let java = hex(HELLO_ZSTD);
        assert!(decompress(&java, CompressionType::Zstd, 1 << 20).is_ok());
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused_before_allocating() {
        // Frame header: magic, descriptor 0x00 (no content size, window
        // descriptor follows), window descriptor 0xF8 (exponent 31: 2 GiB).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xf8, 0x01, 0x00, 0x00];
        let err = decompress(&frame, CompressionType::Zstd, 4 << 20).unwrap_err();
        assert!(matches!(err, ModelError::Decompress(_)), "{err}");
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
        fn every_type_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            repeat in 1usize..8,
        ) {
            let data = data.repeat(repeat);
            for kind in [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd] {
                let packed = compress(&data, kind, DEFAULT_LEVEL).unwrap();
                let unpacked = decompress(&packed, kind, data.len()).unwrap();
                prop_assert_eq!(&unpacked[..], &data[..]);
            }
        }

        #[test]
        fn decompressing_garbage_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            for kind in [CompressionType::Zlib, CompressionType::Lz4, CompressionType::Zstd] {
                let _ = decompress(&data, kind, 1 << 16);
            }
        }

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
