//! Fields read in place: a peer's header fields kept as positions in one
//! copy of the text they came in, rather than as an owned string per key
//! and per value. A response's fields are read once or twice and dropped;
//! making each an owned string first cost more than everything else the
//! read does.
//!
//! The copy is of the text the fields span (for a JSON header, its
//! extFields object), made once when the map is finished: a map kept by a
//! caller never keeps the connection's read buffer alive.

use std::ops::Range;
use std::slice;
use std::sync::{Arc, OnceLock};

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

impl Span {
    fn shifted_back(self, by: u32) -> Span {
        Span {
            key: (self.key.0 - by, self.key.1 - by),
            value: (self.value.0 - by, self.value.1 - by),
        }
    }
}

fn slice(text: &str, (start, end): (u32, u32)) -> &str {
    &text[start as usize..end as usize]
}

/// Where the field `key` is among `spans` of `text`, given the key filter
/// of the spans' keys.
fn position(text: &str, spans: &[Span], keys_seen: u64, key: &str) -> Option<usize> {
    position_with_bit(text, spans, keys_seen, key_bit(key), key)
}

/// [`position`], given `key`'s bit.
fn position_with_bit(
    text: &str,
    spans: &[Span],
    keys_seen: u64,
    bit: u64,
    key: &str,
) -> Option<usize> {
    if keys_seen & bit == 0 {
        return None;
    }
    let bytes = text.as_bytes();
    let key = key.as_bytes();
    spans.iter().position(|span| {
        let (start, end) = (span.key.0 as usize, span.key.1 as usize);
        // Lengths first: most keys differ in length.
        end - start == key.len() && bytes.get(start..end) == Some(key)
    })
}

/// The fields of an [`ExtFields`] read in place (see the module docs).
#[derive(Clone, Default)]
pub(super) struct InText {
    text: Arc<str>,
    spans: Vec<Span>,
    /// As [`Small::keys_seen`]: the bits of every key.
    keys_seen: u64,
    /// The fields as owned text, made only for a caller that wants a
    /// `&CompactString` (indexing).
    made: OnceLock<Box<Small>>,
}

impl InText {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        let at = position(&self.text, &self.spans, self.keys_seen, key)?;
        self.spans.get(at).map(|span| slice(&self.text, span.value))
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
        self.made
            .get_or_init(|| Box::new(to_small(&self.text, &self.spans, self.keys_seen)))
    }

    /// The fields as an owned small map, to be changed.
    pub(super) fn into_small(mut self) -> Small {
        match self.made.take() {
            Some(made) => *made,
            None => to_small(&self.text, &self.spans, self.keys_seen),
        }
    }
}

fn to_small(text: &str, spans: &[Span], keys_seen: u64) -> Small {
    Small {
        entries: spans
            .iter()
            .map(|span| (slice(text, span.key).into(), slice(text, span.value).into()))
            .collect(),
        keys_seen,
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
        Some((slice(self.text, span.key), slice(self.text, span.value)))
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
/// given by where its key and value lie in the text. The finished map keeps
/// one copy of the stretch of text its fields span, and reads them there.
///
/// Fields that are not slices of the text as they stand (a JSON string with
/// escapes) can be inserted as owned text; the map then holds all its
/// fields as owned text, as [`ExtFields::insert`] makes them, and so it does
/// past 32 fields.
pub struct FieldsInText<'a> {
    text: &'a str,
    spans: Vec<Span>,
    keys_seen: u64,
    /// The stretch of text the spans lie in: the least start and the
    /// greatest end pushed.
    bounds: (u32, u32),
    /// Every field as owned text, once one could not stay in place.
    owned: Option<ExtFields>,
}

impl<'a> FieldsInText<'a> {
    /// An empty map over `text`.
    pub fn new(text: &'a str) -> Self {
        FieldsInText {
            text,
            spans: Vec::new(),
            keys_seen: 0,
            bounds: (u32::MAX, 0),
            owned: None,
        }
    }

    /// The text the fields are read from.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Sets the field whose key is `text[key]` to the value `text[value]`
    /// (replacing an earlier value of that key). Returns false, and sets
    /// nothing, when either range is not a slice of the text on character
    /// boundaries.
    #[inline]
    pub fn push(&mut self, key: Range<usize>, value: Range<usize>) -> bool {
        let (Some(key_text), Some(value_text)) =
            (self.text.get(key.clone()), self.text.get(value.clone()))
        else {
            return false;
        };
        match (&self.owned, offsets(&key), offsets(&value)) {
            (None, Some(key), Some(value)) if self.spans.len() < SMALL_LIMIT => {
                self.push_span(Span { key, value }, key_text);
            }
            _ => self.insert(key_text, value_text),
        }
        true
    }

    /// Adds a span whose key is `key`, replacing the value of an earlier
    /// one with the same key, as a map does.
    fn push_span(&mut self, span: Span, key: &str) {
        let (start, end) = &mut self.bounds;
        *start = (*start).min(span.key.0.min(span.value.0));
        *end = (*end).max(span.key.1.max(span.value.1));
        let bit = key_bit(key);
        let earlier = position_with_bit(self.text, &self.spans, self.keys_seen, bit, key);
        if let Some(earlier) = earlier.and_then(|at| self.spans.get_mut(at)) {
            earlier.value = span.value;
            return;
        }
        self.keys_seen |= bit;
        if self.spans.is_empty() {
            self.spans.reserve(8);
        }
        self.spans.push(span);
    }

    /// Sets `key` to `value`, both owned text.
    pub fn insert(&mut self, key: impl Into<CompactString>, value: impl Into<CompactString>) {
        self.owned_fields().insert(key, value);
    }

    /// Every field as owned text, from now on.
    #[cold]
    fn owned_fields(&mut self) -> &mut ExtFields {
        let (text, spans, keys_seen) = (self.text, &self.spans, self.keys_seen);
        self.owned.get_or_insert_with(|| ExtFields {
            repr: Repr::Small(to_small(text, spans, keys_seen)),
            header: None,
        })
    }

    /// The map.
    pub fn finish(self) -> ExtFields {
        if let Some(owned) = self.owned {
            return owned;
        }
        if self.spans.is_empty() {
            return ExtFields::new();
        }
        let (start, end) = self.bounds;
        // Span ends are character boundaries, so this slice is whole text.
        let text: Arc<str> = Arc::from(slice(self.text, (start, end)));
        let spans = self
            .spans
            .into_iter()
            .map(|s| s.shifted_back(start))
            .collect();
        ExtFields {
            repr: Repr::InText(InText {
                text,
                spans,
                keys_seen: self.keys_seen,
                made: OnceLock::new(),
            }),
            header: None,
        }
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
        let mut fields = FieldsInText::new(text);
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
    fn the_finished_map_keeps_a_copy_of_just_the_text_its_fields_span() {
        let frame = String::from("{\"code\":0,\"ext\":{a=1;bb=22},\"flag\":1}");
        let at = frame.find('a').unwrap();
        let mut fields = FieldsInText::new(&frame);
        assert!(fields.push(at..at + 1, at + 2..at + 3));
        assert!(fields.push(at + 4..at + 6, at + 7..at + 9));
        let fields = fields.finish();
        drop(frame);
        let Repr::InText(in_text) = &fields.repr else {
            panic!("read in place")
        };
        assert_eq!(&*in_text.text, "a=1;bb=22");
        assert_eq!(fields.get("bb"), Some("22"));
        assert_eq!(fields.get("a"), Some("1"));
        assert!(FieldsInText::new("unused").finish().is_empty());
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
        let mut fields = FieldsInText::new("k=v;x=y");
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
        let mut fields = FieldsInText::new("ü=1");
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
        let mut fields = FieldsInText::new(&text);
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
            let mut fields = FieldsInText::new(&text);
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
