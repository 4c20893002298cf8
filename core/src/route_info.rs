//! The read side: snapshots of each service's pod states, liveness, best pod, workload state,
//! tags and routing-state-change callbacks.
//!
//! A snapshot is read on first use of a service and refreshed every period by a background
//! task. Liveness is judged on the store's clock: each pod gets a local deadline
//! (`alive_until`) computed from the store's time at the read, so the hot path compares one
//! `Instant` and never asks the store. A failed refresh keeps the last snapshot.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::cache::FrontEpochs;
use crate::clock::Clock;
use crate::config::{BaseConfig, RoutingState};
use crate::error::{Error, ErrorKind, Result};
use crate::explain::ExplainedPod;
use crate::ident;
use crate::metrics::{ClientMetrics, PodMetrics, ServiceCounters, ServiceMetrics};
use crate::placement::{good_set, Candidate, Placement, PlacementRequest};
use crate::pod_state::PodState;
use crate::store::{PodStates, Store};

/// A change of a pod's routing state as a gateway sees it. `None` means "not alive"
/// (absent, stale or shut down).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingStateChange {
    /// The service.
    pub service: String,
    /// The pod.
    pub pod_index: u32,
    /// The state before (`None`: not alive).
    pub old: Option<RoutingState>,
    /// The state now (`None`: not alive).
    pub new: Option<RoutingState>,
}

type Listener = Arc<dyn Fn(&RoutingStateChange) + Send + Sync>;

#[derive(Debug)]
pub(crate) struct PodView {
    pub state: PodState,
    alive_until: Instant,
    /// The age (ms) `alive_until` was computed from: `alive_until` = the time it was computed +
    /// `stale_after` − this. A freeze keeps it (ages stop while the store cannot be read).
    age_ms: u64,
    placed: AtomicU32,
    /// Slow start: the pod became routable in this view at `.0` and is warm at `.1`.
    ramp: Option<(Instant, Instant)>,
    /// The latest expiry a front-cache entry for this pod may still have from the snapshots
    /// before this one (since the front epochs last moved), with the slack already taken.
    promised: Option<Instant>,
}

impl PodView {
    /// The latest expiry a front-cache entry for this pod may have while this snapshot is in
    /// force (`compute_front` gives at most the deadline less the slack).
    fn front_promise(&self) -> Instant {
        let here = self
            .alive_until
            .checked_sub(FRONT_SLACK)
            .unwrap_or(self.alive_until);
        self.promised.map_or(here, |p| p.max(here))
    }

    /// Makes the pod `age_ms` old at `at`, if that keeps it alive longer than it is.
    fn extend(&mut self, at: Instant, age_ms: u64, stale_ms: u64) {
        let until = at + Duration::from_millis(stale_ms.saturating_sub(age_ms));
        if until > self.alive_until {
            self.alive_until = until;
            self.age_ms = age_ms;
        }
    }

    /// Keeps the deadline `other` had, if later (its age then counted from `at`).
    fn keep_deadline(&mut self, other: &PodView, at: Instant, stale_ms: u64) {
        if other.alive_until > self.alive_until {
            let left = other.alive_until.saturating_duration_since(at).as_millis() as u64;
            self.alive_until = other.alive_until;
            self.age_ms = stale_ms.saturating_sub(left);
        }
    }

    fn is_alive(&self, now: Instant) -> bool {
        self.state.routing_state != RoutingState::Shutdown && now < self.alive_until
    }

    fn effective(&self, now: Instant) -> Option<RoutingState> {
        self.is_alive(now).then_some(self.state.routing_state)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// Sorted by pod index.
    pods: Vec<PodView>,
    store_now_ms: u64,
    /// When the store was read (kept by a freeze); `None` before the first read.
    read_at: Option<Instant>,
    /// Made by a freeze (the store could not be read): ages count from the freeze.
    frozen: bool,
    /// When the freeze began (the first read that failed since `read_at`).
    frozen_at: Option<Instant>,
    /// The good set of the default policy, computed on first use (see [`GoodSet`]).
    good: arc_swap::ArcSwapOption<GoodSet>,
}

/// The good set of a snapshot as the default policy (power of two choices) sees it while no
/// pod warms up: the indices (into the snapshot's pods) of the routable pods within
/// `load_range` of the least loaded. It holds until the first of the routable pods dies
/// (`until`): a snapshot never gains a routable pod, and slow start begins only with a new
/// snapshot. So a placement is two random picks in it, not a pass over every pod of the
/// service: flat in the fleet's size.
#[derive(Debug)]
struct GoodSet {
    load_range: u32,
    until: Option<Instant>,
    /// A routable pod warms up until then: no good set before (the full path draws per pod).
    warming_until: Option<Instant>,
    pods: Box<[u32]>,
}

impl Snapshot {
    fn new(states: PodStates, stale_after: Duration, read_at: Instant) -> Snapshot {
        let stale_ms = stale_after.as_millis() as u64;
        let pods = states
            .pods
            .into_iter()
            .map(|state| {
                let age = states.now_ms.saturating_sub(state.update_ms);
                PodView {
                    state,
                    alive_until: read_at + Duration::from_millis(stale_ms.saturating_sub(age)),
                    age_ms: age,
                    placed: AtomicU32::new(0),
                    ramp: None,
                    promised: None,
                }
            })
            .collect();
        Snapshot {
            pods,
            store_now_ms: states.now_ms,
            read_at: Some(read_at),
            frozen: false,
            frozen_at: None,
            good: Default::default(),
        }
    }

    /// The same read, with ages counted from `now` instead of from the original read: each
    /// pod keeps the age its deadline was computed from (extensions included).
    fn frozen(&self, stale_after: Duration, now: Instant) -> Snapshot {
        let states = PodStates {
            now_ms: self.store_now_ms,
            pods: self.pods.iter().map(|p| p.state).collect(),
        };
        let stale_ms = stale_after.as_millis() as u64;
        let mut snap = Snapshot::new(states, stale_after, now);
        for (p, o) in snap.pods.iter_mut().zip(&self.pods) {
            p.ramp = o.ramp;
            p.age_ms = o.age_ms;
            p.alive_until = now + Duration::from_millis(stale_ms.saturating_sub(o.age_ms));
        }
        snap.read_at = self.read_at;
        snap.frozen = true;
        snap.frozen_at = self.frozen_at.or(Some(now));
        snap
    }

    /// Seconds since `p` published: its age at the read plus the time since the read.
    fn age_seconds(&self, p: &PodView, now: Instant) -> f64 {
        let at_read = self.store_now_ms.saturating_sub(p.state.update_ms) as f64 / 1000.0;
        at_read
            + self
                .read_at
                .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64())
    }

    fn pod(&self, pod: u32) -> Option<&PodView> {
        self.pods
            .binary_search_by_key(&pod, |p| p.state.pod_index)
            .ok()
            .map(|i| &self.pods[i])
    }
}

/// How much earlier than a pod's liveness deadline a front-cache entry expires. A re-read
/// recomputes each deadline from the store's clock, so it moves by the read's latency even
/// when nothing happened; a move within this slack cannot make a front entry outlive the pod.
pub(crate) const FRONT_SLACK: Duration = Duration::from_millis(500);

/// One service's snapshot, shared by the cache entries that point into it.
pub(crate) struct ServiceView {
    pub name: String,
    /// This service's counters (outlive the view: a re-read view gets the same).
    pub counters: Arc<ServiceCounters>,
    snapshot: ArcSwap<Snapshot>,
    sequence: AtomicU64,
    loaded: AtomicBool,
    load_lock: tokio::sync::Mutex<()>,
    /// Tickets of store reads, in the order they were sent.
    tickets: AtomicU64,
    /// The ticket of the read in force, and the effective routing state of each pod as last
    /// reported to listeners. A read older than the one in force is dropped (item: concurrent
    /// refreshes must not put an older snapshot over a newer one).
    applied: Mutex<Applied>,
    /// When this view was last asked for (ms since its route info was made); idle views are
    /// evicted by the refresh loop.
    last_used_ms: AtomicU64,
    /// When a placement that found no routable pod last re-read the snapshot (ms since the
    /// route info was made; 0: never).
    reread_ms: AtomicU64,
    clock: Clock,
    /// The client driver's front-cache epochs (none on a server), bumped when a snapshot cuts
    /// a pod's liveness short.
    front: Option<Arc<FrontEpochs>>,
}

#[derive(Debug, Default)]
struct Applied {
    ticket: u64,
    last_seen: BTreeMap<u32, RoutingState>,
}

impl fmt::Debug for ServiceView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceView")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ServiceView {
    /// Whether `pod` is alive now.
    #[inline]
    pub fn is_alive(&self, pod: u32) -> bool {
        self.is_alive_at(pod, self.clock.now())
    }

    /// Whether `pod` is alive at `now`. The hot path of a cache hit.
    #[inline]
    pub fn is_alive_at(&self, pod: u32, now: Instant) -> bool {
        self.snapshot
            .load()
            .pod(pod)
            .is_some_and(|p| p.is_alive(now))
    }

    /// Until when `pod` stays alive in the snapshot in force, if it is alive at `now`.
    pub fn alive_until(&self, pod: u32, now: Instant) -> Option<Instant> {
        self.snapshot
            .load()
            .pod(pod)
            .filter(|p| p.is_alive(now))
            .map(|p| p.alive_until)
    }

    /// Puts `new` in force. If it ends a pod's liveness before a front-cache entry handed out
    /// since the front epochs last moved could expire (a pod gone, `SHUTDOWN`, or a deadline
    /// moved earlier by more than the slack, across any number of re-reads), every front entry
    /// may be wrong: the epochs move, after the store. Callers hold `applied`, so installs do
    /// not interleave.
    fn install(&self, mut new: Snapshot) {
        let Some(front) = &self.front else {
            self.snapshot.store(Arc::new(new));
            return;
        };
        let old = self.snapshot.load_full();
        let now = self.clock.now();
        let mut cut = false;
        for o in old.pods.iter().filter(|p| p.is_alive(now)) {
            let promise = o.front_promise();
            let at = new
                .pods
                .binary_search_by_key(&o.state.pod_index, |n| n.state.pod_index);
            match at.map(|i| &mut new.pods[i]) {
                Ok(n) if n.is_alive(now) && n.alive_until >= promise => n.promised = Some(promise),
                _ => cut = true,
            }
        }
        if cut {
            for n in &mut new.pods {
                n.promised = None;
            }
        }
        self.snapshot.store(Arc::new(new));
        if cut {
            front.bump_all();
        }
    }

    fn pods_where(&self, f: impl Fn(&PodView, Instant) -> bool) -> Vec<u32> {
        let now = self.clock.now();
        let snap = self.snapshot.load();
        snap.pods
            .iter()
            .filter(|p| f(p, now))
            .map(|p| p.state.pod_index)
            .collect()
    }

    /// Installs `read` (whose store read took `ticket`) unless a newer read is in force; returns
    /// the routing-state changes to report, or `None` if the read was dropped as older.
    /// `keep` merges pods the previous snapshot had (see [`keep_vanished`]).
    fn apply(
        &self,
        ticket: u64,
        states: PodStates,
        stale_after: Duration,
        slow_start: Duration,
    ) -> Option<Vec<RoutingStateChange>> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        if ticket < applied.ticket {
            return None;
        }
        let old = self.snapshot.load();
        let (states, vanished) = keep_vanished(states, &old);
        let now = self.clock.now();
        let stale_ms = stale_after.as_millis() as u64;
        let mut new = Snapshot::new(states, stale_after, now);
        // A vanished pod keeps the liveness deadline it had, not one recomputed from its old
        // publish time: that would drop the freeze of an outage (Redis restarted empty after
        // more than `stale_after`) and declare every pod dead until it republishes.
        for pod in vanished {
            if let (Some(i), Some(o)) = (
                new.pods
                    .binary_search_by_key(&pod, |p| p.state.pod_index)
                    .ok(),
                old.pod(pod),
            ) {
                let p = &mut new.pods[i];
                p.alive_until = now; // then the old deadline
                p.keep_deadline(o, now, stale_ms);
            }
        }
        // A pod that has not published since the last read keeps the deadline it had, if that
        // is later: silence can shorten its liveness, a later read cannot (a step of the store's
        // clock, say).
        //
        // The first read after a freeze (the store could not be read): liveness counts only
        // time in which the store could be read, so the outage must not count against pods
        // that could not publish during it (else a fleet is dead for up to a period after its
        // store comes back). A pod silent since the last good read keeps its age then; one
        // that published between that read and the freeze's start was that old when the
        // freeze began. One that published after the freeze began reached the store meanwhile
        // (only this gateway was cut off): the store's word stands. They republish within a
        // second of the store's return; one that stays silent (it died) ages out `stale_after`
        // after it at the latest.
        let freeze_store_ms = match (old.frozen_at, old.read_at) {
            (Some(f), Some(l)) if old.frozen => Some(
                old.store_now_ms
                    .saturating_add(f.saturating_duration_since(l).as_millis() as u64),
            ),
            _ => None,
        };
        for p in &mut new.pods {
            let Some(o) = old.pod(p.state.pod_index) else {
                continue;
            };
            let silent = o.state.update_ms == p.state.update_ms;
            if silent {
                p.keep_deadline(o, now, stale_ms);
            }
            if let Some(freeze) = freeze_store_ms {
                if silent {
                    p.extend(now, o.age_ms, stale_ms);
                } else if p.state.update_ms <= freeze {
                    p.extend(now, freeze - p.state.update_ms, stale_ms);
                }
            }
        }
        // Slow start: a pod that turned routable since the last read ramps up from now; one
        // that was routable keeps its ramp; the first read of a service starts every pod warm.
        let first = applied.ticket == 0;
        for p in &mut new.pods {
            if p.effective(now) != Some(RoutingState::Ready) || first || slow_start.is_zero() {
                continue;
            }
            let was = applied.last_seen.get(&p.state.pod_index) == Some(&RoutingState::Ready);
            p.ramp = if was {
                old.pod(p.state.pod_index).and_then(|o| o.ramp)
            } else {
                Some((now, now + slow_start))
            };
        }
        let changes = diff(&self.name, &mut applied.last_seen, &new, now);
        applied.ticket = ticket;
        self.install(new);
        Some(changes)
    }

    /// [`GoodSet`] of `snap` at `now`, cached in it; `None` while a routable pod warms up (slow
    /// start draws per placement: the full path then).
    fn good_set(&self, snap: &Snapshot, load_range: u32, now: Instant) -> Option<Arc<GoodSet>> {
        if let Some(g) = snap.good.load_full() {
            if g.warming_until.is_some_and(|w| now < w) {
                return None;
            }
            if g.warming_until.is_none()
                && g.load_range == load_range
                && g.until.is_none_or(|u| now < u)
            {
                return Some(g);
            }
        }
        let routable = |p: &PodView| p.effective(now) == Some(RoutingState::Ready);
        let mut min = None::<u32>;
        let mut until = None::<Instant>;
        let mut warming_until = None::<Instant>;
        for p in snap.pods.iter().filter(|p| routable(p)) {
            if let Some((_, end)) = p.ramp.filter(|(_, end)| now < *end) {
                warming_until = Some(warming_until.map_or(end, |w: Instant| w.max(end)));
            }
            min = Some(min.map_or(p.state.load, |m| m.min(p.state.load)));
            until = Some(until.map_or(p.alive_until, |u| u.min(p.alive_until)));
        }
        if warming_until.is_some() {
            snap.good.store(Some(Arc::new(GoodSet {
                load_range,
                until,
                warming_until,
                pods: Box::new([]),
            })));
            return None;
        }
        let max = min.map_or(0, |m| m.saturating_add(load_range));
        let pods = snap
            .pods
            .iter()
            .enumerate()
            .filter(|(_, p)| routable(p) && p.state.load <= max)
            .map(|(i, _)| i as u32)
            .collect();
        let g = Arc::new(GoodSet {
            load_range,
            until,
            warming_until: None,
            pods,
        });
        snap.good.store(Some(g.clone()));
        Some(g)
    }

    /// The default policy on the cached good set: the same draws as [`Placement::choose`] on
    /// the candidates (two distinct random picks, the lower load plus placements wins, a coin
    /// on a tie), so it chooses exactly what the full path would. `None`: take the full path.
    fn power_of_two_fast(&self, snap: &Snapshot, load_range: u32) -> Option<Option<u32>> {
        let g = self.good_set(snap, load_range, self.clock.now())?;
        let c = &g.pods;
        let pod = |i: usize| &snap.pods[c[i] as usize];
        let load = |i: usize| {
            let p = pod(i);
            p.state.load as u64 + p.placed.load(Ordering::Relaxed) as u64
        };
        Some(match c.len() {
            0 => None,
            1 => Some(pod(0).state.pod_index),
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                let i = match load(a).cmp(&load(b)) {
                    std::cmp::Ordering::Less => a,
                    std::cmp::Ordering::Greater => b,
                    std::cmp::Ordering::Equal => {
                        if fastrand::bool() {
                            a
                        } else {
                            b
                        }
                    }
                };
                Some(pod(i).state.pod_index)
            }
        })
    }

    fn candidates(&self, snap: &Snapshot, load_range: u32) -> Vec<Candidate> {
        let now = self.clock.now();
        let routable = || {
            snap.pods
                .iter()
                .filter(move |p| p.effective(now) == Some(RoutingState::Ready))
        };
        // Slow start: a warming pod is a candidate with probability (time since it turned
        // routable) / window. If that leaves nobody, every routable pod is a candidate.
        let warm = |p: &&PodView| match p.ramp {
            Some((from, until)) if now < until => {
                let r = now.saturating_duration_since(from).as_secs_f64()
                    / until.saturating_duration_since(from).as_secs_f64();
                fastrand::f64() < r
            }
            _ => true,
        };
        let mut kept: Vec<&PodView> = routable().filter(warm).collect();
        if kept.is_empty() {
            kept = routable().collect();
        }
        let routable = kept
            .into_iter()
            .map(|p| Candidate {
                pod_index: p.state.pod_index,
                load: p.state.load,
                placed: p.placed.load(Ordering::Relaxed),
                routing_state: p.state.routing_state,
                age_ms: snap.store_now_ms.saturating_sub(p.state.update_ms),
                weight: p.state.weight,
            })
            .collect();
        good_set(routable, load_range)
    }
}

/// Most services one route info keeps a view of; beyond it the least recently used is evicted.
pub const MAX_SERVICES: usize = 4096;

/// The read side of one driver: snapshots per service, in the driver's local namespace.
pub struct RouteInfo {
    store: Store,
    namespace: String,
    config: Arc<BaseConfig>,
    /// The clock of `last_used_ms`.
    epoch: Instant,
    clock: Clock,
    services: RwLock<HashMap<String, Arc<ServiceView>, foldhash::fast::RandomState>>,
    placements: RwLock<HashMap<String, Placement, foldhash::fast::RandomState>>,
    listeners: Mutex<Vec<(u64, Listener)>>,
    next_listener: AtomicU64,
    pub(crate) metrics: Arc<ClientMetrics>,
    placements_refused: AtomicBool,
    front: Option<Arc<FrontEpochs>>,
}

impl fmt::Debug for RouteInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteInfo")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RouteInfo {
    pub(crate) fn new(
        store: Store,
        namespace: String,
        config: Arc<BaseConfig>,
        front: Option<Arc<FrontEpochs>>,
    ) -> Arc<RouteInfo> {
        let clock = store.clock().clone();
        Arc::new(RouteInfo {
            front,
            store,
            namespace,
            epoch: clock.now(),
            clock,
            services: RwLock::new(HashMap::default()),
            placements: RwLock::new(HashMap::default()),
            listeners: Mutex::new(Vec::new()),
            next_listener: AtomicU64::new(1),
            metrics: Arc::new(ClientMetrics::new(config.metrics)),
            placements_refused: AtomicBool::new(false),
            config,
        })
    }

    /// The view of `service`, reading its snapshot on first use.
    pub(crate) async fn service(&self, service: &str) -> Result<Arc<ServiceView>> {
        let view = {
            let map = self.services.read().unwrap_or_else(|p| p.into_inner());
            map.get(service).cloned()
        };
        let view = match view {
            Some(v) => v,
            None => {
                let mut map = self.services.write().unwrap_or_else(|p| p.into_inner());
                map.entry(service.to_string())
                    .or_insert_with(|| {
                        Arc::new(ServiceView {
                            name: service.to_string(),
                            counters: self.metrics.service(service),
                            snapshot: ArcSwap::from_pointee(Snapshot::default()),
                            sequence: AtomicU64::new(0),
                            loaded: AtomicBool::new(false),
                            load_lock: tokio::sync::Mutex::new(()),
                            tickets: AtomicU64::new(0),
                            applied: Mutex::new(Applied::default()),
                            last_used_ms: AtomicU64::new(0),
                            reread_ms: AtomicU64::new(0),
                            clock: self.clock.clone(),
                            front: self.front.clone(),
                        })
                    })
                    .clone()
            }
        };
        view.last_used_ms
            .store(self.since_epoch_ms(), Ordering::Relaxed);
        if !view.loaded.load(Ordering::Acquire) {
            let _guard = view.load_lock.lock().await;
            if !view.loaded.load(Ordering::Acquire) {
                let ticket = view.tickets.fetch_add(1, Ordering::AcqRel) + 1;
                view.counters.refreshes.fetch_add(1, Ordering::Relaxed);
                let states = match self.store.pod_states(&self.namespace, service).await {
                    Ok(s) => s,
                    Err(e) => {
                        view.counters.refresh_errors.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                let _ = view.apply(
                    ticket,
                    states,
                    self.config.stale_after(),
                    self.config.slow_start(),
                );
                view.loaded.store(true, Ordering::Release);
            }
        }
        Ok(view)
    }

    /// Drops views nobody asked for in a while, and the least recently used beyond
    /// [`MAX_SERVICES`], so a gateway that takes service names from requests cannot grow its
    /// memory or its store reads without bound. A view is idle only after every cache entry
    /// made from it has expired (and its stale-if-error window passed), so no live entry
    /// depends on an evicted view; a later call for the service reads it afresh.
    fn evict_idle(&self) {
        let now = self.since_epoch_ms();
        let idle = self.idle_after().as_millis() as u64;
        let mut map = self.services.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, v| now.saturating_sub(v.last_used_ms.load(Ordering::Relaxed)) < idle);
        if map.len() > MAX_SERVICES {
            let mut by_use: Vec<(u64, String)> = map
                .iter()
                .map(|(k, v)| (v.last_used_ms.load(Ordering::Relaxed), k.clone()))
                .collect();
            by_use.sort_unstable();
            for (_, k) in by_use.into_iter().take(map.len() - MAX_SERVICES) {
                map.remove(&k);
            }
        }
    }

    /// How long a view may go unused before it is evicted: ten periods, and never less than
    /// a temporary link's lifetime plus a period (every cache entry from it is gone by then).
    fn idle_after(&self) -> Duration {
        let temp = Duration::from_secs(self.config.temp_link_info_cache_time_seconds);
        (self.config.period() * 10).max(temp + self.config.period())
    }

    fn since_epoch_ms(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.epoch)
            .as_millis() as u64
    }

    /// Services this route info keeps a view of (for tests and diagnostics).
    pub fn service_count(&self) -> usize {
        self.services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Re-reads the snapshots of every service in use; reports routing-state changes.
    pub(crate) async fn refresh_all(&self) {
        self.evict_idle();
        let views: Vec<Arc<ServiceView>> = {
            let map = self.services.read().unwrap_or_else(|p| p.into_inner());
            map.values()
                .filter(|v| v.loaded.load(Ordering::Acquire))
                .cloned()
                .collect()
        };
        for view in views {
            if let Err(e) = self.refresh(&view).await {
                tracing::warn!(namespace = %self.namespace, service = %view.name, error = %e,
                    "pod state refresh failed; keeping the last snapshot");
            }
            self.report_placements(&view).await;
        }
    }

    /// Adds this gateway's placements since the last report to the store's totals (one
    /// pipelined `HINCRBY` per pod placed on; nothing when there were none). A store that
    /// refuses it (an ACL without `HINCRBY`) is not asked again; a failure is retried at the
    /// next period.
    async fn report_placements(&self, view: &ServiceView) {
        if self.placements_refused.load(Ordering::Relaxed) {
            return;
        }
        let counts = view.counters.unreported();
        if counts.is_empty() {
            return;
        }
        match self
            .store
            .add_placements(&self.namespace, &view.name, &counts)
            .await
        {
            Ok(()) => view.counters.reported(&counts),
            Err(e) if e.kind() == ErrorKind::StoreError => {
                self.placements_refused.store(true, Ordering::Relaxed);
                tracing::warn!(namespace = %self.namespace, error = %e,
                    "the store refused the placement report; the dashboard shows no placement rates for this gateway");
            }
            Err(_) => {} // unreachable or slow: the counts wait for the next period
        }
    }

    async fn refresh(&self, view: &ServiceView) -> Result<()> {
        let ticket = view.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        view.counters.refreshes.fetch_add(1, Ordering::Relaxed);
        let read = self.store.pod_states(&self.namespace, &view.name).await;
        if read.is_err() {
            view.counters.refresh_errors.fetch_add(1, Ordering::Relaxed);
        }
        let states = match read {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout) => {
                // The store cannot be reached: freeze liveness (pods keep the ages they had at
                // the last good read) rather than declare everyone dead. Any other error (the
                // store answered, e.g. an ACL refusal or a wrong-typed key) freezes nothing:
                // pods age out as if silent, so a crashed pod is not kept alive forever.
                let applied = view.applied.lock().unwrap_or_else(|p| p.into_inner());
                if applied.ticket < ticket {
                    let old = view.snapshot.load_full();
                    view.install(old.frozen(self.config.stale_after(), self.clock.now()));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let Some(changes) = view.apply(
            ticket,
            states,
            self.config.stale_after(),
            self.config.slow_start(),
        ) else {
            return Ok(()); // a newer read is in force already
        };
        if !changes.is_empty() {
            let listeners: Vec<Listener> = self
                .listeners
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(_, l)| l.clone())
                .collect();
            for change in &changes {
                tracing::info!(service = %change.service, pod = change.pod_index,
                    old = ?change.old, new = ?change.new, "pod routing state changed");
                for l in &listeners {
                    // A listener that panics must not stop the refresh loop or other listeners.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(change)));
                    if r.is_err() {
                        tracing::error!("a routing-state listener panicked");
                    }
                }
            }
        }
        Ok(())
    }

    /// Registers `f`, called (on the library's runtime threads) for each routing-state change
    /// a refresh observes. Returns an id for [`RouteInfo::remove_listener`].
    pub fn on_routing_state_changed(
        &self,
        f: impl Fn(&RoutingStateChange) + Send + Sync + 'static,
    ) -> u64 {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, Arc::new(f)));
        id
    }

    /// Removes a listener; returns whether it was registered.
    pub fn remove_listener(&self, id: u64) -> bool {
        let mut l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let before = l.len();
        l.retain(|(i, _)| *i != id);
        l.len() != before
    }

    /// Chooses a pod for a new user of `view`'s service and counts the placement against it
    /// (so that p2c spreads many placements made from one snapshot). The count is tentative:
    /// it stays only if the reservation is kept (the store created the link); dropping the
    /// reservation takes it back.
    pub(crate) fn reserve(&self, view: &ServiceView, uid: &str) -> Result<Option<Reservation>> {
        let snap = view.snapshot.load_full();
        let sequence = view.sequence.fetch_add(1, Ordering::Relaxed);
        let Some(pod) = self.pick(view, &snap, uid, sequence)? else {
            return Ok(None);
        };
        let Some(p) = snap.pod(pod) else {
            return Ok(None);
        };
        p.placed.fetch_add(1, Ordering::Relaxed);
        Ok(Some(Reservation {
            snap,
            pod,
            kept: false,
        }))
    }

    /// The pod a new user would get now, counting nothing.
    pub(crate) fn choose(&self, view: &ServiceView, uid: &str) -> Result<Option<u32>> {
        let snap = view.snapshot.load();
        self.pick(view, &snap, uid, view.sequence.load(Ordering::Relaxed))
    }

    fn pick(
        &self,
        view: &ServiceView,
        snap: &Snapshot,
        uid: &str,
        sequence: u64,
    ) -> Result<Option<u32>> {
        // Cloned, so a custom policy runs without the lock held.
        let placement = self.placement_of(&view.name);
        if matches!(placement, Placement::PowerOfTwoChoices) {
            if let Some(pod) = view.power_of_two_fast(snap, self.config.load_range) {
                return Ok(pod);
            }
        }
        let candidates = view.candidates(snap, self.config.load_range);
        let request = PlacementRequest {
            namespace: &self.namespace,
            uid,
            service: &view.name,
            sequence,
        };
        Ok(placement
            .choose(&candidates, &request)?
            .map(|i| candidates[i].pod_index))
    }

    /// Places new users of `service` with `placement` instead of the configured policy.
    pub fn set_service_placement(&self, service: &str, placement: Placement) -> Result<()> {
        ident::check_service("service", service)?;
        placement.validate()?;
        self.placements
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), placement);
        Ok(())
    }

    /// Alive pods of `service` (SPEC §1), sorted.
    pub async fn alive_pods(&self, service: &str) -> Result<Vec<u32>> {
        let v = self.checked_service(service).await?;
        Ok(v.pods_where(|p, now| p.is_alive(now)))
    }

    /// Routable pods of `service` (alive and `READY`), sorted.
    pub async fn routable_pods(&self, service: &str) -> Result<Vec<u32>> {
        let v = self.checked_service(service).await?;
        Ok(v.pods_where(|p, now| p.effective(now) == Some(RoutingState::Ready)))
    }

    /// Whether `pod` of `service` is alive.
    pub async fn is_pod_alive(&self, service: &str, pod: u32) -> Result<bool> {
        Ok(self.checked_service(service).await?.is_alive(pod))
    }

    /// Whether `pod` of `service` is routable.
    pub async fn is_pod_routable(&self, service: &str, pod: u32) -> Result<bool> {
        let v = self.checked_service(service).await?;
        let snap = v.snapshot.load();
        Ok(snap.pod(pod).and_then(|p| p.effective(self.clock.now())) == Some(RoutingState::Ready))
    }

    /// The pod a new user of `service` would get now (does not count as a placement).
    pub async fn best_pod(&self, service: &str) -> Result<u32> {
        let v = self.checked_service(service).await?;
        self.choose(&v, "")?.ok_or_else(|| no_pod(service))
    }

    /// The pod states of `service` as of the last snapshot.
    pub async fn pod_states(&self, service: &str) -> Result<Vec<PodState>> {
        let v = self.checked_service(service).await?;
        let snap = v.snapshot.load();
        Ok(snap.pods.iter().map(|p| p.state).collect())
    }

    /// Re-reads `service`'s snapshot now if this route info holds one (a pod event).
    pub(crate) async fn refresh_if_loaded(&self, service: &str) {
        let view = {
            let map = self.services.read().unwrap_or_else(|p| p.into_inner());
            map.get(service)
                .filter(|v| v.loaded.load(Ordering::Acquire))
                .cloned()
        };
        if let Some(view) = view {
            if let Err(e) = self.refresh(&view).await {
                tracing::warn!(namespace = %self.namespace, service, error = %e,
                    "pod state refresh after an event failed; keeping the last snapshot");
            }
        }
    }

    /// Before a placement answers `NO_AVAILABLE_POD` from `view`: re-reads the snapshot if it is
    /// over a second old, at most once a second per service; returns whether the caller should
    /// look again (a re-read was made, by it or by a concurrent placement it waited for). Pods
    /// that republish without changing their routing state send no event (after a store outage,
    /// say: they were stale at the last read and are fresh now), and a service must not stay
    /// unroutable for a whole period because of one old read.
    pub(crate) async fn reread_if_old(&self, view: &ServiceView) -> bool {
        const EVERY: Duration = Duration::from_secs(1);
        let fresh = |now: Instant| {
            view.snapshot
                .load()
                .read_at
                .is_some_and(|at| now.saturating_duration_since(at) < EVERY)
        };
        if fresh(self.clock.now()) {
            return false;
        }
        // One re-read at a time per service; the others wait for it and use its snapshot.
        let _one = view.load_lock.lock().await;
        if fresh(self.clock.now()) {
            return true; // re-read meanwhile
        }
        let now_ms = self.since_epoch_ms().max(1);
        let last = view.reread_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < EVERY.as_millis() as u64 {
            return false; // a re-read failed within the second (the store is down)
        }
        view.reread_ms.store(now_ms, Ordering::Relaxed);
        self.refresh(view).await.is_ok()
    }

    /// Re-reads `service`'s snapshot now instead of waiting for the next period.
    pub async fn refresh_service(&self, service: &str) -> Result<()> {
        let v = self.checked_service(service).await?;
        self.refresh(&v).await
    }

    /// The workload state of `service` (`None` if never set).
    pub async fn get_workload_state(&self, service: &str) -> Result<Option<String>> {
        self.store
            .get_workload_state(&self.namespace, service)
            .await
    }

    /// Sets the workload state of `service`.
    pub async fn set_workload_state(&self, service: &str, state: &str) -> Result<()> {
        self.store
            .set_workload_state(&self.namespace, service, state)
            .await
    }

    /// Workload states of many services, in input order.
    pub async fn batch_get_workload_state<S: AsRef<str>>(
        &self,
        services: &[S],
    ) -> Result<Vec<Option<String>>> {
        self.store
            .batch_get_workload_state(&self.namespace, services)
            .await
    }

    /// Whether `service`'s workload state is `READY`.
    pub async fn is_workload_ready(&self, service: &str) -> Result<bool> {
        Ok(self.get_workload_state(service).await?.as_deref() == Some("READY"))
    }

    /// Makes `tag` stand for `service` in this namespace.
    pub async fn set_global_service_name_tag(&self, tag: &str, service: &str) -> Result<()> {
        self.store.set_tag(&self.namespace, tag, service).await
    }

    /// The service `tag` stands for.
    pub async fn get_service_name_by_tag(&self, tag: &str) -> Result<Option<String>> {
        self.store.get_tag(&self.namespace, tag).await
    }

    async fn checked_service(&self, service: &str) -> Result<Arc<ServiceView>> {
        ident::check_service("service", service)?;
        self.service(service).await
    }

    /// Starts the refresh loop on the shared runtime; it ends when `stop` fires or the
    /// route info is dropped.
    /// Each counted service's counters and the pods of its snapshot in force.
    pub(crate) fn service_metrics(&self) -> Vec<ServiceMetrics> {
        let now = self.clock.now();
        let views: HashMap<String, Arc<ServiceView>, foldhash::fast::RandomState> = self
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.metrics
            .services()
            .into_iter()
            .map(|(service, c)| {
                let snap = views.get(&service).map(|v| v.snapshot.load_full());
                let pods = snap
                    .iter()
                    .flat_map(|snap| snap.pods.iter().map(move |p| (snap, p)))
                    .map(|(snap, p)| PodMetrics {
                        pod_index: p.state.pod_index,
                        state: match p.effective(now) {
                            Some(RoutingState::Ready) => "routable",
                            Some(_) => "draining",
                            None => "dead",
                        }
                        .to_string(),
                        routing_state: p.state.routing_state.as_str().to_string(),
                        load: p.state.load,
                        weight: p.state.weight,
                        age_seconds: snap.age_seconds(p, now),
                    })
                    .collect();
                ServiceMetrics {
                    hits: c.hits.get(),
                    misses: c.misses.load(Ordering::Relaxed),
                    stale: c.stale.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    placements: c
                        .placements
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                    snapshot_reads: c.refreshes.load(Ordering::Relaxed),
                    snapshot_read_errors: c.refresh_errors.load(Ordering::Relaxed),
                    snapshot_age_seconds: snap
                        .and_then(|s| s.read_at)
                        .map(|at| now.saturating_duration_since(at).as_secs_f64()),
                    pods,
                    service,
                }
            })
            .collect()
    }

    /// The placement policy in force for `service`.
    pub(crate) fn placement_of(&self, service: &str) -> Placement {
        self.placements
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .cloned()
            .unwrap_or_else(|| self.config.placement.clone())
    }

    /// A dry run of a placement on `view`: every pod with the verdict the good set gave it, and
    /// the pod a new user would get. Counts nothing.
    pub(crate) fn explain_pods(
        &self,
        view: &ServiceView,
        uid: &str,
    ) -> Result<(Vec<ExplainedPod>, Option<u32>, Option<f64>)> {
        let now = self.clock.now();
        let snap = view.snapshot.load_full();
        let routable = |p: &PodView| p.effective(now) == Some(RoutingState::Ready);
        let bound = snap
            .pods
            .iter()
            .filter(|p| routable(p))
            .map(|p| p.state.load)
            .min()
            .map(|min| (min, min.saturating_add(self.config.load_range)));
        let pods = snap
            .pods
            .iter()
            .map(|p| {
                let (verdict, reason) = match (p.effective(now), bound) {
                    (None, _) if p.state.routing_state == RoutingState::Shutdown => {
                        ("dead", "shut down".to_string())
                    }
                    (None, _) => (
                        "dead",
                        format!(
                            "last published {:.1} s ago, longer than stale_after ({:.1} s)",
                            snap.age_seconds(p, now),
                            self.config.stale_after().as_secs_f64()
                        ),
                    ),
                    (Some(RoutingState::Ready), Some((min, max))) if p.state.load > max => (
                        "over_load_range",
                        format!(
                            "load {} is above the least loaded pod's {min} + load_range {}",
                            p.state.load, self.config.load_range
                        ),
                    ),
                    (Some(RoutingState::Ready), _) => match p.ramp {
                        Some((from, until)) if now < until => {
                            let r = now.saturating_duration_since(from).as_secs_f64()
                                / until.saturating_duration_since(from).as_secs_f64();
                            (
                                "warming",
                                format!(
                                    "slow start: a candidate with probability {:.0}% for {:.1} s more",
                                    r * 100.0,
                                    until.saturating_duration_since(now).as_secs_f64()
                                ),
                            )
                        }
                        _ => ("kept", "routable, within the load range".to_string()),
                    },
                    (Some(state), _) => (
                        "not_routable",
                        format!("publishes {state}: keeps its users, takes no new ones"),
                    ),
                };
                ExplainedPod {
                    pod_index: p.state.pod_index,
                    load: p.state.load,
                    placed: p.placed.load(Ordering::Relaxed),
                    routing_state: p.state.routing_state.as_str().to_string(),
                    alive: p.is_alive(now),
                    age_seconds: snap.age_seconds(p, now),
                    weight: p.state.weight,
                    verdict: verdict.to_string(),
                    reason,
                }
            })
            .collect();
        let chosen = self.choose(view, uid)?;
        let age = snap
            .read_at
            .map(|at| now.saturating_duration_since(at).as_secs_f64());
        Ok((pods, chosen, age))
    }

    pub(crate) fn spawn_refresh(self: &Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let weak: Weak<RouteInfo> = Arc::downgrade(self);
        let period = self.config.period();
        self.clock.handle().spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tick.tick() => {}
                }
                let Some(info) = weak.upgrade() else { return };
                info.refresh_all().await;
            }
        });
    }
}

/// Pods of `previous` missing from `states` keep their last known state (and, in `apply`, their
/// liveness deadline), so they age out like any silent pod. A state does not vanish in normal
/// operation (pods publish `SHUTDOWN`, they never delete); it does when Redis restarts empty,
/// and then a pod must not look dead (and lose its cached users) just because it has not
/// republished yet. Returns the states and the indices of the vanished pods.
fn keep_vanished(mut states: PodStates, previous: &Snapshot) -> (PodStates, Vec<u32>) {
    let missing: Vec<PodState> = previous
        .pods
        .iter()
        .filter(|p| {
            states
                .pods
                .binary_search_by_key(&p.state.pod_index, |s| s.pod_index)
                .is_err()
        })
        .map(|p| p.state)
        .collect();
    let vanished = missing.iter().map(|p| p.pod_index).collect();
    if !missing.is_empty() {
        states.pods.extend(missing);
        states.pods.sort_by_key(|p| p.pod_index);
    }
    (states, vanished)
}

/// A placement counted against a pod of one snapshot until the store says whether it created
/// the link: [`Reservation::keep`] if it did; dropped otherwise (an existing link won, the
/// call failed or was cancelled), which takes the count back. SPEC §5: only accepted
/// placements count.
pub(crate) struct Reservation {
    snap: Arc<Snapshot>,
    pub pod: u32,
    kept: bool,
}

impl Reservation {
    /// The store created the link: the placement counts.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            if let Some(p) = self.snap.pod(self.pod) {
                p.placed.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

pub(crate) fn no_pod(service: &str) -> Error {
    Error::new(
        ErrorKind::NoAvailablePod,
        format!("service {service:?} has no routable pod"),
    )
}

/// Compares `new` with what was last reported (`seen`) and records the new states.
fn diff(
    service: &str,
    seen: &mut BTreeMap<u32, RoutingState>,
    new: &Snapshot,
    now: Instant,
) -> Vec<RoutingStateChange> {
    let current: BTreeMap<u32, RoutingState> = new
        .pods
        .iter()
        .filter_map(|p| Some((p.state.pod_index, p.effective(now)?)))
        .collect();
    let mut out = Vec::new();
    let pods: std::collections::BTreeSet<u32> =
        seen.keys().chain(current.keys()).copied().collect();
    for pod in pods {
        let (old, new) = (seen.get(&pod).copied(), current.get(&pod).copied());
        if old != new {
            out.push(RoutingStateChange {
                service: service.to_string(),
                pod_index: pod,
                old,
                new,
            });
        }
    }
    *seen = current;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(age_ms: u64, at: Instant) -> Snapshot {
        let pod = PodState {
            pod_index: 0,
            load: 0,
            update_ms: 1_000_000 - age_ms,
            routing_state: RoutingState::Ready,
            weight: crate::pod_state::DEFAULT_WEIGHT,
        };
        let states = PodStates {
            now_ms: 1_000_000,
            pods: vec![pod],
        };
        Snapshot::new(states, Duration::from_secs(5), at)
    }

    /// Re-reads that each move a deadline earlier by less than the slack move the front
    /// epochs once their sum exceeds it (an entry from the first read would outlive the pod).
    #[tokio::test]
    async fn liveness_cuts_add_up_across_re_reads() {
        let store = Store::memory();
        let front = Arc::new(FrontEpochs::new(store.clock()));
        let route = RouteInfo::new(
            store,
            "ns".into(),
            Arc::new(BaseConfig::default()),
            Some(front.clone()),
        );
        let view = route.service("room").await.unwrap();
        let epoch = || front.words()[0].load(Ordering::Acquire);
        let at = Instant::now();
        view.install(read(0, at));
        let e0 = epoch();
        view.install(read(300, at)); // 300 ms earlier: within the slack
        assert_eq!(epoch(), e0, "a move within the slack voided the front");
        view.install(read(600, at)); // 600 ms below the first read's deadline
        assert_ne!(
            epoch(),
            e0,
            "the cuts added up past the slack and nothing moved"
        );
        let e1 = epoch();
        view.install(read(300, at)); // later again: nothing to void
        assert_eq!(epoch(), e1);
        view.install(read(5_000, at)); // stale: dead
        assert_ne!(epoch(), e1, "a pod's death voided nothing");
    }
}
