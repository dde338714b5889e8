//! The non-standard JSON that Java brokers and name servers write (PROTOCOL.md
//! §7): fastjson writes maps with non-`String` keys with bare keys, numbers as
//! `{0:"addr"}` and objects as `{{"brokerName":"b","queueId":0,"topic":"t"}:5}`.
//!
//! Reading: [`quote_bare_integer_keys`] turns the first form into standard JSON;
//! [`parse_lenient`] accepts any value as an object key (rendering a non-string
//! key as its compact JSON text) and returns a standard [`Value`]. Both also
//! accept standard JSON unchanged. Writing: [`JavaJsonWriter`] writes objects in
//! fastjson's sorted-key order and maps keyed by [`MessageQueue`] with raw
//! object keys, as Java admin tools expect.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::error::{ModelError, Result};
use crate::queue::MessageQueue;

/// Nesting limit of [`parse_lenient`] (serde_json's own limit is 128 too).
const MAX_DEPTH: usize = 128;

/// Quotes bare integer object keys: outside strings, right after `{` or `,`
/// (and optional whitespace), a `-?[0-9]+` followed by optional whitespace and
/// `:` is wrapped in quotes (§7.1). Standard JSON comes back borrowed.
pub fn quote_bare_integer_keys(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut expect_key = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match c {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else if c == b'"' {
            in_string = true;
            expect_key = false;
        } else if c == b'{' || c == b',' {
            expect_key = true;
        } else if expect_key && (c == b'-' || c.is_ascii_digit()) {
            expect_key = false;
            if let Some(end) = bare_integer_key_end(bytes, i) {
                let out = out.get_or_insert_with(|| String::with_capacity(json.len() + 16));
                out.push_str(&json[copied..i]);
                out.push('"');
                out.push_str(&json[i..end]);
                out.push('"');
                copied = end;
                i = end;
                continue;
            }
        } else if !c.is_ascii_whitespace() {
            expect_key = false;
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut out) => {
            out.push_str(&json[copied..]);
            Cow::Owned(out)
        }
    }
}

/// If `bytes[start..]` is `-?[0-9]+` followed by optional whitespace and `:`,
/// the end of the digits.
fn bare_integer_key_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut end = start + usize::from(bytes[start] == b'-');
    let digits_start = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    let mut colon = end;
    while colon < bytes.len() && bytes[colon].is_ascii_whitespace() {
        colon += 1;
    }
    (colon < bytes.len() && bytes[colon] == b':').then_some(end)
}

/// Parses strict JSON, or failing that the same text with bare integer keys
/// quoted: the decode path for bodies whose only quirk is numeric map keys.
pub fn decode_quoting_integer_keys<T: DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T> {
    expect_object(what, bytes)?;
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(strict_error) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ModelError::malformed(what, "body is not UTF-8"))?;
            match quote_bare_integer_keys(text) {
                Cow::Borrowed(_) => Err(json_error(what, strict_error)),
                Cow::Owned(quoted) => {
                    serde_json::from_str(&quoted).map_err(|e| json_error(what, e))
                }
            }
        }
    }
}

/// Parses fastjson output, where an object key may be any JSON value, into a
/// standard [`Value`]. A non-string key becomes its compact JSON text (`0` →
/// `"0"`, an object → `"{\"brokerName\":…}"` with sorted keys), so
/// [`parse_message_queue_key`] can read it back. Standard JSON parses as usual.
pub fn parse_lenient(what: &'static str, bytes: &[u8]) -> Result<Value> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ModelError::malformed(what, "body is not UTF-8"))?;
    let mut parser = LenientParser { what, text, pos: 0 };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos != text.len() {
        return Err(parser.error("trailing characters after the JSON value"));
    }
    Ok(value)
}

/// Parses fastjson output leniently (see [`parse_lenient`]) into `T`.
pub fn decode_lenient<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    expect_object(what, bytes)?;
    let value = parse_lenient(what, bytes)?;
    serde_json::from_value(value).map_err(|e| json_error(what, e))
}

/// Parses a standard JSON object into `T`.
pub(crate) fn decode_standard<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    expect_object(what, bytes)?;
    serde_json::from_slice(bytes).map_err(|e| json_error(what, e))
}

/// Every body is a JSON object; serde would also read a struct from an array.
fn expect_object(what: &'static str, bytes: &[u8]) -> Result<()> {
    match bytes.iter().find(|c| !c.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err(ModelError::malformed(what, "body is not a JSON object")),
    }
}

pub(crate) fn json_error(what: &'static str, source: serde_json::Error) -> ModelError {
    ModelError::Json { what, source }
}

/// A recursive-descent JSON parser that accepts any value as an object key.
struct LenientParser<'a> {
    what: &'static str,
    text: &'a str,
    pos: usize,
}

impl LenientParser<'_> {
    fn error(&self, reason: &str) -> ModelError {
        ModelError::malformed(self.what, format!("{reason} at byte {}", self.pos))
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        self.skip_whitespace();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", char::from(byte))))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.skip_whitespace();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number().map(Value::Number),
            Some(_) => Err(self.error("unexpected character")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn string(&mut self) -> Result<String> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut end = start + 1;
        loop {
            match bytes.get(end) {
                None => return Err(self.error("unterminated string")),
                Some(b'\\') => end += 2,
                Some(b'"') => break,
                Some(_) => end += 1,
            }
        }
        let token = &self.text[start..=end];
        let string = serde_json::from_str(token).map_err(|e| json_error(self.what, e))?;
        self.pos = end + 1;
        Ok(string)
    }

    fn number(&mut self) -> Result<Number> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut end = start;
        while bytes
            .get(end)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            end += 1;
        }
        let token = &self.text[start..end];
        let number = if token.contains(['.', 'e', 'E']) {
            // std's float parser rounds correctly; serde_json's default one
            // may be off by one ulp.
            check_json_number(token)
                .and_then(|()| token.parse::<f64>().ok())
                .and_then(Number::from_f64)
        } else {
            token.parse::<Number>().ok()
        };
        let number = number.ok_or_else(|| self.error("invalid number"))?;
        self.pos = end;
        Ok(number)
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value> {
        self.pos += 1;
        let mut map = Map::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            let key = self.key(depth + 1)?;
            self.expect(b':')?;
            let value = self.value(depth + 1)?;
            map.insert(key, value);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// An object key: a string as usual, any other value as its JSON text.
    fn key(&mut self, depth: usize) -> Result<String> {
        self.skip_whitespace();
        if self.peek() == Some(b'"') {
            return self.string();
        }
        match self.value(depth)? {
            Value::String(key) => Ok(key),
            other => Ok(other.to_string()),
        }
    }
}

/// Checks a float token against JSON's grammar, which is stricter than
/// Rust's (`1.`, `.5`, `+1` and `01.5` are not JSON).
fn check_json_number(token: &str) -> Option<()> {
    let rest = token.strip_prefix('-').unwrap_or(token);
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let int_ok = digits(int) && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(digits);
    let exp_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    (int_ok && frac_ok && exp_ok).then_some(())
}

/// Reads a map key that stands for a [`MessageQueue`]: the JSON text of a
/// MessageQueue object (what [`parse_lenient`] makes of a raw object key, or a
/// quoted one), or Java's `MessageQueue [topic=t, brokerName=b, queueId=0]`.
pub fn parse_message_queue_key(key: &str) -> Option<MessageQueue> {
    let key = key.trim();
    if key.starts_with('{') {
        return serde_json::from_str(key).ok();
    }
    let inner = key.strip_prefix("MessageQueue [")?.strip_suffix(']')?;
    let mut topic = None;
    let mut broker_name = None;
    let mut queue_id = None;
    for part in inner.split(", ") {
        let (name, value) = part.split_once('=')?;
        match name {
            "topic" => topic = Some(value),
            "brokerName" => broker_name = Some(value),
            "queueId" => queue_id = value.parse().ok(),
            _ => {}
        }
    }
    Some(MessageQueue::new(topic?, broker_name?, queue_id?))
}

/// Serde `deserialize_with` for maps keyed by [`MessageQueue`], over a
/// [`Value`] produced by [`parse_lenient`].
pub(crate) fn mq_keyed_map<'de, D, V>(
    deserializer: D,
) -> Result<BTreeMap<MessageQueue, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    let raw = Option::<BTreeMap<String, V>>::deserialize(deserializer)?.unwrap_or_default();
    raw.into_iter()
        .map(|(key, value)| match parse_message_queue_key(&key) {
            Some(mq) => Ok((mq, value)),
            None => Err(serde::de::Error::custom(format!(
                "map key {key:?} is not a MessageQueue"
            ))),
        })
        .collect()
}

/// Writes one JSON object the way fastjson does: fields in the order given
/// (callers give them sorted), and [`MessageQueue`]-keyed maps with raw object
/// keys.
pub struct JavaJsonWriter {
    what: &'static str,
    out: Vec<u8>,
    first: bool,
}

impl JavaJsonWriter {
    /// Starts an object; `what` names the body in errors.
    pub fn new(what: &'static str) -> Self {
        JavaJsonWriter {
            what,
            out: vec![b'{'],
            first: true,
        }
    }

    fn key(&mut self, key: &str) -> Result<()> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.value(key)?;
        self.out.push(b':');
        Ok(())
    }

    /// Writes a field with a standard JSON value.
    pub fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<()> {
        self.key(key)?;
        self.value(value)
    }

    /// Writes a field only when present (fastjson omits nulls).
    pub fn opt_field<T: Serialize>(&mut self, key: &str, value: Option<&T>) -> Result<()> {
        match value {
            Some(value) => self.field(key, value),
            None => Ok(()),
        }
    }

    /// Writes a map keyed by [`MessageQueue`] with raw object keys:
    /// `{{"brokerName":"b","queueId":0,"topic":"t"}:…}`.
    pub fn mq_map_field<V: Serialize>(
        &mut self,
        key: &str,
        map: &BTreeMap<MessageQueue, V>,
    ) -> Result<()> {
        self.key(key)?;
        self.mq_map(map)
    }

    /// Writes a string-keyed map of [`MessageQueue`]-keyed maps.
    pub fn nested_mq_map_field<V: Serialize>(
        &mut self,
        key: &str,
        maps: &BTreeMap<String, BTreeMap<MessageQueue, V>>,
    ) -> Result<()> {
        self.key(key)?;
        self.out.push(b'{');
        for (i, (outer, map)) in maps.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.value(outer)?;
            self.out.push(b':');
            self.mq_map(map)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    fn mq_map<V: Serialize>(&mut self, map: &BTreeMap<MessageQueue, V>) -> Result<()> {
        self.out.push(b'{');
        for (i, (mq, value)) in map.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.value(mq)?;
            self.out.push(b':');
            self.value(value)?;
        }
        self.out.push(b'}');
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(|e| json_error(self.what, e))
    }

    /// Closes the object and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_bare_integer_keys_only_outside_strings() {
        let input = r#"{"brokerAddrs":{0:"a:1", -1 :"b:2",12:"x"},"s":"{3:4}","list":[1,2]}"#;
        assert_eq!(
            quote_bare_integer_keys(input),
            r#"{"brokerAddrs":{"0":"a:1", "-1" :"b:2","12":"x"},"s":"{3:4}","list":[1,2]}"#
        );
        let standard = r#"{"a":{"0":"x"},"b":"\"{1:2}"}"#;
        assert!(matches!(
            quote_bare_integer_keys(standard),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn lenient_parser_reads_object_and_number_keys() {
        let input = br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"t"}:5, 7 : true},"x":[1.5,null,"\u00e9"]}"#;
        let value = parse_lenient("test", input).unwrap();
        let table = value["offsetTable"].as_object().unwrap();
        assert_eq!(table[r#"{"brokerName":"b","queueId":0,"topic":"t"}"#], 5);
        assert_eq!(table["7"], true);
        assert_eq!(value["x"][2], "é");
    }

    #[test]
    fn lenient_parser_rejects_garbage() {
        for input in [
            &b"{"[..],
            b"{\"a\":}",
            b"[1,]",
            b"{\"a\":1} x",
            b"\"abc",
            b"tru",
            b"\xff",
            b"",
        ] {
            let err = parse_lenient("test", input).unwrap_err();
            assert!(
                matches!(err, ModelError::Malformed { .. } | ModelError::Json { .. }),
                "{input:?}: {err}"
            );
        }
        let deep = "[".repeat(10_000);
        assert!(parse_lenient("test", deep.as_bytes()).is_err());
        let deep_keys = "{".repeat(10_000);
        assert!(parse_lenient("test", deep_keys.as_bytes()).is_err());
    }

    #[test]
    fn message_queue_keys_in_every_form() {
        let mq = MessageQueue::new("t", "b", 3);
        assert_eq!(
            parse_message_queue_key(r#"{"brokerName":"b","queueId":3,"topic":"t"}"#),
            Some(mq.clone())
        );
        assert_eq!(
            parse_message_queue_key("MessageQueue [topic=t, brokerName=b, queueId=3]"),
            Some(mq)
        );
        assert_eq!(parse_message_queue_key("t@b#3"), None);
        assert_eq!(parse_message_queue_key("MessageQueue [topic=t]"), None);
    }

    #[test]
    fn floats_parse_exactly_and_follow_json_grammar() {
        let value = parse_lenient("test", b"[-967102982931.4915, 1e3, 0.5e-2]").unwrap();
        assert_eq!(value[0].as_f64(), Some(-967_102_982_931.491_5));
        assert_eq!(value[1].as_f64(), Some(1000.0));
        assert_eq!(value[2].as_f64(), Some(0.005));
        for bad in [
            "[1.]", "[01.5]", "[1e]", "[1.5.5]", "[--1.0]", "[1e+]", "[1-2]",
        ] {
            assert!(parse_lenient("test", bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn writer_emits_raw_object_keys() {
        let mut map = BTreeMap::new();
        map.insert(MessageQueue::new("t", "b", 0), 5_i64);
        let mut writer = JavaJsonWriter::new("test");
        writer.field("a", &1).unwrap();
        writer.mq_map_field("m", &map).unwrap();
        writer.opt_field::<String>("z", None).unwrap();
        let bytes = writer.finish();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            r#"{"a":1,"m":{{"brokerName":"b","queueId":0,"topic":"t"}:5}}"#
        );
        assert!(serde_json::from_slice::<Value>(&bytes).is_err());
        assert!(parse_lenient("test", &bytes).is_ok());
    }

    proptest! {
        #[test]
        fn tolerant_readers_never_panic(input in "\\PC{0,64}") {
            let _ = quote_bare_integer_keys(&input);
            let _ = parse_lenient("test", input.as_bytes());
            let _ = parse_message_queue_key(&input);
        }

        #[test]
        fn lenient_parser_never_panics_on_bytes(input in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_lenient("test", &input);
            let _ = decode_quoting_integer_keys::<Value>("test", &input);
        }

        #[test]
        fn tolerant_readers_never_panic_on_json_like_text(input in "[{}\\[\\]\":,0-9a-z\\\\ -]{0,64}") {
            let _ = quote_bare_integer_keys(&input);
            let _ = parse_lenient("test", input.as_bytes());
        }

        #[test]
        fn lenient_parser_agrees_with_serde_on_standard_json(value in json_value()) {
            let text = serde_json::to_vec(&value).unwrap();
            prop_assert_eq!(parse_lenient("test", &text).unwrap(), value);
            let quoted = quote_bare_integer_keys(std::str::from_utf8(&text).unwrap());
            prop_assert!(matches!(quoted, Cow::Borrowed(_)));
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[0-9a-z{}:,\" -]{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
