//! Shared pieces of the fault-injection tests: short deadlines, timed calls that must not
//! hang, recovery measurement, killing `redis-server` by pid, and a panic counter.
#![allow(dead_code)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use stateful_route::{BaseConfig, ClientDriver, ErrorKind, Result, Store, StoreConfig};

/// Deadline of one store command in these tests.
pub const CMD_TIMEOUT: Duration = Duration::from_millis(300);
/// Deadline of one connection attempt in these tests.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
/// A call still running after this is a hung task (a test failure).
pub const HANG: Duration = Duration::from_secs(10);
/// Scheduling slack on a busy 2-core machine running a debug build.
pub const SLACK: Duration = Duration::from_millis(700);

pub const NS: &str = "default";
pub const SVC: &str = "room";

/// 0.2 s period, 1 s staleness window, no CPU sampling.
pub fn config() -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: 0.2,
        stale_after_seconds: Some(1.0),
        cpu_factor: 0.0,
        ..BaseConfig::default()
    }
}

/// `base`, with cache entries that expire after 1 s (to test stale-if-error).
pub fn short_cache(base: BaseConfig) -> BaseConfig {
    BaseConfig {
        user_link_info_cache_time_seconds: 1,
        ..base
    }
}

/// As [`config`], with cache entries that expire after 1 s.
pub fn short_cache_config() -> BaseConfig {
    short_cache(config())
}

pub fn store_config(prefix: &str) -> StoreConfig {
    StoreConfig {
        key_prefix: prefix.to_string(),
        connect_timeout: CONNECT_TIMEOUT,
        command_timeout: CMD_TIMEOUT,
        ..StoreConfig::default()
    }
}

pub async fn connect(url: &str, prefix: &str) -> Store {
    Store::redis_with(url, &store_config(prefix)).await.unwrap()
}

pub async fn raw(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Runs `f`, failing the test if it does not finish within [`HANG`]; returns its result and
/// how long it took.
pub async fn timed<T>(what: &str, f: impl Future<Output = Result<T>>) -> (Result<T>, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(HANG, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: still running after {HANG:?} (hung task)"));
    (r, t.elapsed())
}

/// Asserts that a failed call during a fault failed with one of `kinds` within `bound`.
pub fn assert_failed<T: std::fmt::Debug>(
    what: &str,
    r: &Result<T>,
    took: Duration,
    kinds: &[ErrorKind],
    bound: Duration,
) {
    match r {
        Ok(v) => panic!("{what}: expected one of {kinds:?}, got Ok({v:?})"),
        Err(e) => assert!(kinds.contains(&e.kind()), "{what}: unexpected error {e}"),
    }
    assert!(
        took <= bound,
        "{what}: failed after {took:?}, more than the bound {bound:?}"
    );
}

/// Computes new users until one succeeds; returns the time since `since` (the end of the
/// fault). Every failure on the way must be a typed store error, every call bounded.
pub async fn recovery(what: &str, gw: &ClientDriver, since: Instant) -> Duration {
    let mut i = 0u32;
    loop {
        i += 1;
        let uid = format!("recover-{what}-{i}");
        let (r, took) = timed(what, gw.compute_linked_pod("", &uid, SVC)).await;
        match r {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    // Never NO_AVAILABLE_POD: liveness froze during the fault, so the pods
                    // are still there when the store answers again.
                    matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout),
                    "{what}: unexpected error while recovering: {e}"
                );
                assert!(took <= HANG, "{what}: call took {took:?}");
            }
        }
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "{what}: no recovery within 20 s of the fault's end"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let d = since.elapsed();
    eprintln!("[faults] {what}: new users routed again {d:?} after the fault ended");
    d
}

/// Kills `redis-server` `pid` with SIGKILL and waits until `port` refuses connections.
pub fn kill_redis(pid: u32, port: u16) {
    // SAFETY: plain syscall on a pid this process started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "redis {pid} did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics on the library's runtime threads (a panic on a test's own thread fails
/// that test anyway; this catches the ones that would vanish inside a spawned task).
pub fn count_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("stateful-route") {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            previous(info)
        }));
    });
}

pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}
