//! `Store`: the JS face of the core's store handle (`core/src/store/mod.rs`) — Redis or the
//! embedded in-memory store, and the link operations of SPEC §4 on it.
//!
//! Every method that touches the store returns a Promise; "no link" is `null`.

use std::collections::BTreeMap;
use std::time::Duration;

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use napi_derive::napi;
use stateful_route::{self as core, pod_state, ErrorKind, StoreConfig as CoreStoreConfig};

use crate::config::{delay, pod_index, ttl, Link, PodState, RoutingState, TrySetOutcome};
use crate::error::{OrThrow, Result};
use crate::runtime::promise;

/// Settings of a store; every field is optional.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Prefix of every key (`[A-Za-z0-9._-]`, 1–64 chars). Default `'sf'`.
    pub key_prefix: Option<String>,
    /// Deadline for establishing a connection, in seconds. Default 5.
    pub connect_timeout_seconds: Option<f64>,
    /// Deadline for one store command, in seconds. Default 2.
    pub command_timeout_seconds: Option<f64>,
    /// For `rediss://`: the PEM certificate (chain) of the CA that signed the server's
    /// certificate, trusted in addition to the system's roots.
    pub tls_ca_cert_pem: Option<String>,
}

impl StoreConfig {
    fn into_core(self) -> core::Result<CoreStoreConfig> {
        let mut c = CoreStoreConfig::default();
        let secs = |field: &str, v: f64| -> core::Result<Duration> {
            if v.is_finite() && (0.0..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(crate::error::invalid(
                    ErrorKind::InvalidConfig,
                    field,
                    format!("{v} must be a number of seconds in [0, 86400]"),
                ))
            }
        };
        if let Some(v) = self.key_prefix {
            c.key_prefix = v;
        }
        if let Some(v) = self.connect_timeout_seconds {
            c.connect_timeout = secs("connect_timeout_seconds", v)?;
        }
        if let Some(v) = self.command_timeout_seconds {
            c.command_timeout = secs("command_timeout_seconds", v)?;
        }
        if let Some(v) = self.tls_ca_cert_pem {
            c.tls_ca_cert_pem = Some(v.into_bytes());
        }
        Ok(c)
    }
}

/// Where links, pod states, workload states and tags live: Redis (`Store.connect`) or the
/// embedded in-memory store (`Store.memory`). Share one store between any number of drivers.
#[napi]
#[derive(Debug)]
pub struct Store {
    pub(crate) inner: core::Store,
}

#[napi]
impl Store {
    /// The embedded in-memory store (one process, no Redis needed).
    #[napi(factory, strict, writable = true, configurable = true)]
    pub fn memory(config: Option<StoreConfig>) -> Result<Store> {
        let inner = match config {
            None => core::Store::memory(),
            Some(c) => core::Store::memory_with(&c.into_core().or_throw()?).or_throw()?,
        };
        Ok(Store { inner })
    }

    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://` for
    /// TLS). Rejects with `STORE_UNAVAILABLE` or `TIMEOUT` if it cannot connect.
    #[napi(
        ts_return_type = "Promise<Store>",
        strict,
        writable = true,
        configurable = true
    )]
    pub fn connect<'env>(
        env: &'env Env,
        url: String,
        config: Option<StoreConfig>,
    ) -> napi::Result<PromiseRaw<'env, Store>> {
        promise(env, async move {
            let config = config.unwrap_or_default().into_core()?;
            let inner = core::Store::redis_with(&url, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Connects to a Redis Cluster through any of its nodes (`urls`: seed nodes). Behaviour is
    /// the same as on one node; redirections and failovers are followed.
    #[napi(
        ts_return_type = "Promise<Store>",
        strict,
        writable = true,
        configurable = true
    )]
    pub fn connect_cluster<'env>(
        env: &'env Env,
        urls: Vec<String>,
        config: Option<StoreConfig>,
    ) -> napi::Result<PromiseRaw<'env, Store>> {
        promise(env, async move {
            let config = config.unwrap_or_default().into_core()?;
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let inner = core::Store::redis_cluster_with(&urls, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Connects to the master that the Redis Sentinels at `sentinelUrls` call `masterName`;
    /// when they fail over, the store follows the new master.
    #[napi(
        ts_return_type = "Promise<Store>",
        strict,
        writable = true,
        configurable = true
    )]
    pub fn connect_sentinel<'env>(
        env: &'env Env,
        sentinel_urls: Vec<String>,
        master_name: String,
        config: Option<StoreConfig>,
    ) -> napi::Result<PromiseRaw<'env, Store>> {
        promise(env, async move {
            let config = config.unwrap_or_default().into_core()?;
            let urls: Vec<&str> = sentinel_urls.iter().map(String::as_str).collect();
            let inner = core::Store::redis_sentinel_with(&urls, &master_name, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Sets a link unconditionally (`ttl`: -1 persistent, > 0 seconds); resolves to the
    /// previous pod or `null`.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn set_link<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.set_link(
                &namespace,
                &uid,
                &service,
                pod_index(pod)?,
                ttl(ttl_seconds)?,
            )
            .await
        })
    }

    /// Sets a link unless one exists (an existing link wins, its TTL untouched); resolves to
    /// the link in force.
    #[napi(ts_return_type = "Promise<Link>")]
    pub fn set_link_if_absent<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, Link>> {
        let s = self.inner.clone();
        promise(env, async move {
            let l = s
                .set_link_if_absent(
                    &namespace,
                    &uid,
                    &service,
                    pod_index(pod)?,
                    ttl(ttl_seconds)?,
                )
                .await?;
            Ok(Link::from(l))
        })
    }

    /// Sets a link unless a persistent link to another pod exists.
    #[napi(ts_return_type = "Promise<TrySetOutcome>")]
    pub fn try_set_link<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, TrySetOutcome>> {
        let s = self.inner.clone();
        promise(env, async move {
            let o = s
                .try_set_link(
                    &namespace,
                    &uid,
                    &service,
                    pod_index(pod)?,
                    ttl(ttl_seconds)?,
                )
                .await?;
            Ok(TrySetOutcome::from(o))
        })
    }

    /// Removes a link now (`delaySeconds <= 0`) or lets it expire after `delaySeconds`; it
    /// leaves the user's persistent links at once. Resolves to whether a link existed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_link<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        delay_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.remove_link(&namespace, &uid, &service, delay(delay_seconds)?)
                .await
        })
    }

    /// As `removeLink`, only if the link points to `pod`. Resolves to whether it was removed.
    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn remove_link_if<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        delay_seconds: f64,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.remove_link_if(
                &namespace,
                &uid,
                &service,
                pod_index(pod)?,
                delay(delay_seconds)?,
            )
            .await
        })
    }

    /// Reads a link with its remaining TTL; `null` if there is none.
    #[napi(ts_return_type = "Promise<Link | null>")]
    pub fn get_link<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<Link>>> {
        let s = self.inner.clone();
        promise(env, async move {
            Ok(s.get_link(&namespace, &uid, &service)
                .await?
                .map(Link::from))
        })
    }

    /// Reads a persistent link; temporary links read as `null`.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn get_link_if_persist<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<u32>>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.get_link_if_persist(&namespace, &uid, &service).await
        })
    }

    /// The user's persistent links: service → pod.
    #[napi(ts_return_type = "Promise<Record<string, number>>")]
    pub fn get_link_services<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uid: String,
    ) -> napi::Result<PromiseRaw<'env, BTreeMap<String, u32>>> {
        let s = self.inner.clone();
        promise(
            env,
            async move { s.get_link_services(&namespace, &uid).await },
        )
    }

    /// Reads many links of one service: pod (as a string key) → uids in input order; uids
    /// without a link are left out.
    #[napi(ts_return_type = "Promise<Record<string, Array<string>>>")]
    pub fn batch_get_links<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        uids: Vec<String>,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, BTreeMap<String, Vec<String>>>> {
        let s = self.inner.clone();
        promise(env, async move {
            Ok(by_pod(
                s.batch_get_links(&namespace, &uids, &service).await?,
            ))
        })
    }

    /// Publishes a pod's state stamped with the store's clock, with a placement weight
    /// (default 100); resolves to the stamp (ms). Pods do this themselves through
    /// `ServerDriver`; this is for tools and tests.
    #[napi(ts_return_type = "Promise<number>")]
    #[allow(clippy::too_many_arguments)]
    pub fn publish_pod_state<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        service: String,
        pod: f64,
        load: f64,
        routing_state: RoutingState,
        weight: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let s = self.inner.clone();
        promise(env, async move {
            let weight = match weight {
                Some(w) => crate::config::load(w)?,
                None => pod_state::DEFAULT_WEIGHT,
            };
            let at = s
                .publish_pod_state_weighted(
                    &namespace,
                    &service,
                    pod_index(pod)?,
                    crate::config::load(load)?,
                    routing_state.into(),
                    weight,
                )
                .await?;
            Ok(at as f64)
        })
    }

    /// A service's pod states, sorted by pod index (unparsable entries are skipped and logged).
    #[napi(ts_return_type = "Promise<Array<PodState>>")]
    pub fn pod_states<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Vec<PodState>>> {
        let s = self.inner.clone();
        promise(env, async move {
            let states = s.pod_states(&namespace, &service).await?;
            Ok(states.pods.into_iter().map(PodState::from).collect())
        })
    }

    /// Sets a service's workload state (a word; `'READY'` means ready).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_workload_state<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        service: String,
        state: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.set_workload_state(&namespace, &service, &state).await
        })
    }

    /// A service's workload state, or `null`.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get_workload_state<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let s = self.inner.clone();
        promise(env, async move {
            s.get_workload_state(&namespace, &service).await
        })
    }

    /// Sets the service name that `tag` stands for.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_tag<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        tag: String,
        service: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let s = self.inner.clone();
        promise(
            env,
            async move { s.set_tag(&namespace, &tag, &service).await },
        )
    }

    /// The service name that `tag` stands for, or `null`.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn get_tag<'env>(
        &self,
        env: &'env Env,
        namespace: String,
        tag: String,
    ) -> napi::Result<PromiseRaw<'env, Option<String>>> {
        let s = self.inner.clone();
        promise(env, async move { s.get_tag(&namespace, &tag).await })
    }
}

/// pod → uids with the pod as an object key (JS object keys are strings).
pub fn by_pod(m: BTreeMap<u32, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    m.into_iter().map(|(p, u)| (p.to_string(), u)).collect()
}
