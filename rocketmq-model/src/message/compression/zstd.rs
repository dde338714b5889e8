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

/// The content of the Zstandard frames in `data`, at most `limit` bytes in
/// all. Java's producer writes one frame; like zstd-jni (and the `zstd`
/// tool), frames that follow it are decoded too, and bytes after a frame
/// that are not one are an error rather than silently dropped.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    let window = u64::try_from(limit)
        .unwrap_or(u64::MAX)
        .clamp(1 << 20, MAX_WINDOW);
    let mut body = Vec::new();
    let mut rest = data;
    loop {
        let mut decoder = StreamingDecoder::new_with_max_window_size(rest, window)
            .map_err(|e| invalid(e.to_string()))?;
        let frame = read_limited(&mut decoder, limit - body.len())?;
        let (unread, decoder) = decoder.into_parts();
        // A frame may end with a checksum of its content (zstd-jni writes one
        // when asked); check it, as libzstd does.
        if let (Some(stored), Some(computed)) = (
            decoder.get_checksum_from_data(),
            decoder.get_calculated_checksum(),
        ) {
            if stored != computed {
                return Err(invalid("zstd content checksum mismatch".into()));
            }
        }
        if body.is_empty() {
            body = frame;
        } else {
            body.extend_from_slice(&frame);
        }
        if unread.is_empty() {
            return Ok(body);
        }
        rest = unread;
    }
}

fn invalid(reason: String) -> ModelError {
    ModelError::Decompress(io::Error::new(io::ErrorKind::InvalidData, reason))
}
