//! The behaviour suite as a test kit: SPEC's promises, runnable against any [`Store`].
//!
//! The Redis and memory stores pass it in this crate's tests; a store of your own (a
//! [`StoreBackend`](crate::StoreBackend)) proves it keeps SPEC's semantics the same way:
//!
//! ```no_run
//! # async fn my_store() -> stateful_route::Store { stateful_route::Store::memory() }
//! # #[tokio::main] async fn main() {
//! stateful_route::testkit::run_store_suite(|| my_store()).await;
//! # }
//! ```
//!
//! Each scenario needs a fresh, empty store, takes at most a few seconds, and panics with the
//! reason on failure. Enabled by the `testkit` feature; it starts drivers on the library's
//! runtime and must be awaited on a multi-threaded tokio runtime.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{
    ident, BaseConfig, ClientDriver, ErrorKind, LinkTtl, Placement, RoutingState, ServerDriver,
    ServerInfo, Store,
};

/// The shared link-operation vectors (`tests/vectors/links.json`, linked as `core/vectors/` so
/// that the published crate carries them), as every binding reads them.
pub const LINK_VECTORS: &str = include_str!("../vectors/links.json");

const NS: &str = "default";
const SVC: &str = "room";

/// A config for tests: 0.2 s period, a generous 5 s staleness window, no CPU sampling.
pub fn fast_config() -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: 0.2,
        // Generous, so that a busy CI machine never makes a live pod look stale.
        stale_after_seconds: Some(5.0),
        cpu_factor: 0.0,
        ..BaseConfig::default()
    }
}

/// Starts pod `index` of service `room` in namespace `default` with `load`.
pub async fn pod(store: &Store, index: u32, load: u32, config: &BaseConfig) -> ServerDriver {
    let s = ServerDriver::new(
        store.clone(),
        ServerInfo::new(NS, SVC, index),
        config.clone(),
    )
    .unwrap();
    s.set_load_state(load).unwrap();
    s.start().await.unwrap();
    s
}

/// An initialised gateway in namespace `default`.
pub fn client(store: &Store, config: &BaseConfig) -> ClientDriver {
    let c = ClientDriver::new(
        store.clone(),
        ServerInfo::new(NS, "gateway", 0),
        config.clone(),
    )
    .unwrap();
    c.init().unwrap();
    c
}

// ---------------------------------------------------------------------------------------------
// Link-operation vectors (tests/vectors/links.json), shared with every binding.

async fn run_vectors(store: Store) {
    let doc: Value = serde_json::from_str(LINK_VECTORS).expect("the link vectors are valid JSON");
    let default_ns = doc["namespace"].as_str().unwrap();
    let mut steps_run = 0;
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let at = format!("{name} / step {i} ({})", step["op"]);
            run_step(&store, default_ns, step, &at).await;
            steps_run += 1;
        }
    }
    let in_file: usize = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["steps"].as_array().unwrap().len())
        .sum();
    assert_eq!(steps_run, in_file, "vector steps skipped");
    assert!(in_file >= 83, "the vector file shrank to {in_file} steps");
}

async fn run_step(store: &Store, default_ns: &str, step: &Value, at: &str) {
    let ns = step
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(default_ns);
    let s = |k: &str| step[k].as_str().unwrap_or_default().to_string();
    let (uid, svc) = (s("uid"), s("service"));
    let expect = &step["expect"];
    let pod = || ident::pod_index("pod", step["pod"].as_i64().unwrap());
    let ttl = || LinkTtl::from_secs(step["ttl"].as_i64().unwrap());
    let delay = step["delay"].as_i64().unwrap_or(0);
    let got: crate::Result<Value> = async {
        Ok(match step["op"].as_str().unwrap() {
            "set_link" => {
                let prev = store.set_link(ns, &uid, &svc, pod()?, ttl()?).await?;
                serde_json::json!({ "previous": prev })
            }
            "set_link_if_absent" => link_json(Some(store.set_link_if_absent(ns, &uid, &svc, pod()?, ttl()?).await?)),
            "try_set_link" => {
                let o = store.try_set_link(ns, &uid, &svc, pod()?, ttl()?).await?;
                serde_json::json!({ "accepted": o.accepted, "owner": o.owner, "previous": o.previous })
            }
            "remove_link" => serde_json::json!({ "removed": store.remove_link(ns, &uid, &svc, delay).await? }),
            "remove_link_if" => {
                serde_json::json!({ "removed": store.remove_link_if(ns, &uid, &svc, pod()?, delay).await? })
            }
            "get_link" => link_json(store.get_link(ns, &uid, &svc).await?),
            "get_link_if_persist" => serde_json::json!({ "pod": store.get_link_if_persist(ns, &uid, &svc).await? }),
            "get_link_services" => serde_json::json!({ "services": store.get_link_services(ns, &uid).await? }),
            "batch_get_links" => {
                let uids: Vec<String> = serde_json::from_value(step["uids"].clone()).unwrap();
                let pods: BTreeMap<String, Vec<String>> = store
                    .batch_get_links(ns, &uids, &svc)
                    .await?
                    .into_iter()
                    .map(|(p, u)| (p.to_string(), u))
                    .collect();
                serde_json::json!({ "pods": pods })
            }
            op => panic!("{at}: unknown op {op}"),
        })
    }
    .await;
    match (got, expect.get("error")) {
        (Err(e), Some(code)) => assert_eq!(e.kind().as_str(), code.as_str().unwrap(), "{at}: {e}"),
        (Ok(v), Some(code)) => panic!("{at}: expected {code}, got {v}"),
        (Err(e), None) => panic!("{at}: unexpected error {e}"),
        (Ok(v), None) => check_expect(&v, expect, at),
    }
}

fn link_json(l: Option<crate::Link>) -> Value {
    match l {
        None => serde_json::json!({ "pod": null }),
        Some(l) => serde_json::json!({
            "pod": l.pod_index,
            "persistent": l.is_persistent(),
            "ttl": l.ttl.map(|t| t.as_secs_f64()),
        }),
    }
}

fn check_expect(got: &Value, expect: &Value, at: &str) {
    for (k, want) in expect.as_object().unwrap() {
        match k.as_str() {
            "ttl_min" => {
                let ttl = got["ttl"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{at}: no ttl in {got}"));
                assert!(ttl >= want.as_f64().unwrap(), "{at}: ttl {ttl} < {want}");
            }
            "ttl_max" => {
                let ttl = got["ttl"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{at}: no ttl in {got}"));
                assert!(ttl <= want.as_f64().unwrap(), "{at}: ttl {ttl} > {want}");
            }
            _ => assert_eq!(&got[k], want, "{at}: field {k} of {got}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driver behaviour.

async fn pod_zero_is_routable_and_links_are_sticky(store: Store) {
    let cfg = fast_config();
    let _p0 = pod(&store, 0, 0, &cfg).await;
    let c = client(&store, &cfg);
    assert_eq!(c.compute_linked_pod(NS, "u1", SVC).await.unwrap(), 0);
    assert_eq!(c.compute_linked_pod("", "u1", SVC).await.unwrap(), 0);
    assert_eq!(c.get_linked_in_cache(NS, "u1", SVC).unwrap(), Some(0));
    let link = store.get_link(NS, "u1", SVC).await.unwrap().unwrap();
    assert_eq!(link.pod_index, 0);
    assert!(
        !link.is_persistent(),
        "a gateway's placement is a temporary link"
    );
    // Another gateway (a second client driver) sees the same pod.
    let other = client(&store, &cfg);
    assert_eq!(other.compute_linked_pod(NS, "u1", SVC).await.unwrap(), 0);
}

async fn placement_spreads_and_prefers_light_pods(store: Store) {
    let cfg = BaseConfig {
        load_range: 100,
        ..fast_config()
    };
    let _p0 = pod(&store, 0, 10, &cfg).await;
    let _p1 = pod(&store, 1, 20, &cfg).await;
    let _p2 = pod(&store, 2, 900, &cfg).await; // outside the load range: never chosen
    let c = client(&store, &cfg);
    let mut counts = BTreeMap::new();
    for i in 0..600 {
        let p = c
            .compute_linked_pod(NS, &format!("u{i}"), SVC)
            .await
            .unwrap();
        *counts.entry(p).or_insert(0u32) += 1;
    }
    assert_eq!(counts.get(&2), None, "{counts:?}");
    // p2c on load + placements since the snapshot spreads evenly between pods 0 and 1.
    let (a, b) = (counts[&0], counts[&1]);
    assert!(a.abs_diff(b) < 120, "{counts:?}");

    // Within the load range, the lighter pod takes more: loads 0 and 300 (load range 1000),
    // 600 new users. p2c on load + placements gives pod 0 the first ~300 and half of the rest
    // (~450); placement that ignores load gives it ~300.
    // No refresh during the loop (a refresh starts a new snapshot with no placements counted,
    // which a slow, busy machine would hit with the fast config's 0.2 s period).
    let wide = BaseConfig {
        load_range: 1000,
        service_state_update_period_seconds: 30.0,
        stale_after_seconds: Some(60.0),
        slow_start_seconds: Some(0.0),
        ..fast_config()
    };
    let lobby = |i: u32, load: u32| {
        let s = ServerDriver::new(store.clone(), ServerInfo::new(NS, "lobby", i), wide.clone())
            .unwrap();
        s.set_load_state(load).unwrap();
        s
    };
    let (light, heavy) = (lobby(0, 0), lobby(1, 300));
    light.start().await.unwrap();
    heavy.start().await.unwrap();
    let g = client(&store, &wide);
    if store.backend().events().is_some() {
        // The pods' start events re-read the snapshot when they arrive; a link event sent
        // after them arrives after them (one stream, in order): once it is seen, none is left.
        let seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = seen.clone();
        g.on_link_changed(move |c| {
            if c.uid == "barrier" {
                s.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
        for pod in [0, 1] {
            store
                .set_link(NS, "barrier", "lobby", pod, LinkTtl::Persistent)
                .await
                .unwrap();
        }
        eventually(Duration::from_secs(5), "the barrier event", || {
            let s = seen.load(std::sync::atomic::Ordering::SeqCst);
            async move { s }
        })
        .await;
    }
    // On a Redis Cluster the pods' start events and the barrier are written on different nodes
    // and reach the subscriber over the cluster bus in no set order, so a start event can still
    // arrive after the barrier and re-read the snapshot mid-loop (a new snapshot counts no
    // placements yet, which skews the split).
    // A loop during which the snapshot was re-read is run again, with new users on a fresh
    // snapshot (placements are counted per snapshot); the start events are two, so a third
    // attempt always runs on one snapshot.
    let reads = || {
        g.metrics()
            .services
            .iter()
            .find(|s| s.service == "lobby")
            .map_or(0, |s| s.snapshot_reads)
    };
    for attempt in 0..3 {
        g.route_info().refresh_service("lobby").await.unwrap(); // a snapshot with none counted
        let before = reads();
        let mut light_users = 0;
        for i in 0..600 {
            if g.compute_linked_pod(NS, &format!("l{attempt}-{i}"), "lobby")
                .await
                .unwrap()
                == 0
            {
                light_users += 1;
            }
        }
        if reads() != before {
            continue; // re-read during the loop: its split mixes two snapshots
        }
        assert!(
            (400..=500).contains(&light_users),
            "pod 0 (load 0) got {light_users} of 600 against pod 1 (load 300)"
        );
        return;
    }
    panic!("the lobby snapshot was re-read during each of three loops");
}

async fn concurrent_computes_of_one_new_user_agree(store: Store) {
    let cfg = BaseConfig {
        placement: Placement::Random,
        ..fast_config()
    };
    let pods: Vec<_> = futures_join((0..4).map(|i| pod(&store, i, 0, &cfg))).await;
    let gateways: Vec<Arc<ClientDriver>> = (0..4).map(|_| Arc::new(client(&store, &cfg))).collect();
    for round in 0..5 {
        let uid = format!("hot-{round}");
        let mut tasks = Vec::new();
        for t in 0..64 {
            let g = gateways[t % gateways.len()].clone();
            let uid = uid.clone();
            tasks.push(tokio::spawn(async move {
                g.compute_linked_pod(NS, &uid, SVC).await.unwrap()
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        let first = got[0];
        assert!(got.iter().all(|p| *p == first), "round {round}: {got:?}");
        assert_eq!(
            store
                .get_link(NS, &uid, SVC)
                .await
                .unwrap()
                .unwrap()
                .pod_index,
            first
        );
    }
    drop(pods);
}

async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for f in fs {
        out.push(f.await);
    }
    out
}

async fn draining_keeps_users_and_takes_no_new_ones(store: Store) {
    let cfg = fast_config();
    let p0 = pod(&store, 0, 0, &cfg).await;
    let _p1 = pod(&store, 1, 1000, &cfg).await;
    let c = client(&store, &cfg);
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    c.on_routing_state_changed(move |ch| seen.lock().unwrap().push(ch.clone()));
    // Pod 1 is outside the load range of pod 0: the first users all go to pod 0.
    for i in 0..10 {
        assert_eq!(
            c.compute_linked_pod(NS, &format!("old{i}"), SVC)
                .await
                .unwrap(),
            0
        );
    }
    p0.set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();
    // Published at once: a fresh read sees it without waiting for a period.
    let states = store.pod_states(NS, SVC).await.unwrap();
    assert_eq!(states.pods[0].routing_state, RoutingState::DenyNewCall);
    c.refresh_service(SVC).await.unwrap();
    assert_eq!(c.routable_pods(SVC).await.unwrap(), vec![1]);
    assert_eq!(c.alive_pods(SVC).await.unwrap(), vec![0, 1]);
    for i in 0..10 {
        let uid = format!("old{i}");
        assert_eq!(
            c.compute_linked_pod(NS, &uid, SVC).await.unwrap(),
            0,
            "cached user stays"
        );
        assert_eq!(c.cache_expired(NS, &uid, SVC).unwrap(), Some(0));
        assert_eq!(
            c.compute_linked_pod(NS, &uid, SVC).await.unwrap(),
            0,
            "linked user stays"
        );
    }
    for i in 0..10 {
        assert_eq!(
            c.compute_linked_pod(NS, &format!("new{i}"), SVC)
                .await
                .unwrap(),
            1
        );
    }
    eventually(
        Duration::from_secs(5),
        "a DENY_NEW_CALL change reported",
        || {
            let changes = changes.clone();
            async move {
                changes.lock().unwrap().iter().any(|ch| {
                    ch.pod_index == 0
                        && ch.old == Some(RoutingState::Ready)
                        && ch.new == Some(RoutingState::DenyNewCall)
                })
            }
        },
    )
    .await;
}

async fn shutdown_moves_temporary_links_and_reports_persistent_ones(store: Store) {
    let cfg = fast_config();
    let p0 = pod(&store, 0, 0, &cfg).await;
    let _p1 = pod(&store, 1, 1000, &cfg).await;
    let c = client(&store, &cfg);
    assert_eq!(c.compute_linked_pod(NS, "temp", SVC).await.unwrap(), 0);
    assert_eq!(p0.set_linked_pod(NS, "owned", SVC, 0).await.unwrap(), None);
    assert_eq!(c.compute_linked_pod(NS, "owned", SVC).await.unwrap(), 0);
    p0.stop().await.unwrap();
    p0.stop().await.unwrap(); // idempotent
    assert_eq!(
        store.pod_states(NS, SVC).await.unwrap().pods[0].routing_state,
        RoutingState::Shutdown
    );
    assert_eq!(
        c.get_workload_state(SVC).await.unwrap().as_deref(),
        Some("SHUTDOWN")
    );
    c.refresh_service(SVC).await.unwrap();
    assert_eq!(c.alive_pods(SVC).await.unwrap(), vec![1]);
    assert_eq!(
        c.compute_linked_pod(NS, "temp", SVC).await.unwrap(),
        1,
        "temporary link moves"
    );
    let moved = store.get_link(NS, "temp", SVC).await.unwrap().unwrap();
    assert_eq!(moved.pod_index, 1);
    let e = c.compute_linked_pod(NS, "owned", SVC).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PodUnavailable, "{e}");
    assert_eq!(e.pod_index(), Some(0));
    assert_eq!(
        store
            .get_link(NS, "owned", SVC)
            .await
            .unwrap()
            .unwrap()
            .pod_index,
        0,
        "left alone"
    );
}

async fn no_routable_pod_is_an_error_but_linked_users_keep_their_pod(store: Store) {
    let cfg = fast_config();
    let c = client(&store, &cfg);
    let e = c.compute_linked_pod(NS, "u", SVC).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoAvailablePod);
    assert_eq!(
        c.best_pod(SVC).await.unwrap_err().kind(),
        ErrorKind::NoAvailablePod
    );
    let p3 = pod(&store, 3, 0, &cfg).await;
    c.refresh_service(SVC).await.unwrap();
    assert_eq!(c.compute_linked_pod(NS, "u", SVC).await.unwrap(), 3);
    p3.set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();
    c.refresh_service(SVC).await.unwrap();
    c.cache_expired(NS, "u", SVC).unwrap();
    assert_eq!(c.compute_linked_pod(NS, "u", SVC).await.unwrap(), 3);
    assert_eq!(
        c.compute_linked_pod(NS, "v", SVC).await.unwrap_err().kind(),
        ErrorKind::NoAvailablePod
    );
    assert_eq!(
        store.get_link(NS, "v", SVC).await.unwrap(),
        None,
        "nothing written"
    );
}

async fn a_pod_that_stops_publishing_goes_stale(store: Store) {
    let cfg = BaseConfig {
        stale_after_seconds: Some(1.0),
        ..fast_config()
    };
    let p0 = pod(&store, 0, 0, &cfg).await;
    let _p1 = pod(&store, 1, 1000, &cfg).await;
    let c = client(&store, &cfg);
    assert_eq!(c.compute_linked_pod(NS, "u", SVC).await.unwrap(), 0);
    drop(p0); // dies without stop: no SHUTDOWN is published
    eventually(Duration::from_secs(6), "pod 0 to go stale", || async {
        c.alive_pods(SVC).await.unwrap() == vec![1]
    })
    .await;
    assert_eq!(
        c.compute_linked_pod(NS, "u", SVC).await.unwrap(),
        1,
        "the cached link is dropped"
    );
    assert_eq!(c.compute_linked_pod(NS, "w", SVC).await.unwrap(), 1);
}

async fn bad_identifiers_are_rejected_and_write_nothing(store: Store) {
    let cfg = fast_config();
    let _p0 = pod(&store, 0, 0, &cfg).await;
    let c = client(&store, &cfg);
    for (ns, uid, svc) in [
        (NS, "a}b", SVC),
        (NS, "a{b", SVC),
        (NS, "", SVC),
        ("a:b", "u", SVC),
        ("UPPER", "u", SVC),
        (NS, "u", "ro:om"),
        (NS, "u", ""),
        (NS, &*"x".repeat(513), SVC),
    ] {
        let e = c.compute_linked_pod(ns, uid, svc).await.unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidArgument,
            "{ns:?} {uid:?} {svc:?}: {e}"
        );
    }
    let e = c.compute_linked_pod("other", "u", SVC).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NamespaceNotLocal);
    let srv = pod(&store, 1, 0, &cfg).await;
    assert_eq!(
        srv.set_linked_pod(NS, "x}y", SVC, 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        srv.set_linked_pod("other", "xy", SVC, 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NamespaceNotLocal
    );
    assert_eq!(
        c.set_linked_pod_if_absent(NS, "u", SVC, 1, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        c.set_workload_state(SVC, "not a word")
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    for uid in ["u", "xy", "a", "b"] {
        assert_eq!(
            store.get_link(NS, uid, SVC).await.unwrap(),
            None,
            "nothing written for {uid}"
        );
        assert!(store.get_link_services(NS, uid).await.unwrap().is_empty());
    }
}

async fn server_lifecycle_and_workload_state(store: Store) {
    let cfg = fast_config();
    let s = ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, 0), cfg.clone()).unwrap();
    s.set_load_state(42).unwrap();
    assert_eq!(s.get_load_state(), 42);
    s.start().await.unwrap();
    assert_eq!(
        s.start().await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let c = client(&store, &cfg);
    assert!(c.is_workload_ready(SVC).await.unwrap());
    assert_eq!(c.pod_states(SVC).await.unwrap()[0].load, 42);
    s.set_load_state(77).unwrap();
    eventually(
        Duration::from_secs(5),
        "the new load to be published",
        || async { store.pod_states(NS, SVC).await.unwrap().pods[0].load == 77 },
    )
    .await;
    assert_eq!(s.get_routing_state(), RoutingState::Ready);
    s.stop().await.unwrap();
    assert!(!c.is_workload_ready(SVC).await.unwrap());
    assert_eq!(s.start().await.unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(s.set_load_state(1).unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(
        s.set_routing_state(RoutingState::Ready)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        s.set_linked_pod(NS, "u", SVC, 0).await.unwrap_err().kind(),
        ErrorKind::Closed
    );

    // Workload batches and tags.
    c.set_workload_state("chat", "READY").await.unwrap();
    assert_eq!(
        c.batch_get_workload_state(&["chat", SVC, "none"])
            .await
            .unwrap(),
        vec![Some("READY".into()), Some("SHUTDOWN".into()), None]
    );
    c.set_global_service_name_tag("lobby", "room-v2")
        .await
        .unwrap();
    assert_eq!(
        c.get_service_name_by_tag("lobby").await.unwrap().as_deref(),
        Some("room-v2")
    );
    assert_eq!(c.get_service_name_by_tag("nope").await.unwrap(), None);
}

async fn server_link_operations(store: Store) {
    let cfg = fast_config();
    let s = pod(&store, 2, 0, &cfg).await;
    let c = client(&store, &cfg);
    assert_eq!(s.set_linked_pod("", "u", SVC, 2).await.unwrap(), None);
    let o = s.try_set_linked_pod(NS, "u", SVC, 3).await.unwrap();
    assert!(!o.accepted);
    assert_eq!((o.owner, o.previous), (2, Some(2)));
    assert_eq!(
        c.get_link_service(NS, "u").await.unwrap(),
        BTreeMap::from([(SVC.to_string(), 2)])
    );
    assert_eq!(
        c.get_linked_pod_in_cache_or_if_persist(NS, "u", SVC)
            .await
            .unwrap(),
        Some(2)
    );
    assert!(!s
        .remove_linked_pod_with_id(NS, "u", SVC, 3, 0)
        .await
        .unwrap());
    assert!(s
        .remove_linked_pod_with_id(NS, "u", SVC, 2, 0)
        .await
        .unwrap());
    assert_eq!(
        c.get_linked_pod_not_cache(NS, "u", SVC).await.unwrap(),
        None
    );
    if store.backend().events().is_some() {
        // Propagation: the removal reaches the gateway's cache (SPEC §11).
        eventually(
            Duration::from_secs(1),
            "the removal drops the entry",
            || async { c.get_linked_in_cache(NS, "u", SVC).unwrap().is_none() },
        )
        .await;
        assert_eq!(c.cache_expired(NS, "u", SVC).unwrap(), None);
    } else {
        assert_eq!(
            c.get_linked_in_cache(NS, "u", SVC).unwrap(),
            Some(2),
            "without propagation the cache still holds it"
        );
        assert_eq!(c.cache_expired(NS, "u", SVC).unwrap(), Some(2));
    }
    assert_eq!(c.get_linked_pod(NS, "u", SVC).await.unwrap(), None);
    let l = c
        .set_linked_pod_if_absent(NS, "v", SVC, 2, 100)
        .await
        .unwrap();
    assert_eq!(l.pod_index, 2);
    assert!(s.remove_linked_pod(NS, "v", SVC, 0).await.unwrap());
    c.set_cache(NS, "w", SVC, 2).await.unwrap();
    assert_eq!(c.compute_linked_pod(NS, "w", SVC).await.unwrap(), 2);
    assert_eq!(
        store.get_link(NS, "w", SVC).await.unwrap(),
        None,
        "answered from the cache"
    );
    let batch = c.batch_get_linked_pod(NS, &["w", "x"], SVC).await.unwrap();
    assert!(batch.is_empty());
}

async fn cache_never_outlives_a_temporary_link(store: Store) {
    // Temporary links live 3 s, the cache margin is 2 s: a cached temporary link lives 1 s.
    let cfg = BaseConfig {
        temp_link_info_cache_time_seconds: 3,
        user_link_info_cache_time_seconds: 1,
        ..fast_config()
    };
    let _p0 = pod(&store, 0, 0, &cfg).await;
    let c = client(&store, &cfg);
    assert_eq!(c.compute_linked_pod(NS, "u", SVC).await.unwrap(), 0);
    assert_eq!(c.get_linked_in_cache(NS, "u", SVC).unwrap(), Some(0));
    eventually(
        Duration::from_secs(3),
        "the cache entry to expire",
        || async { c.get_linked_in_cache(NS, "u", SVC).unwrap().is_none() },
    )
    .await;
    assert!(
        store.get_link(NS, "u", SVC).await.unwrap().is_some(),
        "the store still has the link"
    );
    eventually(
        Duration::from_secs(6),
        "the link to expire in the store",
        || async { store.get_link(NS, "u", SVC).await.unwrap().is_none() },
    )
    .await;
}

async fn closed_and_uninitialised_clients(store: Store) {
    let cfg = fast_config();
    let c = ClientDriver::new(store.clone(), ServerInfo::new(NS, "gw", 0), cfg).unwrap();
    assert_eq!(
        c.compute_linked_pod(NS, "u", SVC).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    c.init().unwrap();
    c.init().unwrap();
    c.close();
    c.close();
    assert_eq!(
        c.compute_linked_pod(NS, "u", SVC).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(c.init().unwrap_err().kind(), ErrorKind::Closed);
}

/// Polls `f` until it returns true or `within` passes (no sleeps as synchronisation).
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every scenario of the suite, by name.
pub const SCENARIOS: &[&str] = &[
    "run_vectors",
    "pod_zero_is_routable_and_links_are_sticky",
    "placement_spreads_and_prefers_light_pods",
    "concurrent_computes_of_one_new_user_agree",
    "draining_keeps_users_and_takes_no_new_ones",
    "shutdown_moves_temporary_links_and_reports_persistent_ones",
    "no_routable_pod_is_an_error_but_linked_users_keep_their_pod",
    "a_pod_that_stops_publishing_goes_stale",
    "bad_identifiers_are_rejected_and_write_nothing",
    "server_lifecycle_and_workload_state",
    "server_link_operations",
    "cache_never_outlives_a_temporary_link",
    "closed_and_uninitialised_clients",
];

/// Runs one scenario against `store` (a fresh, empty store). Panics with the reason on failure.
pub async fn run_scenario(name: &str, store: Store) {
    match name {
        "run_vectors" => run_vectors(store).await,
        "pod_zero_is_routable_and_links_are_sticky" => {
            pod_zero_is_routable_and_links_are_sticky(store).await
        }
        "placement_spreads_and_prefers_light_pods" => {
            placement_spreads_and_prefers_light_pods(store).await
        }
        "concurrent_computes_of_one_new_user_agree" => {
            concurrent_computes_of_one_new_user_agree(store).await
        }
        "draining_keeps_users_and_takes_no_new_ones" => {
            draining_keeps_users_and_takes_no_new_ones(store).await
        }
        "shutdown_moves_temporary_links_and_reports_persistent_ones" => {
            shutdown_moves_temporary_links_and_reports_persistent_ones(store).await
        }
        "no_routable_pod_is_an_error_but_linked_users_keep_their_pod" => {
            no_routable_pod_is_an_error_but_linked_users_keep_their_pod(store).await
        }
        "a_pod_that_stops_publishing_goes_stale" => {
            a_pod_that_stops_publishing_goes_stale(store).await
        }
        "bad_identifiers_are_rejected_and_write_nothing" => {
            bad_identifiers_are_rejected_and_write_nothing(store).await
        }
        "server_lifecycle_and_workload_state" => server_lifecycle_and_workload_state(store).await,
        "server_link_operations" => server_link_operations(store).await,
        "cache_never_outlives_a_temporary_link" => {
            cache_never_outlives_a_temporary_link(store).await
        }
        "closed_and_uninitialised_clients" => closed_and_uninitialised_clients(store).await,
        other => panic!("unknown scenario {other:?}"),
    }
}

/// Runs every scenario, each against a fresh store from `make_store`. Panics on the first
/// failure, naming the scenario.
pub async fn run_store_suite<F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Store>,
{
    for name in SCENARIOS {
        eprintln!("stateful-route testkit: {name}");
        run_scenario(name, make_store().await).await;
    }
}
