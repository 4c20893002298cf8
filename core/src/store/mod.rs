//! The store: where links, pod states, workload states and tags live (SPEC §3, §4).
//!
//! [`Store`] is a cheap handle shared by any number of drivers in a process. It checks every
//! identifier (SPEC §2) before a backend sees it, so a backend never receives a value that
//! could escape its key's hash tag. Backends ([`StoreBackend`]) are Redis, the embedded
//! in-memory store, or a user's own; each operation of a backend must be atomic.

mod memory;
mod redis;
pub mod scripts;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::{Link, LinkTtl, RoutingState, TrySetOutcome};
use crate::error::{Error, Result};
use crate::events::EventHub;
use crate::ident;
use crate::keys::{KeySpace, DEFAULT_PREFIX};
use crate::pod_state::{self, PodState};

pub use self::memory::MemoryBackend;
pub use self::redis::RedisBackend;

/// Settings of a store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Prefix of every key (`[A-Za-z0-9._-]`, 1–64 chars). Default `sf`.
    pub key_prefix: String,
    /// Deadline for establishing (or re-establishing) a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Deadline for one store command. Default 2 s.
    pub command_timeout: Duration,
    /// For `rediss://`: a PEM certificate (chain) of the CA that signed the server's
    /// certificate, trusted in addition to the system's roots. Default none.
    pub tls_ca_cert_pem: Option<Vec<u8>>,
    /// Change propagation (SPEC §11): link and routing-state changes reach every client
    /// driver within milliseconds. Off: writers publish no events and client drivers follow
    /// the cache's TTL rule alone (as before v2; for a Redis ACL without `PUBLISH`/`SUBSCRIBE`).
    /// Default on.
    pub propagation: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            key_prefix: DEFAULT_PREFIX.to_string(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            tls_ca_cert_pem: None,
            propagation: true,
        }
    }
}

impl StoreConfig {
    /// Checks every field (`INVALID_CONFIG` naming the field).
    pub fn validate(&self) -> Result<()> {
        if self.key_prefix.len() > 64
            || ident::check_service("key_prefix", &self.key_prefix).is_err()
        {
            return Err(Error::invalid_config(
                "key_prefix",
                format!(
                    "{} must be 1-64 characters of [A-Za-z0-9._-]",
                    ident::quote(&self.key_prefix)
                ),
            ));
        }
        for (name, d) in [
            ("connect_timeout", self.connect_timeout),
            ("command_timeout", self.command_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::invalid_config(name, "must be > 0"));
            }
        }
        Ok(())
    }
}

/// The identifiers of one link, already checked.
#[derive(Debug, Clone, Copy)]
pub struct LinkRef<'a> {
    /// Namespace (named, never `""`).
    pub namespace: &'a str,
    /// User id.
    pub uid: &'a str,
    /// Service name.
    pub service: &'a str,
}

/// The link in force after a conditional write, and whether this call wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkClaim {
    /// The link in force afterwards.
    pub link: Link,
    /// Whether this operation created (or replaced) it: only such a link counts as a placement.
    pub created: bool,
}

/// Pod states of one service with the store's clock at the time of the read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawPodStates {
    /// The store's clock, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// `(field, value)` pairs of the state hash, unparsed.
    pub fields: Vec<(String, String)>,
}

/// Parsed pod states of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodStates {
    /// The store's clock at the read, milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// One entry per parsable field, sorted by pod index.
    pub pods: Vec<PodState>,
}

/// A storage backend. Every method is one atomic operation; identifiers are already checked.
///
/// Implement this to plug in another database, then prove it keeps SPEC's semantics with the
/// behaviour suite in `tests/` (the same one the Redis and memory stores pass).
#[async_trait]
pub trait StoreBackend: Send + Sync + fmt::Debug + 'static {
    /// Unconditional set; returns the previous pod.
    async fn set_link(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Option<u32>>;
    /// Set unless a link exists; returns the link in force afterwards and whether it was set.
    async fn set_link_if_absent(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim>;
    /// Set unless a persistent link to another pod exists.
    async fn try_set_link(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome>;
    /// If the link is a temporary link to `expected` (or there is none), set it to `pod` with
    /// `ttl`. Returns the link in force afterwards and whether this call wrote it.
    async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim>;
    /// Remove the link (only if it points to `only_if`, when given): at once when
    /// `delay_secs == 0`, else after `delay_secs`. It leaves the user's hash at once either way.
    async fn remove_link(
        &self,
        link: LinkRef<'_>,
        only_if: Option<u32>,
        delay_secs: u32,
    ) -> Result<bool>;
    /// Read a link with its remaining TTL.
    async fn get_link(&self, link: LinkRef<'_>) -> Result<Option<Link>>;
    /// The user's persistent links.
    async fn get_link_services(&self, namespace: &str, uid: &str) -> Result<BTreeMap<String, u32>>;
    /// Read many links of one service, in input order.
    async fn batch_get_links(
        &self,
        namespace: &str,
        uids: &[&str],
        service: &str,
    ) -> Result<Vec<Option<u32>>>;
    /// Publish a pod's state stamped with the store's clock; returns the stamp (ms). The value
    /// is [`pod_state::format_value`] of the arguments and the stamp.
    async fn publish_pod_state(
        &self,
        namespace: &str,
        service: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
        weight: u32,
    ) -> Result<u64>;
    /// Read a service's pod states with the store's clock.
    async fn pod_states(&self, namespace: &str, service: &str) -> Result<RawPodStates>;
    /// Set a service's workload state.
    async fn set_workload_state(&self, namespace: &str, service: &str, state: &str) -> Result<()>;
    /// Read workload states of many services, in input order.
    async fn workload_states(
        &self,
        namespace: &str,
        services: &[&str],
    ) -> Result<Vec<Option<String>>>;
    /// Set the service name of a tag.
    async fn set_tag(&self, namespace: &str, tag: &str, service: &str) -> Result<()>;
    /// Read the service name of a tag.
    async fn get_tag(&self, namespace: &str, tag: &str) -> Result<Option<String>>;
    /// Cordons (`on`) or uncordons `pods` of a service (SPEC §12): a cordoned pod's `READY`
    /// is stored as `DENY_NEW_CALL` from its next publish on, across restarts, until
    /// uncordoned; cordoning also turns its current `READY` into `DENY_NEW_CALL` at once.
    /// Returns the pods whose stored state changed now. Default: unsupported (`STORE_ERROR`).
    async fn set_cordon(
        &self,
        namespace: &str,
        service: &str,
        pods: &[u32],
        on: bool,
    ) -> Result<Vec<u32>> {
        let _ = (namespace, service, pods, on);
        Err(Error::store("this store does not support cordon"))
    }
    /// The cordoned pods of a service, sorted. Default: none.
    async fn cordoned(&self, namespace: &str, service: &str) -> Result<Vec<u32>> {
        let _ = (namespace, service);
        Ok(Vec::new())
    }
    /// Adds `counts` (pod, new placements) to the service's placement totals (a gateway's
    /// report, once a period). Default: nothing is recorded.
    async fn add_placements(
        &self,
        namespace: &str,
        service: &str,
        counts: &[(u32, u64)],
    ) -> Result<()> {
        let _ = (namespace, service, counts);
        Ok(())
    }
    /// The service's placement totals by pod, as gateways reported them. Default: none.
    async fn placements(&self, namespace: &str, service: &str) -> Result<BTreeMap<u32, u64>> {
        let _ = (namespace, service);
        Ok(BTreeMap::new())
    }
    /// The services of `namespace` that have pod states, sorted (an operator's listing: a
    /// `SCAN` on Redis, never `KEYS`). Default: unsupported (`STORE_ERROR`).
    async fn services(&self, namespace: &str) -> Result<Vec<String>> {
        let _ = namespace;
        Err(Error::store("this store cannot list services"))
    }
    /// The events of this store (SPEC §11), started on first use; `None`: this backend
    /// propagates nothing (client drivers then follow the cache's TTL rule alone).
    fn events(&self) -> Option<Arc<EventHub>> {
        None
    }
    /// The clock this store stamps with and its drivers run on (README "Simulation"). Default:
    /// the system's. A backend that wraps another returns the inner one's.
    fn clock(&self) -> Clock {
        Clock::system()
    }
}

/// A shared handle to a store. Clone it freely; every clone talks to the same backend.
#[derive(Clone, Debug)]
pub struct Store {
    backend: Arc<dyn StoreBackend>,
    /// Every backend call finishes within this, reconnects included (`None`: no deadline).
    deadline: Option<Duration>,
    /// Call latencies by operation, shared by every driver on this store.
    pub(crate) metrics: Arc<crate::metrics::StoreMetrics>,
    /// The backend's clock, which every driver on this store uses.
    clock: Clock,
}

impl Store {
    /// The embedded in-memory store with the default key prefix.
    pub fn memory() -> Store {
        Store::from_backend(MemoryBackend::new(KeySpace::new(DEFAULT_PREFIX)))
    }

    /// The embedded in-memory store with `config` (only the key prefix matters to it).
    pub fn memory_with(config: &StoreConfig) -> Result<Store> {
        Store::memory_on(config, Clock::system())
    }

    /// The embedded in-memory store with `config`, on `clock` (a virtual clock for simulation:
    /// its expiries, pod-state stamps and every driver on it then follow that clock).
    pub fn memory_on(config: &StoreConfig, clock: Clock) -> Result<Store> {
        config.validate()?;
        let backend =
            MemoryBackend::new(KeySpace::new(config.key_prefix.clone())).with_clock(clock);
        Ok(Store::from_backend(if config.propagation {
            backend
        } else {
            backend.without_events()
        }))
    }

    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]` or `rediss://` for
    /// TLS) with default settings.
    pub async fn redis(url: &str) -> Result<Store> {
        Store::redis_with(url, &StoreConfig::default()).await
    }

    /// Connects to Redis at `url` with `config`.
    pub async fn redis_with(url: &str, config: &StoreConfig) -> Result<Store> {
        config.validate()?;
        Ok(
            Store::from_backend(RedisBackend::connect(url, config).await?)
                .with_deadline(config.command_timeout),
        )
    }

    /// Connects to a Redis Cluster through any of its nodes (`urls`: seed nodes, as
    /// `redis://` or `rediss://` URLs) with default settings. Behaviour is the same as on one
    /// node: every script is single-slot; batch reads are split by slot and merged in order;
    /// MOVED/ASK redirections and failovers are followed by the client.
    pub async fn redis_cluster(urls: &[&str]) -> Result<Store> {
        Store::redis_cluster_with(urls, &StoreConfig::default()).await
    }

    /// [`Store::redis_cluster`] with `config`.
    pub async fn redis_cluster_with(urls: &[&str], config: &StoreConfig) -> Result<Store> {
        config.validate()?;
        Ok(
            Store::from_backend(RedisBackend::connect_cluster(urls, config).await?)
                .with_deadline(config.command_timeout),
        )
    }

    /// Connects to the master that the Redis Sentinels at `sentinel_urls` call `master_name`,
    /// with default settings; when the sentinels fail over, the store follows the new master.
    pub async fn redis_sentinel(sentinel_urls: &[&str], master_name: &str) -> Result<Store> {
        Store::redis_sentinel_with(sentinel_urls, master_name, &StoreConfig::default()).await
    }

    /// [`Store::redis_sentinel`] with `config`.
    pub async fn redis_sentinel_with(
        sentinel_urls: &[&str],
        master_name: &str,
        config: &StoreConfig,
    ) -> Result<Store> {
        config.validate()?;
        Ok(Store::from_backend(
            RedisBackend::connect_sentinel(sentinel_urls, master_name, config).await?,
        )
        .with_deadline(config.command_timeout))
    }

    /// A store over any backend.
    pub fn from_backend(backend: impl StoreBackend) -> Store {
        Store::from_shared(Arc::new(backend))
    }

    /// The same store, with every call bounded by `deadline` (it then fails with `TIMEOUT`),
    /// however long the backend would wait (for a reconnect, say).
    pub fn with_deadline(mut self, deadline: Duration) -> Store {
        self.deadline = Some(deadline);
        self
    }

    /// Runs one backend call within the deadline. The timer is created on the library's
    /// runtime, so the caller's runtime needs no time driver.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = std::time::Instant::now();
        let out = self.call_within(fut).await;
        self.metrics.record(op, started.elapsed(), out.is_err());
        out
    }

    async fn call_within<T>(&self, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        let Some(d) = self.deadline else {
            return fut.await;
        };
        let sleep = {
            let _guard = self.clock.handle().enter();
            tokio::time::sleep(d)
        };
        tokio::pin!(fut, sleep);
        tokio::select! {
            biased;
            out = &mut fut => out,
            _ = &mut sleep => Err(Error::new(
                crate::ErrorKind::Timeout,
                format!("store call did not finish within {d:?}"),
            )),
        }
    }

    /// A store over a backend you keep a handle to.
    pub fn from_shared(backend: Arc<dyn StoreBackend>) -> Store {
        Store {
            clock: backend.clock(),
            backend,
            deadline: None,
            metrics: Arc::default(),
        }
    }

    /// The clock of this store and of every driver on it.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The backend.
    pub fn backend(&self) -> &dyn StoreBackend {
        &*self.backend
    }

    /// SPEC §4 `set_link`: unconditional set; returns the previous pod.
    pub async fn set_link(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<Option<u32>> {
        let link = link_ref(ns, uid, service)?;
        ident::check_pod(pod)?;
        self.call("set_link", self.backend.set_link(link, pod, ttl))
            .await
    }

    /// SPEC §4 `set_link_if_absent`: returns the link in force (an existing one wins, its TTL
    /// untouched).
    pub async fn set_link_if_absent(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<Link> {
        let link = link_ref(ns, uid, service)?;
        ident::check_pod(pod)?;
        self.call(
            "set_link_if_absent",
            self.backend.set_link_if_absent(link, pod, ttl),
        )
        .await
        .map(|c| c.link)
    }

    /// SPEC §4 `try_set_link`: refused only if a persistent link to another pod exists.
    pub async fn try_set_link(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome> {
        let link = link_ref(ns, uid, service)?;
        ident::check_pod(pod)?;
        self.call("try_set_link", self.backend.try_set_link(link, pod, ttl))
            .await
    }

    /// SPEC §4 `remove_link`: `delay_secs <= 0` deletes now, `> 0` expires it after that long.
    pub async fn remove_link(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        delay_secs: i64,
    ) -> Result<bool> {
        let link = link_ref(ns, uid, service)?;
        self.call(
            "remove_link",
            self.backend.remove_link(link, None, delay(delay_secs)?),
        )
        .await
    }

    /// SPEC §4 `remove_link_if`: as [`Store::remove_link`], only if the link points to `pod`.
    pub async fn remove_link_if(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        delay_secs: i64,
    ) -> Result<bool> {
        let link = link_ref(ns, uid, service)?;
        ident::check_pod(pod)?;
        self.call(
            "remove_link",
            self.backend
                .remove_link(link, Some(pod), delay(delay_secs)?),
        )
        .await
    }

    /// SPEC §4 `get_link`, with the link's remaining TTL.
    pub async fn get_link(&self, ns: &str, uid: &str, service: &str) -> Result<Option<Link>> {
        let link = link_ref(ns, uid, service)?;
        self.call("get_link", self.backend.get_link(link)).await
    }

    /// SPEC §4 `get_link_if_persist`: temporary links read as none.
    pub async fn get_link_if_persist(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
    ) -> Result<Option<u32>> {
        Ok(self
            .get_link(ns, uid, service)
            .await?
            .filter(Link::is_persistent)
            .map(|l| l.pod_index))
    }

    /// SPEC §4 `get_link_services`: the user's persistent links, service → pod.
    pub async fn get_link_services(&self, ns: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_uid(uid)?;
        self.call("get_link_services", self.backend.get_link_services(ns, uid))
            .await
    }

    /// SPEC §4 `batch_get_links`: pod → uids (in input order); absent uids are left out.
    pub async fn batch_get_links<S: AsRef<str>>(
        &self,
        ns: &str,
        uids: &[S],
        service: &str,
    ) -> Result<BTreeMap<u32, Vec<String>>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        let uids: Vec<&str> = uids.iter().map(AsRef::as_ref).collect();
        for uid in &uids {
            ident::check_uid(uid)?;
        }
        let mut out: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        if uids.is_empty() {
            return Ok(out);
        }
        let pods = self
            .call(
                "batch_get_links",
                self.backend.batch_get_links(ns, &uids, service),
            )
            .await?;
        if pods.len() != uids.len() {
            return Err(Error::store(format!(
                "batch read returned {} results for {} uids",
                pods.len(),
                uids.len()
            )));
        }
        for (uid, pod) in uids.iter().zip(pods) {
            if let Some(pod) = pod {
                out.entry(pod).or_default().push((*uid).to_string());
            }
        }
        Ok(out)
    }

    pub(crate) async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        self.call(
            "replace_temporary_link",
            self.backend
                .replace_temporary_link(link, expected, pod, ttl),
        )
        .await
    }

    /// Publishes a pod's state stamped with the store's clock; returns the stamp (ms).
    pub async fn publish_pod_state(
        &self,
        ns: &str,
        service: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
    ) -> Result<u64> {
        self.publish_pod_state_weighted(ns, service, pod, load, routing, pod_state::DEFAULT_WEIGHT)
            .await
    }

    /// As [`Store::publish_pod_state`], with a placement weight (see [`Placement::Weighted`](crate::Placement::Weighted)).
    pub async fn publish_pod_state_weighted(
        &self,
        ns: &str,
        service: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
        weight: u32,
    ) -> Result<u64> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        ident::check_pod(pod)?;
        self.call(
            "publish_pod_state",
            self.backend
                .publish_pod_state(ns, service, pod, load, routing, weight),
        )
        .await
    }

    /// Reads a service's pod states. Fields that cannot be parsed are skipped with a warning.
    pub async fn pod_states(&self, ns: &str, service: &str) -> Result<PodStates> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        let raw = self
            .call("pod_states", self.backend.pod_states(ns, service))
            .await?;
        let mut pods: Vec<PodState> = raw
            .fields
            .iter()
            .filter_map(|(f, v)| match pod_state::parse(f, v) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(namespace = ns, service, error = %e, "skipping unparsable pod state");
                    None
                }
            })
            .collect();
        pods.sort_by_key(|p| p.pod_index);
        Ok(PodStates {
            now_ms: raw.now_ms,
            pods,
        })
    }

    /// Sets a service's workload state (a word of `[A-Za-z0-9_-]`; `READY` means ready).
    pub async fn set_workload_state(&self, ns: &str, service: &str, state: &str) -> Result<()> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        check_word("workload_state", state)?;
        self.call(
            "set_workload_state",
            self.backend.set_workload_state(ns, service, state),
        )
        .await
    }

    /// Reads a service's workload state.
    pub async fn get_workload_state(&self, ns: &str, service: &str) -> Result<Option<String>> {
        Ok(self
            .batch_get_workload_state(ns, &[service])
            .await?
            .pop()
            .flatten())
    }

    /// Reads the workload states of many services, in input order.
    pub async fn batch_get_workload_state<S: AsRef<str>>(
        &self,
        ns: &str,
        services: &[S],
    ) -> Result<Vec<Option<String>>> {
        ident::check_namespace_label("namespace", ns)?;
        let services: Vec<&str> = services.iter().map(AsRef::as_ref).collect();
        for s in &services {
            ident::check_service("service", s)?;
        }
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .call(
                "workload_states",
                self.backend.workload_states(ns, &services),
            )
            .await?;
        if out.len() != services.len() {
            return Err(Error::store(
                "workload batch returned the wrong number of results",
            ));
        }
        Ok(out)
    }

    /// Sets the service name that `tag` stands for.
    pub async fn set_tag(&self, ns: &str, tag: &str, service: &str) -> Result<()> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("tag", tag)?;
        ident::check_service("service", service)?;
        self.call("set_tag", self.backend.set_tag(ns, tag, service))
            .await
    }

    /// Cordons (`on = true`) or uncordons pods of `service` (SPEC §12; see
    /// [`StoreBackend::set_cordon`]). Returns the pods whose stored state changed at once.
    pub async fn set_cordon(
        &self,
        ns: &str,
        service: &str,
        pods: &[u32],
        on: bool,
    ) -> Result<Vec<u32>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        for p in pods {
            ident::check_pod(*p)?;
        }
        if pods.is_empty() {
            return Err(Error::invalid_argument("pods", "name at least one pod"));
        }
        self.call("set_cordon", self.backend.set_cordon(ns, service, pods, on))
            .await
    }

    /// The cordoned pods of `service`, sorted.
    pub async fn cordoned(&self, ns: &str, service: &str) -> Result<Vec<u32>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        self.call("cordoned", self.backend.cordoned(ns, service))
            .await
    }

    /// Calls `f` for each event of namespace `ns` (SPEC §11: link changes, routing-state
    /// changes, and `Gap`/`Resumed` as the stream breaks and comes back) until the returned
    /// subscription is dropped; `None` if this store propagates nothing. `f` runs on the
    /// library's threads (inside the writing call on the memory store) and must return quickly.
    pub fn watch_events(
        &self,
        ns: &str,
        f: impl Fn(&crate::events::Event) + Send + Sync + 'static,
    ) -> Result<Option<crate::events::Subscription>> {
        ident::check_namespace_label("namespace", ns)?;
        Ok(self
            .backend
            .events()
            .map(|hub| hub.subscribe(ns, Arc::new(f))))
    }

    /// Adds a gateway's new placements by pod to the service's totals.
    pub(crate) async fn add_placements(
        &self,
        ns: &str,
        service: &str,
        counts: &[(u32, u64)],
    ) -> Result<()> {
        self.call(
            "add_placements",
            self.backend.add_placements(ns, service, counts),
        )
        .await
    }

    /// New users placed on each pod of `service` since the counts began, as every gateway with
    /// metrics on reports them once a period (the dashboard's placements per minute).
    pub async fn placements(&self, ns: &str, service: &str) -> Result<BTreeMap<u32, u64>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("service", service)?;
        self.call("placements", self.backend.placements(ns, service))
            .await
    }

    /// The services of `ns` with pod states, sorted.
    pub async fn services(&self, ns: &str) -> Result<Vec<String>> {
        ident::check_namespace_label("namespace", ns)?;
        self.call("other", self.backend.services(ns)).await
    }

    /// The service name that `tag` stands for.
    pub async fn get_tag(&self, ns: &str, tag: &str) -> Result<Option<String>> {
        ident::check_namespace_label("namespace", ns)?;
        ident::check_service("tag", tag)?;
        self.call("get_tag", self.backend.get_tag(ns, tag)).await
    }
}

fn link_ref<'a>(ns: &'a str, uid: &'a str, service: &'a str) -> Result<LinkRef<'a>> {
    ident::check_namespace_label("namespace", ns)?;
    ident::check_uid(uid)?;
    ident::check_service("service", service)?;
    Ok(LinkRef {
        namespace: ns,
        uid,
        service,
    })
}

fn delay(delay_secs: i64) -> Result<u32> {
    if delay_secs <= 0 {
        Ok(0)
    } else if delay_secs <= i32::MAX as i64 {
        Ok(delay_secs as u32)
    } else {
        Err(Error::invalid_argument(
            "delay",
            format!("{delay_secs} seconds is too long"),
        ))
    }
}

fn check_word(field: &str, s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(Error::invalid_argument(
            field,
            format!(
                "{} must be 1-64 characters of [A-Za-z0-9_-]",
                ident::quote(s)
            ),
        ));
    }
    Ok(())
}
