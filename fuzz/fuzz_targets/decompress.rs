//! Feeds arbitrary bytes to every body decompressor (ZLIB, LZ4 frames,
//! Zstandard frames): bodies come from brokers and other producers, so a
//! decompressor must never panic and never produce more than its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocketmq_model::message::compression::{CompressionType, decompress};

/// Small, so that the limit is reached often.
const LIMIT: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    for kind in [
        CompressionType::Zlib,
        CompressionType::Lz4,
        CompressionType::Zstd,
    ] {
        if let Ok(body) = decompress(data, kind, LIMIT) {
            assert!(body.len() <= LIMIT);
        }
    }
});
