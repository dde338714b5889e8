//! A fast reader for headers in the shape Java (fastjson), Go and this crate
//! write: one flat object of the known keys, text values, integers. It declines
//! anything else (unknown keys, non-text extFields values, duplicates, numbers
//! it cannot take exactly, broken escapes), and the caller reads the header
//! with serde_json instead, which accepts every valid header and names the
//! error in a bad one. So this path may only be faster, never different: a
//! property test holds it to serde's answer on arbitrary input.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use rocketmq_model::ExtFields;
use rocketmq_model::header::FieldsInText;

use super::special;
use crate::command::{LanguageCode, RemotingCommand, SerializeType};

/// Reads `header`, or `None` when it is not in the shape this reader takes.
/// The extFields are read in place ([`FieldsInText`]) unless a key or value
/// has an escape.
pub(super) fn read_header(header: &[u8]) -> Option<RemotingCommand> {
    // Checked once here, the text can be cut at any quote without checking the
    // pieces again. Bad UTF-8 is an error in any JSON, so serde refuses it too.
    let text = std::str::from_utf8(header).ok()?;
    let mut scan = Scanner {
        text,
        bytes: header,
        pos: 0,
    };
    let mut cmd = RemotingCommand {
        code: 0,
        language: LanguageCode::JAVA,
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext_fields: ExtFields::new(),
        body: Bytes::new(),
        serialize_type: SerializeType::Json,
    };
    let mut seen = Seen::default();
    let mut expected = 0;
    scan.byte(b'{')?;
    loop {
        let key = match scan.expected_key(&mut expected) {
            Some(key) => key,
            None => {
                let name = scan.text()?;
                scan.byte(b':')?;
                Key::named(&name)?
            }
        };
        match key {
            Key::Code => cmd.code = seen.first(Seen::CODE, scan.int()?)?,
            Key::Flag => cmd.flag = seen.first(Seen::FLAG, scan.int()?)?,
            Key::Opaque => cmd.opaque = seen.first(Seen::OPAQUE, scan.int()?)?,
            Key::Version => cmd.version = seen.first(Seen::VERSION, scan.int()?)?,
            Key::Language => cmd.language = seen.first(Seen::LANGUAGE, scan.language()?)?,
            Key::Remark => {
                let remark = if scan.null() {
                    None
                } else {
                    Some(scan.text()?.into_owned())
                };
                cmd.remark = seen.first(Seen::REMARK, remark)?;
            }
            Key::ExtFields => {
                let fields = if scan.null() {
                    ExtFields::new()
                } else {
                    scan.fields()?
                };
                cmd.ext_fields = seen.first(Seen::EXT_FIELDS, fields)?;
            }
            // Not a field of the command: the reader learns the type from the frame.
            Key::SerializeType => {
                scan.text()?;
            }
        }
        if !scan.byte_or(b',', b'}')? {
            break;
        }
    }
    scan.skip_space();
    (seen.has(Seen::CODE) && scan.pos == header.len()).then_some(cmd)
}

/// A key of the command's header.
#[derive(Clone, Copy)]
enum Key {
    Code,
    ExtFields,
    Flag,
    Language,
    Opaque,
    Remark,
    SerializeType,
    Version,
}

/// The keys in the order fastjson (and this crate) writes them, each from
/// its opening quote to the colon after it.
const KEYS_IN_ORDER: [(&[u8], Key); 8] = [
    (b"\"code\":", Key::Code),
    (b"\"extFields\":", Key::ExtFields),
    (b"\"flag\":", Key::Flag),
    (b"\"language\":", Key::Language),
    (b"\"opaque\":", Key::Opaque),
    (b"\"remark\":", Key::Remark),
    (b"\"serializeTypeCurrentRPC\":", Key::SerializeType),
    (b"\"version\":", Key::Version),
];

impl Key {
    /// The key named `name`; `None` for a key the command does not have.
    fn named(name: &str) -> Option<Key> {
        KEYS_IN_ORDER
            .iter()
            .find(|(quoted, _)| quoted.get(1..quoted.len() - 2) == Some(name.as_bytes()))
            .map(|&(_, key)| key)
    }
}

/// Which of the command's keys have been read (each may appear once).
#[derive(Default)]
struct Seen(u8);

impl Seen {
    const CODE: u8 = 1;
    const FLAG: u8 = 1 << 1;
    const OPAQUE: u8 = 1 << 2;
    const VERSION: u8 = 1 << 3;
    const LANGUAGE: u8 = 1 << 4;
    const REMARK: u8 = 1 << 5;
    const EXT_FIELDS: u8 = 1 << 6;

    /// `value`, unless `key` was read before.
    fn first<T>(&mut self, key: u8, value: T) -> Option<T> {
        if self.has(key) {
            return None;
        }
        self.0 |= key;
        Some(value)
    }

    fn has(&self, key: u8) -> bool {
        self.0 & key != 0
    }
}

/// Whether `rest` starts with `quoted`, a quoted key of 4 to 32 bytes,
/// compared a word at a time: a call to `memcmp` costs more than these
/// short comparisons do.
fn starts_with_key(rest: &[u8], quoted: &[u8]) -> bool {
    let Some(head) = rest.get(..quoted.len()) else {
        return false;
    };
    let len = quoted.len();
    let word =
        |text: &[u8], at: usize| -> Option<[u8; 4]> { text.get(at..at + 4)?.try_into().ok() };
    let mut at = 0;
    // Four bytes at a time, the last four overlapping the ones before.
    while at + 4 < len {
        if word(head, at) != word(quoted, at) {
            return false;
        }
        at += 4;
    }
    match len.checked_sub(4) {
        Some(last) => word(head, last) == word(quoted, last),
        None => head == quoted,
    }
}

struct Scanner<'a> {
    /// The header; `bytes` is the same, as bytes.
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// A JSON string as read: where it lies in the header when it is the same
/// text there, or the text its escapes stand for.
enum Piece {
    Plain(Range<usize>),
    Escaped(String),
}

impl<'a> Scanner<'a> {
    fn skip_space(&mut self) {
        // Headers as peers write them have no whitespace: one comparison
        // says so (every JSON whitespace byte is at or below a space).
        if self.bytes.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Consumes `expected` after any whitespace.
    fn byte(&mut self, expected: u8) -> Option<()> {
        self.skip_space();
        (self.bytes.get(self.pos) == Some(&expected)).then(|| self.pos += 1)
    }

    /// Consumes `more` (true) or `end` (false) after any whitespace.
    fn byte_or(&mut self, more: u8, end: u8) -> Option<bool> {
        self.skip_space();
        let next = *self.bytes.get(self.pos)?;
        self.pos += 1;
        match next {
            b if b == more => Some(true),
            b if b == end => Some(false),
            _ => None,
        }
    }

    /// The key at the cursor, with its colon, if it is one of the keys that
    /// can come next in fastjson's order (from `KEYS_IN_ORDER[*expected]` on;
    /// remark and extFields may be left out). Matching the quoted key whole
    /// spares reading it as a string; `None` leaves the cursor where it was.
    fn expected_key(&mut self, expected: &mut usize) -> Option<Key> {
        let rest = self.bytes.get(self.pos..)?;
        let (at, &(quoted, key)) = KEYS_IN_ORDER
            .iter()
            .enumerate()
            .skip(*expected)
            .take(2)
            .find(|(_, (quoted, _))| starts_with_key(rest, quoted))?;
        self.pos += quoted.len();
        *expected = at + 1;
        Some(key)
    }

    /// Consumes `null` if it comes next.
    fn null(&mut self) -> bool {
        self.skip_space();
        let found = self.bytes[self.pos..].starts_with(b"null");
        if found {
            self.pos += 4;
        }
        found
    }

    /// A string: borrowed from the header when it has no escapes.
    fn text(&mut self) -> Option<Cow<'a, str>> {
        let piece = self.string()?;
        self.piece_text(piece)
    }

    fn piece_text(&self, piece: Piece) -> Option<Cow<'a, str>> {
        match piece {
            // Both ends sit next to ASCII quotes, so on character boundaries.
            Piece::Plain(range) => self.text.get(range).map(Cow::Borrowed),
            Piece::Escaped(text) => Some(Cow::Owned(text)),
        }
    }

    /// A string, as where it lies when it has no escapes.
    #[inline]
    fn string(&mut self) -> Option<Piece> {
        self.byte(b'"')?;
        let start = self.pos;
        let end = start + self.plain_run(start)?;
        if self.bytes[end] == b'"' {
            self.pos = end + 1;
            return Some(Piece::Plain(start..end));
        }
        self.escaped_text(start, end).map(Piece::Escaped)
    }

    /// The rest of a string that has an escape (or a control character) at
    /// `end`, `start..end` being plain: rare in headers, so kept out of
    /// [`string`](Self::string)'s way.
    #[cold]
    fn escaped_text(&mut self, start: usize, end: usize) -> Option<String> {
        let mut text = Vec::with_capacity(end - start + 16);
        text.extend_from_slice(&self.bytes[start..end]);
        self.pos = end;
        loop {
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return String::from_utf8(text).ok();
                }
                b'\\' => self.escape(&mut text)?,
                _ => return None, // a control character, which JSON forbids
            }
            let run = self.plain_run(self.pos)?;
            text.extend_from_slice(&self.bytes[self.pos..self.pos + run]);
            self.pos += run;
        }
    }

    /// How many bytes from `from` need no attention (not a quote, backslash or
    /// control character); `None` when the text never ends.
    fn plain_run(&self, from: usize) -> Option<usize> {
        special::find(&self.bytes[from..])
    }

    /// Decodes the escape at the cursor into `text`.
    fn escape(&mut self, text: &mut Vec<u8>) -> Option<()> {
        let kind = *self.bytes.get(self.pos + 1)?;
        self.pos += 2;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4()?;
                let scalar = match unit {
                    // A surrogate pair: the low half must follow at once.
                    0xD800..=0xDBFF => {
                        if self.bytes.get(self.pos..self.pos + 2)? != b"\\u" {
                            return None;
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return None;
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return None,
                    _ => unit,
                };
                let c = char::from_u32(scalar)?;
                text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                return Some(());
            }
            _ => return None,
        };
        text.push(byte);
        Some(())
    }

    /// Four hex digits.
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(unit)
    }

    /// An integer in JSON's form that fits an `i32`.
    fn int(&mut self) -> Option<i32> {
        self.skip_space();
        let bytes = self.bytes;
        let negative = bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let mut end = start;
        let mut magnitude = 0i64;
        // At most 10 digits (more cannot fit), read as they are counted.
        while let Some(&digit) = bytes.get(end).filter(|b| b.is_ascii_digit()) {
            if end - start == 10 {
                return None;
            }
            magnitude = magnitude * 10 + i64::from(digit - b'0');
            end += 1;
        }
        // No leading zeros; a fraction or exponent next would make it
        // another number.
        let digits = end - start;
        if digits == 0 || (digits > 1 && bytes[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = bytes.get(end) {
            return None;
        }
        // serde_json reads `-0` as a float, which no integer field takes.
        if negative && magnitude == 0 {
            return None;
        }
        self.pos = end;
        i32::try_from(if negative { -magnitude } else { magnitude }).ok()
    }

    /// A language by name (an unknown name is OTHER) or by number.
    fn language(&mut self) -> Option<LanguageCode> {
        self.skip_space();
        if self.bytes.get(self.pos) == Some(&b'"') {
            let name = self.text()?;
            return Some(LanguageCode::from_name(&name).unwrap_or(LanguageCode::OTHER));
        }
        let code = self.int()?;
        Some(u8::try_from(code).map_or(LanguageCode::OTHER, LanguageCode))
    }

    /// An object of text values, kept where they are in the header unless
    /// they have escapes.
    fn fields(&mut self) -> Option<ExtFields> {
        self.byte(b'{')?;
        self.skip_space();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Some(ExtFields::new());
        }
        let mut fields = FieldsInText::new(self.text);
        loop {
            let key = self.string()?;
            self.byte(b':')?;
            let value = self.string()?;
            match (key, value) {
                (Piece::Plain(key), Piece::Plain(value)) => {
                    if !fields.push(key, value) {
                        return None;
                    }
                }
                (key, value) => fields.insert(self.piece_text(key)?, self.piece_text(value)?),
            }
            if !self.byte_or(b',', b'}')? {
                return Some(fields.finish());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::read_header_with_serde;
    use super::*;

    /// A send response as the Java broker writes it.
    const SEND_RESPONSE: &str = r#"{"code":0,"extFields":{"msgId":"7F00000100002A9F0000000000012345","queueId":"1","queueOffset":"12345","MSG_REGION":"DefaultRegion","TRACE_ON":"true"},"flag":1,"language":"JAVA","opaque":42,"serializeTypeCurrentRPC":"JSON","version":453}"#;

    #[test]
    fn takes_the_usual_shapes() {
        let cmd = read_header(SEND_RESPONSE.as_bytes()).expect("the fast path takes it");
        assert_eq!(
            (cmd.code, cmd.flag, cmd.opaque, cmd.version),
            (0, 1, 42, 453)
        );
        assert_eq!(cmd.language, LanguageCode::JAVA);
        assert_eq!(cmd.ext_fields.get("queueOffset"), Some("12345"));
        assert_eq!(cmd.ext_fields.len(), 5);
        for usual in [
            r#"{"code":105,"extFields":{"topic":"T"},"flag":0,"language":"JAVA","opaque":1,"serializeTypeCurrentRPC":"JSON","version":479}"#,
            r#"{ "code" : -1 , "language" : 9, "remark" : "no route", "extFields" : null }"#,
            r#"{"code":17,"remark":null,"extFields":{},"opaque":-2147483648,"flag":2147483647}"#,
            r#"{"code":0,"language":"COBOL"}"#,
            r#"{"code":10,"extFields":{"i":"KEYS\u0001k\u0002","q":"\"\\\/\b\f\n\r\t","e":"\u00fc\u20AC\ud83d\ude00"}}"#,
        ] {
            let fast = read_header(usual.as_bytes()).unwrap_or_else(|| panic!("declined {usual}"));
            assert_eq!(
                fast,
                read_header_with_serde(usual.as_bytes()).unwrap(),
                "{usual}"
            );
        }
    }

    #[test]
    fn declines_what_it_does_not_take() {
        for other in [
            "",
            "{}",
            r#"{"flag":1}"#,
            r#"{"code":1,"code":2}"#,
            r#"{"code":01}"#,
            r#"{"code":-0}"#,
            r#"{"code":1,"language":-0}"#,
            r#"{"code":1.0}"#,
            r#"{"code":2147483648}"#,
            r#"{"code":1,"extFields":{"n":12}}"#,
            r#"{"code":1,"extFields":{"p":"a\x"}}"#,
            r#"{"code":1,"extFields":{"p":"\ud800"}}"#,
            r#"{"code":1,"extFields":{"p":"\udc00\ud800"}}"#,
            r#"{"code":1,"extFields":{"p":"\ud800\u0041"}}"#,
            r#"{"code":1,"extFields":{"p":"\u12"}}"#,
            r#"{"code":1,"remark":"tab	inside"}"#,
            r#"{"code":1,"unknown":[1]}"#,
            r#"{"code":1} x"#,
            r#"{"code":1"#,
        ] {
            assert_eq!(read_header(other.as_bytes()), None, "{other}");
        }
    }

    /// Prints a header the way a peer might: its keys once each, in
    /// fastjson's order or any other, with or without spaces, text with and
    /// without escapes.
    fn header_text() -> impl Strategy<Value = String> {
        let text = || "[a-zA-Z0-9_ \u{1}\u{2}\u{1f}\"\\\\/\t\nü€😀]{0,12}";
        let quoted = |t: String| serde_json::to_string(&t).unwrap();
        let language = prop_oneof![
            text().prop_map(move |t| format!(r#""language":{}"#, quoted(t))),
            any::<i16>().prop_map(|n| format!(r#""language":{n}"#)),
        ];
        let remark = prop_oneof![
            text().prop_map(move |t| format!(r#""remark":{}"#, quoted(t))),
            Just(r#""remark":null"#.to_owned()),
        ];
        let ext_fields = proptest::collection::vec((text(), text()), 0..6).prop_map(move |pairs| {
            let body: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| format!("{}:{}", quoted(k), quoted(v)))
                .collect();
            format!(r#""extFields":{{{}}}"#, body.join(","))
        });
        (
            any::<i32>(),
            proptest::option::of(any::<[i32; 3]>()),
            proptest::option::of(language),
            proptest::option::of(remark),
            proptest::option::of(ext_fields),
            " {0,2}",
        )
            .prop_flat_map(|(code, numbers, language, remark, ext_fields, space)| {
                let mut fields = vec![format!(r#""code":{code}"#)];
                if let Some([flag, opaque, version]) = numbers {
                    fields.push(format!(r#""flag":{flag}"#));
                    fields.push(format!(r#""opaque":{opaque}"#));
                    fields.push(format!(r#""version":{version}"#));
                }
                fields.extend(language);
                fields.extend(remark);
                fields.extend(ext_fields);
                fields.push(r#""serializeTypeCurrentRPC":"JSON""#.to_owned());
                // Half in fastjson's order (sorted keys), half in any order.
                (Just(fields).prop_shuffle(), any::<bool>()).prop_map(
                    move |(mut fields, sorted)| {
                        if sorted {
                            fields.sort();
                        }
                        format!("{space}{{{}}}", fields.join(&format!("{space},{space}")))
                    },
                )
            })
    }

    proptest! {
        /// Headers in the usual shape: the fast path takes them, as serde reads them.
        #[test]
        fn agrees_with_serde_on_headers(text in header_text()) {
            let fast = read_header(text.as_bytes());
            prop_assert!(fast.is_some(), "declined {}", text);
            prop_assert_eq!(fast, read_header_with_serde(text.as_bytes()).ok());
        }

        /// extFields with many fields (past the in-place limit of 32), keys
        /// repeated (the later value wins), and keys and values plain or
        /// written with escapes, in any mix: read as serde reads them.
        #[test]
        fn agrees_with_serde_on_many_repeated_and_escaped_fields(
            fields in proptest::collection::vec(
                ("[a-g\"ü]{0,2}", any::<bool>(), "[a-z0-9\"ü]{0,4}", any::<bool>()),
                0..80,
            )
        ) {
            // A string written plain, or with every character as \uXXXX.
            let quoted = |text: &str, escaped: bool| {
                if escaped {
                    let units: String = text
                        .encode_utf16()
                        .map(|unit| format!("\\u{unit:04x}"))
                        .collect();
                    format!("\"{units}\"")
                } else {
                    serde_json::to_string(text).unwrap()
                }
            };
            let body: Vec<String> = fields
                .iter()
                .map(|(key, key_escaped, value, value_escaped)| {
                    format!("{}:{}", quoted(key, *key_escaped), quoted(value, *value_escaped))
                })
                .collect();
            let text = format!(r#"{{"code":0,"extFields":{{{}}},"flag":1}}"#, body.join(","));
            let fast = read_header(text.as_bytes());
            prop_assert!(fast.is_some(), "declined {}", text);
            let fast = fast.unwrap();
            let slow = read_header_with_serde(text.as_bytes()).unwrap();
            prop_assert_eq!(&fast, &slow);
            prop_assert_eq!(fast.ext_fields.iter().count(), slow.ext_fields.len());
            for (key, value) in slow.ext_fields.iter() {
                prop_assert_eq!(fast.ext_fields.get(key), Some(value));
                prop_assert_eq!(fast.ext_fields[key].as_str(), value);
            }
        }

        /// Key matching agrees with `starts_with`, whatever follows and
        /// whatever is damaged.
        #[test]
        fn matches_keys_as_starts_with_does(
            key in 0..KEYS_IN_ORDER.len(),
            rest in proptest::collection::vec(any::<u8>(), 0..40),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            damage in any::<bool>(),
        ) {
            let quoted = KEYS_IN_ORDER[key].0;
            let mut text = quoted.to_vec();
            text.extend_from_slice(&rest);
            if damage {
                text[at.index(quoted.len())] = byte;
            }
            for cut in [0, 1, quoted.len() - 1, quoted.len(), text.len()] {
                let text = &text[..cut.min(text.len())];
                prop_assert_eq!(starts_with_key(text, quoted), text.starts_with(quoted));
            }
        }

        /// Damaged headers: the same, whatever the damage.
        #[test]
        fn agrees_with_serde_on_damage(
            text in header_text(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                if cut { bytes.truncate(at) } else { bytes[at] = byte }
            }
            if let Some(fast) = read_header(&bytes) {
                prop_assert_eq!(Some(fast), read_header_with_serde(&bytes).ok());
            }
        }

        /// Arbitrary bytes never make it panic, and it never disagrees.
        #[test]
        fn agrees_with_serde_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(fast) = read_header(&bytes) {
                prop_assert_eq!(Some(fast), read_header_with_serde(&bytes).ok());
            }
        }
    }
}
