//! The Sentinel store when the master's connection fails (hardening item 12): a write whose
//! outcome is unknown is never sent again (it would run twice and report its own write as the
//! previous pod), and a burst of failing callers costs one resolution through the sentinels,
//! not one each. The master is reached through the fault proxy: the sentinel monitors the
//! proxy's address, so that is the address it names to the library.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{spawn_redis, unique_prefix};
use proxy::{Mode, Proxy};
use stateful_route::{ErrorKind, LinkTtl, Store, StoreConfig};

const NS: &str = "default";
const SVC: &str = "room";

/// Resolutions through the sentinels so far (the store logs each one).
static RESOLVED: AtomicUsize = AtomicUsize::new(0);

struct Setup {
    proxy: Proxy,
    store: Store,
}

async fn setup() -> Setup {
    static SINK: std::sync::Once = std::sync::Once::new();
    SINK.call_once(|| {
        assert!(stateful_route::log::set_log_sink(
            tracing::Level::INFO,
            |r| {
                if r.message
                    .contains("connected to the master named by the sentinels")
                {
                    RESOLVED.fetch_add(1, Ordering::SeqCst);
                }
            }
        ));
    });
    let (master, _) = spawn_redis(&[]);
    let proxy = Proxy::start(master).await;
    let monitor = format!("sentinel monitor main 127.0.0.1 {} 1", proxy.port);
    // No failover during the test: the master stays the master; only connections fail.
    let (sentinel, _) = tokio::task::spawn_blocking(move || {
        spawn_redis(&[
            "--sentinel",
            &monitor,
            "sentinel down-after-milliseconds main 60000",
        ])
    })
    .await
    .unwrap();
    let cfg = StoreConfig {
        key_prefix: unique_prefix(),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        ..StoreConfig::default()
    };
    let url = format!("redis://127.0.0.1:{sentinel}");
    let store = Store::redis_sentinel_with(&[url.as_str()], "main", &cfg)
        .await
        .unwrap();
    Setup { proxy, store }
}

/// One test, two scenarios in turn: the resolution count is process-wide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_connection_failures() {
    a_write_whose_reply_was_lost_is_not_sent_again().await;
    a_burst_of_failing_calls_resolves_the_master_once().await;
}

async fn a_write_whose_reply_was_lost_is_not_sent_again() {
    let s = setup().await;
    assert_eq!(
        s.store
            .set_link(NS, "u", SVC, 3, LinkTtl::Persistent)
            .await
            .unwrap(),
        None
    );
    // The next script reaches Redis and runs; its reply is lost with the connection.
    s.proxy.set(Mode::DropNextScriptReply);
    let r = s.store.set_link(NS, "u", SVC, 7, LinkTtl::Persistent).await;
    // Sent again, it would answer Some(7): its own write as the previous pod.
    let e = r.expect_err("the reply was dropped; the outcome is unknown to the caller");
    assert_eq!(e.kind(), ErrorKind::StoreUnavailable, "{e}");
    assert_eq!(s.proxy.mode(), Mode::Pass, "the script reached the proxy");
    // It ran exactly once, and the store works again at once.
    let l = s.store.get_link(NS, "u", SVC).await.unwrap().unwrap();
    assert_eq!((l.pod_index, l.is_persistent()), (7, true));
    assert_eq!(
        s.store
            .set_link(NS, "u", SVC, 8, LinkTtl::Persistent)
            .await
            .unwrap(),
        Some(7)
    );
}

/// A call that fails on a dropped connection forgets the master (while the network is still
/// down, so no resolution can succeed); 32 concurrent calls then share one resolution.
async fn a_burst_of_failing_calls_resolves_the_master_once() {
    let s = setup().await;
    let store = Arc::new(s.store);
    store
        .set_link(NS, "warm", SVC, 1, LinkTtl::Persistent)
        .await
        .unwrap();
    // Every open connection to the master drops; then the network is fine again.
    let before = RESOLVED.load(Ordering::SeqCst);
    s.proxy.set(Mode::Drop);
    let _ = store.get_link(NS, "warm", SVC).await; // sees the drop
    s.proxy.set(Mode::Pass);
    let mut calls = Vec::new();
    for i in 0..32 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            store.get_link(NS, &format!("u{i}"), SVC).await
        }));
    }
    let mut failed = 0;
    for c in calls {
        if let Err(e) = c.await.unwrap() {
            assert!(
                matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout),
                "{e}"
            );
            failed += 1;
        }
    }
    let resolutions = RESOLVED.load(Ordering::SeqCst) - before;
    eprintln!("[sentinel] 32 calls after a drop: {failed} failed, {resolutions} resolutions");
    assert!(
        resolutions <= 1,
        "{resolutions} resolutions through the sentinels for one connection failure"
    );
    // Working again.
    assert_eq!(
        store
            .get_link(NS, "warm", SVC)
            .await
            .unwrap()
            .map(|l| l.pod_index),
        Some(1)
    );
}
