//! How one header field's value is read from and written to `extFields`.

use compact_str::CompactString;

use super::{FieldKey, FieldReader, FieldWriter};
use crate::error::Result;

/// A type that can be the value of one header field.
///
/// Reading returns `Ok(None)` when the key is absent (or empty, which Java
/// reads as null); the header macro turns that into a missing-field error for
/// required fields or a default for defaulted ones.
pub(crate) trait FieldValue: Sized {
    /// Parses the field from its text, `None` when absent or empty; `fields`
    /// and `key` name it in errors.
    fn parse(
        fields: &FieldReader<'_>,
        key: &'static str,
        text: Option<&str>,
    ) -> Result<Option<Self>>;

    /// Looks the field up by `key` and parses it.
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        Self::parse(fields, key, fields.raw(key))
    }

    /// Writes the field.
    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey);
}

impl FieldValue for String {
    fn parse(_: &FieldReader<'_>, _: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        Ok(text.map(str::to_owned))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_str_at(key, self);
    }
}

impl FieldValue for CompactString {
    fn parse(_: &FieldReader<'_>, _: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        Ok(text.map(CompactString::from))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_str_at(key, self);
    }
}

impl FieldValue for i32 {
    fn parse(f: &FieldReader<'_>, key: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        f.parse_number(key, text)
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_int_at(key, *self);
    }
}

impl FieldValue for i64 {
    fn parse(f: &FieldReader<'_>, key: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        f.parse_number(key, text)
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_int_at(key, *self);
    }
}

impl FieldValue for bool {
    fn parse(_: &FieldReader<'_>, _: &'static str, text: Option<&str>) -> Result<Option<Self>> {
        Ok(text.map(FieldReader::parse_bool))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: FieldKey) {
        fields.put_bool_at(key, *self);
    }
}

/// Reads a field the protocol requires.
pub(crate) fn required<T: FieldValue>(fields: &FieldReader<'_>, key: &'static str) -> Result<T> {
    parse_required(fields, key, fields.raw(key))
}

/// Parses a field the protocol requires from its text.
pub(crate) fn parse_required<T: FieldValue>(
    fields: &FieldReader<'_>,
    key: &'static str,
    text: Option<&str>,
) -> Result<T> {
    T::parse(fields, key, text)?.ok_or_else(|| fields.missing(key))
}

/// Strategies for property tests: any value that survives an `extFields` round
/// trip (strings are non-empty, because Java reads an empty value as null).
#[cfg(test)]
pub(crate) mod arbitrary {
    use proptest::prelude::*;

    /// A strategy for one field value.
    pub(crate) trait ArbitraryField: Sized + std::fmt::Debug {
        fn strategy() -> BoxedStrategy<Self>;
    }

    impl ArbitraryField for String {
        fn strategy() -> BoxedStrategy<Self> {
            // Includes the properties separators and non-ASCII text.
            "[a-zA-Z0-9_%|: .\u{1}\u{2}é中-]{1,24}".boxed()
        }
    }

    impl ArbitraryField for i32 {
        fn strategy() -> BoxedStrategy<Self> {
            any::<i32>().boxed()
        }
    }

    impl ArbitraryField for i64 {
        fn strategy() -> BoxedStrategy<Self> {
            any::<i64>().boxed()
        }
    }

    impl ArbitraryField for bool {
        fn strategy() -> BoxedStrategy<Self> {
            any::<bool>().boxed()
        }
    }

    impl<T: ArbitraryField + 'static> ArbitraryField for Option<T> {
        fn strategy() -> BoxedStrategy<Self> {
            proptest::option::of(T::strategy()).boxed()
        }
    }
}
