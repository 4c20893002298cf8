//! What the simulator (`stateful-route-sim`, feature `sim`) needs from inside the crate: a
//! backend that wraps a real one and injects outages, partitions and slow calls, with an
//! event stream of its own that breaks (a gap) while its client cannot reach the store, as a
//! Redis subscriber connection would.
//!
//! Nothing here changes what a call does when it goes through: the wrapped backend (the memory
//! store, in the simulator) runs it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::config::{Link, LinkTtl, RoutingState, TrySetOutcome};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{Event, EventHub, Subscription};
use crate::store::{LinkClaim, LinkRef, RawPodStates, StoreBackend};

/// A fault switch: while `down`, every call through a backend that watches it fails with
/// `STORE_UNAVAILABLE`; every call first waits `delay_ms` (slow calls).
#[derive(Debug, Default)]
pub struct Switch {
    down: AtomicBool,
    delay_ms: AtomicU64,
}

impl Switch {
    /// Whether calls fail.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Takes the store down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    /// The added latency of every call.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }

    /// Sets the added latency.
    pub fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
    }
}

/// A link this backend's client created (a placement the store accepted), with when the
/// client sent the call that created it (virtual ms since the clock's start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    /// The user.
    pub uid: String,
    /// The pod linked.
    pub pod: u32,
    /// When the call was sent.
    pub sent_ms: u64,
}

/// A backend that passes every call to `inner` unless one of its switches is down.
pub struct FaultyBackend {
    inner: Arc<dyn StoreBackend>,
    /// The store's own switch (an outage of the store) and this client's (a partition).
    switches: Vec<Arc<Switch>>,
    clock: Clock,
    origin: std::time::Instant,
    hub: Option<Arc<EventHub>>,
    namespaces: BTreeSet<String>,
    /// The relay from the inner store's events (kept while this backend lives).
    relay: Mutex<Vec<Subscription>>,
    cut: Arc<AtomicBool>,
    calls: AtomicU64,
    placed: Mutex<Vec<Placed>>,
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("calls", &self.calls.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FaultyBackend {
    /// Wraps `inner`, failing calls while any of `switches` is down. With `namespaces`, the
    /// wrapper relays the inner store's events of those namespaces through a stream of its own
    /// that has a gap while a switch is down (call [`FaultyBackend::sync_stream`] after flipping
    /// one); without, it has no events.
    pub fn new(
        inner: Arc<dyn StoreBackend>,
        switches: Vec<Arc<Switch>>,
        namespaces: &[&str],
    ) -> Arc<FaultyBackend> {
        let clock = inner.clock();
        let namespaces: BTreeSet<String> = namespaces.iter().map(|s| s.to_string()).collect();
        let hub = (!namespaces.is_empty() && inner.events().is_some()).then(|| {
            let hub = EventHub::remote(Duration::ZERO);
            hub.resumed(&namespaces);
            hub
        });
        let me = Arc::new(FaultyBackend {
            origin: clock.now(),
            clock,
            inner,
            switches,
            hub,
            namespaces,
            relay: Mutex::new(Vec::new()),
            cut: Arc::new(AtomicBool::new(false)),
            calls: AtomicU64::new(0),
            placed: Mutex::new(Vec::new()),
        });
        if let (Some(mine), Some(theirs)) = (me.hub.clone(), me.inner.events()) {
            let cut = me.cut.clone();
            let subs: Vec<Subscription> = me
                .namespaces
                .iter()
                .map(|ns| {
                    let (mine, cut, ns2) = (mine.clone(), cut.clone(), ns.clone());
                    theirs.subscribe(
                        ns,
                        Arc::new(move |e: &Event| {
                            if matches!(e, Event::Link(_) | Event::Pod { .. })
                                && !cut.load(Ordering::Relaxed)
                            {
                                mine.deliver(&ns2, e);
                            }
                        }),
                    )
                })
                .collect();
            *me.relay.lock().unwrap_or_else(|p| p.into_inner()) = subs;
        }
        me
    }

    fn is_down(&self) -> bool {
        self.switches.iter().any(|s| s.is_down())
    }

    /// Brings the event stream in line with the switches: a gap when one went down, a resume
    /// when all are up again. Returns whether the stream changed.
    pub fn sync_stream(&self) -> bool {
        let Some(hub) = &self.hub else { return false };
        let down = self.is_down();
        if self.cut.swap(down, Ordering::Relaxed) == down {
            return false;
        }
        if down {
            hub.gap();
        } else {
            hub.resumed(&self.namespaces);
        }
        true
    }

    /// Calls made through this backend.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The placements this backend's client made since the last take.
    pub fn take_placed(&self) -> Vec<Placed> {
        std::mem::take(&mut *self.placed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn elapsed_ms(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.origin)
            .as_millis() as u64
    }

    /// Counts the call, waits the switches' delay, fails if a switch is down.
    async fn enter(&self) -> Result<()> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let delay = self
            .switches
            .iter()
            .map(|s| s.delay())
            .max()
            .unwrap_or_default();
        if !delay.is_zero() {
            // On the clock's runtime, whichever runtime polls this call.
            let sleep = {
                let _in = self.clock.handle().enter();
                tokio::time::sleep(delay)
            };
            sleep.await;
        }
        if self.is_down() {
            return Err(Error::new(
                ErrorKind::StoreUnavailable,
                "simulated outage: the store cannot be reached",
            ));
        }
        Ok(())
    }

    fn record(&self, uid: &str, claim: &LinkClaim, sent_ms: u64) {
        if claim.created {
            self.placed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Placed {
                    uid: uid.to_string(),
                    pod: claim.link.pod_index,
                    sent_ms,
                });
        }
    }
}

#[async_trait]
impl StoreBackend for FaultyBackend {
    async fn set_link(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Option<u32>> {
        self.enter().await?;
        self.inner.set_link(link, pod, ttl).await
    }

    async fn set_link_if_absent(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let sent = self.elapsed_ms();
        self.enter().await?;
        let claim = self.inner.set_link_if_absent(link, pod, ttl).await?;
        self.record(link.uid, &claim, sent);
        Ok(claim)
    }

    async fn try_set_link(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome> {
        self.enter().await?;
        self.inner.try_set_link(link, pod, ttl).await
    }

    async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let sent = self.elapsed_ms();
        self.enter().await?;
        let claim = self
            .inner
            .replace_temporary_link(link, expected, pod, ttl)
            .await?;
        self.record(link.uid, &claim, sent);
        Ok(claim)
    }

    async fn remove_link(
        &self,
        link: LinkRef<'_>,
        only_if: Option<u32>,
        delay_secs: u32,
    ) -> Result<bool> {
        self.enter().await?;
        self.inner.remove_link(link, only_if, delay_secs).await
    }

    async fn get_link(&self, link: LinkRef<'_>) -> Result<Option<Link>> {
        self.enter().await?;
        self.inner.get_link(link).await
    }

    async fn get_link_services(&self, namespace: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        self.enter().await?;
        self.inner.get_link_services(namespace, uid).await
    }

    async fn batch_get_links(
        &self,
        namespace: &str,
        uids: &[&str],
        service: &str,
    ) -> Result<Vec<Option<u32>>> {
        self.enter().await?;
        self.inner.batch_get_links(namespace, uids, service).await
    }

    async fn publish_pod_state(
        &self,
        namespace: &str,
        service: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
        weight: u32,
    ) -> Result<u64> {
        self.enter().await?;
        self.inner
            .publish_pod_state(namespace, service, pod, load, routing, weight)
            .await
    }

    async fn pod_states(&self, namespace: &str, service: &str) -> Result<RawPodStates> {
        self.enter().await?;
        self.inner.pod_states(namespace, service).await
    }

    async fn set_workload_state(&self, namespace: &str, service: &str, state: &str) -> Result<()> {
        self.enter().await?;
        self.inner
            .set_workload_state(namespace, service, state)
            .await
    }

    async fn workload_states(
        &self,
        namespace: &str,
        services: &[&str],
    ) -> Result<Vec<Option<String>>> {
        self.enter().await?;
        self.inner.workload_states(namespace, services).await
    }

    async fn set_tag(&self, namespace: &str, tag: &str, service: &str) -> Result<()> {
        self.enter().await?;
        self.inner.set_tag(namespace, tag, service).await
    }

    async fn get_tag(&self, namespace: &str, tag: &str) -> Result<Option<String>> {
        self.enter().await?;
        self.inner.get_tag(namespace, tag).await
    }

    async fn set_cordon(
        &self,
        namespace: &str,
        service: &str,
        pods: &[u32],
        on: bool,
    ) -> Result<Vec<u32>> {
        self.enter().await?;
        self.inner.set_cordon(namespace, service, pods, on).await
    }

    async fn cordoned(&self, namespace: &str, service: &str) -> Result<Vec<u32>> {
        self.enter().await?;
        self.inner.cordoned(namespace, service).await
    }

    async fn add_placements(
        &self,
        namespace: &str,
        service: &str,
        counts: &[(u32, u64)],
    ) -> Result<()> {
        self.enter().await?;
        self.inner.add_placements(namespace, service, counts).await
    }

    async fn placements(&self, namespace: &str, service: &str) -> Result<BTreeMap<u32, u64>> {
        self.enter().await?;
        self.inner.placements(namespace, service).await
    }

    async fn services(&self, namespace: &str) -> Result<Vec<String>> {
        self.enter().await?;
        self.inner.services(namespace).await
    }

    fn events(&self) -> Option<Arc<EventHub>> {
        self.hub.clone()
    }

    fn clock(&self) -> Clock {
        self.clock.clone()
    }
}
