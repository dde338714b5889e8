//! The body as it goes on the wire: compressed or not, with the producer's
//! compression type (ZLIB by default, or LZ4 or ZSTD).
//!
//! Java compresses every body of at least `compressMsgBodyOverHowmuch` bytes
//! with zlib and sends the result whatever its size. This producer sends the
//! compressed form only when it is smaller: a consumer reads either (the sysflag
//! says which), and a body that does not shrink (an image, an encrypted or
//! already compressed payload) costs neither the broker's disk nor the
//! consumers' inflating. Before compressing, it looks at a sample of the body
//! ([`compression::looks_compressible`]: its byte histogram and an LZ4 pass),
//! so that such a body does not cost a full deflate to find that out: for a
//! 4 KiB body of noise that deflate was about three quarters of a sync
//! send's CPU.

use std::borrow::Cow;

use bytes::Bytes;
use rocketmq_model::message::compression;
use rocketmq_model::message::sysflag;

use super::builder::ProducerOptions;
use crate::error::Result;

/// How much of a body the guess looks at.
const SAMPLE_LEN: usize = 4 * 1024;
/// A longer body is sampled in this many slices spread over it, so that it is
/// judged on more than its beginning.
const SAMPLE_SLICES: usize = 4;

/// The body as sent and its compression bits: compressed with the configured
/// type and level when it is at least `compress_msg_body_over_howmuch` bytes,
/// looks compressible, and gets smaller; the body as it is otherwise.
pub(super) fn wire_body(body: &Bytes, options: &ProducerOptions) -> Result<(Bytes, i32)> {
    let as_is = || Ok((body.clone(), 0));
    if body.len() < options.compress_msg_body_over_howmuch
        || !compression::looks_compressible(&sample(body))
    {
        return as_is();
    }
    let kind = options.compress_type;
    let compressed = compression::compress(body, kind, options.compress_level)?;
    if compressed.len() >= body.len() {
        return as_is();
    }
    Ok((compressed, sysflag::with_compression(0, kind)))
}

/// The body itself up to [`SAMPLE_LEN`]; beyond, [`SAMPLE_SLICES`] slices
/// of equal length, the first at the start and the last at the end.
fn sample(body: &[u8]) -> Cow<'_, [u8]> {
    if body.len() <= SAMPLE_LEN {
        return Cow::Borrowed(body);
    }
    let slice = SAMPLE_LEN / SAMPLE_SLICES;
    let step = (body.len() - slice) / (SAMPLE_SLICES - 1);
    let mut sample = Vec::with_capacity(SAMPLE_LEN);
    for at in (0..SAMPLE_SLICES).map(|i| i * step) {
        sample.extend_from_slice(&body[at..at + slice]);
    }
    Cow::Owned(sample)
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

    #[test]
    fn a_long_body_is_judged_on_slices_spread_over_it() {
        // Noise as long as the whole sample, then text: the text is seen.
        let mut body = noise(SAMPLE_LEN);
        body.extend(b"order 42 shipped to warehouse 7; ".repeat(400));
        let (wire, compressed, body) = send(body, 4096);
        assert_eq!(compressed, Some(CompressionType::Zlib));
        assert!(wire.len() < body.len() * 3 / 4);
    }

    #[test]
    fn the_sample_is_equal_slices_from_the_start_to_the_end() {
        let short = noise(SAMPLE_LEN);
        assert!(matches!(sample(&short), Cow::Borrowed(s) if s == short.as_slice()));

        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let sample = sample(&body);
        let slice = SAMPLE_LEN / SAMPLE_SLICES;
        let step = (body.len() - slice) / (SAMPLE_SLICES - 1);
        assert_eq!(sample.len(), SAMPLE_LEN);
        for (i, piece) in sample.chunks(slice).enumerate() {
            assert_eq!(piece, &body[i * step..i * step + slice], "slice {i}");
        }
        assert_eq!(&sample[SAMPLE_LEN - slice..], &body[body.len() - slice..]);
    }
}
