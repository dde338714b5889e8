//! ZSTD bodies: a standard Zstandard frame, as Java's `ZstdCompressor`
//! writes it with zstd-jni (PROTOCOL.md §5.4).

use std::io;

use ruzstd::decoding::StreamingDecoder;
use ruzstd::encoding::{CompressionLevel, compress_to_vec};

use super::read_limited;
use crate::error::{ModelError, Result};

/// The largest window a frame may ask for: Java's frames carry their content
/// size, so the window never needs to exceed the body; a frame asking for
/// more than this (or than the body limit) is refused before any allocation.
const MAX_WINDOW: u64 = 128 * 1024 * 1024;

/// One Zstandard frame of `data`. Only the fastest level (≈ zstd level 1) is
/// implemented by the pure-Rust encoder, whatever level is asked for.
pub(super) fn compress(data: &[u8]) -> Vec<u8> {
    compress_to_vec(data, CompressionLevel::Fastest)
}

/// The content of the Zstandard frame in `data`, at most `limit` bytes.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let window = u64::try_from(limit)
        .unwrap_or(u64::MAX)
        .clamp(1 << 20, MAX_WINDOW);
    let mut decoder = StreamingDecoder::new_with_max_window_size(data, window)
        .map_err(|e| ModelError::Decompress(io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let body = read_limited(&mut decoder, limit)?;
    // A frame may end with a checksum of its content (zstd-jni writes one
    // when asked); check it, as libzstd does.
    let frame = decoder.into_frame_decoder();
    match (
        frame.get_checksum_from_data(),
        frame.get_calculated_checksum(),
    ) {
        (Some(stored), Some(computed)) if stored != computed => Err(ModelError::Decompress(
            io::Error::new(io::ErrorKind::InvalidData, "zstd content checksum mismatch"),
        )),
        _ => Ok(body),
    }
}
