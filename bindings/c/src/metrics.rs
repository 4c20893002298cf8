//! Metrics and explain (README "Metrics"): a client driver's series as the core's flat
//! `Sample` list, its Prometheus text, the families' metadata (a static table) and
//! `sr_client_explain_placement`, the core's dry run of a placement.

use std::ffi::{c_char, CString};
use std::sync::LazyLock;

use sr_core::metrics::{MetricKind, Sample, FAMILIES};
use sr_core::{ExplainedPod, Explanation, MetricsSnapshot, RoutingState};

use crate::client::sr_client_driver;
use crate::config::sr_routing_state;
use crate::convert::{boxed_slice, pod_or_none, sr_str, sr_string_free, string_out, take};
use crate::error::{c_string_lossy, sr_error, sr_status};
use crate::panic::{block_on, quietly, with};
use crate::store::link_args;

/// One label of a sample: `name="value"`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_label {
    /// The label's name, NUL-terminated.
    pub name: *mut c_char,
    /// Its value, NUL-terminated.
    pub value: *mut c_char,
}

/// One series of a client driver's metrics (the core's `Sample`): a family's name, or a
/// histogram's `_bucket` / `_sum` / `_count`; its labels in the family's order (`le` last for a
/// bucket); its value. The same numbers as `sr_client_metrics_text`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_sample {
    /// The series name, NUL-terminated, e.g. `stateful_route_computes_total`.
    pub name: *mut c_char,
    /// `labels_len` labels.
    pub labels: *mut sr_label,
    /// Number of labels.
    pub labels_len: usize,
    /// The value.
    pub value: f64,
}

/// Every series of a client driver's metrics, family by family in the order of
/// `sr_metric_families`. Free with `sr_sample_list_free`.
#[repr(C)]
#[derive(Debug)]
pub struct sr_sample_list {
    /// `len` samples.
    pub samples: *mut sr_sample,
    /// Number of samples.
    pub len: usize,
}

impl sr_sample_list {
    fn new(samples: Vec<Sample>) -> sr_sample_list {
        let samples = samples.into_iter().map(|s| {
            let labels = s.labels.into_iter().map(|(name, value)| sr_label {
                name: string_out(Some(name)),
                value: string_out(Some(value)),
            });
            let (labels, labels_len) = boxed_slice(labels.collect());
            sr_sample {
                name: string_out(Some(s.name)),
                labels,
                labels_len,
                value: s.value,
            }
        });
        let (samples, len) = boxed_slice(samples.collect());
        sr_sample_list { samples, len }
    }
}

/// Frees the samples of `list` (their names and labels) and sets it to `{NULL, 0}`. NULL, or
/// a list already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_sample_list_free(list: *mut sr_sample_list) {
    // SAFETY: the caller passes NULL or a list this library filled, not freed yet.
    if let Some(l) = unsafe { list.as_mut() } {
        // SAFETY: each string came from `CString::into_raw`, each label list from
        // `boxed_slice`.
        for mut s in unsafe { take(&mut l.samples, &mut l.len) } {
            unsafe { sr_string_free(s.name) };
            for label in unsafe { take(&mut s.labels, &mut s.labels_len) } {
                unsafe {
                    sr_string_free(label.name);
                    sr_string_free(label.value);
                }
            }
        }
    }
}

/// The kind of a metric family, as Prometheus types it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_metric_kind {
    /// Only goes up.
    SR_METRIC_COUNTER = 0,
    /// Goes up and down.
    SR_METRIC_GAUGE = 1,
    /// `_bucket` (cumulative, by `le`), `_sum` and `_count` series.
    SR_METRIC_HISTOGRAM = 2,
}

/// One metric family (the core's `metrics::FAMILIES`): its name, kind, labels and help, for a
/// collector that builds typed metrics of `sr_client_metrics`' samples. Static: never free it.
#[repr(C)]
#[derive(Debug)]
pub struct sr_metric_family {
    /// The family's name, NUL-terminated (a histogram's series add `_bucket`, `_sum`, `_count`).
    pub name: *const c_char,
    /// Its kind.
    pub kind: sr_metric_kind,
    /// `labels_len` label names, NUL-terminated, in the order samples carry them (a bucket adds
    /// `le` last).
    pub labels: *const *const c_char,
    /// Number of label names.
    pub labels_len: usize,
    /// What it means (the `# HELP` text), NUL-terminated.
    pub help: *const c_char,
}

/// The C form of `FAMILIES`, made once; the pointers point into `_strings` and `_labels`.
struct Families {
    table: Vec<sr_metric_family>,
    _strings: Vec<CString>,
    _labels: Vec<Vec<*const c_char>>,
}

// SAFETY: the table is immutable once made and its pointers point into the same struct's heap
// allocations, which live as long as the static.
unsafe impl Send for Families {}
// SAFETY: as above.
unsafe impl Sync for Families {}

static FAMILY_TABLE: LazyLock<Families> = LazyLock::new(|| {
    let mut strings = Vec::new();
    let mut labels = Vec::new();
    let mut keep = |s: &str| {
        let c = c_string_lossy(s.to_string());
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let table = FAMILIES
        .iter()
        .map(|f| {
            let names: Vec<*const c_char> = f.labels.iter().map(|l| keep(l)).collect();
            let family = sr_metric_family {
                name: keep(f.name),
                kind: match f.kind {
                    MetricKind::Counter => sr_metric_kind::SR_METRIC_COUNTER,
                    MetricKind::Gauge => sr_metric_kind::SR_METRIC_GAUGE,
                    MetricKind::Histogram => sr_metric_kind::SR_METRIC_HISTOGRAM,
                },
                labels: names.as_ptr(),
                labels_len: names.len(),
                help: keep(f.help),
            };
            labels.push(names);
            family
        })
        .collect();
    Families {
        table,
        _strings: strings,
        _labels: labels,
    }
});

/// The metric families a client driver reports, in exposition order: `*families_out` (unless
/// NULL) receives a static array of them (never free it). Returns their number.
#[no_mangle]
pub unsafe extern "C" fn sr_metric_families(families_out: *mut *const sr_metric_family) -> usize {
    quietly(0, || {
        let table = &FAMILY_TABLE.table;
        if !families_out.is_null() {
            // SAFETY: the caller passes a pointer valid for writes.
            unsafe { *families_out = table.as_ptr() };
        }
        table.len()
    })
}

/// The family the series `series` belongs to (a family's name, or a histogram's `_bucket`,
/// `_sum` or `_count`), as an entry of `sr_metric_families`' static array; NULL for a name that
/// is none (or invalid UTF-8).
#[no_mangle]
pub unsafe extern "C" fn sr_metric_family_of(series: sr_str) -> *const sr_metric_family {
    quietly(std::ptr::null(), || {
        // SAFETY: the caller guarantees `series` is valid for its length.
        let Ok(series) = (unsafe { series.get("series") }) else {
            return std::ptr::null();
        };
        MetricsSnapshot::family_of(series)
            .and_then(|f| FAMILIES.iter().position(|g| g.name == f.name))
            .map_or(std::ptr::null(), |i| &FAMILY_TABLE.table[i] as *const _)
    })
}

/// `metrics`: what this driver counted and sees now, as the flat list of series (the core's
/// `MetricsSnapshot::samples`): per service its routing calls by result (hit, miss, stale,
/// error), accepted placements by pod, the pods of its snapshot by state with their loads and
/// ages; errors by code; store call latencies; the event stream. No uid is ever a label. Does
/// not block; works before `sr_client_init` and after `sr_client_close` (the last figures).
///
/// `samples_out` receives a list the caller frees with `sr_sample_list_free`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_metrics(
    client: *const sr_client_driver,
    samples_out: *mut sr_sample_list,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: pointers are checked by `with`; the caller guarantees the rest.
    unsafe {
        with(client, "samples_out", samples_out, err_out, |c| {
            Ok(sr_sample_list::new(c.metrics().samples()))
        })
    }
}

/// `metrics_text`: `sr_client_metrics` in the Prometheus text exposition format (version
/// 0.0.4, with `# HELP` and `# TYPE`), to append to a service's own `/metrics`. Does not block.
///
/// `text_out` receives a NUL-terminated string the caller frees with `sr_string_free`.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL).
#[no_mangle]
pub unsafe extern "C" fn sr_client_metrics_text(
    client: *const sr_client_driver,
    text_out: *mut *mut c_char,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_metrics`.
    unsafe {
        with(client, "text_out", text_out, err_out, |c| {
            Ok(string_out(Some(c.metrics_text())))
        })
    }
}

/// The user's link as `sr_client_explain_placement` found it in the store.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_explained_link {
    /// The pod it points to; -1 = the user has no link (the other fields are then false / -1).
    pub pod_index: i64,
    /// Whether it is persistent (no TTL).
    pub persistent: bool,
    /// Remaining lifetime of a temporary link in seconds; -1 for a persistent link or none.
    pub ttl_seconds: f64,
    /// Whether that pod is alive in this driver's snapshot.
    pub pod_alive: bool,
}

/// One pod of the service as a placement sees it (in `sr_explanation`).
#[repr(C)]
#[derive(Debug)]
pub struct sr_explained_pod {
    /// The pod.
    pub pod_index: i64,
    /// Its published load.
    pub load: u32,
    /// New users this driver placed on it since its snapshot was read.
    pub placed: u32,
    /// The routing state it published.
    pub routing_state: sr_routing_state,
    /// Whether it is alive (published recently, not shut down).
    pub alive: bool,
    /// Seconds since it published.
    pub age_seconds: f64,
    /// Its published weight.
    pub weight: u32,
    /// The good set's verdict, NUL-terminated: `kept` (a candidate), `warming` (a candidate
    /// with the probability `reason` gives: slow start), `dead`, `not_routable` (alive, takes no
    /// new users) or `over_load_range`.
    pub verdict: *mut c_char,
    /// The verdict in words, with the numbers behind it, NUL-terminated.
    pub reason: *mut c_char,
}

/// What a placement for (uid, service) would do now, and why (the core's `Explanation`).
/// Free with `sr_explanation_free`; every string is NUL-terminated and the library's.
#[repr(C)]
#[derive(Debug)]
pub struct sr_explanation {
    /// The namespace.
    pub namespace_name: *mut c_char,
    /// The user.
    pub uid: *mut c_char,
    /// The service.
    pub service: *mut c_char,
    /// The user's link in the store (`pod_index` -1: none).
    pub link: sr_explained_link,
    /// The pod this driver's cache holds for the user; -1 = none.
    pub cached_pod: i64,
    /// The placement policy in force for the service (`"p2c"`, `"round_robin"`, ... or the
    /// name a custom policy reports).
    pub policy: *mut c_char,
    /// Its load factor (rendezvous; 0 for the others).
    pub load_factor: f64,
    /// The good set's load range (`load_range`).
    pub load_range: u32,
    /// `pods_len` pods: every pod of the snapshot, by index.
    pub pods: *mut sr_explained_pod,
    /// Number of pods.
    pub pods_len: usize,
    /// The pod a new user would be placed on now (for random policies, one draw); -1 = none.
    pub would_place_on: i64,
    /// The pod `sr_client_compute_linked_pod` would answer now; -1 = it would fail (see
    /// `summary`).
    pub answer: i64,
    /// The answer in words.
    pub summary: *mut c_char,
    /// Seconds since the snapshot was read; -1 = never read.
    pub snapshot_age_seconds: f64,
}

fn routing_state_of(name: &str) -> sr_routing_state {
    let state = [
        RoutingState::Ready,
        RoutingState::DenyNewCall,
        RoutingState::Shutdown,
    ]
    .into_iter()
    .find(|s| s.as_str() == name);
    sr_routing_state::of(state)
}

impl From<ExplainedPod> for sr_explained_pod {
    fn from(p: ExplainedPod) -> Self {
        sr_explained_pod {
            pod_index: p.pod_index.into(),
            load: p.load,
            placed: p.placed,
            routing_state: routing_state_of(&p.routing_state),
            alive: p.alive,
            age_seconds: p.age_seconds,
            weight: p.weight,
            verdict: string_out(Some(p.verdict)),
            reason: string_out(Some(p.reason)),
        }
    }
}

impl From<Explanation> for sr_explanation {
    fn from(e: Explanation) -> Self {
        let link = match e.link {
            None => sr_explained_link {
                pod_index: -1,
                persistent: false,
                ttl_seconds: -1.0,
                pod_alive: false,
            },
            Some(l) => sr_explained_link {
                pod_index: l.pod_index.into(),
                persistent: l.persistent,
                ttl_seconds: l.ttl_seconds.unwrap_or(-1.0),
                pod_alive: l.pod_alive,
            },
        };
        let (pods, pods_len) = boxed_slice(e.pods.into_iter().map(Into::into).collect());
        sr_explanation {
            namespace_name: string_out(Some(e.namespace)),
            uid: string_out(Some(e.uid)),
            service: string_out(Some(e.service)),
            link,
            cached_pod: pod_or_none(e.cached_pod),
            policy: string_out(Some(e.policy)),
            load_factor: e.load_factor,
            load_range: e.load_range,
            pods,
            pods_len,
            would_place_on: pod_or_none(e.would_place_on),
            answer: pod_or_none(e.answer),
            summary: string_out(Some(e.summary)),
            snapshot_age_seconds: e.snapshot_age_seconds.unwrap_or(-1.0),
        }
    }
}

/// Frees the strings and pods of `explanation` and sets them to NULL (and `pods_len` to 0).
/// NULL, or an explanation already freed (or zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_explanation_free(explanation: *mut sr_explanation) {
    // SAFETY: the caller passes NULL or an explanation this library filled, not freed yet.
    if let Some(e) = unsafe { explanation.as_mut() } {
        let free = |s: &mut *mut c_char| {
            // SAFETY: each string is NULL or came from `CString::into_raw`, freed once.
            unsafe { sr_string_free(std::mem::replace(s, std::ptr::null_mut())) }
        };
        for s in [
            &mut e.namespace_name,
            &mut e.uid,
            &mut e.service,
            &mut e.policy,
            &mut e.summary,
        ] {
            free(s);
        }
        // SAFETY: the pods came from `boxed_slice`.
        for mut p in unsafe { take(&mut e.pods, &mut e.pods_len) } {
            free(&mut p.verdict);
            free(&mut p.reason);
        }
    }
}

/// `explain_placement`: why `uid` gets the pod it gets for `service` — a dry run that writes
/// nothing and counts nothing: the user's link in the store and in this driver's cache, every
/// pod of the snapshot with its load, placements since the read, routing state, age, weight and
/// the good set's verdict on it, the policy and the pod a new user would get now. Blocks for one
/// store read (and the service's snapshot if it is not loaded yet).
///
/// - `ns`, `uid`, `service`: as `sr_client_compute_linked_pod`.
/// - `explanation_out`: receives the explanation; free it with `sr_explanation_free`.
///
/// Errors: `SR_INVALID_ARGUMENT`, `SR_NAMESPACE_NOT_LOCAL`, `SR_CLOSED`, store errors.
#[no_mangle]
pub unsafe extern "C" fn sr_client_explain_placement(
    client: *const sr_client_driver,
    ns: sr_str,
    uid: sr_str,
    service: sr_str,
    explanation_out: *mut sr_explanation,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: as in `sr_client_metrics`.
    unsafe {
        with(client, "explanation_out", explanation_out, err_out, |c| {
            let (ns, uid, svc) = link_args(ns, uid, service)?;
            Ok(block_on(c.explain_placement(ns, uid, svc))??.into())
        })
    }
}
