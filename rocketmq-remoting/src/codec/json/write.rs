//! Writes the JSON header straight into the frame buffer, byte for byte as
//! fastjson writes it: keys in alphabetical order, null fields left out, no
//! whitespace. Text without characters JSON must escape (nearly all header
//! text) is copied as it is.

use bytes::{BufMut, BytesMut};

use super::special;
use crate::command::{RemotingCommand, SerializeType};

/// Appends `cmd`'s header as JSON to `dst`.
pub(crate) fn write_header(cmd: &RemotingCommand, dst: &mut BytesMut) {
    dst.reserve(128 + 48 * cmd.ext_fields.len());
    dst.put_slice(b"{\"code\":");
    put_int(dst, cmd.code);
    if !cmd.ext_fields.is_empty() {
        dst.put_slice(b",\"extFields\":{");
        for (i, (key, value)) in cmd.ext_fields.iter().enumerate() {
            if i > 0 {
                dst.put_u8(b',');
            }
            put_str(dst, key);
            dst.put_u8(b':');
            put_str(dst, value);
        }
        dst.put_u8(b'}');
    }
    dst.put_slice(b",\"flag\":");
    put_int(dst, cmd.flag);
    dst.put_slice(b",\"language\":");
    // By its Java enum name, or by number when it has none (fastjson reads an
    // enum from its ordinal too).
    match cmd.language.name() {
        Some(name) => put_str(dst, name),
        None => put_int(dst, i32::from(cmd.language.0)),
    }
    dst.put_slice(b",\"opaque\":");
    put_int(dst, cmd.opaque);
    if let Some(remark) = &cmd.remark {
        dst.put_slice(b",\"remark\":");
        put_str(dst, remark);
    }
    dst.put_slice(b",\"serializeTypeCurrentRPC\":");
    put_str(dst, SerializeType::Json.name());
    dst.put_slice(b",\"version\":");
    put_int(dst, cmd.version);
    dst.put_u8(b'}');
}

fn put_int(dst: &mut BytesMut, value: i32) {
    dst.put_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes `text` as a JSON string. Quote, backslash and control characters are
/// escaped (the common ones by their short forms, the rest as `\u00XX`);
/// everything else, non-ASCII included, is written as UTF-8.
fn put_str(dst: &mut BytesMut, text: &str) {
    let mut rest = text.as_bytes();
    dst.reserve(rest.len() + 2);
    dst.put_u8(b'"');
    while let Some(at) = special::find(rest) {
        dst.put_slice(&rest[..at]);
        let byte = rest[at];
        match byte {
            b'"' => dst.put_slice(b"\\\""),
            b'\\' => dst.put_slice(b"\\\\"),
            b'\n' => dst.put_slice(b"\\n"),
            b'\r' => dst.put_slice(b"\\r"),
            b'\t' => dst.put_slice(b"\\t"),
            0x08 => dst.put_slice(b"\\b"),
            0x0C => dst.put_slice(b"\\f"),
            _ => dst.put_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0F)],
            ]),
        }
        rest = &rest[at + 1..];
    }
    dst.put_slice(rest);
    dst.put_u8(b'"');
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(text: &str) -> String {
        let mut dst = BytesMut::new();
        put_str(&mut dst, text);
        String::from_utf8(dst.to_vec()).unwrap()
    }

    #[test]
    fn escapes_what_json_requires() {
        assert_eq!(written("plain"), r#""plain""#);
        assert_eq!(
            written("q\"b\\n\nr\rt\tb\u{8}f\u{c}"),
            r#""q\"b\\n\nr\rt\tb\bf\f""#
        );
        assert_eq!(
            written("KEYS\u{1}k\u{2}\u{1f}"),
            r#""KEYS\u0001k\u0002\u001f""#
        );
        assert_eq!(written("ü€😀\u{7f}/"), "\"ü€😀\u{7f}/\"");
    }

    proptest! {
        /// Whatever the text, serde_json reads back exactly what was written.
        #[test]
        fn any_text_reads_back(text in any::<String>()) {
            let json = written(&text);
            prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text.clone());
            prop_assert_eq!(json, serde_json::to_string(&text).unwrap());
        }
    }
}
