//! The message of a caught panic, for an error or a remark.

use std::any::Any;

/// What `panic!` was given, if it was text; else "a panic".
pub(crate) fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_panics_give_their_message_and_others_a_placeholder() {
        let caught = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        assert_eq!(panic_text(&*caught(|| panic!("plain"))), "plain");
        assert_eq!(
            panic_text(&*caught(|| panic!("formatted {}", 7))),
            "formatted 7"
        );
        assert_eq!(
            panic_text(&*caught(|| std::panic::panic_any(7_u8))),
            "a panic"
        );
    }
}
