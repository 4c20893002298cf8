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

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// A `str` argument: borrowed, except with the `abi3` feature (the shipped wheel), whose limited
/// API of CPython 3.9 has no borrowed UTF-8 view, so it is copied.
#[inline]
pub fn text<'a>(obj: &'a Bound<'_, PyAny>, field: &str) -> PyResult<Cow<'a, str>> {
    match obj.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map_err(|_| invalid_argument(field, "is not valid UTF-8 (it holds a lone surrogate)")),
        Err(_) => Err(invalid_argument(
            field,
            format!("expected str, got {}", type_name(obj)),
        )),
    }
}

/// An `int` argument (not `bool`) that fits in an `i64`.
pub fn int(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<i64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        return Err(invalid_argument(
            field,
            format!("expected int, got {}", type_name(obj)),
        ));
    }
    obj.extract::<i64>()
        .map_err(|_| invalid_argument(field, format!("{} is out of range", obj)))
}

/// An optional `int`: `None` (or absent) is `default`.
pub fn opt_int(obj: Option<&Bound<'_, PyAny>>, field: &str, default: i64) -> PyResult<i64> {
    match obj {
        Some(o) if !o.is_none() => int(o, field),
        _ => Ok(default),
    }
}

/// A pod index: an `int` in 0 … 2^31−1.
#[inline]
pub fn pod(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<u32> {
    ident::pod_index(field, int(obj, field)?).or_raise()
}

/// A number argument (`int` or `float`, not `bool`).
pub fn number(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<f64> {
    if obj.is_instance_of::<PyBool>()
        || !(obj.is_instance_of::<PyFloat>() || obj.is_instance_of::<PyInt>())
    {
        return Err(invalid_argument(
            field,
            format!("expected a number, got {}", type_name(obj)),
        ));
    }
    obj.extract::<f64>()
        .map_err(|_| invalid_argument(field, format!("{obj} is out of range")))
}

/// A non-negative `int` that fits in a `u32` (a load).
pub fn count(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<u32> {
    let n = int(obj, field)?;
    u32::try_from(n)
        .map_err(|_| invalid_argument(field, format!("{n} must be in 0..={}", u32::MAX)))
}

/// A sequence of `str` (a lone `str` or `bytes` is refused: it is a sequence of characters).
pub fn texts(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
        return Err(invalid_argument(
            field,
            "expected a sequence of str, got a single string",
        ));
    }
    let items = obj.try_iter().map_err(|_| {
        invalid_argument(
            field,
            format!("expected a sequence of str, got {}", type_name(obj)),
        )
    })?;
    let mut out = Vec::new();
    for item in items {
        let item = item?;
        out.push(text(&item, field)?.into_owned());
    }
    Ok(out)
}

/// A config number (`int` or `float`, not `bool`), or the default when `None`/absent.
pub fn config_float(obj: Option<&Bound<'_, PyAny>>, field: &str, default: f64) -> PyResult<f64> {
    match obj {
        None => Ok(default),
        Some(o) if o.is_none() => Ok(default),
        Some(o) if o.is_instance_of::<PyBool>() => {
            Err(invalid_config(field, "expected a number, got bool"))
        }
        Some(o) if o.is_instance_of::<PyFloat>() || o.is_instance_of::<PyInt>() => o
            .extract::<f64>()
            .map_err(|_| invalid_config(field, format!("{o} is out of range"))),
        Some(o) => Err(invalid_config(
            field,
            format!("expected a number, got {}", type_name(o)),
        )),
    }
}

/// A config `int` ≥ 0, or the default when `None`/absent.
pub fn config_uint(obj: Option<&Bound<'_, PyAny>>, field: &str, default: u64) -> PyResult<u64> {
    match obj {
        None => Ok(default),
        Some(o) if o.is_none() => Ok(default),
        Some(o) if o.is_instance_of::<PyBool>() || !o.is_instance_of::<PyInt>() => Err(
            invalid_config(field, format!("expected int, got {}", type_name(o))),
        ),
        Some(o) => o
            .extract::<u64>()
            .map_err(|_| invalid_config(field, format!("{o} must be an int >= 0"))),
    }
}

/// A config `str`, or the default when `None`/absent.
pub fn config_text(obj: Option<&Bound<'_, PyAny>>, field: &str, default: &str) -> PyResult<String> {
    match obj {
        None => Ok(default.to_string()),
        Some(o) if o.is_none() => Ok(default.to_string()),
        Some(o) => match o.cast::<PyString>() {
            Ok(s) => Ok(s.to_cow()?.into_owned()),
            Err(_) => Err(invalid_config(
                field,
                format!("expected str, got {}", type_name(o)),
            )),
        },
    }
}
