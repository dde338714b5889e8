//! `command_header!`: declares a header struct and its `extFields` mapping from
//! one table of (field, wire key, kind), so the key of a field is written once.
//!
//! Field kinds:
//! - `req`: required (`@CFNotNull` in Java); absent reads as `MissingField`.
//! - `opt`: optional; the Rust type is `Option<T>` and `None` is not written.
//! - `default(v)`: a Java field with an initial value (or a primitive): always
//!   written, and read as `v` when absent.

macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $kind:ident $(($default:expr))? $field:ident : $ty:ty = $key:literal;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: command_header!(@type $kind $ty),
            )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: command_header!(@default $kind $($default)?),)*
                }
            }
        }

        impl $crate::header::CommandHeader for $name {
            const NAME: &'static str = stringify!($name);

            fn write_fields(&self, fields: &mut $crate::header::FieldWriter<'_>) {
                $(command_header!(@write $kind, fields, &self.$field, $key);)*
            }

            fn read_fields(fields: &$crate::header::FieldReader<'_>) -> $crate::Result<Self> {
                // One pass over the map, each key matched against the
                // header's keys, rather than a search of the map per field.
                $(let mut $field = None;)*
                for (key, text) in fields.present() {
                    match key {
                        $($key => $field = Some(text),)*
                        _ => {}
                    }
                }
                Ok($name {
                    $($field: command_header!(@read $kind $(($default))?, fields, $ty, $key, $field),)*
                })
            }
        }

        #[cfg(test)]
        impl proptest::arbitrary::Arbitrary for $name {
            type Parameters = ();
            type Strategy = proptest::strategy::BoxedStrategy<Self>;

            fn arbitrary_with(_: ()) -> Self::Strategy {
                use proptest::strategy::Strategy as _;
                use $crate::header::value::arbitrary::ArbitraryField;
                nest_tuple!($(<command_header!(@type $kind $ty) as ArbitraryField>::strategy()),*)
                    .prop_map(|nest_tuple!(@pat $($field),*)| $name { $($field),* })
                    .boxed()
            }
        }
    };

    (@type opt $ty:ty) => { Option<$ty> };
    (@type $kind:ident $ty:ty) => { $ty };

    (@default req) => { Default::default() };
    (@default opt) => { None };
    (@default default $value:expr) => { $value };

    (@write opt, $fields:ident, $value:expr, $key:literal) => {
        if let Some(value) = $value {
            $crate::header::value::FieldValue::write(value, $fields, $crate::field_key!($key));
        }
    };
    (@write $kind:ident, $fields:ident, $value:expr, $key:literal) => {
        $crate::header::value::FieldValue::write($value, $fields, $crate::field_key!($key))
    };

    (@read req, $fields:ident, $ty:ty, $key:literal, $text:ident) => {
        $crate::header::value::parse_required::<$ty>($fields, $key, $text)?
    };
    (@read opt, $fields:ident, $ty:ty, $key:literal, $text:ident) => {
        <$ty as $crate::header::value::FieldValue>::parse($fields, $key, $text)?
    };
    (@read default($value:expr), $fields:ident, $ty:ty, $key:literal, $text:ident) => {
        <$ty as $crate::header::value::FieldValue>::parse($fields, $key, $text)?.unwrap_or($value)
    };
}

/// Nests a list as right-leaning pairs, `(a, (b, (c, ())))`, in expression or
/// pattern position: proptest tuples stop at 12 elements, pairs never do.
#[cfg(test)]
macro_rules! nest_tuple {
    (@pat) => { () };
    (@pat $head:ident $(, $tail:ident)*) => { ($head, nest_tuple!(@pat $($tail),*)) };
    () => { proptest::strategy::Just(()) };
    ($head:expr $(, $tail:expr)*) => { ($head, nest_tuple!($($tail),*)) };
}
