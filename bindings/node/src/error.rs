//! The core's `Error` as a JS `Error` whose `code` is the core's `ErrorKind::as_str()`
//! (`'NO_AVAILABLE_POD'` …) and whose `message` is the core's message.
//!
//! Synchronous methods throw through napi's `Error<Code>`; Promise rejections are built on the
//! JS thread by [`js_error`], which also sets `podIndex` on `POD_UNAVAILABLE`. Nothing here
//! decides anything: the kind comes from the core, one to one.

use napi::{sys, JsError};
use stateful_route::{Error, ErrorKind};

/// The `code` property of a thrown error: one of the core's error codes.
#[derive(Debug, Clone, Copy)]
pub struct Code(&'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<napi::Status> for Code {
    /// napi's own failures (a value napi could not convert) are bad arguments.
    fn from(_: napi::Status) -> Self {
        Code(ErrorKind::InvalidArgument.as_str())
    }
}

/// What synchronous methods return: thrown as an `Error` with `.code`.
pub type Result<T> = std::result::Result<T, napi::Error<Code>>;

/// Longest message handed to JS, in bytes: a rejected megabyte-long identifier must not come
/// back as a megabyte-long message.
const MAX_MESSAGE: usize = 1024;

/// The core's message, cut at [`MAX_MESSAGE`] bytes (on a character boundary).
fn message(e: &Error) -> String {
    let m = e.message();
    if m.len() <= MAX_MESSAGE {
        return m.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &m[..end], m.len())
}

/// The core's error as a napi error with the core's code.
pub fn thrown(e: Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.kind().as_str()), message(&e))
}

/// An `INVALID_ARGUMENT` / `INVALID_CONFIG` error made by the binding while converting a value.
pub fn invalid(kind: ErrorKind, field: &str, rule: impl std::fmt::Display) -> Error {
    let what = if kind == ErrorKind::InvalidConfig {
        "invalid config"
    } else {
        "invalid"
    };
    Error::new(kind, format!("{what} {field}: {rule}"))
}

/// `stateful_route::Result` → a thrown JS error.
pub trait OrThrow<T> {
    /// Converts the error (if any) into the JS error with the core's code.
    fn or_throw(self) -> Result<T>;
}

impl<T> OrThrow<T> for stateful_route::Result<T> {
    fn or_throw(self) -> Result<T> {
        self.map_err(thrown)
    }
}

/// A JS `Error` with `.code`, and `.podIndex` when the error names a pod: the rejection value
/// of a Promise. Called on the JS thread with a live `env`.
pub fn js_error(env: sys::napi_env, e: Error) -> sys::napi_value {
    let pod = e.pod_index();
    // SAFETY: the caller's live env, on its JS thread.
    let err = unsafe { JsError::from(thrown(e)).into_value(env) };
    if let Some(pod) = pod {
        let mut value = std::ptr::null_mut();
        // SAFETY: as above; `err` is an object created just now.
        unsafe {
            sys::napi_create_uint32(env, pod, &mut value);
            sys::napi_set_named_property(env, err, c"podIndex".as_ptr(), value);
        }
    }
    err
}
