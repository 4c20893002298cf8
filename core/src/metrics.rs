//! What a gateway did and sees, for operators (README "Metrics").
//!
//! Counters live next to what they count and are read only when a snapshot is taken: the hit
//! counter of a service is sharded over cache lines (a thread adds to its own shard, so the hit
//! path takes no contended atomic); everything else counts on paths that wait for the store
//! anyway. A [`MetricsSnapshot`] is the structured form; [`MetricsSnapshot::samples`] the flat
//! one (what C and Go read), and [`MetricsSnapshot::to_prometheus`] the text exposition a
//! service appends to its own `/metrics`. Labels are bounded: no uid ever; services beyond
//! [`MAX_LABELLED_SERVICES`] count under `service="_other"`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::error::ErrorKind;

/// Most services that get their own `service` label; later ones share `"_other"`.
pub const MAX_LABELLED_SERVICES: usize = 256;
/// The label value shared by services beyond [`MAX_LABELLED_SERVICES`].
pub const OTHER_SERVICE: &str = "_other";

/// Upper bounds (seconds) of the store-call latency histogram's buckets (`+Inf` implied).
pub const STORE_CALL_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

const SHARDS: usize = 16;

#[repr(align(128))]
#[derive(Default)]
struct Padded(AtomicU64);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

#[inline]
fn shard() -> usize {
    SHARD.with(|s| {
        let v = s.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
        s.set(v);
        v
    })
}

/// A counter spread over cache lines: each thread adds to its own shard.
pub(crate) struct Sharded {
    shards: Box<[Padded]>,
}

impl Default for Sharded {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }
}

impl Sharded {
    #[inline]
    pub fn inc(&self) {
        self.shards[shard()].0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add(&self, n: u64) {
        self.shards[shard()].0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// The counters of one service (or of `_other`), shared by every view of it.
#[derive(Default)]
pub(crate) struct ServiceCounters {
    pub hits: Sharded,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub errors: AtomicU64,
    pub placements: Mutex<BTreeMap<u32, u64>>,
    pub refreshes: AtomicU64,
    pub refresh_errors: AtomicU64,
    /// Placements already reported to the store, by pod.
    pub reported: Mutex<BTreeMap<u32, u64>>,
    /// The counters of services beyond the label cap (not reported: they mix services).
    pub shared: bool,
}

impl ServiceCounters {
    /// Placements not yet reported to the store, by pod.
    pub fn unreported(&self) -> Vec<(u32, u64)> {
        if self.shared {
            return Vec::new();
        }
        let placed = self.placements.lock().unwrap_or_else(|p| p.into_inner());
        let reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        placed
            .iter()
            .filter_map(|(pod, n)| {
                let r = reported.get(pod).copied().unwrap_or(0);
                (*n > r).then(|| (*pod, n - r))
            })
            .collect()
    }

    /// Marks `counts` as reported.
    pub fn reported(&self, counts: &[(u32, u64)]) {
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        for (pod, n) in counts {
            *reported.entry(*pod).or_default() += n;
        }
    }

    pub fn placed(&self, pod: u32) {
        *self
            .placements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pod)
            .or_default() += 1;
    }
}

/// How a routing call was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Miss,
    Stale,
    Error(ErrorKind),
}

/// A client driver's counters.
pub(crate) struct ClientMetrics {
    pub enabled: bool,
    services: RwLock<HashMap<String, Arc<ServiceCounters>, foldhash::fast::RandomState>>,
    other: Arc<ServiceCounters>,
    errors: [AtomicU64; ErrorKind::ALL.len()],
    pub link_events: AtomicU64,
    pub pod_events: AtomicU64,
    pub gaps: AtomicU64,
    pub invalidations: AtomicU64,
}

impl ClientMetrics {
    pub fn new(enabled: bool) -> ClientMetrics {
        ClientMetrics {
            enabled,
            services: RwLock::new(HashMap::default()),
            other: Arc::new(ServiceCounters {
                shared: true,
                ..ServiceCounters::default()
            }),
            errors: Default::default(),
            link_events: AtomicU64::new(0),
            pod_events: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The counters of `service` (made on first use; `_other` beyond the cap).
    pub fn service(&self, service: &str) -> Arc<ServiceCounters> {
        if let Some(c) = self
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
        {
            return c.clone();
        }
        let mut map = self.services.write().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(service) {
            return c.clone();
        }
        if map.len() >= MAX_LABELLED_SERVICES {
            return self.other.clone();
        }
        map.entry(service.to_string()).or_default().clone()
    }

    /// Counts a routing call answered by the store, from stale cache, or failed.
    pub fn answered(&self, counters: &ServiceCounters, outcome: Outcome) {
        if !self.enabled {
            return;
        }
        match outcome {
            Outcome::Miss => counters.misses.fetch_add(1, Ordering::Relaxed),
            Outcome::Stale => counters.stale.fetch_add(1, Ordering::Relaxed),
            Outcome::Error(kind) => {
                self.error(kind);
                counters.errors.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    /// Counts an error returned by a routing call.
    pub fn error(&self, kind: ErrorKind) {
        if self.enabled {
            let i = ErrorKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters, by service (sorted; `_other` last if used).
    pub fn services(&self) -> Vec<(String, Arc<ServiceCounters>)> {
        let map = self.services.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if map.len() >= MAX_LABELLED_SERVICES {
            out.push((OTHER_SERVICE.to_string(), self.other.clone()));
        }
        out
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        ErrorKind::ALL
            .iter()
            .zip(&self.errors)
            .map(|(k, n)| (k.as_str().to_string(), n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// The operations a store call is counted under (`op` label).
pub const STORE_OPS: [&str; 19] = [
    "get_link",
    "set_link",
    "set_link_if_absent",
    "try_set_link",
    "remove_link",
    "replace_temporary_link",
    "get_link_services",
    "batch_get_links",
    "publish_pod_state",
    "pod_states",
    "set_workload_state",
    "workload_states",
    "set_tag",
    "get_tag",
    "set_cordon",
    "cordoned",
    "add_placements",
    "placements",
    "other",
];

#[derive(Default)]
struct OpMetrics {
    buckets: [AtomicU64; STORE_CALL_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
    errors: AtomicU64,
}

/// A store's call latencies by operation, shared by every driver on the store.
#[derive(Default)]
pub(crate) struct StoreMetrics {
    ops: [OpMetrics; STORE_OPS.len()],
}

impl std::fmt::Debug for StoreMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMetrics").finish_non_exhaustive()
    }
}

impl StoreMetrics {
    pub fn record(&self, op: &str, took: Duration, failed: bool) {
        let i = STORE_OPS
            .iter()
            .position(|o| *o == op)
            .unwrap_or(STORE_OPS.len() - 1);
        let m = &self.ops[i];
        let secs = took.as_secs_f64();
        if let Some(b) = STORE_CALL_BUCKETS.iter().position(|le| secs <= *le) {
            m.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        m.count.fetch_add(1, Ordering::Relaxed);
        m.sum_ns.fetch_add(
            took.as_nanos().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
        if failed {
            m.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> Vec<StoreCallMetrics> {
        STORE_OPS
            .iter()
            .zip(&self.ops)
            .filter(|(_, m)| m.count.load(Ordering::Relaxed) > 0)
            .map(|(op, m)| {
                let mut cumulative = 0;
                let buckets = STORE_CALL_BUCKETS
                    .iter()
                    .zip(&m.buckets)
                    .map(|(le, n)| {
                        cumulative += n.load(Ordering::Relaxed);
                        (*le, cumulative)
                    })
                    .collect();
                StoreCallMetrics {
                    op: op.to_string(),
                    calls: m.count.load(Ordering::Relaxed),
                    errors: m.errors.load(Ordering::Relaxed),
                    seconds_sum: m.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
                    buckets,
                }
            })
            .collect()
    }
}

/// One pod as the gateway's snapshot sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodMetrics {
    /// The pod.
    pub pod_index: u32,
    /// `routable`, `draining` (alive, takes no new users) or `dead` (stale or shut down).
    pub state: String,
    /// The routing state it published (`READY`, `DENY_NEW_CALL`, `SHUTDOWN`).
    pub routing_state: String,
    /// Its published load.
    pub load: u32,
    /// Its published weight.
    pub weight: u32,
    /// Seconds since it last published (store clock at the read, plus time since the read).
    pub age_seconds: f64,
}

/// One service's counters and pods.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceMetrics {
    /// The service (`_other` for services beyond the label cap).
    pub service: String,
    /// Routing calls answered from the cache.
    pub hits: u64,
    /// Routing calls answered by the store (lookups and placements).
    pub misses: u64,
    /// Routing calls answered by a recently expired entry while the store was unreachable.
    pub stale: u64,
    /// Routing calls that returned an error.
    pub errors: u64,
    /// New users this gateway placed whose placement the store accepted, by pod.
    pub placements: BTreeMap<u32, u64>,
    /// Snapshot reads (first use and refreshes) and how many failed.
    pub snapshot_reads: u64,
    /// Snapshot reads that failed (the last snapshot was kept).
    pub snapshot_read_errors: u64,
    /// Seconds since the snapshot in force was read (`None`: not read yet).
    pub snapshot_age_seconds: Option<f64>,
    /// The pods of the snapshot in force, by index.
    pub pods: Vec<PodMetrics>,
}

impl ServiceMetrics {
    /// How many pods are in `state` (`routable`, `draining`, `dead`).
    pub fn pods_in(&self, state: &str) -> usize {
        self.pods.iter().filter(|p| p.state == state).count()
    }
}

/// One store operation's calls.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreCallMetrics {
    /// The operation (`get_link`, `set_link_if_absent`, `pod_states`, …).
    pub op: String,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (any error, timeouts included).
    pub errors: u64,
    /// Total seconds spent in them.
    pub seconds_sum: f64,
    /// Cumulative histogram: (upper bound in seconds, calls that took at most that).
    pub buckets: Vec<(f64, u64)>,
}

/// The event stream (SPEC §11) as this gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationMetrics {
    /// Whether the store propagates changes to this driver at all.
    pub enabled: bool,
    /// Whether events are being delivered now.
    pub connected: bool,
    /// Link events received.
    pub link_events: u64,
    /// Pod events received.
    pub pod_events: u64,
    /// Gaps (the stream broke; the cache followed its TTL until it was back).
    pub gaps: u64,
    /// Cache entries dropped because their link changed elsewhere.
    pub invalidations: u64,
}

/// Everything at once: the structured snapshot of a client driver's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// The driver's namespace.
    pub namespace: String,
    /// Whether counting is on (`BaseConfig::metrics`); gauges are reported either way.
    pub enabled: bool,
    /// Links held by the local cache (approximate).
    pub cache_entries: u64,
    /// Per service, sorted by name.
    pub services: Vec<ServiceMetrics>,
    /// Errors returned by routing calls, by code (`NO_AVAILABLE_POD`, `TIMEOUT`, …).
    pub errors: BTreeMap<String, u64>,
    /// The store's calls by operation (shared by every driver on the store).
    pub store_calls: Vec<StoreCallMetrics>,
    /// The event stream.
    pub propagation: PropagationMetrics,
}

/// The kind of a Prometheus metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// `_bucket`, `_sum` and `_count` series.
    Histogram,
}

impl MetricKind {
    /// `counter`, `gauge` or `histogram`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One family: its name, kind and help (README "Metrics" lists the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricFamily {
    /// The family's name (a histogram's series add `_bucket`, `_sum`, `_count`).
    pub name: &'static str,
    /// Its kind.
    pub kind: MetricKind,
    /// Its labels.
    pub labels: &'static [&'static str],
    /// What it means.
    pub help: &'static str,
}

/// Every family a snapshot can produce, in exposition order.
pub const FAMILIES: [MetricFamily; 15] = [
    MetricFamily {
        name: "stateful_route_computes_total",
        kind: MetricKind::Counter,
        labels: &["service", "result"],
        help: "Routing calls by how they were answered (hit: cache; miss: store; stale: expired entry served while the store was unreachable; error).",
    },
    MetricFamily {
        name: "stateful_route_placements_total",
        kind: MetricKind::Counter,
        labels: &["service", "pod"],
        help: "New users this gateway placed whose placement the store accepted.",
    },
    MetricFamily {
        name: "stateful_route_errors_total",
        kind: MetricKind::Counter,
        labels: &["kind"],
        help: "Errors returned by routing calls, by code.",
    },
    MetricFamily {
        name: "stateful_route_store_call_seconds",
        kind: MetricKind::Histogram,
        labels: &["op"],
        help: "Store call latency by operation (shared by every driver on the store).",
    },
    MetricFamily {
        name: "stateful_route_store_call_errors_total",
        kind: MetricKind::Counter,
        labels: &["op"],
        help: "Store calls that failed, by operation.",
    },
    MetricFamily {
        name: "stateful_route_cache_entries",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "Links held by the gateway's local cache (approximate).",
    },
    MetricFamily {
        name: "stateful_route_pods",
        kind: MetricKind::Gauge,
        labels: &["service", "state"],
        help: "Pods of the snapshot in force by state (routable, draining, dead).",
    },
    MetricFamily {
        name: "stateful_route_pod_load",
        kind: MetricKind::Gauge,
        labels: &["service", "pod"],
        help: "Load each pod last published.",
    },
    MetricFamily {
        name: "stateful_route_pod_state_age_seconds",
        kind: MetricKind::Gauge,
        labels: &["service", "pod"],
        help: "Seconds since each pod last published its state.",
    },
    MetricFamily {
        name: "stateful_route_snapshot_age_seconds",
        kind: MetricKind::Gauge,
        labels: &["service"],
        help: "Seconds since the gateway last read the service's pod states.",
    },
    MetricFamily {
        name: "stateful_route_snapshot_reads_total",
        kind: MetricKind::Counter,
        labels: &["service", "result"],
        help: "Reads of a service's pod states (ok, error).",
    },
    MetricFamily {
        name: "stateful_route_events_total",
        kind: MetricKind::Counter,
        labels: &["type"],
        help: "Propagation events received (link, pod).",
    },
    MetricFamily {
        name: "stateful_route_event_gaps_total",
        kind: MetricKind::Counter,
        labels: &[],
        help: "Times the event stream broke (the cache followed its TTL until it was back).",
    },
    MetricFamily {
        name: "stateful_route_event_stream_up",
        kind: MetricKind::Gauge,
        labels: &[],
        help: "1 while propagation events are delivered, 0 otherwise (or when propagation is off).",
    },
    MetricFamily {
        name: "stateful_route_cache_invalidations_total",
        kind: MetricKind::Counter,
        labels: &[],
        help: "Cache entries dropped because their link changed elsewhere.",
    },
];

/// One series: a family (or a histogram's `_bucket`/`_sum`/`_count`), labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The series name, e.g. `stateful_route_computes_total` or
    /// `stateful_route_store_call_seconds_bucket`.
    pub name: String,
    /// Label pairs in the family's order (`le` last for buckets).
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        value,
    }
}

fn le(v: f64) -> String {
    if v.is_infinite() {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

impl MetricsSnapshot {
    /// The family a series belongs to.
    pub fn family_of(series: &str) -> Option<&'static MetricFamily> {
        FAMILIES.iter().find(|f| {
            series == f.name
                || (f.kind == MetricKind::Histogram
                    && series
                        .strip_prefix(f.name)
                        .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)))
        })
    }

    /// Every series of this snapshot, family by family in [`FAMILIES`] order.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for s in &self.services {
            for (result, n) in [
                ("hit", s.hits),
                ("miss", s.misses),
                ("stale", s.stale),
                ("error", s.errors),
            ] {
                out.push(sample(
                    "stateful_route_computes_total",
                    &[("service", &s.service), ("result", result)],
                    n as f64,
                ));
            }
        }
        for s in &self.services {
            for (pod, n) in &s.placements {
                out.push(sample(
                    "stateful_route_placements_total",
                    &[("service", &s.service), ("pod", &pod.to_string())],
                    *n as f64,
                ));
            }
        }
        for (kind, n) in &self.errors {
            out.push(sample(
                "stateful_route_errors_total",
                &[("kind", kind)],
                *n as f64,
            ));
        }
        for c in &self.store_calls {
            let name = "stateful_route_store_call_seconds";
            for (b, n) in c.buckets.iter().chain([&(f64::INFINITY, c.calls)]) {
                out.push(sample(
                    &format!("{name}_bucket"),
                    &[("op", &c.op), ("le", &le(*b))],
                    *n as f64,
                ));
            }
            out.push(sample(
                &format!("{name}_sum"),
                &[("op", &c.op)],
                c.seconds_sum,
            ));
            out.push(sample(
                &format!("{name}_count"),
                &[("op", &c.op)],
                c.calls as f64,
            ));
        }
        for c in &self.store_calls {
            out.push(sample(
                "stateful_route_store_call_errors_total",
                &[("op", &c.op)],
                c.errors as f64,
            ));
        }
        out.push(sample(
            "stateful_route_cache_entries",
            &[],
            self.cache_entries as f64,
        ));
        for s in self.services.iter().filter(|s| s.service != OTHER_SERVICE) {
            for state in ["routable", "draining", "dead"] {
                out.push(sample(
                    "stateful_route_pods",
                    &[("service", &s.service), ("state", state)],
                    s.pods_in(state) as f64,
                ));
            }
        }
        for (family, f) in [
            (
                "stateful_route_pod_load",
                (|p: &PodMetrics| p.load as f64) as fn(&PodMetrics) -> f64,
            ),
            ("stateful_route_pod_state_age_seconds", |p| p.age_seconds),
        ] {
            for s in &self.services {
                for p in &s.pods {
                    out.push(sample(
                        family,
                        &[("service", &s.service), ("pod", &p.pod_index.to_string())],
                        f(p),
                    ));
                }
            }
        }
        for s in &self.services {
            if let Some(age) = s.snapshot_age_seconds {
                out.push(sample(
                    "stateful_route_snapshot_age_seconds",
                    &[("service", &s.service)],
                    age,
                ));
            }
        }
        for s in &self.services {
            let ok = s.snapshot_reads - s.snapshot_read_errors.min(s.snapshot_reads);
            for (result, n) in [("ok", ok), ("error", s.snapshot_read_errors)] {
                out.push(sample(
                    "stateful_route_snapshot_reads_total",
                    &[("service", &s.service), ("result", result)],
                    n as f64,
                ));
            }
        }
        let p = &self.propagation;
        for (t, n) in [("link", p.link_events), ("pod", p.pod_events)] {
            out.push(sample(
                "stateful_route_events_total",
                &[("type", t)],
                n as f64,
            ));
        }
        out.push(sample(
            "stateful_route_event_gaps_total",
            &[],
            p.gaps as f64,
        ));
        out.push(sample(
            "stateful_route_event_stream_up",
            &[],
            if p.enabled && p.connected { 1.0 } else { 0.0 },
        ));
        out.push(sample(
            "stateful_route_cache_invalidations_total",
            &[],
            p.invalidations as f64,
        ));
        out
    }

    /// The Prometheus text exposition format (version 0.0.4): `# HELP`, `# TYPE` and the
    /// series of each family that has any. Append it to a service's own `/metrics`.
    pub fn to_prometheus(&self) -> String {
        let samples = self.samples();
        let mut out = String::new();
        for f in &FAMILIES {
            let mut series = samples
                .iter()
                .filter(|s| MetricsSnapshot::family_of(&s.name).is_some_and(|g| g.name == f.name))
                .peekable();
            if series.peek().is_none() {
                continue;
            }
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for s in series {
                out.push_str(&s.name);
                if !s.labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in s.labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", number(s.value));
            }
        }
        out
    }

    /// The service's entry, if it has one.
    pub fn service(&self, service: &str) -> Option<&ServiceMetrics> {
        self.services.iter().find(|s| s.service == service)
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_counts_from_many_threads() {
        let c = Arc::new(Sharded::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.inc()))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(c.get(), 8000);
    }

    #[test]
    fn services_beyond_the_cap_share_other() {
        let m = ClientMetrics::new(true);
        for i in 0..MAX_LABELLED_SERVICES + 10 {
            m.service(&format!("s{i}"))
                .misses
                .fetch_add(1, Ordering::Relaxed);
        }
        let s = m.services();
        assert_eq!(s.len(), MAX_LABELLED_SERVICES + 1);
        assert_eq!(s.last().unwrap().0, OTHER_SERVICE);
        assert_eq!(s.last().unwrap().1.misses.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = StoreMetrics::default();
        m.record("get_link", Duration::from_micros(50), false);
        m.record("get_link", Duration::from_millis(3), true);
        m.record("get_link", Duration::from_secs(10), false);
        let s = m.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].calls, 3);
        assert_eq!(s[0].errors, 1);
        assert_eq!(s[0].buckets[0], (0.0001, 1));
        assert_eq!(s[0].buckets[5], (0.005, 2));
        assert_eq!(s[0].buckets.last().unwrap().1, 2);
    }

    #[test]
    fn text_escapes_label_values_and_names_every_family() {
        let snap = MetricsSnapshot {
            namespace: "default".into(),
            enabled: true,
            cache_entries: 2,
            services: vec![ServiceMetrics {
                service: "a\"b".into(),
                hits: 3,
                misses: 1,
                stale: 0,
                errors: 0,
                placements: BTreeMap::from([(2, 1)]),
                snapshot_reads: 1,
                snapshot_read_errors: 0,
                snapshot_age_seconds: Some(0.5),
                pods: vec![],
            }],
            errors: BTreeMap::new(),
            store_calls: vec![],
            propagation: PropagationMetrics {
                enabled: true,
                connected: true,
                link_events: 0,
                pod_events: 0,
                gaps: 0,
                invalidations: 0,
            },
        };
        let t = snap.to_prometheus();
        assert!(
            t.contains("stateful_route_computes_total{service=\"a\\\"b\",result=\"hit\"} 3\n"),
            "{t}"
        );
        assert!(t.contains("# TYPE stateful_route_placements_total counter\n"));
        assert!(t.contains("stateful_route_snapshot_age_seconds{service=\"a\\\"b\"} 0.5\n"));
        for s in snap.samples() {
            assert!(MetricsSnapshot::family_of(&s.name).is_some(), "{}", s.name);
        }
    }
}
