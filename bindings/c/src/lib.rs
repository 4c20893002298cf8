//! The C ABI of stateful-route: `include/stateful_route.h`, generated from this crate by
//! cbindgen (`bindings/c/check-header.sh`), linked as `libstateful_route.a` or `.so`.
//!
//! This crate only converts values, maps errors to status codes and bridges the core's one
//! runtime; every routing decision is the core's. It must never let a panic unwind into C,
//! never keep a pointer the caller lent it beyond the call, and never report an error any
//! other way than through the same call's return value and `sr_error **` out-parameter.
//!
//! Conventions (repeated in the header and the README's "C API conventions"):
//! - Every fallible function returns `sr_status` (`SR_OK` = 0) and takes `sr_error **err_out`
//!   last; pass NULL there if you only want the code.
//! - Strings in are UTF-8 `sr_str` values (pointer + length) passed by value, borrowed for
//!   the call (`{NULL, 0}` is `""`; NULL with a length is `SR_INVALID_ARGUMENT`); strings out
//!   are freed with `sr_string_free`, lists with their own `_free`. "No link" is -1.
//! - Every pointer argument is checked: NULL is `SR_INVALID_ARGUMENT`, unless its doc says
//!   it may be NULL.
//!
//! Every exported function is `unsafe`: its safety contract is the header's (valid pointers
//! for the lengths given, handles not freed), documented once here and in the header
//! preamble rather than under each function.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

pub mod client;
pub mod config;
pub mod convert;
pub mod error;
pub mod extend;
pub mod log;
pub mod metrics;
pub mod panic;
pub mod queue;
pub mod route_info;
pub mod server;
pub mod store;

/// The library's version, e.g. `"0.1.0"` (static: never free it).
#[no_mangle]
pub extern "C" fn sr_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
