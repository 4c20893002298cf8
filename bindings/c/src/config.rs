//! Plain-data structs: configuration in (`sr_base_config`, `sr_store_config`,
//! `sr_server_info`) and results out (`sr_link`, `sr_try_set_outcome`, routing states).
//!
//! Enum-valued inputs are plain integers, checked here: a C caller can put any value into an
//! enum, and a Rust enum holding an unknown value would be undefined behaviour.

use std::ffi::c_char;
use std::time::Duration;

use sr_core::{
    BaseConfig, Link, Placement, Result, RoutingState, ServerInfo, StoreConfig, TrySetOutcome,
};

use crate::convert::{invalid, pod_or_none, sr_str, sr_string_free, string_out};
use crate::error::{sr_error, sr_status};
use crate::panic::answer;

/// A pod's routing state (SPEC §1). `SR_ROUTING_NOT_ALIVE` appears only in routing-state
/// changes, for a pod that is absent, stale or shut down.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sr_routing_state {
    /// Takes new users.
    SR_ROUTING_READY = 0,
    /// Keeps its linked users, takes no new ones (draining).
    SR_ROUTING_DENY_NEW_CALL = 1,
    /// Gone on purpose.
    SR_ROUTING_SHUTDOWN = 2,
    /// Not alive (only in `sr_routing_state_change`).
    SR_ROUTING_NOT_ALIVE = 3,
}

impl sr_routing_state {
    pub(crate) fn of(state: Option<RoutingState>) -> sr_routing_state {
        match state {
            Some(RoutingState::Ready) => sr_routing_state::SR_ROUTING_READY,
            Some(RoutingState::DenyNewCall) => sr_routing_state::SR_ROUTING_DENY_NEW_CALL,
            Some(RoutingState::Shutdown) => sr_routing_state::SR_ROUTING_SHUTDOWN,
            None => sr_routing_state::SR_ROUTING_NOT_ALIVE,
        }
    }

    /// From an integer argument: one of READY, DENY_NEW_CALL, SHUTDOWN.
    pub(crate) fn parse(value: i32) -> Result<RoutingState> {
        let states = [
            RoutingState::Ready,
            RoutingState::DenyNewCall,
            RoutingState::Shutdown,
        ];
        usize::try_from(value)
            .ok()
            .and_then(|i| states.get(i).copied())
            .ok_or_else(|| {
                let rule =
                    "is not SR_ROUTING_READY, SR_ROUTING_DENY_NEW_CALL or SR_ROUTING_SHUTDOWN";
                invalid("routing_state", &format!("{value} {rule}"))
            })
    }
}

/// Settings of both drivers (SPEC §9). Fill it with `sr_base_config_default`, then change
/// fields. Checked by the driver constructors (`SR_INVALID_CONFIG` names the field).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_base_config {
    /// `ServiceStateUpdatePeriodSeconds`: how often a pod publishes its state and a gateway
    /// refreshes its snapshot (> 0; fractions allowed). Default 30.
    pub service_state_update_period_seconds: f64,
    /// `CpuFactor`: weight of CPU in the weighted load, in [0, 1]; 0 = load only. Default 0.7.
    pub cpu_factor: f64,
    /// `TempLinkInfoCacheTimeSeconds`: TTL of a temporary link (> 0). Default 300.
    pub temp_link_info_cache_time_seconds: u64,
    /// `UserLinkInfoCacheTimeSeconds`: how long a gateway caches a link (> 0, shorter than the
    /// temporary link TTL). Default 240.
    pub user_link_info_cache_time_seconds: u64,
    /// A pod whose state is older than this is not alive (seconds). 0 = 3 × the period
    /// (the default); negative values are `SR_INVALID_CONFIG`.
    pub stale_after_seconds: f64,
    /// Pods within this load of the least loaded pod are all good candidates. Default 500.
    pub load_range: u32,
    /// How a new user's pod is chosen among the good candidates, by name: `"p2c"` (power of
    /// two random choices on load plus recent placements, the default), `"random"`,
    /// `"round_robin"`, `"rendezvous"` (highest-random-weight hashing of (service, uid, pod)
    /// with bounded load: deterministic across gateways) or `"weighted"` (random in proportion
    /// to the weight each pod publishes, `sr_server_set_weight`). Borrowed for the call; the
    /// core's `Placement::from_setting` decides (`SR_INVALID_CONFIG` for another name).
    /// Ignored when `placement_policy` is set.
    pub placement: sr_str,
    /// For `"rendezvous"`: the bound c (>= 1); a pod whose load is above c × the average is
    /// skipped. 0 (the default) means 1.25; must be 0 for the other policies.
    pub placement_load_factor: f64,
    /// A policy of your own (`sr_placement_policy_new`) for every service of a client driver,
    /// or NULL (the default) for `placement`. Borrowed for the call; the driver keeps its own
    /// reference.
    pub placement_policy: *const crate::extend::sr_placement_policy,
    /// Most links a client driver caches; 0 turns the cache off. Default 100000.
    pub cache_capacity: u64,
    /// How long `sr_server_stop` keeps the pod in DENY_NEW_CALL before SHUTDOWN (seconds,
    /// >= 0). Default 0.
    pub drain_seconds: f64,
    /// Stale-if-error: while the store cannot be reached (`SR_STORE_UNAVAILABLE`,
    /// `SR_TIMEOUT`), a client driver still answers with a cached link to an alive pod that
    /// expired at most this long ago (seconds, finite, >= 0; 0 turns it off). Default 60.
    pub serve_stale_seconds: f64,
    /// Slow start: for this long after a gateway first sees a pod become routable (started,
    /// restarted, un-drained), the pod is a candidate for a new user only with a probability
    /// that ramps from 0 to 1 (seconds, at most 86400). 0 = one update period (the default);
    /// a negative value turns slow start off; NaN and +infinity are `SR_INVALID_CONFIG`.
    pub slow_start_seconds: f64,
    /// Turns a client driver's counting off (the core's `metrics = false`): hits, misses,
    /// errors and placements stay 0 in `sr_client_metrics`; gauges (pods, cache entries) are
    /// reported either way. False (the default, the zero value) keeps metrics on.
    pub disable_metrics: bool,
}

impl From<&BaseConfig> for sr_base_config {
    fn from(c: &BaseConfig) -> Self {
        sr_base_config {
            service_state_update_period_seconds: c.service_state_update_period_seconds,
            cpu_factor: c.cpu_factor,
            temp_link_info_cache_time_seconds: c.temp_link_info_cache_time_seconds,
            user_link_info_cache_time_seconds: c.user_link_info_cache_time_seconds,
            stale_after_seconds: c.stale_after_seconds.unwrap_or(0.0),
            load_range: c.load_range,
            // Only defaults are converted this way (a static name); a custom policy has no
            // plain-data form.
            placement: sr_str::of(c.placement.name()),
            placement_load_factor: c.placement.load_factor(),
            placement_policy: std::ptr::null(),
            cache_capacity: c.cache_capacity,
            drain_seconds: c.drain_seconds,
            serve_stale_seconds: c.serve_stale_seconds,
            slow_start_seconds: match c.slow_start_seconds {
                None => 0.0,
                // Off (0 in the core) is a negative value here: 0 means the default.
                Some(s) if s <= 0.0 => -1.0,
                Some(s) => s,
            },
            disable_metrics: !c.metrics,
        }
    }
}

impl sr_base_config {
    /// # Safety
    /// `placement_policy` is NULL or a live policy; `placement` is valid as in
    /// [`sr_str::get`].
    pub(crate) unsafe fn to_core(self) -> Result<BaseConfig> {
        // SAFETY: forwarded from the caller.
        let policy = unsafe { self.placement_policy.as_ref() };
        let placement = match policy {
            Some(policy) => policy.placement(),
            // SAFETY: forwarded from the caller.
            None => Placement::from_setting(
                unsafe { self.placement.get("config.placement") }?,
                self.placement_load_factor,
            )?,
        };
        Ok(BaseConfig {
            service_state_update_period_seconds: self.service_state_update_period_seconds,
            cpu_factor: self.cpu_factor,
            temp_link_info_cache_time_seconds: self.temp_link_info_cache_time_seconds,
            user_link_info_cache_time_seconds: self.user_link_info_cache_time_seconds,
            stale_after_seconds: (self.stale_after_seconds != 0.0)
                .then_some(self.stale_after_seconds),
            load_range: self.load_range,
            placement,
            cache_capacity: self.cache_capacity,
            drain_seconds: self.drain_seconds,
            serve_stale_seconds: self.serve_stale_seconds,
            // 0 = the default (one period), negative = off; anything else (NaN included) goes
            // to the core's validation as it is.
            slow_start_seconds: match self.slow_start_seconds {
                0.0 => None,
                s if s < 0.0 => Some(0.0),
                s => Some(s),
            },
            metrics: !self.disable_metrics,
        })
    }
}

/// Who a driver is (SPEC §9 `ServerInfo`). The strings are borrowed for the call only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_server_info {
    /// `Namespace`: the driver's local namespace, a DNS label (UTF-8).
    pub namespace_name: sr_str,
    /// `ServiceName`: the service this pod belongs to.
    pub service_name: sr_str,
    /// `PodIndex`: the StatefulSet ordinal (0 … 2^31-1; pod 0 is a real pod). A client
    /// driver ignores it.
    pub pod_index: i64,
}

impl sr_server_info {
    /// # Safety
    /// The string pointers are NULL or valid for their lengths.
    pub(crate) unsafe fn to_core(self) -> Result<ServerInfo> {
        // SAFETY: forwarded from the caller.
        let ns = unsafe { self.namespace_name.get("server_info.namespace_name") }?;
        // SAFETY: forwarded from the caller.
        let svc = unsafe { self.service_name.get("server_info.service_name") }?;
        let pod = sr_core::ident::pod_index("server_info.pod_index", self.pod_index)?;
        Ok(ServerInfo::new(ns, svc, pod))
    }
}

/// Who this pod is, as `sr_server_info_from_env` derived it from its Kubernetes environment.
/// The strings are the library's (NUL-terminated); free them with `sr_owned_server_info_free`.
/// Make an `sr_server_info` of it with `sr_str_from_cstr` on each string.
#[repr(C)]
#[derive(Debug)]
pub struct sr_owned_server_info {
    /// The namespace (`POD_NAMESPACE`, else the service-account namespace file).
    pub namespace_name: *mut c_char,
    /// The service (the argument, else `STATEFUL_ROUTE_SERVICE`, else the StatefulSet name).
    pub service_name: *mut c_char,
    /// The StatefulSet ordinal ending `POD_NAME`, else `HOSTNAME` (`room-12` is 12).
    pub pod_index: i64,
}

/// `ServerInfo.from_env`: who this pod is, from its Kubernetes environment (the core's
/// `ServerInfo::from_env`):
/// - namespace: `POD_NAMESPACE` (the downward API), else
///   `/var/run/secrets/kubernetes.io/serviceaccount/namespace`;
/// - service: `service` unless it is `""` (`{NULL, 0}` too), else `STATEFUL_ROUTE_SERVICE`,
///   else the StatefulSet's name (the pod name without its ordinal);
/// - pod index: the ordinal ending `POD_NAME`, else `HOSTNAME` (`room-12` is 12).
///
/// `info_out` receives strings the caller frees with `sr_owned_server_info_free`. Reads the
/// process environment (`getenv`): do not change it from another thread during the call.
///
/// Errors: `SR_INVALID_ARGUMENT` (NULL `info_out`, invalid UTF-8), `SR_INVALID_CONFIG` (a
/// variable missing or invalid; the message names it).
#[no_mangle]
pub unsafe extern "C" fn sr_server_info_from_env(
    service: sr_str,
    info_out: *mut sr_owned_server_info,
    err_out: *mut *mut sr_error,
) -> sr_status {
    // SAFETY: `info_out` is checked by `answer`; the caller guarantees `service`.
    unsafe {
        answer(err_out, "info_out", info_out, || {
            let service = service.get("service")?;
            let info = ServerInfo::from_env((!service.is_empty()).then_some(service))?;
            Ok(sr_owned_server_info {
                namespace_name: string_out(Some(info.namespace)),
                service_name: string_out(Some(info.service_name)),
                pod_index: info.pod_index.into(),
            })
        })
    }
}

/// Frees the strings of `info` and sets them to NULL. NULL, or an info already freed (or
/// zeroed), is a no-op.
#[no_mangle]
pub unsafe extern "C" fn sr_owned_server_info_free(info: *mut sr_owned_server_info) {
    // SAFETY: the caller passes NULL or an info this library filled.
    if let Some(i) = unsafe { info.as_mut() } {
        // SAFETY: each string is NULL or came from `CString::into_raw`, freed once.
        unsafe {
            sr_string_free(std::mem::replace(
                &mut i.namespace_name,
                std::ptr::null_mut(),
            ));
            sr_string_free(std::mem::replace(&mut i.service_name, std::ptr::null_mut()));
        }
    }
}

/// Settings of a store. Fill it with `sr_store_config_default`, then change fields.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_store_config {
    /// Prefix of every key (1-64 chars of `[A-Za-z0-9._-]`, UTF-8, borrowed for the call).
    /// Default `"sf"`.
    pub key_prefix: sr_str,
    /// Deadline for (re)connecting, in milliseconds (> 0). Default 5000.
    pub connect_timeout_ms: u64,
    /// Deadline for one store command, in milliseconds (> 0). Default 2000.
    pub command_timeout_ms: u64,
    /// For `rediss://` URLs of `sr_store_connect`: a PEM certificate (chain) of the CA that
    /// signed the server's certificate, trusted in addition to the system's roots;
    /// `tls_ca_cert_pem_len` bytes, copied during the call. NULL (or length 0) = none, the
    /// default. The cluster and sentinel connectors do not use it yet: they trust the
    /// system's roots only.
    pub tls_ca_cert_pem: *const u8,
    /// Length of `tls_ca_cert_pem` in bytes.
    pub tls_ca_cert_pem_len: usize,
    /// Turns change propagation off (SPEC §11; the core's `propagation = false`, for a Redis
    /// ACL without `PUBLISH`/`SUBSCRIBE`): writers publish no events and client drivers follow
    /// the cache's TTL rule alone. False (the default, the zero value) keeps it on: link and
    /// routing-state changes reach every client driver sharing the store within milliseconds.
    /// Honoured by the memory store too.
    pub disable_propagation: bool,
}

impl sr_store_config {
    /// # Safety
    /// `key_prefix` is valid as in [`sr_str::get`]; `tls_ca_cert_pem` is NULL or valid for
    /// `tls_ca_cert_pem_len` bytes.
    pub(crate) unsafe fn to_core(self) -> Result<StoreConfig> {
        // SAFETY: forwarded from the caller.
        let prefix = unsafe { self.key_prefix.get("store_config.key_prefix") }?;
        let (pem, pem_len) = (self.tls_ca_cert_pem, self.tls_ca_cert_pem_len);
        // SAFETY: forwarded from the caller.
        let tls_ca_cert_pem = (!pem.is_null() && pem_len > 0)
            .then(|| unsafe { std::slice::from_raw_parts(pem, pem_len) }.to_vec());
        Ok(StoreConfig {
            key_prefix: prefix.to_string(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            tls_ca_cert_pem,
            propagation: !self.disable_propagation,
        })
    }
}

/// A link as the store holds it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_link {
    /// The pod; -1 = no link.
    pub pod_index: i64,
    /// Whether the link is persistent (no TTL). False when there is no link.
    pub persistent: bool,
    /// Remaining lifetime of a temporary link in seconds; -1 for a persistent link or none.
    pub ttl_seconds: f64,
}

impl sr_link {
    pub(crate) fn of(link: Option<Link>) -> sr_link {
        match link {
            None => sr_link {
                pod_index: -1,
                persistent: false,
                ttl_seconds: -1.0,
            },
            Some(l) => sr_link {
                pod_index: l.pod_index.into(),
                persistent: l.is_persistent(),
                ttl_seconds: l.ttl.map_or(-1.0, |t| t.as_secs_f64()),
            },
        }
    }
}

/// The outcome of a try-set (SPEC §4).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sr_try_set_outcome {
    /// Whether the link now points to the requested pod.
    pub accepted: bool,
    /// The pod the link points to after the call.
    pub owner: i64,
    /// The pod the link pointed to before the call; -1 = none.
    pub previous: i64,
}

impl From<TrySetOutcome> for sr_try_set_outcome {
    fn from(o: TrySetOutcome) -> Self {
        sr_try_set_outcome {
            accepted: o.accepted,
            owner: o.owner.into(),
            previous: pod_or_none(o.previous),
        }
    }
}

/// Fills `*config` with the defaults (30, 0.7, 300, 240, stale 0 = 3 periods, load range 500,
/// `"p2c"` (a static string), load factor 0 = 1.25 for rendezvous, no policy, cache 100000,
/// drain 0, serve stale 60, slow start 0 = one period, metrics on (`disable_metrics` false)).
///
/// Errors: `SR_INVALID_ARGUMENT` if `config` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sr_base_config_default(config: *mut sr_base_config) -> sr_status {
    // SAFETY: `config` is checked for NULL by `out`; errors are not reported (no err_out).
    unsafe {
        answer(std::ptr::null_mut(), "config", config, || {
            Ok(sr_base_config::from(&BaseConfig::default()))
        })
    }
}

/// Fills `*config` with the defaults: key prefix `"sf"` (a static string), connect timeout
/// 5000 ms, command timeout 2000 ms, no TLS CA certificate (NULL), propagation on
/// (`disable_propagation` false).
///
/// Errors: `SR_INVALID_ARGUMENT` if `config` is NULL.
#[no_mangle]
pub unsafe extern "C" fn sr_store_config_default(config: *mut sr_store_config) -> sr_status {
    // SAFETY: as in `sr_base_config_default`.
    unsafe {
        answer(std::ptr::null_mut(), "config", config, || {
            let d = StoreConfig::default();
            Ok(sr_store_config {
                // A static string.
                key_prefix: sr_str::of(sr_core::keys::DEFAULT_PREFIX),
                connect_timeout_ms: d.connect_timeout.as_millis() as u64,
                command_timeout_ms: d.command_timeout.as_millis() as u64,
                tls_ca_cert_pem: std::ptr::null(),
                tls_ca_cert_pem_len: 0,
                disable_propagation: !d.propagation,
            })
        })
    }
}

#[cfg(test)]
#[path = "../tests/unit/config.rs"]
mod tests;
