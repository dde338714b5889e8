//! [`ExtFields`]: the custom-header fields of a remoting command, as text.
//!
//! Every request and response carries one of these maps, so it is built for the
//! hot path. Keys and values given to it are kept as [`CompactString`]s (text
//! up to 24 bytes — every header key but a few, numbers, queue ids, flags —
//! lives inline, without an allocation of its own). A header has a dozen or so fields, and for that few
//! a vector searched in order beats hashing: one allocation, no hash per insert
//! or lookup, iteration in insertion order. Past [`SMALL_LIMIT`] fields (only a
//! peer sending odd headers gets there) the map moves into a hash table, so a
//! header with many thousand fields still costs linear time, not quadratic;
//! the table hashes with foldhash, seeded per map, so keys a peer chooses
//! cannot be aimed at one bucket chain.
//!
//! A request built from a typed header keeps the header instead
//! ([`ExtFields::from_header`]): the codec writes it straight into the frame,
//! and the text fields are made only if someone reads or changes them. A
//! peer's header read by a codec keeps its fields as positions in one copy
//! of the text they came in ([`FieldsInText`]) until someone changes them.

use std::collections::HashMap;
use std::collections::hash_map;
use std::fmt;
use std::ops::Index;
use std::slice;
use std::sync::{Arc, OnceLock};

pub use compact_str::CompactString;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{DynHeader, FieldSink, FieldWriter};

mod in_text;

pub use in_text::FieldsInText;
use in_text::InText;

type Table = HashMap<CompactString, CompactString, foldhash::fast::RandomState>;

/// Most fields kept in the searched vector before the map becomes a hash table.
const SMALL_LIMIT: usize = 32;

/// The `extFields` map of a remoting command: every custom-header field as
/// text, keyed as on the wire. Typed headers read and write it through
/// [`CommandHeader`](super::CommandHeader).
///
/// Equality does not depend on the order of the fields.
#[derive(Clone)]
pub struct ExtFields {
    /// The text fields, unless `header` holds them.
    repr: Repr,
    /// A typed header whose fields these are ([`ExtFields::from_header`]).
    header: Option<Arc<Typed<dyn DynHeader>>>,
}

/// A typed header and, once someone reads them, its text fields.
struct Typed<H: ?Sized> {
    fields: OnceLock<Repr>,
    header: H,
}

impl<H: ?Sized + DynHeader> Typed<H> {
    fn fields(&self) -> &Repr {
        self.fields.get_or_init(|| self.make_fields())
    }

    fn make_fields(&self) -> Repr {
        let mut map = ExtFields::with_capacity(16);
        self.header.write_to(&mut FieldWriter::new(&mut map));
        map.repr
    }
}

#[derive(Clone)]
enum Repr {
    /// Distinct keys, in insertion order; at most [`SMALL_LIMIT`] of them.
    Small(Small),
    Large(Table),
    /// Slices of a peer's header text ([`FieldsInText`]); never held by a
    /// map being changed.
    InText(InText),
}

/// The fields of a map being changed.
enum Owned<'a> {
    Small(&'a mut Small),
    Large(&'a mut Table),
}

/// The fields of a small map, and a one-word filter of the keys it has held:
/// a key whose bit is clear is new, so writing a header's distinct fields
/// pushes each without comparing it to the others, and looking up an absent
/// optional field usually compares nothing.
#[derive(Clone, Default)]
struct Small {
    entries: Vec<(CompactString, CompactString)>,
    /// Bit [`key_bit`] of every key inserted (never cleared, so a removed
    /// key's bit only costs a search).
    keys_seen: u64,
}

/// A key's bit in [`Small::keys_seen`], from its length and its first and
/// last bytes: header keys (Java field names, or V2's single letters) differ
/// in those, so they rarely share a bit.
fn key_bit(key: &str) -> u64 {
    let bytes = key.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [only] => (*only, 0),
        [first, .., last] => (*first, *last),
    };
    let mix = bytes.len() * 7 + usize::from(first) * 3 + usize::from(last);
    1 << (mix % 64)
}

/// The value of `key` in `repr`, as owned text.
fn value_of<'a>(repr: &'a Repr, key: &str) -> Option<&'a CompactString> {
    match repr {
        Repr::Small(small) => small.value(key),
        Repr::Large(table) => table.get(key),
        Repr::InText(in_text) => in_text.small().value(key),
    }
}

impl Small {
    fn value(&self, key: &str) -> Option<&CompactString> {
        // A key whose bit is clear was never inserted: typed headers look
        // up their optional fields, mostly absent, by this test.
        if self.keys_seen & key_bit(key) == 0 {
            return None;
        }
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
}

impl Default for ExtFields {
    fn default() -> Self {
        ExtFields {
            repr: Repr::Small(Small::default()),
            header: None,
        }
    }
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        let repr = if capacity <= SMALL_LIMIT {
            Repr::Small(Small {
                entries: Vec::with_capacity(capacity),
                keys_seen: 0,
            })
        } else {
            Repr::Large(Table::with_capacity_and_hasher(
                capacity,
                Default::default(),
            ))
        };
        ExtFields { repr, header: None }
    }

    /// The fields of `header`, kept as the header itself: a codec writes it
    /// straight into the frame ([`header`](Self::header)), and the text fields
    /// are made only when read or changed. The same fields as
    /// [`CommandHeader::to_ext_fields`](super::CommandHeader::to_ext_fields), in the order the header writes them.
    pub fn from_header(header: impl DynHeader) -> Self {
        let typed: Arc<Typed<dyn DynHeader>> = Arc::new(Typed {
            fields: OnceLock::new(),
            header,
        });
        ExtFields {
            repr: Repr::Small(Small::default()),
            header: Some(typed),
        }
    }

    /// The typed header these fields came from, while they are unchanged
    /// since [`from_header`](Self::from_header).
    pub fn header(&self) -> Option<&dyn DynHeader> {
        self.header.as_deref().map(|typed| &typed.header)
    }

    /// Gives every field to `sink`: a typed header writes itself (its text
    /// fields are not made), text fields go as they are.
    pub fn write_to(&self, sink: &mut dyn FieldSink) {
        match &self.header {
            Some(typed) => typed.header.write_to(&mut FieldWriter::to_sink(sink)),
            None => {
                for (key, value) in self {
                    sink.put_str(key, value);
                }
            }
        }
    }

    /// The text fields (a typed header's made on first use).
    fn repr(&self) -> &Repr {
        match &self.header {
            Some(typed) => typed.fields(),
            None => &self.repr,
        }
    }

    /// The text fields, to be changed: a typed header becomes text (taken,
    /// not copied, when no clone shares it), and so do fields read in place.
    fn repr_mut(&mut self) -> Owned<'_> {
        if let Some(mut typed) = self.header.take() {
            self.repr = match Arc::get_mut(&mut typed) {
                Some(only) => match only.fields.take() {
                    Some(fields) => fields,
                    None => only.make_fields(),
                },
                None => typed.fields().clone(),
            };
        }
        if let Repr::InText(in_text) = &mut self.repr {
            let small = std::mem::take(in_text).into_small();
            self.repr = Repr::Small(small);
        }
        match &mut self.repr {
            Repr::Small(small) => Owned::Small(small),
            Repr::Large(table) => Owned::Large(table),
            Repr::InText(_) => unreachable!("fields read in place were made owned above"),
        }
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<CompactString> {
        let key = key.into();
        let value = value.into();
        let small = match self.repr_mut() {
            Owned::Large(table) => return table.insert(key, value),
            Owned::Small(small) => small,
        };
        let bit = key_bit(&key);
        if small.keys_seen & bit != 0 {
            if let Some((_, old)) = small.entries.iter_mut().find(|(k, _)| *k == key) {
                return Some(std::mem::replace(old, value));
            }
        }
        if small.entries.len() < SMALL_LIMIT {
            small.keys_seen |= bit;
            small.entries.push((key, value));
        } else {
            let mut table = Table::with_capacity_and_hasher(2 * SMALL_LIMIT, Default::default());
            table.extend(small.entries.drain(..));
            table.insert(key, value);
            self.repr = Repr::Large(table);
        }
        None
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self.repr() {
            Repr::InText(in_text) => in_text.get(key),
            repr => value_of(repr, key).map(CompactString::as_str),
        }
    }

    /// The value of `key` as owned text (made for fields read in place).
    fn value(&self, key: &str) -> Option<&CompactString> {
        value_of(self.repr(), key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        match self.repr_mut() {
            Owned::Small(small) => {
                let at = small.entries.iter().position(|(k, _)| k.as_str() == key)?;
                Some(small.entries.remove(at).1)
            }
            Owned::Large(table) => table.remove(key),
        }
    }

    /// Keeps only the fields `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        match self.repr_mut() {
            Owned::Small(small) => small.entries.retain(|(k, v)| keep(k, v)),
            Owned::Large(table) => table.retain(|k, v| keep(k, v)),
        }
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        match self.repr() {
            Repr::Small(small) => small.entries.len(),
            Repr::Large(table) => table.len(),
            Repr::InText(in_text) => in_text.len(),
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(key, _)| key)
    }

    /// The fields, in no particular order (a map of a few fields keeps the
    /// order they were inserted in).
    pub fn iter(&self) -> Iter<'_> {
        let inner = match self.repr() {
            Repr::Small(small) => IterRepr::Small(small.entries.iter()),
            Repr::Large(table) => IterRepr::Large(table.iter()),
            Repr::InText(in_text) => IterRepr::InText(in_text.pairs()),
        };
        Iter { inner }
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        // Keys are distinct, so equal sizes and every field found is enough.
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

/// The fields of an [`ExtFields`], as `(key, value)` text.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: IterRepr<'a>,
}

#[derive(Debug, Clone)]
enum IterRepr<'a> {
    Small(slice::Iter<'a, (CompactString, CompactString)>),
    Large(hash_map::Iter<'a, CompactString, CompactString>),
    InText(in_text::Pairs<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = match &mut self.inner {
            IterRepr::Small(entries) => entries.next().map(|(k, v)| (k, v))?,
            IterRepr::Large(table) => table.next()?,
            IterRepr::InText(pairs) => return pairs.next(),
        };
        Some((k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.inner {
            IterRepr::Small(entries) => entries.size_hint(),
            IterRepr::Large(table) => table.size_hint(),
            IterRepr::InText(pairs) => pairs.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a ExtFields {
    type Item = (&'a str, &'a str);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut fields = ExtFields::new();
        fields.extend(iter);
        fields
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (key, value) in iter {
            self.insert(key, value);
        }
    }
}

impl Index<&str> for ExtFields {
    type Output = CompactString;

    /// The value of `key`. Fields read in place ([`FieldsInText`]) are
    /// copied into compact strings, all of them, the first time the map is
    /// indexed; [`get`](ExtFields::get) reads them where they are.
    ///
    /// # Panics
    ///
    /// When `key` is absent, like `HashMap`'s index.
    fn index(&self, key: &str) -> &CompactString {
        match self.value(key) {
            Some(value) => value,
            None => panic!("extFields has no field `{key}`"),
        }
    }
}

/// The ACL session token field of a signed request (§9.3): a credential,
/// hidden from `Debug` output.
const SECURITY_TOKEN: &str = "SecurityToken";

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.iter().map(|(key, value)| {
            let value = if key == SECURITY_TOKEN {
                "<redacted>"
            } else {
                value
            };
            (key, value)
        });
        f.debug_map().entries(shown).finish()
    }
}

impl Serialize for ExtFields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (key, value) in self {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CommandHeader;

    #[test]
    fn debug_output_hides_the_session_token() {
        let fields: ExtFields = [("AccessKey", "ak"), ("SecurityToken", "sts-secret")]
            .into_iter()
            .collect();
        let shown = format!("{fields:?}");
        assert!(!shown.contains("sts-secret"), "{shown}");
        assert!(
            shown.contains("\"SecurityToken\": \"<redacted>\""),
            "{shown}"
        );
        assert!(shown.contains("\"AccessKey\": \"ak\""), "{shown}");
    }

    #[test]
    fn behaves_as_a_text_map() {
        let mut fields = ExtFields::with_capacity(4);
        assert!(fields.is_empty());
        assert_eq!(fields.insert("topic", "T"), None);
        assert_eq!(
            fields.insert("topic", String::from("U")).as_deref(),
            Some("T")
        );
        fields.insert("queueId", "3");
        assert_eq!(fields.len(), 2);
        assert_eq!(fields["topic"], "U");
        assert_eq!(fields.get("queueId"), Some("3"));
        assert!(fields.contains_key("queueId"));
        assert_eq!(fields.get("missing"), None);
        fields.retain(|k, _| k != "queueId");
        assert_eq!(fields.remove("topic").as_deref(), Some("U"));
        assert!(fields.is_empty());
    }

    #[test]
    fn long_text_and_equality_do_not_depend_on_order() {
        let long = "k".repeat(100);
        let a: ExtFields = [("a", "1"), (long.as_str(), long.as_str())]
            .into_iter()
            .collect();
        let b: ExtFields = [(long.as_str(), long.as_str()), ("a", "1")]
            .into_iter()
            .collect();
        assert_eq!(a, b);
        assert_eq!(a.get(&long), Some(long.as_str()));
        let mut pairs: Vec<_> = a.iter().collect();
        pairs.sort_unstable();
        assert_eq!(pairs, vec![("a", "1"), (long.as_str(), long.as_str())]);
    }

    #[test]
    fn a_typed_header_reads_as_its_fields_and_becomes_text_when_changed() {
        let header = crate::header::GetMaxOffsetRequestHeader {
            topic: "T".into(),
            queue_id: 3,
            ..Default::default()
        };
        let mut fields = ExtFields::from_header(header.clone());
        assert_eq!(
            fields.header().map(DynHeader::name),
            Some("GetMaxOffsetRequestHeader")
        );
        assert_eq!(fields, header.to_ext_fields());
        assert_eq!(fields.get("queueId"), Some("3"));
        assert_eq!(fields.len(), header.to_ext_fields().len());
        let shared = fields.clone();

        fields.insert("extra", "x");
        assert!(
            fields.header().is_none(),
            "changed fields are no longer the header"
        );
        assert_eq!(fields.get("topic"), Some("T"));
        assert_eq!(fields.get("extra"), Some("x"));
        assert_eq!(fields.len(), shared.len() + 1);
        // A clone taken before the change still is the header.
        assert!(shared.header().is_some());
        assert_eq!(shared.get("extra"), None);

        let mut removed = shared.clone();
        assert_eq!(removed.remove("topic").as_deref(), Some("T"));
        assert!(removed.header().is_none() && !removed.contains_key("topic"));
        let mut kept = shared;
        kept.retain(|key, _| key == "queueId");
        assert_eq!(kept.iter().collect::<Vec<_>>(), [("queueId", "3")]);

        // Held alone, its fields are taken rather than copied, read or not.
        let mut unread = ExtFields::from_header(header.clone());
        unread.insert("extra", "y");
        let mut read = ExtFields::from_header(header.clone());
        assert_eq!(read.get("topic"), Some("T"));
        read.insert("extra", "y");
        for changed in [unread, read] {
            assert!(changed.header().is_none());
            assert_eq!(changed.len(), header.to_ext_fields().len() + 1);
            assert_eq!(changed.get("queueId"), Some("3"));
        }
    }

    #[test]
    fn fields_cross_unwinding_like_plain_data() {
        fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        unwind_safe::<ExtFields>();
    }

    #[test]
    fn a_small_map_keeps_insertion_order() {
        let mut fields: ExtFields = [("b", "1"), ("a", "2"), ("c", "3")].into_iter().collect();
        fields.insert("a", "4");
        fields.remove("b");
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("a", "4"), ("c", "3")]);
    }

    #[test]
    fn a_map_past_the_small_limit_still_finds_every_field() {
        let count = SMALL_LIMIT * 4;
        let mut fields = ExtFields::new();
        for i in 0..count {
            assert_eq!(fields.insert(format!("k{i}"), i.to_string()), None);
        }
        assert_eq!(fields.insert("k7", "seven").as_deref(), Some("7"));
        assert_eq!(fields.len(), count);
        assert_eq!(fields.get("k7"), Some("seven"));
        assert_eq!(fields[&*format!("k{}", count - 1)], (count - 1).to_string());
        assert!(matches!(fields.repr, Repr::Large(_)));
        // Equal to the same fields held small, in another order.
        let mut small = ExtFields::new();
        fields.retain(|k, _| k == "k7" || k == "k0");
        small.insert("k7", "seven");
        small.insert("k0", "0");
        assert_eq!(fields, small);
        assert_eq!(small, fields);
    }

    #[test]
    fn many_fields_from_a_peer_cost_linear_time() {
        // 200,000 distinct keys: quadratic inserts would take minutes.
        let fields: ExtFields = (0..200_000).map(|i| (format!("k{i}"), "v")).collect();
        assert_eq!(fields.len(), 200_000);
        assert_eq!(fields.get("k199999"), Some("v"));
    }

    proptest::proptest! {
        /// Any sequence of edits leaves the same fields as a `HashMap` given
        /// the same edits, on both sides of the small limit.
        #[test]
        fn behaves_like_a_hash_map(
            edits in proptest::collection::vec((0u8..3, 0u16..80, 0u16..1000), 0..300),
        ) {
            let mut fields = ExtFields::new();
            let mut model = std::collections::HashMap::new();
            for (op, key, value) in edits {
                let key = format!("k{key}");
                match op {
                    0 => proptest::prop_assert_eq!(
                        fields.insert(key.clone(), value.to_string()).map(String::from),
                        model.insert(key, value.to_string()),
                    ),
                    1 => proptest::prop_assert_eq!(
                        fields.remove(&key).map(String::from),
                        model.remove(&key),
                    ),
                    _ => {
                        let keep = |k: &str, v: &str| !(k.len() + v.len()).is_multiple_of(3);
                        fields.retain(keep);
                        model.retain(|k, v| keep(k, v));
                    }
                }
                proptest::prop_assert_eq!(fields.len(), model.len());
            }
            for (key, value) in &model {
                proptest::prop_assert_eq!(fields.get(key), Some(value.as_str()));
            }
            let rebuilt: ExtFields = model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            proptest::prop_assert_eq!(&fields, &rebuilt);
        }
    }

    #[test]
    fn serializes_as_a_json_object() {
        let fields: ExtFields = [("n", "1")].into_iter().collect();
        assert_eq!(serde_json::to_string(&fields).unwrap(), r#"{"n":"1"}"#);
        assert_eq!(format!("{fields:?}"), r#"{"n": "1"}"#);
    }

    #[test]
    #[should_panic(expected = "extFields has no field `x`")]
    fn index_of_a_missing_key_panics_like_a_map() {
        let _ = &ExtFields::new()["x"];
    }
}
