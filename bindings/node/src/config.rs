//! The JS faces of the core's plain data types (`core/src/config.rs`): configuration objects
//! with defaults, `ServerInfo`, `RoutingState` as a string enum, links and try-set outcomes.
//!
//! JS numbers arrive as `f64` and are checked here (whole, in range) before they become the
//! core's integers, so `-1`, `1.5` or `NaN` for a pod index are `INVALID_ARGUMENT`, never a
//! silently wrapped `u32`. No routing decision is made in this file.

use napi::bindgen_prelude::{Either, FromNapiValue, Null, TypeName};
use napi::{sys, Status, ValueType};
use napi_derive::napi;
use stateful_route::{self as core, ident, ErrorKind, LinkTtl};

use crate::error::{invalid, OrThrow, Result};
use crate::extend::PlacementArg;

/// Largest whole number a JS number holds exactly (2^53 − 1).
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// A JS number that must be a whole number in `min..=max`.
pub fn whole(kind: ErrorKind, field: &str, v: f64, min: f64, max: f64) -> core::Result<i64> {
    if !v.is_finite() || v.fract() != 0.0 || v.abs() > MAX_SAFE {
        return Err(invalid(kind, field, format!("{v} is not a whole number")));
    }
    if v < min || v > max {
        return Err(invalid(
            kind,
            field,
            format!("{v} must be in [{min}, {max}]"),
        ));
    }
    Ok(v as i64)
}

/// A whole number whose range the core checks.
fn any_whole(field: &str, v: f64) -> core::Result<i64> {
    whole(ErrorKind::InvalidArgument, field, v, -MAX_SAFE, MAX_SAFE)
}

/// A pod index (0 … 2^31−1).
pub fn pod_index(v: f64) -> core::Result<u32> {
    ident::pod_index("pod", any_whole("pod", v)?)
}

/// A TTL in the wire form of SPEC §4: `-1` persistent, `> 0` seconds.
pub fn ttl(v: f64) -> core::Result<LinkTtl> {
    LinkTtl::from_secs(any_whole("ttl", v)?)
}

/// A delay in seconds (`<= 0`: now).
pub fn delay(v: f64) -> core::Result<i64> {
    any_whole("delay", v)
}

/// A load (0 … 2^32−1).
pub fn load(v: f64) -> core::Result<u32> {
    Ok(whole(ErrorKind::InvalidArgument, "load", v, 0.0, u32::MAX.into())? as u32)
}

/// `null` for `None` in a Promise's value (napi types a bare `Option` there `T | undefined |
/// null`).
pub fn or_null<T>(v: Option<T>) -> Either<T, Null> {
    v.map_or(Either::B(Null), Either::A)
}

/// Bytes of a [`Text`] read without a heap allocation: every valid identifier fits (a uid is
/// at most 512 bytes).
const INLINE: usize = 576;

/// A JS string argument of the cache-hit path, read with one napi call into an inline buffer
/// (napi's `String` costs two calls and an allocation). Longer strings take napi's path.
pub struct Text {
    len: usize,
    inline: [u8; INLINE],
    heap: Option<String>,
}

impl Text {
    /// The string.
    pub fn as_str(&self) -> &str {
        match &self.heap {
            Some(s) => s,
            // napi writes whole UTF-8 characters only; the check is a cheap guard.
            None => std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default(),
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl TypeName for Text {
    fn type_name() -> &'static str {
        "String"
    }

    fn value_type() -> ValueType {
        ValueType::String
    }
}

impl FromNapiValue for Text {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut t = Text {
            len: 0,
            inline: [0; INLINE],
            heap: None,
        };
        // SAFETY: the buffer is INLINE bytes long; napi writes at most INLINE - 1 of them plus
        // a NUL, and reports how many it wrote.
        let status = unsafe {
            sys::napi_get_value_string_utf8(
                env,
                value,
                t.inline.as_mut_ptr().cast(),
                INLINE,
                &mut t.len,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                Status::StringExpected,
                "expected a string",
            ));
        }
        // A character is at most 4 bytes: with more than 4 bytes to spare, the string was whole.
        if t.len + 4 < INLINE - 1 {
            return Ok(t);
        }
        // SAFETY: the caller's env and value, as above.
        t.heap = Some(unsafe { String::from_napi_value(env, value) }?);
        Ok(t)
    }
}

/// Settings of both drivers; every field is optional and defaults as in the core.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct BaseConfig {
    /// How often a pod publishes its state and a gateway refreshes its snapshot (seconds, > 0;
    /// fractions allowed). Default 30.
    pub service_state_update_period_seconds: Option<f64>,
    /// Weight of CPU in the weighted load, in [0, 1]; 0 switches CPU sampling off. Default 0.7.
    pub cpu_factor: Option<f64>,
    /// TTL of a temporary link (whole seconds, > 0). Default 300.
    pub temp_link_info_cache_time_seconds: Option<f64>,
    /// How long a gateway caches a link (whole seconds, > 0, shorter than the temporary link
    /// TTL). Default 240.
    pub user_link_info_cache_time_seconds: Option<f64>,
    /// A pod whose state is older than this is not alive (seconds, > 0). Default: 3 periods.
    pub stale_after_seconds: Option<f64>,
    /// Pods whose load is within this of the least loaded pod are all good candidates.
    /// Default 500.
    pub load_range: Option<f64>,
    /// Placement policy: `'p2c'` (default), `'random'`, `'round_robin'`, `'rendezvous'`,
    /// `'weighted'` (by the weight each pod publishes), or a function
    /// `(candidates, request) => index | null` (read back as `'custom'`).
    #[napi(
        ts_type = "string | ((candidates: Array<Candidate>, request: PlacementRequest) => number | null | undefined)"
    )]
    pub placement: Option<PlacementArg>,
    /// `'rendezvous'` only: a pod whose load is above this factor (> 1) times the average is
    /// skipped. Default (and 0): 1.25. Any other policy takes none (`INVALID_CONFIG`).
    pub placement_load_factor: Option<f64>,
    /// Most links a client driver caches; 0 turns the cache off. Default 100000.
    pub cache_capacity: Option<f64>,
    /// How long `stop()` keeps the pod in `DENY_NEW_CALL` before `SHUTDOWN` (seconds, >= 0).
    /// Default 0.
    pub drain_seconds: Option<f64>,
    /// While the store cannot be reached, a cached link that expired at most this long ago is
    /// still served (seconds, >= 0; 0 turns it off). Default 60.
    pub serve_stale_seconds: Option<f64>,
    /// Slow start: for this long after a gateway first sees a pod become routable, the pod is a
    /// candidate for a new user only with a probability ramping from 0 to 1 (seconds, 0 to one
    /// day; 0 turns it off). Default: one period.
    pub slow_start_seconds: Option<f64>,
    /// Whether a client driver counts what it does (`ClientDriver#metrics`, `metricsText`);
    /// `false`: every counter stays 0, gauges (pods, cache entries) are still reported.
    /// Default `true`.
    pub metrics: Option<bool>,
}

impl BaseConfig {
    /// The core's config: the given fields over the core's defaults. The core validates it.
    pub fn into_core(self) -> core::Result<core::BaseConfig> {
        let mut c = core::BaseConfig::default();
        let int = |field: &str, v: f64, max: f64| -> core::Result<u64> {
            Ok(whole(ErrorKind::InvalidConfig, field, v, 0.0, max)? as u64)
        };
        if let Some(v) = self.service_state_update_period_seconds {
            c.service_state_update_period_seconds = v;
        }
        if let Some(v) = self.cpu_factor {
            c.cpu_factor = v;
        }
        if let Some(v) = self.temp_link_info_cache_time_seconds {
            c.temp_link_info_cache_time_seconds =
                int("temp_link_info_cache_time_seconds", v, MAX_SAFE)?;
        }
        if let Some(v) = self.user_link_info_cache_time_seconds {
            c.user_link_info_cache_time_seconds =
                int("user_link_info_cache_time_seconds", v, MAX_SAFE)?;
        }
        if let Some(v) = self.stale_after_seconds {
            c.stale_after_seconds = Some(v);
        }
        if let Some(v) = self.load_range {
            c.load_range = int("load_range", v, u32::MAX.into())? as u32;
        }
        if self.placement.is_some() || self.placement_load_factor.is_some() {
            let name = PlacementArg::Name(c.placement.name().into());
            let factor = self.placement_load_factor.unwrap_or(0.0);
            c.placement = self.placement.unwrap_or(name).into_core(factor)?;
        }
        if let Some(v) = self.cache_capacity {
            c.cache_capacity = int("cache_capacity", v, MAX_SAFE)?;
        }
        if let Some(v) = self.drain_seconds {
            c.drain_seconds = v;
        }
        if let Some(v) = self.serve_stale_seconds {
            c.serve_stale_seconds = v;
        }
        if let Some(v) = self.slow_start_seconds {
            c.slow_start_seconds = Some(v);
        }
        if let Some(v) = self.metrics {
            c.metrics = v;
        }
        Ok(c)
    }

    /// The config in force, every field filled in.
    pub fn from_core(c: &core::BaseConfig) -> BaseConfig {
        BaseConfig {
            service_state_update_period_seconds: Some(c.service_state_update_period_seconds),
            cpu_factor: Some(c.cpu_factor),
            temp_link_info_cache_time_seconds: Some(c.temp_link_info_cache_time_seconds as f64),
            user_link_info_cache_time_seconds: Some(c.user_link_info_cache_time_seconds as f64),
            stale_after_seconds: Some(c.stale_after().as_secs_f64()),
            load_range: Some(c.load_range.into()),
            placement: Some(PlacementArg::Name(c.placement.name().to_string())),
            placement_load_factor: Some(c.placement.load_factor()).filter(|f| *f != 0.0),
            cache_capacity: Some(c.cache_capacity as f64),
            drain_seconds: Some(c.drain_seconds),
            serve_stale_seconds: Some(c.serve_stale_seconds),
            slow_start_seconds: Some(c.slow_start().as_secs_f64()),
            metrics: Some(c.metrics),
        }
    }
}

/// The core's defaults of `BaseConfig`; `undefined` where a default follows from other fields
/// (`staleAfterSeconds` and `slowStartSeconds` from the period, `placementLoadFactor` from the
/// placement). A driver's `config` reads back every value in force.
#[napi]
pub fn default_base_config() -> BaseConfig {
    let c = core::BaseConfig::default();
    BaseConfig {
        stale_after_seconds: c.stale_after_seconds,
        slow_start_seconds: c.slow_start_seconds,
        ..BaseConfig::from_core(&c)
    }
}

/// Who a driver is: its (local) namespace, its service and its pod index (pod 0 is a pod).
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The driver's local namespace (a DNS label).
    pub namespace: String,
    /// The service this pod belongs to.
    pub service_name: String,
    /// The StatefulSet ordinal of this pod (0 … 2^31−1).
    pub pod_index: f64,
}

impl ServerInfo {
    /// The core's `ServerInfo` (the drivers validate it).
    pub fn into_core(self) -> core::Result<core::ServerInfo> {
        Ok(core::ServerInfo::new(
            self.namespace,
            self.service_name,
            pod_index(self.pod_index)?,
        ))
    }

    /// The JS face of the core's `ServerInfo`.
    pub fn from_core(i: &core::ServerInfo) -> ServerInfo {
        ServerInfo {
            namespace: i.namespace.clone(),
            service_name: i.service_name.clone(),
            pod_index: i.pod_index.into(),
        }
    }
}

/// Who this pod is, from its Kubernetes environment: the namespace from `POD_NAMESPACE` (the
/// downward API), else the service-account namespace file; the service from `service`, else
/// `STATEFUL_ROUTE_SERVICE`, else the StatefulSet's name (the pod name without its ordinal);
/// the pod index from the ordinal ending `POD_NAME`, else `HOSTNAME` (`room-12` → 12). Throws
/// `INVALID_CONFIG`, naming the variable, when one cannot be derived or is not valid.
///
/// ```js
/// const server = new ServerDriver(store, serverInfoFromEnv())
/// ```
#[napi]
pub fn server_info_from_env(service: Option<String>) -> Result<ServerInfo> {
    let info = core::ServerInfo::from_env(service.as_deref()).or_throw()?;
    Ok(ServerInfo::from_core(&info))
}

/// Whether a pod takes new users.
#[napi(string_enum)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingState {
    /// Takes new users.
    #[napi(value = "READY")]
    Ready,
    /// Keeps its linked users, takes no new ones (draining).
    #[napi(value = "DENY_NEW_CALL")]
    DenyNewCall,
    /// Gone on purpose.
    #[napi(value = "SHUTDOWN")]
    Shutdown,
}

impl From<RoutingState> for core::RoutingState {
    fn from(s: RoutingState) -> Self {
        match s {
            RoutingState::Ready => core::RoutingState::Ready,
            RoutingState::DenyNewCall => core::RoutingState::DenyNewCall,
            RoutingState::Shutdown => core::RoutingState::Shutdown,
        }
    }
}

impl From<core::RoutingState> for RoutingState {
    fn from(s: core::RoutingState) -> Self {
        match s {
            core::RoutingState::Ready => RoutingState::Ready,
            core::RoutingState::DenyNewCall => RoutingState::DenyNewCall,
            core::RoutingState::Shutdown => RoutingState::Shutdown,
        }
    }
}

/// A link as the store holds it.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct Link {
    /// The pod the user is linked to.
    pub pod_index: u32,
    /// Whether the link has no TTL (the pod owns the user's state).
    pub persistent: bool,
    /// Remaining lifetime of a temporary link in seconds; `null` for a persistent link.
    pub ttl_seconds: Option<f64>,
}

impl From<core::Link> for Link {
    fn from(l: core::Link) -> Self {
        Link {
            pod_index: l.pod_index,
            persistent: l.is_persistent(),
            ttl_seconds: l.ttl.map(|t| t.as_secs_f64()),
        }
    }
}

/// The outcome of a try-set.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct TrySetOutcome {
    /// Whether the link now points to the requested pod.
    pub accepted: bool,
    /// The pod the link points to after the call.
    pub owner: u32,
    /// The pod the link pointed to before the call; `null` if none.
    pub previous: Option<u32>,
}

impl From<core::TrySetOutcome> for TrySetOutcome {
    fn from(o: core::TrySetOutcome) -> Self {
        TrySetOutcome {
            accepted: o.accepted,
            owner: o.owner,
            previous: o.previous,
        }
    }
}

/// One pod's published state.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct PodState {
    /// The pod's index.
    pub pod_index: u32,
    /// Its weighted load.
    pub load: u32,
    /// When it was published, in milliseconds since the Unix epoch on the store's clock.
    pub update_ms: f64,
    /// Its routing state.
    pub routing_state: RoutingState,
    /// Its placement weight for the `'weighted'` policy (default 100).
    pub weight: u32,
}

impl From<core::PodState> for PodState {
    fn from(p: core::PodState) -> Self {
        PodState {
            pod_index: p.pod_index,
            load: p.load,
            update_ms: p.update_ms as f64,
            routing_state: p.routing_state.into(),
            weight: p.weight,
        }
    }
}
