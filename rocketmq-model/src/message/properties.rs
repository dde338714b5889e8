//! The properties string (PROTOCOL.md §6.1): `name 0x01 value 0x02`, repeated.

use std::fmt;
use std::slice;

use bytes::BufMut;
use compact_str::CompactString;

use crate::error::{ModelError, Result};

/// Separates a property's name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends every property, including the last.
pub const PROPERTY_SEPARATOR: char = '\u{2}';

/// A message's properties: a map from name to value, kept sorted so that the
/// encoded string is deterministic.
///
/// Every name and value that goes in through [`insert`](Self::insert) is
/// checked: it must be non-empty and free of the two separator characters
/// (0x01, 0x02), so the encoded string can never be corrupted. Empty values are
/// refused too, because a receiver drops them while parsing (Java's rule). The
/// map's contents are therefore always encodable; only the encoded length
/// (at most [`MAX_ENCODED_LEN`](Self::MAX_ENCODED_LEN) in a record) is checked
/// later, by the encoders.
///
/// Names and values are compact strings: up to 24 bytes (every standard name,
/// timestamps, tags, most keys) they need no allocation, and the pairs live in
/// one vector sorted by name (a message has a dozen or so), so decoding,
/// copying and dropping a message's properties costs one allocation.
#[derive(Default, PartialEq, Eq, Hash)]
pub struct Properties(Vec<(CompactString, CompactString)>);

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Room left for the properties a client adds to a message it received or
/// is about to send (offsets, start time, UNIQ_KEY), so that adding them
/// does not move the pairs.
const SPARE: usize = 4;

/// The most pairs [`Properties::parse_bytes`] makes room for up front.
const MOST_RESERVED: usize = 64;

impl Clone for Properties {
    fn clone(&self) -> Self {
        if self.0.is_empty() {
            return Properties::new();
        }
        let mut pairs = Vec::with_capacity(self.0.len() + SPARE);
        pairs.extend(self.0.iter().cloned());
        Properties(pairs)
    }
}

impl Properties {
    /// The longest encoded properties string a record can carry (its length is
    /// an int16 on the wire).
    pub const MAX_ENCODED_LEN: usize = i16::MAX as usize;

    /// No properties.
    pub fn new() -> Self {
        Properties(Vec::new())
    }

    /// Parses a properties string with Java's rules: a segment (up to a 0x02 or
    /// the end) counts only if it has a non-empty name, a 0x01, and a non-empty
    /// value; anything else is ignored. A later duplicate name wins.
    pub fn parse(text: &str) -> Self {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses the properties bytes of a record. Invalid UTF-8 is replaced with
    /// U+FFFD, as Java's `new String(bytes, UTF_8)` does; parsing never fails.
    pub fn parse_bytes(bytes: &[u8]) -> Self {
        // Room for every segment, within reason: a string of empty segments
        // must not reserve 48 bytes for each of its bytes.
        let segments = bytes
            .iter()
            .filter(|&&b| b == PROPERTY_SEPARATOR as u8)
            .count();
        let mut pairs = Vec::with_capacity(segments.min(MOST_RESERVED) + 1 + SPARE);
        // Java's rule: a segment counts with a non-empty name, a 0x01, and a
        // non-empty value (which may hold further 0x01s).
        let counts = |name: &[u8], value: &[u8]| !name.is_empty() && !value.is_empty();
        match std::str::from_utf8(bytes) {
            // Checked once: the separators are ASCII, so every piece of a
            // valid string is valid too.
            Ok(text) => {
                for segment in text.split(PROPERTY_SEPARATOR) {
                    if let Some((name, value)) = segment.split_once(NAME_VALUE_SEPARATOR) {
                        if counts(name.as_bytes(), value.as_bytes()) {
                            pairs.push((CompactString::new(name), CompactString::new(value)));
                        }
                    }
                }
            }
            Err(_) => {
                for segment in bytes.split(|&b| b == PROPERTY_SEPARATOR as u8) {
                    let Some(sep) = segment
                        .iter()
                        .position(|&b| b == NAME_VALUE_SEPARATOR as u8)
                    else {
                        continue;
                    };
                    let (name, value) = (&segment[..sep], &segment[sep + 1..]);
                    if counts(name, value) {
                        pairs.push((lossy(name), lossy(value)));
                    }
                }
            }
        }
        // Sorted, not inserted one by one, so that a string of many thousand
        // properties costs n log n. The sort is stable: of equal names, the
        // later one in the text comes later, and wins.
        pairs.sort_by(|(a, _), (b, _)| a.cmp(b));
        pairs.dedup_by(|later, kept| {
            let duplicate = later.0 == kept.0;
            if duplicate {
                std::mem::swap(&mut later.1, &mut kept.1);
            }
            duplicate
        });
        Properties(pairs)
    }

    /// Where `name` is, or would be inserted.
    fn find(&self, name: &str) -> std::result::Result<usize, usize> {
        self.0.binary_search_by(|(key, _)| key.as_str().cmp(name))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        let at = self.find(name).ok()?;
        Some(self.0[at].1.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Sets `name` to `value`, returning the previous value.
    ///
    /// Fails with [`ModelError::InvalidProperty`] if either is empty or
    /// contains 0x01 or 0x02; the map is then unchanged.
    pub fn insert(
        &mut self,
        name: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Result<Option<String>> {
        let (name, value) = (name.into(), value.into());
        check_text(&name, &name, "name")?;
        check_text(&name, &value, "value")?;
        match self.find(&name) {
            Ok(at) => Ok(Some(
                std::mem::replace(&mut self.0[at].1, value).into_string(),
            )),
            Err(at) => {
                self.0.insert(at, (name, value));
                Ok(None)
            }
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let at = self.find(name).ok()?;
        Some(self.0.remove(at).1.into_string())
    }

    /// The number of properties.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no properties.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The properties as `(name, value)` pairs, sorted by name.
    pub fn iter(&self) -> Iter<'_> {
        Iter(self.0.iter())
    }

    /// The length in bytes of [`encode`](Self::encode)'s output.
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
    }

    /// Encodes the properties string (`name 0x01 value 0x02` per entry).
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(self.encoded_len());
        for (name, value) in self {
            out.push_str(name);
            out.push(NAME_VALUE_SEPARATOR);
            out.push_str(value);
            out.push(PROPERTY_SEPARATOR);
        }
        out
    }

    /// Writes the encoded properties string into `out`, without a length prefix.
    pub fn encode_into(&self, out: &mut impl BufMut) {
        for (name, value) in self {
            out.put_slice(name.as_bytes());
            out.put_u8(NAME_VALUE_SEPARATOR as u8);
            out.put_slice(value.as_bytes());
            out.put_u8(PROPERTY_SEPARATOR as u8);
        }
    }
}

impl<'a> IntoIterator for &'a Properties {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        Iter(self.0.iter())
    }
}

/// The properties as `(name, value)` pairs, sorted by name.
#[derive(Debug, Clone)]
pub struct Iter<'a>(slice::Iter<'a, (CompactString, CompactString)>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

fn check_text(name: &str, text: &str, part: &'static str) -> Result<()> {
    let reason = if text.is_empty() {
        if part == "name" {
            "the name is empty"
        } else {
            "the value is empty (a receiver would drop it)"
        }
    } else if has_separator(text) {
        if part == "name" {
            "the name contains a separator character (0x01 or 0x02)"
        } else {
            "the value contains a separator character (0x01 or 0x02)"
        }
    } else {
        return Ok(());
    };
    Err(ModelError::InvalidProperty {
        name: name.to_owned(),
        reason,
    })
}

/// Whether `text` holds 0x01 or 0x02. Both are ASCII, never part of a
/// multi-byte character, so the bytes can be tested all at once without
/// decoding characters (a per-character search costs a send ~2 %).
fn has_separator(text: &str) -> bool {
    let (name_value, property) = (NAME_VALUE_SEPARATOR as u8, PROPERTY_SEPARATOR as u8);
    text.as_bytes().iter().fold(false, |found, &b| {
        found | (b == name_value) | (b == property)
    })
}

fn lossy(bytes: &[u8]) -> CompactString {
    match std::str::from_utf8(bytes) {
        Ok(text) => CompactString::new(text),
        Err(_) => CompactString::from(String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        let mut p = Properties::new();
        for (k, v) in pairs {
            p.insert(*k, *v).unwrap();
        }
        p
    }

    #[test]
    fn encodes_sorted_with_trailing_separator() {
        let p = props(&[("TAGS", "a"), ("KEYS", "k1 k2")]);
        assert_eq!(p.encode(), "KEYS\u{1}k1 k2\u{2}TAGS\u{1}a\u{2}");
        assert_eq!(p.encoded_len(), p.encode().len());
        let mut buf = Vec::new();
        p.encode_into(&mut buf);
        assert_eq!(buf, p.encode().as_bytes());
        assert_eq!(Properties::new().encode(), "");
    }

    #[test]
    fn parses_like_java() {
        // Short segments, missing separators, empty names and empty values are skipped;
        // the last entry may lack its 0x02; the value keeps any further 0x01.
        let p = Properties::parse(
            "a\u{1}\u{2}\u{1}b\u{2}xy\u{2}k\u{1}v\u{2}\u{2}n\u{1}x\u{1}y\u{2}last\u{1}1",
        );
        let got: Vec<(&str, &str)> = p.iter().collect();
        assert_eq!(got, [("k", "v"), ("last", "1"), ("n", "x\u{1}y")]);
    }

    #[test]
    fn debugs_as_a_map_and_clones_an_empty_one_for_free() {
        assert_eq!(format!("{:?}", props(&[("k", "v")])), r#"{"k": "v"}"#);
        assert_eq!(Properties::new().clone().0.capacity(), 0);
    }

    #[test]
    fn later_duplicate_wins() {
        let p = Properties::parse("k\u{1}1\u{2}k\u{1}2\u{2}");
        assert_eq!(p.get("k"), Some("2"));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let p = Properties::parse_bytes(b"k\x01\xff\x02");
        assert_eq!(p.get("k"), Some("\u{FFFD}"));
    }

    #[test]
    fn rejects_separators_and_empty_parts() {
        let mut p = Properties::new();
        for (k, v) in [
            ("a\u{1}", "v"),
            ("a\u{2}", "v"),
            ("k", "v\u{2}"),
            ("k", "v\u{1}"),
            ("", "v"),
            ("k", ""),
        ] {
            let err = p.insert(k, v).unwrap_err();
            assert!(matches!(err, ModelError::InvalidProperty { .. }), "{err}");
        }
        assert!(p.is_empty());
    }

    fn text() -> impl Strategy<Value = String> {
        "[^\u{1}\u{2}]{1,12}"
    }

    proptest! {
        #[test]
        fn round_trip(map in proptest::collection::btree_map(text(), text(), 0..12)) {
            let mut p = Properties::new();
            for (k, v) in &map {
                p.insert(k.clone(), v.clone()).unwrap();
            }
            let encoded = p.encode();
            prop_assert_eq!(Properties::parse(&encoded), p.clone());
            prop_assert_eq!(Properties::parse_bytes(encoded.as_bytes()), p);
        }

        /// Any sequence of inserts and removes leaves the map a `BTreeMap`
        /// would hold, in the same order.
        #[test]
        fn behaves_like_a_sorted_map(
            edits in proptest::collection::vec((any::<bool>(), "[a-e]{1,2}", text()), 0..40),
        ) {
            let mut p = Properties::new();
            let mut model = std::collections::BTreeMap::new();
            for (insert, name, value) in edits {
                if insert {
                    prop_assert_eq!(
                        p.insert(name.clone(), value.clone()).unwrap(),
                        model.insert(name, value)
                    );
                } else {
                    prop_assert_eq!(p.remove(&name), model.remove(&name));
                }
            }
            let expected: Vec<_> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(p.iter().collect::<Vec<_>>(), expected);
            for (name, value) in &model {
                prop_assert_eq!(p.get(name), Some(value.as_str()));
                prop_assert!(p.contains(name));
            }
        }

        /// Parsing keeps the last value of every name, sorted by name.
        #[test]
        fn parse_keeps_the_last_of_each_name(
            pairs in proptest::collection::vec(("[a-e]{1,2}", text()), 0..30),
        ) {
            let text: String = pairs.iter().map(|(k, v)| format!("{k}\u{1}{v}\u{2}")).collect();
            let model: std::collections::BTreeMap<_, _> = pairs.into_iter().collect();
            let expected: Vec<_> = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let parsed = Properties::parse(&text);
            prop_assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
        }

        /// Checking the whole string once reads every property as checking
        /// each piece would, valid UTF-8 or not.
        #[test]
        fn parse_reads_each_piece_as_its_own_text(
            pieces in proptest::collection::vec(
                prop_oneof![
                    4 => "[a-e]".prop_map(String::into_bytes),
                    1 => Just(vec![1u8]),
                    1 => Just(vec![2u8]),
                    1 => Just("é中".as_bytes().to_vec()),
                    1 => Just(vec![0xFFu8]),
                ],
                0..32,
            ),
        ) {
            let bytes = pieces.concat();
            let mut expected = std::collections::BTreeMap::new();
            for segment in bytes.split(|&b| b == 2) {
                if let Some(sep) = segment.iter().position(|&b| b == 1) {
                    let (name, value) = (&segment[..sep], &segment[sep + 1..]);
                    if !name.is_empty() && !value.is_empty() {
                        expected.insert(lossy(name), lossy(value));
                    }
                }
            }
            let expected: Vec<_> = expected.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let parsed = Properties::parse_bytes(&bytes);
            prop_assert_eq!(parsed.iter().collect::<Vec<_>>(), expected);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let p = Properties::parse_bytes(&bytes);
            // Whatever was parsed re-encodes to something that parses to the same map.
            prop_assert_eq!(Properties::parse(&p.encode()), p);
        }
    }
}
