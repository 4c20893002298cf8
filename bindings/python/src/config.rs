//! `BaseConfig`, `ServerInfo`, `RoutingState` and the plain result types (SPEC §1, §4, §9).
//!
//! Constructors take keyword arguments; `None` (or leaving one out) means the core's default.
//! Validation is the core's (`InvalidConfigError` / `InvalidArgumentError` naming the field);
//! this file only checks Python types. `RoutingState` is a Python `enum` defined in
//! `stateful_route/types.py`; results hold its members, arguments take a member or its name.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use stateful_route as core;

use crate::args::{self, Obj, Setting};
use crate::error::{invalid_argument, OrRaise};
use crate::extend;

static ROUTING_STATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A core routing state that becomes its `RoutingState` member in Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routing(pub core::RoutingState);

impl<'py> IntoPyObject<'py> for Routing {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        routing_to_py(py, self.0)
    }
}

/// The `RoutingState` member for a core routing state.
fn routing_to_py<'py>(py: Python<'py>, r: core::RoutingState) -> PyResult<Bound<'py, PyAny>> {
    let class = ROUTING_STATE.get_or_try_init(py, || {
        let types = py.import("stateful_route.types")?;
        types.getattr("RoutingState").map(Bound::unbind)
    })?;
    class.bind(py).getattr(r.as_str())
}

/// `Name(field=value, …)` from the getters `fields` (names split by spaces) of `obj`: the `__repr__` of every plain type (Python
/// reprs of the values; `RoutingState.X` for a routing state).
pub fn fields_repr(obj: &Obj, fields: &str) -> PyResult<String> {
    let routing = routing_to_py(obj.py(), core::RoutingState::Ready)?.get_type();
    let mut parts = Vec::new();
    for field in fields.split_whitespace() {
        let v = obj.getattr(field)?;
        parts.push(match v.is_instance(&routing)? {
            true => format!("{field}=RoutingState.{}", v.str()?),
            false => format!("{field}={}", v.repr()?),
        });
    }
    Ok(format!("{}({})", obj.get_type().name()?, parts.join(", ")))
}

/// A routing state from a `RoutingState` member or its name (`"DENY_NEW_CALL"`).
pub fn routing_from_py(obj: &Obj, field: &str) -> PyResult<core::RoutingState> {
    let class = routing_to_py(obj.py(), core::RoutingState::Ready)?.get_type();
    let value = match obj.is_instance(&class)? {
        true => obj.getattr("value")?,
        false => obj.clone(),
    };
    let why = "expected a RoutingState (READY, DENY_NEW_CALL, SHUTDOWN)";
    let name = args::text(&value, field).map_err(|_| invalid_argument(field, why))?;
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
        metrics = true,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        service_state_update_period_seconds: Option<&Obj>,
        cpu_factor: Option<&Obj>,
        temp_link_info_cache_time_seconds: Option<&Obj>,
        user_link_info_cache_time_seconds: Option<&Obj>,
        stale_after_seconds: Option<&Obj>,
        load_range: Option<&Obj>,
        placement: Option<&Obj>,
        cache_capacity: Option<&Obj>,
        drain_seconds: Option<&Obj>,
        serve_stale_seconds: Option<&Obj>,
        placement_load_factor: Option<&Obj>,
        slow_start_seconds: Option<&Obj>,
        #[pyo3(from_py_with = metrics_flag)] metrics: bool,
    ) -> PyResult<Self> {
        let mut c = core::BaseConfig::default();
        let factor_field = "placement_load_factor";
        let factor = args::config_float(placement_load_factor, factor_field, 0.0)?;
        c.placement = match placement {
            Some(p) if !p.is_none() => extend::placement_arg(p, factor, factor_field),
            _ => core::Placement::from_setting(c.placement.name(), factor),
        }
        .or_raise()?;
        let period = "service_state_update_period_seconds";
        c.service_state_update_period_seconds
            .set(service_state_update_period_seconds, period)?;
        c.cpu_factor.set(cpu_factor, "cpu_factor")?;
        let temp = "temp_link_info_cache_time_seconds";
        c.temp_link_info_cache_time_seconds
            .set(temp_link_info_cache_time_seconds, temp)?;
        let user = "user_link_info_cache_time_seconds";
        c.user_link_info_cache_time_seconds
            .set(user_link_info_cache_time_seconds, user)?;
        c.stale_after_seconds
            .set(stale_after_seconds, "stale_after_seconds")?;
        c.load_range.set(load_range, "load_range")?;
        c.cache_capacity.set(cache_capacity, "cache_capacity")?;
        c.drain_seconds.set(drain_seconds, "drain_seconds")?;
        c.serve_stale_seconds
            .set(serve_stale_seconds, "serve_stale_seconds")?;
        c.slow_start_seconds
            .set(slow_start_seconds, "slow_start_seconds")?;
        c.metrics = metrics;
        c.validate().or_raise()?;
        Ok(BaseConfig { inner: c })
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
        Some(self.inner.placement.load_factor()).filter(|f| *f != 0.0)
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
    /// Whether a client driver counts what it does (`metrics()`); gauges are reported either
    /// way.
    #[getter]
    fn metrics(&self) -> bool {
        self.inner.metrics
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(
            slf,
            "service_state_update_period_seconds cpu_factor \
             temp_link_info_cache_time_seconds user_link_info_cache_time_seconds \
             stale_after_seconds load_range placement placement_load_factor cache_capacity \
             drain_seconds serve_stale_seconds slow_start_seconds metrics",
        )
    }
}

/// `metrics=`: a `bool` (`None` keeps the default, on).
fn metrics_flag(obj: &Obj) -> PyResult<bool> {
    args::config_bool(obj, "metrics", core::BaseConfig::default().metrics)
}

impl From<&core::BaseConfig> for BaseConfig {
    fn from(c: &core::BaseConfig) -> Self {
        BaseConfig { inner: c.clone() }
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
    fn new(namespace: &Obj, service_name: &Obj, pod_index: &Obj) -> PyResult<Self> {
        let inner = core::ServerInfo::new(
            args::text(namespace, "namespace")?,
            args::text(service_name, "service_name")?,
            args::pod(pod_index, "pod_index")?,
        );
        inner.validate().or_raise()?;
        Ok(ServerInfo { inner })
    }

    /// Who this pod is, from its Kubernetes environment: namespace from `POD_NAMESPACE`
    /// (else the service-account namespace file); service from `service`, else
    /// `STATEFUL_ROUTE_SERVICE`, else the StatefulSet's name; pod index from the ordinal ending
    /// `POD_NAME`, else `HOSTNAME` (`room-12` is 12). `InvalidConfigError` naming the
    /// variable when one cannot be derived or is not valid.
    #[staticmethod]
    #[pyo3(signature = (service = None))]
    fn from_env(service: Option<&Obj>) -> PyResult<Self> {
        let service = args::given(service).map(|s| args::owned(s, "service"));
        let service = service.transpose()?;
        let inner = core::ServerInfo::from_env(service.as_deref()).or_raise()?;
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

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "namespace service_name pod_index")
    }
}

impl From<&core::ServerInfo> for ServerInfo {
    fn from(i: &core::ServerInfo) -> Self {
        ServerInfo { inner: i.clone() }
    }
}

/// A link as the store holds it: the pod, and the remaining TTL of a temporary link.
#[pyclass(module = "stateful_route", name = "Link", frozen, eq, get_all)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// The pod the user is linked to.
    pod_index: u32,
    /// Remaining lifetime in seconds of a temporary link; `None` for a persistent link.
    ttl_seconds: Option<f64>,
}

#[pymethods]
impl Link {
    /// Whether the link has no TTL.
    #[getter]
    fn persistent(&self) -> bool {
        self.ttl_seconds.is_none()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "pod_index ttl_seconds persistent")
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
#[pyclass(module = "stateful_route", name = "TrySetOutcome", frozen, eq, get_all)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrySetOutcome {
    /// Whether the link now points to the requested pod.
    accepted: bool,
    /// The pod the link points to after the call.
    owner: u32,
    /// The pod the link pointed to before the call, or `None`.
    previous: Option<u32>,
}

#[pymethods]
impl TrySetOutcome {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "accepted owner previous")
    }
}

impl From<core::TrySetOutcome> for TrySetOutcome {
    fn from(o: core::TrySetOutcome) -> Self {
        let core::TrySetOutcome {
            accepted,
            owner,
            previous,
        } = o;
        TrySetOutcome {
            accepted,
            owner,
            previous,
        }
    }
}

/// One pod's published state (SPEC §3).
#[pyclass(module = "stateful_route", name = "PodState", frozen, eq, get_all)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodState {
    pod_index: u32,
    load: u32,
    /// When it was published, in ms since the Unix epoch on the store's clock.
    update_ms: u64,
    routing_state: Routing,
    /// Its placement weight for `"weighted"` placement (default 100).
    weight: u32,
}

#[pymethods]
impl PodState {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "pod_index load update_ms routing_state weight")
    }
}

impl From<core::PodState> for PodState {
    fn from(s: core::PodState) -> Self {
        let (pod_index, load, update_ms, weight) = (s.pod_index, s.load, s.update_ms, s.weight);
        let routing_state = Routing(s.routing_state);
        PodState {
            pod_index,
            load,
            update_ms,
            routing_state,
            weight,
        }
    }
}

/// A change of a pod's routing state as a gateway saw it; `None` means "not alive".
#[pyclass(
    module = "stateful_route",
    name = "RoutingStateChange",
    frozen,
    eq,
    get_all
)]
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingStateChange {
    service: String,
    pod_index: u32,
    old: Option<Routing>,
    new: Option<Routing>,
}

#[pymethods]
impl RoutingStateChange {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "service pod_index old new")
    }
}

impl From<core::RoutingStateChange> for RoutingStateChange {
    fn from(c: core::RoutingStateChange) -> Self {
        let (old, new) = (c.old.map(Routing), c.new.map(Routing));
        RoutingStateChange {
            service: c.service,
            pod_index: c.pod_index,
            old,
            new,
        }
    }
}

/// A link that changed anywhere (SPEC §11), as a gateway's link listener sees it: `pod` is the
/// pod it points to now, `None` if it was removed; `persistent` is `False` when removed.
#[pyclass(module = "stateful_route", name = "LinkChange", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct LinkChange {
    namespace: String,
    service: String,
    uid: String,
    pod: Option<u32>,
    persistent: bool,
}

#[pymethods]
impl LinkChange {
    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        fields_repr(slf, "namespace service uid pod persistent")
    }
}

impl From<core::LinkChange> for LinkChange {
    fn from(c: core::LinkChange) -> Self {
        let (namespace, service, uid) = (c.namespace, c.service, c.uid);
        LinkChange {
            namespace,
            service,
            uid,
            pod: c.pod,
            persistent: c.persistent,
        }
    }
}

/// `config` argument of the driver constructors: a `BaseConfig` or `None` (defaults).
pub fn config_arg(obj: Option<&Obj>) -> PyResult<core::BaseConfig> {
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
pub fn info_arg(obj: &Obj) -> PyResult<core::ServerInfo> {
    obj.cast::<ServerInfo>()
        .map(|i| i.get().inner.clone())
        .map_err(|_| invalid_argument("info", "expected a ServerInfo"))
}
