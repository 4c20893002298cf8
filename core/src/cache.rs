//! The gateway's local link cache (SPEC §6), on moka.
//!
//! Bounded by capacity; each entry lives `user_link_info_cache_time_seconds` and never longer
//! than its link's remaining TTL minus the cache margin, so a gateway never routes on a
//! temporary link the store has already forgotten. A lookup builds its key on the stack and
//! allocates nothing: a hit is one string hash, a probe and an `Arc` clone.

use std::borrow::Borrow;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::clock::Clock;
use crate::config::{BaseConfig, Link};
use crate::route_info::ServiceView;

/// Owned cache key: `service`, NUL, `uid` (neither may hold a NUL: services are
/// `[A-Za-z0-9._-]`, uids have no control characters), so one string hash and one compare
/// serve a lookup.
/// Shared (`Arc`): the single-flight map and the cache hold the same allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct LinkKey(Arc<str>);

impl LinkKey {
    pub fn new(service: &str, uid: &str) -> Self {
        with_key(service, uid, |k| LinkKey(Arc::from(k)))
    }
}

impl Borrow<str> for LinkKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Calls `f` with the key of (service, uid), built on the stack when it is short (no
/// allocation on a lookup).
#[inline]
fn with_key<R>(service: &str, uid: &str, f: impl FnOnce(&str) -> R) -> R {
    const STACK: usize = 128;
    let len = service.len() + 1 + uid.len();
    if len <= STACK {
        let mut buf = [0u8; STACK];
        buf[..service.len()].copy_from_slice(service.as_bytes());
        buf[service.len() + 1..len].copy_from_slice(uid.as_bytes());
        // SAFETY: two UTF-8 strings joined by a NUL byte are UTF-8.
        f(unsafe { std::str::from_utf8_unchecked(&buf[..len]) })
    } else {
        let mut k = String::with_capacity(len);
        k.push_str(service);
        k.push('\0');
        k.push_str(uid);
        f(&k)
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

/// Stripes of [`FrontEpochs`].
pub const FRONT_STRIPES: usize = 1024;

/// Blocks of epochs that nothing holds any more. They are never freed: a binding may still
/// read one through a view it took of a dropped driver (it then sees every epoch moved on).
static FRONT_POOL: Mutex<Vec<&'static [AtomicU32]>> = Mutex::new(Vec::new());

/// One block of epochs; back to the pool when the driver and every [`FrontView`] let go (a
/// JavaScript engine refuses two buffers over the same memory, so a block a view may still
/// show is never handed to another driver).
struct Block(&'static [AtomicU32]);

impl Drop for Block {
    fn drop(&mut self) {
        FRONT_POOL
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.0);
    }
}

/// The invalidation epochs a binding-side front cache checks without calling the core
/// (README, "Front caches"): one counter per stripe of (service, uid) keys, bumped *after*
/// every change that can make a cached answer wrong — a cache entry replaced or dropped (a
/// link event, a local write, an eviction), a pod's liveness cut short by a snapshot (a
/// crash, a stop, `SHUTDOWN`), and `close` or a stream resume (every stripe). A front entry
/// taken with [`crate::ClientDriver::compute_front`] is valid while its stripe still holds the
/// epoch read *before* the core's cache was probed, and its lifetime has not passed.
///
/// The memory is 'static (pooled, never freed), so a binding may read it through a view (a
/// `memoryview`, a C pointer) whose lifetime is not tied to the driver's.
pub struct FrontEpochs {
    block: Arc<Block>,
    hasher: foldhash::fast::SeedableRandomState,
}

/// A hold on a driver's epochs for a view that must own what it shows (a JavaScript
/// `ArrayBuffer`): the block is not reused while this lives.
#[derive(Clone)]
pub struct FrontView(Arc<Block>);

impl FrontView {
    pub fn words(&self) -> &'static [AtomicU32] {
        self.0 .0
    }
}

impl fmt::Debug for FrontView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontView").finish_non_exhaustive()
    }
}

impl fmt::Debug for FrontEpochs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontEpochs").finish_non_exhaustive()
    }
}

impl FrontEpochs {
    pub(crate) fn new(clock: &Clock) -> FrontEpochs {
        let reused = FRONT_POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let words = reused
            .unwrap_or_else(|| Box::leak((0..FRONT_STRIPES).map(|_| AtomicU32::new(0)).collect()));
        FrontEpochs {
            block: Arc::new(Block(words)),
            hasher: clock.hasher(),
        }
    }

    /// The epochs, one `u32` per stripe (read them with atomic or plain aligned loads).
    pub fn words(&self) -> &'static [AtomicU32] {
        self.block.0
    }

    /// A hold on the epochs for a view that must own them.
    pub fn view(&self) -> FrontView {
        FrontView(self.block.clone())
    }

    /// The stripe of `key` (`service` NUL `uid`).
    fn stripe_of(&self, key: &str) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one(key) as usize) % FRONT_STRIPES
    }

    /// The stripe of `key` and its epoch now; read before the entry it validates.
    fn read(&self, key: &str) -> (usize, u32) {
        let stripe = self.stripe_of(key);
        (stripe, self.words()[stripe].load(Ordering::Acquire))
    }

    /// Marks `key`'s stripe changed; call after the change.
    fn bump(&self, key: &str) {
        self.bump_stripe(self.stripe_of(key));
    }

    fn bump_stripe(&self, stripe: usize) {
        self.words()[stripe].fetch_add(1, Ordering::Release);
    }

    /// Marks every stripe changed; call after the change.
    pub(crate) fn bump_all(&self) {
        for w in self.words() {
            w.fetch_add(1, Ordering::Release);
        }
    }
}

impl Drop for FrontEpochs {
    fn drop(&mut self) {
        // Whatever a front cache still holds of this driver is stale from now on; the epochs
        // keep counting from here in the driver that gets the block next.
        self.bump_all();
    }
}

/// A cached entry as a front cache may keep it: read by [`LinkCache::get_front`].
pub(crate) struct FrontRead {
    pub link: CachedLink,
    pub stripe: usize,
    pub epoch: u32,
}

/// The cache, or nothing when its capacity is 0.
pub(crate) struct LinkCache {
    cache: Option<Cache<LinkKey, CachedLink, foldhash::fast::SeedableRandomState>>,
    max_lifetime: Duration,
    margin: Duration,
    clock: Clock,
    front: Arc<FrontEpochs>,
}

impl fmt::Debug for LinkCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkCache")
            .field("entries", &self.cache.as_ref().map(|c| c.entry_count()))
            .finish()
    }
}

impl LinkCache {
    pub fn new(config: &BaseConfig, clock: Clock, front: Arc<FrontEpochs>) -> Self {
        let cache = (config.cache_capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(config.cache_capacity)
                // Randomly seeded: uids come from users, so the hash must not be predictable
                // (a virtual clock's seed instead, so that a simulation replays exactly).
                .build_with_hasher(clock.hasher())
        });
        LinkCache {
            cache,
            max_lifetime: Duration::from_secs(config.user_link_info_cache_time_seconds),
            margin: config.cache_margin(),
            clock,
            front,
        }
    }

    /// The entry with its front stripe and that stripe's epoch, read before the probe (so a
    /// change that lands after the read moves the epoch past it).
    #[inline]
    pub fn get_front(&self, service: &str, uid: &str) -> Option<FrontRead> {
        let cache = self.cache.as_ref()?;
        with_key(service, uid, |k| {
            let (stripe, epoch) = self.front.read(k);
            cache.get(k).map(|link| FrontRead {
                link,
                stripe,
                epoch,
            })
        })
    }

    /// The entry, if present and fresh at `now`.
    #[inline]
    pub fn get_at(&self, service: &str, uid: &str, now: Instant) -> Option<CachedLink> {
        let cache = self.cache.as_ref()?;
        with_key(service, uid, |k| cache.get(k)).filter(|c| c.is_fresh(now))
    }

    /// The entry, fresh or not.
    #[inline]
    pub fn get_any(&self, service: &str, uid: &str) -> Option<CachedLink> {
        let cache = self.cache.as_ref()?;
        with_key(service, uid, |k| cache.get(k))
    }

    /// The entry, if present and fresh now.
    pub fn get(&self, service: &str, uid: &str) -> Option<CachedLink> {
        self.get_at(service, uid, self.clock.now())
    }

    /// Caches `link` for as long as SPEC §6 allows (maybe not at all).
    pub fn insert(&self, service: &str, uid: &str, link: Link, view: Arc<ServiceView>) {
        if self.cache.is_some() {
            self.insert_key(LinkKey::new(service, uid), link, view);
        }
    }

    /// [`LinkCache::insert`] with the key already made (`service` NUL `uid`).
    pub fn insert_key(&self, key: LinkKey, link: Link, view: Arc<ServiceView>) {
        let Some(cache) = &self.cache else { return };
        let lifetime = match link.ttl {
            None => self.max_lifetime,
            Some(ttl) => self.max_lifetime.min(ttl.saturating_sub(self.margin)),
        };
        if lifetime.is_zero() {
            cache.invalidate(&*key.0);
            self.front.bump(&key.0);
            return;
        }
        let stripe = self.front.stripe_of(&key.0);
        cache.insert(
            key,
            CachedLink {
                pod: link.pod_index,
                view,
                deadline: self.clock.now() + lifetime,
            },
        );
        self.front.bump_stripe(stripe);
    }

    /// Drops the entry; returns what it held.
    pub fn remove(&self, service: &str, uid: &str) -> Option<u32> {
        let cache = self.cache.as_ref()?;
        with_key(service, uid, |k| {
            let old = cache.remove(k);
            self.front.bump(k);
            old
        })
        .filter(|c| c.is_fresh(self.clock.now()))
        .map(|c| c.pod)
    }

    /// Drops the entry if there is one; returns whether it was fresh. A link event calls this
    /// at every gateway, most of which never cached that user: a read-only probe first, since
    /// moka's `remove` of an absent key costs as much as a write (it walks the bucket's
    /// tombstones under its write path).
    pub fn evict(&self, service: &str, uid: &str) -> bool {
        let Some(cache) = &self.cache else {
            return false;
        };
        with_key(service, uid, |k| {
            let fresh = cache.contains_key(k)
                && cache
                    .remove(k)
                    .is_some_and(|c| c.is_fresh(self.clock.now()));
            // Always: a front cache may hold what moka already evicted for capacity.
            self.front.bump(k);
            fresh
        })
    }

    /// Drops the entry only if it still points to `pod`.
    pub fn remove_if(&self, service: &str, uid: &str, pod: u32) {
        if let Some(c) = &self.cache {
            with_key(service, uid, |k| {
                if c.get(k).is_some_and(|e| e.pod == pod) {
                    c.invalidate(k);
                    self.front.bump(k);
                }
            });
        }
    }

    pub fn clear(&self) {
        if let Some(c) = &self.cache {
            c.invalidate_all();
        }
        self.front.bump_all();
    }

    /// Entries held (approximate, as moka counts).
    pub fn len(&self) -> u64 {
        self.cache.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_short_and_long_are_the_same_key() {
        for uid in ["u", &"x".repeat(126), &"y".repeat(127), &"z".repeat(512)] {
            let owned = LinkKey::new("room", uid);
            let same = with_key("room", uid, |k| {
                <LinkKey as Borrow<str>>::borrow(&owned) == k
            });
            assert!(same, "{}", uid.len());
        }
        // The separator keeps (service, uid) pairs apart.
        assert!(LinkKey::new("ab", "c") != LinkKey::new("a", "bc"));
    }
}
