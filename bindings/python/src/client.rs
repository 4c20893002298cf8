//! `ClientDriver`: "which pod serves this user?" (SPEC §6), for gateways.
//!
//! One macro writes the class twice: `stateful_route.ClientDriver` (asyncio) and
//! `stateful_route.blocking.ClientDriver`. `compute_linked_pod` first asks the core's
//! synchronous cache probe (`compute_cached`); a hit is answered on the caller's thread (an
//! already-done awaitable for asyncio), without touching the runtime. Only a miss goes to the
//! runtime (`compute_linked_pod_uncached`).

use std::borrow::Cow;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyInt;
use stateful_route as core;

use crate::args;
use crate::config::{
    config_arg, info_arg, BaseConfig, Link, PodState, RoutingStateChange, ServerInfo,
};
use crate::error::{invalid_argument, OrRaise};
use crate::extend;
use crate::runtime::{check_not_forked, runtime, Async, Blocking, Bridge};
use crate::store::store_arg;

/// Calls a Python listener for one change: on its event loop's thread when it was registered
/// from asyncio, else on the library's thread. Errors go to `sys.unraisablehook`.
fn deliver(
    callback: &Py<PyAny>,
    event_loop: Option<&Py<PyAny>>,
    change: &core::RoutingStateChange,
) {
    // `try_attach`: never call into an interpreter that is shutting down.
    let _ = Python::try_attach(|py| {
        let call = || -> PyResult<()> {
            let change = Bound::new(py, RoutingStateChange::from(change.clone()))?;
            match event_loop {
                Some(l) => l
                    .bind(py)
                    .call_method1("call_soon_threadsafe", (callback.bind(py), change))?,
                None => callback.bind(py).call1((change,))?,
            };
            Ok(())
        };
        if let Err(e) = call() {
            e.write_unraisable(py, Some(callback.bind(py)));
        }
    });
}

fn link_args<'a>(
    namespace: &'a Bound<'_, PyAny>,
    uid: &'a Bound<'_, PyAny>,
    service: &'a Bound<'_, PyAny>,
) -> PyResult<(Cow<'a, str>, Cow<'a, str>, Cow<'a, str>)> {
    Ok((
        args::text(namespace, "namespace")?,
        args::text(uid, "uid")?,
        args::text(service, "service")?,
    ))
}

fn owned((a, b, c): (Cow<'_, str>, Cow<'_, str>, Cow<'_, str>)) -> (String, String, String) {
    (a.into_owned(), b.into_owned(), c.into_owned())
}

macro_rules! client_class {
    ($name:ident, $module:literal, $bridge:ty, { $($extra:tt)* }) => {
        /// The gateway side: `ClientDriver(store, info, config=None)`; `init()` before use.
        #[pyclass(module = $module, name = "ClientDriver", frozen, subclass)]
        #[derive(Debug)]
        pub struct $name {
            inner: Arc<core::ClientDriver>,
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (store, info, config = None))]
            fn new(store: &Bound<'_, PyAny>, info: &Bound<'_, PyAny>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
                check_not_forked()?;
                let inner = core::ClientDriver::new(store_arg(store)?, info_arg(info)?, config_arg(config)?).or_raise()?;
                Ok($name { inner: Arc::new(inner) })
            }

            /// Starts the periodic snapshot refresh. Idempotent; `ClosedError` after `close()`.
            fn init<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                runtime()?;
                self.inner.init().or_raise()?;
                <$bridge>::ready(py, py.None().into_bound(py))
            }

            /// Stops the refresh and empties the cache. Idempotent.
            fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                self.inner.close();
                <$bridge>::ready(py, py.None().into_bound(py))
            }

            /// SPEC §6 `ComputeLinkedPod`: the pod serving `uid` for `service`, placing a new
            /// user on the best pod. `namespace` is `""` or the driver's own.
            fn compute_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                check_not_forked()?;
                let ids = link_args(namespace, uid, service)?;
                if let Some(pod) = self.inner.compute_cached(&ids.0, &ids.1, &ids.2).or_raise()? {
                    return <$bridge>::ready(py, PyInt::new(py, pod).into_any());
                }
                let (ns, uid, svc) = owned(ids);
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.compute_linked_pod_uncached(&ns, &uid, &svc).await })
            }

            /// The cache half of `compute_linked_pod`: the cached pod if it is alive, else
            /// `None` (then the store must be asked). Never blocks, never awaits.
            fn compute_cached(
                &self,
                namespace: &Bound<'_, PyAny>,
                uid: &Bound<'_, PyAny>,
                service: &Bound<'_, PyAny>,
            ) -> PyResult<Option<u32>> {
                check_not_forked()?;
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                self.inner.compute_cached(&ns, &uid, &svc).or_raise()
            }

            /// The store half of `compute_linked_pod`, after a cache miss.
            fn compute_linked_pod_uncached<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.compute_linked_pod_uncached(&ns, &uid, &svc).await })
            }

            /// `GetLinkedPod`: the link from the cache, else the store; `None` if there is none.
            fn get_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_linked_pod(&ns, &uid, &svc).await })
            }

            /// `GetLinkedPodInCacheOrIfPersist`: the cached link, else a persistent one.
            fn get_linked_pod_in_cache_or_if_persist<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_linked_pod_in_cache_or_if_persist(&ns, &uid, &svc).await })
            }

            /// `GetLinkedPodNotCache`: the link from the store, bypassing the cache.
            fn get_linked_pod_not_cache<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_linked_pod_not_cache(&ns, &uid, &svc).await })
            }

            /// `GetLinkedInCache`: the cached link only (no store access, not awaitable).
            fn get_linked_in_cache(
                &self,
                namespace: &Bound<'_, PyAny>,
                uid: &Bound<'_, PyAny>,
                service: &Bound<'_, PyAny>,
            ) -> PyResult<Option<u32>> {
                check_not_forked()?;
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                self.inner.get_linked_in_cache(&ns, &uid, &svc).or_raise()
            }

            /// `CacheExpired`: drops the cached link and returns what it held (not awaitable).
            fn cache_expired(
                &self,
                namespace: &Bound<'_, PyAny>,
                uid: &Bound<'_, PyAny>,
                service: &Bound<'_, PyAny>,
            ) -> PyResult<Option<u32>> {
                check_not_forked()?;
                let (ns, uid, svc) = link_args(namespace, uid, service)?;
                self.inner.cache_expired(&ns, &uid, &svc).or_raise()
            }

            /// `SetCache`: caches `pod` for `uid`.
            fn set_cache<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let pod = args::pod(pod, "pod")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_cache(&ns, &uid, &svc, pod).await })
            }

            /// `GetLinkService`: the user's persistent links, `{service: pod}`.
            fn get_link_service<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ns = args::text(namespace, "namespace")?.into_owned();
                let uid = args::text(uid, "uid")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_link_service(&ns, &uid).await })
            }

            /// `BatchGetLinkedPod`: `{pod: [uid, …]}` for the uids that have a link.
            fn batch_get_linked_pod<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uids: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let ns = args::text(namespace, "namespace")?.into_owned();
                let uids = args::texts(uids, "uids")?;
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.batch_get_linked_pod(&ns, &uids, &svc).await })
            }

            /// `SetLinkedPodIfAbsent`: links `uid` to `pod` unless a link exists; the `Link`
            /// in force. `ttl`: -1 persistent, > 0 seconds.
            fn set_linked_pod_if_absent<'py>(
                &self,
                py: Python<'py>,
                namespace: &Bound<'py, PyAny>,
                uid: &Bound<'py, PyAny>,
                service: &Bound<'py, PyAny>,
                pod: &Bound<'py, PyAny>,
                ttl: &Bound<'py, PyAny>,
            ) -> PyResult<Bound<'py, PyAny>> {
                let (ns, uid, svc) = owned(link_args(namespace, uid, service)?);
                let pod = args::pod(pod, "pod")?;
                let ttl = args::int(ttl, "ttl")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move {
                    d.set_linked_pod_if_absent(&ns, &uid, &svc, pod, ttl).await.map(Link::from)
                })
            }

            /// Links held by the local cache (approximate).
            fn cache_len(&self) -> u64 {
                self.inner.cache_len()
            }

            /// Alive pods of `service`, sorted.
            fn alive_pods<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.alive_pods(&svc).await })
            }

            /// Routable (alive and `READY`) pods of `service`, sorted.
            fn routable_pods<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.routable_pods(&svc).await })
            }

            /// Whether `pod` of `service` is alive.
            fn is_pod_alive<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>, pod: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let pod = args::pod(pod, "pod")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.is_pod_alive(&svc, pod).await })
            }

            /// Whether `pod` of `service` is routable.
            fn is_pod_routable<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>, pod: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let pod = args::pod(pod, "pod")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.is_pod_routable(&svc, pod).await })
            }

            /// The pod a new user of `service` would get now.
            fn best_pod<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.best_pod(&svc).await })
            }

            /// Pod states of `service` as of the last snapshot.
            fn pod_states<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move {
                    Ok(d.pod_states(&svc).await?.into_iter().map(PodState::from).collect::<Vec<_>>())
                })
            }

            /// Re-reads `service`'s pod states now.
            fn refresh_service<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.refresh_service(&svc).await })
            }

            /// Workload state of `service` (`None` if unset).
            fn get_workload_state<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_workload_state(&svc).await })
            }

            /// Sets the workload state of `service` (a word of `[A-Za-z0-9_-]`).
            fn set_workload_state<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>, state: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let state = args::text(state, "state")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_workload_state(&svc, &state).await })
            }

            /// Workload states of many services, in input order.
            fn batch_get_workload_state<'py>(&self, py: Python<'py>, services: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let services = args::texts(services, "services")?;
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.batch_get_workload_state(&services).await })
            }

            /// Whether `service`'s workload state is `READY`.
            fn is_workload_ready<'py>(&self, py: Python<'py>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.is_workload_ready(&svc).await })
            }

            /// Makes `tag` stand for `service`.
            fn set_global_service_name_tag<'py>(&self, py: Python<'py>, tag: &Bound<'py, PyAny>, service: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let tag = args::text(tag, "tag")?.into_owned();
                let svc = args::text(service, "service")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.set_global_service_name_tag(&tag, &svc).await })
            }

            /// The service `tag` stands for, or `None`.
            fn get_service_name_by_tag<'py>(&self, py: Python<'py>, tag: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                let tag = args::text(tag, "tag")?.into_owned();
                let d = self.inner.clone();
                <$bridge>::run(py, async move { d.get_service_name_by_tag(&tag).await })
            }

            /// Calls `callback(change: RoutingStateChange)` whenever a refresh sees a pod's
            /// routing state change. Registered from a running asyncio loop, the callback runs
            /// on that loop (`call_soon_threadsafe`); otherwise on a library thread. Returns an
            /// id for `remove_routing_state_listener`.
            fn on_routing_state_changed(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<u64> {
                if !callback.is_callable() {
                    return Err(invalid_argument("callback", "expected a callable"));
                }
                let event_loop = if <$bridge>::ASYNCIO {
                    py.import("asyncio")?.call_method0("get_running_loop").ok().map(Bound::unbind)
                } else {
                    None
                };
                let callback = callback.clone().unbind();
                Ok(self.inner.on_routing_state_changed(move |change| deliver(&callback, event_loop.as_ref(), change)))
            }

            /// Places new users of `service` with `placement` instead of the configured one: a
            /// built-in name (`"p2c"`, `"random"`, `"round_robin"`, `"rendezvous"`,
            /// `"weighted"`) or a callable `policy(candidates, request) -> int | None`.
            /// `load_factor` (>= 1, default 1.25) goes with `"rendezvous"` only.
            #[pyo3(signature = (service, placement, *, load_factor = None))]
            fn set_service_placement(
                &self,
                service: &Bound<'_, PyAny>,
                placement: &Bound<'_, PyAny>,
                load_factor: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<()> {
                let svc = args::text(service, "service")?;
                let p = extend::placement_arg(placement, load_factor, "placement", "load_factor", &|f, r| invalid_argument(f, r))?;
                self.inner.set_service_placement(&svc, p).or_raise()
            }

            /// Removes a listener; whether it was registered.
            fn remove_routing_state_listener(&self, id: u64) -> bool {
                self.inner.remove_routing_state_listener(id)
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
                format!("<ClientDriver namespace={:?}>", i.namespace)
            }

            $($extra)*
        }
    };
}

client_class!(ClientDriver, "stateful_route", Async, {
    /// `async with ClientDriver(...) as client`: `init()` on enter, `close()` on exit.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        runtime()?;
        slf.get().inner.init().or_raise()?;
        Async::ready(slf.py(), slf.clone().into_any())
    }

    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc_type: &Bound<'py, PyAny>,
        _exc: &Bound<'py, PyAny>,
        _tb: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.inner.close();
        Async::ready(py, py.None().into_bound(py))
    }
});

client_class!(BlockingClientDriver, "stateful_route.blocking", Blocking, {
    /// `with ClientDriver(...) as client`: `init()` on enter, `close()` on exit.
    fn __enter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        runtime()?;
        slf.get().inner.init().or_raise()?;
        Ok(slf.clone())
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.inner.close();
    }
});

/// The core driver behind either `ClientDriver` class (for the benchmark helpers).
pub(crate) fn core_client(obj: &Bound<'_, PyAny>) -> PyResult<Arc<core::ClientDriver>> {
    if let Ok(c) = obj.cast::<ClientDriver>() {
        return Ok(c.get().inner.clone());
    }
    if let Ok(c) = obj.cast::<BlockingClientDriver>() {
        return Ok(c.get().inner.clone());
    }
    Err(invalid_argument("client", "expected a ClientDriver"))
}
