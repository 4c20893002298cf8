//! Forwarding the core's log events to a C callback (the core's `log::set_log_sink`).
//!
//! One callback per process. It runs on whatever thread logged: the library's runtime
//! threads, or a caller's thread inside a blocking call.

use std::ffi::c_void;

use sr_core::log::LogRecord;
use sr_core::{Error, ErrorKind};

use crate::client::{sr_release_callback, UserCallback};
use crate::convert::{invalid, sr_str};
use crate::error::{c_string_lossy, sr_error, sr_status};
use crate::panic::boundary;

/// Severity of a log record; a sink set for a level receives that level and the more severe.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_log_level {
    /// Something failed.
    SR_LOG_ERROR = 1,
    /// Something looks wrong (a failed periodic publish, an unparsable pod state).
    SR_LOG_WARN = 2,
    /// Lifecycle events (pod started/stopped, routing-state changes, connects).
    SR_LOG_INFO = 3,
    /// Per-operation detail (placements, publishes).
    SR_LOG_DEBUG = 4,
    /// Everything.
    SR_LOG_TRACE = 5,
}

/// One log record, valid only during the callback. Strings are UTF-8 and also NUL-terminated.
#[repr(C)]
#[derive(Debug)]
pub struct sr_log_record {
    /// Its severity.
    pub level: sr_log_level,
    /// The module that logged, e.g. `stateful_route::server`.
    pub target: sr_str,
    /// The message followed by its fields as `key=value`.
    pub message: sr_str,
}

/// Receives log records. Called from any thread (the library's runtime threads included),
/// possibly from many at once; it must return quickly and must not call into the library.
pub type sr_log_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, record: *const sr_log_record)>;

type LogCallback = UserCallback<unsafe extern "C" fn(*mut c_void, *const sr_log_record)>;

impl LogCallback {
    fn log(&self, r: &LogRecord) {
        let level = match r.level {
            "ERROR" => sr_log_level::SR_LOG_ERROR,
            "WARN" => sr_log_level::SR_LOG_WARN,
            "INFO" => sr_log_level::SR_LOG_INFO,
            "DEBUG" => sr_log_level::SR_LOG_DEBUG,
            _ => sr_log_level::SR_LOG_TRACE,
        };
        let target = c_string_lossy(r.target.clone());
        let message = c_string_lossy(r.message.clone());
        let record = sr_log_record {
            level,
            target: sr_str::of_c(&target),
            message: sr_str::of_c(&message),
        };
        // SAFETY: the caller registered a callback that accepts its user data and a record
        // valid for the duration of the call.
        unsafe { (self.call)(self.user_data, &record) };
    }
}

/// Sends the library's log records at `max_level` (one of `sr_log_level`) and more severe to
/// `callback`, replacing any callback set before (whose release callback then runs once no
/// call of it is running).
///
/// - `callback`: required. `release`: optional (may be NULL); called once with `user_data`
///   when `callback` will never run again, from any thread.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL callback, unknown level; `release` is then not
/// called), `SR_INTERNAL` (another `tracing` subscriber owns the process, e.g. a Rust host
/// program installed one; nothing is forwarded).
#[no_mangle]
pub unsafe extern "C" fn sr_set_log_callback(
    max_level: i32,
    callback: sr_log_callback,
    release: sr_release_callback,
    user_data: *mut c_void,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: `err_out` is NULL or valid, as the caller guarantees.
    unsafe {
        boundary(err_out, || {
            use tracing::Level;
            let levels = [
                Level::ERROR,
                Level::WARN,
                Level::INFO,
                Level::DEBUG,
                Level::TRACE,
            ];
            let level = usize::try_from(max_level)
                .ok()
                .and_then(|l| levels.get(l.wrapping_sub(1)));
            let level = *level.ok_or_else(|| {
                invalid(
                    "max_level",
                    &format!("{max_level} is not one of sr_log_level"),
                )
            })?;
            let call = callback.ok_or_else(|| invalid("callback", "is NULL"))?;
            let cb = LogCallback {
                call,
                release,
                user_data,
            };
            if sr_core::log::set_log_sink(level, move |r| cb.log(r)) {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::Internal,
                    "another tracing subscriber is installed in this process; logs are not forwarded",
                ))
            }
        })
    }
}

/// Stops forwarding logs; the callback's release callback runs once no call of it is
/// running. Does nothing if no callback is set.
#[no_mangle]
pub extern "C" fn sr_clear_log_callback() {
    crate::panic::quietly((), sr_core::log::clear_log_sink);
}
