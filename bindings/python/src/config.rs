//! `BaseConfig`, `ServerInfo`, `RoutingState` and the plain result types (SPEC §1, §4, §9).
//!
//! Constructors take keyword arguments; `None` (or leaving one out) means the core's default.
//! Validation is the core's (`InvalidConfigError` / `InvalidArgumentError` naming the field);
//! this file only checks Python types. `RoutingState` is a Python `enum` defined in
//! `stateful_route/types.py`; results hold its members, arguments take a member or its name.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use stateful_route as core;
use stateful_route::placement::Placement;

use crate::extend;

use crate::args;
use crate::error::{invalid_argument, invalid_config, OrRaise};

static ROUTING_STATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The `RoutingState` member for a core routing state.
pub fn routing_to_py<'py>(py: Python<'py>, r: core::RoutingState) -> PyResult<Bound<'py, PyAny>> {
    let class = ROUTING_STATE.get_or_try_init(py, || {
        py.import("stateful_route.types")?
            .getattr("RoutingState")
            .map(Bound::unbind)
    })?;
    class.bind(py).getattr(r.as_str())
}

/// A routing state from a `RoutingState` member or its name (`"DENY_NEW_CALL"`).
pub fn routing_from_py(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<core::RoutingState> {
    let bad = || {
        invalid_argument(
            field,
            "expected a RoutingState (READY, DENY_NEW_CALL, SHUTDOWN)",
        )
    };
    let value;
    let name = match args::text(obj, field) {
        Ok(name) => name,
        Err(_) => {
            let py = obj.py();
            let class = routing_to_py(py, core::RoutingState::Ready)?.get_type();
            if !obj.is_instance(&class)? {
                return Err(bad());
            }
            value = obj.getattr("value")?;
            args::text(&value, field).map_err(|_| bad())?
        }
    };
    name.parse().or_raise()
}

/// Settings of both drivers (SPEC §9). Every argument is keyword-only; `None` means the default.
#[pyclass(module = "stateful_route", name = "BaseConfig", frozen)]
#[derive(Debug, Clone)]
pub struct BaseConfig {
    pub(crate) inner: core::BaseConfig,
}

#[pymethods]
impl BaseConfig {
    #[new]
    #[pyo3(signature = (
        *,
        service_state_update_period_seconds = None,
        cpu_factor = None,
        temp_link_info_cache_time_seconds = None,
        user_link_info_cache_time_seconds = None,
        stale_after_seconds = None,
        load_range = None,
        placement = None,
        cache_capacity = None,
        drain_seconds = None,
        serve_stale_seconds = None,
        placement_load_factor = None,
        slow_start_seconds = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        service_state_update_period_seconds: Option<&Bound<'_, PyAny>>,
        cpu_factor: Option<&Bound<'_, PyAny>>,
        temp_link_info_cache_time_seconds: Option<&Bound<'_, PyAny>>,
        user_link_info_cache_time_seconds: Option<&Bound<'_, PyAny>>,
        stale_after_seconds: Option<&Bound<'_, PyAny>>,
        load_range: Option<&Bound<'_, PyAny>>,
        placement: Option<&Bound<'_, PyAny>>,
        cache_capacity: Option<&Bound<'_, PyAny>>,
        drain_seconds: Option<&Bound<'_, PyAny>>,
        serve_stale_seconds: Option<&Bound<'_, PyAny>>,
        placement_load_factor: Option<&Bound<'_, PyAny>>,
        slow_start_seconds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let d = core::BaseConfig::default();
        let placement = match placement {
            Some(p) if !p.is_none() => extend::placement_arg(
                p,
                placement_load_factor,
                "placement",
                "placement_load_factor",
                &|f, r| invalid_config(f, r),
            )?,
            _ => match placement_load_factor {
                Some(f) if !f.is_none() => {
                    return Err(invalid_config(
                        "placement_load_factor",
                        "applies to placement=\"rendezvous\" only",
                    ))
                }
                _ => d.placement.clone(),
            },
        };
        let serve_stale_seconds = args::config_float(
            serve_stale_seconds,
            "serve_stale_seconds",
            d.serve_stale_seconds,
        )?;
        let load_range = args::config_uint(load_range, "load_range", d.load_range as u64)?;
        // New core settings not exposed here keep their defaults.
        #[allow(clippy::needless_update)]
        let inner = core::BaseConfig {
            service_state_update_period_seconds: args::config_float(
                service_state_update_period_seconds,
                "service_state_update_period_seconds",
                d.service_state_update_period_seconds,
            )?,
            cpu_factor: args::config_float(cpu_factor, "cpu_factor", d.cpu_factor)?,
            temp_link_info_cache_time_seconds: args::config_uint(
                temp_link_info_cache_time_seconds,
                "temp_link_info_cache_time_seconds",
                d.temp_link_info_cache_time_seconds,
            )?,
            user_link_info_cache_time_seconds: args::config_uint(
                user_link_info_cache_time_seconds,
                "user_link_info_cache_time_seconds",
                d.user_link_info_cache_time_seconds,
            )?,
            stale_after_seconds: match stale_after_seconds {
                Some(o) if !o.is_none() => {
                    Some(args::config_float(Some(o), "stale_after_seconds", 0.0)?)
                }
                _ => None,
            },
            load_range: u32::try_from(load_range)
                .map_err(|_| invalid_config("load_range", format!("{load_range} is too large")))?,
            placement,
            serve_stale_seconds,
            cache_capacity: args::config_uint(cache_capacity, "cache_capacity", d.cache_capacity)?,
            drain_seconds: args::config_float(drain_seconds, "drain_seconds", d.drain_seconds)?,
            slow_start_seconds: match slow_start_seconds {
                Some(o) if !o.is_none() => {
                    Some(args::config_float(Some(o), "slow_start_seconds", 0.0)?)
                }
                _ => None,
            },
            ..core::BaseConfig::default()
        };
        inner.validate().or_raise()?;
        Ok(BaseConfig { inner })
    }

    #[getter]
    fn service_state_update_period_seconds(&self) -> f64 {
        self.inner.service_state_update_period_seconds
    }
    #[getter]
    fn cpu_factor(&self) -> f64 {
        self.inner.cpu_factor
    }
    #[getter]
    fn temp_link_info_cache_time_seconds(&self) -> u64 {
        self.inner.temp_link_info_cache_time_seconds
    }
    #[getter]
    fn user_link_info_cache_time_seconds(&self) -> u64 {
        self.inner.user_link_info_cache_time_seconds
    }
    #[getter]
    fn stale_after_seconds(&self) -> Option<f64> {
        self.inner.stale_after_seconds
    }
    #[getter]
    fn load_range(&self) -> u32 {
        self.inner.load_range
    }
    /// The placement's name: `"p2c"`, `"random"`, `"round_robin"`, `"rendezvous"`,
    /// `"weighted"`, or `"custom"` for a callable.
    #[getter]
    fn placement(&self) -> &'static str {
        self.inner.placement.name()
    }
    /// The load factor of `"rendezvous"` placement, else `None`.
    #[getter]
    fn placement_load_factor(&self) -> Option<f64> {
        match self.inner.placement {
            Placement::Rendezvous { load_factor } => Some(load_factor),
            _ => None,
        }
    }
    #[getter]
    fn serve_stale_seconds(&self) -> f64 {
        self.inner.serve_stale_seconds
    }
    #[getter]
    fn cache_capacity(&self) -> u64 {
        self.inner.cache_capacity
    }
    #[getter]
    fn drain_seconds(&self) -> f64 {
        self.inner.drain_seconds
    }
    /// The slow-start window in seconds; `None` = one update period, 0 = off.
    #[getter]
    fn slow_start_seconds(&self) -> Option<f64> {
        self.inner.slow_start_seconds
    }

    fn __repr__(&self) -> String {
        let c = &self.inner;
        format!(
            "BaseConfig(service_state_update_period_seconds={}, cpu_factor={}, \
             temp_link_info_cache_time_seconds={}, user_link_info_cache_time_seconds={}, \
             stale_after_seconds={}, load_range={}, placement={:?}, cache_capacity={}, drain_seconds={}, \
             serve_stale_seconds={}, slow_start_seconds={})",
            c.service_state_update_period_seconds,
            c.cpu_factor,
            c.temp_link_info_cache_time_seconds,
            c.user_link_info_cache_time_seconds,
            c.stale_after_seconds.map_or("None".to_string(), |s| s.to_string()),
            c.load_range,
            c.placement.name(),
            c.cache_capacity,
            c.drain_seconds,
            c.serve_stale_seconds,
            c.slow_start_seconds.map_or("None".to_string(), |s| s.to_string()),
        )
    }
}

/// Who a driver is: namespace (a DNS label), service name and pod index (SPEC §1, §2).
#[pyclass(module = "stateful_route", name = "ServerInfo", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerInfo {
    pub(crate) inner: core::ServerInfo,
}

#[pymethods]
impl ServerInfo {
    #[new]
    #[pyo3(signature = (*, namespace, service_name, pod_index))]
    fn new(
        namespace: &Bound<'_, PyAny>,
        service_name: &Bound<'_, PyAny>,
        pod_index: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let inner = core::ServerInfo::new(
            args::text(namespace, "namespace")?,
            args::text(service_name, "service_name")?,
            args::pod(pod_index, "pod_index")?,
        );
        inner.validate().or_raise()?;
        Ok(ServerInfo { inner })
    }

    #[getter]
    fn namespace(&self) -> &str {
        &self.inner.namespace
    }
    #[getter]
    fn service_name(&self) -> &str {
        &self.inner.service_name
    }
    #[getter]
    fn pod_index(&self) -> u32 {
        self.inner.pod_index
    }

    fn __repr__(&self) -> String {
        let i = &self.inner;
        format!(
            "ServerInfo(namespace={:?}, service_name={:?}, pod_index={})",
            i.namespace, i.service_name, i.pod_index
        )
    }
}

/// A link as the store holds it: the pod, and the remaining TTL of a temporary link.
#[pyclass(module = "stateful_route", name = "Link", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// The pod the user is linked to.
    #[pyo3(get)]
    pod_index: u32,
    /// Remaining lifetime in seconds of a temporary link; `None` for a persistent link.
    #[pyo3(get)]
    ttl_seconds: Option<f64>,
}

#[pymethods]
impl Link {
    /// Whether the link has no TTL.
    #[getter]
    fn persistent(&self) -> bool {
        self.ttl_seconds.is_none()
    }

    fn __repr__(&self) -> String {
        match self.ttl_seconds {
            None => format!("Link(pod_index={}, persistent=True)", self.pod_index),
            Some(t) => format!("Link(pod_index={}, ttl_seconds={t})", self.pod_index),
        }
    }
}

impl From<core::Link> for Link {
    fn from(l: core::Link) -> Self {
        Link {
            pod_index: l.pod_index,
            ttl_seconds: l.ttl.map(|t| t.as_secs_f64()),
        }
    }
}

/// The outcome of a try-set (SPEC §4).
#[pyclass(module = "stateful_route", name = "TrySetOutcome", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrySetOutcome {
    /// Whether the link now points to the requested pod.
    #[pyo3(get)]
    accepted: bool,
    /// The pod the link points to after the call.
    #[pyo3(get)]
    owner: u32,
    /// The pod the link pointed to before the call, or `None`.
    #[pyo3(get)]
    previous: Option<u32>,
}

#[pymethods]
impl TrySetOutcome {
    fn __repr__(&self) -> String {
        format!(
            "TrySetOutcome(accepted={}, owner={}, previous={})",
            if self.accepted { "True" } else { "False" },
            self.owner,
            self.previous.map_or("None".to_string(), |p| p.to_string())
        )
    }
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

/// One pod's published state (SPEC §3).
#[pyclass(module = "stateful_route", name = "PodState", frozen, eq)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodState {
    inner: core::PodState,
}

#[pymethods]
impl PodState {
    #[getter]
    fn pod_index(&self) -> u32 {
        self.inner.pod_index
    }
    #[getter]
    fn load(&self) -> u32 {
        self.inner.load
    }
    /// When it was published, in ms since the Unix epoch on the store's clock.
    #[getter]
    fn update_ms(&self) -> u64 {
        self.inner.update_ms
    }
    #[getter]
    fn routing(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        routing_to_py(py, self.inner.routing_state).map(Bound::unbind)
    }

    fn __repr__(&self) -> String {
        let s = &self.inner;
        format!(
            "PodState(pod_index={}, load={}, update_ms={}, routing=RoutingState.{})",
            s.pod_index, s.load, s.update_ms, s.routing_state
        )
    }
}

impl From<core::PodState> for PodState {
    fn from(inner: core::PodState) -> Self {
        PodState { inner }
    }
}

/// A change of a pod's routing state as a gateway saw it; `None` means "not alive".
#[pyclass(module = "stateful_route", name = "RoutingStateChange", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingStateChange {
    inner: core::RoutingStateChange,
}

#[pymethods]
impl RoutingStateChange {
    #[getter]
    fn service(&self) -> &str {
        &self.inner.service
    }
    #[getter]
    fn pod_index(&self) -> u32 {
        self.inner.pod_index
    }
    #[getter(old)]
    fn old_state(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .old
            .map(|r| routing_to_py(py, r).map(Bound::unbind))
            .transpose()
    }
    #[getter(new)]
    fn new_state(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.inner
            .new
            .map(|r| routing_to_py(py, r).map(Bound::unbind))
            .transpose()
    }

    fn __repr__(&self) -> String {
        let name = |r: Option<core::RoutingState>| {
            r.map_or("None".to_string(), |r| format!("RoutingState.{r}"))
        };
        format!(
            "RoutingStateChange(service={:?}, pod_index={}, old={}, new={})",
            self.inner.service,
            self.inner.pod_index,
            name(self.inner.old),
            name(self.inner.new)
        )
    }
}

impl From<core::RoutingStateChange> for RoutingStateChange {
    fn from(inner: core::RoutingStateChange) -> Self {
        RoutingStateChange { inner }
    }
}

/// `config` argument of the driver constructors: a `BaseConfig` or `None` (defaults).
pub fn config_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<core::BaseConfig> {
    match obj {
        None => Ok(core::BaseConfig::default()),
        Some(o) if o.is_none() => Ok(core::BaseConfig::default()),
        Some(o) => o
            .cast::<BaseConfig>()
            .map(|c| c.get().inner.clone())
            .map_err(|_| invalid_argument("config", "expected a BaseConfig")),
    }
}

/// `info` argument of the driver constructors.
pub fn info_arg(obj: &Bound<'_, PyAny>) -> PyResult<core::ServerInfo> {
    obj.cast::<ServerInfo>()
        .map(|i| i.get().inner.clone())
        .map_err(|_| invalid_argument("info", "expected a ServerInfo"))
}
