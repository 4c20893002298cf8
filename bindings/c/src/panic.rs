//! The boundary every exported function runs inside: errors become a status code plus an
//! `sr_error` out-parameter, panics become `SR_INTERNAL`, and blocking waits go to the core's
//! one runtime. Nothing here may unwind or abort into C.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use sr_core::{Error, ErrorKind, Result};

use crate::error::{sr_error, sr_status};

/// Runs `f`, catching panics. Clears `*err_out` first (when given) and, on failure, stores a
/// new `sr_error` there.
///
/// # Safety
/// `err_out` is NULL or valid for writes.
pub(crate) unsafe fn boundary(
    err_out: *mut *mut sr_error,
    f: impl FnOnce() -> Result<()>,
) -> sr_status {
    if !err_out.is_null() {
        // SAFETY: the caller guarantees `err_out` is valid for writes.
        unsafe { *err_out = ptr::null_mut() };
    }
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panicked(p)));
    match result {
        Ok(()) => sr_status::SR_OK,
        Err(e) => {
            let status = sr_status::of(e.kind());
            if !err_out.is_null() {
                let boxed = catch_unwind(AssertUnwindSafe(|| {
                    Box::into_raw(Box::new(sr_error::from(e)))
                }));
                // SAFETY: as above.
                unsafe { *err_out = boxed.unwrap_or(ptr::null_mut()) };
            }
            status
        }
    }
}

/// [`boundary`] for a call with one out-parameter: checks `out_ptr` (named `field`) for NULL
/// before `f` runs, then writes `f`'s value there (only on success).
///
/// # Safety
/// `err_out` as in [`boundary`]; `out_ptr` is NULL or valid for writes.
pub(crate) unsafe fn answer<T>(
    err_out: *mut *mut sr_error,
    field: &str,
    out_ptr: *mut T,
    f: impl FnOnce() -> Result<T>,
) -> sr_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        boundary(err_out, || {
            if out_ptr.is_null() {
                return Err(crate::convert::invalid(field, "is NULL"));
            }
            let value = f()?;
            // Written without reading (or dropping) what the caller's memory held.
            out_ptr.write(value);
            Ok(())
        })
    }
}

/// An opaque handle of the C API and the core object it wraps.
pub(crate) trait Handle {
    /// The core object.
    type Inner;
    /// The parameter's name in messages.
    const NAME: &'static str;
    /// The core object.
    fn inner(&self) -> &Self::Inner;
}

/// Implements [`Handle`] for a handle struct with an `inner` field.
macro_rules! handle {
    ($handle:ty, $inner:ty, $name:literal) => {
        impl crate::panic::Handle for $handle {
            type Inner = $inner;
            const NAME: &'static str = $name;
            fn inner(&self) -> &$inner {
                &self.inner
            }
        }
    };
}
pub(crate) use handle;

/// [`answer`] on the core object behind `handle` (checked for NULL after `out_ptr`).
///
/// # Safety
/// As [`answer`]; `handle` is NULL or a live handle.
pub(crate) unsafe fn with<H: Handle, T>(
    handle: *const H,
    field: &str,
    out_ptr: *mut T,
    err_out: *mut *mut sr_error,
    f: impl FnOnce(&H::Inner) -> Result<T>,
) -> sr_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        answer(err_out, field, out_ptr, || {
            f(crate::convert::handle(H::NAME, handle)?.inner())
        })
    }
}

/// [`boundary`] on the core object behind `handle` (checked for NULL).
///
/// # Safety
/// As [`boundary`]; `handle` is NULL or a live handle.
pub(crate) unsafe fn run<H: Handle>(
    handle: *const H,
    err_out: *mut *mut sr_error,
    f: impl FnOnce(&H::Inner) -> Result<()>,
) -> sr_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        boundary(err_out, || {
            f(crate::convert::handle(H::NAME, handle)?.inner())
        })
    }
}

/// Runs a function that returns no status (a `_free`, a getter) and swallows a panic.
pub(crate) fn quietly<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

fn panicked(payload: Box<dyn Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    Error::new(
        ErrorKind::Internal,
        format!("panic in stateful-route: {what}"),
    )
}

/// Waits for `fut` on the core's shared runtime. A call from one of the runtime's own threads
/// (a callback calling back into the library) would deadlock or panic, so it is refused.
pub(crate) fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "blocking sr_ functions cannot be called from a library callback (a runtime thread)",
        ));
    }
    Ok(sr_core::runtime::block_on(fut))
}
