//! Status codes and error objects: the C face of the core's `ErrorKind` and `Error`.
//!
//! Every fallible function returns an `sr_status` and, on failure, hands the caller an
//! `sr_error` through an out-parameter of the same call. There is no thread-local "last error":
//! Go moves goroutines between threads between two C calls.

use std::ffi::{c_char, CString};
use std::sync::LazyLock;

use sr_core::{Error, ErrorKind};

use crate::convert::sr_str;
use crate::panic::quietly;

/// The result of every fallible function: `SR_OK`, or one code per error kind of the core
/// (SPEC §8), in the order of the core's `ErrorKind::ALL`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_status {
    /// Success.
    SR_OK = 0,
    /// An argument broke its rule (NULL pointer, invalid UTF-8, bad identifier, bad TTL …);
    /// nothing was written.
    SR_INVALID_ARGUMENT = 1,
    /// A configuration value is out of range.
    SR_INVALID_CONFIG = 2,
    /// The namespace is valid but not the driver's local one.
    SR_NAMESPACE_NOT_LOCAL = 3,
    /// The service has no routable pod for a new user.
    SR_NO_AVAILABLE_POD = 4,
    /// The user is linked persistently to a pod that is not alive (see `sr_error_pod_index`).
    SR_POD_UNAVAILABLE = 5,
    /// The store cannot be reached.
    SR_STORE_UNAVAILABLE = 6,
    /// The store answered with an error or with data it should not hold.
    SR_STORE_ERROR = 7,
    /// A store call did not finish within its deadline.
    SR_TIMEOUT = 8,
    /// The driver is not started/initialised yet, or already stopped/closed.
    SR_CLOSED = 9,
    /// A bug in this library (including a caught panic).
    SR_INTERNAL = 10,
}

impl sr_status {
    /// The status of `kind`. `ErrorKind` is non-exhaustive: a kind added to the core but not
    /// here reads as `SR_INTERNAL` until this list (and the header) grow.
    pub(crate) fn of(kind: ErrorKind) -> sr_status {
        match kind {
            ErrorKind::InvalidArgument => sr_status::SR_INVALID_ARGUMENT,
            ErrorKind::InvalidConfig => sr_status::SR_INVALID_CONFIG,
            ErrorKind::NamespaceNotLocal => sr_status::SR_NAMESPACE_NOT_LOCAL,
            ErrorKind::NoAvailablePod => sr_status::SR_NO_AVAILABLE_POD,
            ErrorKind::PodUnavailable => sr_status::SR_POD_UNAVAILABLE,
            ErrorKind::StoreUnavailable => sr_status::SR_STORE_UNAVAILABLE,
            ErrorKind::StoreError => sr_status::SR_STORE_ERROR,
            ErrorKind::Timeout => sr_status::SR_TIMEOUT,
            ErrorKind::Closed => sr_status::SR_CLOSED,
            _ => sr_status::SR_INTERNAL,
        }
    }
}

/// An error reported by a failed call: its status code, a message that says what was wrong
/// and with which value, and, for `SR_POD_UNAVAILABLE`, the pod. Free it with `sr_error_free`.
#[derive(Debug)]
pub struct sr_error {
    status: sr_status,
    message: CString,
    pod: Option<u32>,
    /// The core's error, for an error a callback hands back to the library.
    core: Error,
}

impl From<Error> for sr_error {
    fn from(e: Error) -> Self {
        let text = e.to_string();
        sr_error {
            status: sr_status::of(e.kind()),
            message: c_string_lossy(text),
            pod: e.pod_index(),
            core: e,
        }
    }
}

impl sr_error {
    /// The core's error this object was made from.
    pub(crate) fn core(&self) -> &Error {
        &self.core
    }
}

/// The error kind of a status code a callback returned: its kind, or `Internal` for
/// `SR_INTERNAL` and for any value that is not an error code.
pub(crate) fn kind_of_status(status: i32) -> ErrorKind {
    usize::try_from(status)
        .ok()
        .and_then(|s| s.checked_sub(1))
        .and_then(|i| ErrorKind::ALL.get(i).copied())
        .unwrap_or(ErrorKind::Internal)
}

/// `s` as a C string; an interior NUL (never produced by the core, but possible in echoed
/// input) becomes U+FFFD.
pub(crate) fn c_string_lossy(s: String) -> CString {
    CString::new(s).unwrap_or_else(|e| {
        let fixed = String::from_utf8_lossy(&e.into_vec()).replace('\0', "\u{fffd}");
        CString::new(fixed).unwrap_or_default()
    })
}

/// The code's name without the `SR_` prefix: `"OK"`, `"NO_AVAILABLE_POD"`, … (the core's
/// `ErrorKind::as_str`, the word every binding shows), or `"UNKNOWN"` for a value that is not
/// a status code.
///
/// The returned string is static: never free it.
#[no_mangle]
pub extern "C" fn sr_status_name(status: i32) -> *const c_char {
    static NAMES: LazyLock<Vec<CString>> = LazyLock::new(|| {
        let names = ErrorKind::ALL.into_iter().map(ErrorKind::as_str);
        let all = std::iter::once("OK").chain(names).chain(["UNKNOWN"]);
        all.map(|n| c_string_lossy(n.to_string())).collect()
    });
    let unknown = ErrorKind::ALL.len() + 1;
    let i = usize::try_from(status).map_or(unknown, |i| i.min(unknown));
    quietly(c"UNKNOWN".as_ptr(), || NAMES[i].as_ptr())
}

/// The status code of `error`; `SR_INVALID_ARGUMENT` if `error` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sr_error_code(error: *const sr_error) -> sr_status {
    // SAFETY: the caller passes NULL or an error from this library that is not freed yet.
    match unsafe { error.as_ref() } {
        Some(e) => e.status,
        None => sr_status::SR_INVALID_ARGUMENT,
    }
}

/// The message of `error`, `"CODE: what was wrong"`, NUL-terminated UTF-8; `""` if `error`
/// is NULL.
///
/// The string is owned by `error` and valid until `sr_error_free(error)`: copy it to keep it.
#[no_mangle]
pub unsafe extern "C" fn sr_error_message(error: *const sr_error) -> *const c_char {
    // SAFETY: as in `sr_error_code`.
    match unsafe { error.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

/// For `SR_POD_UNAVAILABLE`: the pod the user is persistently linked to. -1 for every other
/// error and for NULL.
#[no_mangle]
pub unsafe extern "C" fn sr_error_pod_index(error: *const sr_error) -> i64 {
    // SAFETY: as in `sr_error_code`.
    match unsafe { error.as_ref() }.and_then(|e| e.pod) {
        Some(p) => p as i64,
        None => -1,
    }
}

/// Makes an error for a callback to hand back through its `sr_error **err_out` (the library
/// then owns and frees it): code `status` (a value that is not an error code, `SR_OK`
/// included, becomes `SR_INTERNAL`) and `message` (borrowed for the call;
/// invalid UTF-8 is replaced; NULL means no message). Never returns NULL. An error not handed
/// to the library is freed with `sr_error_free`.
#[no_mangle]
pub unsafe extern "C" fn sr_error_new(status: i32, message: sr_str) -> *mut sr_error {
    // SAFETY: the caller guarantees `message` is valid for its length.
    let text = unsafe { message.bytes() }
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let e = Error::new(kind_of_status(status), text.into_owned());
    Box::into_raw(Box::new(sr_error::from(e)))
}

/// Frees an error returned through an `sr_error **` out-parameter. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_error_free(error: *mut sr_error) {
    if !error.is_null() {
        // SAFETY: `error` came from `Box::into_raw` in this library and is freed once.
        drop(unsafe { Box::from_raw(error) });
    }
}

#[cfg(test)]
#[path = "../tests/unit/error.rs"]
mod tests;
