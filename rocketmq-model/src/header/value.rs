//! How one header field's value is read from and written to `extFields`.

use compact_str::CompactString;

use super::{FieldReader, FieldWriter};
use crate::error::Result;

/// A type that can be the value of one header field.
///
/// `read` returns `Ok(None)` when the key is absent (or empty, which Java reads
/// as null); the header macro turns that into a missing-field error for
/// required fields or a default for defaulted ones.
pub(crate) trait FieldValue: Sized {
    /// Reads the field, or `None` when absent.
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>>;

    /// Writes the field.
    fn write(&self, fields: &mut FieldWriter<'_>, key: &str);
}

impl FieldValue for String {
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        Ok(fields.opt_string(key))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: &str) {
        fields.put_str(key, self);
    }
}

impl FieldValue for CompactString {
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        Ok(fields.raw(key).map(CompactString::from))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: &str) {
        fields.put_str(key, self);
    }
}

impl FieldValue for i32 {
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        fields.opt_number(key)
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: &str) {
        fields.put_int(key, *self);
    }
}

impl FieldValue for i64 {
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        fields.opt_number(key)
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: &str) {
        fields.put_int(key, *self);
    }
}

impl FieldValue for bool {
    fn read(fields: &FieldReader<'_>, key: &'static str) -> Result<Option<Self>> {
        Ok(fields.opt_bool(key))
    }

    fn write(&self, fields: &mut FieldWriter<'_>, key: &str) {
        fields.put_bool(key, *self);
    }
}

/// Reads a field the protocol requires.
pub(crate) fn required<T: FieldValue>(fields: &FieldReader<'_>, key: &'static str) -> Result<T> {
    T::read(fields, key)?.ok_or_else(|| fields.missing(key))
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
