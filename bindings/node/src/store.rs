//! `Store`: the JS face of the core's store handle (`core/src/store/mod.rs`) — Redis or the
//! embedded in-memory store, and the link operations of SPEC §4 on it.
//!
//! Every method that touches the store returns a Promise; "no link" is `null`.

use std::collections::BTreeMap;
use std::time::Duration;

use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;
use stateful_route::{self as core, pod_state, ErrorKind, StoreConfig as CoreStoreConfig};

use crate::config::{self as arg, or_null, pod_index, Link, PodState, RoutingState, TrySetOutcome};
use crate::error::{OrThrow, Result};
use crate::runtime::{promise, Promise};

/// Settings of a store; every field is optional.
#[napi(object)]
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// Prefix of every key (`[A-Za-z0-9._-]`, 1–64 chars). Default `'sf'`.
    pub key_prefix: Option<String>,
    /// Deadline for establishing a connection, in seconds. Default 5.
    pub connect_timeout: Option<f64>,
    /// Deadline for one store command, in seconds. Default 2.
    pub command_timeout: Option<f64>,
    /// For `rediss://`: the PEM certificate (chain) of the CA that signed the server's
    /// certificate, trusted in addition to the system's roots.
    pub tls_ca_cert_pem: Option<String>,
    /// Change propagation: link and routing-state changes made by any writer reach every
    /// client driver sharing the store within milliseconds (`ClientDriver#onLinkChanged`).
    /// `false`: writers publish no events and gateways follow the cache's TTL rule alone (for
    /// a Redis ACL without `PUBLISH` / `SUBSCRIBE`). Default `true`.
    pub propagation: Option<bool>,
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
        if let Some(v) = self.connect_timeout {
            c.connect_timeout = secs("connect_timeout", v)?;
        }
        if let Some(v) = self.command_timeout {
            c.command_timeout = secs("command_timeout", v)?;
        }
        if let Some(v) = self.tls_ca_cert_pem {
            c.tls_ca_cert_pem = Some(v.into_bytes());
        }
        if let Some(v) = self.propagation {
            c.propagation = v;
        }
        Ok(c)
    }
}

/// The core's defaults of `StoreConfig` (`tlsCaCertPem`: none).
#[napi]
pub fn default_store_config() -> StoreConfig {
    let c = CoreStoreConfig::default();
    StoreConfig {
        key_prefix: Some(c.key_prefix),
        connect_timeout: Some(c.connect_timeout.as_secs_f64()),
        command_timeout: Some(c.command_timeout.as_secs_f64()),
        tls_ca_cert_pem: None,
        propagation: Some(c.propagation),
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
    #[napi(strict, writable = true, configurable = true)]
    pub fn connect(url: String, config: Option<StoreConfig>) -> Promise<Store> {
        Promise::new(async move {
            let config = config.unwrap_or_default().into_core()?;
            let inner = core::Store::redis_with(&url, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Connects to a Redis Cluster through any of its nodes (`urls`: seed nodes). Behaviour is
    /// the same as on one node; redirections and failovers are followed.
    #[napi(strict, writable = true, configurable = true)]
    pub fn connect_cluster(urls: Vec<String>, config: Option<StoreConfig>) -> Promise<Store> {
        Promise::new(async move {
            let config = config.unwrap_or_default().into_core()?;
            let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
            let inner = core::Store::redis_cluster_with(&urls, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Connects to the master that the Redis Sentinels at `sentinelUrls` call `masterName`;
    /// when they fail over, the store follows the new master.
    #[napi(strict, writable = true, configurable = true)]
    pub fn connect_sentinel(
        sentinel_urls: Vec<String>,
        master_name: String,
        config: Option<StoreConfig>,
    ) -> Promise<Store> {
        Promise::new(async move {
            let config = config.unwrap_or_default().into_core()?;
            let urls: Vec<&str> = sentinel_urls.iter().map(String::as_str).collect();
            let inner = core::Store::redis_sentinel_with(&urls, &master_name, &config).await?;
            Ok(Store { inner })
        })
    }

    /// Sets a link unconditionally (`ttl`: -1 persistent, > 0 seconds); resolves to the
    /// previous pod or `null`.
    #[napi]
    pub fn set_link(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl: f64,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |s| async move {
            let (pod, ttl) = (pod_index(pod)?, arg::ttl(ttl)?);
            s.set_link(&namespace, &uid, &service, pod, ttl)
                .await
                .map(or_null)
        })
    }

    /// Sets a link unless one exists (an existing link wins, its TTL untouched); resolves to
    /// the link in force.
    #[napi]
    pub fn set_link_if_absent(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl: f64,
    ) -> Promise<Link> {
        promise(&self.inner, move |s| async move {
            let (pod, ttl) = (pod_index(pod)?, arg::ttl(ttl)?);
            Ok(s.set_link_if_absent(&namespace, &uid, &service, pod, ttl)
                .await?
                .into())
        })
    }

    /// Sets a link unless a persistent link to another pod exists.
    #[napi]
    pub fn try_set_link(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        ttl: f64,
    ) -> Promise<TrySetOutcome> {
        promise(&self.inner, move |s| async move {
            let (pod, ttl) = (pod_index(pod)?, arg::ttl(ttl)?);
            Ok(s.try_set_link(&namespace, &uid, &service, pod, ttl)
                .await?
                .into())
        })
    }

    /// Removes a link now (`delay <= 0`) or lets it expire after `delay` seconds; it leaves
    /// the user's persistent links at once. Resolves to whether a link existed.
    #[napi]
    pub fn remove_link(
        &self,
        namespace: String,
        uid: String,
        service: String,
        delay: f64,
    ) -> Promise<bool> {
        promise(&self.inner, move |s| async move {
            let delay = arg::delay(delay)?;
            s.remove_link(&namespace, &uid, &service, delay).await
        })
    }

    /// As `removeLink`, only if the link points to `pod`. Resolves to whether it was removed.
    #[napi]
    pub fn remove_link_if(
        &self,
        namespace: String,
        uid: String,
        service: String,
        pod: f64,
        delay: f64,
    ) -> Promise<bool> {
        promise(&self.inner, move |s| async move {
            let (pod, delay) = (pod_index(pod)?, arg::delay(delay)?);
            s.remove_link_if(&namespace, &uid, &service, pod, delay)
                .await
        })
    }

    /// Reads a link with its remaining TTL; `null` if there is none.
    #[napi]
    pub fn get_link(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Either<Link, Null>> {
        promise(&self.inner, move |s| async move {
            let l = s.get_link(&namespace, &uid, &service).await?;
            Ok(or_null(l.map(Link::from)))
        })
    }

    /// Reads a persistent link; temporary links read as `null`.
    #[napi]
    pub fn get_link_if_persist(
        &self,
        namespace: String,
        uid: String,
        service: String,
    ) -> Promise<Either<u32, Null>> {
        promise(&self.inner, move |s| async move {
            s.get_link_if_persist(&namespace, &uid, &service)
                .await
                .map(or_null)
        })
    }

    /// The user's persistent links: service → pod.
    #[napi]
    pub fn get_link_services(
        &self,
        namespace: String,
        uid: String,
    ) -> Promise<BTreeMap<String, u32>> {
        promise(&self.inner, move |s| async move {
            s.get_link_services(&namespace, &uid).await
        })
    }

    /// Reads many links of one service: pod (as a string key) → uids in input order; uids
    /// without a link are left out.
    #[napi]
    pub fn batch_get_links(
        &self,
        namespace: String,
        uids: Vec<String>,
        service: String,
    ) -> Promise<BTreeMap<String, Vec<String>>> {
        promise(&self.inner, move |s| async move {
            let links = s.batch_get_links(&namespace, &uids, &service).await?;
            Ok(by_pod(links))
        })
    }

    /// Publishes a pod's state stamped with the store's clock, with a placement weight
    /// (default 100); resolves to the stamp (ms). Pods do this themselves through
    /// `ServerDriver`; this is for tools and tests.
    #[napi]
    pub fn publish_pod_state(
        &self,
        namespace: String,
        service: String,
        pod: f64,
        load: f64,
        routing_state: RoutingState,
        weight: Option<f64>,
    ) -> Promise<f64> {
        promise(&self.inner, move |s| async move {
            let weight = weight.map_or(Ok(pod_state::DEFAULT_WEIGHT), arg::load)?;
            let (pod, load) = (pod_index(pod)?, arg::load(load)?);
            let at = s
                .publish_pod_state_weighted(
                    &namespace,
                    &service,
                    pod,
                    load,
                    routing_state.into(),
                    weight,
                )
                .await?;
            Ok(at as f64)
        })
    }

    /// A service's pod states, sorted by pod index (unparsable entries are skipped and logged).
    #[napi]
    pub fn pod_states(&self, namespace: String, service: String) -> Promise<Vec<PodState>> {
        promise(&self.inner, move |s| async move {
            let states = s.pod_states(&namespace, &service).await?;
            Ok(states.pods.into_iter().map(PodState::from).collect())
        })
    }

    /// Sets a service's workload state (a word; `'READY'` means ready).
    #[napi]
    pub fn set_workload_state(
        &self,
        namespace: String,
        service: String,
        state: String,
    ) -> Promise<()> {
        promise(&self.inner, move |s| async move {
            s.set_workload_state(&namespace, &service, &state).await
        })
    }

    /// A service's workload state, or `null`.
    #[napi]
    pub fn get_workload_state(
        &self,
        namespace: String,
        service: String,
    ) -> Promise<Either<String, Null>> {
        promise(&self.inner, move |s| async move {
            s.get_workload_state(&namespace, &service)
                .await
                .map(or_null)
        })
    }

    /// Sets the service name that `tag` stands for.
    #[napi]
    pub fn set_tag(&self, namespace: String, tag: String, service: String) -> Promise<()> {
        promise(&self.inner, move |s| async move {
            s.set_tag(&namespace, &tag, &service).await
        })
    }

    /// The service name that `tag` stands for, or `null`.
    #[napi]
    pub fn get_tag(&self, namespace: String, tag: String) -> Promise<Either<String, Null>> {
        promise(&self.inner, move |s| async move {
            s.get_tag(&namespace, &tag).await.map(or_null)
        })
    }
}

/// pod → uids with the pod as an object key (JS object keys are strings).
pub fn by_pod(m: BTreeMap<u32, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    m.into_iter().map(|(p, u)| (p.to_string(), u)).collect()
}
