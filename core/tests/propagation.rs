//! Change propagation (SPEC §11): moves, removals, drains and stops reach every gateway within
//! a second with the defaults' 240 s cache and 30 s refresh; a read in flight when its key's
//! event arrives is not cached (the reply held back by the test proxy); a cut stream empties
//! the cache; a new user stays one round trip with no event; a writer that publishes nothing
//! (an old deployment's script) leaves the TTL rule in charge.

mod common;
#[path = "common/faults.rs"]
mod faults;
#[path = "common/proxy.rs"]
mod proxy;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{redis_url, spawn_redis, unique_prefix, Fixture, Kind};
use proxy::{Mode, Proxy};
use stateful_route::testkit::{eventually, pod};
use stateful_route::{
    BaseConfig, ClientDriver, LinkChange, RoutingState, ServerDriver, ServerInfo, Store,
    StoreConfig,
};

const NS: &str = "default";
const SVC: &str = "room";
const BOUND: Duration = Duration::from_secs(1);

/// A writer's store, two gateways on stores of their own (separate connections on Redis; one
/// shared in-process backend on memory) with the default 240 s cache and 30 s refresh, and
/// pods 0 and 1.
struct Fleet {
    writer: Store,
    a: ClientDriver,
    b: ClientDriver,
    pods: Vec<ServerDriver>,
    _fixture: Fixture,
}

async fn gateway_store(f: &Fixture, url: Option<&str>) -> Store {
    match f.memory_shared() {
        Some(m) => Store::from_shared(m),
        None => {
            let config = StoreConfig {
                key_prefix: f.prefix.clone(),
                ..StoreConfig::default()
            };
            Store::redis_with(url.unwrap_or(redis_url()), &config)
                .await
                .unwrap()
        }
    }
}

fn gateway(store: Store) -> ClientDriver {
    let c = ClientDriver::new(
        store,
        ServerInfo::new(NS, "gateway", 0),
        BaseConfig::default(),
    )
    .unwrap();
    c.init().unwrap();
    c
}

async fn fleet(kind: Kind) -> Fleet {
    let f = Fixture::new(kind).await;
    let writer = f.store.clone();
    let cfg = BaseConfig::default();
    let pods = vec![
        pod(&writer, 0, 10, &cfg).await,
        pod(&writer, 1, 10, &cfg).await,
    ];
    let a = gateway(gateway_store(&f, None).await);
    let b = gateway(gateway_store(&f, None).await);
    connected(&a).await;
    connected(&b).await;
    Fleet {
        writer,
        a,
        b,
        pods,
        _fixture: f,
    }
}

/// Waits until the gateway's event stream is subscribed.
async fn connected(c: &ClientDriver) {
    let hub = c.store().backend().events().expect("propagation is on");
    eventually(Duration::from_secs(5), "event stream connected", || {
        let up = hub.is_connected();
        async move { up }
    })
    .await;
}

async fn follows(c: &ClientDriver, uid: &str, want: u32, what: &str) {
    eventually(BOUND, what, || async {
        c.compute_linked_pod(NS, uid, SVC).await.unwrap() == want
    })
    .await;
}

/// Waits until `seen` holds at least `n` changes: a listener runs after its entry is dropped,
/// so a gateway may answer anew before its listener has run.
async fn heard(seen: &Arc<Mutex<Vec<LinkChange>>>, n: usize) {
    eventually(BOUND, "the link listener ran", || {
        let len = seen.lock().unwrap().len();
        async move { len >= n }
    })
    .await;
}

fn recorder(c: &ClientDriver) -> Arc<Mutex<Vec<LinkChange>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    c.on_link_changed(move |ch| s.lock().unwrap().push(ch.clone()));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_move_reaches_the_other_gateway_within_a_second() {
    for kind in [Kind::Memory, Kind::Redis] {
        let f = fleet(kind).await;
        let seen = recorder(&f.b);
        let first = f.a.compute_linked_pod(NS, "u1", SVC).await.unwrap();
        assert_eq!(f.b.compute_linked_pod(NS, "u1", SVC).await.unwrap(), first);
        // Pod `other` takes the user over (a state hand-off).
        let other = 1 - first;
        f.pods[other as usize]
            .set_linked_pod(NS, "u1", SVC, other)
            .await
            .unwrap();
        follows(&f.a, "u1", other, "gateway a follows the move").await;
        follows(&f.b, "u1", other, "gateway b follows the move").await;
        heard(&seen, 1).await;
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.contains(&LinkChange {
                namespace: NS.into(),
                service: SVC.into(),
                uid: "u1".into(),
                pod: Some(other),
                persistent: true,
            }),
            "{kind:?}: {seen:?}"
        );
        // Setting the same persistent link again changes nothing and says nothing.
        let before = f.a.compute_linked_pod(NS, "u1", SVC).await.unwrap();
        f.pods[other as usize]
            .set_linked_pod(NS, "u1", SVC, other)
            .await
            .unwrap();
        assert_eq!(
            f.a.get_linked_in_cache(NS, "u1", SVC).unwrap(),
            Some(before)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_then_a_placement_elsewhere_reaches_the_first_gateway() {
    for kind in [Kind::Memory, Kind::Redis] {
        let f = fleet(kind).await;
        let seen = recorder(&f.a);
        let first = f.a.compute_linked_pod(NS, "u2", SVC).await.unwrap();
        assert!(f.pods[0].remove_linked_pod(NS, "u2", SVC, 0).await.unwrap());
        // Gateway b places the user on the other pod (set-if-absent: no event of its own).
        let other = 1 - first;
        let l =
            f.b.set_linked_pod_if_absent(NS, "u2", SVC, other, 300)
                .await
                .unwrap();
        assert_eq!(l.pod_index, other);
        follows(&f.a, "u2", other, "gateway a follows the re-placement").await;
        heard(&seen, 1).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen.len(),
            1,
            "{kind:?}: one removal, no event for a new link: {seen:?}"
        );
        assert_eq!(seen[0].pod, None);
        // A delayed logout shortens the link: gateways drop the entry too.
        f.a.compute_linked_pod(NS, "u2", SVC).await.unwrap();
        assert!(f.pods[0]
            .remove_linked_pod(NS, "u2", SVC, 30)
            .await
            .unwrap());
        eventually(BOUND, "delayed remove reaches gateway a", || async {
            f.a.get_linked_in_cache(NS, "u2", SVC).unwrap().is_none()
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_and_stop_reach_a_gateway_that_refreshes_every_30_s() {
    for kind in [Kind::Memory, Kind::Redis] {
        let f = fleet(kind).await;
        assert!(f.a.is_pod_routable(SVC, 0).await.unwrap());
        f.pods[0]
            .set_routing_state(RoutingState::DenyNewCall)
            .await
            .unwrap();
        eventually(BOUND, "DENY_NEW_CALL reaches the gateway", || async {
            !f.a.is_pod_routable(SVC, 0).await.unwrap() && f.a.is_pod_alive(SVC, 0).await.unwrap()
        })
        .await;
        f.pods[1].stop().await.unwrap();
        eventually(BOUND, "SHUTDOWN reaches the gateway", || async {
            !f.a.is_pod_alive(SVC, 1).await.unwrap()
        })
        .await;
        // A pod that joins is seen at once too.
        let joined = pod(&f.writer, 2, 0, &BaseConfig::default()).await;
        eventually(BOUND, "a new pod reaches the gateway", || async {
            f.a.is_pod_routable(SVC, 2).await.unwrap()
        })
        .await;
        joined.stop().await.unwrap();
    }
}

/// The other changes of an existing link reach the gateways too: a try-set accepted over a
/// temporary link, a successful compare-and-delete, and a gateway's replacement of a temporary
/// link to a dead pod (the script every gateway runs in step 4 of SPEC §6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_set_compare_and_delete_and_replacement_reach_the_other_gateway() {
    for kind in [Kind::Memory, Kind::Redis] {
        let f = fleet(kind).await;
        let seen = recorder(&f.a);
        // A try-set accepted over gateway b's temporary placement.
        let first = f.b.compute_linked_pod(NS, "t1", SVC).await.unwrap();
        assert_eq!(f.a.compute_linked_pod(NS, "t1", SVC).await.unwrap(), first);
        let other = 1 - first;
        let o = f.pods[other as usize]
            .try_set_linked_pod(NS, "t1", SVC, other)
            .await
            .unwrap();
        assert!(o.accepted);
        follows(&f.a, "t1", other, "the accepted try-set").await;
        // A compare-and-delete that matches.
        assert!(f.pods[other as usize]
            .remove_linked_pod_with_id(NS, "t1", SVC, other, 0)
            .await
            .unwrap());
        eventually(
            BOUND,
            "the compare-and-delete reaches gateway a",
            || async { f.a.get_linked_in_cache(NS, "t1", SVC).unwrap().is_none() },
        )
        .await;
        // A replacement of a temporary link (as a gateway does when the linked pod is dead).
        let p = f.a.compute_linked_pod(NS, "t2", SVC).await.unwrap();
        let link = stateful_route::store::LinkRef {
            namespace: NS,
            uid: "t2",
            service: SVC,
        };
        let claim =
            f.b.store()
                .backend()
                .replace_temporary_link(link, p, 1 - p, stateful_route::LinkTtl::Seconds(300))
                .await
                .unwrap();
        assert!(claim.created);
        follows(&f.a, "t2", 1 - p, "the replacement").await;
        heard(&seen, 3).await;
        let seen = seen.lock().unwrap().clone();
        let kinds: Vec<(&str, Option<u32>, bool)> = seen
            .iter()
            .map(|c| (c.uid.as_str(), c.pod, c.persistent))
            .collect();
        assert_eq!(
            kinds,
            [
                ("t1", Some(other), true),
                ("t1", None, false),
                ("t2", Some(1 - p), false)
            ],
            "{kind:?}"
        );
    }
}

/// The race of SPEC §11: gateway a's read of a link is in flight (its reply held by the proxy)
/// when the event for that link arrives; the answer is returned but must not be cached. And
/// the other order: the reply first, then the event, which drops the entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_in_flight_when_its_event_arrives_is_not_cached() {
    let f = Fixture::new(Kind::Redis).await;
    let cfg = BaseConfig::default();
    let pods = [
        pod(&f.store, 0, 10, &cfg).await,
        pod(&f.store, 1, 10, &cfg).await,
    ];
    let port: u16 = redis_url().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port).await;
    let a = Arc::new(gateway(gateway_store(&f, Some(&proxy.url())).await));
    connected(&a).await;
    let events = recorder(&a);
    pods[0].set_linked_pod(NS, "u3", SVC, 0).await.unwrap();
    // The snapshot is loaded and the script too (a NOSCRIPT reply would be held instead): the
    // miss below is one EVALSHA with its answer.
    a.compute_linked_pod(NS, "warm", SVC).await.unwrap();

    // Event first: hold the compute's script reply, move the user meanwhile.
    proxy.set(Mode::HoldNextScriptReply("lk:u3}"));
    let c = a.clone();
    let compute = tokio::spawn(async move { c.compute_linked_pod(NS, "u3", SVC).await });
    eventually(Duration::from_secs(5), "the script's reply is held", || {
        let held = proxy.holding();
        async move { held }
    })
    .await;
    pods[1].set_linked_pod(NS, "u3", SVC, 1).await.unwrap();
    eventually(BOUND, "the move's event reached gateway a", || {
        let n = events.lock().unwrap().len();
        async move { n == 1 }
    })
    .await;
    proxy.release();
    // The old answer is what the store said when it read: returned, not cached.
    assert_eq!(compute.await.unwrap().unwrap(), 0);
    assert_eq!(a.get_linked_in_cache(NS, "u3", SVC).unwrap(), None);
    assert_eq!(a.compute_linked_pod(NS, "u3", SVC).await.unwrap(), 1);

    // Reply first, then the event: the entry is cached, then dropped.
    assert_eq!(a.get_linked_in_cache(NS, "u3", SVC).unwrap(), Some(1));
    pods[0].set_linked_pod(NS, "u3", SVC, 0).await.unwrap();
    follows(&a, "u3", 0, "the second move").await;
}

/// A cut stream (every connection of gateway a dropped by the proxy while a writer moves the
/// user): during the gap a's cache keeps serving by the TTL rule; once the stream is back the
/// cache is emptied, so the move a missed is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_the_stream_empties_the_cache() {
    let f = Fixture::new(Kind::Redis).await;
    let cfg = BaseConfig::default();
    let pods = [
        pod(&f.store, 0, 10, &cfg).await,
        pod(&f.store, 1, 10, &cfg).await,
    ];
    let port: u16 = redis_url().rsplit(':').next().unwrap().parse().unwrap();
    let proxy = Proxy::start(port).await;
    let a = gateway(gateway_store(&f, Some(&proxy.url())).await);
    connected(&a).await;
    let hub = a.store().backend().events().unwrap();
    pods[0].set_linked_pod(NS, "u4", SVC, 0).await.unwrap();
    assert_eq!(a.compute_linked_pod(NS, "u4", SVC).await.unwrap(), 0);
    let gaps = hub.gaps();

    proxy.set(Mode::Drop);
    eventually(Duration::from_secs(5), "the gap is seen", || {
        let g = hub.gaps();
        async move { g > gaps }
    })
    .await;
    pods[1].set_linked_pod(NS, "u4", SVC, 1).await.unwrap(); // missed by gateway a
    assert_eq!(
        a.get_linked_in_cache(NS, "u4", SVC).unwrap(),
        Some(0),
        "the TTL rule during the gap"
    );
    proxy.set(Mode::Pass);
    connected(&a).await;
    follows(&a, "u4", 1, "gateway a after the gap").await;
}

/// The subscriber connection alone killed by Redis (`CLIENT KILL TYPE pubsub`, which is also how
/// Redis ends a subscriber over its `client-output-buffer-limit pubsub`): a gap while the data
/// connection stays up; on resume the cache is emptied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_killed_by_redis_is_a_gap() {
    let (port, _pid) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let config = StoreConfig {
        key_prefix: unique_prefix(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        ..StoreConfig::default()
    };
    let writer = Store::redis_with(&url, &config).await.unwrap();
    let cfg = BaseConfig::default();
    let pods = [
        pod(&writer, 0, 10, &cfg).await,
        pod(&writer, 1, 10, &cfg).await,
    ];
    let proxy = Proxy::start(port).await;
    let a = gateway(Store::redis_with(&proxy.url(), &config).await.unwrap());
    connected(&a).await;
    let hub = a.store().backend().events().unwrap();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();

    // Killed alone: the data connection stays, the stream comes back, the cache is emptied.
    pods[0].set_linked_pod(NS, "k1", SVC, 0).await.unwrap();
    assert_eq!(a.compute_linked_pod(NS, "k1", SVC).await.unwrap(), 0);
    let gaps = hub.gaps();
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(killed, 1, "one subscriber: gateway a's");
    eventually(Duration::from_secs(5), "gap and resume", || {
        let ok = hub.gaps() > gaps && hub.is_connected();
        async move { ok }
    })
    .await;
    assert_eq!(
        a.get_linked_in_cache(NS, "k1", SVC).unwrap(),
        None,
        "emptied on resume"
    );

    // A move made while the stream was down is followed after the resume: kill it again and
    // move the user before the subscriber is back (the proxy refuses its reconnects meanwhile).
    assert_eq!(a.compute_linked_pod(NS, "k1", SVC).await.unwrap(), 0);
    let gaps = hub.gaps();
    proxy.set(Mode::Drop);
    eventually(Duration::from_secs(5), "the gap is seen", || {
        let g = hub.gaps();
        async move { g > gaps }
    })
    .await;
    pods[1].set_linked_pod(NS, "k1", SVC, 1).await.unwrap(); // missed by gateway a
    proxy.set(Mode::Pass);
    connected(&a).await;
    follows(&a, "k1", 1, "gateway a after the gap").await;
}

/// A Redis restart (same port, data gone) is a gap too; the stream comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_resumes_after_a_redis_restart() {
    let (port, pid) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let config = StoreConfig {
        key_prefix: unique_prefix(),
        command_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        ..StoreConfig::default()
    };
    let writer = Store::redis_with(&url, &config).await.unwrap();
    let cfg = BaseConfig::default();
    let p0 = pod(&writer, 0, 10, &cfg).await;
    let a = gateway(Store::redis_with(&url, &config).await.unwrap());
    connected(&a).await;
    let hub = a.store().backend().events().unwrap();
    p0.set_linked_pod(NS, "u5", SVC, 0).await.unwrap();
    assert_eq!(a.compute_linked_pod(NS, "u5", SVC).await.unwrap(), 0);
    let gaps = hub.gaps();
    faults::kill_redis(pid, port);
    common::spawn_redis_on(port, &[]);
    eventually(Duration::from_secs(10), "gap and resume", || {
        let ok = hub.gaps() > gaps && hub.is_connected();
        async move { ok }
    })
    .await;
    assert_eq!(
        a.get_linked_in_cache(NS, "u5", SVC).unwrap(),
        None,
        "emptied on resume"
    );
    // The writer's connection fails once (fail-fast reconnect), then works.
    eventually(Duration::from_secs(5), "the writer reconnects", || async {
        writer.pod_states(NS, SVC).await.is_ok()
    })
    .await;
    let p1 = pod(&writer, 1, 10, &cfg).await;
    p1.set_linked_pod(NS, "u5", SVC, 1).await.unwrap();
    follows(&a, "u5", 1, "gateway a after the restart").await;
}

/// New users cost one script each and publish nothing; a moved user costs one PUBLISH inside
/// its script. A writer that publishes nothing (an old deployment's SET on the same key) is
/// followed only when the entry expires by the TTL rule. With propagation off, no SUBSCRIBE
/// and no PUBLISH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_stays_one_round_trip_and_old_writers_fall_back_to_the_ttl_rule() {
    let (port, _pid) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let config = StoreConfig {
        key_prefix: prefix.clone(),
        ..StoreConfig::default()
    };
    let writer = Store::redis_with(&url, &config).await.unwrap();
    let cfg = BaseConfig::default();
    let p0 = pod(&writer, 0, 10, &cfg).await;
    let short = BaseConfig {
        user_link_info_cache_time_seconds: 2,
        ..BaseConfig::default()
    };
    let a = ClientDriver::new(
        Store::redis_with(&url, &config).await.unwrap(),
        ServerInfo::new(NS, "gateway", 0),
        short,
    )
    .unwrap();
    a.init().unwrap();
    connected(&a).await;
    a.refresh_service(SVC).await.unwrap();
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
    let stats = |text: String, cmd: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:calls=")))
            .map_or(0, |r| r.split(',').next().unwrap().parse().unwrap())
    };
    a.compute_linked_pod(NS, "warm", SVC).await.unwrap(); // the scripts are loaded
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    for i in 0..100 {
        a.compute_linked_pod(NS, &format!("new{i}"), SVC)
            .await
            .unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stats(info.clone(), "evalsha"), 100, "{info}");
    assert_eq!(stats(info.clone(), "publish"), 0, "{info}");
    p0.set_linked_pod(NS, "new0", SVC, 0).await.unwrap(); // temporary -> persistent: one event
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stats(info, "publish"), 1);

    // An old writer moves a user with a plain SET: no event; the 2 s cache entry is followed
    // only once it expires.
    let p1 = pod(&writer, 1, 10, &cfg).await;
    assert_eq!(a.compute_linked_pod(NS, "new1", SVC).await.unwrap(), 0);
    let key = format!("{prefix}:{{{NS}:lk:new1}}{SVC}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("1")
        .arg("EX")
        .arg(300)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        a.get_linked_in_cache(NS, "new1", SVC).unwrap(),
        Some(0),
        "no event: still cached"
    );
    eventually(
        Duration::from_secs(4),
        "the TTL rule expires the entry",
        || async { a.compute_linked_pod(NS, "new1", SVC).await.unwrap() == 1 },
    )
    .await;
    drop(p1);

    // Propagation off: the gateway subscribes to nothing, the writer publishes nothing.
    let off = StoreConfig {
        propagation: false,
        ..config.clone()
    };
    let quiet = Store::redis_with(&url, &off).await.unwrap();
    assert!(quiet.backend().events().is_none());
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    quiet
        .set_link(NS, "new2", SVC, 1, stateful_route::LinkTtl::Persistent)
        .await
        .unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(stats(info, "publish"), 0);
}
