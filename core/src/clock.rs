//! Time, from one source that a store and every driver on it share.
//!
//! Everything in the core that reads time reads it here: the store's clock (milliseconds since
//! the Unix epoch: the memory store stamps pod states and expiries with it; Redis uses its own
//! `TIME`), the monotonic clock of liveness deadlines, cache lifetimes and slow start, and the
//! runtime whose timers run the periodic loops. A store carries its clock
//! ([`Store::clock`](crate::Store::clock)) and the drivers made on it take theirs from it.
//!
//! The default is the system's clocks and the shared runtime; reading it costs one branch
//! more than `Instant::now()`. A virtual clock ([`Clock::virtual_time`]) is tokio's clock of a
//! runtime of the caller's, built with paused time: tokio then advances it only when every task
//! waits, so a fleet of real drivers runs in virtual time, deterministically (the simulator,
//! `make sim`).

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;

/// Where time comes from. Cheap to clone; clones share one clock.
#[derive(Clone, Default)]
pub struct Clock {
    virt: Option<Arc<Virtual>>,
}

struct Virtual {
    handle: Handle,
    origin: Instant,
    wall_origin_ms: u64,
    /// Steps of the store's clock so far (ms, either sign); the monotonic clock never steps.
    wall_step_ms: AtomicI64,
    seed: u64,
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.virt {
            None => f.write_str("Clock::System"),
            Some(v) => f
                .debug_struct("Clock::Virtual")
                .field("wall_ms", &self.wall_ms())
                .field("seed", &v.seed)
                .finish(),
        }
    }
}

impl Clock {
    /// The system's clocks, with background work on the shared runtime (the default).
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A virtual clock: the monotonic time of the runtime behind `handle` (built with
    /// `start_paused(true)`, on tokio's `test-util` feature, for virtual time), a store's clock
    /// that reads `wall_start_ms` now and advances with it, and `seed` for the hashes that are
    /// otherwise seeded at random. Background work of drivers on this clock runs on `handle`.
    pub fn virtual_time(handle: Handle, wall_start_ms: u64, seed: u64) -> Clock {
        let origin = {
            let _in = handle.enter();
            tokio::time::Instant::now().into_std()
        };
        Clock {
            virt: Some(Arc::new(Virtual {
                handle,
                origin,
                wall_origin_ms: wall_start_ms,
                wall_step_ms: AtomicI64::new(0),
                seed,
            })),
        }
    }

    /// Whether this is a virtual clock.
    pub fn is_virtual(&self) -> bool {
        self.virt.is_some()
    }

    /// The monotonic clock.
    #[inline]
    pub fn now(&self) -> Instant {
        match &self.virt {
            None => Instant::now(),
            Some(v) => v.now(),
        }
    }

    /// The store's clock: milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        match &self.virt {
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            Some(v) => {
                let elapsed = v.now().saturating_duration_since(v.origin).as_millis() as i64;
                let step = v.wall_step_ms.load(Ordering::Relaxed);
                (v.wall_origin_ms as i64)
                    .saturating_add(elapsed)
                    .saturating_add(step)
                    .max(0) as u64
            }
        }
    }

    /// Steps the store's clock of a virtual clock by `delta_ms` (as an NTP step of the Redis
    /// host would); the monotonic clock is unchanged. Returns `false` on the system clock,
    /// which only the operating system steps.
    pub fn step_wall(&self, delta_ms: i64) -> bool {
        match &self.virt {
            None => false,
            Some(v) => {
                v.wall_step_ms.fetch_add(delta_ms, Ordering::Relaxed);
                true
            }
        }
    }

    /// The runtime that runs the background work of drivers on this clock.
    pub fn handle(&self) -> &Handle {
        match &self.virt {
            None => crate::runtime::handle(),
            Some(v) => &v.handle,
        }
    }

    /// The seed of a virtual clock (`None`: the system clock; hashes are seeded at random).
    pub fn seed(&self) -> Option<u64> {
        self.virt.as_ref().map(|v| v.seed)
    }

    /// A hasher for keys that come from users: seeded at random, or from a virtual clock's seed.
    pub(crate) fn hasher(&self) -> foldhash::fast::SeedableRandomState {
        match self.seed() {
            None => foldhash::fast::SeedableRandomState::random(),
            Some(s) => foldhash::fast::SeedableRandomState::with_seed(
                s,
                foldhash::SharedSeed::global_fixed(),
            ),
        }
    }
}

impl Virtual {
    #[inline]
    fn now(&self) -> Instant {
        let _in = self.handle.enter();
        tokio::time::Instant::now().into_std()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_the_systems() {
        let c = Clock::system();
        let before = Instant::now();
        let now = c.now();
        assert!(now >= before && now <= Instant::now());
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(c.wall_ms().abs_diff(wall) < 1000);
        assert!(!c.step_wall(5));
        assert!(!c.is_virtual());
    }

    #[test]
    fn a_virtual_clock_follows_its_runtime_and_steps_only_the_wall() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let c = Clock::virtual_time(rt.handle().clone(), 1_000_000, 7);
        assert_eq!(c.seed(), Some(7));
        let (t0, w0) = (c.now(), c.wall_ms());
        assert!((1_000_000..1_001_000).contains(&w0));
        assert!(c.step_wall(-500_000));
        let w1 = c.wall_ms();
        assert!(w1 < w0 && w0 - w1 >= 499_000, "{w0} {w1}");
        assert!(c.now() >= t0, "the monotonic clock does not step");
    }
}
