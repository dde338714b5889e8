//! [`ExtFields`]: the custom-header fields of a remoting command, as text.
//!
//! Every request and response carries one of these maps, so it is built for the
//! hot path: keys and values are [`CompactString`]s (text up to 24 bytes — every
//! header key but a few, numbers, queue ids, flags — lives inline, without an
//! allocation of its own), and the table hashes with foldhash instead of SipHash.
//! The hasher is seeded per map, so keys a peer chooses cannot be aimed at
//! one bucket chain.

use std::collections::HashMap;
use std::collections::hash_map;
use std::fmt;
use std::ops::Index;

pub use compact_str::CompactString;
use serde::ser::{Serialize, SerializeMap, Serializer};

type Table = HashMap<CompactString, CompactString, foldhash::fast::RandomState>;

/// The `extFields` map of a remoting command: every custom-header field as
/// text, keyed as on the wire. Typed headers read and write it through
/// [`CommandHeader`](super::CommandHeader).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtFields {
    table: Table,
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` fields.
    pub fn with_capacity(capacity: usize) -> Self {
        ExtFields {
            table: Table::with_capacity_and_hasher(capacity, Default::default()),
        }
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<CompactString> {
        self.table.insert(key.into(), value.into())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.table.get(key).map(CompactString::as_str)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        self.table.remove(key)
    }

    /// Keeps only the fields `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.table.retain(|k, v| keep(k, v));
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The keys, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(CompactString::as_str)
    }

    /// The fields, in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            inner: self.table.iter(),
        }
    }
}

/// The fields of an [`ExtFields`], as `(key, value)` text.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: hash_map::Iter<'a, CompactString, CompactString>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
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

    /// The value of `key`.
    ///
    /// # Panics
    ///
    /// When `key` is absent, like `HashMap`'s index.
    fn index(&self, key: &str) -> &CompactString {
        match self.table.get(key) {
            Some(value) => value,
            None => panic!("extFields has no field `{key}`"),
        }
    }
}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
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
