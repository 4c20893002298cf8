//! `ServerDriver`: a pod publishing its state and owning its users' links (SPEC §7).
//!
//! One macro writes the class twice: `stateful_route.ServerDriver` (asyncio) and
//! `stateful_route.blocking.ServerDriver`. `async with` / `with` start on enter and stop
//! (drain, then `SHUTDOWN`) on exit. The core runs the publish loop and the shutdown in its own
//! tasks, so a Python caller that stops waiting never leaves a pod half stopped.

use pyo3::prelude::*;
use stateful_route as core;

use crate::args;
use crate::config::{
    config_arg, info_arg, routing_from_py, routing_to_py, BaseConfig, ServerInfo, TrySetOutcome,
};
use crate::error::OrRaise;
use crate::extend;
use crate::runtime::{check_not_forked, Async, Blocking, Bridge};
use crate::store::store_arg;

fn link_args(
    namespace: &Bound<'_, PyAny>,
    uid: &Bound<'_, PyAny>,
    service: &Bound<'_, PyAny>,
) -> PyResult<(String, String, String)> {
    Ok((
        args::text(namespace, "namespace")?.into_owned(),
        args::text(uid, "uid")?.into_owned(),
        args::text(service, "service")?.into_owned(),
    ))
}

macro_rules! server_class {
    ($name:ident, $module:literal, $bridge:ty, { $($extra:tt)* }) => {
        /// The pod side: `ServerDriver(store, info, config=None)`; `start()` to publish.
        #[pyclass(module = $module, name = "ServerDriver", frozen)]
        #[derive(Debug)]
        pub struct $name {
            inner: core::ServerDriver,
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (store, info, config = None))]
            fn new(store: &Bound<'_, PyAny>, info: &Bound<'_, PyAny>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                check_not_forked()?;
                let inner = core::ServerDriver::new(store_arg(store)?, info_arg(info)?, config_arg(config)?).or_raise()?;
                Ok($name { inner })
            }

            /// Publishes the pod state now, then every period. A second `start` is
            /// `InvalidArgumentError`; after `stop`, `ClosedError`.
            fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.start().await })
            }

            /// Drains and stops: `DENY_NEW_CALL`, waits `drain_seconds`, `SHUTDOWN`. Idempotent.
            fn stop<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.stop().await })
            }

            /// Sets the app's load (an int >= 0), published with the next period.
            fn set_load_state<'py>(&self, py: Python<'py>, load: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                check_not_forked()?;
                self.inner.set_load_state(args::count(load, "load")?).or_raise()?;
                <$bridge>::ready(py, py.None().into_bound(py))
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
            fn set_load_calculator(&self, calculator: &Bound<'_, PyAny>) -> PyResult<()> {
                check_not_forked()?;
                self.inner.set_load_calculator(extend::load_calculator_arg(calculator)?);
                Ok(())
            }

            /// Sets the custom load signal `name` (an identifier) to a finite number; the load
            /// calculator sees it from the next publish.
            fn set_load_signal(&self, name: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
                check_not_forked()?;
                let name = args::text(name, "name")?;
                self.inner.set_load_signal(&name, args::number(value, "value")?).or_raise()
            }

            /// Sets this pod's placement weight for `"weighted"` placement (an int >= 0;
            /// default 100; 0 = never chosen by weight). Published at once when running.
            fn set_weight<'py>(&self, py: Python<'py>, weight: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let weight = args::count(weight, "weight")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_weight(weight).await })
            }

            /// This pod's placement weight.
            fn get_weight(&self) -> u32 {
                self.inner.get_weight()
            }

            /// Sets the routing state (a `RoutingState` or its name); published at once when
            /// running.
            fn set_routing_state<'py>(&self, py: Python<'py>, state: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let state = routing_from_py(state, "state")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_routing_state(state).await })
            }

            /// The routing state as last set.
            fn get_routing_state<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                routing_to_py(py, self.inner.get_routing_state())
            }

            /// `SetLinkedPod`: links `uid` persistently to `pod`; the previous pod or `None`.
            fn set_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                let pod = args::pod(pod, "pod")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_linked_pod(&ns, &uid, &svc, pod).await })
            }

            /// `TrySetLinkedPod`: links persistently unless another pod owns the user.
            fn try_set_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                let pod = args::pod(pod, "pod")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.try_set_linked_pod(&ns, &uid, &svc, pod).await.map(TrySetOutcome::from) })
            }

            /// `RemoveLinkedPod`: removes the link now (`delay` None or <= 0) or after `delay` s.
            #[pyo3(signature = (namespace, uid, service, delay = None))]
            fn remove_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                delay: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                let delay = args::opt_int(delay, "delay", 0)?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.remove_linked_pod(&ns, &uid, &svc, delay).await })
            }

            /// `RemoveLinkedPodWithId`: as `remove_linked_pod`, only if the link points to `pod`.
            #[pyo3(signature = (namespace, uid, service, pod, delay = None))]
            fn remove_linked_pod_with_id<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                delay: Option<&Bound<'py, PyAny>>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                let pod = args::pod(pod, "pod")?;
                let delay = args::opt_int(delay, "delay", 0)?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.remove_linked_pod_with_id(&ns, &uid, &svc, pod, delay).await })
            }

            /// Who this driver is.
            #[getter]
            fn server_info(&self) -> ServerInfo {
                ServerInfo { inner: self.inner.server_info().clone() }
            }

            /// The configuration in force.
            #[getter]
            fn config(&self) -> BaseConfig {
                BaseConfig { inner: self.inner.config().clone() }
            }

            fn __repr__(&self) -> String {
                let i = self.inner.server_info();
                format!(
                    "<ServerDriver namespace={:?} service_name={:?} pod_index={} routing={}>",
                    i.namespace, i.service_name, i.pod_index, self.inner.get_routing_state()
                )
            }

            $($extra)*
        }
    };
}

server_class!(ServerDriver, "stateful_route", Async, {
    /// `async with ServerDriver(...) as server`: `start()` on enter, `stop()` on exit.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let d = slf.get().inner.clone();
        let me = slf.clone().unbind();
        Async::run(slf.py(), async move {
            d.start().await?;
            Ok(me)
        })
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.inner.clone();
        Async::run(py, async move { d.stop().await })
    }
});

server_class!(BlockingServerDriver, "stateful_route.blocking", Blocking, {
    /// `with ServerDriver(...) as server`: `start()` on enter, `stop()` on exit.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let d = slf.get().inner.clone();
        Blocking::run(slf.py(), async move { d.start().await })?;
        Ok(slf.clone())
    }

    fn __exit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let d = self.inner.clone();
        Blocking::run(py, async move { d.stop().await })?;
        Ok(())
    }
});
