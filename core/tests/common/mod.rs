//! Test helpers: a real `redis-server` on a free loopback port, and fresh stores.
//!
//! The server is started once per test binary from a thread that lives as long as the
//! process, with `PR_SET_PDEATHSIG`, so it dies with the tests even if they crash. Set
//! `STATEFUL_ROUTE_TEST_REDIS=redis://…` to use a server you started yourself.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use stateful_route::keys::KeySpace;
use stateful_route::store::MemoryBackend;
use stateful_route::{Store, StoreConfig};

static REDIS_URL: OnceLock<String> = OnceLock::new();
static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);

/// Ports this process leases for its servers: the lock files stay open (locked) until the
/// process exits, so no other test process that follows `tests/PORTS.md` can take them.
static LEASES: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());
/// Log files of the servers this process started, printed when a test panics.
static LOGS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The first port of the kernel's ephemeral range: leased ports stay below it, so an outgoing
/// connection can never hold one.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// Leases a loopback port (tests/PORTS.md): below the ephemeral range, locked with `flock` on
/// `$TMPDIR/stateful-route-ports/<port>.lock` for the life of this process, and free for a
/// bind right now. No two test processes (Rust, Python, Go or the shell launchers) lease
/// the same port at once.
pub fn lease_port() -> u16 {
    const LOW: u16 = 12000;
    let high = ephemeral_low().max(LOW + 1000);
    let dir = std::env::temp_dir().join("stateful-route-ports");
    std::fs::create_dir_all(&dir).unwrap();
    let span = high - LOW;
    let start = fastrand::u16(..span);
    for i in 0..span {
        let port = LOW + (start + i) % span;
        let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        // SAFETY: flock on a descriptor this function owns.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if locked != 0 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // someone outside the protocol holds it; the lock is dropped here
        }
        LEASES.lock().unwrap_or_else(|p| p.into_inner()).push(file);
        return port;
    }
    panic!("no free port in {LOW}..{high}");
}

/// A free loopback port, leased for this process (see [`lease_port`]).
pub fn free_port() -> u16 {
    lease_port()
}

/// Starts `redis-server` with `extra` on a leased port; returns the port and pid. The server
/// dies with this process. If the port turns out to be taken, it retries on a fresh one.
pub fn spawn_redis(extra: &[&str]) -> (u16, u32) {
    spawn_redis_with(|_| extra.iter().map(|s| s.to_string()).collect())
}

/// As [`spawn_redis`], with arguments made for the port (e.g. a cluster node's config file,
/// or a `--cluster-port` leased by `args`).
pub fn spawn_redis_with(mut args: impl FnMut(u16) -> Vec<String>) -> (u16, u32) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = lease_port();
        let extra = args(port);
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        match try_spawn_redis_on(port, &extra) {
            Ok(pid) => return (port, pid),
            Err(e) if e.contains("Address already in use") => last = e,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("redis-server found its port taken five times; last: {last}");
}

/// Starts `redis-server` (or, with `--sentinel` first in `extra`, a sentinel) on `port` (one
/// this process leased, e.g. to restart a server where it was); returns its pid once it answers
/// PING. The server dies with this process; its log stays in its directory.
pub fn spawn_redis_on(port: u16, extra: &[&str]) -> u32 {
    try_spawn_redis_on(port, extra).unwrap_or_else(|e| panic!("{e}"))
}

/// The directory of the server on `port` started by this process (its `redis.log` is there).
pub fn server_dir(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("sr-redis-{}-{port}", std::process::id()))
}

fn try_spawn_redis_on(port: u16, extra: &[&str]) -> Result<u32, String> {
    install_log_printer();
    let dir = server_dir(port);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("redis.log");
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new("redis-server");
    if extra.first() == Some(&"--sentinel") {
        // A sentinel needs a config file it can rewrite; the rest are its directives.
        let conf = dir.join("sentinel.conf");
        std::fs::write(&conf, extra[1..].join("\n") + "\n").unwrap();
        cmd.arg(&conf).arg("--sentinel");
    } else {
        cmd.args(["--save", "", "--appendonly", "no"]).args(extra);
    }
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(&log);
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe; the child dies when its waiting thread ends or the
    // process dies.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let (pid_tx, pid_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = pid_tx.send(Err(format!(
                    "redis-server not found ({e}): install Debian's redis-server (make test does)"
                )));
                return;
            }
        };
        let _ = pid_tx.send(Ok(child.id()));
        // This thread (the death signal's parent) lives exactly as long as the server.
        let status = child.wait();
        let _ = exit_tx.send(status.map(|s| s.to_string()).unwrap_or_default());
    });
    let pid = pid_rx.recv().unwrap()?;
    LOGS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(log.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if ping(port) {
            return Ok(pid);
        }
        let exited = exit_rx.try_recv().ok();
        if exited.is_some() || Instant::now() >= deadline {
            if exited.is_none() {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            let how = exited.map_or("did not answer within 10 s".to_string(), |s| {
                format!("exited ({s}) before answering")
            });
            return Err(format!(
                "redis-server on port {port} {how}; {}:\n{}",
                log.display(),
                log_tail(&log, 40)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ping(port: u16) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return false;
    };
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()
        .and_then(|mut con| redis::cmd("PING").query::<String>(&mut con).ok())
        .is_some()
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// On the first panic in this process, prints the tail of every server log it started, so a
/// failing test says what its servers said.
fn install_log_printer() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        let printed = std::sync::atomic::AtomicBool::new(false);
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            if printed.swap(true, Ordering::Relaxed) {
                return;
            }
            let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for log in logs {
                eprintln!(
                    "--- {} (last 20 lines)\n{}",
                    log.display(),
                    log_tail(&log, 20)
                );
            }
        }));
    });
}

/// Polls PING until the server answers (deadline 10 s).
pub fn wait_for_redis(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ping(port) {
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer within 10 s; {}:\n{}",
            server_dir(port).display(),
            log_tail(&server_dir(port).join("redis.log"), 40)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// This process's resident memory (bytes), from /proc.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The shared test server's URL.
pub fn redis_url() -> &'static str {
    REDIS_URL.get_or_init(|| match std::env::var("STATEFUL_ROUTE_TEST_REDIS") {
        Ok(url) if !url.is_empty() => url,
        _ => format!("redis://127.0.0.1:{}", spawn_redis(&[]).0),
    })
}

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix() -> String {
    let n = NEXT_PREFIX.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000_000;
    format!("t{}-{t}-{n}", std::process::id())
}

/// Which store a fixture runs on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Memory,
    Redis,
}

/// A fresh store plus a way to count its keys.
pub struct Fixture {
    pub store: Store,
    pub kind: Kind,
    pub prefix: String,
    memory: Option<Arc<MemoryBackend>>,
}

impl Fixture {
    pub async fn new(kind: Kind) -> Fixture {
        let prefix = unique_prefix();
        match kind {
            Kind::Memory => {
                let backend = Arc::new(MemoryBackend::new(KeySpace::new(prefix.clone())));
                Fixture {
                    store: Store::from_shared(backend.clone()),
                    kind,
                    prefix,
                    memory: Some(backend),
                }
            }
            Kind::Redis => {
                let config = StoreConfig {
                    key_prefix: prefix.clone(),
                    ..StoreConfig::default()
                };
                Fixture {
                    store: Store::redis_with(redis_url(), &config).await.unwrap(),
                    kind,
                    prefix,
                    memory: None,
                }
            }
        }
    }

    /// The memory backend, shared, for a memory fixture (another store over the same data).
    pub fn memory_shared(&self) -> Option<Arc<MemoryBackend>> {
        self.memory.clone()
    }

    /// The memory backend, for a memory fixture.
    pub fn memory(&self) -> Option<&MemoryBackend> {
        self.memory.as_deref()
    }

    /// Keys under this fixture's prefix, sorted.
    pub async fn keys(&self) -> Vec<String> {
        match &self.memory {
            Some(m) => m.keys(),
            None => {
                let client = redis::Client::open(redis_url()).unwrap();
                let mut con = client.get_multiplexed_async_connection().await.unwrap();
                let mut keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.prefix))
                    .query_async(&mut con)
                    .await
                    .unwrap();
                keys.sort();
                keys
            }
        }
    }
}

#[allow(unused_imports)] // not every test binary polls
pub use stateful_route::testkit::eventually;
