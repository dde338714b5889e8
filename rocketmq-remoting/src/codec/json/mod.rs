//! The JSON header (PROTOCOL.md §2.2), the Java default.
//!
//! Written like fastjson writes it: keys in alphabetical order, null fields
//! omitted, the language as its enum name, and `serializeTypeCurrentRPC` always
//! present (the Rust servers on crates.io drop a connection without it). The
//! header is written straight from the command into the output buffer
//! ([`write`]).
//!
//! Read tolerantly: any key order, unknown keys, missing or `null` remark and
//! extFields, a language given by name or number, and extFields values that are
//! numbers or booleans (kept as their text).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use rocketmq_model::ExtFields;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::command::{LanguageCode, RemotingCommand, SerializeType};
use crate::error::{RemotingError, Result};

mod scan;
mod special;
mod write;

pub(crate) use write::write_header;

/// The header as read. Only `code` is required; fastjson would default it to 0,
/// but a header without a code is not a remoting command.
#[derive(Deserialize)]
struct HeaderIn {
    code: i32,
    #[serde(rename = "extFields", default)]
    ext_fields: Option<ExtFieldsIn>,
    #[serde(default)]
    flag: i32,
    #[serde(default)]
    language: Option<LanguageIn>,
    #[serde(default)]
    opaque: i32,
    #[serde(default)]
    remark: Option<String>,
    #[serde(default)]
    version: i32,
}

/// Reads a JSON header. The body and serialize type are left for the caller.
///
/// Headers in the usual shape take a fast path ([`scan`]); serde_json reads
/// the rest and names the fault in a bad one.
pub(crate) fn read_header(header: &[u8]) -> Result<RemotingCommand> {
    match scan::read_header(header) {
        Some(cmd) => Ok(cmd),
        None => read_header_with_serde(header),
    }
}

/// Reads any valid JSON header, tolerantly (see the module documentation).
fn read_header_with_serde(header: &[u8]) -> Result<RemotingCommand> {
    let h: HeaderIn = serde_json::from_slice(header)
        .map_err(|e| RemotingError::MalformedFrame(format!("JSON header: {e}")))?;
    Ok(RemotingCommand {
        code: h.code,
        // A missing language keeps Java's field default.
        language: h.language.map_or(LanguageCode::JAVA, |l| l.0),
        version: h.version,
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark,
        ext_fields: h.ext_fields.map(|f| f.0).unwrap_or_default(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// A language by name (an unknown name reads as OTHER) or by number.
struct LanguageIn(LanguageCode);

impl<'de> Deserialize<'de> for LanguageIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(LanguageVisitor)
    }
}

struct LanguageVisitor;

impl Visitor<'_> for LanguageVisitor {
    type Value = LanguageIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a language name or code")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> std::result::Result<LanguageIn, E> {
        Ok(LanguageIn(
            LanguageCode::from_name(name).unwrap_or(LanguageCode::OTHER),
        ))
    }

    fn visit_u64<E: de::Error>(self, code: u64) -> std::result::Result<LanguageIn, E> {
        Ok(LanguageIn(
            u8::try_from(code).map_or(LanguageCode::OTHER, LanguageCode),
        ))
    }

    fn visit_i64<E: de::Error>(self, code: i64) -> std::result::Result<LanguageIn, E> {
        Ok(LanguageIn(
            u8::try_from(code).map_or(LanguageCode::OTHER, LanguageCode),
        ))
    }
}

/// extFields with tolerant values: strings as they are, numbers and booleans as
/// their text, `null` as absent.
struct ExtFieldsIn(ExtFields);

impl<'de> Deserialize<'de> for ExtFieldsIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(ExtFieldsVisitor)
    }
}

struct ExtFieldsVisitor;

/// Room made up front for a header's fields: enough for any header the
/// protocol defines, so reading one never grows the table.
const EXPECTED_FIELDS: usize = 16;

impl<'de> Visitor<'de> for ExtFieldsVisitor {
    type Value = ExtFieldsIn;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<ExtFieldsIn, A::Error> {
        // No size hint: the entry count is not trusted input for an allocation.
        let mut fields = ExtFields::with_capacity(EXPECTED_FIELDS);
        // Keys and values are borrowed from the frame when they have no escapes,
        // and short ones are stored inline: most fields cost no allocation.
        while let Some(ExtValue(key)) = map.next_key::<ExtValue<'de>>()? {
            let value = map.next_value::<ExtValue<'de>>()?.0;
            if let (Some(key), Some(value)) = (key, value) {
                fields.insert(key, value);
            }
        }
        Ok(ExtFieldsIn(fields))
    }
}

/// One extFields value as text, or `None` for `null`.
struct ExtValue<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for ExtValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ExtValueVisitor)
    }
}

struct ExtValueVisitor;

impl<'de> Visitor<'de> for ExtValueVisitor {
    type Value = ExtValue<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number, boolean or null")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(v))))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Borrowed(if v {
            "true"
        } else {
            "false"
        }))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(None))
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Ok(ExtValue(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rocketmq_model::RequestCode;

    fn read(json: &str) -> RemotingCommand {
        read_header(json.as_bytes()).unwrap()
    }

    #[test]
    fn writes_the_protocol_example() {
        let mut cmd = RemotingCommand::request(RequestCode::GET_ROUTEINFO_BY_TOPIC);
        cmd.language = LanguageCode::JAVA;
        cmd.opaque = 1;
        cmd.ext_fields.insert("topic", "T");
        let mut dst = BytesMut::new();
        write_header(&cmd, &mut dst);
        assert_eq!(
            std::str::from_utf8(&dst).unwrap(),
            r#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#
        );
    }

    #[test]
    fn writes_remark_and_control_characters_escaped() {
        let mut cmd = RemotingCommand::request(RequestCode::SEND_MESSAGE).with_remark("r\"");
        cmd.ext_fields.insert("p", "a\u{1}b\u{2}");
        let mut dst = BytesMut::new();
        write_header(&cmd, &mut dst);
        let text = std::str::from_utf8(&dst).unwrap();
        assert!(
            text.contains(r#""extFields":{"p":"a\u0001b\u0002"}"#),
            "{text}"
        );
        assert!(text.contains(r#""language":"RUST""#), "{text}");
        assert!(text.contains(r#""remark":"r\"""#), "{text}");
    }

    #[test]
    fn unknown_language_is_written_as_a_number_and_read_back() {
        let mut cmd = RemotingCommand::request(RequestCode::HEART_BEAT);
        cmd.language = LanguageCode(42);
        let mut dst = BytesMut::new();
        write_header(&cmd, &mut dst);
        assert!(
            std::str::from_utf8(&dst)
                .unwrap()
                .contains(r#""language":42,"#)
        );
        assert_eq!(
            read_header(&dst.freeze()).unwrap().language,
            LanguageCode(42)
        );
    }

    #[test]
    fn reads_go_style_headers_in_any_order() {
        let cmd = read(
            r#"{"version":317,"opaque":-5,"flag":1,"language":"GO","code":0,"remark":null,"unknown":[1,{"x":2}]}"#,
        );
        assert_eq!(cmd.code, 0);
        assert_eq!(cmd.language, LanguageCode::GO);
        assert_eq!((cmd.version, cmd.opaque, cmd.flag), (317, -5, 1));
        assert_eq!(cmd.remark, None);
        assert!(cmd.ext_fields.is_empty());
    }

    #[test]
    fn tolerates_odd_languages_and_values() {
        let cmd = read(
            r#"{"code":1,"language":"COBOL","extFields":{"n":12,"b":true,"f":1.5,"z":null,"s":"x\u0001"}}"#,
        );
        assert_eq!(cmd.language, LanguageCode::OTHER);
        assert_eq!(cmd.ext_fields["n"], "12");
        assert_eq!(cmd.ext_fields["b"], "true");
        assert_eq!(cmd.ext_fields["f"], "1.5");
        assert_eq!(cmd.ext_fields["s"], "x\u{1}");
        assert!(!cmd.ext_fields.contains_key("z"));
        assert_eq!(
            read(r#"{"code":1,"language":9}"#).language,
            LanguageCode::GO
        );
        assert_eq!(read(r#"{"code":1,"extFields":null}"#).ext_fields.len(), 0);
    }

    #[test]
    fn rejects_what_is_not_a_header() {
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"code":"x"}"#,
            r#"{"code":4294967296}"#,
            r#"{"code":1,"extFields":{"a":[1]}}"#,
            r#"{"code":1"#,
        ] {
            let err = read_header(bad.as_bytes()).unwrap_err();
            assert!(
                matches!(err, RemotingError::MalformedFrame(_)),
                "{bad}: {err}"
            );
        }
    }
}
