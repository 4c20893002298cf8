//! `ClientDriver`: "which pod serves this user?" (SPEC §6), for gateways.
//!
//! One class; its `blocking` field (set from the class attribute `_blocking` of
//! `stateful_route.blocking.ClientDriver`) picks the bridge: plain calls or asyncio
//! awaitables. `compute_linked_pod` here is the blocking form: `stateful_route.ClientDriver`
//! overrides it with a coroutine that answers a hit from `compute_cached` on the event loop's
//! thread and awaits `compute_linked_pod_uncached` only on a miss.

use std::future::Future;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyType;
use stateful_route as core;

use crate::args::{self, ids, owned, Obj, Out};
use crate::config::{
    config_arg, info_arg, BaseConfig, Link, LinkChange, PodState, RoutingStateChange, ServerInfo,
};
use crate::error::{invalid_argument, OrRaise};
use crate::explain::Explanation;
use crate::extend;
use crate::metrics::MetricsSnapshot;
use crate::runtime::{self, check_not_forked, is_blocking};
use crate::store::store_arg;

/// Calls a Python listener for one change (`change`: the Python value of the core's): on its
/// event loop's thread when it was registered from asyncio, else on the calling thread (the
/// library's, or the writer's own inside a memory store's writing call). Errors go to
/// `sys.unraisablehook`.
///
/// The GIL is taken here and nowhere else on the way: a library thread waits for it like any
/// Python thread; a writer's thread inside a memory store's call has released it (every call
/// that may write waits with the GIL released), and `attach` on a thread that holds it already
/// is re-entrant. Either way no lock of the library is held meanwhile.
fn deliver<T>(callback: &Py<PyAny>, event_loop: Option<&Py<PyAny>>, change: T)
where
    T: pyo3::PyClass + Into<PyClassInitializer<T>>,
{
    // `try_attach`: never call into an interpreter that is shutting down.
    let _ = Python::try_attach(|py| {
        let call = || -> PyResult<()> {
            let change = Bound::new(py, change)?;
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

/// A listener's callback and where it runs: the running asyncio loop of the registering thread
/// (asyncio classes only), else `None` (the thread that delivers).
fn listener_of(callback: &Obj, blocking: bool) -> PyResult<(Py<PyAny>, Option<Py<PyAny>>)> {
    if !callback.is_callable() {
        return Err(invalid_argument("callback", "expected a callable"));
    }
    let event_loop = match blocking {
        true => None,
        false => py_loop(callback.py()),
    };
    Ok((callback.clone().unbind(), event_loop))
}

/// `PyBUF_READ` of `PyMemoryView_FromMemory` (in the limited API, but not in pyo3's abi3 ffi).
const PYBUF_READ: std::ffi::c_int = 0x100;

/// The gateway side: `ClientDriver(store, info, config=None)`; `init()` before use.
#[pyclass(module = "stateful_route", name = "ClientDriver", frozen, subclass)]
#[derive(Debug)]
pub struct ClientDriver {
    pub(crate) inner: Arc<core::ClientDriver>,
    blocking: bool,
}

impl ClientDriver {
    /// Runs `f(driver)` on the bridge of this class.
    fn run<T, Fut>(&self, f: impl FnOnce(Arc<core::ClientDriver>) -> Fut) -> Out
    where
        Fut: Future<Output = core::Result<T>> + Send + 'static,
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let fut = f(self.inner.clone());
        Python::attach(|py| runtime::run(py, self.blocking, fut).map(Bound::unbind))
    }

    fn done(&self, py: Python<'_>) -> Out {
        runtime::ready(self.blocking, py.None().into_bound(py)).map(Bound::unbind)
    }
}

#[pymethods]
impl ClientDriver {
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
        let inner = Arc::new(core::ClientDriver::new(store, info, config).or_raise()?);
        let blocking = is_blocking(cls)?;
        Ok(ClientDriver { inner, blocking })
    }

    /// Starts the periodic snapshot refresh. Idempotent; `ClosedError` after `close()`.
    ///
    /// It waits for the store's event stream to be subscribed (one round trip on Redis; at
    /// most the store's `connect_timeout`): the blocking form with the GIL released, the
    /// asyncio form on a library thread (the event loop keeps running).
    fn init(&self, py: Python<'_>) -> Out {
        runtime::runtime()?;
        if self.blocking {
            let d = self.inner.clone();
            py.detach(move || d.init()).or_raise()?;
            return self.done(py);
        }
        self.run(init_off_loop)
    }

    /// Stops the refresh and empties the cache. Idempotent.
    fn close(&self, py: Python<'_>) -> Out {
        self.inner.close();
        self.done(py)
    }

    /// SPEC §6 `ComputeLinkedPod` (blocking): the pod serving `uid` for `service`, placing a
    /// new user on the best pod. `namespace` is `""` or the driver's own.
    fn compute_linked_pod(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> PyResult<u32> {
        if let Some(pod) = self.compute_cached(namespace, uid, service)? {
            return Ok(pod);
        }
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let d = self.inner.clone();
        let fut = async move { d.compute_linked_pod_uncached(&ns, &uid, &svc).await };
        runtime::run(namespace.py(), true, fut)?.extract()
    }

    /// The cache half of `compute_linked_pod`: the cached pod if it is alive, else
    /// `None` (then the store must be asked). Never blocks, never awaits.
    fn compute_cached(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> PyResult<Option<u32>> {
        check_not_forked()?;
        let (ns, uid, svc) = (
            args::text(namespace, "namespace")?,
            args::text(uid, "uid")?,
            args::text(service, "service")?,
        );
        self.inner.compute_cached(&ns, &uid, &svc).or_raise()
    }

    /// For the front cache of `stateful_route.ClientDriver` (README, "Front caches"): the
    /// core's hit as `(pod, seconds it may be kept, stripe, epoch)`, or `None` on a miss. The
    /// same errors as `compute_cached`.
    fn _compute_front(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
    ) -> PyResult<Option<(u32, f64, u32, u32)>> {
        check_not_forked()?;
        let (ns, uid, svc) = (
            args::text(namespace, "namespace")?,
            args::text(uid, "uid")?,
            args::text(service, "service")?,
        );
        let hit = self.inner.compute_front(&ns, &uid, &svc).or_raise()?;
        Ok(hit.map(|h| (h.pod, h.valid_for.as_secs_f64(), h.stripe, h.epoch)))
    }

    /// The front cache's epochs: a read-only `memoryview` of bytes over memory the core keeps
    /// for the life of the process (cast it to `"I"`).
    fn _front_epochs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let words = self.inner.front_epochs();
        // SAFETY: the memory is 'static (never freed) and the view is read-only.
        unsafe {
            let view = pyo3::ffi::PyMemoryView_FromMemory(
                words.as_ptr() as *mut std::ffi::c_char,
                std::mem::size_of_val(words) as pyo3::ffi::Py_ssize_t,
                PYBUF_READ,
            );
            Bound::from_owned_ptr_or_err(py, view)
        }
    }

    /// Counts `n` hits of `service` answered by the front cache.
    fn _add_front_hits(&self, service: &str, n: u64) {
        self.inner.add_front_hits(service, n);
    }

    /// The store half of `compute_linked_pod`, after a cache miss.
    fn compute_linked_pod_uncached(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|d| async move { d.compute_linked_pod_uncached(&ns, &uid, &svc).await })
    }

    /// `GetLinkedPod`: the link from the cache, else the store; `None` if there is none.
    fn get_linked_pod(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|d| async move { d.get_linked_pod(&ns, &uid, &svc).await })
    }

    /// `GetLinkedPodInCacheOrIfPersist`: the cached link, else a persistent one.
    fn get_linked_pod_in_cache_or_if_persist(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|d| async move {
            d.get_linked_pod_in_cache_or_if_persist(&ns, &uid, &svc)
                .await
        })
    }

    /// `GetLinkedPodNotCache`: the link from the store, bypassing the cache.
    fn get_linked_pod_not_cache(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|d| async move { d.get_linked_pod_not_cache(&ns, &uid, &svc).await })
    }

    /// `GetLinkedInCache`: the cached link only (no store access, not awaitable).
    fn get_linked_in_cache(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
    ) -> PyResult<Option<u32>> {
        check_not_forked()?;
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.inner.get_linked_in_cache(&ns, &uid, &svc).or_raise()
    }

    /// `CacheExpired`: drops the cached link and returns what it held (not awaitable).
    fn cache_expired(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> PyResult<Option<u32>> {
        check_not_forked()?;
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.inner.cache_expired(&ns, &uid, &svc).or_raise()
    }

    /// `SetCache`: caches `pod` for `uid`.
    fn set_cache(&self, namespace: &Obj, uid: &Obj, service: &Obj, pod: &Obj) -> Out {
        let ((ns, uid, svc), pod) = (ids(namespace, uid, service)?, args::pod(pod, "pod")?);
        self.run(|d| async move { d.set_cache(&ns, &uid, &svc, pod).await })
    }

    /// `GetLinkService`: the user's persistent links, `{service: pod}`.
    fn get_link_service(&self, namespace: &Obj, uid: &Obj) -> Out {
        let (ns, uid) = (owned(namespace, "namespace")?, owned(uid, "uid")?);
        self.run(|d| async move { d.get_link_service(&ns, &uid).await })
    }

    /// `BatchGetLinkedPod`: `{pod: [uid, …]}` for the uids that have a link.
    fn batch_get_linked_pod(&self, namespace: &Obj, uids: &Obj, service: &Obj) -> Out {
        let ns = owned(namespace, "namespace")?;
        let (uids, svc) = (args::texts(uids, "uids")?, owned(service, "service")?);
        self.run(|d| async move { d.batch_get_linked_pod(&ns, &uids, &svc).await })
    }

    /// `SetLinkedPodIfAbsent`: links `uid` to `pod` unless a link exists; the `Link`
    /// in force. `ttl`: -1 persistent, > 0 seconds.
    fn set_linked_pod_if_absent(
        &self,
        namespace: &Obj,
        uid: &Obj,
        service: &Obj,
        pod: &Obj,
        ttl: &Obj,
    ) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        let (pod, ttl) = (args::pod(pod, "pod")?, args::int(ttl, "ttl")?);
        self.run(|d| async move {
            let link = d
                .set_linked_pod_if_absent(&ns, &uid, &svc, pod, ttl)
                .await?;
            Ok(Link::from(link))
        })
    }

    /// Links held by the local cache (approximate).
    fn cache_len(&self) -> u64 {
        self.inner.cache_len()
    }

    /// What this driver counted and sees now (README "Metrics"): per service its hits,
    /// misses, stale answers, errors, accepted placements by pod and the pods of its snapshot;
    /// errors by code; the store's call latencies; the event stream. A plain call (no store
    /// access); works before `init` and after `close`.
    fn metrics(&self) -> MetricsSnapshot {
        MetricsSnapshot::from(self.inner.metrics())
    }

    /// `metrics()` in the Prometheus text exposition format, to append to a service's own
    /// `/metrics`. A plain call.
    fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// Why `uid` gets the pod it gets for `service`: the user's link, every pod with its
    /// verdict, the policy and the pod a new user would get now (`Explanation`). A dry run:
    /// writes nothing, counts nothing.
    fn explain_placement(&self, namespace: &Obj, uid: &Obj, service: &Obj) -> Out {
        let (ns, uid, svc) = ids(namespace, uid, service)?;
        self.run(|d| async move {
            let e = d.explain_placement(&ns, &uid, &svc).await?;
            Ok(Explanation::from(e))
        })
    }

    /// Alive pods of `service`, sorted.
    fn alive_pods(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.alive_pods(&svc).await })
    }

    /// Routable (alive and `READY`) pods of `service`, sorted.
    fn routable_pods(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.routable_pods(&svc).await })
    }

    /// Whether `pod` of `service` is alive.
    fn is_pod_alive(&self, service: &Obj, pod: &Obj) -> Out {
        let (svc, pod) = (owned(service, "service")?, args::pod(pod, "pod")?);
        self.run(|d| async move { d.is_pod_alive(&svc, pod).await })
    }

    /// Whether `pod` of `service` is routable.
    fn is_pod_routable(&self, service: &Obj, pod: &Obj) -> Out {
        let (svc, pod) = (owned(service, "service")?, args::pod(pod, "pod")?);
        self.run(|d| async move { d.is_pod_routable(&svc, pod).await })
    }

    /// The pod a new user of `service` would get now.
    fn best_pod(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.best_pod(&svc).await })
    }

    /// Pod states of `service` as of the last snapshot.
    fn pod_states(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move {
            let states = d.pod_states(&svc).await?;
            Ok(states.into_iter().map(PodState::from).collect::<Vec<_>>())
        })
    }

    /// Re-reads `service`'s pod states now.
    fn refresh_service(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.refresh_service(&svc).await })
    }

    /// Workload state of `service` (`None` if unset).
    fn get_workload_state(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.get_workload_state(&svc).await })
    }

    /// Sets the workload state of `service` (a word of `[A-Za-z0-9_-]`).
    fn set_workload_state(&self, service: &Obj, state: &Obj) -> Out {
        let (svc, state) = (owned(service, "service")?, owned(state, "state")?);
        self.run(|d| async move { d.set_workload_state(&svc, &state).await })
    }

    /// Workload states of many services, in input order.
    fn batch_get_workload_state(&self, services: &Obj) -> Out {
        let services = args::texts(services, "services")?;
        self.run(|d| async move { d.batch_get_workload_state(&services).await })
    }

    /// Whether `service`'s workload state is `READY`.
    fn is_workload_ready(&self, service: &Obj) -> Out {
        let svc = owned(service, "service")?;
        self.run(|d| async move { d.is_workload_ready(&svc).await })
    }

    /// Makes `tag` stand for `service`.
    fn set_global_service_name_tag(&self, tag: &Obj, service: &Obj) -> Out {
        let (tag, svc) = (owned(tag, "tag")?, owned(service, "service")?);
        self.run(|d| async move { d.set_global_service_name_tag(&tag, &svc).await })
    }

    /// The service `tag` stands for, or `None`.
    fn get_service_name_by_tag(&self, tag: &Obj) -> Out {
        let name = owned(tag, "tag")?;
        self.run(|d| async move { d.get_service_name_by_tag(&name).await })
    }

    /// Calls `callback(change: RoutingStateChange)` whenever a refresh sees a pod's
    /// routing state change. Registered from a running asyncio loop, the callback runs
    /// on that loop (`call_soon_threadsafe`); otherwise on a library thread. Returns an
    /// id for `remove_routing_state_listener`.
    fn on_routing_state_changed(&self, callback: &Obj) -> PyResult<u64> {
        let (callback, event_loop) = listener_of(callback, self.blocking)?;
        let listener = move |c: &core::RoutingStateChange| {
            deliver(
                &callback,
                event_loop.as_ref(),
                RoutingStateChange::from(c.clone()),
            )
        };
        Ok(self.inner.on_routing_state_changed(listener))
    }

    /// Removes a listener; whether it was registered.
    fn remove_routing_state_listener(&self, id: u64) -> bool {
        self.inner.remove_routing_state_listener(id)
    }

    /// Calls `callback(change: LinkChange)` for each change of a link of this driver's
    /// namespace made anywhere (SPEC §11): a move, a removal (`pod` is `None`), a
    /// replacement; the driver has already dropped its cache entry. Registered from a running
    /// asyncio loop, the callback runs on that loop (`call_soon_threadsafe`); otherwise on a
    /// library thread (Redis) or inside the writing call (memory store). Returns an id for
    /// `remove_link_listener`.
    fn on_link_changed(&self, callback: &Obj) -> PyResult<u64> {
        let (callback, event_loop) = listener_of(callback, self.blocking)?;
        let listener = move |c: &core::LinkChange| {
            deliver(&callback, event_loop.as_ref(), LinkChange::from(c.clone()))
        };
        Ok(self.inner.on_link_changed(listener))
    }

    /// Removes a link listener; whether it was registered.
    fn remove_link_listener(&self, id: u64) -> bool {
        self.inner.remove_link_listener(id)
    }

    /// Places new users of `service` with `placement` instead of the configured one: a
    /// built-in name (`"p2c"`, `"random"`, `"round_robin"`, `"rendezvous"`, `"weighted"`) or a
    /// callable `policy(candidates, request) -> int | None`. `load_factor` (>= 1, default
    /// 1.25) goes with `"rendezvous"` only.
    #[pyo3(signature = (service, placement, *, load_factor = None))]
    fn set_service_placement(
        &self,
        service: &Obj,
        placement: &Obj,
        load_factor: Option<&Obj>,
    ) -> PyResult<()> {
        let svc = args::text(service, "service")?;
        let factor = args::given(load_factor).map(|f| args::number(f, "load_factor"));
        let factor = factor.transpose()?.unwrap_or(0.0);
        // An argument, not a config: the core's `INVALID_CONFIG` becomes `INVALID_ARGUMENT`.
        let p = extend::placement_arg(placement, factor, "load_factor")
            .map_err(|e| core::Error::new(core::ErrorKind::InvalidArgument, e.message()));
        self.inner
            .set_service_placement(&svc, p.or_raise()?)
            .or_raise()
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

    /// `async with ClientDriver(...) as client`: `init()` on enter, `close()` on exit.
    fn __aenter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        runtime::runtime()?;
        let (d, me) = (slf.get().inner.clone(), slf.clone().unbind());
        runtime::run(slf.py(), false, async move {
            init_off_loop(d).await?;
            Ok(me)
        })
    }

    fn __aexit__(&self, py: Python<'_>, _exc_type: &Obj, _exc: &Obj, _tb: &Obj) -> Out {
        self.inner.close();
        runtime::ready(false, py.None().into_bound(py)).map(Bound::unbind)
    }

    fn __repr__(&self) -> String {
        let ns = &self.inner.server_info().namespace;
        format!("<ClientDriver namespace={ns:?}>")
    }
}

/// `init()` for an asyncio caller: the core's `init` waits (for the event subscription), so it
/// runs on a blocking thread of the runtime, never on the event loop's.
async fn init_off_loop(d: Arc<core::ClientDriver>) -> core::Result<()> {
    match tokio::task::spawn_blocking(move || d.init()).await {
        Ok(done) => done,
        Err(e) => Err(core::Error::new(core::ErrorKind::Internal, e.to_string())),
    }
}

/// The running asyncio loop of this thread, if any.
fn py_loop(py: Python<'_>) -> Option<Py<PyAny>> {
    let asyncio = py.import("asyncio").ok()?;
    asyncio
        .call_method0("get_running_loop")
        .ok()
        .map(Bound::unbind)
}
