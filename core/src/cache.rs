//! The gateway's local link cache (SPEC §6), on moka.
//!
//! Bounded by capacity; each entry lives `user_link_info_cache_time_seconds` and never longer
//! than its link's remaining TTL minus the cache margin, so a gateway never routes on a
//! temporary link the store has already forgotten. Lookups borrow `(service, uid)` as
//! `&dyn KeyView` and allocate nothing: a hit is a hash, a probe and an `Arc` clone.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::config::{BaseConfig, Link};
use crate::route_info::ServiceView;

/// Owned cache key: (service, uid) in the driver's namespace.
#[derive(Clone)]
pub(crate) struct LinkKey {
    service: Box<str>,
    uid: Box<str>,
}

impl LinkKey {
    pub fn new(service: &str, uid: &str) -> Self {
        LinkKey {
            service: service.into(),
            uid: uid.into(),
        }
    }
}

/// Borrowed view of a key, so that `(&str, &str)` can look up a `LinkKey`.
pub(crate) trait KeyView {
    fn parts(&self) -> (&str, &str);
}

impl KeyView for LinkKey {
    fn parts(&self) -> (&str, &str) {
        (&self.service, &self.uid)
    }
}

impl KeyView for (&str, &str) {
    fn parts(&self) -> (&str, &str) {
        (self.0, self.1)
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (s, u) = self.parts();
        s.hash(state);
        u.hash(state);
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

impl Hash for LinkKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state)
    }
}

impl PartialEq for LinkKey {
    fn eq(&self, other: &Self) -> bool {
        self.parts() == other.parts()
    }
}

impl Eq for LinkKey {}

impl<'a> Borrow<dyn KeyView + 'a> for LinkKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

/// A cached link: the pod, the service view that judges its liveness, and the entry's own
/// deadline, checked on every read (an expired entry reads as absent and is dropped). moka
/// bounds the memory by capacity; it keeps no timers, so a hit reads the clock once.
#[derive(Clone)]
pub(crate) struct CachedLink {
    pub pod: u32,
    pub view: Arc<ServiceView>,
    pub deadline: Instant,
}

impl CachedLink {
    /// Whether the entry is still valid at `now`.
    #[inline]
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.deadline
    }
}

/// The cache, or nothing when its capacity is 0.
pub(crate) struct LinkCache {
    cache: Option<Cache<LinkKey, CachedLink, foldhash::fast::RandomState>>,
    max_lifetime: Duration,
    margin: Duration,
}

impl fmt::Debug for LinkCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCache")
            .field("entries", &self.cache.as_ref().map(|c| c.entry_count()))
            .finish()
    }
}

impl LinkCache {
    pub fn new(config: &BaseConfig) -> Self {
        let cache = (config.cache_capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(config.cache_capacity)
                // Randomly seeded: uids come from users, so the hash must not be predictable.
                .build_with_hasher(foldhash::fast::RandomState::default())
        });
        LinkCache {
            cache,
            max_lifetime: Duration::from_secs(config.user_link_info_cache_time_seconds),
            margin: config.cache_margin(),
        }
    }

    /// The entry, if present and fresh at `now`.
    #[inline]
    pub fn get_at(&self, service: &str, uid: &str, now: Instant) -> Option<CachedLink> {
        let key: &dyn KeyView = &(service, uid);
        self.cache.as_ref()?.get(key).filter(|c| c.is_fresh(now))
    }

    /// The entry, fresh or not.
    #[inline]
    pub fn get_any(&self, service: &str, uid: &str) -> Option<CachedLink> {
        let key: &dyn KeyView = &(service, uid);
        self.cache.as_ref()?.get(key)
    }

    /// The entry, if present and fresh now.
    pub fn get(&self, service: &str, uid: &str) -> Option<CachedLink> {
        self.get_at(service, uid, Instant::now())
    }

    /// Caches `link` for as long as SPEC §6 allows (maybe not at all).
    pub fn insert(&self, service: &str, uid: &str, link: Link, view: Arc<ServiceView>) {
        let Some(cache) = &self.cache else { return };
        let lifetime = match link.ttl {
            None => self.max_lifetime,
            Some(ttl) => self.max_lifetime.min(ttl.saturating_sub(self.margin)),
        };
        if lifetime.is_zero() {
            let key: &dyn KeyView = &(service, uid);
            cache.invalidate(key);
            return;
        }
        cache.insert(
            LinkKey::new(service, uid),
            CachedLink {
                pod: link.pod_index,
                view,
                deadline: Instant::now() + lifetime,
            },
        );
    }

    /// Drops the entry; returns what it held.
    pub fn remove(&self, service: &str, uid: &str) -> Option<u32> {
        let key: &dyn KeyView = &(service, uid);
        self.cache
            .as_ref()?
            .remove(key)
            .filter(|c| c.is_fresh(Instant::now()))
            .map(|c| c.pod)
    }

    /// Drops the entry only if it still points to `pod`.
    pub fn remove_if(&self, service: &str, uid: &str, pod: u32) {
        if let Some(c) = &self.cache {
            let key: &dyn KeyView = &(service, uid);
            if c.get(key).is_some_and(|e| e.pod == pod) {
                c.invalidate(key);
            }
        }
    }

    pub fn clear(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
    }

    /// Entries held (approximate, as moka counts).
    pub fn len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}
