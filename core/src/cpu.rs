//! CPU use of this process, for the weighted load (SPEC §5).
//!
//! Reads the process's user + system CPU time (`getrusage`) and divides its growth by the
//! wall time and the number of CPUs: the percent of the machine this process used.

use std::time::Instant;

/// Samples CPU use between two calls.
#[derive(Debug)]
pub struct CpuSampler {
    last_cpu_us: u64,
    last_at: Instant,
    cpus: f64,
}

fn process_cpu_us() -> u64 {
    // SAFETY: getrusage only writes into the zeroed struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

impl CpuSampler {
    /// Starts sampling now.
    pub fn new() -> Self {
        CpuSampler {
            last_cpu_us: process_cpu_us(),
            last_at: Instant::now(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        }
    }

    /// Percent of the machine (0–100) used by this process since the last call.
    pub fn sample(&mut self) -> f64 {
        let cpu = process_cpu_us();
        let now = Instant::now();
        let wall_us = now.duration_since(self.last_at).as_micros() as f64;
        let used = cpu.saturating_sub(self.last_cpu_us) as f64;
        self.last_cpu_us = cpu;
        self.last_at = now;
        if wall_us <= 0.0 {
            return 0.0;
        }
        (used / wall_us / self.cpus * 100.0).clamp(0.0, 100.0)
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_shows_cpu() {
        let mut s = CpuSampler::new();
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        std::hint::black_box(x);
        let pct = s.sample();
        assert!(pct > 1.0 && pct <= 100.0, "{pct}");
    }
}
