//! LZ4 bodies: the LZ4 *frame* format, as Java's `Lz4Compressor` writes it
//! with lz4-java's `LZ4FrameOutputStream` (PROTOCOL.md §5.4).

use std::io::Write;

use lz4_flex::frame::{FrameDecoder, FrameEncoder};

use super::read_limited;
use crate::error::{ModelError, Result};

/// One LZ4 frame of `data` (Java ignores the level for LZ4, and so do we).
pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = FrameEncoder::new(Vec::with_capacity(data.len() / 2 + 64));
    encoder
        .write_all(data)
        .map_err(|e| ModelError::malformed("lz4 compression", e.to_string()))?;
    encoder
        .finish()
        .map_err(|e| ModelError::malformed("lz4 compression", e.to_string()))
}

/// The content of the LZ4 frame(s) in `data`, at most `limit` bytes.
pub(super) fn decompress(data: &[u8], limit: usize) -> Result<Vec<u8>> {
    read_limited(FrameDecoder::new(data), limit)
}
