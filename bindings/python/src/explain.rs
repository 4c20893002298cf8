//! `ClientDriver.explain_placement()` as Python objects: `Explanation`, `ExplainedLink`,
//! `ExplainedPod` (frozen copies of the core's, same field names). The dry run and every
//! verdict are the core's.

use pyo3::prelude::*;
use stateful_route as core;

use crate::config::fields_repr;

/// What a placement for (uid, service) would do now, and why. Writes nothing, counts nothing.
#[pyclass(module = "stateful_route", name = "Explanation", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    namespace: String,
    uid: String,
    service: String,
    /// The user's link in the store, or `None`.
    link: Option<ExplainedLink>,
    /// The pod this gateway's cache holds for the user, or `None`.
    cached_pod: Option<u32>,
    /// The placement policy in force for the service (`"p2c"`, `"round_robin"`, …).
    policy: String,
    /// Its load factor (rendezvous; 0 for the others).
    load_factor: f64,
    /// The good set's `load_range`.
    load_range: u32,
    /// Every pod of the snapshot, by index.
    pods: Vec<ExplainedPod>,
    /// The pod a new user would be placed on now (random policies: one draw), or `None`.
    would_place_on: Option<u32>,
    /// The pod `compute_linked_pod` would answer now (`None`: it would fail, see `summary`).
    answer: Option<u32>,
    /// The answer in words.
    summary: String,
    /// Seconds since the snapshot was read.
    snapshot_age_seconds: Option<f64>,
}

#[pymethods]
impl Explanation {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "namespace uid service link cached_pod policy load_factor load_range pods \
             would_place_on answer summary snapshot_age_seconds",
        )
    }
}

impl From<core::Explanation> for Explanation {
    fn from(e: core::Explanation) -> Self {
        let (namespace, uid, service, policy) = (e.namespace, e.uid, e.service, e.policy);
        Explanation {
            namespace,
            uid,
            service,
            link: e.link.map(ExplainedLink::from),
            cached_pod: e.cached_pod,
            policy,
            load_factor: e.load_factor,
            load_range: e.load_range,
            pods: e.pods.into_iter().map(ExplainedPod::from).collect(),
            would_place_on: e.would_place_on,
            answer: e.answer,
            summary: e.summary,
            snapshot_age_seconds: e.snapshot_age_seconds,
        }
    }
}

/// The link a user has now in the store.
#[pyclass(module = "stateful_route", name = "ExplainedLink", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedLink {
    pod_index: u32,
    /// Whether it has no TTL.
    persistent: bool,
    /// Remaining lifetime of a temporary link in seconds; `None` when persistent.
    ttl_seconds: Option<f64>,
    /// Whether that pod is alive in this gateway's snapshot.
    pod_alive: bool,
}

#[pymethods]
impl ExplainedLink {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "pod_index persistent ttl_seconds pod_alive")
    }
}

impl From<core::ExplainedLink> for ExplainedLink {
    fn from(l: core::ExplainedLink) -> Self {
        ExplainedLink {
            pod_index: l.pod_index,
            persistent: l.persistent,
            ttl_seconds: l.ttl_seconds,
            pod_alive: l.pod_alive,
        }
    }
}

/// One pod of the service as a placement sees it, with the good set's verdict on it.
#[pyclass(module = "stateful_route", name = "ExplainedPod", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedPod {
    pod_index: u32,
    /// Its published load.
    load: u32,
    /// Placements this gateway made on it since the snapshot was read.
    placed: u32,
    /// The routing state it published, by name (`"READY"`, `"DENY_NEW_CALL"`, `"SHUTDOWN"`).
    routing_state: String,
    alive: bool,
    /// Seconds since it published.
    age_seconds: f64,
    weight: u32,
    /// `"kept"`, `"warming"`, `"dead"`, `"not_routable"` or `"over_load_range"`.
    verdict: String,
    /// The verdict in words, with the numbers behind it.
    reason: String,
}

#[pymethods]
impl ExplainedPod {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "pod_index load placed routing_state alive age_seconds weight verdict reason",
        )
    }
}

impl From<core::ExplainedPod> for ExplainedPod {
    fn from(p: core::ExplainedPod) -> Self {
        let (routing_state, verdict, reason) = (p.routing_state, p.verdict, p.reason);
        ExplainedPod {
            pod_index: p.pod_index,
            load: p.load,
            placed: p.placed,
            routing_state,
            alive: p.alive,
            age_seconds: p.age_seconds,
            weight: p.weight,
            verdict,
            reason,
        }
    }
}
