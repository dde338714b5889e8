//! Finding the bytes a JSON string cannot hold as they are (quote, backslash,
//! control characters), eight bytes at a time. Header text rarely has any, so
//! the writer and the scanner both spend their time skipping plain runs.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether `byte` must be escaped in a JSON string.
pub(super) fn is_special(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The index of the first quote, backslash or control character in `bytes`.
/// Header strings are short and the text after one goes on: the first word
/// usually answers, so the loop has no setup to pay for.
pub(super) fn find(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    while let Some(word) = bytes.get(offset..offset + 8) {
        let word: [u8; 8] = word.try_into().ok()?;
        let hits = special_bytes(u64::from_le_bytes(word));
        if hits != 0 {
            // Little-endian: the lowest flagged byte comes first in the text.
            return Some(offset + (hits.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    let rest = &bytes[offset..];
    rest.iter().position(|&b| is_special(b)).map(|i| offset + i)
}

/// The high bit of each byte of `word` that is special. A byte above a special
/// one may be flagged too (the subtractions borrow upwards), but the lowest
/// flag is always a special byte: only a special byte starts a borrow.
fn special_bytes(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | quote | backslash) & HIGHS
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn finds_each_kind_at_each_position() {
        for special in [b'"', b'\\', 0x00, 0x01, 0x1F] {
            for at in 0..20 {
                let mut text = vec![b'a'; 20];
                text[at] = special;
                assert_eq!(find(&text), Some(at), "{special:#x} at {at}");
            }
        }
        assert_eq!(find(b""), None);
        assert_eq!(find("plain text, ü€ and \u{7f}/ too".as_bytes()), None);
    }

    proptest! {
        /// The same answer as looking at every byte, whatever the bytes;
        /// mostly plain bytes, so that specials land anywhere in long runs.
        #[test]
        fn agrees_with_a_byte_by_byte_search(
            text in prop::collection::vec(
                prop_oneof![8 => 0x20u8..=0xFF, 1 => Just(b'"'), 1 => Just(b'\\'), 1 => 0u8..0x20],
                0..80,
            )
        ) {
            prop_assert_eq!(find(&text), text.iter().position(|&b| is_special(b)));
        }
    }
}
