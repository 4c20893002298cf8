//! Extension points (issue 6): a Python callable as placement policy or load calculator.
//!
//! The core calls a policy on whatever thread runs the compute (the caller's thread for a
//! blocking call, a runtime worker for an asyncio miss) and a calculator on the thread that
//! publishes. Each call takes the GIL itself ([`attach`]; no Rust lock of this crate is held
//! meanwhile), hands the callable plain data (`Candidate`, `PlacementRequest`,
//! `LoadInput`: frozen copies) and converts the answer back. An exception in user code becomes
//! a core error: a `StatefulRouteError` keeps its code, anything else is `INTERNAL`; the message
//! names the callback, the exception's class and its text. Nothing here decides placement.

use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};
use stateful_route::load::DefaultLoadCalculator;
use stateful_route::{self as core, Error, ErrorKind, LoadCalculator, Placement, PlacementPolicy};

use crate::args;
use crate::config::routing_to_py;

/// One pod a placement policy may choose (a copy of the core's candidate).
#[pyclass(module = "stateful_route", name = "Candidate", frozen)]
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    inner: core::Candidate,
}

#[pymethods]
impl Candidate {
    /// The pod's index.
    #[getter]
    fn pod_index(&self) -> u32 {
        self.inner.pod_index
    }
    /// Its published weighted load.
    #[getter]
    fn load(&self) -> u32 {
        self.inner.load
    }
    /// New users this driver placed on it since the snapshot was read.
    #[getter]
    fn placed(&self) -> u32 {
        self.inner.placed
    }
    /// `load + placed`: what the built-in p2c compares.
    #[getter]
    fn effective_load(&self) -> u64 {
        self.inner.effective_load()
    }
    /// Its routing state (`RoutingState.READY` for every candidate today).
    #[getter]
    fn routing(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        routing_to_py(py, self.inner.routing_state).map(Bound::unbind)
    }
    /// How old its published state was when the snapshot was read, in ms.
    #[getter]
    fn age_ms(&self) -> u64 {
        self.inner.age_ms
    }
    /// The placement weight the pod publishes (default 100).
    #[getter]
    fn weight(&self) -> u32 {
        self.inner.weight
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "Candidate(pod_index={}, load={}, placed={}, age_ms={}, weight={})",
            c.pod_index, c.load, c.placed, c.age_ms, c.weight
        )
    }
}

/// The new user being placed.
#[pyclass(module = "stateful_route", name = "PlacementRequest", frozen)]
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// The driver's namespace.
    #[pyo3(get)]
    namespace: String,
    /// The user.
    #[pyo3(get)]
    uid: String,
    /// The service.
    #[pyo3(get)]
    service: String,
    /// How many placements this driver made for this service before this one.
    #[pyo3(get)]
    sequence: u64,
}

#[pymethods]
impl PlacementRequest {
    fn __repr__(&self) -> String {
        format!(
            "PlacementRequest(namespace={:?}, uid={:?}, service={:?}, sequence={})",
            self.namespace, self.uid, self.service, self.sequence
        )
    }
}

/// What a load calculator sees.
#[pyclass(module = "stateful_route", name = "LoadInput", frozen)]
#[derive(Debug, Clone)]
pub struct LoadInput {
    /// The app's load as set with `set_load_state`.
    #[pyo3(get)]
    load: u32,
    /// This process's CPU use over the last period, percent of the machine (0–100); 0 when
    /// `cpu_factor` is 0.
    #[pyo3(get)]
    cpu_percent: f64,
    /// The configured `cpu_factor`.
    #[pyo3(get)]
    cpu_factor: f64,
    signals: BTreeMap<String, f64>,
}

#[pymethods]
impl LoadInput {
    /// The custom signals set with `set_load_signal` (a new dict on each access).
    #[getter]
    fn signals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.signals {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "LoadInput(load={}, cpu_percent={}, cpu_factor={}, signals={:?})",
            self.load, self.cpu_percent, self.cpu_factor, self.signals
        )
    }
}

static STATEFUL_ROUTE_ERROR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// An exception raised by user code, as a core error: a `StatefulRouteError` keeps its kind,
/// anything else is `INTERNAL`.
fn callback_error(py: Python<'_>, what: &str, e: PyErr) -> Error {
    let value = e.value(py);
    let class = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string());
    let text = value.str().map(|s| s.to_string()).unwrap_or_default();
    let ours = STATEFUL_ROUTE_ERROR
        .get_or_try_init(py, || {
            py.import("stateful_route.errors")?
                .getattr("StatefulRouteError")
                .map(Bound::unbind)
        })
        .ok()
        .and_then(|base| value.is_instance(base.bind(py)).ok())
        .unwrap_or(false);
    let kind = ours
        .then(|| value.getattr("code").ok())
        .flatten()
        .and_then(|c| c.extract::<String>().ok())
        .and_then(|c| ErrorKind::from_code(&c))
        .unwrap_or(ErrorKind::Internal);
    let message = if text.is_empty() {
        format!("{what} failed: {class}")
    } else {
        format!("{what} failed: {class}: {text}")
    };
    Error::new(kind, message)
}

thread_local! {
    /// Whether this thread got a lasting Python thread state (see [`attach`]).
    static ANCHORED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `Python::try_attach` for callbacks, which mostly run on the runtime's worker threads.
///
/// A thread unknown to Python gets a new thread state from each `PyGILState_Ensure` and loses
/// it at the matching release: about 10 µs per callback. So the first callback on such a
/// thread keeps one (`PyGILState_Ensure` once, then `PyEval_SaveThread` gives the GIL back),
/// and later attaches only take the GIL. The thread states live as long as the threads (the
/// runtime's workers live as long as the process). Threads Python already knows are left as
/// they are. `None` when the interpreter is shutting down.
fn attach<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    if !ANCHORED.get() {
        ANCHORED.set(true);
        // Not while the interpreter is finalizing (try_attach refuses then).
        Python::try_attach(|_| ())?;
        // SAFETY: this thread does not hold the GIL here (it had no thread state, or pyo3's
        // attach above released it); Ensure takes it with a new thread state that the
        // gilstate counter keeps alive, and SaveThread releases the GIL again.
        unsafe {
            if pyo3::ffi::PyGILState_GetThisThreadState().is_null() {
                let _ = pyo3::ffi::PyGILState_Ensure();
                pyo3::ffi::PyEval_SaveThread();
            }
        }
    }
    Python::try_attach(f)
}

fn shutting_down(what: &str) -> Error {
    Error::new(
        ErrorKind::Closed,
        format!("{what} not called: the Python interpreter is shutting down"),
    )
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_string())
}

/// A Python callable `policy(candidates: list[Candidate], request: PlacementRequest)` returning
/// an index into `candidates` or `None` (refuse: `NO_AVAILABLE_POD`).
pub struct PyPolicy {
    callable: Py<PyAny>,
}

impl std::fmt::Debug for PyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PyPolicy(<python callable>)")
    }
}

impl PyPolicy {
    fn call(
        &self,
        py: Python<'_>,
        candidates: &[core::Candidate],
        request: &core::PlacementRequest<'_>,
    ) -> core::Result<Option<usize>> {
        const WHAT: &str = "placement callback";
        let out = (|| {
            let list = PyList::new(py, candidates.iter().map(|c| Candidate { inner: *c }))?;
            let req = Bound::new(
                py,
                PlacementRequest {
                    namespace: request.namespace.to_owned(),
                    uid: request.uid.to_owned(),
                    service: request.service.to_owned(),
                    sequence: request.sequence,
                },
            )?;
            self.callable.bind(py).call1((list, req))
        })()
        .map_err(|e| callback_error(py, WHAT, e))?;
        if out.is_none() {
            return Ok(None);
        }
        let bad = |why: String| Error::new(ErrorKind::Internal, format!("{WHAT} {why}"));
        if out.is_instance_of::<PyBool>() || !out.is_instance_of::<PyInt>() {
            return Err(bad(format!(
                "returned {}, expected an int index into the candidates or None",
                type_name(&out)
            )));
        }
        match out.extract::<i64>() {
            // An index past the end is reported by the core.
            Ok(i) if i >= 0 => Ok(Some(usize::try_from(i).unwrap_or(usize::MAX))),
            _ => Err(bad(format!(
                "returned {out}, not an index into the {} candidates",
                candidates.len()
            ))),
        }
    }
}

impl PlacementPolicy for PyPolicy {
    fn choose(
        &self,
        candidates: &[core::Candidate],
        request: &core::PlacementRequest<'_>,
    ) -> core::Result<Option<usize>> {
        attach(|py| self.call(py, candidates, request))
            .unwrap_or_else(|| Err(shutting_down("placement callback")))
    }
}

/// A Python callable `calculator(input: LoadInput)` returning the weighted load (an int, or a
/// float that is rounded, in 0 … 2^32−1).
pub struct PyLoad {
    callable: Py<PyAny>,
}

impl std::fmt::Debug for PyLoad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PyLoad(<python callable>)")
    }
}

impl PyLoad {
    fn call(&self, py: Python<'_>, input: &core::LoadInput<'_>) -> core::Result<u32> {
        const WHAT: &str = "load callback";
        let out = (|| {
            let arg = Bound::new(
                py,
                LoadInput {
                    load: input.load,
                    cpu_percent: input.cpu_percent,
                    cpu_factor: input.cpu_factor,
                    signals: input.signals.clone(),
                },
            )?;
            self.callable.bind(py).call1((arg,))
        })()
        .map_err(|e| callback_error(py, WHAT, e))?;
        let bad = || {
            Error::new(
                ErrorKind::Internal,
                format!(
                    "{WHAT} returned {} ({}), expected a number in 0..={}",
                    out.repr().map(|r| r.to_string()).unwrap_or_default(),
                    type_name(&out),
                    u32::MAX
                ),
            )
        };
        if out.is_instance_of::<PyBool>() {
            return Err(bad());
        }
        if out.is_instance_of::<PyInt>() {
            return out
                .extract::<i64>()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(bad);
        }
        if out.is_instance_of::<PyFloat>() {
            let f: f64 = out.extract().map_err(|_| bad())?;
            let r = f.round();
            if r.is_finite() && (0.0..=u32::MAX as f64).contains(&r) {
                return Ok(r as u32);
            }
        }
        Err(bad())
    }
}

impl LoadCalculator for PyLoad {
    fn weighted_load(&self, input: &core::LoadInput<'_>) -> core::Result<u32> {
        attach(|py| self.call(py, input)).unwrap_or_else(|| Err(shutting_down("load callback")))
    }
}

/// A placement setting: a built-in name (`"p2c"`, `"random"`, `"round_robin"`,
/// `"rendezvous"`, `"weighted"`) or a callable; `load_factor` only with `"rendezvous"`.
/// `bad` builds the error for a wrong value (`InvalidConfigError` in a `BaseConfig`,
/// `InvalidArgumentError` for `set_service_placement`).
pub fn placement_arg(
    obj: &Bound<'_, PyAny>,
    load_factor: Option<&Bound<'_, PyAny>>,
    field: &str,
    factor_field: &str,
    bad: &dyn Fn(&str, String) -> PyErr,
) -> PyResult<Placement> {
    let factor = match load_factor {
        Some(o) if !o.is_none() => Some(args::config_float(Some(o), factor_field, 0.0)?),
        _ => None,
    };
    if let Ok(name) = obj.cast::<PyString>() {
        let name = name.to_cow()?;
        let placement = Placement::from_name(&name).ok_or_else(|| {
            bad(
                field,
                format!(
                    "{name:?} is not one of \"p2c\", \"random\", \"round_robin\", \
                     \"rendezvous\", \"weighted\" (or a callable)"
                ),
            )
        })?;
        return match (placement, factor) {
            (Placement::Rendezvous { .. }, Some(load_factor)) => {
                Ok(Placement::Rendezvous { load_factor })
            }
            (p, None) => Ok(p),
            (p, Some(_)) => Err(bad(
                factor_field,
                format!("applies to \"rendezvous\" only, not {:?}", p.name()),
            )),
        };
    }
    if obj.is_callable() {
        if factor.is_some() {
            return Err(bad(
                factor_field,
                "applies to \"rendezvous\" only, not a callable".to_string(),
            ));
        }
        return Ok(Placement::Custom(Arc::new(PyPolicy {
            callable: obj.clone().unbind(),
        })));
    }
    Err(bad(
        field,
        format!(
            "expected a policy name (str) or a callable, got {}",
            type_name(obj)
        ),
    ))
}

/// `set_load_calculator`'s argument: a callable, or `None` for SPEC's formula.
pub fn load_calculator_arg(obj: &Bound<'_, PyAny>) -> PyResult<Arc<dyn LoadCalculator>> {
    if obj.is_none() {
        return Ok(Arc::new(DefaultLoadCalculator));
    }
    if !obj.is_callable() {
        return Err(crate::error::invalid_argument(
            "calculator",
            format!("expected a callable or None, got {}", type_name(obj)),
        ));
    }
    Ok(Arc::new(PyLoad {
        callable: obj.clone().unbind(),
    }))
}
