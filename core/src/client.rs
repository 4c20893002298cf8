//! The client driver: "which pod serves user U for service S?" (SPEC §6).
//!
//! Runs in gateways. A cached answer costs a hash lookup and one liveness check and never
//! leaves the calling thread ([`ClientDriver::compute_cached`] is the synchronous probe that
//! bindings call before they make a future). A miss costs one store round trip, and concurrent
//! misses for one (uid, service) share it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::cache::{FrontEpochs, FrontView, LinkCache, LinkKey};
use crate::clock::Clock;
use crate::config::{BaseConfig, Link, LinkTtl, ServerInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Coherence, Event, LinkChange, Subscription, Ticket};
use crate::explain::{ExplainedLink, Explanation};
use crate::ident;
use crate::metrics::{MetricsSnapshot, Outcome, PropagationMetrics};
use crate::pod_state::PodState;
use crate::route_info::{no_pod, RouteInfo, RoutingStateChange, ServiceView, FRONT_SLACK};
use crate::store::{LinkRef, Store};

const NEW: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

type Flight = Arc<OnceCell<Result<u32>>>;

/// One caller's share of a single-flight entry. The entry leaves the map when its answer is
/// in, or when its last caller goes away without one (a cancelled compute), so cancelled
/// callers cannot leave entries behind.
struct FlightGuard<'a> {
    map: &'a Mutex<HashMap<LinkKey, Flight, foldhash::fast::RandomState>>,
    key: LinkKey,
    flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Clones are made only under this lock, so the count is exact here: 2 = the map's and
        // ours, i.e. no other caller waits on it.
        let last = Arc::strong_count(&self.flight) <= 2;
        if (self.flight.initialized() || last)
            && m.get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            m.remove(&self.key);
        }
    }
}

/// The gateway side. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ClientDriver {
    store: Store,
    info: ServerInfo,
    config: Arc<BaseConfig>,
    route: Arc<RouteInfo>,
    cache: Arc<LinkCache>,
    coherence: Arc<Coherence>,
    front: Arc<FrontEpochs>,
    events: Mutex<Option<Subscription>>,
    inflight: Mutex<HashMap<LinkKey, Flight, foldhash::fast::RandomState>>,
    phase: AtomicU8,
    stop: tokio::sync::watch::Sender<bool>,
    /// `config.metrics`, read on every hit.
    counting: bool,
    clock: Clock,
}

/// A cache hit as a binding-side front cache may keep it: see [`ClientDriver::compute_front`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrontHit {
    pub pod: u32,
    /// How long from now the front cache may answer `pod` (zero: do not keep it).
    pub valid_for: Duration,
    /// The index into [`ClientDriver::front_epochs`] that validates it.
    pub stripe: u32,
    /// The value that index must still hold.
    pub epoch: u32,
}

impl fmt::Debug for ClientDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientDriver")
            .field("info", &self.info)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl ClientDriver {
    /// A client driver in `info.namespace` (only the namespace of `info` matters to a client).
    /// Checks `info` and `config`; call [`ClientDriver::init`] before use.
    pub fn new(store: Store, info: ServerInfo, config: BaseConfig) -> Result<ClientDriver> {
        info.validate()?;
        config.validate()?;
        let config = Arc::new(config);
        let counting = config.metrics;
        let front = Arc::new(FrontEpochs::new(store.clock()));
        let route = RouteInfo::new(
            store.clone(),
            info.namespace.clone(),
            config.clone(),
            Some(front.clone()),
        );
        Ok(ClientDriver {
            cache: Arc::new(LinkCache::new(
                &config,
                store.clock().clone(),
                front.clone(),
            )),
            front,
            coherence: Arc::new(Coherence::new(store.clock())),
            clock: store.clock().clone(),
            events: Mutex::new(None),
            store,
            info,
            config,
            route,
            inflight: Mutex::new(HashMap::default()),
            phase: AtomicU8::new(NEW),
            stop: tokio::sync::watch::channel(false).0,
            counting,
        })
    }

    /// Starts the periodic snapshot refresh and subscribes to the store's events, waiting for
    /// the subscription (one round trip; at most 1 s, after
    /// which the stream keeps trying in the background and the cache follows the TTL rule
    /// until it is up). Idempotent while open; `CLOSED` after `close`.
    pub fn init(&self) -> Result<()> {
        match self
            .phase
            .compare_exchange(NEW, OPEN, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                self.route.spawn_refresh(self.stop.subscribe());
                self.listen();
                Ok(())
            }
            Err(OPEN) => Ok(()),
            Err(_) => Err(Error::closed("client driver is closed")),
        }
    }

    /// Stops the refresh and empties the cache. Idempotent.
    pub fn close(&self) {
        if self.phase.swap(CLOSED, Ordering::AcqRel) != CLOSED {
            let _ = self.stop.send(true);
            drop(self.events.lock().unwrap_or_else(|p| p.into_inner()).take());
            self.cache.clear();
        }
    }

    /// Subscribes to the store's events (SPEC §11): a link event drops its entry (after
    /// bumping its stripe, so a read in flight does not cache the old answer) and reaches the
    /// link listeners; a pod event re-reads that service's snapshot now; during a gap the
    /// cache follows the TTL rule alone, and a resume empties it (entries cached before may
    /// have missed events) and re-reads every snapshot.
    fn listen(&self) {
        let Some(hub) = self.store.backend().events() else {
            return;
        };
        let cache = Arc::downgrade(&self.cache);
        let coherence = Arc::downgrade(&self.coherence);
        let route = Arc::downgrade(&self.route);
        let metrics = self.route.metrics.clone();
        let ready = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let up = ready.clone();
        let gap = std::sync::atomic::AtomicBool::new(false);
        let clock = self.clock.clone();
        let sink = Arc::new(move |event: &Event| {
            let (Some(cache), Some(coherence), Some(route)) =
                (cache.upgrade(), coherence.upgrade(), route.upgrade())
            else {
                return;
            };
            match event {
                Event::Link(change) => {
                    coherence.bump(&change.service, &change.uid);
                    metrics.link_events.fetch_add(1, Ordering::Relaxed);
                    if cache.evict(&change.service, &change.uid) {
                        metrics.invalidations.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(uid = %change.uid, service = %change.service,
                        pod = ?change.pod, "link changed elsewhere; cache entry dropped");
                    coherence.notify(change);
                }
                Event::Pod { service, .. } => {
                    metrics.pod_events.fetch_add(1, Ordering::Relaxed);
                    let service = service.clone();
                    clock.handle().spawn(async move {
                        route.refresh_if_loaded(&service).await;
                    });
                }
                // During a gap the cache keeps serving by the TTL rule (as without
                // propagation: hits and stale-if-error keep working through a store outage);
                // once the stream is back, whatever was cached may have missed events: out.
                Event::Gap => {
                    metrics.gaps.fetch_add(1, Ordering::Relaxed);
                    coherence.bump_all();
                    gap.store(true, Ordering::Release);
                }
                Event::Resumed => {
                    coherence.bump_all();
                    cache.clear();
                    // Pod events may have been missed too (not at the first subscription:
                    // nothing was read before it).
                    if gap.swap(false, Ordering::AcqRel) {
                        clock
                            .handle()
                            .spawn(async move { route.refresh_all().await });
                    }
                    // Only now may `init` return: what it caches next must outlive this clear.
                    *up.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                    up.1.notify_all();
                }
            }
        });
        let sub = hub.subscribe(&self.info.namespace, sink);
        *self.events.lock().unwrap_or_else(|p| p.into_inner()) = Some(sub);
        // Wait (briefly: one SUBSCRIBE round trip; at most the connect timeout) for the stream,
        // so that what this driver caches from now on cannot miss an event. If the stream is
        // not up by then, the driver starts in a gap: the TTL rule, until it is.
        let (lock, cv) = &*ready;
        let up = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (up, _) = cv
            .wait_timeout_while(up, hub.ready_within, |up| !*up)
            .unwrap_or_else(|p| p.into_inner());
        if !*up {
            tracing::warn!(namespace = %self.info.namespace,
                "event stream not subscribed yet; the cache follows its TTL until it is");
        }
    }

    /// Registers `f`, called for each change of a link of this driver's namespace made
    /// anywhere (SPEC §11): a move, a removal, a replacement. It runs on the library's
    /// threads (or inside the writing call, on the memory store) and must return quickly.
    /// Returns an id for [`ClientDriver::remove_link_listener`]. Only changes that reach this
    /// driver while its event stream is connected are reported; after a gap the cache is
    /// emptied instead (see the README's Propagation).
    pub fn on_link_changed(&self, f: impl Fn(&LinkChange) + Send + Sync + 'static) -> u64 {
        self.coherence.add_listener(Arc::new(f))
    }

    /// Removes a link listener; returns whether it was registered.
    pub fn remove_link_listener(&self, id: u64) -> bool {
        self.coherence.remove_listener(id)
    }

    fn ticket(&self, link: LinkRef<'_>) -> Ticket {
        self.coherence.ticket(link.service, link.uid)
    }

    /// Who this driver is.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The configuration in force.
    pub fn config(&self) -> &BaseConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The read side (snapshots, workload states, tags).
    pub fn route_info(&self) -> &RouteInfo {
        &self.route
    }

    fn check_open(&self) -> Result<()> {
        match self.phase.load(Ordering::Acquire) {
            OPEN => Ok(()),
            NEW => Err(Error::closed(
                "client driver is not initialised: call init() first",
            )),
            _ => Err(Error::closed("client driver is closed")),
        }
    }

    /// Checks that the driver is open and `ns` is `""` or the local namespace.
    fn local_ns(&self, ns: &str) -> Result<&str> {
        self.check_open()?;
        resolve_namespace(&self.info.namespace, ns)
    }

    /// Resolves and checks `(ns, uid, service)`.
    fn link<'a>(&'a self, ns: &str, uid: &'a str, service: &'a str) -> Result<LinkRef<'a>> {
        self.local_ns(ns)?;
        ident::check_uid(uid)?;
        ident::check_service("service", service)?;
        Ok(LinkRef {
            namespace: &self.info.namespace,
            uid,
            service,
        })
    }

    /// The synchronous first half of [`ClientDriver::compute_linked_pod`]: the cached pod if the
    /// cache holds a link to an alive pod, `None` if the store must be asked. Never blocks and
    /// never leaves the calling thread.
    #[inline]
    pub fn compute_cached(&self, ns: &str, uid: &str, service: &str) -> Result<Option<u32>> {
        match self.probe_ref(ns, uid, service) {
            Some(link) => match self.cached_alive(link, true) {
                Some(pod) => Ok(Some(pod)),
                // A miss: the identifiers may still be bad (they are checked only now).
                None => self.link(ns, uid, service).map(|_| None),
            },
            // Closed, or another namespace: the error.
            None => self
                .link(ns, uid, service)
                .map(|l| self.cached_alive(l, true)),
        }
    }

    /// The hit path's shortcut around validation: an open driver, the local namespace, and a
    /// (service, uid) that the cache may hold. Only checked identifiers are ever inserted, so
    /// a key the cache holds is a valid one; anything else (a miss, a bad identifier, another
    /// namespace) goes through [`ClientDriver::link`], which names the error.
    #[inline]
    fn probe_ref<'a>(&'a self, ns: &str, uid: &'a str, service: &'a str) -> Option<LinkRef<'a>> {
        let local = &self.info.namespace;
        (self.phase.load(Ordering::Acquire) == OPEN && (ns.is_empty() || ns == local.as_str()))
            .then_some(LinkRef {
                namespace: local,
                uid,
                service,
            })
    }

    /// The cached pod if it is alive; `count`: a routing call's answer (a hit in the metrics).
    #[inline]
    fn cached_alive(&self, link: LinkRef<'_>, count: bool) -> Option<u32> {
        let now = self.clock.now();
        let hit = self.cache.get_any(link.service, link.uid)?;
        if !hit.view.is_alive_at(hit.pod, now) {
            self.cache.remove_if(link.service, link.uid, hit.pod);
            None
        } else if hit.is_fresh(now) {
            if count && self.counting {
                hit.view.counters.hits.inc();
            }
            Some(hit.pod)
        } else {
            None // expired: kept for stale-if-error until the store answers
        }
    }

    /// [`ClientDriver::compute_cached`] for a binding-side front cache (README, "Front
    /// caches"): on a hit, the pod, for how long a front cache may answer it without asking
    /// again (`valid_for`: the entry's lifetime and the pod's liveness deadline, less
    /// `FRONT_SLACK` (500 ms) — zero when it must not be kept), and the stripe and
    /// epoch of [`ClientDriver::front_epochs`] that must still match for it to be valid. The
    /// hit is counted here; hits the front cache answers afterwards are counted with
    /// [`ClientDriver::add_front_hits`]. `None` on a miss; the same errors as `compute_cached`.
    pub fn compute_front(&self, ns: &str, uid: &str, service: &str) -> Result<Option<FrontHit>> {
        let link = self.link(ns, uid, service)?;
        let Some(read) = self.cache.get_front(link.service, link.uid) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let hit = &read.link;
        let Some(alive_until) = hit.view.alive_until(hit.pod, now) else {
            self.cache.remove_if(link.service, link.uid, hit.pod);
            return Ok(None);
        };
        if !hit.is_fresh(now) {
            return Ok(None); // expired: kept for stale-if-error until the store answers
        }
        if self.counting {
            hit.view.counters.hits.inc();
        }
        let until = hit
            .deadline
            .min(alive_until.checked_sub(FRONT_SLACK).unwrap_or(now));
        Ok(Some(FrontHit {
            pod: hit.pod,
            valid_for: until.saturating_duration_since(now),
            stripe: read.stripe as u32,
            epoch: read.epoch,
        }))
    }

    /// The epochs a front cache checks (see [`FrontEpochs`]): [`FRONT_STRIPES`](crate::FRONT_STRIPES) words, in
    /// memory that stays valid for the life of the process.
    pub fn front_epochs(&self) -> &'static [AtomicU32] {
        self.front.words()
    }

    /// Checks what [`ClientDriver::compute_linked_pod_uncached`] would check first: the driver
    /// is open, `ns` is `""` or its namespace, and the identifiers are valid.
    pub fn check_link(&self, ns: &str, uid: &str, service: &str) -> Result<()> {
        self.link(ns, uid, service).map(|_| ())
    }

    /// A hold on [`ClientDriver::front_epochs`] for a view that must own the memory it shows.
    pub fn front_view(&self) -> FrontView {
        self.front.view()
    }

    /// Counts `n` hits of `service` that a binding-side front cache answered (it adds them
    /// before it reads the metrics, so every hit is counted once).
    pub fn add_front_hits(&self, service: &str, n: u64) {
        if self.counting && n > 0 && ident::check_service("service", service).is_ok() {
            self.route.metrics.service(service).hits.add(n);
        }
    }

    /// SPEC §6 `ComputeLinkedPod`: the pod that serves `uid` for `service`, placing the user
    /// on the best pod if it has no link yet. `ns` is `""` or the driver's namespace.
    pub async fn compute_linked_pod(&self, ns: &str, uid: &str, service: &str) -> Result<u32> {
        let probed = self.probe_ref(ns, uid, service);
        if let Some(pod) = probed.and_then(|link| self.cached_alive(link, true)) {
            return Ok(pod);
        }
        let link = self.link(ns, uid, service)?;
        if probed.is_none() {
            // Not probed yet (only when `link` would have failed, but keep the order exact).
            if let Some(pod) = self.cached_alive(link, true) {
                return Ok(pod);
            }
        }
        self.compute_uncached(link).await
    }

    /// The store half of [`ClientDriver::compute_linked_pod`], after a cache miss.
    /// Concurrent calls for the same (uid, service) share one store call.
    pub async fn compute_linked_pod_uncached(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
    ) -> Result<u32> {
        let link = self.link(ns, uid, service)?;
        self.compute_uncached(link).await
    }

    async fn compute_uncached(&self, link: LinkRef<'_>) -> Result<u32> {
        let key = LinkKey::new(link.service, link.uid);
        let placed_key = key.clone();
        let flight = {
            let mut m = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let f: Flight = m.entry(key.clone()).or_default().clone();
            FlightGuard {
                map: &self.inflight,
                key,
                flight: f,
            }
        };
        // A caller that missed the cache just before another call's placement finished finds
        // the link cached now: no second store call (and no second placement decision).
        let out = flight
            .flight
            .get_or_init(|| async {
                match self.cached_alive(link, false) {
                    Some(pod) => Ok(pod),
                    None => self.place(link, &placed_key).await,
                }
            })
            .await
            .clone();
        drop(flight);
        let (out, outcome) = match out {
            Ok(pod) => (Ok(pod), Outcome::Miss),
            Err(e) if matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout) => {
                match self.serve_stale(link) {
                    Some(pod) => (Ok(pod), Outcome::Stale),
                    None => {
                        let kind = e.kind();
                        (Err(e), Outcome::Error(kind))
                    }
                }
            }
            Err(e) => {
                let kind = e.kind();
                (Err(e), Outcome::Error(kind))
            }
        };
        if self.counting {
            let counters = self.route.metrics.service(link.service);
            self.route.metrics.answered(&counters, outcome);
        }
        out
    }

    /// Stale-if-error: a cached link to an alive pod that expired at most
    /// `serve_stale_seconds` ago (bounded by the cache margin: [`BaseConfig::serve_stale_window`]).
    fn serve_stale(&self, link: LinkRef<'_>) -> Option<u32> {
        let now = self.clock.now();
        let hit = self.cache.get_any(link.service, link.uid)?;
        let window = self.config.serve_stale_window();
        let recent = now.saturating_duration_since(hit.deadline) <= window;
        (recent && hit.view.is_alive_at(hit.pod, now)).then(|| {
            tracing::warn!(
                uid = link.uid,
                service = link.service,
                pod = hit.pod,
                "store unreachable; serving a recently expired cached link"
            );
            hit.pod
        })
    }

    /// Steps 2–4 of SPEC §6 for one user.
    async fn place(&self, link: LinkRef<'_>, key: &LinkKey) -> Result<u32> {
        let ticket = self.ticket(link);
        let view = self.route.service(link.service).await?;
        let temp = LinkTtl::Seconds(self.config.temp_link_info_cache_time_seconds as u32);
        let reserved = match self.route.reserve(&view, link.uid)? {
            None if self.route.reread_if_old(&view).await => self.route.reserve(&view, link.uid)?,
            r => r,
        };
        let Some(mut best) = reserved else {
            // Step 3: no routable pod; an existing link to an alive pod still serves.
            return match self
                .store
                .call("get_link", self.store.backend().get_link(link))
                .await?
            {
                Some(l) if view.is_alive(l.pod_index) => {
                    Ok(self.cached_key(key, link, l, view, ticket))
                }
                Some(l) if l.is_persistent() => {
                    Err(Error::pod_unavailable(link.service, l.pod_index))
                }
                _ => Err(no_pod(link.service)),
            };
        };
        let mut claim = self
            .store
            .call(
                "set_link_if_absent",
                self.store
                    .backend()
                    .set_link_if_absent(link, best.pod, temp),
            )
            .await?;
        // Bounded: each round moves a link to a dead pod to one alive when it was chosen.
        for _ in 0..4 {
            let current = claim.link;
            if view.is_alive(current.pod_index) {
                if claim.created {
                    let pod = current.pod_index;
                    tracing::debug!(uid = link.uid, service = link.service, pod, "placed user");
                    best.keep();
                    if self.counting {
                        view.counters.placed(pod);
                    }
                }
                return Ok(self.cached_key(key, link, current, view, ticket));
            }
            if current.is_persistent() {
                return Err(Error::pod_unavailable(link.service, current.pod_index));
            }
            // Step 4: a temporary link to a pod that is not alive moves to an alive pod. The
            // one chosen may have died since (even the one this call just linked): choose anew.
            if !view.is_alive(best.pod) {
                best = match self.route.reserve(&view, link.uid)? {
                    Some(b) => b,
                    None => return Err(no_pod(link.service)),
                };
            }
            claim = self
                .store
                .replace_temporary_link(link, current.pod_index, best.pod, temp)
                .await?;
        }
        Err(no_pod(link.service))
    }

    /// Caches `l` read from the store under `ticket` (taken before the read), unless an event
    /// for the key or a gap came since: then the answer is returned but not kept (SPEC §11).
    fn cached(&self, link: LinkRef<'_>, l: Link, view: Arc<ServiceView>, ticket: Ticket) -> u32 {
        self.cache.insert(link.service, link.uid, l, view);
        self.drop_if_stale(link, l, ticket)
    }

    /// [`ClientDriver::cached`] with the cache key already made.
    fn cached_key(
        &self,
        key: &LinkKey,
        link: LinkRef<'_>,
        l: Link,
        view: Arc<ServiceView>,
        ticket: Ticket,
    ) -> u32 {
        self.cache.insert_key(key.clone(), l, view);
        self.drop_if_stale(link, l, ticket)
    }

    /// Drops what was just cached if an event for its key came since `ticket` was taken.
    fn drop_if_stale(&self, link: LinkRef<'_>, l: Link, ticket: Ticket) -> u32 {
        if !self.coherence.is_current(ticket) {
            self.cache.remove_if(link.service, link.uid, l.pod_index);
        }
        l.pod_index
    }

    /// `GetLinkedPod`: the link from the cache, else from the store (then cached).
    pub async fn get_linked_pod(&self, ns: &str, uid: &str, service: &str) -> Result<Option<u32>> {
        let link = self.link(ns, uid, service)?;
        if let Some(hit) = self.cache.get(service, uid) {
            return Ok(Some(hit.pod));
        }
        let ticket = self.ticket(link);
        match self
            .store
            .call("get_link", self.store.backend().get_link(link))
            .await?
        {
            Some(l) => {
                let view = self.route.service(service).await?;
                Ok(Some(self.cached(link, l, view, ticket)))
            }
            None => Ok(None),
        }
    }

    /// `GetLinkedPodInCacheOrIfPersist`: the cached link, else a persistent link from the store.
    pub async fn get_linked_pod_in_cache_or_if_persist(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
    ) -> Result<Option<u32>> {
        let link = self.link(ns, uid, service)?;
        if let Some(hit) = self.cache.get(service, uid) {
            return Ok(Some(hit.pod));
        }
        let ticket = self.ticket(link);
        match self
            .store
            .call("get_link", self.store.backend().get_link(link))
            .await?
        {
            Some(l) if l.is_persistent() => {
                let view = self.route.service(service).await?;
                Ok(Some(self.cached(link, l, view, ticket)))
            }
            _ => Ok(None),
        }
    }

    /// `GetLinkedPodNotCache`: the link from the store, bypassing (and not filling) the cache.
    pub async fn get_linked_pod_not_cache(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
    ) -> Result<Option<u32>> {
        let link = self.link(ns, uid, service)?;
        Ok(self
            .store
            .call("get_link", self.store.backend().get_link(link))
            .await?
            .map(|l| l.pod_index))
    }

    /// `GetLinkedInCache`: the cached link only.
    pub fn get_linked_in_cache(&self, ns: &str, uid: &str, service: &str) -> Result<Option<u32>> {
        self.link(ns, uid, service)?;
        Ok(self.cache.get(service, uid).map(|c| c.pod))
    }

    /// `CacheExpired`: drops the cached link and returns what it held.
    pub fn cache_expired(&self, ns: &str, uid: &str, service: &str) -> Result<Option<u32>> {
        self.link(ns, uid, service)?;
        Ok(self.cache.remove(service, uid))
    }

    /// `SetCache`: caches `pod` for `uid` (for `user_link_info_cache_time_seconds`).
    pub async fn set_cache(&self, ns: &str, uid: &str, service: &str, pod: u32) -> Result<()> {
        let link = self.link(ns, uid, service)?;
        ident::check_pod(pod)?;
        let view = self.route.service(service).await?;
        let ticket = self.ticket(link);
        self.cached(
            link,
            Link {
                pod_index: pod,
                ttl: None,
            },
            view,
            ticket,
        );
        Ok(())
    }

    /// `GetLinkService`: the user's persistent links, service → pod.
    pub async fn get_link_service(&self, ns: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        let ns = self.local_ns(ns)?;
        self.store.get_link_services(ns, uid).await
    }

    /// `BatchGetLinkedPod`: pod → uids (input order) for the uids that have a link.
    pub async fn batch_get_linked_pod<S: AsRef<str>>(
        &self,
        ns: &str,
        uids: &[S],
        service: &str,
    ) -> Result<BTreeMap<u32, Vec<String>>> {
        let ns = self.local_ns(ns)?;
        self.store.batch_get_links(ns, uids, service).await
    }

    /// `SetLinkedPodIfAbsent`: links `uid` to `pod` unless a link exists; returns the link in
    /// force (`ttl_secs`: -1 persistent, > 0 seconds).
    pub async fn set_linked_pod_if_absent(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
        pod: u32,
        ttl_secs: i64,
    ) -> Result<Link> {
        let link = self.link(ns, uid, service)?;
        ident::check_pod(pod)?;
        let ttl = LinkTtl::from_secs(ttl_secs)?;
        let ticket = self.ticket(link);
        let l = self
            .store
            .call(
                "set_link_if_absent",
                self.store.backend().set_link_if_absent(link, pod, ttl),
            )
            .await?
            .link;
        let view = self.route.service(service).await?;
        self.cached(link, l, view, ticket);
        Ok(l)
    }

    /// Computes waiting on the store now (single-flight entries), for tests and diagnostics.
    #[doc(hidden)]
    pub fn pending_computes(&self) -> usize {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Links held by the local cache (approximate).
    pub fn cache_len(&self) -> u64 {
        self.cache.len()
    }

    /// What this driver counted and sees now (README "Metrics"): per service its hits,
    /// misses, stale answers, errors, accepted placements by pod and the pods of its snapshot;
    /// errors by code; the store's call latencies; the event stream. Works before `init` and
    /// after `close` (the last figures).
    pub fn metrics(&self) -> MetricsSnapshot {
        let m = &self.route.metrics;
        let hub = self.store.backend().events();
        MetricsSnapshot {
            namespace: self.info.namespace.clone(),
            enabled: self.counting,
            cache_entries: self.cache.len(),
            services: self.route.service_metrics(),
            errors: m.errors(),
            store_calls: self.store.metrics.snapshot(),
            propagation: PropagationMetrics {
                enabled: hub.is_some(),
                connected: hub.is_some_and(|h| h.is_connected())
                    && self.phase.load(Ordering::Acquire) == OPEN,
                link_events: m.link_events.load(Ordering::Relaxed),
                pod_events: m.pod_events.load(Ordering::Relaxed),
                gaps: m.gaps.load(Ordering::Relaxed),
                invalidations: m.invalidations.load(Ordering::Relaxed),
            },
        }
    }

    /// [`ClientDriver::metrics`] in the Prometheus text exposition format, to append to a
    /// service's own `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.metrics().to_prometheus()
    }

    /// Why `uid` gets the pod it gets for `service` (a dry run: writes nothing, counts no
    /// placement and no hit): the user's link in the store and in this cache, every pod of the
    /// snapshot with its load, placements since the read, routing state, age and weight and
    /// the good set's verdict on it, the policy and the pod a new user would get now.
    pub async fn explain_placement(
        &self,
        ns: &str,
        uid: &str,
        service: &str,
    ) -> Result<Explanation> {
        let link = self.link(ns, uid, service)?;
        let view = self.route.service(service).await?;
        let stored = self
            .store
            .call("get_link", self.store.backend().get_link(link))
            .await?;
        let cached_pod = self.cache.get(service, uid).map(|c| c.pod);
        let placement = self.route.placement_of(service);
        let (pods, would_place_on, snapshot_age_seconds) = self.route.explain_pods(&view, uid)?;
        let link_info = stored.map(|l| ExplainedLink {
            pod_index: l.pod_index,
            persistent: l.is_persistent(),
            ttl_seconds: l.ttl.map(|t| t.as_secs_f64()),
            pod_alive: view.is_alive(l.pod_index),
        });
        let (answer, summary) = match (&link_info, would_place_on) {
            (Some(l), _) if l.pod_alive => (
                Some(l.pod_index),
                format!(
                    "linked ({}) to pod {}, which is alive",
                    if l.persistent {
                        "persistent"
                    } else {
                        "temporary"
                    },
                    l.pod_index
                ),
            ),
            (Some(l), _) if l.persistent => (
                None,
                format!(
                    "POD_UNAVAILABLE: linked persistently to pod {}, which is not alive",
                    l.pod_index
                ),
            ),
            (Some(l), Some(p)) => (
                Some(p),
                format!(
                    "the temporary link to pod {} (not alive) would move to pod {p} ({})",
                    l.pod_index,
                    placement.name()
                ),
            ),
            (None, Some(p)) => (
                Some(p),
                format!(
                    "no link: a new user would be placed on pod {p} ({})",
                    placement.name()
                ),
            ),
            (_, None) => (
                None,
                format!("NO_AVAILABLE_POD: service {service:?} has no routable pod"),
            ),
        };
        Ok(Explanation {
            namespace: self.info.namespace.clone(),
            uid: uid.to_string(),
            service: service.to_string(),
            link: link_info,
            cached_pod,
            policy: placement.name().to_string(),
            load_factor: placement.load_factor(),
            load_range: self.config.load_range,
            pods,
            would_place_on,
            answer,
            summary,
            snapshot_age_seconds,
        })
    }

    // The read side of the original route-info driver, in this driver's namespace.

    /// Alive pods of `service`.
    pub async fn alive_pods(&self, service: &str) -> Result<Vec<u32>> {
        self.check_open()?;
        self.route.alive_pods(service).await
    }

    /// Routable pods of `service`.
    pub async fn routable_pods(&self, service: &str) -> Result<Vec<u32>> {
        self.check_open()?;
        self.route.routable_pods(service).await
    }

    /// Whether `pod` of `service` is alive.
    pub async fn is_pod_alive(&self, service: &str, pod: u32) -> Result<bool> {
        self.check_open()?;
        self.route.is_pod_alive(service, pod).await
    }

    /// Whether `pod` of `service` is routable.
    pub async fn is_pod_routable(&self, service: &str, pod: u32) -> Result<bool> {
        self.check_open()?;
        self.route.is_pod_routable(service, pod).await
    }

    /// The pod a new user of `service` would get now.
    pub async fn best_pod(&self, service: &str) -> Result<u32> {
        self.check_open()?;
        self.route.best_pod(service).await
    }

    /// Pod states of `service` as of the last snapshot.
    pub async fn pod_states(&self, service: &str) -> Result<Vec<PodState>> {
        self.check_open()?;
        self.route.pod_states(service).await
    }

    /// Re-reads `service`'s pod states now.
    pub async fn refresh_service(&self, service: &str) -> Result<()> {
        self.check_open()?;
        self.route.refresh_service(service).await
    }

    /// Workload state of `service`.
    pub async fn get_workload_state(&self, service: &str) -> Result<Option<String>> {
        self.check_open()?;
        self.route.get_workload_state(service).await
    }

    /// Sets the workload state of `service`.
    pub async fn set_workload_state(&self, service: &str, state: &str) -> Result<()> {
        self.check_open()?;
        self.route.set_workload_state(service, state).await
    }

    /// Workload states of many services, in input order.
    pub async fn batch_get_workload_state<S: AsRef<str>>(
        &self,
        services: &[S],
    ) -> Result<Vec<Option<String>>> {
        self.check_open()?;
        self.route.batch_get_workload_state(services).await
    }

    /// Whether `service`'s workload state is `READY`.
    pub async fn is_workload_ready(&self, service: &str) -> Result<bool> {
        self.check_open()?;
        self.route.is_workload_ready(service).await
    }

    /// Makes `tag` stand for `service`.
    pub async fn set_global_service_name_tag(&self, tag: &str, service: &str) -> Result<()> {
        self.check_open()?;
        self.route.set_global_service_name_tag(tag, service).await
    }

    /// The service `tag` stands for.
    pub async fn get_service_name_by_tag(&self, tag: &str) -> Result<Option<String>> {
        self.check_open()?;
        self.route.get_service_name_by_tag(tag).await
    }

    /// Places new users of `service` with `placement` instead of the configured policy.
    pub fn set_service_placement(&self, service: &str, placement: crate::Placement) -> Result<()> {
        self.route.set_service_placement(service, placement)
    }

    /// Calls `f` (on the library's runtime threads) whenever a refresh sees a pod's routing
    /// state change. Returns an id for [`ClientDriver::remove_routing_state_listener`].
    pub fn on_routing_state_changed(
        &self,
        f: impl Fn(&RoutingStateChange) + Send + Sync + 'static,
    ) -> u64 {
        self.route.on_routing_state_changed(f)
    }

    /// Removes a listener.
    pub fn remove_routing_state_listener(&self, id: u64) -> bool {
        self.route.remove_listener(id)
    }
}

impl Drop for ClientDriver {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// `""` means `local`; any other valid namespace than `local` is `NAMESPACE_NOT_LOCAL`.
pub(crate) fn resolve_namespace<'a>(local: &'a str, ns: &str) -> Result<&'a str> {
    ident::check_namespace(ns)?;
    if ns.is_empty() || ns == local {
        Ok(local)
    } else {
        Err(Error::new(
            ErrorKind::NamespaceNotLocal,
            format!("namespace {ns:?} is not this driver's namespace {local:?}"),
        ))
    }
}
