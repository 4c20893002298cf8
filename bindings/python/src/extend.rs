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
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PyString};
use stateful_route::load::DefaultLoadCalculator;
use stateful_route::{self as core, Error, ErrorKind, LoadCalculator, Placement, PlacementPolicy};

use crate::args::{type_name, Obj};
use crate::config::{fields_repr, Routing};

/// One pod a placement policy may choose (a copy of the core's candidate).
#[pyclass(module = "stateful_route", name = "Candidate", frozen, get_all)]
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// The pod's index.
    pod_index: u32,
    /// Its published weighted load.
    load: u32,
    /// New users this driver placed on it since the snapshot was read.
    placed: u32,
    /// `load + placed`: what the built-in p2c compares.
    effective_load: u64,
    /// Its routing state (`RoutingState.READY` for every candidate today).
    routing_state: Routing,
    /// How old its published state was when the snapshot was read, in ms.
    age_ms: u64,
    /// The placement weight the pod publishes (default 100).
    weight: u32,
}

impl From<&core::Candidate> for Candidate {
    fn from(c: &core::Candidate) -> Self {
        let (pod_index, load, placed, age_ms, weight) =
            (c.pod_index, c.load, c.placed, c.age_ms, c.weight);
        let (effective_load, routing_state) = (c.effective_load(), Routing(c.routing_state));
        Candidate {
            pod_index,
            load,
            placed,
            effective_load,
            routing_state,
            age_ms,
            weight,
        }
    }
}

#[pymethods]
impl Candidate {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "pod_index load placed effective_load routing_state age_ms weight",
        )
    }
}

/// The new user being placed.
#[pyclass(module = "stateful_route", name = "PlacementRequest", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct PlacementRequest {
    /// The driver's namespace.
    namespace: String,
    /// The user.
    uid: String,
    /// The service.
    service: String,
    /// How many placements this driver made for this service before this one.
    sequence: u64,
}

#[pymethods]
impl PlacementRequest {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "namespace uid service sequence")
    }
}

/// What a load calculator sees.
#[pyclass(module = "stateful_route", name = "LoadInput", frozen, get_all)]
#[derive(Debug, Clone)]
pub struct LoadInput {
    /// The app's load as set with `set_load_state`.
    load: u32,
    /// This process's CPU use over the last period, percent of the machine (0–100); 0 when
    /// `cpu_factor` is 0.
    cpu_percent: f64,
    /// The configured `cpu_factor`.
    cpu_factor: f64,
    /// The custom signals set with `set_load_signal` (a new dict on each access).
    signals: BTreeMap<String, f64>,
}

#[pymethods]
impl LoadInput {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "load cpu_percent cpu_factor signals")
    }
}

/// An exception raised by user code, as a core error: a `StatefulRouteError` keeps its kind,
/// anything else is `INTERNAL`.
fn callback_error(py: Python<'_>, what: &str, e: PyErr) -> Error {
    let value = e.value(py);
    let (class, text) = (type_name(value), value.str().map(|s| s.to_string()));
    let kind = crate::error::kind_of(value).unwrap_or(ErrorKind::Internal);
    match text.unwrap_or_default() {
        text if text.is_empty() => Error::new(kind, format!("{what} failed: {class}")),
        text => Error::new(kind, format!("{what} failed: {class}: {text}")),
    }
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

/// A Python callable `policy(candidates: list[Candidate], request: PlacementRequest)` returning
/// an index into `candidates` or `None` (refuse: `NO_AVAILABLE_POD`).
#[derive(Debug)]
pub struct PyPolicy {
    callable: Py<PyAny>,
}

impl PyPolicy {
    fn call(
        &self,
        py: Python<'_>,
        candidates: &[core::Candidate],
        request: &core::PlacementRequest<'_>,
    ) -> core::Result<Option<usize>> {
        const WHAT: &str = "placement callback";
        let list = PyList::new(py, candidates.iter().map(Candidate::from));
        let (namespace, uid) = (request.namespace.to_owned(), request.uid.to_owned());
        let (service, sequence) = (request.service.to_owned(), request.sequence);
        let request = PlacementRequest {
            namespace,
            uid,
            service,
            sequence,
        };
        let out = list.and_then(|list| self.callable.bind(py).call1((list, request)));
        let out = out.map_err(|e| callback_error(py, WHAT, e))?;
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
#[derive(Debug)]
pub struct PyLoad {
    callable: Py<PyAny>,
}

impl PyLoad {
    fn call(&self, py: Python<'_>, input: &core::LoadInput<'_>) -> core::Result<u32> {
        const WHAT: &str = "load callback";
        let (load, cpu_percent, cpu_factor) = (input.load, input.cpu_percent, input.cpu_factor);
        let signals = input.signals.clone();
        let out = self.callable.bind(py).call1((LoadInput {
            load,
            cpu_percent,
            cpu_factor,
            signals,
        },));
        let out = out.map_err(|e| callback_error(py, WHAT, e))?;
        let load = if out.is_instance_of::<PyInt>() && !out.is_instance_of::<PyBool>() {
            out.extract::<i64>()
                .ok()
                .and_then(|n| u32::try_from(n).ok())
        } else if out.is_instance_of::<PyFloat>() {
            let r = out.extract::<f64>().map_or(f64::NAN, f64::round);
            (r.is_finite() && (0.0..=u32::MAX as f64).contains(&r)).then_some(r as u32)
        } else {
            None
        };
        load.ok_or_else(|| {
            let repr = out.repr().map(|r| r.to_string()).unwrap_or_default();
            let (ty, max) = (type_name(&out), u32::MAX);
            let why = format!("returned {repr} ({ty}), expected a number in 0..={max}");
            Error::new(ErrorKind::Internal, format!("{WHAT} {why}"))
        })
    }
}

impl LoadCalculator for PyLoad {
    fn weighted_load(&self, input: &core::LoadInput<'_>) -> core::Result<u32> {
        attach(|py| self.call(py, input)).unwrap_or_else(|| Err(shutting_down("load callback")))
    }
}

/// A placement setting: a built-in name (parsed by the core with `factor`, 0 meaning the
/// default bound) or a callable (which takes no factor; `factor_field` names it). Every error is
/// `INVALID_CONFIG` (`set_service_placement` recasts it as `INVALID_ARGUMENT`).
pub fn placement_arg(obj: &Obj, factor: f64, factor_field: &str) -> core::Result<Placement> {
    let bad = |field: &str, why: String| {
        Error::new(
            ErrorKind::InvalidConfig,
            format!("invalid config {field}: {why}"),
        )
    };
    if let Ok(name) = obj.cast::<PyString>() {
        let name = name
            .to_cow()
            .map_err(|_| bad("placement", "is not valid UTF-8".into()))?;
        return Placement::from_setting(&name, factor);
    }
    if !obj.is_callable() {
        let got = type_name(obj);
        return Err(bad(
            "placement",
            format!("expected a policy name (str) or a callable, got {got}"),
        ));
    }
    if factor != 0.0 {
        return Err(bad(
            factor_field,
            "applies to \"rendezvous\" only, not a callable".into(),
        ));
    }
    let callable = obj.clone().unbind();
    Ok(Placement::Custom(Arc::new(PyPolicy { callable })))
}

/// `set_load_calculator`'s argument: a callable, or `None` for SPEC's formula.
pub fn load_calculator_arg(obj: &Obj) -> PyResult<Arc<dyn LoadCalculator>> {
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
