//! `stateful-route-loadgen`: load and soak driver for the Redis store (used by
//! `core/tests/load.rs`; also runnable by hand).
//!
//! ```text
//! stateful-route-loadgen pods    --url URL --prefix P --service S --pods 0,1 [--period SECS]
//! stateful-route-loadgen gateway --url URL --prefix P --service S --users N [--rounds R]
//!                                [--concurrency C] [--seed K] [--cache-capacity N]
//!                                [--out FILE] [--rss-at N] [--movers M --movers-out FILE]
//! stateful-route-loadgen mover   --url URL --prefix P --service S --movers M --moves K
//!                                --pods N [--every-ms T] --out FILE
//! ```
//!
//! `pods` runs one server driver per index, prints `ready`, varies their loads and keeps
//! publishing until its standard input closes, then stops them.
//!
//! `gateway` computes users `user-0` … `user-(N-1)` R times each (in an order of its own,
//! from `--seed`) with C concurrent callers, checks that every answer for a user equals its
//! first one (`divergent` counts those that do not), optionally writes the answers to `--out`
//! (line i: the pod of `user-i`) and prints one line of `key=value` figures: computes,
//! seconds, computes per second, errors, divergent, and the resident memory (VmRSS, kB) at the
//! start, after `--rss-at` computes and at the end. With `--movers M`, one more caller computes
//! `mover-0` … `mover-(M-1)` round and round while the others work and writes each answer to
//! `--movers-out` as `<micros since the epoch> <i> <pod>`.
//!
//! `mover` links every mover persistently to pod 0, then moves a random one to another of the
//! N pods every T ms (a state hand-off), K times, writing each change to `--out` as
//! `<sent micros> <reply micros> <i> <pod>`; the load test checks the gateways' answers
//! against these timelines (propagation, SPEC §11).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stateful_route::{
    BaseConfig, ClientDriver, LinkTtl, ServerDriver, ServerInfo, Store, StoreConfig,
};

const NS: &str = "default";
const NONE: u32 = u32::MAX;

fn main() {
    let mut args = std::env::args();
    args.next(); // the program name
    let role = args.next().unwrap_or_default();
    let mut opts = HashMap::new();
    while let Some(k) = args.next() {
        let Some(k) = k.strip_prefix("--") else {
            die(&format!("unexpected argument {k:?}"));
        };
        let v = args
            .next()
            .unwrap_or_else(|| die(&format!("--{k} needs a value")));
        opts.insert(k.to_string(), v);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "pods" => rt.block_on(pods(&opts)),
        "gateway" => rt.block_on(gateway(&opts)),
        "mover" => rt.block_on(mover(&opts)),
        _ => die("usage: stateful-route-loadgen pods|gateway --url URL --prefix P ..."),
    }
}

fn micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

/// Links `mover-i` to `pod` persistently; logs `<sent> <reply> <i> <pod>` (micros).
async fn set(store: &Store, service: &str, i: u32, pod: u32, out: &mut impl Write) {
    let sent = micros();
    store
        .set_link(NS, &format!("mover-{i}"), service, pod, LinkTtl::Persistent)
        .await
        .unwrap_or_else(|e| die(&format!("move: {e}")));
    writeln!(out, "{sent} {} {i} {pod}", micros()).unwrap();
}

async fn mover(opts: &HashMap<String, String>) {
    let store = store(opts).await;
    let service = opt(opts, "service");
    let movers: u32 = num(opts, "movers", 100);
    let moves: u64 = num(opts, "moves", 1000);
    let pods: u32 = num(opts, "pods", 4);
    let every = Duration::from_millis(num(opts, "every-ms", 5));
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(opt(opts, "out")).unwrap_or_else(|e| die(&format!("--out: {e}"))),
    );
    let mut current = vec![0u32; movers as usize];
    for i in 0..movers {
        set(&store, service, i, 0, &mut out).await;
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut tick = tokio::time::interval(every);
    for _ in 0..moves {
        tick.tick().await;
        let i = fastrand::u32(0..movers);
        let pod = (current[i as usize] + fastrand::u32(1..pods)) % pods;
        current[i as usize] = pod;
        set(&store, service, i, pod, &mut out).await;
    }
    out.flush().unwrap();
}

fn die(msg: &str) -> ! {
    eprintln!("stateful-route-loadgen: {msg}");
    std::process::exit(2)
}

fn opt<'a>(opts: &'a HashMap<String, String>, k: &str) -> &'a str {
    opts.get(k)
        .map(String::as_str)
        .unwrap_or_else(|| die(&format!("--{k} is required")))
}

fn num<T: std::str::FromStr>(opts: &HashMap<String, String>, k: &str, default: T) -> T {
    match opts.get(k) {
        None => default,
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| die(&format!("--{k} {v:?} is not a number"))),
    }
}

async fn store(opts: &HashMap<String, String>) -> Store {
    let config = StoreConfig {
        key_prefix: opt(opts, "prefix").to_string(),
        ..StoreConfig::default()
    };
    Store::redis_with(opt(opts, "url"), &config)
        .await
        .unwrap_or_else(|e| die(&format!("connect: {e}")))
}

fn base_config(opts: &HashMap<String, String>) -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: num(opts, "period", 0.5),
        stale_after_seconds: Some(num(opts, "stale-after", 30.0)),
        cpu_factor: 0.0,
        cache_capacity: num(opts, "cache-capacity", 100_000),
        ..BaseConfig::default()
    }
}

async fn pods(opts: &HashMap<String, String>) {
    let store = store(opts).await;
    let service = opt(opts, "service");
    let mut drivers = Vec::new();
    for p in opt(opts, "pods").split(',') {
        let index: u32 = p.parse().unwrap_or_else(|_| die("--pods: 0,1,..."));
        let d = ServerDriver::new(
            store.clone(),
            ServerInfo::new(NS, service, index),
            base_config(opts),
        )
        .unwrap_or_else(|e| die(&e.to_string()));
        d.start().await.unwrap_or_else(|e| die(&e.to_string()));
        drivers.push(d);
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    // Vary the loads while the gateways run, until stdin closes.
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines() {}
        let _ = tx.send(());
    });
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for d in &drivers {
                    let _ = d.set_load_state(fastrand::u32(0..1000));
                }
            }
            _ = &mut rx => break,
        }
    }
    for d in &drivers {
        let _ = d.stop().await;
    }
}

/// Resident memory of this process in kB.
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

async fn gateway(opts: &HashMap<String, String>) {
    let store = store(opts).await;
    let service = opt(opts, "service").to_string();
    let users: u64 = num(opts, "users", 10_000);
    let rounds: u64 = num(opts, "rounds", 1);
    let concurrency: usize = num(opts, "concurrency", 32);
    let seed: u64 = num(opts, "seed", 1);
    let rss_at: u64 = num(opts, "rss-at", 0);
    let client = ClientDriver::new(store, ServerInfo::new(NS, "gateway", 0), base_config(opts))
        .unwrap_or_else(|e| die(&e.to_string()));
    client.init().unwrap();
    // Each gateway visits the users in an order of its own: i -> (i * stride + offset) mod N.
    let mut stride = 7919 + 2 * seed;
    while gcd(stride, users) != 1 {
        stride += 1;
    }
    let offset = seed.wrapping_mul(104_729) % users.max(1);

    let total = users * rounds;
    let answers: Arc<Vec<AtomicU32>> = Arc::new((0..users).map(|_| AtomicU32::new(NONE)).collect());
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let divergent = Arc::new(AtomicU64::new(0));
    let rss_mid = Arc::new(AtomicU64::new(0));
    let client = Arc::new(client);
    let rss_start = rss_kb();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, answers, next, errors, done, divergent, rss_mid, service) = (
            client.clone(),
            answers.clone(),
            next.clone(),
            errors.clone(),
            done.clone(),
            divergent.clone(),
            rss_mid.clone(),
            service.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut uid = String::with_capacity(24);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if i + 1 == rss_at {
                    rss_mid.store(rss_kb(), Ordering::Relaxed);
                }
                let u = ((i % users) * stride + offset) % users;
                uid.clear();
                use std::fmt::Write as _;
                let _ = write!(uid, "user-{u}");
                match client.compute_linked_pod("", &uid, &service).await {
                    Ok(pod) => {
                        done.fetch_add(1, Ordering::Relaxed);
                        let slot = &answers[u as usize];
                        if let Err(first) =
                            slot.compare_exchange(NONE, pod, Ordering::Relaxed, Ordering::Relaxed)
                        {
                            if first != pod {
                                divergent.fetch_add(1, Ordering::Relaxed);
                                eprintln!("divergence: {uid} was {first}, now {pod}");
                            }
                        }
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("compute {uid}: {e}");
                        }
                    }
                }
            }
        }));
    }
    let movers: u32 = num(opts, "movers", 0);
    let watcher = (movers > 0).then(|| {
        let (client, next, service) = (client.clone(), next.clone(), service.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0;
            while next.load(Ordering::Relaxed) < total {
                if let Ok(pod) = client
                    .compute_linked_pod("", &format!("mover-{i}"), &service)
                    .await
                {
                    seen.push((micros(), i, pod));
                }
                i = (i + 1) % movers;
                // A hit completes without awaiting anything: let the other tasks run.
                tokio::task::yield_now().await;
            }
            seen
        })
    });
    for w in workers {
        w.await.unwrap();
    }
    if let Some(w) = watcher {
        let seen = w.await.unwrap();
        let mut out = std::io::BufWriter::new(
            std::fs::File::create(opt(opts, "movers-out")).unwrap_or_else(|e| die(&e.to_string())),
        );
        for (t, i, pod) in &seen {
            writeln!(out, "{t} {i} {pod}").unwrap();
        }
        out.flush().unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let rss_end = rss_kb();
    if let Some(path) = opts.get("out") {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        for a in answers.iter() {
            let a = a.load(Ordering::Relaxed);
            if a == NONE {
                writeln!(out, "-").unwrap();
            } else {
                writeln!(out, "{a}").unwrap();
            }
        }
        out.flush().unwrap();
    }
    println!(
        "computes={} planned={total} seconds={secs:.3} per_second={:.0} errors={} divergent={} rss_kb_start={rss_start} rss_kb_mid={} rss_kb_end={rss_end} cache_len={}",
        done.load(Ordering::Relaxed),
        done.load(Ordering::Relaxed) as f64 / secs,
        errors.load(Ordering::Relaxed),
        divergent.load(Ordering::Relaxed),
        rss_mid.load(Ordering::Relaxed),
        client.cache_len(),
    );
    client.close();
}
