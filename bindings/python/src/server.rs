//! `ServerDriver`: a pod publishing its state and owning its users' links (SPEC §7).
//!
//! One class; its `blocking` field (set from the class attribute `_blocking` of
//! `stateful_route.blocking.ServerDriver`) picks plain calls or asyncio awaitables.
//! `async with` (here) and `with` (`blocking.py`) start on enter and stop (drain, then
//! `SHUTDOWN`) on exit. The core runs the publish loop and the shutdown in its own tasks, so a
//! Python caller that stops waiting never leaves a pod half stopped.

use std::future::Future;

use pyo3::prelude::*;
use pyo3::types::PyType;
use stateful_route as core;

use crate::args::{self, ids, Obj, Out};
use crate::config::{
    config_arg, info_arg, routing_from_py, BaseConfig, Routing, ServerInfo, TrySetOutcome,
};
use crate::error::OrRaise;
use crate::extend;
use crate::runtime::{self, check_not_forked, is_blocking};
use crate::store::store_arg;

/// The pod side: `ServerDriver(store, info, config=None)`; `start()` to publish.
#[pyclass(module = "stateful_route", name = "ServerDriver", frozen, subclass)]
#[derive(Debug)]
pub struct ServerDriver {
    inner: core::ServerDriver,
    blocking: bool,
}

impl ServerDriver {
    /// Runs `f(driver)` on the bridge of this class.
    fn run<T, Fut>(&self, f: impl FnOnce(core::ServerDriver) -> Fut) -> Out
    where
        Fut: Future<Output = core::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        Python::attach(|py| runtime::run(py, self.blocking, fut).map(Bound::unbind))
    }
}

#[pymethods]
impl ServerDriver {
    #[new]
    #[classmethod]
    #[pyo3(signature = (store, info, config = None))]
    fn new(
        cls: &Bound<'_, PyType>,
        store: &Obj,
        info: &Obj,
        config: Option<&Obj>,
    ) -> PyResult<Self> {
        check_not_forked()?;
        let (store, info, config) = (store_arg(store)?, info_arg(info)?, config_arg(config)?);
        let inner = core::ServerDriver::new(store, info, config).or_raise()?;
        let blocking = is_blocking(cls)?;
        Ok(ServerDriver { inner, blocking })
    }

    /// Publishes the pod state now, then every period. A second `start` is
    /// `InvalidArgumentError`; after `stop`, `ClosedError`.
    fn start(&self) -> Out {
        self.run(|d| async move { d.start().await })
    }

    /// Drains and stops: `DENY_NEW_CALL`, waits `drain_seconds`, `SHUTDOWN`. Idempotent.
    fn stop(&self) -> Out {
        self.run(|d| async move { d.stop().await })
    }

    /// Sets the app's load (an int >= 0), published with the next period.
    fn set_load_state(&self, load: &Obj) -> Out {
        check_not_forked()?;
        self.inner
            .set_load_state(args::count(load, "load")?)
            .or_raise()?;
        let none = load.py().None().into_bound(load.py());
        runtime::ready(self.blocking, none).map(Bound::unbind)
    }

    /// The app's load as last set.
    fn get_load_state(&self) -> u32 {
        self.inner.get_load_state()
    }

    /// The weighted load this pod publishes (SPEC §5).
    fn weighted_load(&self) -> u32 {
        self.inner.weighted_load()
    }

    /// Like `weighted_load`, but raises the load calculator's error instead of falling
    /// back to SPEC's formula.
    fn try_weighted_load(&self) -> PyResult<u32> {
        self.inner.try_weighted_load().or_raise()
    }

    /// Replaces SPEC's load formula with `calculator(input: LoadInput) -> int` for every
    /// later publish (`None` restores the formula). It runs on the publishing thread
    /// (the library's); if it raises, the pod logs the error and publishes the formula.
    fn set_load_calculator(&self, calculator: &Obj) -> PyResult<()> {
        check_not_forked()?;
        let calculator = extend::load_calculator_arg(calculator)?;
        self.inner.set_load_calculator(calculator);
        Ok(())
    }

    /// Sets the custom load signal `name` (an identifier) to a finite number; the load
    /// calculator sees it from the next publish.
    fn set_load_signal(&self, name: &Obj, value: &Obj) -> PyResult<()> {
        check_not_forked()?;
        let (name, value) = (args::text(name, "name")?, args::number(value, "value")?);
        self.inner.set_load_signal(&name, value).or_raise()
    }

    /// Sets this pod's placement weight for `"weighted"` placement (an int >= 0;
    /// default 100; 0 = never chosen by weight). Published at once when running.
    fn set_weight(&self, weight: &Obj) -> Out {
        let w = args::count(weight, "weight")?;
        self.run(|d| async move { d.set_weight(w).await })
    }

    /// This pod's placement weight.
    fn get_weight(&self) -> u32 {
        self.inner.get_weight()
    }

    /// Sets the routing state (a `RoutingState` or its name); published at once when
    /// running.
    fn set_routing_state(&self, state: &Obj) -> Out {
        let s = routing_from_py(state, "state")?;
        self.run(|d| async move { d.set_routing_state(s).await })
    }

    /// The routing state as last set.
    fn get_routing_state(&self) -> Routing {
        Routing(self.inner.get_routing_state())
    }

    /// `SetLinkedPod`: links `uid` persistently to `pod`; the previous pod or `None`.
    fn set_linked_pod(&self, namespace: &Obj, uid: &Obj, service: &Obj, pod: &Obj) -> Out {
        let ((ns, uid, svc), pod) = (ids(namespace, uid, service)?, args::pod(pod, "pod")?);
        self.run(|d| async move { d.set_linked_pod(&ns, &uid, &svc, pod).await })
    }

    /// `TrySetLinkedPod`: links persistently unless another pod owns the user.
    fn try_set_linked_pod(&self, namespace: &Obj, uid: &Obj, service: &Obj, pod: &Obj) -> Out {
        let ((ns, uid, svc), pod) = (ids(namespace, uid, service)?, args::pod(pod, "pod")?);
        self.run(|d| async move {
            let outcome = d.try_set_linked_pod(&ns, &uid, &svc, pod).await?;
            Ok(TrySetOutcome::from(outcome))
        })
    }

    /// `RemoveLinkedPod`: removes the link now (`delay` None or <= 0) or after `delay` s.
    #[pyo3(signature = (namespace, uid, service, delay = None))]
    fn remove_linked_pod(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
        delay: Option<&Obj>,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let delay = args::opt_int(delay, "delay", 0)?;
        self.run(|d| async move { d.remove_linked_pod(&ns, &uid, &svc, delay).await })
    }

    /// `RemoveLinkedPodWithId`: as `remove_linked_pod`, only if the link points to `pod`.
    #[pyo3(signature = (namespace, uid, service, pod, delay = None))]
    fn remove_linked_pod_with_id(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
        pod: &Obj,
        delay: Option<&Obj>,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, delay) = (args::pod(pod, "pod")?, args::opt_int(delay, "delay", 0)?);
        self.run(|d| async move {
            d.remove_linked_pod_with_id(&ns, &uid, &svc, pod, delay)
                .await
        })
    }

    /// Who this driver is.
    #[getter]
    fn server_info(&self) -> ServerInfo {
        ServerInfo::from(self.inner.server_info())
    }

    /// The configuration in force.
    #[getter]
    fn config(&self) -> BaseConfig {
        BaseConfig::from(self.inner.config())
    }

    /// `async with ServerDriver(...) as server`: `start()` on enter, `stop()` on exit.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let (d, me) = (slf.get().inner.clone(), slf.clone().unbind());
        runtime::run(slf.py(), false, async move { d.start().await.map(|()| me) })
    }

    fn __aexit__(&self, py: Python<'_>, _exc_type: &Obj, _exc: &Obj, _tb: &Obj) -> Out {
        let d = self.inner.clone();
        runtime::run(py, false, async move { d.stop().await }).map(Bound::unbind)
    }

    fn __repr__(&self) -> String {
        let i = self.inner.server_info();
        let r = self.inner.get_routing_state();
        format!(
            "<ServerDriver namespace={:?} service_name={:?} pod_index={} routing={r}>",
            i.namespace, i.service_name, i.pod_index
        )
    }
}
