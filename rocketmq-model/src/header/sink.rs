//! Where a header's fields go when it is written: [`FieldSink`].
//!
//! A typed header writes each field once, through a [`FieldWriter`], into a
//! sink. The usual sink is an [`ExtFields`] map; a codec is another, writing
//! the fields straight into a frame, so a request header never becomes a map
//! of strings on its way out ([`ExtFields::from_header`]).

use std::panic::{RefUnwindSafe, UnwindSafe};

use compact_str::{CompactString, ToCompactString};

use super::{CommandHeader, ExtFields, FieldKey, FieldWriter};

/// Receives a header's fields, keyed as on the wire. Numbers come as numbers,
/// for the sink to format (Java writes them in decimal).
pub trait FieldSink {
    /// A text field.
    fn put_str(&mut self, key: &str, value: &str);

    /// A text field the writer no longer needs, so a sink may keep its buffer.
    fn put_owned(&mut self, key: &str, value: CompactString) {
        self.put_str(key, &value);
    }

    /// An integer field.
    fn put_int(&mut self, key: &str, value: i64);

    /// A text field under a key known at compile time, which a sink may
    /// write from what the key has prepared ([`FieldKey::json_intro`]).
    fn put_str_at(&mut self, key: FieldKey, value: &str) {
        self.put_str(key.name(), value);
    }

    /// An integer field under a key known at compile time.
    fn put_int_at(&mut self, key: FieldKey, value: i64) {
        self.put_int(key.name(), value);
    }
}

impl FieldSink for ExtFields {
    fn put_str(&mut self, key: &str, value: &str) {
        self.insert(key, value);
    }

    fn put_owned(&mut self, key: &str, value: CompactString) {
        self.insert(key, value);
    }

    fn put_int(&mut self, key: &str, value: i64) {
        // compact_str formats a plain integer in place, without `fmt`.
        self.insert(key, value.to_compact_string());
    }
}

/// A typed header behind a pointer: what [`ExtFields::from_header`] keeps until
/// the fields are read or written. Every [`CommandHeader`] of plain data (that
/// can cross threads and unwinding, as a map of text can) is one.
pub trait DynHeader: Send + Sync + RefUnwindSafe + UnwindSafe + 'static {
    /// The header's name (its [`CommandHeader::NAME`]).
    fn name(&self) -> &'static str;

    /// Writes every present field, as [`CommandHeader::write_fields`].
    fn write_to(&self, fields: &mut FieldWriter<'_>);
}

impl<H: CommandHeader + Send + Sync + RefUnwindSafe + UnwindSafe + 'static> DynHeader for H {
    fn name(&self) -> &'static str {
        H::NAME
    }

    fn write_to(&self, fields: &mut FieldWriter<'_>) {
        self.write_fields(fields);
    }
}
