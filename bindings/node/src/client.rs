//! `ClientDriver`: the JS face of the core's client driver (`core/src/client.rs`), run by
//! gateways to answer "which pod serves this user?".
//!
//! `computeCached` is the core's synchronous cache probe; `index.js` builds the public
//! `computeLinkedPod` from it and `computeLinkedPodUncached`, so a cache hit resolves without
//! leaving the JS thread. Every method that may touch the store returns a Promise.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Either, FnArgs, FromNapiValue, Function, Null, Object, ToNapiValue};
use napi::bindgen_prelude::{JsObjectValue, Unknown};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{sys, Env};
use napi_derive::napi;
use stateful_route as core;

use crate::config::{self as arg, or_null, pod_index, BaseConfig, Link, PodState, RoutingState};
use crate::config::{ServerInfo, Text};
use crate::error::{Code, OrThrow, Result};
use crate::extend::PlacementArg;
use crate::metrics::{Explanation, MetricsSnapshot};
use crate::runtime::{promise, Promise};
use crate::store::{by_pod, Store};

/// A change of a pod's routing state as this gateway saw it in a snapshot refresh.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct RoutingStateChange {
    /// The service.
    pub service: String,
    /// The pod.
    pub pod_index: u32,
    /// The state before; `null`: the pod was not alive.
    pub old: Option<RoutingState>,
    /// The state now; `null`: the pod is not alive (absent, stale or shut down).
    pub new: Option<RoutingState>,
}

impl From<&core::RoutingStateChange> for RoutingStateChange {
    fn from(c: &core::RoutingStateChange) -> Self {
        RoutingStateChange {
            service: c.service.clone(),
            pod_index: c.pod_index,
            old: c.old.map(Into::into),
            new: c.new.map(Into::into),
        }
    }
}

/// A link that changed anywhere (a move, a removal, a replacement), as every gateway sharing
/// the store sees it.
#[napi(object, use_nullable = true)]
#[derive(Debug, Clone)]
pub struct LinkChange {
    /// The namespace.
    pub namespace: String,
    /// The service.
    pub service: String,
    /// The user.
    pub uid: String,
    /// The pod the link points to now; `null`: removed.
    pub pod: Option<u32>,
    /// Whether the link is persistent now (`false` when removed).
    pub persistent: bool,
}

impl From<&core::LinkChange> for LinkChange {
    fn from(c: &core::LinkChange) -> Self {
        LinkChange {
            namespace: c.namespace.clone(),
            service: c.service.clone(),
            uid: c.uid.clone(),
            pod: c.pod,
            persistent: c.persistent,
        }
    }
}

/// A JS listener as a core listener: `register` gets a closure that queues `T` for the JS
/// thread and returns the core's id. The threadsafe function is weak (it never keeps the
/// process alive) and queued without blocking (the core may call it from any thread, the JS
/// thread included: the memory store notifies inside the writing call). A listener that throws
/// becomes a process warning (`process.on('warning')`); it neither crashes the process nor
/// stops other listeners. The core drops the closure on removal, which releases the function.
fn listen<T, F>(what: &'static str, callback: Function<'_, T, ()>, register: F) -> Result<f64>
where
    T: ToNapiValue + FromNapiValue + Send + 'static,
    F: FnOnce(Box<dyn Fn(T) + Send + Sync>) -> u64,
{
    let tsfn = callback
        .build_threadsafe_function::<T>()
        .weak::<true>()
        .build()
        .map_err(|e| napi::Error::new(Code::from(e.status), e.reason.clone()))?;
    let id = register(Box::new(move |value| {
        // The completion callback gets the listener's throw instead of napi's fatal exception.
        tsfn.call_with_return_value(
            value,
            ThreadsafeFunctionCallMode::NonBlocking,
            move |returned, env| {
                if let Err(e) = returned {
                    warn(&env, format!("a {what} listener threw: {}", e.reason));
                }
                Ok(())
            },
        );
    }));
    Ok(id as f64)
}

/// `process.emitWarning(message, 'StatefulRouteWarning')` on the JS thread; nothing is left
/// pending if that fails.
fn warn(env: &Env, message: String) {
    let emitted = (|| -> napi::Result<()> {
        let process: Object<'_> = env.get_global()?.get_named_property("process")?;
        let emit: Function<'_, FnArgs<(String, &str)>, Unknown<'_>> =
            process.get_named_property("emitWarning")?;
        emit.apply(process, (message, "StatefulRouteWarning").into())?;
        Ok(())
    })();
    if emitted.is_err() {
        let mut pending = false;
        // SAFETY: the JS thread with a live env (a threadsafe function's completion callback).
        unsafe {
            sys::napi_is_exception_pending(env.raw(), &mut pending);
            if pending {
                let mut exception = std::ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env.raw(), &mut exception);
            }
        }
    }
}

/// The gateway side: which pod serves a user, from a local cache first and the store second.
/// Call `init()` before use and `close()` when done.
#[napi]
#[derive(Debug)]
pub struct ClientDriver {
    pub(crate) inner: Arc<core::ClientDriver>,
    /// Whether `_frontEpochs` was called (one `ArrayBuffer` per driver: V8 refuses two over
    /// the same memory).
    front_taken: AtomicBool,
}

/// The front cache's epochs as an external `ArrayBuffer` that holds them (`null` where the
/// engine allows no external buffers: a copy would never see a bump).
#[derive(Debug)]
pub struct EpochsView(core::FrontView);

impl ToNapiValue for EpochsView {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        unsafe extern "C" fn release(
            _env: sys::napi_env,
            _data: *mut std::ffi::c_void,
            hint: *mut std::ffi::c_void,
        ) {
            // SAFETY: `hint` is the box made below, released once by the engine.
            drop(unsafe { Box::from_raw(hint.cast::<core::FrontView>()) });
        }
        let words = val.0.words();
        let hold = Box::into_raw(Box::new(val.0));
        let mut out = std::ptr::null_mut();
        // SAFETY: the memory is 'static and `hold` keeps it from another driver until release.
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                env,
                words.as_ptr() as *mut std::ffi::c_void,
                std::mem::size_of_val(words),
                Some(release),
                hold.cast(),
                &mut out,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok(out);
        }
        // SAFETY: not handed to the engine.
        drop(unsafe { Box::from_raw(hold) });
        unsafe { Null::to_napi_value(env, Null) }
    }
}

#[napi]
impl ClientDriver {
    /// A client driver in `info.namespace` on `store`; `config` fields default as documented.
    #[napi(constructor, strict)]
    pub fn new(store: &Store, info: ServerInfo, config: Option<BaseConfig>) -> Result<Self> {
        let info = info.into_core().or_throw()?;
        let config = config.unwrap_or_default().into_core().or_throw()?;
        let inner = core::ClientDriver::new(store.inner.clone(), info, config).or_throw()?;
        Ok(ClientDriver {
            inner: Arc::new(inner),
            front_taken: AtomicBool::new(false),
        })
    }

    /// Starts the periodic snapshot refresh. Idempotent; `CLOSED` after `close()`.
    #[napi]
    pub fn init(&self) -> Result<()> {
        self.inner.init().or_throw()
    }

    /// Stops the refresh and empties the cache. Idempotent.
    #[napi]
    pub fn close(&self) {
        self.inner.close()
    }

    /// Who this driver is.
    #[napi(getter)]
    pub fn server_info(&self) -> ServerInfo {
        ServerInfo::from_core(self.inner.server_info())
    }

    /// The configuration in force.
    #[napi(getter)]
    pub fn config(&self) -> BaseConfig {
        BaseConfig::from_core(self.inner.config())
    }

    /// The pod serving `uid` for `service`, placing the user on the best pod if it has no link
    /// yet. `namespace` is `''` or this driver's namespace. A cache hit resolves on the JS thread.
    #[napi]
    pub fn compute_linked_pod(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<u32> {
        promise(&self.inner, move |c| async move {
            // index.js replaces this with `computeCached` + `computeLinkedPodUncached`.
            c.compute_linked_pod(&namespace, &uid, &service).await
        })
    }

    /// The synchronous first half of `computeLinkedPod`: the cached pod if the cache holds a link
    /// to an alive pod, else `null` (then call `computeLinkedPodUncached`).
    #[napi(ts_args_type = "namespace: string, uid: string, service: string")]
    pub fn compute_cached(&self, namespace: Text, uid: Text, service: Text) -> Result<Option<u32>> {
        self.inner
            .compute_cached(namespace.as_str(), uid.as_str(), service.as_str())
            .or_throw()
    }

    /// For the front cache of `computeLinkedPod` (README, "Front caches"): the core's hit as
    /// `[pod, ms it may be kept, stripe, epoch]`, or `null` on a miss; the errors of
    /// `computeCached`.
    #[napi(
        js_name = "_computeFront",
        ts_args_type = "namespace: string, uid: string, service: string"
    )]
    pub fn compute_front(
        &self,
        namespace: Text,
        uid: Text,
        service: Text,
    ) -> Result<Option<Vec<f64>>> {
        let hit = self
            .inner
            .compute_front(namespace.as_str(), uid.as_str(), service.as_str())
            .or_throw()?;
        Ok(hit.map(|h| {
            vec![
                h.pod as f64,
                h.valid_for.as_secs_f64() * 1000.0,
                h.stripe as f64,
                h.epoch as f64,
            ]
        }))
    }

    /// The front cache's epochs (an `ArrayBuffer` of `u32`s the core bumps); once per driver,
    /// `null` after that or where external buffers are not allowed.
    #[napi(js_name = "_frontEpochs", ts_return_type = "ArrayBuffer | null")]
    pub fn front_epochs(&self) -> Option<EpochsView> {
        (!self.front_taken.swap(true, Ordering::AcqRel))
            .then(|| EpochsView(self.inner.front_view()))
    }

    /// Counts `n` hits of `service` answered by the front cache.
    #[napi(js_name = "_addFrontHits")]
    pub fn add_front_hits(&self, service: String, n: f64) {
        if n.is_finite() && n >= 1.0 {
            self.inner.add_front_hits(&service, n as u64);
        }
    }

    /// The store half of `computeLinkedPod`, after a cache miss. Concurrent calls for one user
    /// share one store call.
    #[napi]
    pub fn compute_linked_pod_uncached(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<u32> {
        promise(&self.inner, move |c| async move {
            c.compute_linked_pod_uncached(&namespace, &uid, &service)
                .await
        })
    }

    /// The link from the cache, else from the store (then cached); `null` if none.
    #[napi]
    pub fn get_linked_pod(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |c| async move {
            c.get_linked_pod(&namespace, &uid, &service)
                .await
                .map(or_null)
        })
    }

    /// The cached link, else a persistent link from the store; `null` if neither.
    #[napi]
    pub fn get_linked_pod_in_cache_or_if_persist(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |c| async move {
            c.get_linked_pod_in_cache_or_if_persist(&namespace, &uid, &service)
                .await
                .map(or_null)
        })
    }

    /// The link from the store, bypassing (and not filling) the cache; `null` if none.
    #[napi]
    pub fn get_linked_pod_not_cache(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |c| async move {
            c.get_linked_pod_not_cache(&namespace, &uid, &service)
                .await
                .map(or_null)
        })
    }

    /// The cached link only; `null` if none.
    #[napi]
    pub fn get_linked_in_cache(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Result<Option<u32>> {
        self.inner
            .get_linked_in_cache(&namespace, &uid, &service)
            .or_throw()
    }

    /// Drops the cached link and returns what it held (`null` if nothing).
    #[napi]
    pub fn cache_expired(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Result<Option<u32>> {
        self.inner
            .cache_expired(&namespace, &uid, &service)
            .or_throw()
    }

    /// Caches `pod` for `uid` (for `userLinkInfoCacheTimeSeconds`).
    #[napi]
    pub fn set_cache(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> Promise<()> {
        promise(&self.inner, move |c| async move {
            let pod = pod_index(pod)?;
            c.set_cache(&namespace, &uid, &service, pod).await
        })
    }

    /// The user's persistent links: service → pod.
    #[napi]
    pub fn get_link_service(
        &self,
        namespace: String,
        uid: String,
    ) -> Promise<BTreeMap<String, u32>> {
        promise(&self.inner, move |c| async move {
            c.get_link_service(&namespace, &uid).await
        })
    }

    /// pod (as a string key) → uids in input order, for the uids that have a link.
    #[napi]
    pub fn batch_get_linked_pod(
        &self,
        namespace: String,
        uids: Vec<String>,
        service: String,
    ) -> Promise<BTreeMap<String, Vec<String>>> {
        promise(&self.inner, move |c| async move {
            let links = c.batch_get_linked_pod(&namespace, &uids, &service).await?;
            Ok(by_pod(links))
        })
    }

    /// Links `uid` to `pod` unless a link exists (`ttl`: -1 persistent, > 0 seconds); resolves
    /// to the link in force, which is cached.
    #[napi]
    pub fn set_linked_pod_if_absent(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl: f64,
    ) -> Promise<Link> {
        promise(&self.inner, move |c| async move {
            let (pod, ttl) = (pod_index(pod)?, arg::ttl(ttl)?.as_secs());
            Ok(
                c.set_linked_pod_if_absent(&namespace, &uid, &service, pod, ttl)
                    .await?
                    .into(),
            )
        })
    }

    /// Links held by the local cache (approximate).
    #[napi]
    pub fn cache_len(&self) -> f64 {
        self.inner.cache_len() as f64
    }

    /// Alive pods of `service`, sorted.
    #[napi]
    pub fn alive_pods(&self, service: String) -> Promise<Vec<u32>> {
        promise(
            &self.inner,
            move |c| async move { c.alive_pods(&service).await },
        )
    }

    /// Routable (alive and `READY`) pods of `service`, sorted.
    #[napi]
    pub fn routable_pods(&self, service: String) -> Promise<Vec<u32>> {
        promise(&self.inner, move |c| async move {
            c.routable_pods(&service).await
        })
    }

    /// Whether `pod` of `service` is alive.
    #[napi]
    pub fn is_pod_alive(&self, service: String, pod: f64) -> Promise<bool> {
        promise(&self.inner, move |c| async move {
            c.is_pod_alive(&service, pod_index(pod)?).await
        })
    }

    /// Whether `pod` of `service` is routable.
    #[napi]
    pub fn is_pod_routable(&self, service: String, pod: f64) -> Promise<bool> {
        promise(&self.inner, move |c| async move {
            c.is_pod_routable(&service, pod_index(pod)?).await
        })
    }

    /// The pod a new user of `service` would get now (`NO_AVAILABLE_POD` if none is routable).
    #[napi]
    pub fn best_pod(&self, service: String) -> Promise<u32> {
        promise(
            &self.inner,
            move |c| async move { c.best_pod(&service).await },
        )
    }

    /// Pod states of `service` as of the last snapshot.
    #[napi]
    pub fn pod_states(&self, service: String) -> Promise<Vec<PodState>> {
        promise(&self.inner, move |c| async move {
            let states = c.pod_states(&service).await?;
            Ok(states.into_iter().map(PodState::from).collect())
        })
    }

    /// Re-reads `service`'s pod states now (routing-state listeners see the changes).
    #[napi]
    pub fn refresh_service(&self, service: String) -> Promise<()> {
        promise(&self.inner, move |c| async move {
            c.refresh_service(&service).await
        })
    }

    /// Workload state of `service`, or `null`.
    #[napi]
    pub fn get_workload_state(&self, service: String) -> Promise<Either<String, Null>> {
        promise(&self.inner, move |c| async move {
            c.get_workload_state(&service).await.map(or_null)
        })
    }

    /// Sets the workload state of `service`.
    #[napi]
    pub fn set_workload_state(&self, service: String, state: String) -> Promise<()> {
        promise(&self.inner, move |c| async move {
            c.set_workload_state(&service, &state).await
        })
    }

    /// Workload states of many services, in input order (`null` where unset).
    #[napi]
    pub fn batch_get_workload_state(
        &self,
        services: Vec<String>,
    ) -> Promise<Vec<Either<String, Null>>> {
        promise(&self.inner, move |c| async move {
            Ok(c.batch_get_workload_state(&services)
                .await?
                .into_iter()
                .map(or_null)
                .collect())
        })
    }

    /// Whether `service`'s workload state is `READY`.
    #[napi]
    pub fn is_workload_ready(&self, service: String) -> Promise<bool> {
        promise(&self.inner, move |c| async move {
            c.is_workload_ready(&service).await
        })
    }

    /// Makes `tag` stand for `service`.
    #[napi]
    pub fn set_global_service_name_tag(&self, tag: String, service: String) -> Promise<()> {
        promise(&self.inner, move |c| async move {
            c.set_global_service_name_tag(&tag, &service).await
        })
    }

    /// The service `tag` stands for, or `null`.
    #[napi]
    pub fn get_service_name_by_tag(&self, tag: String) -> Promise<Either<String, Null>> {
        promise(&self.inner, move |c| async move {
            c.get_service_name_by_tag(&tag).await.map(or_null)
        })
    }

    /// Places new users of `service` with `placement` instead of the configured policy: a
    /// built-in policy's name (`'p2c'`, `'random'`, `'round_robin'`, `'rendezvous'`,
    /// `'weighted'`) or a function `(candidates, request) => index | null`, called on the JS
    /// thread for each new user (a runtime thread waits for it, at most 2 s). `loadFactor`:
    /// rendezvous's bound, as `placementLoadFactor` (`INVALID_CONFIG` for another policy).
    #[napi(
        ts_args_type = "service: string, placement: string | ((candidates: Array<Candidate>, request: PlacementRequest) => number | null | undefined), loadFactor?: number | undefined | null"
    )]
    pub fn set_service_placement(
        &self,
        service: String,
        placement: PlacementArg,
        load_factor: Option<f64>,
    ) -> Result<()> {
        let p = placement.into_core(load_factor.unwrap_or(0.0)).or_throw()?;
        self.inner.set_service_placement(&service, p).or_throw()
    }

    /// Calls `callback` on the JS thread whenever a snapshot refresh sees a pod's routing state
    /// change. The callback does not keep the process alive; a throw becomes a process warning.
    /// Returns an id for `removeRoutingStateListener`.
    #[napi]
    pub fn on_routing_state_changed(
        &self,
        callback: Function<'_, RoutingStateChange, ()>,
    ) -> Result<f64> {
        listen("routing-state", callback, |f| {
            self.inner
                .on_routing_state_changed(move |change| f(RoutingStateChange::from(change)))
        })
    }

    /// Removes a routing-state listener; returns whether it was registered.
    #[napi]
    pub fn remove_routing_state_listener(&self, id: f64) -> bool {
        id >= 0.0 && id.fract() == 0.0 && self.inner.remove_routing_state_listener(id as u64)
    }

    /// Calls `callback` on the JS thread for each change of a link of this driver's namespace
    /// made by any writer sharing the store (a move, a removal: `pod` `null`, a replacement),
    /// after this gateway has dropped its cache entry: e.g. close the user's socket when the
    /// user moves. Only changes that reach the driver while its event stream is connected are
    /// reported (after a gap the cache is emptied instead); none with `propagation: false`. The
    /// callback does not keep the process alive; a throw becomes a process warning. Returns an id
    /// for `removeLinkListener`.
    #[napi]
    pub fn on_link_changed(&self, callback: Function<'_, LinkChange, ()>) -> Result<f64> {
        listen("link", callback, |f| {
            self.inner
                .on_link_changed(move |change| f(LinkChange::from(change)))
        })
    }

    /// Removes a link listener; returns whether it was registered.
    #[napi]
    pub fn remove_link_listener(&self, id: f64) -> bool {
        id >= 0.0 && id.fract() == 0.0 && self.inner.remove_link_listener(id as u64)
    }

    /// What this driver counted and sees now: per service its hits, misses, stale answers,
    /// errors, accepted placements by pod and the pods of its snapshot; errors by code; the
    /// store's call latencies by operation; the event stream. Counters stay 0 with
    /// `metrics: false` (gauges are reported either way). Works before `init()` and after
    /// `close()` (the last figures).
    #[napi]
    pub fn metrics(&self) -> MetricsSnapshot {
        self.inner.metrics().into()
    }

    /// The same figures as `metrics()` in the Prometheus text exposition format (0.0.4), to
    /// append to a service's own `/metrics` (no uid in any label). The package has no
    /// dependency on a metrics library; with prom-client:
    ///
    /// ```js
    /// const { register } = require('prom-client')
    /// http.createServer(async (req, res) => {
    ///   res.setHeader('Content-Type', register.contentType)
    ///   res.end(await register.metrics() + client.metricsText())
    /// })
    /// ```
    #[napi]
    pub fn metrics_text(&self) -> String {
        self.inner.metrics_text()
    }

    /// Why `uid` gets the pod it gets for `service`: the user's link in the store and in this
    /// cache, every pod of the snapshot with its load, placements, routing state, age, weight
    /// and verdict, the policy, and the pod a new user would get now. A dry run: writes
    /// nothing and counts nothing (no placement, no hit).
    #[napi]
    pub fn explain_placement(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Explanation> {
        promise(&self.inner, move |c| async move {
            Ok(c.explain_placement(&namespace, &uid, &service)
                .await?
                .into())
        })
    }
}
