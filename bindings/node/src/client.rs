//! `ClientDriver`: the JS face of the core's client driver (`core/src/client.rs`), run by
//! gateways to answer "which pod serves this user?".
//!
//! `computeCached` is the core's synchronous cache probe; `index.js` builds the public
//! `computeLinkedPod` from it and `computeLinkedPodUncached`, so a cache hit resolves without
//! leaving the JS thread. Every method that may touch the store returns a Promise.

use std::collections::BTreeMap;
use std::sync::Arc;

use napi::bindgen_prelude::{Function, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;
use stateful_route::{self as core, ErrorKind};

use crate::config::{pod_index, ttl, BaseConfig, Link, PodState, RoutingState, ServerInfo, Text};
use crate::error::{Code, OrThrow, Result};
use crate::extend::PlacementArg;
use crate::runtime::promise;
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

/// The gateway side: which pod serves a user, from a local cache first and the store second.
/// Call `init()` before use and `close()` when done.
#[napi]
#[derive(Debug)]
pub struct ClientDriver {
    pub(crate) inner: Arc<core::ClientDriver>,
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
    #[napi(ts_return_type = "Promise<number>")]
    pub fn compute_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let c = self.inner.clone();
        promise(env, async move {
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

    /// The store half of `computeLinkedPod`, after a cache miss. Concurrent calls for one user
    /// share one store call.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn compute_linked_pod_uncached<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.compute_linked_pod_uncached(&namespace, &uid, &service)
                .await
        })
    }

    /// The link from the cache, else from the store (then cached); `null` if none.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn get_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.get_linked_pod(&namespace, &uid, &service).await
        })
    }

    /// The cached link, else a persistent link from the store; `null` if neither.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn get_linked_pod_in_cache_or_if_persist<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.get_linked_pod_in_cache_or_if_persist(&namespace, &uid, &service)
                .await
        })
    }

    /// The link from the store, bypassing (and not filling) the cache; `null` if none.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn get_linked_pod_not_cache<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.get_linked_pod_not_cache(&namespace, &uid, &service).await
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
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_cache<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.set_cache(&namespace, &uid, &service, pod_index(pod)?)
                .await
        })
    }

    /// The user's persistent links: service → pod.
    #[napi(ts_return_type = "Promise<Record<string, number>>")]
    pub fn get_link_service<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
    ) -> napi::Result<PromiseRaw<'env, BTreeMap<String, u32>>> {
        let c = self.inner.clone();
        promise(
            env,
            async move { c.get_link_service(&namespace, &uid).await },
        )
    }

    /// pod (as a string key) → uids in input order, for the uids that have a link.
    #[napi(ts_return_type = "Promise<Record<string, Array<string>>>")]
    pub fn batch_get_linked_pod<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uids: Vec<String>,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, BTreeMap<String, Vec<String>>>> {
        let c = self.inner.clone();
        promise(env, async move {
            Ok(by_pod(
                c.batch_get_linked_pod(&namespace, &uids, &service).await?,
            ))
        })
    }

    /// Links `uid` to `pod` unless a link exists (`ttlSeconds`: -1 persistent, > 0 seconds);
    /// resolves to the link in force, which is cached.
    #[napi(ts_return_type = "Promise<Link>")]
    pub fn set_linked_pod_if_absent<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, Link>> {
        let c = self.inner.clone();
        promise(env, async move {
            let ttl = ttl(ttl_seconds)?.as_secs();
            let l = c
                .set_linked_pod_if_absent(&namespace, &uid, &service, pod_index(pod)?, ttl)
                .await?;
            Ok(Link::from(l))
        })
    }

    /// Links held by the local cache (approximate).
    #[napi]
    pub fn cache_len(&self) -> f64 {
        self.inner.cache_len() as f64
    }

    /// Alive pods of `service`, sorted.
    #[napi(ts_return_type = "Promise<Array<number>>")]
    pub fn alive_pods<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Vec<u32>>> {
        let c = self.inner.clone();
        promise(env, async move { c.alive_pods(&service).await })
    }

    /// Routable (alive and `READY`) pods of `service`, sorted.
    #[napi(ts_return_type = "Promise<Array<number>>")]
    pub fn routable_pods<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Vec<u32>>> {
        let c = self.inner.clone();
        promise(env, async move { c.routable_pods(&service).await })
    }

    /// Whether `pod` of `service` is alive.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn is_pod_alive<'env>(
        &self,
        env: &'env Env,
        service: String,
        pod: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.is_pod_alive(&service, pod_index(pod)?).await
        })
    }

    /// Whether `pod` of `service` is routable.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn is_pod_routable<'env>(
        &self,
        env: &'env Env,
        service: String,
        pod: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.is_pod_routable(&service, pod_index(pod)?).await
        })
    }

    /// The pod a new user of `service` would get now (`NO_AVAILABLE_POD` if none is routable).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn best_pod<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, u32>> {
        let c = self.inner.clone();
        promise(env, async move { c.best_pod(&service).await })
    }

    /// Pod states of `service` as of the last snapshot.
    #[napi(ts_return_type = "Promise<Array<PodState>>")]
    pub fn pod_states<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Vec<PodState>>> {
        let c = self.inner.clone();
        promise(env, async move {
            Ok(c.pod_states(&service)
                .await?
                .into_iter()
                .map(PodState::from)
                .collect())
        })
    }

    /// Re-reads `service`'s pod states now (routing-state listeners see the changes).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn refresh_service<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let c = self.inner.clone();
        promise(env, async move { c.refresh_service(&service).await })
    }

    /// Workload state of `service`, or `null`.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get_workload_state<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let c = self.inner.clone();
        promise(env, async move { c.get_workload_state(&service).await })
    }

    /// Sets the workload state of `service`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_workload_state<'env>(
        &self,
        env: &'env Env,
        service: String,
        state: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let c = self.inner.clone();
        promise(
            env,
            async move { c.set_workload_state(&service, &state).await },
        )
    }

    /// Workload states of many services, in input order (`null` where unset).
    #[napi(ts_return_type = "Promise<Array<string | null>>")]
    pub fn batch_get_workload_state<'env>(
        &self,
        env: &'env Env,
        services: Vec<String>,
    ) -> napi::Result<PromiseRaw<'env, Vec<Option<String>>>> {
        let c = self.inner.clone();
        promise(
            env,
            async move { c.batch_get_workload_state(&services).await },
        )
    }

    /// Whether `service`'s workload state is `READY`.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn is_workload_ready<'env>(
        &self,
        env: &'env Env,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let c = self.inner.clone();
        promise(env, async move { c.is_workload_ready(&service).await })
    }

    /// Makes `tag` stand for `service`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_global_service_name_tag<'env>(
        &self,
        env: &'env Env,
        tag: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let c = self.inner.clone();
        promise(env, async move {
            c.set_global_service_name_tag(&tag, &service).await
        })
    }

    /// The service `tag` stands for, or `null`.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get_service_name_by_tag<'env>(
        &self,
        env: &'env Env,
        tag: String,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let c = self.inner.clone();
        promise(env, async move { c.get_service_name_by_tag(&tag).await })
    }

    /// Places new users of `service` with `placement` instead of the configured policy: a
    /// built-in policy's name (`'p2c'`, `'random'`, `'round_robin'`, `'rendezvous'`,
    /// `'weighted'`) or a function `(candidates, request) => index | null`, called on the JS
    /// thread for each new user (a runtime thread waits for it, at most 2 s).
    #[napi(
        ts_args_type = "service: string, placement: string | ((candidates: Array<Candidate>, request: PlacementRequest) => number | null | undefined)"
    )]
    pub fn set_service_placement(&self, service: String, placement: PlacementArg) -> Result<()> {
        let p = placement.into_core(ErrorKind::InvalidArgument).or_throw()?;
        self.inner.set_service_placement(&service, p).or_throw()
    }

    /// Calls `callback` on the JS thread whenever a snapshot refresh sees a pod's routing state
    /// change. The callback does not keep the process alive. Returns an id for
    /// `removeRoutingStateListener`.
    #[napi]
    pub fn on_routing_state_changed(
        &self,
        callback: Function<'_, RoutingStateChange, ()>,
    ) -> Result<f64> {
        let tsfn = callback
            .build_threadsafe_function::<RoutingStateChange>()
            .weak::<true>()
            .build()
            .map_err(|e| napi::Error::new(Code::from(e.status), e.reason.clone()))?;
        let id = self.inner.on_routing_state_changed(move |change| {
            tsfn.call(
                RoutingStateChange::from(change),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        });
        Ok(id as f64)
    }

    /// Removes a routing-state listener; returns whether it was registered.
    #[napi]
    pub fn remove_routing_state_listener(&self, id: f64) -> bool {
        id >= 0.0 && id.fract() == 0.0 && self.inner.remove_routing_state_listener(id as u64)
    }
}
