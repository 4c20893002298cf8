//! Unit tests of `src/error.rs` (kept out of src/ so that binding-lines counts code only).

use std::ffi::CStr;

use super::*;

#[test]
fn status_codes_follow_error_kind_all() {
    for (i, kind) in ErrorKind::ALL.into_iter().enumerate() {
        let status = sr_status::of(kind);
        assert_eq!(status as i32, i as i32 + 1, "{kind}");
        // SAFETY: sr_status_name returns a static C string.
        let name = unsafe { CStr::from_ptr(sr_status_name(status as i32)) };
        assert_eq!(name.to_str().unwrap(), kind.as_str());
    }
    assert_eq!(ErrorKind::ALL.len(), sr_status::SR_INTERNAL as usize);
}

#[test]
fn callback_statuses_map_to_kinds() {
    assert_eq!(kind_of_status(4), ErrorKind::NoAvailablePod);
    assert_eq!(kind_of_status(10), ErrorKind::Internal);
    for bad in [0, -1, 11, i32::MAX] {
        assert_eq!(kind_of_status(bad), ErrorKind::Internal);
    }
}

#[test]
fn interior_nul_is_replaced() {
    assert_eq!(
        c_string_lossy("a\0b".into()).to_str().unwrap(),
        "a\u{fffd}b"
    );
}
