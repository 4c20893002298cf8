//! `ClientDriver.metrics()` as Python objects (README "Metrics"): `MetricsSnapshot` and its
//! parts (`ServiceMetrics`, `PodMetrics`, `StoreCallMetrics`, `PropagationMetrics`), the flat
//! `Sample`s, and `metric_families()` (the core's `FAMILIES`: name, kind, labels, help).
//!
//! Frozen copies of the core's structs with the core's field names; every number, every series
//! and the text exposition are the core's (`MetricsSnapshot` keeps the core snapshot and asks
//! it for `samples()`, `service()` and `to_prometheus()`).

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use stateful_route::{self as core, metrics as m};

use crate::args::{self, Obj};
use crate::config::fields_repr;

/// Every family a snapshot can produce, in exposition order: `(name, kind, labels, help)`,
/// `kind` being `"counter"`, `"gauge"` or `"histogram"`.
#[pyfunction]
pub fn metric_families() -> Vec<(&'static str, &'static str, Vec<&'static str>, &'static str)> {
    m::FAMILIES
        .iter()
        .map(|f| (f.name, f.kind.as_str(), f.labels.to_vec(), f.help))
        .collect()
}

/// Everything a client driver counted and sees now (`ClientDriver.metrics()`).
#[pyclass(module = "stateful_route", name = "MetricsSnapshot", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    inner: core::MetricsSnapshot,
}

impl From<core::MetricsSnapshot> for MetricsSnapshot {
    fn from(inner: core::MetricsSnapshot) -> Self {
        MetricsSnapshot { inner }
    }
}

#[pymethods]
impl MetricsSnapshot {
    /// The driver's namespace.
    #[getter]
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }
    /// Whether counting is on (`BaseConfig(metrics=...)`); gauges are reported either way.
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled
    }
    /// Links held by the local cache (approximate).
    #[getter]
    fn cache_entries(&self) -> u64 {
        self.inner.cache_entries
    }
    /// Per service, sorted by name.
    #[getter]
    fn services(&self) -> Vec<ServiceMetrics> {
        let services = self.inner.services.iter();
        services.map(ServiceMetrics::from).collect()
    }
    /// Errors returned by routing calls, by code (`{"NO_AVAILABLE_POD": 1}`).
    #[getter]
    fn errors(&self) -> BTreeMap<String, u64> {
        self.inner.errors.clone()
    }
    /// The store's calls by operation (shared by every driver on the store).
    #[getter]
    fn store_calls(&self) -> Vec<StoreCallMetrics> {
        let calls = self.inner.store_calls.iter();
        calls.map(StoreCallMetrics::from).collect()
    }
    /// The event stream.
    #[getter]
    fn propagation(&self) -> PropagationMetrics {
        PropagationMetrics::from(&self.inner.propagation)
    }

    /// The entry of `service`, or `None` if this driver has none.
    fn service(&self, service: &Obj) -> PyResult<Option<ServiceMetrics>> {
        let name = args::text(service, "service")?;
        Ok(self.inner.service(&name).map(ServiceMetrics::from))
    }

    /// Every series of this snapshot, family by family (the numbers of `to_prometheus()`).
    fn samples(&self) -> Vec<Sample> {
        self.inner.samples().into_iter().map(Sample::from).collect()
    }

    /// This snapshot in the Prometheus text exposition format (what `metrics_text()` returns).
    fn to_prometheus(&self) -> String {
        self.inner.to_prometheus()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "namespace enabled cache_entries services errors store_calls propagation",
        )
    }
}

/// One service's counters and the pods of its snapshot in force.
#[pyclass(
    module = "stateful_route",
    name = "ServiceMetrics",
    frozen,
    eq,
    get_all
)]
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMetrics {
    /// The service (`"_other"` for services beyond the label cap).
    service: String,
    /// Routing calls answered from the cache.
    hits: u64,
    /// Routing calls answered by the store (lookups and placements).
    misses: u64,
    /// Routing calls answered by a recently expired entry while the store was unreachable.
    stale: u64,
    /// Routing calls that returned an error.
    errors: u64,
    /// New users this gateway placed whose placement the store accepted, `{pod: count}`.
    placements: BTreeMap<u32, u64>,
    /// Snapshot reads (first use and refreshes).
    snapshot_reads: u64,
    /// Snapshot reads that failed (the last snapshot was kept).
    snapshot_read_errors: u64,
    /// Seconds since the snapshot in force was read (`None`: not read yet).
    snapshot_age_seconds: Option<f64>,
    /// The pods of the snapshot in force, by index.
    pods: Vec<PodMetrics>,
}

#[pymethods]
impl ServiceMetrics {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "service hits misses stale errors placements snapshot_reads snapshot_read_errors \
             snapshot_age_seconds pods",
        )
    }
}

impl From<&m::ServiceMetrics> for ServiceMetrics {
    fn from(s: &m::ServiceMetrics) -> Self {
        ServiceMetrics {
            service: s.service.clone(),
            hits: s.hits,
            misses: s.misses,
            stale: s.stale,
            errors: s.errors,
            placements: s.placements.clone(),
            snapshot_reads: s.snapshot_reads,
            snapshot_read_errors: s.snapshot_read_errors,
            snapshot_age_seconds: s.snapshot_age_seconds,
            pods: s.pods.iter().map(PodMetrics::from).collect(),
        }
    }
}

/// One pod as the gateway's snapshot sees it.
#[pyclass(module = "stateful_route", name = "PodMetrics", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    pod_index: u32,
    /// `"routable"`, `"draining"` (alive, takes no new users) or `"dead"`.
    state: String,
    /// The routing state it published, by name (`"READY"`, `"DENY_NEW_CALL"`, `"SHUTDOWN"`).
    routing_state: String,
    load: u32,
    weight: u32,
    /// Seconds since it last published.
    age_seconds: f64,
}

#[pymethods]
impl PodMetrics {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "pod_index state routing_state load weight age_seconds")
    }
}

impl From<&m::PodMetrics> for PodMetrics {
    fn from(p: &m::PodMetrics) -> Self {
        let (state, routing_state) = (p.state.clone(), p.routing_state.clone());
        PodMetrics {
            pod_index: p.pod_index,
            state,
            routing_state,
            load: p.load,
            weight: p.weight,
            age_seconds: p.age_seconds,
        }
    }
}

/// One store operation's calls.
#[pyclass(
    module = "stateful_route",
    name = "StoreCallMetrics",
    frozen,
    eq,
    get_all
)]
#[derive(Debug, Clone, PartialEq)]
pub struct StoreCallMetrics {
    /// The operation (`"get_link"`, `"set_link_if_absent"`, `"pod_states"`, …).
    op: String,
    calls: u64,
    /// Calls that failed (any error, timeouts included).
    errors: u64,
    /// Total seconds spent in them.
    seconds_sum: f64,
    /// Cumulative histogram: `[(upper bound in seconds, calls that took at most that), …]`.
    buckets: Vec<(f64, u64)>,
}

#[pymethods]
impl StoreCallMetrics {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "op calls errors seconds_sum buckets")
    }
}

impl From<&m::StoreCallMetrics> for StoreCallMetrics {
    fn from(c: &m::StoreCallMetrics) -> Self {
        let (op, buckets) = (c.op.clone(), c.buckets.clone());
        StoreCallMetrics {
            op,
            calls: c.calls,
            errors: c.errors,
            seconds_sum: c.seconds_sum,
            buckets,
        }
    }
}

/// The event stream (SPEC §11) as this gateway sees it.
#[pyclass(
    module = "stateful_route",
    name = "PropagationMetrics",
    frozen,
    eq,
    get_all
)]
#[derive(Debug, Clone, PartialEq)]
pub struct PropagationMetrics {
    /// Whether the store propagates changes to this driver at all.
    enabled: bool,
    /// Whether events are being delivered now.
    connected: bool,
    link_events: u64,
    pod_events: u64,
    /// Times the stream broke (the cache followed its TTL until it was back).
    gaps: u64,
    /// Cache entries dropped because their link changed elsewhere.
    invalidations: u64,
}

#[pymethods]
impl PropagationMetrics {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "enabled connected link_events pod_events gaps invalidations",
        )
    }
}

impl From<&m::PropagationMetrics> for PropagationMetrics {
    fn from(p: &m::PropagationMetrics) -> Self {
        PropagationMetrics {
            enabled: p.enabled,
            connected: p.connected,
            link_events: p.link_events,
            pod_events: p.pod_events,
            gaps: p.gaps,
            invalidations: p.invalidations,
        }
    }
}

/// One series: its name (a family's, or a histogram's `_bucket`/`_sum`/`_count`), its labels
/// in the family's order (`le` last for buckets) and its value.
#[pyclass(module = "stateful_route", name = "Sample", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    inner: m::Sample,
}

impl From<m::Sample> for Sample {
    fn from(inner: m::Sample) -> Self {
        Sample { inner }
    }
}

#[pymethods]
impl Sample {
    /// The series name, e.g. `"stateful_route_computes_total"`.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }
    /// The labels, `{name: value}` in the family's order.
    #[getter]
    fn labels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let labels = PyDict::new(py);
        for (k, v) in &self.inner.labels {
            labels.set_item(k, v)?;
        }
        Ok(labels)
    }
    #[getter]
    fn value(&self) -> f64 {
        self.inner.value
    }
    /// The name of the family the series belongs to (see `metric_families()`).
    #[getter]
    fn family(&self) -> Option<&'static str> {
        core::MetricsSnapshot::family_of(&self.inner.name).map(|f| f.name)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "name labels value")
    }
}
