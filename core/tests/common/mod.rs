//! Test helpers: a real `redis-server` on a free loopback port, and fresh stores.
//!
//! The server is started once per test binary from a thread that lives as long as the
//! process, with `PR_SET_PDEATHSIG`, so it dies with the tests even if they crash. Set
//! `STATEFUL_ROUTE_TEST_REDIS=redis://…` to use a server you started yourself.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use stateful_route::keys::KeySpace;
use stateful_route::store::MemoryBackend;
use stateful_route::{Store, StoreConfig};

static REDIS_URL: OnceLock<String> = OnceLock::new();
static NEXT_PREFIX: AtomicU32 = AtomicU32::new(0);

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `redis-server` with `args` on a free port; returns the port and pid. The server dies
/// with this process.
pub fn spawn_redis(extra: &[&str]) -> (u16, u32) {
    let port = free_port();
    (port, spawn_redis_on(port, extra))
}

/// A free port whose cluster bus port (+10000) is free too.
pub fn free_cluster_port() -> u16 {
    loop {
        let p = 20000 + fastrand::u16(..25000);
        if TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
        {
            return p;
        }
    }
}

/// Starts `redis-server` (or, with `--sentinel` first in `extra`, a sentinel) on `port`;
/// returns its pid once it answers PING. The server dies with this process.
pub fn spawn_redis_on(port: u16, extra: &[&str]) -> u32 {
    let (tx, rx) = mpsc::channel();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let dir = std::env::temp_dir().join(format!("sr-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("redis-server");
        if extra.first().map(String::as_str) == Some("--sentinel") {
            // A sentinel needs a config file it can rewrite; the rest are its directives.
            let conf = dir.join("sentinel.conf");
            std::fs::write(&conf, extra[1..].join("\n") + "\n").unwrap();
            cmd.arg(&conf).arg("--sentinel").args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ]);
        } else {
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--dir", dir.to_str().unwrap()])
                .args(&extra);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; the child dies when this thread ends (it waits
        // for the child below) or the process dies.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .expect("redis-server not found: install Debian's redis-server (make test does)");
        tx.send(child.id()).unwrap();
        // This thread (the death signal's parent) lives exactly as long as the server.
        let _ = child.wait();
    });
    let pid = rx.recv().unwrap();
    wait_for_redis(port);
    pid
}

/// Polls PING until the server answers (deadline 10 s).
pub fn wait_for_redis(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) {
            if let Ok(mut con) = client.get_connection() {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "redis-server on port {port} did not answer within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
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
