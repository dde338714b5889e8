//! [`FieldKey`]: a header field's wire key, known when the program is
//! compiled, with the JSON text that introduces its value made then too.
//!
//! A typed header writes a dozen fields a request. A JSON writer given a
//! key as plain text must look for characters to escape in it and write it
//! between quotes, piece by piece; given a `FieldKey`, it copies one
//! prepared run of text instead.

/// A header field's key as it travels on the wire, made by
/// [`field_key!`](crate::field_key) (or [`FieldKey::new`] in a constant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldKey {
    name: &'static str,
    /// `,"name":"`: what comes before the value in a JSON object of text
    /// values, after an earlier field.
    json_intro: &'static str,
}

impl FieldKey {
    /// The key `name`, whose JSON introduction `json_intro` must be exactly
    /// `,"` + `name` + `":"`. A name that JSON would have to escape, or an
    /// introduction that does not match, is refused: at compile time when
    /// the key is a constant, as [`field_key!`](crate::field_key) makes it.
    ///
    /// # Panics
    ///
    /// When `json_intro` is not the introduction of `name`, or `name` holds
    /// a quote, backslash or control character.
    pub const fn new(name: &'static str, json_intro: &'static str) -> Self {
        assert!(
            is_intro_of(name.as_bytes(), json_intro.as_bytes()),
            "a field key's JSON introduction is `,\"` + its name + `\":\"`, and its name needs no escape"
        );
        FieldKey { name, json_intro }
    }

    /// The key as it is written in the map of fields.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// What a JSON writer puts before this field's value: `"name":"`, with
    /// a comma before it unless the field is the `first` of its object.
    pub fn json_intro(&self, first: bool) -> &'static str {
        if first {
            // The comma is one byte, so this is a character boundary.
            self.json_intro.get(1..).unwrap_or(self.json_intro)
        } else {
            self.json_intro
        }
    }
}

/// Whether `intro` is `,"` + `name` + `":"` and `name` has no byte JSON
/// escapes.
const fn is_intro_of(name: &[u8], intro: &[u8]) -> bool {
    const HEAD: &[u8] = b",\"";
    const TAIL: &[u8] = b"\":\"";
    if intro.len() != HEAD.len() + name.len() + TAIL.len() {
        return false;
    }
    let mut i = 0;
    while i < intro.len() {
        let expected = if i < HEAD.len() {
            HEAD[i]
        } else if i < HEAD.len() + name.len() {
            let byte = name[i - HEAD.len()];
            if byte < 0x20 || byte == b'"' || byte == b'\\' {
                return false;
            }
            byte
        } else {
            TAIL[i - HEAD.len() - name.len()]
        };
        if intro[i] != expected {
            return false;
        }
        i += 1;
    }
    true
}

/// A [`FieldKey`] constant for the literal key `$name`, checked when the
/// program is compiled.
///
/// ```
/// use rocketmq_model::field_key;
///
/// let key = field_key!("queueId");
/// assert_eq!(key.name(), "queueId");
/// assert_eq!(key.json_intro(false), r#","queueId":""#);
/// assert_eq!(key.json_intro(true), r#""queueId":""#);
/// ```
#[macro_export]
macro_rules! field_key {
    ($name:literal) => {
        const { $crate::header::FieldKey::new($name, concat!(",\"", $name, "\":\"")) }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_introduction_must_match_its_name_and_need_no_escape() {
        assert!(is_intro_of(b"a", b",\"a\":\""));
        assert!(is_intro_of(b"", b",\"\":\""));
        for (name, intro) in [
            (&b"a"[..], &b",\"b\":\""[..]),
            (b"a", b"\"a\":\""),
            (b"a", b",\"a\":"),
            (b"a\"", b",\"a\"\":\""),
            (b"a\\", b",\"a\\\":\""),
            (b"a\x01", b",\"a\x01\":\""),
        ] {
            assert!(!is_intro_of(name, intro), "{name:?} {intro:?}");
        }
    }

    #[test]
    #[should_panic(expected = "needs no escape")]
    fn a_key_made_at_run_time_is_checked_too() {
        let name: &'static str = Box::leak(String::from("a\"b").into_boxed_str());
        let intro: &'static str = Box::leak(format!(",\"{name}\":\"").into_boxed_str());
        FieldKey::new(name, intro);
    }
}
