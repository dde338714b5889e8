//! Fields read in place: a peer's header fields kept as positions in the
//! header text they came in, so reading a frame copies no key and no value.
//! A response's fields are read once or twice and dropped; making each an
//! owned string first cost more than everything else the read does.

use std::ops::Range;
use std::slice;
use std::sync::OnceLock;

pub use bytestring::ByteString;
use compact_str::CompactString;

use super::{ExtFields, Repr, SMALL_LIMIT, Small, key_bit};

/// Where one field's key and value lie in the text, as byte offsets. Every
/// offset is on a character boundary of the text (checked when pushed), so
/// slicing by them cannot fail.
#[derive(Clone, Copy)]
struct Span {
    key: (u32, u32),
    value: (u32, u32),
}

/// The fields of an [`ExtFields`] read in place (see the module docs).
#[derive(Clone, Default)]
pub(super) struct InText {
    text: ByteString,
    spans: Vec<Span>,
    /// As [`Small::keys_seen`]: the bits of every key pushed.
    keys_seen: u64,
    /// The fields as owned text, made only for a caller that wants a
    /// `&CompactString` (indexing).
    made: OnceLock<Box<Small>>,
}

impl InText {
    fn slice(&self, (start, end): (u32, u32)) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// Where the field `key` is among the spans.
    fn position(&self, key: &str) -> Option<usize> {
        if self.keys_seen & key_bit(key) == 0 {
            return None;
        }
        let bytes = self.text.as_bytes();
        let key = key.as_bytes();
        self.spans.iter().position(|span| {
            let (start, end) = (span.key.0 as usize, span.key.1 as usize);
            // Lengths first: most keys differ in length.
            end - start == key.len() && bytes.get(start..end) == Some(key)
        })
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        let at = self.position(key)?;
        self.spans.get(at).map(|span| self.slice(span.value))
    }

    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(super) fn pairs(&self) -> Pairs<'_> {
        Pairs {
            text: &self.text,
            spans: self.spans.iter(),
        }
    }

    /// The fields as an owned small map, made on first use.
    pub(super) fn small(&self) -> &Small {
        self.made.get_or_init(|| Box::new(self.to_small()))
    }

    /// The fields as an owned small map, to be changed.
    pub(super) fn into_small(mut self) -> Small {
        match self.made.take() {
            Some(made) => *made,
            None => self.to_small(),
        }
    }

    fn to_small(&self) -> Small {
        Small {
            entries: self
                .pairs()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
            keys_seen: self.keys_seen,
        }
    }

    /// Adds a field whose key is `key` (the text at `span.key`), replacing
    /// the value of an earlier one with the same key, as a map does.
    fn push(&mut self, span: Span, key: &str) {
        if let Some(earlier) = self.position(key).and_then(|at| self.spans.get_mut(at)) {
            earlier.value = span.value;
            return;
        }
        self.keys_seen |= key_bit(key);
        if self.spans.is_empty() {
            self.spans.reserve(8);
        }
        self.spans.push(span);
    }
}

/// The fields of an [`InText`] as text pairs, in the order pushed.
#[derive(Clone)]
pub(super) struct Pairs<'a> {
    text: &'a str,
    spans: slice::Iter<'a, Span>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let span = self.spans.next()?;
        let slice = |(start, end): (u32, u32)| &self.text[start as usize..end as usize];
        Some((slice(span.key), slice(span.value)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.spans.size_hint()
    }
}

impl std::fmt::Debug for Pairs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Builds an [`ExtFields`] out of one text, a peer's header: each field is
/// given by where its key and value lie in the text, and kept that way, not
/// copied. Fields that are not slices of the text as they stand (a JSON
/// string with escapes) can be inserted as owned text; the map then holds
/// all its fields as owned text, as [`ExtFields::insert`] makes them.
///
/// The finished map keeps the text (and whatever buffer it shares) alive.
pub struct FieldsInText {
    text: ByteString,
    fields: ExtFields,
}

impl FieldsInText {
    /// An empty map over `text`.
    pub fn new(text: ByteString) -> Self {
        let in_text = InText {
            text: text.clone(),
            spans: Vec::new(),
            keys_seen: 0,
            made: OnceLock::new(),
        };
        FieldsInText {
            text,
            fields: ExtFields {
                repr: Repr::InText(in_text),
                header: None,
            },
        }
    }

    /// The text the fields are read from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Sets the field whose key is `text[key]` to the value `text[value]`
    /// (replacing an earlier value of that key). Returns false, and sets
    /// nothing, when either range is not a slice of the text on character
    /// boundaries.
    #[inline]
    pub fn push(&mut self, key: Range<usize>, value: Range<usize>) -> bool {
        let (Some(key_text), Some(_)) = (self.text.get(key.clone()), self.text.get(value.clone()))
        else {
            return false;
        };
        match (&mut self.fields.repr, offsets(&key), offsets(&value)) {
            (Repr::InText(in_text), Some(key), Some(value))
                if in_text.spans.len() < SMALL_LIMIT =>
            {
                in_text.push(Span { key, value }, key_text);
            }
            _ => self.insert_slices(key, value),
        }
        true
    }

    /// [`push`](Self::push) for a map that holds owned text (or is full):
    /// the slices are copied.
    #[cold]
    fn insert_slices(&mut self, key: Range<usize>, value: Range<usize>) {
        if let (Some(key), Some(value)) = (self.text.get(key), self.text.get(value)) {
            self.fields.insert(key, value);
        }
    }

    /// Sets `key` to `value`, both owned text.
    pub fn insert(&mut self, key: impl Into<CompactString>, value: impl Into<CompactString>) {
        self.fields.insert(key, value);
    }

    /// The map.
    pub fn finish(self) -> ExtFields {
        self.fields
    }
}

/// A range as the offsets a [`Span`] keeps, if they fit.
fn offsets(range: &Range<usize>) -> Option<(u32, u32)> {
    Some((
        u32::try_from(range.start).ok()?,
        u32::try_from(range.end).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// `text` and the ranges of its `key=value` pairs, split at `;`.
    fn pairs_in(text: &str) -> Vec<(Range<usize>, Range<usize>)> {
        let mut at = 0;
        let mut ranges = Vec::new();
        for pair in text.split(';') {
            let eq = pair.find('=').unwrap_or(pair.len());
            let value_start = (at + eq + 1).min(at + pair.len());
            ranges.push((at..at + eq, value_start..at + pair.len()));
            at += pair.len() + 1;
        }
        ranges
    }

    fn read(text: &'static str) -> ExtFields {
        let mut fields = FieldsInText::new(ByteString::from_static(text));
        for (key, value) in pairs_in(text) {
            assert!(fields.push(key, value));
        }
        fields.finish()
    }

    #[test]
    fn reads_as_the_map_of_its_pairs() {
        let fields = read("queueId=1;msgId=7F00;TRACE_ON=true");
        assert!(matches!(fields.repr, Repr::InText(_)));
        assert_eq!(fields.len(), 3);
        assert_eq!(fields.get("msgId"), Some("7F00"));
        assert_eq!(fields.get("queueOffset"), None);
        assert_eq!(fields["queueId"], "1");
        assert_eq!(
            fields.iter().collect::<Vec<_>>(),
            [("queueId", "1"), ("msgId", "7F00"), ("TRACE_ON", "true")]
        );
        let same: ExtFields = [("TRACE_ON", "true"), ("msgId", "7F00"), ("queueId", "1")]
            .into_iter()
            .collect();
        assert_eq!(fields, same);
        assert_eq!(same, fields);
        assert_eq!(
            format!("{fields:?}"),
            r#"{"queueId": "1", "msgId": "7F00", "TRACE_ON": "true"}"#
        );
    }

    #[test]
    fn a_later_key_replaces_an_earlier_one() {
        let fields = read("a=1;b=2;a=3");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields.get("a"), Some("3"));
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
    }

    #[test]
    fn changes_make_the_fields_owned_and_keep_them() {
        let read_fields = read("a=1;b=2");
        let mut changed = read_fields.clone();
        assert_eq!(changed.insert("c", "3"), None);
        assert!(matches!(changed.repr, Repr::Small(_)));
        assert_eq!(changed.get("a"), Some("1"));
        assert_eq!(changed.len(), 3);
        // The clone still reads in place, unchanged.
        assert!(matches!(read_fields.repr, Repr::InText(_)));
        assert_eq!(read_fields.len(), 2);

        // Indexed first (its owned fields made), then changed.
        let mut indexed = read_fields.clone();
        assert_eq!(indexed["b"], "2");
        assert_eq!(indexed.remove("a").as_deref(), Some("1"));
        assert_eq!(indexed.iter().collect::<Vec<_>>(), [("b", "2")]);

        let mut kept = read_fields;
        kept.retain(|key, _| key == "a");
        assert_eq!(kept.iter().collect::<Vec<_>>(), [("a", "1")]);
    }

    #[test]
    fn owned_text_and_pushes_mix() {
        let text = ByteString::from_static("k=v;x=y");
        let mut fields = FieldsInText::new(text);
        assert!(fields.push(0..1, 2..3));
        fields.insert("esc", "a\"b");
        assert!(fields.push(4..5, 6..7));
        let fields = fields.finish();
        assert_eq!(fields.len(), 3);
        assert_eq!(fields.get("k"), Some("v"));
        assert_eq!(fields.get("esc"), Some("a\"b"));
        assert_eq!(fields.get("x"), Some("y"));
    }

    #[test]
    fn ranges_outside_the_text_or_inside_a_character_are_refused() {
        let mut fields = FieldsInText::new(ByteString::from("ü=1"));
        assert!(!fields.push(0..1, 3..4), "inside ü");
        assert!(!fields.push(0..2, 3..5), "past the end");
        assert!(fields.push(0..2, 3..4));
        assert_eq!(fields.text(), "ü=1");
        assert_eq!(fields.finish().get("ü"), Some("1"));
    }

    #[test]
    fn many_fields_become_a_table_and_stay_found() {
        let text: String = (0..SMALL_LIMIT * 3)
            .map(|i| format!("k{i}=v{i}"))
            .collect::<Vec<_>>()
            .join(";");
        let ranges = pairs_in(&text);
        let mut fields = FieldsInText::new(ByteString::from(text));
        for (key, value) in ranges {
            assert!(fields.push(key, value));
        }
        let fields = fields.finish();
        assert!(matches!(fields.repr, Repr::Large(_)));
        assert_eq!(fields.len(), SMALL_LIMIT * 3);
        assert_eq!(fields.get("k0"), Some("v0"));
        assert_eq!(fields.get("k95"), Some("v95"));
    }

    proptest! {
        /// Whatever the pairs (duplicates included, on both sides of the
        /// small limit), the same fields as a `HashMap` given them in order.
        #[test]
        fn reads_like_a_hash_map(pairs in proptest::collection::vec((0u8..50, "[a-zé]{0,3}"), 0..80)) {
            let text: String = pairs
                .iter()
                .map(|(key, value)| format!("k{key}={value}"))
                .collect::<Vec<_>>()
                .join(";");
            let mut model = HashMap::new();
            for (key, value) in &pairs {
                model.insert(format!("k{key}"), value.clone());
            }
            let ranges = if pairs.is_empty() { Vec::new() } else { pairs_in(&text) };
            let mut fields = FieldsInText::new(ByteString::from(text));
            for (key, value) in ranges {
                prop_assert!(fields.push(key, value));
            }
            let fields = fields.finish();
            prop_assert_eq!(fields.len(), model.len());
            for (key, value) in &model {
                prop_assert_eq!(fields.get(key), Some(value.as_str()));
                prop_assert_eq!(fields[key.as_str()].as_str(), value.as_str());
            }
            let owned: ExtFields = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(&fields, &owned);
        }
    }
}
