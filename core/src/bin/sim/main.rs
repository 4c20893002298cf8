//! `stateful-route-sim`: a fleet of real drivers in one process, in virtual time, by seed
//! (README "Simulation").
//!
//! ```text
//! stateful-route-sim --preset chaos --seed 7            one run: its table, JSON under target/sim/
//! stateful-route-sim --preset chaos --seed 1 --seeds 20 a sweep: one line per seed
//! ```
//!
//! Exit codes: 0 every invariant held; 1 one broke (the seed to replay is printed); 2 usage.

mod presets;
mod world;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;

use presets::Scenario;
use world::{Stats, World};

/// Counts the heap in use, for the memory a cached user costs (the system allocator does the
/// work; RSS cannot show it: freed memory is reused, not returned).
struct Counting;

static HEAP: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a counter is added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HEAP.fetch_sub(layout.size() as i64, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        HEAP.fetch_add(
            new as i64 - layout.size() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes of heap in use now.
pub fn heap_bytes() -> u64 {
    HEAP.load(std::sync::atomic::Ordering::Relaxed).max(0) as u64
}

#[derive(Parser, Debug)]
#[command(
    name = "stateful-route-sim",
    version,
    about = "Simulates a fleet of gateways and pods on the memory store in virtual time, checking the routing invariants"
)]
struct Args {
    /// The scenario: steady, scale-up, rolling-restart, chaos or big.
    #[arg(long, default_value = "steady")]
    preset: String,
    /// The seed (the same seed replays the same run, byte for byte).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Runs this many seeds from --seed on (a sweep) and prints one line each.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Multiplies the preset's gateways, pods and users.
    #[arg(long)]
    scale: Option<f64>,
    /// Virtual seconds to simulate instead of the preset's.
    #[arg(long)]
    seconds: Option<f64>,
    /// Stops after this many seconds of wall-clock time and reports how far it got.
    #[arg(long)]
    budget: Option<f64>,
    /// Also runs the preset at a tenth of its size, to show how the cost per answer grows
    /// with the fleet.
    #[arg(long)]
    growth: bool,
    /// Where the JSON report goes (default target/sim/<preset>-<seed>.json).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Prints fleet events and failed placements to stderr as they happen.
    #[arg(long)]
    verbose: bool,
}

struct Outcome {
    sc: Scenario,
    seed: u64,
    stats: Stats,
    digest: String,
    violations: Vec<String>,
}

fn simulate(sc: Scenario, seed: u64, budget: Option<Duration>, verbose: bool) -> Outcome {
    // The placement policy's randomness is the thread's: the whole fleet runs on this one.
    fastrand::seed(seed ^ 0x05ee_d0ff_1ee7);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let w = local.block_on(&rt, async {
        let mut world = World::new(sc.clone(), seed);
        world.verbose = verbose;
        let w = Rc::new(RefCell::new(world));
        world::run(w.clone(), budget).await;
        w
    });
    let out = {
        let mut world = w.borrow_mut();
        Outcome {
            sc,
            seed,
            digest: world.digest.hex(),
            violations: world.violations.clone(),
            stats: std::mem::take(&mut world.stats),
        }
    };
    // Tasks still under way at the end (a pod waiting out a drain, a start retrying through an
    // outage) hold the world: dropped with the task set, before the runtime.
    drop(local);
    drop(w);
    drop(rt);
    out
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    Some(s[s.len() / 2])
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().cloned().reduce(f64::max)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Outcome {
    fn per_answer_ns(&self) -> f64 {
        self.stats.hits_or_misses_ns as f64 / self.stats.answers.max(1) as f64
    }

    fn divergence_per_million(&self) -> f64 {
        self.stats.divergence_ms as f64 / 1000.0 / (self.stats.answers.max(1) as f64 / 1e6)
    }

    fn rows(&self) -> Vec<(String, String)> {
        let s = &self.stats;
        let errors = if s.errors.is_empty() {
            "none".to_string()
        } else {
            s.errors
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let events = s
            .fleet_events
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let read_us = median(&s.snapshot_read_us);
        let refreshes_per_gateway = s.virtual_ms as f64 / 30_000.0;
        let answers_per_gateway = s.answers as f64 / self.sc.gateways as f64;
        vec![
            ("answers".into(), thousands(s.answers)),
            ("new users placed".into(), thousands(s.placements)),
            ("errors".into(), errors),
            ("fleet events".into(), events),
            (
                "balance: users per routable pod, max/mean (median over time; worst)".into(),
                format!(
                    "{} ; {}",
                    fmt_opt(median(&s.users_balance), 2),
                    fmt_opt(max(&s.users_balance), 2)
                ),
            ),
            (
                "balance: published load per routable pod, max/mean (median; worst)".into(),
                format!(
                    "{} ; {}",
                    fmt_opt(median(&s.load_balance), 2),
                    fmt_opt(max(&s.load_balance), 2)
                ),
            ),
            (
                "herd: new users in a joining pod's first period / fair share (median; worst)"
                    .into(),
                format!(
                    "{} ; {} (over {} joins)",
                    fmt_opt(median(&s.herd), 2),
                    fmt_opt(max(&s.herd), 2),
                    s.herd.len()
                ),
            ),
            (
                "divergence: seconds per million answers".into(),
                format!("{:.3}", self.divergence_per_million()),
            ),
            (
                "divergence: divergent answers; longest".into(),
                format!(
                    "{} ; {:.3} s",
                    thousands(s.divergent_answers),
                    s.longest_divergence_ms as f64 / 1000.0
                ),
            ),
            (
                "stickiness: temporary-link users answered another pod".into(),
                thousands(s.sticky_breaks),
            ),
            (
                "store calls per answer (gateways)".into(),
                format!("{:.3}", s.gateway_calls as f64 / s.answers.max(1) as f64),
            ),
            (
                "gateway CPU per answer (the request path, memory store included)".into(),
                format!("{:.2} µs", self.per_answer_ns() / 1000.0),
            ),
            (
                "gateway CPU per answer (its snapshot reads)".into(),
                read_us.map_or("–".into(), |us| {
                    format!(
                        "{:.3} µs ({us:.0} µs per read of {} pods)",
                        us * refreshes_per_gateway / answers_per_gateway.max(1.0),
                        self.sc.pods.max(self.sc.scale_to.map_or(0, |(_, n)| n))
                    )
                }),
            ),
            (
                "memory per cached user".into(),
                s.bytes_per_cached_user
                    .map_or("–".into(), |b| format!("{b:.0} B")),
            ),
            (
                "peak RSS".into(),
                format!("{:.0} MiB", s.peak_rss as f64 / (1 << 20) as f64),
            ),
            (
                "invariant checks; broken".into(),
                format!("{} ; {}", thousands(s.checks), self.violations.len()),
            ),
            (
                "virtual time; wall time".into(),
                format!(
                    "{:.0} s ; {:.1} s",
                    s.virtual_ms as f64 / 1000.0,
                    s.wall.as_secs_f64()
                ),
            ),
            ("digest of the event log".into(), self.digest.clone()),
        ]
    }

    fn print_table(&self) {
        println!(
            "\n### {} · seed {} · {} gateways · {} pods{} · {} users\n",
            self.sc.name,
            self.seed,
            self.sc.gateways,
            self.sc.pods,
            self.sc
                .scale_to
                .map_or(String::new(), |(t, n)| format!(" → {n} at {t:.0} s")),
            thousands(self.sc.users)
        );
        println!("| measure | value |\n| --- | --- |");
        for (k, v) in self.rows() {
            println!("| {k} | {v} |");
        }
    }

    fn json(&self) -> serde_json::Value {
        let s = &self.stats;
        serde_json::json!({
            "preset": self.sc.name,
            "seed": self.seed,
            "gateways": self.sc.gateways,
            "pods": self.sc.pods,
            "users": self.sc.users,
            "virtual_seconds": s.virtual_ms as f64 / 1000.0,
            "wall_seconds": s.wall.as_secs_f64(),
            "answers": s.answers,
            "placements": s.placements,
            "errors": s.errors,
            "fleet_events": s.fleet_events,
            "users_balance": { "median": median(&s.users_balance), "worst": max(&s.users_balance), "series": s.users_balance },
            "load_balance": { "median": median(&s.load_balance), "worst": max(&s.load_balance), "series": s.load_balance },
            "herd": { "median": median(&s.herd), "worst": max(&s.herd), "joins": s.herd.len() },
            "divergence_seconds_per_million_answers": self.divergence_per_million(),
            "divergent_answers": s.divergent_answers,
            "longest_divergence_seconds": s.longest_divergence_ms as f64 / 1000.0,
            "sticky_breaks": s.sticky_breaks,
            "store_calls_per_answer": s.gateway_calls as f64 / s.answers.max(1) as f64,
            "gateway_cpu_ns_per_answer": self.per_answer_ns(),
            "snapshot_read_us": median(&s.snapshot_read_us),
            "bytes_per_cached_user": s.bytes_per_cached_user,
            "peak_rss_bytes": s.peak_rss,
            "checks": s.checks,
            "violations": self.violations,
            "digest": self.digest,
        })
    }
}

fn main() {
    let args = Args::parse();
    let Some(mut sc) = presets::preset(&args.preset) else {
        eprintln!(
            "stateful-route-sim: unknown preset {:?} (one of {})",
            args.preset,
            presets::NAMES.join(", ")
        );
        std::process::exit(2);
    };
    if let Some(k) = args.scale {
        if !(k > 0.0 && k.is_finite()) {
            eprintln!("stateful-route-sim: --scale must be > 0");
            std::process::exit(2);
        }
        sc = sc.scaled(k);
    }
    if let Some(s) = args.seconds {
        if !(s > 0.0 && s.is_finite()) {
            eprintln!("stateful-route-sim: --seconds must be > 0");
            std::process::exit(2);
        }
        sc = sc.with_seconds(s);
    }
    let budget = args.budget.map(Duration::from_secs_f64);
    let mut broken = 0;
    if args.seeds > 1 {
        println!("| seed | answers | placements | errors | divergent | checks | broken | digest | wall |");
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for seed in args.seed..args.seed + args.seeds {
            let o = simulate(sc.clone(), seed, budget, args.verbose);
            println!(
                "| {seed} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
                o.stats.answers,
                o.stats.placements,
                o.stats.errors.values().sum::<u64>(),
                o.stats.divergent_answers,
                o.stats.checks,
                o.violations.len(),
                o.digest,
                o.stats.wall.as_secs_f64()
            );
            if !o.violations.is_empty() {
                broken += 1;
                report_violations(&o, &args.preset);
            }
        }
    } else {
        let mut small = None;
        if args.growth {
            let o = simulate(sc.clone().scaled(0.1), args.seed, budget, args.verbose);
            small = Some(o);
        }
        let o = simulate(sc, args.seed, budget, args.verbose);
        o.print_table();
        if let Some(s) = &small {
            println!(
                "\nGrowth: at a tenth of the fleet ({} gateways, {} pods, {} users) the request path costs {:.2} µs per answer; at full size {:.2} µs ({:.2}×).",
                s.sc.gateways,
                s.sc.pods,
                thousands(s.sc.users),
                s.per_answer_ns() / 1000.0,
                o.per_answer_ns() / 1000.0,
                o.per_answer_ns() / s.per_answer_ns().max(1.0)
            );
        }
        let path = args
            .json
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("target/sim/{}-{}.json", o.sc.name, o.seed)));
        let mut json = o.json();
        if let Some(s) = &small {
            json["growth"] = serde_json::json!({ "tenth": s.json() });
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(&path, serde_json::to_string_pretty(&json).expect("json")) {
            Ok(()) => println!("\nJSON: {}", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        }
        if !o.violations.is_empty() {
            broken += 1;
            report_violations(&o, &args.preset);
        }
    }
    if broken > 0 {
        std::process::exit(1);
    }
}

fn report_violations(o: &Outcome, preset: &str) {
    eprintln!(
        "\nINVARIANT BROKEN in {preset} with seed {} ({} shown):",
        o.seed,
        o.violations.len()
    );
    for v in &o.violations {
        eprintln!("  {v}");
    }
    eprintln!(
        "replay: cargo run --release -p stateful-route --features sim --bin stateful-route-sim -- --preset {preset} --seed {}",
        o.seed
    );
}
