//! Fault injection between the drivers and a real `redis-server` (issue 5): added latency,
//! dropped connections and a blackhole through our own TCP proxy, `CLIENT PAUSE`, and killing
//! and restarting the server by pid. Each test checks the typed error or the stale answer
//! that SPEC §8 and the README promise, that no call outlives its deadline, and how long
//! routing takes to recover once the fault ends (printed with `[faults]`; run with
//! `--nocapture` to see the figures).

mod common;
#[path = "common/faults.rs"]
mod faults;
#[path = "common/proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use common::{spawn_redis, spawn_redis_on, unique_prefix};
use faults::*;
use proxy::{Mode, Proxy};
use stateful_route::{BaseConfig, ClientDriver, ErrorKind, ServerDriver, ServerInfo, Store};

/// What a fault promises (README "Operating it"): `TIMEOUT` when Redis is slow or silent,
/// `STORE_UNAVAILABLE` when it cannot be reached.
const SLOW: ErrorKind = ErrorKind::Timeout;
const GONE: ErrorKind = ErrorKind::StoreUnavailable;

async fn pod(store: &Store, index: u32) -> ServerDriver {
    pod_with(store, index, config()).await
}

async fn pod_with(store: &Store, index: u32, config: BaseConfig) -> ServerDriver {
    let s = ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, index), config).unwrap();
    s.start().await.unwrap();
    s
}

fn gateway(store: &Store, config: BaseConfig) -> ClientDriver {
    let c = ClientDriver::new(store.clone(), ServerInfo::new(NS, "gateway", 0), config).unwrap();
    c.init().unwrap();
    c
}

/// Two pods talking to Redis directly, and gateways that reach it through a proxy.
struct Setup {
    redis_port: u16,
    proxy: Proxy,
    _pods: Vec<ServerDriver>,
    /// Default cache lifetime (240 s).
    gw: ClientDriver,
    /// Cache entries expire after 1 s; stale-if-error on (60 s).
    short: ClientDriver,
    /// Cache entries expire after 1 s; stale-if-error off.
    no_stale: ClientDriver,
}

async fn setup() -> Setup {
    setup_with(config()).await
}

async fn setup_with(base: BaseConfig) -> Setup {
    count_panics();
    let (redis_port, _) = spawn_redis(&[]);
    let prefix = unique_prefix();
    let direct = connect(&format!("redis://127.0.0.1:{redis_port}"), &prefix).await;
    let pods = vec![
        pod_with(&direct, 0, base.clone()).await,
        pod_with(&direct, 1, base.clone()).await,
    ];
    let proxy = Proxy::start(redis_port).await;
    let via = connect(&proxy.url(), &prefix).await;
    let s = Setup {
        redis_port,
        gw: gateway(&via, base.clone()),
        short: gateway(&via, short_cache(base.clone())),
        no_stale: gateway(
            &via,
            BaseConfig {
                serve_stale_seconds: 0.0,
                ..short_cache(base)
            },
        ),
        proxy,
        _pods: pods,
    };
    // Load the service's snapshot in every gateway.
    for g in [&s.gw, &s.short, &s.no_stale] {
        assert_eq!(g.alive_pods(SVC).await.unwrap(), vec![0, 1]);
    }
    s
}

/// Users cached before a fault: `(uid, pod)` fresh in `gw`, and one in `short` and one in
/// `no_stale` that will expire during the fault.
async fn warm(s: &Setup) -> ((String, u32), (String, u32), (String, u32)) {
    let mut out = Vec::new();
    for (g, uid) in [
        (&s.gw, "warm"),
        (&s.short, "stale"),
        (&s.no_stale, "nostale"),
    ] {
        let pod = g.compute_linked_pod("", uid, SVC).await.unwrap();
        out.push((uid.to_string(), pod));
    }
    let mut it = out.into_iter();
    (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
}

/// While the store is unreachable: a fresh cached user is answered from the cache without a
/// store call; a cached entry that expired (1 s lifetime) is served by stale-if-error; with
/// stale-if-error off the same situation is the typed error; a new user is a typed error.
/// Every call returns within `bound`, failing with `expect`; the pods stay alive throughout.
async fn check_during_fault(what: &str, s: &Setup, bound: Duration, expect: ErrorKind) {
    let ((warm, warm_pod), (stale, stale_pod), (nostale, _)) = warm_links(s).await;
    assert_eq!(
        s.gw.compute_cached("", &warm, SVC).unwrap(),
        Some(warm_pod),
        "{what}: fresh cached link answered without the store"
    );
    let (r, took) = timed(what, s.gw.compute_linked_pod("", &warm, SVC)).await;
    assert_eq!(r.unwrap(), warm_pod);
    assert!(took < CMD_TIMEOUT, "{what}: a cache hit took {took:?}");

    let (r, took) = timed(
        what,
        s.gw.compute_linked_pod("", &format!("new-{what}"), SVC),
    )
    .await;
    assert_failed(&format!("{what}: new user"), &r, took, &[expect], bound);
    eprintln!(
        "[faults] {what}: new user failed with {} after {took:?}",
        r.unwrap_err().kind()
    );

    // Wait for the 1 s cache entries to expire (still inside the stale window).
    common::eventually(
        Duration::from_secs(5),
        "cache entries to expire",
        || async {
            s.short
                .get_linked_in_cache("", &stale, SVC)
                .unwrap()
                .is_none()
                && s.no_stale
                    .get_linked_in_cache("", &nostale, SVC)
                    .unwrap()
                    .is_none()
        },
    )
    .await;
    let (r, took) = timed(what, s.short.compute_linked_pod("", &stale, SVC)).await;
    assert_eq!(
        r.unwrap_or_else(|e| panic!("{what}: stale-if-error did not serve: {e}")),
        stale_pod
    );
    assert!(took <= bound, "{what}: stale answer took {took:?}");
    let (r, took) = timed(what, s.no_stale.compute_linked_pod("", &nostale, SVC)).await;
    assert_failed(
        &format!("{what}: expired entry with serve_stale_seconds = 0"),
        &r,
        took,
        &[expect],
        bound,
    );
    for g in [&s.gw, &s.short, &s.no_stale] {
        assert_eq!(
            g.alive_pods(SVC).await.unwrap(),
            vec![0, 1],
            "{what}: pods declared dead during the fault"
        );
    }
}

/// After a fault: every gateway sees both pods alive again, with their published states.
async fn pods_alive_after(what: &str, s: &Setup) {
    for g in [&s.gw, &s.short, &s.no_stale] {
        g.refresh_service(SVC).await.unwrap();
        assert_eq!(
            g.alive_pods(SVC).await.unwrap(),
            vec![0, 1],
            "{what}: pods not alive after the fault"
        );
    }
}

/// The warm users of [`warm`], as cached now.
async fn warm_links(s: &Setup) -> ((String, u32), (String, u32), (String, u32)) {
    let get = |g: &ClientDriver, uid: &str| {
        let pod = g
            .get_linked_in_cache("", uid, SVC)
            .unwrap()
            .unwrap_or_else(|| panic!("{uid} is not cached"));
        (uid.to_string(), pod)
    };
    (
        get(&s.gw, "warm"),
        get(&s.short, "stale"),
        get(&s.no_stale, "nostale"),
    )
}

/// Every user a gateway answered during or after the fault is the link Redis holds.
async fn links_agree_with_redis(s: &Setup, prefix_uids: &[&str]) {
    let mut con = raw(s.redis_port).await;
    for uid in prefix_uids {
        let pod = s.gw.compute_linked_pod("", uid, SVC).await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*:{{{NS}:lk:{uid}}}{SVC}"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1, "{uid}: {keys:?}");
        let stored: String = redis::cmd("GET")
            .arg(&keys[0])
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(stored, pod.to_string(), "{uid}: gateway and Redis disagree");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_within_the_deadline_works_and_beyond_it_is_a_timeout() {
    let s = setup().await;
    warm(&s).await;
    let base = panics();

    s.proxy.set(Mode::Latency(Duration::from_millis(100)));
    let (r, took) = timed("latency 100ms", s.gw.compute_linked_pod("", "slow-ok", SVC)).await;
    r.expect("100 ms of latency is within the 300 ms deadline");
    eprintln!("[faults] latency 100ms: new user placed in {took:?}");

    s.proxy.set(Mode::Latency(Duration::from_millis(1500)));
    check_during_fault("latency 1500ms", &s, CMD_TIMEOUT + SLACK, SLOW).await;
    let end = Instant::now();
    s.proxy.set(Mode::Pass);
    let d = recovery("latency 1500ms", &s.gw, end).await;
    pods_alive_after("latency 1500ms", &s).await;
    assert!(d < Duration::from_secs(5), "recovery took {d:?}");
    // A timed-out call may still have been applied by Redis; what the gateway says now must
    // be what Redis holds.
    links_agree_with_redis(&s, &["slow-ok", "new-latency 1500ms", "warm"]).await;
    assert_eq!(panics(), base, "a panic happened during the fault");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_store_unavailable_then_reconnect() {
    let s = setup().await;
    warm(&s).await;
    let base = panics();
    s.proxy.set(Mode::Drop);
    check_during_fault("drop", &s, CMD_TIMEOUT + SLACK, GONE).await;
    let end = Instant::now();
    s.proxy.set(Mode::Pass);
    let d = recovery("drop", &s.gw, end).await;
    pods_alive_after("drop", &s).await;
    assert!(d < Duration::from_secs(5), "reconnect took {d:?}");
    links_agree_with_redis(&s, &["warm", "new-drop"]).await;
    assert_eq!(panics(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_is_a_timeout_then_recovers() {
    let s = setup().await;
    warm(&s).await;
    let base = panics();
    s.proxy.set(Mode::Blackhole);
    check_during_fault("blackhole", &s, CMD_TIMEOUT + SLACK, SLOW).await;
    let end = Instant::now();
    s.proxy.set(Mode::Pass);
    let d = recovery("blackhole", &s.gw, end).await;
    pods_alive_after("blackhole", &s).await;
    assert!(d < Duration::from_secs(5), "recovery took {d:?}");
    links_agree_with_redis(&s, &["warm", "new-blackhole"]).await;
    assert_eq!(panics(), base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_after_a_drop_is_bounded_too() {
    // The connection is gone and every reconnect attempt hangs. The store's deadline bounds
    // each call by command_timeout all the same, reconnects included, so a snapshot refresh
    // fails (and freezes liveness) long before stale_after (1 s): the pods stay alive and
    // stale-if-error serves.
    let s = setup().await;
    warm(&s).await;
    s.proxy.set(Mode::Drop);
    let (r, took) = timed("drop", s.gw.compute_linked_pod("", "gone", SVC)).await;
    assert_failed("drop: new user", &r, took, &[GONE], CMD_TIMEOUT + SLACK);
    s.proxy.set(Mode::Blackhole);
    // The connection broken during the drop may surface once more (STORE_UNAVAILABLE, a
    // broken pipe); after that every reconnect attempt hangs: silent, so a timeout.
    let mut i = 0;
    loop {
        i += 1;
        let (r, took) = timed(
            "drop+blackhole",
            s.gw.compute_linked_pod("", &format!("b{i}"), SVC),
        )
        .await;
        let kind = r.as_ref().map_err(|e| e.kind()).unwrap_err();
        assert!(took <= CMD_TIMEOUT + SLACK, "drop+blackhole: {took:?}");
        if kind == SLOW {
            break;
        }
        assert!(
            kind == GONE && i < 3,
            "drop+blackhole: call {i} failed with {kind:?}"
        );
    }
    check_during_fault("drop+blackhole", &s, CMD_TIMEOUT + SLACK, SLOW).await;
    let end = Instant::now();
    s.proxy.set(Mode::Pass);
    let d = recovery("drop+blackhole", &s.gw, end).await;
    pods_alive_after("drop+blackhole", &s).await;
    assert!(d < Duration::from_secs(6), "recovery took {d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_is_a_timeout_then_recovers() {
    let s = setup().await;
    warm(&s).await;
    let base = panics();
    let pause = Duration::from_millis(2500);
    let mut con = raw(s.redis_port).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut con)
        .await
        .unwrap();
    let paused_at = Instant::now();
    check_during_fault("client pause", &s, CMD_TIMEOUT + SLACK, SLOW).await;
    assert!(
        paused_at.elapsed() < pause,
        "checks outlasted the pause; lengthen it"
    );
    // Pods kept alive in the snapshot even though nobody could publish or read.
    assert_eq!(s.gw.alive_pods(SVC).await.unwrap(), vec![0, 1]);
    let end = paused_at + pause;
    tokio::time::sleep_until(end.into()).await;
    let d = recovery("client pause", &s.gw, end).await;
    pods_alive_after("client pause", &s).await;
    assert!(d < Duration::from_secs(5), "recovery took {d:?}");
    links_agree_with_redis(&s, &["warm", "new-client pause"]).await;
    assert_eq!(panics(), base);
}

/// Redis killed (SIGKILL) and restarted empty on the same port: during the outage pods stay
/// alive in the gateways' snapshots (longer than `stale_after`), cached users are served,
/// new users fail typed and bounded; afterwards every pod's state and the workload state are
/// back within one period (plus reconnect), temporary links are re-created on demand, and
/// persistent links are lost (no persistence configured: see the AOF test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_gets_states_back_within_a_period() {
    count_panics();
    let base = panics();
    let (port, pid) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let store = connect(&url, &prefix).await;
    let pods = [pod(&store, 0).await, pod(&store, 1).await];
    let gw = gateway(&store, config());
    let short = gateway(&store, short_cache_config());
    assert_eq!(gw.alive_pods(SVC).await.unwrap(), vec![0, 1]);
    let mut cached = Vec::new();
    for i in 0..20 {
        let uid = format!("u{i}");
        cached.push((
            uid.clone(),
            gw.compute_linked_pod("", &uid, SVC).await.unwrap(),
        ));
    }
    let stale_pod = short.compute_linked_pod("", "stale", SVC).await.unwrap();
    pods[1].set_linked_pod("", "owned", SVC, 1).await.unwrap();

    kill_redis(pid, port);
    let down = Instant::now();
    let outage = Duration::from_millis(2500); // > stale_after (1 s)
    let stale_after = config().stale_after();
    let mut worst = Duration::ZERO;
    let mut n = 0;
    let mut served_stale = false;
    while down.elapsed() < outage {
        assert_eq!(
            gw.alive_pods(SVC).await.unwrap(),
            vec![0, 1],
            "pods declared dead {:?} into the outage",
            down.elapsed()
        );
        for (uid, p) in &cached {
            assert_eq!(gw.compute_cached("", uid, SVC).unwrap(), Some(*p));
        }
        n += 1;
        let (r, took) = timed(
            "redis down",
            gw.compute_linked_pod("", &format!("new{n}"), SVC),
        )
        .await;
        assert_failed(
            "redis down: new user",
            &r,
            took,
            &[GONE],
            CMD_TIMEOUT + SLACK,
        );
        worst = worst.max(took);
        if short
            .get_linked_in_cache("", "stale", SVC)
            .unwrap()
            .is_none()
        {
            let (r, took) = timed("redis down", short.compute_linked_pod("", "stale", SVC)).await;
            assert_eq!(r.expect("stale-if-error while redis is down"), stale_pod);
            assert!(took <= CMD_TIMEOUT + SLACK);
            served_stale = true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served_stale,
        "the 1 s cache entry never expired during the outage"
    );
    assert!(down.elapsed() > stale_after * 2);
    eprintln!("[faults] redis down: {n} new-user calls failed typed, slowest {worst:?}");

    tokio::task::spawn_blocking(move || spawn_redis_on(port, &[]))
        .await
        .unwrap();
    let up = Instant::now();
    let mut con = raw(port).await;
    let state_key = format!("{prefix}:{{{NS}:state:{SVC}}}");
    let workload_key = format!("{prefix}:{{{NS}:workload:{SVC}}}");
    common::eventually(
        Duration::from_secs(10),
        "both pod states republished",
        || {
            let mut con = con.clone();
            let key = state_key.clone();
            async move {
                let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                h.contains_key("0") && h.contains_key("1")
            }
        },
    )
    .await;
    let states_back = up.elapsed();
    common::eventually(
        Duration::from_secs(10),
        "workload state republished",
        || {
            let mut con = con.clone();
            let key = workload_key.clone();
            async move {
                let w: Option<String> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut con)
                    .await
                    .unwrap();
                w.as_deref() == Some("READY")
            }
        },
    )
    .await;
    let workload_back = up.elapsed();
    let period = config().period();
    eprintln!(
        "[faults] redis restarted empty: pod states back after {states_back:?}, workload state after {workload_back:?} (period {period:?})"
    );
    // One period to the next publish, which fails on the dead connection and reconnects at
    // once (no backoff), and at most one more period (measured: 65-240 ms with a 200 ms period).
    let bound = period * 2 + SLACK;
    assert!(
        states_back <= bound,
        "states came back after {states_back:?} (bound {bound:?})"
    );
    assert!(
        workload_back <= bound,
        "the workload state came back after {workload_back:?} (bound {bound:?})"
    );
    let d = recovery("redis restart", &gw, up).await;
    assert!(d < Duration::from_secs(6));
    // Until both pods have republished, a gateway's refresh may see only one of them (and
    // would drop cached users of the other on their next lookup); wait for both.
    common::eventually(Duration::from_secs(5), "gateway sees both pods", || async {
        gw.alive_pods(SVC).await.unwrap() == vec![0, 1]
    })
    .await;

    // What a non-persistent Redis lost: the temporary and the persistent links.
    let lost: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:{{{NS}:lk:u0}}{SVC}"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(lost, None, "the restarted Redis is empty");
    assert_eq!(
        store.get_link_if_persist(NS, "owned", SVC).await.unwrap(),
        None,
        "persistent link lost without AOF"
    );
    // A gateway that had the user cached keeps answering from its cache; a new computation
    // re-creates the link in Redis.
    assert_eq!(gw.compute_cached("", "u0", SVC).unwrap(), Some(cached[0].1));
    let fresh = gateway(&store, config());
    let again = fresh.compute_linked_pod("", "u0", SVC).await.unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}:{{{NS}:lk:u0}}{SVC}"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stored, Some(again.to_string()));
    assert_eq!(panics(), base);
}

/// With AOF (`appendonly yes`, `appendfsync always`), links survive a SIGKILL and restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_keeps_links_across_a_kill_and_restart() {
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let (port, pid) = spawn_redis(&args);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let store = connect(&url, &prefix).await;
    let p0 = pod(&store, 0).await;
    let gw = gateway(&store, config());
    p0.set_linked_pod("", "owned", SVC, 0).await.unwrap();
    let temp = gw.compute_linked_pod("", "visitor", SVC).await.unwrap();
    kill_redis(pid, port);
    tokio::task::spawn_blocking(move || spawn_redis_on(port, &args))
        .await
        .unwrap();
    let check = connect(&url, &prefix).await;
    assert_eq!(
        check.get_link_if_persist(NS, "owned", SVC).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        check.get_link_services(NS, "owned").await.unwrap().get(SVC),
        Some(&0)
    );
    let l = check.get_link(NS, "visitor", SVC).await.unwrap().unwrap();
    assert_eq!(l.pod_index, temp);
    assert!(l.ttl.is_some(), "the temporary link keeps its TTL");
}

/// A pod that dies without `stop` gets no new users once `stale_after` has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_pod_gets_no_new_users_after_stale_after() {
    let (port, _) = spawn_redis(&[]);
    let prefix = unique_prefix();
    let store = connect(&format!("redis://127.0.0.1:{port}"), &prefix).await;
    let p0 = pod(&store, 0).await;
    let p1 = pod(&store, 1).await;
    let gw = gateway(&store, config());
    assert_eq!(gw.routable_pods(SVC).await.unwrap(), vec![0, 1]);
    drop(p1); // no stop: its state stays in Redis and ages
    let crashed = Instant::now();
    let mut i = 0;
    let gone = loop {
        i += 1;
        let pod = match gw.compute_linked_pod("", &format!("n{i}"), SVC).await {
            Ok(p) => p,
            Err(e) => panic!(
                "{e} at {:?}; {:#?}",
                crashed.elapsed(),
                gw.metrics().service(SVC)
            ),
        };
        if pod == 1 {
            assert!(
                crashed.elapsed() < Duration::from_secs(10),
                "pod 1 never went stale"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        if gw.routable_pods(SVC).await.unwrap() == vec![0] {
            break crashed.elapsed();
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(10),
            "pod 1 never went stale"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for j in 0..200 {
        let pod = gw
            .compute_linked_pod("", &format!("after{j}"), SVC)
            .await
            .unwrap();
        assert_eq!(pod, 0, "a new user went to the crashed pod");
    }
    let bound = config().stale_after() + config().period() + SLACK;
    eprintln!("[faults] crashed pod: no new users after {gone:?} (stale_after 1 s, period 0.2 s)");
    assert!(gone <= bound, "took {gone:?}, bound {bound:?}");
    drop(p0);
}
