//! A cheap guess at whether bytes would shrink under compression, so that a
//! producer does not pay for a full deflate to learn that an already
//! compressed or encrypted body does not shrink.
//!
//! Deflate (and LZ4, and Zstandard) gain in two ways: repeats are replaced by
//! back-references, and what is left is entropy-coded, so that frequent bytes
//! take fewer bits. The guess measures each: the byte histogram's Shannon
//! entropy bounds what entropy coding can gain, and one pass of LZ4's block
//! compressor (fast, and fastest on data it cannot shrink) finds the repeats.
//! On 4 KiB of noise both together cost a small fraction of deflating it.

/// Bytes that are not expected to shrink to at most this share of their size
/// (in percent) are not worth compressing.
pub const WORTH_PERCENT: u32 = 95;

/// Whether `sample` is expected to shrink to at most [`WORTH_PERCENT`] of its
/// size under compression.
///
/// The estimate is the entropy bound (bits a byte over 8) times what LZ4
/// leaves of the sample; LZ4 runs only when the entropy alone does not
/// settle it. A short sample's histogram reads low (256 random bytes measure
/// ~7.3 bits, 1 KiB ~7.8, 4 KiB ~7.95), so short samples tend to be taken as
/// compressible and the real compression decides; under 256 bytes they
/// always are.
///
/// It can miss a gain that a deflate would find: repeats further apart than
/// the sample reaches, matches of three bytes (LZ4 needs four), and short
/// repeats amid noise, which LZ4 strides over once it has met no match for a
/// while. On bytes whose histogram is flat these gain little: of 100,000
/// generated mixes of noise, copies, runs and text, the turned-down ones
/// shrank under the producer's zlib to 83 % at the least.
pub fn looks_compressible(sample: &[u8]) -> bool {
    const MIN_SAMPLE: usize = 256;
    if sample.len() < MIN_SAMPLE {
        return true;
    }
    let worth = f64::from(WORTH_PERCENT) / 100.0;
    let entropy_share = entropy_bits_per_byte(sample) / 8.0;
    if entropy_share <= worth {
        return true;
    }
    let lz4_share = lz4_flex::block::compress(sample).len() as f64 / sample.len() as f64;
    entropy_share * lz4_share <= worth
}

/// The Shannon entropy of `bytes`' histogram, in bits a byte (0 to 8).
fn entropy_bits_per_byte(bytes: &[u8]) -> f64 {
    // Four tables, added up at the end, so that runs of one byte do not make
    // each increment wait for the one before.
    let mut tables = [[0u32; 256]; 4];
    let mut quads = bytes.chunks_exact(4);
    for quad in &mut quads {
        let [a, b, c, d] = [quad[0], quad[1], quad[2], quad[3]].map(usize::from);
        tables[0][a] += 1;
        tables[1][b] += 1;
        tables[2][c] += 1;
        tables[3][d] += 1;
    }
    for &byte in quads.remainder() {
        tables[0][usize::from(byte)] += 1;
    }
    let counts = (0..256).map(|i| tables.iter().map(|table| table[i]).sum::<u32>());
    let total = bytes.len() as f64;
    counts
        .filter(|&count| count > 0)
        .map(|count| {
            let p = f64::from(count) / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::message::compression::{CompressionType, DEFAULT_LEVEL, compress};

    /// Pseudo-random bytes (xorshift) from `seed`.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    fn zlib_share(data: &[u8]) -> f64 {
        let compressed = compress(data, CompressionType::Zlib, DEFAULT_LEVEL).unwrap();
        compressed.len() as f64 / data.len() as f64
    }

    #[test]
    fn noise_is_not_worth_compressing() {
        for len in [1024, 4096, 64 * 1024] {
            assert!(!looks_compressible(&noise(len, 7)), "{len} bytes of noise");
        }
    }

    #[test]
    fn text_and_skewed_bytes_are_worth_compressing() {
        let text = b"order 42 shipped to warehouse 7; ".repeat(130);
        assert!(looks_compressible(&text));
        // Random hex and base64 do not repeat, but use 16 and 64 of 256 byte
        // values: entropy coding halves and quarters them.
        let hex: Vec<u8> = noise(4096, 3)
            .iter()
            .map(|b| b"0123456789abcdef"[usize::from(b & 15)])
            .collect();
        assert!(looks_compressible(&hex));
        let base64: Vec<u8> = noise(4096, 5)
            .iter()
            .map(|b| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [usize::from(b & 63)]
            })
            .collect();
        assert!(looks_compressible(&base64));
    }

    #[test]
    fn noise_that_repeats_is_worth_compressing() {
        // A flat histogram, but every byte after the first KiB repeats it.
        let repeated = noise(1024, 11).repeat(4);
        assert!(looks_compressible(&repeated));
        assert!(zlib_share(&repeated) < 0.5);
    }

    #[test]
    fn short_samples_are_left_to_the_compressor() {
        assert!(looks_compressible(&[]));
        assert!(looks_compressible(&noise(255, 13)));
    }

    /// Bytes built from pieces of the kinds a body is made of: noise (most
    /// often, so that the guess is tried near its boundary), a copy of earlier
    /// bytes, runs of one byte, text from a small alphabet.
    fn mixed_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = (0u8..10, 16usize..1024, any::<u64>());
        proptest::collection::vec(piece, 1..12).prop_map(|pieces| {
            let mut bytes = Vec::new();
            for (kind, len, seed) in pieces {
                match kind {
                    7 if !bytes.is_empty() => {
                        let from = usize::try_from(seed % bytes.len() as u64).unwrap_or(0);
                        let copy: Vec<u8> =
                            bytes[from..].iter().copied().cycle().take(len).collect();
                        bytes.extend(copy);
                    }
                    8 => bytes.extend(std::iter::repeat_n(seed.to_le_bytes()[0], len / 8)),
                    9 => bytes.extend(noise(len / 4, seed).iter().map(|b| b'a' + b % 20)),
                    _ => bytes.extend(noise(len, seed)),
                }
            }
            bytes
        })
    }

    proptest! {
        /// Whatever it is made of, bytes the guess turns down do not shrink
        /// by more than a fifth under the producer's zlib.
        #[test]
        fn turned_down_bytes_do_not_shrink_much(bytes in mixed_bytes()) {
            if !looks_compressible(&bytes) {
                let share = zlib_share(&bytes);
                prop_assert!(share >= 0.8, "turned down, but zlib leaves {share:.3}");
            }
        }
    }
}
