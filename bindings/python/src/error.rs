//! Core errors as Python exceptions.
//!
//! Every [`ErrorKind`] has one exception class in `stateful_route.errors`, all under
//! `StatefulRouteError`, each with `.code` (`"NO_AVAILABLE_POD"` …) and `.message`;
//! `PodUnavailableError` also carries `.pod_index`. The classes live in Python (so they are
//! plain, picklable, documented classes); this file only looks them up and fills them in.
//! Nothing here may panic: a failure to build the exception is raised instead.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use stateful_route::{Error, ErrorKind};

/// The exception classes, in the order of [`ErrorKind::ALL`].
static CLASSES: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();

/// The Python class name of each kind (documented in `errors.py`).
fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "InvalidArgumentError",
        ErrorKind::InvalidConfig => "InvalidConfigError",
        ErrorKind::NamespaceNotLocal => "NamespaceNotLocalError",
        ErrorKind::NoAvailablePod => "NoAvailablePodError",
        ErrorKind::PodUnavailable => "PodUnavailableError",
        ErrorKind::StoreUnavailable => "StoreUnavailableError",
        ErrorKind::StoreError => "StoreError",
        // Not `TimeoutError`: that would shadow the builtin in `from stateful_route import *`.
        ErrorKind::Timeout => "StoreTimeoutError",
        ErrorKind::Closed => "ClosedError",
        _ => "InternalError",
    }
}

fn classes(py: Python<'_>) -> PyResult<&Vec<Py<PyAny>>> {
    CLASSES.get_or_try_init(py, || {
        let module = py.import("stateful_route.errors")?;
        ErrorKind::ALL
            .iter()
            .map(|k| module.getattr(class_name(*k)).map(Bound::unbind))
            .collect()
    })
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let i = ErrorKind::ALL
        .iter()
        .position(|k| *k == e.kind())
        .unwrap_or(ErrorKind::ALL.len() - 1);
    let class = classes(py)?[i].bind(py);
    let exc = class.call1((e.to_string(),))?;
    exc.setattr("message", e.message())?;
    if let Some(pod) = e.pod_index() {
        exc.setattr("pod_index", pod)?;
    }
    Ok(PyErr::from_value(exc))
}

/// The Python exception for a core error.
pub fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    build(py, e).unwrap_or_else(|failure| failure)
}

/// `INVALID_ARGUMENT` naming `field`: for Python values of the wrong type or range.
pub fn invalid_argument(field: &str, rule: impl std::fmt::Display) -> PyErr {
    raise(
        ErrorKind::InvalidArgument,
        format!("invalid {field}: {rule}"),
    )
}

/// `INVALID_CONFIG` naming `field`.
pub fn invalid_config(field: &str, rule: impl std::fmt::Display) -> PyErr {
    raise(
        ErrorKind::InvalidConfig,
        format!("invalid config {field}: {rule}"),
    )
}

/// An exception of `kind` with `message`.
pub fn raise(kind: ErrorKind, message: impl Into<String>) -> PyErr {
    let e = Error::new(kind, message);
    Python::attach(|py| to_pyerr(py, &e))
}

/// `core_result.or_raise()?`: the one conversion from core results to Python results.
pub trait OrRaise<T> {
    /// The value, or the core error as its Python exception.
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for stateful_route::Result<T> {
    #[inline]
    fn or_raise(self) -> PyResult<T> {
        self.map_err(|e| Python::attach(|py| to_pyerr(py, &e)))
    }
}
