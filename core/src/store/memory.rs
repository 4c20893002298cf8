//! The embedded store: SPEC's semantics inside one process.
//!
//! It keeps the same keys and values as Redis (strings and hashes with millisecond expiry),
//! so every operation is written once against the same model. Each operation runs under one
//! lock, which makes it atomic exactly as a Lua script is in Redis. The clock is the
//! process's wall clock: within one process that is the store's clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{LinkClaim, LinkRef, RawPodStates, StoreBackend};
use crate::clock::Clock;
use crate::config::{Link, LinkTtl, RoutingState, TrySetOutcome};
use crate::error::{Error, Result};
use crate::events::{Event, EventHub, LinkChange};
use crate::keys::KeySpace;
use crate::pod_state::{self, parse_pod};

/// Most expired keys one write reclaims (reads drop expired keys they meet too). Expiry is
/// incremental, as in Redis: no operation ever walks the whole map under the lock.
const SWEEP_PER_WRITE: usize = 16;

#[derive(Debug)]
enum Value {
    Str(String),
    Hash(BTreeMap<String, String>),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Data {
    map: HashMap<String, Entry>,
    /// Every expiry ever set, soonest first. An entry whose key has since changed its expiry
    /// (or gone) is skipped when it comes up.
    expiries: BinaryHeap<Reverse<(u64, String)>>,
    /// The store's clock when the lock was taken (the time of the operation under way).
    now: u64,
}

/// The in-memory backend of [`Store::memory`](super::Store::memory).
#[derive(Debug)]
pub struct MemoryBackend {
    keys: KeySpace,
    data: Mutex<Data>,
    hub: Option<Arc<EventHub>>,
    clock: Clock,
}

impl Data {
    fn live(&mut self, key: &str, now: u64) -> Option<&mut Entry> {
        let expired =
            matches!(self.map.get(key), Some(Entry { expires_ms: Some(t), .. }) if *t <= now);
        if expired {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    fn get_str(&mut self, key: &str, now: u64) -> Result<Option<(String, Option<u64>)>> {
        match self.live(key, now) {
            None => Ok(None),
            Some(Entry {
                value: Value::Str(s),
                expires_ms,
            }) => Ok(Some((s.clone(), expires_ms.map(|t| t - now)))),
            Some(_) => Err(wrong_type(key)),
        }
    }

    fn hash(&mut self, key: &str, now: u64) -> Result<Option<&mut BTreeMap<String, String>>> {
        match self.live(key, now) {
            None => Ok(None),
            Some(Entry {
                value: Value::Hash(h),
                ..
            }) => Ok(Some(h)),
            Some(_) => Err(wrong_type(key)),
        }
    }

    fn set_str(&mut self, key: String, value: String, expires_ms: Option<u64>) {
        self.wrote();
        if let Some(t) = expires_ms {
            self.expiries.push(Reverse((t, key.clone())));
        }
        self.map.insert(
            key,
            Entry {
                value: Value::Str(value),
                expires_ms,
            },
        );
    }

    fn hset(&mut self, key: &str, field: &str, value: String, now: u64) -> Result<()> {
        self.wrote();
        match self.hash(key, now)? {
            Some(h) => {
                h.insert(field.to_string(), value);
            }
            None => {
                self.map.insert(
                    key.to_string(),
                    Entry {
                        value: Value::Hash(BTreeMap::from([(field.to_string(), value)])),
                        expires_ms: None,
                    },
                );
            }
        }
        Ok(())
    }

    /// HDEL, deleting the hash when it becomes empty (as Redis does).
    fn hdel(&mut self, key: &str, field: &str, now: u64) -> Result<()> {
        if let Some(h) = self.hash(key, now)? {
            h.remove(field);
            if h.is_empty() {
                self.map.remove(key);
            }
        }
        Ok(())
    }

    /// Sets the expiry of an existing key.
    fn expire_at(&mut self, key: &str, at: u64) {
        if let Some(e) = self.map.get_mut(key) {
            e.expires_ms = Some(at);
            self.expiries.push(Reverse((at, key.to_string())));
        }
    }

    /// Reclaims up to [`SWEEP_PER_WRITE`] expired keys, soonest first.
    fn wrote(&mut self) {
        let now = self.now;
        for _ in 0..SWEEP_PER_WRITE {
            match self.expiries.peek() {
                Some(Reverse((t, _))) if *t <= now => {}
                _ => break,
            }
            let Some(Reverse((t, key))) = self.expiries.pop() else {
                break;
            };
            if self.map.get(&key).is_some_and(|e| e.expires_ms == Some(t)) {
                self.map.remove(&key);
            }
        }
    }

    /// Keys held, expired or not, and pending expiries (for tests of the sweep).
    fn sizes(&self) -> (usize, usize) {
        (self.map.len(), self.expiries.len())
    }
}

fn wrong_type(key: &str) -> Error {
    Error::store(format!("key {key:?} holds the wrong kind of value"))
}

/// The claim of a link this operation wrote.
fn written(pod: u32, ttl: LinkTtl) -> LinkClaim {
    LinkClaim {
        link: Link {
            pod_index: pod,
            ttl: match ttl {
                LinkTtl::Persistent => None,
                LinkTtl::Seconds(s) => Some(std::time::Duration::from_secs(s as u64)),
            },
        },
        created: true,
    }
}

/// Whether writing (`pod`, `ttl`) over `prev` changes what a gateway may have cached: another
/// pod, another kind, or a shorter lifetime (the scripts apply the same rule).
pub(crate) fn changes(prev: Option<Link>, pod: u32, ttl: LinkTtl) -> bool {
    match (prev, ttl) {
        (None, _) => false,
        (Some(p), _) if p.pod_index != pod => true,
        (Some(p), LinkTtl::Persistent) => !p.is_persistent(),
        (Some(p), LinkTtl::Seconds(s)) => {
            p.ttl.is_none_or(|t| u128::from(s) * 1000 < t.as_millis())
        }
    }
}

fn link_of(value: &str, pttl_ms: Option<u64>, key: &str) -> Result<Link> {
    Ok(Link {
        pod_index: parse_pod(key, value)?,
        ttl: pttl_ms.map(std::time::Duration::from_millis),
    })
}

impl MemoryBackend {
    /// An empty store with keys under `keys`.
    pub fn new(keys: KeySpace) -> Self {
        MemoryBackend {
            keys,
            data: Mutex::new(Data::default()),
            hub: Some(EventHub::in_process()),
            clock: Clock::system(),
        }
    }

    /// The same store on `clock` (a virtual one for simulation; see [`Clock`]).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    /// The same store without change propagation.
    pub fn without_events(mut self) -> Self {
        self.hub = None;
        self
    }

    /// Delivers a link event (after the data lock is released, before the call returns: a
    /// listener may call the store).
    fn link_event(&self, link: LinkRef<'_>, pod: Option<u32>, persistent: bool) {
        if let Some(hub) = &self.hub {
            hub.deliver(
                link.namespace,
                &Event::Link(LinkChange {
                    namespace: link.namespace.to_string(),
                    service: link.service.to_string(),
                    uid: link.uid.to_string(),
                    pod,
                    persistent,
                }),
            );
        }
    }

    /// Live keys, sorted (for tests and diagnostics).
    pub fn keys(&self) -> Vec<String> {
        let now = self.now_ms();
        let d = self.lock();
        let mut keys: Vec<String> = d
            .map
            .iter()
            .filter(|(_, e)| e.expires_ms.is_none_or(|t| t > now))
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Writes a raw string value under `key` (as another tool or an old deployment might),
    /// for tests of how the operations treat values they did not write.
    #[doc(hidden)]
    pub fn insert_raw(&self, key: &str, value: &str) {
        self.lock()
            .set_str(key.to_string(), value.to_string(), None);
    }

    /// Writes a raw hash field under `key`, likewise.
    #[doc(hidden)]
    pub fn insert_raw_field(&self, key: &str, field: &str, value: &str) {
        let _ = self
            .lock()
            .hset(key, field, value.to_string(), self.now_ms());
    }

    /// Keys held (expired ones not yet reclaimed included) and pending expiries.
    #[doc(hidden)]
    pub fn sizes(&self) -> (usize, usize) {
        self.lock().sizes()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        // A panic while holding the lock cannot leave a half-done operation visible:
        // every operation checks before it writes. So a poisoned lock is still usable.
        let mut d = self.data.lock().unwrap_or_else(|p| p.into_inner());
        d.now = self.now_ms();
        d
    }

    /// `set` as the scripts do: string with or without expiry, user hash kept in step.
    fn write_link(
        &self,
        d: &mut Data,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
        now: u64,
    ) -> Result<()> {
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let hash = self.keys.user_links(link.namespace, link.uid);
        match ttl {
            LinkTtl::Persistent => {
                d.set_str(key, pod.to_string(), None);
                d.hset(&hash, link.service, pod.to_string(), now)?;
            }
            LinkTtl::Seconds(s) => {
                d.set_str(key, pod.to_string(), Some(now + s as u64 * 1000));
                d.hdel(&hash, link.service, now)?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl StoreBackend for MemoryBackend {
    async fn set_link(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Option<u32>> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let mut d = self.lock();
        let prev = d
            .get_str(&key, now)?
            .map(|(v, t)| link_of(&v, t, &key))
            .transpose()?;
        self.write_link(&mut d, link, pod, ttl, now)?;
        drop(d);
        if changes(prev, pod, ttl) {
            self.link_event(link, Some(pod), ttl == LinkTtl::Persistent);
        }
        Ok(prev.map(|l| l.pod_index))
    }

    async fn set_link_if_absent(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let mut d = self.lock();
        if let Some((v, pttl)) = d.get_str(&key, now)? {
            return Ok(LinkClaim {
                link: link_of(&v, pttl, &key)?,
                created: false,
            });
        }
        self.write_link(&mut d, link, pod, ttl, now)?;
        Ok(written(pod, ttl))
    }

    async fn try_set_link(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let mut d = self.lock();
        let cur = d
            .get_str(&key, now)?
            .map(|(v, t)| link_of(&v, t, &key))
            .transpose()?;
        if let Some(c) = cur {
            if c.is_persistent() && c.pod_index != pod {
                return Ok(TrySetOutcome {
                    accepted: false,
                    owner: c.pod_index,
                    previous: Some(c.pod_index),
                });
            }
        }
        self.write_link(&mut d, link, pod, ttl, now)?;
        drop(d);
        if changes(cur, pod, ttl) {
            self.link_event(link, Some(pod), ttl == LinkTtl::Persistent);
        }
        Ok(TrySetOutcome {
            accepted: true,
            owner: pod,
            previous: cur.map(|c| c.pod_index),
        })
    }

    async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let mut d = self.lock();
        let cur = d
            .get_str(&key, now)?
            .map(|(v, t)| link_of(&v, t, &key))
            .transpose()?;
        match cur {
            Some(c) if c.is_persistent() || c.pod_index != expected => Ok(LinkClaim {
                link: c,
                created: false,
            }),
            _ => {
                self.write_link(&mut d, link, pod, ttl, now)?;
                drop(d);
                if changes(cur, pod, ttl) {
                    self.link_event(link, Some(pod), ttl == LinkTtl::Persistent);
                }
                Ok(written(pod, ttl))
            }
        }
    }

    async fn remove_link(
        &self,
        link: LinkRef<'_>,
        only_if: Option<u32>,
        delay_secs: u32,
    ) -> Result<bool> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let hash = self.keys.user_links(link.namespace, link.uid);
        let mut d = self.lock();
        let cur = d
            .get_str(&key, now)?
            .map(|(v, _)| parse_pod(&key, &v))
            .transpose()?;
        let Some(pod) = cur else {
            if only_if.is_none() {
                d.hdel(&hash, link.service, now)?;
            }
            return Ok(false);
        };
        if only_if.is_some_and(|want| want != pod) {
            return Ok(false);
        }
        d.hdel(&hash, link.service, now)?;
        if delay_secs == 0 {
            d.map.remove(&key);
            drop(d);
            self.link_event(link, None, false);
        } else if let Some(e) = d.map.get(&key) {
            // A delayed remove never lengthens a link (SPEC §4).
            let at = now + delay_secs as u64 * 1000;
            let shortens = e.expires_ms.is_none_or(|t| at < t);
            if shortens {
                d.expire_at(&key, at);
                drop(d);
                self.link_event(link, Some(pod), false);
            }
        }
        Ok(true)
    }

    async fn get_link(&self, link: LinkRef<'_>) -> Result<Option<Link>> {
        let now = self.now_ms();
        let key = self.keys.link(link.namespace, link.uid, link.service);
        let mut d = self.lock();
        d.get_str(&key, now)?
            .map(|(v, t)| link_of(&v, t, &key))
            .transpose()
    }

    async fn get_link_services(&self, namespace: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        let now = self.now_ms();
        let key = self.keys.user_links(namespace, uid);
        let mut d = self.lock();
        let Some(h) = d.hash(&key, now)? else {
            return Ok(BTreeMap::new());
        };
        h.iter()
            .map(|(s, v)| Ok((s.clone(), parse_pod(&key, v)?)))
            .collect()
    }

    async fn batch_get_links(
        &self,
        namespace: &str,
        uids: &[&str],
        service: &str,
    ) -> Result<Vec<Option<u32>>> {
        let now = self.now_ms();
        let mut d = self.lock();
        uids.iter()
            .map(|uid| {
                let key = self.keys.link(namespace, uid, service);
                d.get_str(&key, now)?
                    .map(|(v, _)| parse_pod(&key, &v))
                    .transpose()
            })
            .collect()
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
        let now = self.now_ms();
        let key = self.keys.pod_states(namespace, service);
        let field = pod.to_string();
        let mut d = self.lock();
        let cordoned = d
            .hash(&self.keys.cordon(namespace, service), now)?
            .is_some_and(|h| h.contains_key(&field));
        let routing = match routing {
            RoutingState::Ready if cordoned => RoutingState::DenyNewCall,
            r => r,
        };
        let value = pod_state::format_value(load, now, routing, weight);
        let was = d
            .hash(&key, now)?
            .and_then(|h| h.get(&field).cloned())
            .map(|v| pod_state::parse(&field, &v).ok().map(|s| s.routing_state));
        d.hset(&key, &field, value, now)?;
        drop(d);
        if let Some(hub) = self.hub.as_ref().filter(|_| was != Some(Some(routing))) {
            hub.deliver(
                namespace,
                &Event::Pod {
                    service: service.to_string(),
                    pod,
                    routing,
                },
            );
        }
        Ok(now)
    }

    fn events(&self) -> Option<Arc<EventHub>> {
        self.hub.clone()
    }

    fn clock(&self) -> Clock {
        self.clock.clone()
    }

    async fn set_cordon(
        &self,
        namespace: &str,
        service: &str,
        pods: &[u32],
        on: bool,
    ) -> Result<Vec<u32>> {
        let now = self.now_ms();
        let states = self.keys.pod_states(namespace, service);
        let cordon = self.keys.cordon(namespace, service);
        let mut d = self.lock();
        // Type checks first, so a wrong-typed key changes nothing.
        d.hash(&states, now)?;
        d.hash(&cordon, now)?;
        let mut changed = Vec::new();
        for &pod in pods {
            let field = pod.to_string();
            if !on {
                d.hdel(&cordon, &field, now)?;
                continue;
            }
            d.hset(&cordon, &field, now.to_string(), now)?;
            let current = d.hash(&states, now)?.and_then(|h| h.get(&field).cloned());
            let Some(Ok(state)) = current.map(|v| pod_state::parse(&field, &v)) else {
                continue;
            };
            if state.routing_state == RoutingState::Ready {
                let value = pod_state::format_value(
                    state.load,
                    state.update_ms,
                    RoutingState::DenyNewCall,
                    state.weight,
                );
                d.hset(&states, &field, value, now)?;
                changed.push(pod);
            }
        }
        drop(d);
        if let Some(hub) = &self.hub {
            for &pod in &changed {
                hub.deliver(
                    namespace,
                    &Event::Pod {
                        service: service.to_string(),
                        pod,
                        routing: RoutingState::DenyNewCall,
                    },
                );
            }
        }
        Ok(changed)
    }

    async fn add_placements(
        &self,
        namespace: &str,
        service: &str,
        counts: &[(u32, u64)],
    ) -> Result<()> {
        let now = self.now_ms();
        let key = self.keys.placements(namespace, service);
        let mut d = self.lock();
        for (pod, n) in counts {
            let field = pod.to_string();
            let old: u64 = d
                .hash(&key, now)?
                .and_then(|h| h.get(&field).and_then(|v| v.parse().ok()))
                .unwrap_or(0);
            d.hset(&key, &field, (old + n).to_string(), now)?;
        }
        Ok(())
    }

    async fn placements(&self, namespace: &str, service: &str) -> Result<BTreeMap<u32, u64>> {
        let now = self.now_ms();
        let mut d = self.lock();
        Ok(d.hash(&self.keys.placements(namespace, service), now)?
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn cordoned(&self, namespace: &str, service: &str) -> Result<Vec<u32>> {
        let now = self.now_ms();
        let mut d = self.lock();
        let mut pods: Vec<u32> = d
            .hash(&self.keys.cordon(namespace, service), now)?
            .map(|h| h.keys().filter_map(|k| k.parse().ok()).collect())
            .unwrap_or_default();
        pods.sort_unstable();
        Ok(pods)
    }

    async fn services(&self, namespace: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .keys()
            .iter()
            .filter_map(|k| self.keys.service_of_pod_states(namespace, k))
            .map(str::to_string)
            .collect();
        out.dedup();
        Ok(out)
    }

    async fn pod_states(&self, namespace: &str, service: &str) -> Result<RawPodStates> {
        let now = self.now_ms();
        let key = self.keys.pod_states(namespace, service);
        let mut d = self.lock();
        let fields = match d.hash(&key, now)? {
            Some(h) => h.iter().map(|(f, v)| (f.clone(), v.clone())).collect(),
            None => Vec::new(),
        };
        Ok(RawPodStates {
            now_ms: now,
            fields,
        })
    }

    async fn set_workload_state(&self, namespace: &str, service: &str, state: &str) -> Result<()> {
        let key = self.keys.workload(namespace, service);
        self.lock().set_str(key, state.to_string(), None);
        Ok(())
    }

    async fn workload_states(
        &self,
        namespace: &str,
        services: &[&str],
    ) -> Result<Vec<Option<String>>> {
        let now = self.now_ms();
        let mut d = self.lock();
        services
            .iter()
            .map(|s| {
                Ok(d.get_str(&self.keys.workload(namespace, s), now)?
                    .map(|(v, _)| v))
            })
            .collect()
    }

    async fn set_tag(&self, namespace: &str, tag: &str, service: &str) -> Result<()> {
        let key = self.keys.tag(namespace, tag);
        self.lock().set_str(key, service.to_string(), None);
        Ok(())
    }

    async fn get_tag(&self, namespace: &str, tag: &str) -> Result<Option<String>> {
        let now = self.now_ms();
        Ok(self
            .lock()
            .get_str(&self.keys.tag(namespace, tag), now)?
            .map(|(v, _)| v))
    }
}
