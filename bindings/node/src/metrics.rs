//! The JS faces of the core's metrics snapshot (`core/src/metrics.rs`) and placement
//! explanation (`core/src/explain.rs`): plain objects, every count a JS number, "none" as
//! `null` (as in `Link`). Nothing is counted or decided here; the core's values are converted
//! one to one.

use std::collections::BTreeMap;

use napi_derive::napi;
use stateful_route::{self as core, metrics as m};

/// A count as a JS number (exact up to 2^53).
fn count(n: u64) -> f64 {
    n as f64
}

/// What a client driver counted and sees now (`ClientDriver#metrics`).
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// The driver's namespace.
    pub namespace: String,
    /// Whether counting is on (`BaseConfig.metrics`); gauges are reported either way.
    pub enabled: bool,
    /// Links held by the local cache (approximate).
    pub cache_entries: f64,
    /// Per service, sorted by name (`'_other'`: services beyond the label cap).
    pub services: Vec<ServiceMetrics>,
    /// Errors returned by routing calls, by code (`NO_AVAILABLE_POD`, `TIMEOUT`, …); codes
    /// never returned are absent.
    pub errors: BTreeMap<String, f64>,
    /// The store's calls by operation (shared by every driver on the store); operations never
    /// called are absent.
    pub store_calls: Vec<StoreCallMetrics>,
    /// The event stream (change propagation).
    pub propagation: PropagationMetrics,
}

impl From<m::MetricsSnapshot> for MetricsSnapshot {
    fn from(s: m::MetricsSnapshot) -> Self {
        MetricsSnapshot {
            namespace: s.namespace,
            enabled: s.enabled,
            cache_entries: count(s.cache_entries),
            services: s.services.into_iter().map(Into::into).collect(),
            errors: s.errors.into_iter().map(|(k, n)| (k, count(n))).collect(),
            store_calls: s.store_calls.into_iter().map(Into::into).collect(),
            propagation: s.propagation.into(),
        }
    }
}

/// One service's counters and the pods of this gateway's snapshot of it.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    /// The service.
    pub service: String,
    /// Routing calls answered from the cache.
    pub hits: f64,
    /// Routing calls answered by the store (lookups and placements).
    pub misses: f64,
    /// Routing calls answered by a recently expired entry while the store was unreachable.
    pub stale: f64,
    /// Routing calls that returned an error.
    pub errors: f64,
    /// New users this gateway placed whose placement the store accepted: pod index (as a
    /// string key) → count.
    pub placements: BTreeMap<String, f64>,
    /// Snapshot reads (first use and refreshes).
    pub snapshot_reads: f64,
    /// Snapshot reads that failed (the last snapshot was kept).
    pub snapshot_read_errors: f64,
    /// Seconds since the snapshot in force was read; `null`: not read yet.
    pub snapshot_age_seconds: Option<f64>,
    /// The pods of the snapshot in force, by index.
    pub pods: Vec<PodMetrics>,
}

impl From<m::ServiceMetrics> for ServiceMetrics {
    fn from(s: m::ServiceMetrics) -> Self {
        ServiceMetrics {
            service: s.service,
            hits: count(s.hits),
            misses: count(s.misses),
            stale: count(s.stale),
            errors: count(s.errors),
            placements: s
                .placements
                .into_iter()
                .map(|(pod, n)| (pod.to_string(), count(n)))
                .collect(),
            snapshot_reads: count(s.snapshot_reads),
            snapshot_read_errors: count(s.snapshot_read_errors),
            snapshot_age_seconds: s.snapshot_age_seconds,
            pods: s.pods.into_iter().map(Into::into).collect(),
        }
    }
}

/// One pod as the gateway's snapshot sees it.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct PodMetrics {
    /// The pod.
    pub pod_index: u32,
    /// `'routable'`, `'draining'` (alive, takes no new users) or `'dead'` (stale or shut down).
    #[napi(ts_type = "'routable' | 'draining' | 'dead'")]
    pub state: String,
    /// The routing state it published.
    #[napi(ts_type = "RoutingState")]
    pub routing_state: String,
    /// Its published load.
    pub load: u32,
    /// Its published placement weight.
    pub weight: u32,
    /// Seconds since it last published.
    pub age_seconds: f64,
}

impl From<m::PodMetrics> for PodMetrics {
    fn from(p: m::PodMetrics) -> Self {
        PodMetrics {
            pod_index: p.pod_index,
            state: p.state,
            routing_state: p.routing_state,
            load: p.load,
            weight: p.weight,
            age_seconds: p.age_seconds,
        }
    }
}

/// One store operation's calls.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct StoreCallMetrics {
    /// The operation (`'get_link'`, `'set_link_if_absent'`, `'pod_states'`, …).
    pub op: String,
    /// Calls made.
    pub calls: f64,
    /// Calls that failed (any error, timeouts included).
    pub errors: f64,
    /// Total seconds spent in them.
    pub seconds_sum: f64,
    /// The latency histogram, cumulative, by ascending upper bound (`+Inf` is `calls`).
    pub buckets: Vec<HistogramBucket>,
}

impl From<m::StoreCallMetrics> for StoreCallMetrics {
    fn from(c: m::StoreCallMetrics) -> Self {
        StoreCallMetrics {
            op: c.op,
            calls: count(c.calls),
            errors: count(c.errors),
            seconds_sum: c.seconds_sum,
            buckets: c
                .buckets
                .into_iter()
                .map(|(le, n)| HistogramBucket {
                    le,
                    count: count(n),
                })
                .collect(),
        }
    }
}

/// One bucket of a cumulative latency histogram.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct HistogramBucket {
    /// The upper bound, in seconds.
    pub le: f64,
    /// Calls that took at most `le`.
    pub count: f64,
}

/// The event stream (change propagation) as this gateway sees it.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct PropagationMetrics {
    /// Whether the store propagates changes to this driver at all.
    pub enabled: bool,
    /// Whether events are being delivered now.
    pub connected: bool,
    /// Link events received.
    pub link_events: f64,
    /// Pod events received.
    pub pod_events: f64,
    /// Gaps (the stream broke; the cache followed its TTL until it was back).
    pub gaps: f64,
    /// Cache entries dropped because their link changed elsewhere.
    pub invalidations: f64,
}

impl From<m::PropagationMetrics> for PropagationMetrics {
    fn from(p: m::PropagationMetrics) -> Self {
        PropagationMetrics {
            enabled: p.enabled,
            connected: p.connected,
            link_events: count(p.link_events),
            pod_events: count(p.pod_events),
            gaps: count(p.gaps),
            invalidations: count(p.invalidations),
        }
    }
}

/// What a placement for (uid, service) would do now, and why (`ClientDriver#explainPlacement`).
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The namespace.
    pub namespace: String,
    /// The user.
    pub uid: String,
    /// The service.
    pub service: String,
    /// The user's link in the store; `null` if none.
    pub link: Option<ExplainedLink>,
    /// The pod this gateway's cache holds for the user; `null` if none.
    pub cached_pod: Option<u32>,
    /// The placement policy in force for the service (`'custom'` for a JS function).
    pub policy: String,
    /// Its load factor (`'rendezvous'`; 0 for the others).
    pub load_factor: f64,
    /// The good set's load range (`loadRange`).
    pub load_range: u32,
    /// Every pod of the snapshot, by index.
    pub pods: Vec<ExplainedPod>,
    /// The pod a new user would be placed on now (for random policies, one draw); `null`:
    /// none is routable.
    pub would_place_on: Option<u32>,
    /// The pod `computeLinkedPod` would answer now; `null`: it would fail (see `summary`).
    pub answer: Option<u32>,
    /// The answer in words.
    pub summary: String,
    /// Seconds since the snapshot was read; `null`: not read.
    pub snapshot_age_seconds: Option<f64>,
}

impl From<core::Explanation> for Explanation {
    fn from(e: core::Explanation) -> Self {
        Explanation {
            namespace: e.namespace,
            uid: e.uid,
            service: e.service,
            link: e.link.map(Into::into),
            cached_pod: e.cached_pod,
            policy: e.policy,
            load_factor: e.load_factor,
            load_range: e.load_range,
            pods: e.pods.into_iter().map(Into::into).collect(),
            would_place_on: e.would_place_on,
            answer: e.answer,
            summary: e.summary,
            snapshot_age_seconds: e.snapshot_age_seconds,
        }
    }
}

/// The link a user has now, as the store holds it.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct ExplainedLink {
    /// The pod it points to.
    pub pod_index: u32,
    /// Whether it is persistent (no TTL).
    pub persistent: bool,
    /// Remaining lifetime of a temporary link in seconds; `null` for a persistent link.
    pub ttl_seconds: Option<f64>,
    /// Whether that pod is alive in this gateway's snapshot.
    pub pod_alive: bool,
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

/// One pod of the service as a placement sees it.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ExplainedPod {
    /// The pod.
    pub pod_index: u32,
    /// Its published load.
    pub load: u32,
    /// Placements this gateway made on it since the snapshot was read.
    pub placed: u32,
    /// The routing state it published.
    #[napi(ts_type = "RoutingState")]
    pub routing_state: String,
    /// Whether it is alive (published recently, not shut down).
    pub alive: bool,
    /// Seconds since it published.
    pub age_seconds: f64,
    /// Its published placement weight.
    pub weight: u32,
    /// `'kept'` (a candidate), `'warming'` (a candidate with the probability `reason` gives:
    /// slow start), `'dead'`, `'not_routable'` (alive, takes no new users) or
    /// `'over_load_range'`.
    #[napi(ts_type = "'kept' | 'warming' | 'dead' | 'not_routable' | 'over_load_range'")]
    pub verdict: String,
    /// The verdict in words, with the numbers behind it.
    pub reason: String,
}

impl From<core::ExplainedPod> for ExplainedPod {
    fn from(p: core::ExplainedPod) -> Self {
        ExplainedPod {
            pod_index: p.pod_index,
            load: p.load,
            placed: p.placed,
            routing_state: p.routing_state,
            alive: p.alive,
            age_seconds: p.age_seconds,
            weight: p.weight,
            verdict: p.verdict,
            reason: p.reason,
        }
    }
}
