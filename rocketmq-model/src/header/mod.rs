//! Typed command headers (PROTOCOL.md §3), converted to and from the `extFields`
//! string map that travels in every remoting command.
//!
//! Every header implements [`CommandHeader`]. Decoding goes through
//! [`FieldReader`], which turns a missing required field or an unparsable number
//! into a [`ModelError`] that names the header and the field.

use std::fmt::{self, Display};

use compact_str::ToCompactString;
use std::str::FromStr;

use crate::error::{ModelError, Result};

// `macros` must come first: the modules below use its macro.
#[macro_use]
mod macros;

mod admin;
mod client;
mod consume;
mod ext_fields;
mod key;
mod offset;
mod pop;
mod pull;
mod recall;
mod reply;
#[cfg(test)]
mod roundtrip_tests;
mod route;
mod send;
mod sink;
mod transaction;
mod value;

pub use admin::{
    CreateTopicRequestHeader, GetConsumeStatsRequestHeader, QueryMessageRequestHeader,
    QueryMessageResponseHeader, ViewMessageRequestHeader,
};
pub use client::{
    ConsumeMessageDirectlyResultRequestHeader, GetConsumerListByGroupRequestHeader,
    GetConsumerRunningInfoRequestHeader, GetConsumerStatusRequestHeader,
    NotifyConsumerIdsChangedRequestHeader, ResetOffsetRequestHeader, UnregisterClientRequestHeader,
};
pub use consume::ConsumerSendMsgBackRequestHeader;
pub use offset::{
    BoundaryType, GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
pub use pop::{
    AckMessageRequestHeader, ChangeInvisibleTimeRequestHeader, ChangeInvisibleTimeResponseHeader,
    PopMessageRequestHeader, PopMessageResponseHeader,
};
pub use pull::{PullMessageRequestHeader, PullMessageResponseHeader};
pub use recall::{RecallMessageRequestHeader, RecallMessageResponseHeader};
pub use reply::ReplyMessageRequestHeader;
pub use route::GetRouteInfoRequestHeader;
pub use send::{
    DEFAULT_REGION, SendMessageRequestHeader, SendMessageRequestHeaderV2, SendMessageResponseHeader,
};
pub use transaction::{
    CheckTransactionStateRequestHeader, EndTransactionRequestHeader, TransactionResolution,
};

pub use ext_fields::{CompactString, ExtFields, FieldsInText, Iter as ExtFieldsIter};
pub use key::FieldKey;
pub use sink::{DynHeader, FieldSink};

/// A typed command header: a struct whose fields travel as `extFields` entries.
pub trait CommandHeader: Sized {
    /// The header's name in errors (usually the Java class name).
    const NAME: &'static str;

    /// Writes every present field into `fields`, keyed as on the wire.
    fn write_fields(&self, fields: &mut FieldWriter<'_>);

    /// Reads the header back from `fields`.
    fn read_fields(fields: &FieldReader<'_>) -> Result<Self>;

    /// Encodes the header into a fresh map.
    fn to_ext_fields(&self) -> ExtFields {
        let mut map = ExtFields::with_capacity(16);
        self.write_fields(&mut FieldWriter::new(&mut map));
        map
    }

    /// Adds the header's fields to an existing map (existing keys are replaced).
    fn extend_ext_fields(&self, map: &mut ExtFields) {
        self.write_fields(&mut FieldWriter::new(map));
    }

    /// Decodes the header from a map.
    fn from_ext_fields(map: &ExtFields) -> Result<Self> {
        Self::read_fields(&FieldReader::new(Self::NAME, map))
    }
}

/// The empty header, for commands that carry no custom fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyHeader;

impl CommandHeader for EmptyHeader {
    const NAME: &'static str = "EmptyHeader";

    fn write_fields(&self, _fields: &mut FieldWriter<'_>) {}

    fn read_fields(_fields: &FieldReader<'_>) -> Result<Self> {
        Ok(EmptyHeader)
    }
}

/// Writes header fields as Java writes them: decimal numbers, `true`/`false`,
/// into a [`FieldSink`] (usually an [`ExtFields`] map).
pub struct FieldWriter<'a> {
    sink: &'a mut dyn FieldSink,
}

impl fmt::Debug for FieldWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldWriter").finish_non_exhaustive()
    }
}

impl<'a> FieldWriter<'a> {
    /// Writes into a map.
    pub fn new(map: &'a mut ExtFields) -> Self {
        FieldWriter { sink: map }
    }

    /// Writes into any sink (a codec writing a frame, for example).
    pub fn to_sink(sink: &'a mut dyn FieldSink) -> Self {
        FieldWriter { sink }
    }

    /// Writes a field. Short text is formatted in place, without an
    /// allocation; integers are better given to [`put_int`](Self::put_int).
    pub fn put(&mut self, key: &str, value: impl Display) {
        self.sink.put_owned(key, value.to_compact_string());
    }

    /// Writes an integer field.
    pub fn put_int(&mut self, key: &str, value: impl Into<i64>) {
        self.sink.put_int(key, value.into());
    }

    /// Writes a boolean field as Java does, `true` or `false`.
    pub fn put_bool(&mut self, key: &str, value: bool) {
        self.sink.put_str(key, if value { "true" } else { "false" });
    }

    /// Writes a string field without formatting machinery.
    pub fn put_str(&mut self, key: &str, value: &str) {
        self.sink.put_str(key, value);
    }

    /// Writes a string field under a key known at compile time
    /// ([`field_key!`](crate::field_key)).
    pub fn put_str_at(&mut self, key: FieldKey, value: &str) {
        self.sink.put_str_at(key, value);
    }

    /// Writes an integer field under a key known at compile time.
    pub fn put_int_at(&mut self, key: FieldKey, value: impl Into<i64>) {
        self.sink.put_int_at(key, value.into());
    }

    /// Writes a boolean field (as [`put_bool`](Self::put_bool)) under a key
    /// known at compile time.
    pub fn put_bool_at(&mut self, key: FieldKey, value: bool) {
        self.sink
            .put_str_at(key, if value { "true" } else { "false" });
    }

    /// Writes a text field the caller no longer needs, keeping its buffer.
    pub fn put_owned(&mut self, key: &str, value: CompactString) {
        self.sink.put_owned(key, value);
    }

    /// Writes a field only when it is present (Java omits null fields).
    pub fn put_opt<T: Display>(&mut self, key: &str, value: Option<T>) {
        if let Some(value) = value {
            self.put(key, value);
        }
    }
}

/// Reads header fields with Java's parsing rules and typed, named errors.
#[derive(Debug, Clone, Copy)]
pub struct FieldReader<'a> {
    header: &'static str,
    map: &'a ExtFields,
}

impl<'a> FieldReader<'a> {
    /// Wraps a map; `header` names the header type in errors.
    pub fn new(header: &'static str, map: &'a ExtFields) -> Self {
        FieldReader { header, map }
    }

    /// The raw text of a field, if present. Java turns empty values into null,
    /// so an empty string reads as absent.
    pub fn raw(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).filter(|v| !v.is_empty())
    }

    /// Every field, as (key, text) pairs; empty text reads as absent (see
    /// [`raw`](Self::raw)).
    pub fn present(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.map.iter().filter(|(_, value)| !value.is_empty())
    }

    /// The "required field is missing" error for `field` of this header.
    pub fn missing(&self, field: &'static str) -> ModelError {
        ModelError::MissingField {
            header: self.header,
            field,
        }
    }

    /// The "field has an invalid value" error for `field` of this header.
    pub fn invalid(&self, field: &'static str, value: &str, expected: &'static str) -> ModelError {
        ModelError::InvalidField {
            header: self.header,
            field,
            value: value.to_owned(),
            expected,
        }
    }

    /// A required string field.
    pub fn string(&self, key: &'static str) -> Result<String> {
        self.raw(key)
            .map(str::to_owned)
            .ok_or(ModelError::MissingField {
                header: self.header,
                field: key,
            })
    }

    /// An optional string field.
    pub fn opt_string(&self, key: &str) -> Option<String> {
        self.raw(key).map(str::to_owned)
    }

    /// A required number.
    pub fn number<T: FromStr + NumberKind>(&self, key: &'static str) -> Result<T> {
        match self.opt_number(key)? {
            Some(value) => Ok(value),
            None => Err(ModelError::MissingField {
                header: self.header,
                field: key,
            }),
        }
    }

    /// An optional number: absent is `None`, unparsable is an error.
    pub fn opt_number<T: FromStr + NumberKind>(&self, key: &'static str) -> Result<Option<T>> {
        self.parse_number(key, self.raw(key))
    }

    /// The number in `text`, the text of field `key` as [`raw`](Self::raw)
    /// gives it: `None` is `None`, unparsable is an error.
    pub fn parse_number<T: FromStr + NumberKind>(
        &self,
        key: &'static str,
        text: Option<&str>,
    ) -> Result<Option<T>> {
        match text {
            None => Ok(None),
            Some(text) => trimmed(text)
                .parse()
                .map(Some)
                .map_err(|_| ModelError::InvalidField {
                    header: self.header,
                    field: key,
                    value: text.to_owned(),
                    expected: T::EXPECTED,
                }),
        }
    }

    /// An optional boolean with Java's rule: "true" in any case is true, any other
    /// text is false.
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.raw(key).map(Self::parse_bool)
    }

    /// A boolean's text read with Java's rule (see [`opt_bool`](Self::opt_bool)).
    pub fn parse_bool(text: &str) -> bool {
        trimmed(text).eq_ignore_ascii_case("true")
    }

    /// A required boolean (Java's parsing rule).
    pub fn bool(&self, key: &'static str) -> Result<bool> {
        self.opt_bool(key).ok_or(ModelError::MissingField {
            header: self.header,
            field: key,
        })
    }
}

/// `text` without surrounding whitespace. Field text nearly always has
/// none: a look at its ends spares `str::trim`'s walk through Unicode.
fn trimmed(text: &str) -> &str {
    let plain = |b: &u8| b.is_ascii() && !b.is_ascii_whitespace();
    match (text.as_bytes().first(), text.as_bytes().last()) {
        (Some(first), Some(last)) if plain(first) && plain(last) => text,
        _ => text.trim(),
    }
}

/// Names a number type in "invalid field" errors.
pub trait NumberKind {
    /// For example "a 32-bit integer".
    const EXPECTED: &'static str;
}

impl NumberKind for i16 {
    const EXPECTED: &'static str = "a 16-bit integer";
}
impl NumberKind for i32 {
    const EXPECTED: &'static str = "a 32-bit integer";
}
impl NumberKind for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";
}
impl NumberKind for u32 {
    const EXPECTED: &'static str = "an unsigned 32-bit integer";
}
impl NumberKind for u64 {
    const EXPECTED: &'static str = "an unsigned 64-bit integer";
}
impl NumberKind for f64 {
    const EXPECTED: &'static str = "a number";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ExtFields {
        pairs.iter().copied().collect()
    }

    #[test]
    fn missing_and_invalid_fields_name_the_field() {
        let m = map(&[("queueId", "x1")]);
        let r = FieldReader::new("PullMessageRequestHeader", &m);
        let err = r.number::<i32>("queueId").unwrap_err();
        assert_eq!(
            err.to_string(),
            "PullMessageRequestHeader: field `queueId` has invalid value \"x1\": expected a 32-bit integer"
        );
        let err = r.string("topic").unwrap_err();
        assert_eq!(
            err.to_string(),
            "PullMessageRequestHeader: required field `topic` is missing"
        );
    }

    #[test]
    fn a_declared_header_reads_its_fields_with_javas_rules() {
        // Unknown keys are passed over, empty text is absent, a defaulted
        // field takes its default, booleans and numbers read as Java reads them.
        let m = map(&[
            ("isForce", "TRUE"),
            ("unknown", "x"),
            ("group", "G"),
            ("topic", "T"),
            ("queueId", ""),
            ("timestamp", " 7 "),
            ("bname", ""),
        ]);
        let h = ResetOffsetRequestHeader::from_ext_fields(&m).unwrap();
        assert_eq!((h.group.as_str(), h.topic.as_str()), ("G", "T"));
        assert_eq!((h.queue_id, h.offset, h.timestamp), (-1, None, 7));
        assert!(h.is_force);
        assert_eq!(h.broker_name, None);
        let bad = |pairs: &[(&str, &str)]| {
            let mut m = m.clone();
            m.extend(pairs.iter().copied());
            ResetOffsetRequestHeader::from_ext_fields(&m)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            bad(&[("topic", "")]),
            "ResetOffsetRequestHeader: required field `topic` is missing"
        );
        assert_eq!(
            bad(&[("offset", "1x")]),
            "ResetOffsetRequestHeader: field `offset` has invalid value \"1x\": expected a 64-bit integer"
        );
    }

    #[test]
    fn field_text_is_read_without_surrounding_whitespace() {
        for (text, want) in [
            ("7", "7"),
            (" 7", "7"),
            ("7\t", "7"),
            ("\u{a0}7\u{2003}", "7"),
            ("7 7", "7 7"),
            ("", ""),
            (" ", ""),
            ("ü", "ü"),
        ] {
            assert_eq!(trimmed(text), want, "{text:?}");
        }
    }

    #[test]
    fn booleans_follow_java() {
        let m = map(&[("a", "TRUE"), ("b", "yes"), ("c", "")]);
        let r = FieldReader::new("H", &m);
        assert_eq!(r.opt_bool("a"), Some(true));
        assert_eq!(r.opt_bool("b"), Some(false));
        assert_eq!(r.opt_bool("c"), None);
        assert_eq!(r.opt_bool("d"), None);
    }
}
