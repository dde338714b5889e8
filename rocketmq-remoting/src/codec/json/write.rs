//! Writes the JSON header straight into the frame buffer, byte for byte as
//! fastjson writes it: keys in alphabetical order, null fields left out, no
//! whitespace. Text without characters JSON must escape (nearly all header
//! text) is copied as it is. A typed header's fields are written as the header
//! gives them, never made into a map first.

use bytes::{BufMut, BytesMut};
use rocketmq_model::header::{FieldKey, FieldSink};

use super::special;
use crate::command::{RemotingCommand, SerializeType};

/// Room for the fields of a typed header, whose count is not known up front.
const TYPED_FIELDS: usize = 16;

/// Appends `cmd`'s header as JSON to `dst`.
pub(crate) fn write_header(cmd: &RemotingCommand, dst: &mut BytesMut) {
    let fields = match cmd.ext_fields.header() {
        Some(_) => TYPED_FIELDS,
        None => cmd.ext_fields.len(),
    };
    dst.reserve(128 + 48 * fields);
    dst.put_slice(b"{\"code\":");
    put_int(dst, cmd.code);
    let start = dst.len();
    dst.put_slice(b",\"extFields\":{");
    let mut sink = JsonFields { dst, written: 0 };
    cmd.ext_fields.write_to(&mut sink);
    if sink.written == 0 {
        dst.truncate(start);
    } else {
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

/// Writes extFields entries, `"key":"value"`, comma-separated.
struct JsonFields<'a> {
    dst: &'a mut BytesMut,
    written: usize,
}

impl JsonFields<'_> {
    /// Writes everything of a field up to its value's text: the comma
    /// before all but the first, the key, and the value's opening quote
    /// (extFields values are strings, numbers too). `room` is what the
    /// value will need.
    fn open(&mut self, key: &str, room: usize) {
        self.dst.reserve(key.len() + room + 8);
        if self.written != 0 {
            self.dst.put_u8(b',');
        }
        self.written += 1;
        self.dst.put_u8(b'"');
        // Keys are short: looked at byte by byte, not a word at a time.
        let key = key.as_bytes();
        match key.iter().position(|&b| special::is_special(b)) {
            None => self.dst.put_slice(key),
            Some(at) => put_escaped(self.dst, key, at),
        }
        self.dst.put_slice(b"\":\"");
    }
}

impl JsonFields<'_> {
    /// [`open`](Self::open) for a key known at compile time: its comma,
    /// quoted name and colon are one run of text, checked when it was made.
    fn open_at(&mut self, key: FieldKey, room: usize) {
        let intro = key.json_intro(self.written == 0).as_bytes();
        self.written += 1;
        self.dst.reserve(intro.len() + room + 2);
        self.dst.put_slice(intro);
    }
}

impl FieldSink for JsonFields<'_> {
    fn put_str(&mut self, key: &str, value: &str) {
        self.open(key, value.len());
        put_text(self.dst, value);
        self.dst.put_u8(b'"');
    }

    fn put_int(&mut self, key: &str, value: i64) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value).as_bytes();
        self.open(key, digits.len());
        self.dst.put_slice(digits);
        self.dst.put_u8(b'"');
    }

    fn put_str_at(&mut self, key: FieldKey, value: &str) {
        self.open_at(key, value.len());
        put_text(self.dst, value);
        self.dst.put_u8(b'"');
    }

    fn put_int_at(&mut self, key: FieldKey, value: i64) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(value).as_bytes();
        self.open_at(key, digits.len());
        self.dst.put_slice(digits);
        self.dst.put_u8(b'"');
    }
}

/// Writes `text` as a JSON string. Quote, backslash and control characters are
/// escaped (the common ones by their short forms, the rest as `\u00XX`);
/// everything else, non-ASCII included, is written as UTF-8.
fn put_str(dst: &mut BytesMut, text: &str) {
    dst.reserve(text.len() + 2);
    dst.put_u8(b'"');
    put_text(dst, text);
    dst.put_u8(b'"');
}

/// Writes the inside of a JSON string (see [`put_str`]). Small enough to
/// inline: header text (keys above all) rarely needs an escape.
#[inline]
fn put_text(dst: &mut BytesMut, text: &str) {
    let bytes = text.as_bytes();
    match special::find(bytes) {
        None => dst.put_slice(bytes),
        Some(at) => put_escaped(dst, bytes, at),
    }
}

/// Writes `bytes`, whose first byte to escape is at `at`, escaping every
/// such byte.
#[inline(never)]
fn put_escaped(dst: &mut BytesMut, mut bytes: &[u8], mut at: usize) {
    loop {
        dst.put_slice(&bytes[..at]);
        let byte = bytes[at];
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
        bytes = &bytes[at + 1..];
        match special::find(bytes) {
            Some(next) => at = next,
            None => break,
        }
    }
    dst.put_slice(bytes);
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
