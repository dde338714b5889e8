//! The body as it goes on the wire: compressed or not, with the producer's
//! compression type (ZLIB by default, or LZ4 or ZSTD).
//!
//! Java compresses every body of at least `compressMsgBodyOverHowmuch` bytes
//! with zlib and sends the result whatever its size. This producer sends the
//! compressed form only when it is smaller: a consumer reads either (the sysflag
//! says which), and a body that does not shrink (an image, an encrypted or
//! already compressed payload) costs neither the broker's disk nor the
//! consumers' inflating. For large bodies a sample is compressed first, so an
//! incompressible megabyte does not cost a full deflate to find that out.

use bytes::Bytes;
use rocketmq_model::message::compression;
use rocketmq_model::message::sysflag;

use super::builder::ProducerOptions;
use crate::error::Result;

/// Bodies above this size are sampled before being compressed whole.
const SAMPLE_ABOVE: usize = 32 * 1024;
/// How much of a large body the sample compresses.
const SAMPLE_LEN: usize = 4 * 1024;
/// The sample must shrink to at most this share (in percent) of its size for
/// the whole body to be compressed.
const SAMPLE_WORTH_PERCENT: usize = 95;

/// The body as sent and its compression bits: zlib at the configured level
/// for bodies of at least `compress_msg_body_over_howmuch` bytes that get
/// smaller by it, the body as it is otherwise.
pub(super) fn wire_body(body: &Bytes, options: &ProducerOptions) -> Result<(Bytes, i32)> {
    let as_is = || Ok((body.clone(), 0));
    if body.len() < options.compress_msg_body_over_howmuch {
        return as_is();
    }
    let (kind, level) = (options.compress_type, options.compress_level);
    if body.len() > SAMPLE_ABOVE {
        let sample = compression::compress(&body[..SAMPLE_LEN], kind, level)?;
        if sample.len() * 100 > SAMPLE_LEN * SAMPLE_WORTH_PERCENT {
            return as_is();
        }
    }
    let compressed = compression::compress(body, kind, level)?;
    if compressed.len() >= body.len() {
        return as_is();
    }
    Ok((compressed, sysflag::with_compression(0, kind)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rocketmq_model::message::compression::CompressionType;

    use super::*;

    fn options(threshold: usize) -> ProducerOptions {
        ProducerOptions {
            compress_msg_body_over_howmuch: threshold,
            ..ProducerOptions::default()
        }
    }

    /// Pseudo-random bytes (xorshift): zlib cannot shrink them.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    fn send(body: Vec<u8>, threshold: usize) -> (Bytes, Option<CompressionType>, Bytes) {
        let body = Bytes::from(body);
        let (wire, flag) = wire_body(&body, &options(threshold)).unwrap();
        (wire, sysflag::compression_type(flag).unwrap(), body)
    }

    proptest! {
        #[test]
        fn compressed_only_over_the_threshold_and_when_smaller_and_always_restorable(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            repeat in 1usize..4,
            threshold in 1usize..4096,
        ) {
            let body = body.repeat(repeat);
            let (wire, compressed, body) = send(body, threshold);
            if body.len() < threshold {
                prop_assert!(compressed.is_none());
            }
            let restored = match compressed {
                Some(kind) => {
                    prop_assert!(wire.len() < body.len());
                    compression::decompress(&wire, kind, 1 << 20).unwrap()
                }
                None => wire,
            };
            prop_assert_eq!(restored, body);
        }
    }

    #[test]
    fn text_is_compressed_and_noise_is_sent_as_it_is() {
        let text = b"order 42 shipped to warehouse 7; ".repeat(300);
        let (wire, compressed, _) = send(text.clone(), 4096);
        assert_eq!(compressed, Some(CompressionType::Zlib));
        assert!(wire.len() < text.len() / 4);

        for len in [8 * 1024, 1 << 20] {
            let (wire, compressed, body) = send(noise(len), 4096);
            assert_eq!(compressed, None, "{len} bytes of noise");
            assert_eq!(wire, body);
        }
    }

    #[test]
    fn the_configured_type_is_used_and_flagged() {
        let text = b"order 42 shipped to warehouse 7; ".repeat(300);
        for kind in [
            CompressionType::Zlib,
            CompressionType::Lz4,
            CompressionType::Zstd,
        ] {
            let options = ProducerOptions {
                compress_type: kind,
                ..options(4096)
            };
            let body = Bytes::from(text.clone());
            let (wire, flag) = wire_body(&body, &options).unwrap();
            assert_eq!(sysflag::compression_type(flag).unwrap(), Some(kind));
            let restored = compression::decompress(&wire, kind, body.len()).unwrap();
            assert_eq!(restored, body, "{kind:?}");
        }
    }

    #[test]
    fn a_large_body_that_compresses_is_compressed_whole() {
        let body = b"the same line again and again\n".repeat(10_000);
        let (wire, compressed, body) = send(body, 4096);
        assert_eq!(compressed, Some(CompressionType::Zlib));
        let restored =
            compression::decompress(&wire, CompressionType::Zlib, body.len() + 1).unwrap();
        assert_eq!(restored, body);
    }
}
