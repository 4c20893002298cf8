//! Core errors as Python exceptions.
//!
//! Every [`ErrorKind`] has one exception class in `stateful_route.errors`, all under
//! `StatefulRouteError`, each with `.code` (`"NO_AVAILABLE_POD"` …) and `.message`;
//! `PodUnavailableError` also carries `.pod_index`. The classes live in Python (so they are
//! plain, picklable, documented classes); this file looks the class up by the core's code
//! (`ErrorKind::as_str`) in `errors.BY_CODE` and fills it in: no list of names here.
//! Nothing here may panic: a failure to build the exception is raised instead.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use stateful_route::{Error, ErrorKind};

/// `stateful_route.errors.BY_CODE`: the exception class of each code.
static BY_CODE: PyOnceLock<Py<PyDict>> = PyOnceLock::new();

fn by_code(py: Python<'_>) -> PyResult<&Bound<'_, PyDict>> {
    let by_code = BY_CODE.get_or_try_init(py, || {
        let errors = py.import("stateful_route.errors")?;
        Ok::<_, PyErr>(errors.getattr("BY_CODE")?.cast_into::<PyDict>()?.unbind())
    })?;
    Ok(by_code.bind(py))
}

/// The kind of an exception of ours (an instance of the class of its `code`), else `None`.
pub fn kind_of(exc: &Bound<'_, PyAny>) -> Option<ErrorKind> {
    let code: String = exc.getattr("code").ok()?.extract().ok()?;
    let class = by_code(exc.py()).ok()?.get_item(&code).ok()??;
    exc.is_instance(&class)
        .ok()?
        .then(|| ErrorKind::from_code(&code))?
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    let by_code = by_code(py)?;
    let class = match by_code.get_item(e.kind().as_str())? {
        Some(class) => class,
        None => by_code.as_any().get_item(ErrorKind::Internal.as_str())?,
    };
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
