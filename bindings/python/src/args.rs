//! Python arguments → checked Rust values.
//!
//! A value of the wrong Python type (`None`, an `int` for a uid, a `bool` for a pod, a
//! negative or huge number, a `str` with a lone surrogate) is `InvalidArgumentError` naming the
//! argument, raised before anything reaches the store. The identifier *rules* (SPEC §2) are the
//! core's: this file checks only Python types and ranges that Rust types cannot hold.

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};
use stateful_route::ident;

use crate::error::{invalid_argument, invalid_config, OrRaise};

/// The Python type name of `obj`, for error messages.
pub fn type_name(obj: &Obj) -> String {
    let name = obj.get_type().name();
    name.map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// The error for a bad value: `INVALID_CONFIG` for a config field, else `INVALID_ARGUMENT`.
fn bad(config: bool, field: &str, why: String) -> PyErr {
    match config {
        true => invalid_config(field, why),
        false => invalid_argument(field, why),
    }
}

/// A value that was given: not absent, not `None`.
pub fn given<'a, 'py>(obj: Option<&'a Obj<'py>>) -> Option<&'a Obj<'py>> {
    obj.filter(|o| !o.is_none())
}

/// A `str` argument: borrowed, except with the `abi3` feature (the shipped wheel), whose limited
/// API of CPython 3.9 has no borrowed UTF-8 view, so it is copied.
#[inline]
pub fn text<'a>(obj: &'a Bound<'_, PyAny>, field: &str) -> PyResult<Cow<'a, str>> {
    match obj.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map_err(|_| invalid_argument(field, "is not valid UTF-8 (it holds a lone surrogate)")),
        Err(_) => Err(bad(
            false,
            field,
            format!("expected str, got {}", type_name(obj)),
        )),
    }
}

fn int_in(obj: &Obj, field: &str, config: bool) -> PyResult<i64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(bad(
            config,
            field,
            format!("expected int, got {}", type_name(obj)),
        ));
    }
    obj.extract()
        .map_err(|_| bad(config, field, format!("{obj} is out of range")))
}

fn number_in(obj: &Obj, field: &str, config: bool) -> PyResult<f64> {
    let number = obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>();
    if obj.is_instance_of::<PyBool>() || !number {
        let why = format!("expected a number, got {}", type_name(obj));
        return Err(bad(config, field, why));
    }
    obj.extract()
        .map_err(|_| bad(config, field, format!("{obj} is out of range")))
}

/// An `int` argument (not `bool`) that fits in an `i64`.
pub fn int(obj: &Obj, field: &str) -> PyResult<i64> {
    int_in(obj, field, false)
}

/// An optional `int`: `None` (or absent) is `default`.
pub fn opt_int(obj: Option<&Obj>, field: &str, default: i64) -> PyResult<i64> {
    given(obj).map_or(Ok(default), |o| int(o, field))
}

/// A pod index: an `int` in 0 … 2^31−1.
#[inline]
pub fn pod(obj: &Obj, field: &str) -> PyResult<u32> {
    ident::pod_index(field, int(obj, field)?).or_raise()
}

/// A number argument (`int` or `float`, not `bool`).
pub fn number(obj: &Obj, field: &str) -> PyResult<f64> {
    number_in(obj, field, false)
}

/// A non-negative `int` that fits in a `u32` (a load).
pub fn count(obj: &Obj, field: &str) -> PyResult<u32> {
    let n = int(obj, field)?;
    u32::try_from(n).map_err(|_| bad(false, field, format!("{n} must be in 0..={}", u32::MAX)))
}

/// A sequence of `str` (a lone `str` or `bytes` is refused: it is a sequence of characters).
pub fn texts(obj: &Obj, field: &str) -> PyResult<Vec<String>> {
    let why = "expected a sequence of str, got";
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(bad(false, field, format!("{why} a single string")));
    }
    let items = obj.try_iter();
    let items = items.map_err(|_| bad(false, field, format!("{why} {}", type_name(obj))))?;
    items
        .map(|item| Ok(text(&item?, field)?.into_owned()))
        .collect()
}

/// A config number (`int` or `float`, not `bool`), or the default when `None`/absent.
pub fn config_float(obj: Option<&Obj>, field: &str, default: f64) -> PyResult<f64> {
    given(obj).map_or(Ok(default), |o| number_in(o, field, true))
}

/// A config `int` ≥ 0, or the default when `None`/absent.
pub fn config_uint(obj: Option<&Obj>, field: &str, default: u64) -> PyResult<u64> {
    let Some(o) = given(obj) else {
        return Ok(default);
    };
    int_in(o, field, true)?;
    o.extract()
        .map_err(|_| bad(true, field, format!("{o} must be an int >= 0")))
}

/// A config field that a keyword argument sets (`None` or absent keeps the core's default).
pub trait Setting {
    /// Sets the field from `obj`, or raises `INVALID_CONFIG` naming `field`.
    fn set(&mut self, obj: Option<&Obj>, field: &str) -> PyResult<()>;
}

impl Setting for f64 {
    fn set(&mut self, obj: Option<&Obj>, field: &str) -> PyResult<()> {
        *self = config_float(obj, field, *self)?;
        Ok(())
    }
}

impl Setting for u64 {
    fn set(&mut self, obj: Option<&Obj>, field: &str) -> PyResult<()> {
        *self = config_uint(obj, field, *self)?;
        Ok(())
    }
}

impl Setting for u32 {
    fn set(&mut self, obj: Option<&Obj>, field: &str) -> PyResult<()> {
        let n = config_uint(obj, field, (*self).into())?;
        let too_large = |_| invalid_config(field, format!("{n} is too large"));
        *self = u32::try_from(n).map_err(too_large)?;
        Ok(())
    }
}

impl Setting for Option<f64> {
    fn set(&mut self, obj: Option<&Obj>, field: &str) -> PyResult<()> {
        if let Some(o) = given(obj) {
            *self = Some(number_in(o, field, true)?);
        }
        Ok(())
    }
}

/// A config flag: a `bool`, or the default when `None`.
pub fn config_bool(obj: &Obj, field: &str, default: bool) -> PyResult<bool> {
    if obj.is_none() {
        return Ok(default);
    }
    match obj.cast::<PyBool>() {
        Ok(b) => Ok(b.is_true()),
        Err(_) => Err(bad(
            true,
            field,
            format!("expected bool, got {}", type_name(obj)),
        )),
    }
}

/// A config `str`, or the default when `None`/absent.
pub fn config_text(obj: Option<&Obj>, field: &str, default: &str) -> PyResult<String> {
    let Some(o) = given(obj) else {
        return Ok(default.into());
    };
    match o.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(bad(
            true,
            field,
            format!("expected str, got {}", type_name(o)),
        )),
    }
}

/// A Python argument (every method converts its own, to name it in errors).
pub type Obj<'py> = Bound<'py, PyAny>;

/// What a method that may wait returns: the value (blocking) or an awaitable (asyncio).
pub type Out = PyResult<Py<PyAny>>;

/// The identifiers of a link (`namespace`, `uid`, `service`), owned for a future.
pub fn ids(namespace: &Obj, uid: &Obj, service: &Obj) -> PyResult<(String, String, String)> {
    let ns = text(namespace, "namespace")?.into_owned();
    Ok((ns, owned(uid, "uid")?, owned(service, "service")?))
}

/// A `str` argument, owned (for a future).
pub fn owned(obj: &Obj, field: &str) -> PyResult<String> {
    Ok(text(obj, field)?.into_owned())
}
