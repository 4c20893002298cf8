//! Scale-out: a real Redis Cluster (3 masters + 3 replicas) and a Sentinel-managed master, all
//! `redis-server` processes on loopback started here. The behaviour suite and the link vectors
//! run on the cluster; a master is killed (by pid) while computes run; a sentinel fails over.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{free_port, lease_port, spawn_redis_on, spawn_redis_with, unique_prefix};
use stateful_route::testkit::{run_scenario, SCENARIOS};
use stateful_route::{
    BaseConfig, ClientDriver, ErrorKind, LinkTtl, ServerDriver, ServerInfo, Store, StoreConfig,
};

struct Cluster {
    ports: Vec<u16>,
    pids: Vec<u32>,
}

fn info(port: u16, section: &str) -> String {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut con = client.get_connection().unwrap();
    redis::cmd("INFO")
        .arg(section)
        .query(&mut con)
        .unwrap_or_default()
}

fn cluster_info(port: u16) -> String {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return String::new();
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return String::new();
    };
    redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut con)
        .unwrap_or_default()
}

fn poll(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts six nodes and joins them with `redis-cli --cluster create`.
fn start_cluster() -> Cluster {
    // Each node's cluster bus gets a leased port of its own (`--cluster-port`), never port+10000.
    let (ports, pids): (Vec<u16>, Vec<u32>) = (0..6)
        .map(|_| {
            spawn_redis_with(|p| {
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-port",
                    &lease_port().to_string(),
                ]
                .map(String::from)
                .to_vec()
            })
        })
        .unzip();
    let mut cmd = Command::new("redis-cli");
    cmd.arg("--cluster").arg("create");
    for p in &ports {
        cmd.arg(format!("127.0.0.1:{p}"));
    }
    let out = cmd
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    poll(
        Duration::from_secs(30),
        "cluster_state:ok on every node",
        || {
            ports
                .iter()
                .all(|p| cluster_info(*p).contains("cluster_state:ok"))
        },
    );
    Cluster { ports, pids }
}

/// One cluster for the suite tests of this binary (each test uses its own key prefix).
fn shared_cluster() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(start_cluster)
}

fn urls(c: &Cluster) -> Vec<String> {
    c.ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect()
}

async fn cluster_store(c: &Cluster) -> Store {
    let urls = urls(c);
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let cfg = StoreConfig {
        key_prefix: unique_prefix(),
        ..StoreConfig::default()
    };
    Store::redis_cluster_with(&seeds, &cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_behaviour_suite_and_vectors_pass_on_a_cluster() {
    let c = shared_cluster();
    for name in SCENARIOS {
        eprintln!("cluster: {name}");
        run_scenario(name, cluster_store(c).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_reads_across_many_slots_match_one_node() {
    let c = shared_cluster();
    let cluster = cluster_store(c).await;
    let single = Store::memory();
    let uids: Vec<String> = (0..500).map(|i| format!("batch-user-{i}")).collect();
    for (i, uid) in uids.iter().enumerate() {
        if i % 7 == 3 {
            continue; // some users have no link
        }
        let ttl = if i % 2 == 0 {
            LinkTtl::Persistent
        } else {
            LinkTtl::Seconds(300)
        };
        for s in [&cluster, &single] {
            s.set_link("default", uid, "room", (i % 5) as u32, ttl)
                .await
                .unwrap();
        }
    }
    // Reverse order, so that input order is not key order.
    let asked: Vec<&String> = uids.iter().rev().collect();
    let from_cluster = cluster
        .batch_get_links("default", &asked, "room")
        .await
        .unwrap();
    let from_single = single
        .batch_get_links("default", &asked, "room")
        .await
        .unwrap();
    assert_eq!(from_cluster, from_single);
    let linked = (0..500).filter(|i| i % 7 != 3).count();
    assert_eq!(from_cluster.values().map(Vec::len).sum::<usize>(), linked);
    // The user hashes are single-slot with their links.
    assert_eq!(
        cluster
            .get_link_services("default", "batch-user-0")
            .await
            .unwrap(),
        BTreeMap::from([("room".to_string(), 0)])
    );
}

fn is_master(port: u16) -> bool {
    info(port, "replication").contains("role:master")
}

fn master_offsets_reached(c: &Cluster) -> bool {
    // Every replica has applied everything its master sent (so no acknowledged write is lost).
    c.ports.iter().filter(|p| is_master(**p)).all(|m| {
        let inf = info(*m, "replication");
        let master_offset: i64 = inf
            .lines()
            .find_map(|l| l.strip_prefix("master_repl_offset:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1);
        inf.lines()
            .filter(|l| l.starts_with("slave") && l.contains("offset="))
            .all(|l| {
                l.split(',')
                    .any(|kv| kv == format!("offset={master_offset}"))
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_and_loses_no_replicated_link() {
    let c = start_cluster(); // a cluster of its own: this test kills one of its masters
    let store = cluster_store(&c).await;
    let cfg = BaseConfig {
        service_state_update_period_seconds: 0.5,
        stale_after_seconds: Some(30.0),
        cpu_factor: 0.0,
        ..BaseConfig::default()
    };
    let mut pods = Vec::new();
    for i in 0..3 {
        let p = ServerDriver::new(
            store.clone(),
            ServerInfo::new("default", "room", i),
            cfg.clone(),
        )
        .unwrap();
        p.start().await.unwrap();
        pods.push(p);
    }
    for i in 0..300 {
        pods[i % 3]
            .set_linked_pod("", &format!("owned-{i}"), "room", (i % 3) as u32)
            .await
            .unwrap();
    }
    let gateway = Arc::new(
        ClientDriver::new(store.clone(), ServerInfo::new("default", "gw", 0), cfg).unwrap(),
    );
    gateway.init().unwrap();
    poll(Duration::from_secs(10), "replicas to catch up", || {
        master_offsets_reached(&c)
    });

    // Computes of new users run on while a master is killed.
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let worker = {
        let (g, stop, outcomes) = (gateway.clone(), stop.clone(), outcomes.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = match g
                    .compute_linked_pod("", &format!("during-{i}"), "room")
                    .await
                {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.kind().as_str().to_string(),
                };
                *outcomes.lock().unwrap().entry(key).or_default() += 1;
                i += 1;
            }
        })
    };
    let victim = c.ports.iter().position(|p| is_master(*p)).unwrap();
    let its_replica = *c
        .ports
        .iter()
        .find(|p| info(**p, "replication").contains(&format!("master_port:{}", c.ports[victim])))
        .expect("the victim has a replica");
    let killed_at = Instant::now();
    unsafe {
        libc::kill(c.pids[victim] as i32, libc::SIGKILL);
    }
    let survivors: Vec<u16> = c
        .ports
        .iter()
        .copied()
        .filter(|p| *p != c.ports[victim])
        .collect();
    poll(
        Duration::from_secs(30),
        "the victim's replica to be promoted",
        || is_master(its_replica),
    );
    poll(
        Duration::from_secs(30),
        "cluster_state:ok on the survivors",
        || {
            survivors
                .iter()
                .all(|p| cluster_info(*p).contains("cluster_state:ok"))
        },
    );
    let promoted = killed_at.elapsed();
    // The drivers keep working: new users are placed again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if gateway
            .compute_linked_pod(
                "",
                &format!("after-{}", killed_at.elapsed().as_millis()),
                "room",
            )
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "computes did not recover after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recovered = killed_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    worker.await.expect("no panic in the worker");
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!("failover: replica promoted {promoted:?} and computes recovered {recovered:?} after the kill; in-flight outcomes {outcomes:?}");
    // In-flight calls either succeeded or failed with a typed store error.
    for kind in outcomes.keys() {
        assert!(
            ["ok", "STORE_UNAVAILABLE", "TIMEOUT", "STORE_ERROR"].contains(&kind.as_str()),
            "unexpected outcome {kind}"
        );
    }
    // Every persistent link written (and replicated) before the kill is still there.
    for i in 0..300 {
        let uid = format!("owned-{i}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let got = loop {
            match store.get_link("default", &uid, "room").await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(
                        matches!(e.kind(), ErrorKind::StoreUnavailable | ErrorKind::Timeout),
                        "{e}"
                    );
                    assert!(Instant::now() < deadline, "{uid}: {e}");
                }
            }
        };
        assert_eq!(
            got.map(|l| (l.pod_index, l.is_persistent())),
            Some(((i % 3) as u32, true)),
            "{uid}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_follows_a_sentinel_failover() {
    let master = free_port();
    let master_pid = spawn_redis_on(master, &[]);
    let replica = free_port();
    spawn_redis_on(replica, &["--replicaof", "127.0.0.1", &master.to_string()]);
    poll(Duration::from_secs(10), "the replica to sync", || {
        info(replica, "replication").contains("master_link_status:up")
    });
    let sentinel = free_port();
    spawn_redis_on(
        sentinel,
        &[
            "--sentinel",
            &format!("sentinel monitor main 127.0.0.1 {master} 1"),
            "sentinel down-after-milliseconds main 1000",
            "sentinel failover-timeout main 5000",
        ],
    );
    let url = format!("redis://127.0.0.1:{sentinel}");
    let cfg = StoreConfig {
        key_prefix: unique_prefix(),
        connect_timeout: Duration::from_secs(1),
        command_timeout: Duration::from_secs(1),
        ..StoreConfig::default()
    };
    let store = Store::redis_sentinel_with(&[url.as_str()], "main", &cfg)
        .await
        .unwrap();
    store
        .set_link("default", "before", "room", 1, LinkTtl::Persistent)
        .await
        .unwrap();
    // A gateway on its own sentinel store, with its event stream on the master.
    let gw = ClientDriver::new(
        Store::redis_sentinel_with(&[url.as_str()], "main", &cfg)
            .await
            .unwrap(),
        ServerInfo::new("default", "gw", 0),
        BaseConfig::default(),
    )
    .unwrap();
    gw.init().unwrap();
    let hub = gw.store().backend().events().unwrap();
    poll(Duration::from_secs(10), "event stream connected", || {
        hub.is_connected()
    });
    assert_eq!(
        gw.get_linked_pod("default", "before", "room")
            .await
            .unwrap(),
        Some(1)
    );
    let gaps = hub.gaps();
    poll(
        Duration::from_secs(10),
        "the replica to have the link",
        || info(replica, "keyspace").contains("keys="),
    );

    unsafe {
        libc::kill(master_pid as i32, libc::SIGKILL);
    }
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(40);
    let mut errors = BTreeMap::<String, usize>::new();
    loop {
        match store
            .set_link("default", "after", "room", 2, LinkTtl::Persistent)
            .await
        {
            Ok(_) => break,
            Err(e) => *errors.entry(e.kind().as_str().to_string()).or_default() += 1,
        }
        assert!(
            Instant::now() < deadline,
            "the store did not follow the failover: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "sentinel: writes resumed {:?} after the master died; errors meanwhile {errors:?}",
        stopped.elapsed()
    );
    assert!(is_master(replica), "the replica was promoted");
    assert_eq!(
        store
            .get_link("default", "before", "room")
            .await
            .unwrap()
            .map(|l| l.pod_index),
        Some(1)
    );
    assert_eq!(
        store
            .get_link("default", "after", "room")
            .await
            .unwrap()
            .map(|l| l.pod_index),
        Some(2)
    );
    for kind in errors.keys() {
        assert!(
            ["STORE_UNAVAILABLE", "TIMEOUT", "STORE_ERROR"].contains(&kind.as_str()),
            "{kind}"
        );
    }
    // The gateway's stream saw the gap (its cache emptied) and resumed on the new master:
    // a move made there reaches it.
    poll(
        Duration::from_secs(20),
        "the event stream resumes on the new master",
        || hub.gaps() > gaps && hub.is_connected(),
    );
    assert_eq!(
        gw.get_linked_in_cache("default", "before", "room").unwrap(),
        None
    );
    assert_eq!(
        gw.get_linked_pod("default", "before", "room")
            .await
            .unwrap(),
        Some(1)
    );
    let moved = Instant::now();
    store
        .set_link("default", "before", "room", 3, LinkTtl::Persistent)
        .await
        .unwrap();
    poll(
        Duration::from_secs(1),
        "the move after the failover reaches the gateway",
        || {
            gw.get_linked_in_cache("default", "before", "room")
                .unwrap()
                .is_none()
        },
    );
    eprintln!(
        "sentinel: a move after the failover reached the gateway in {:?}",
        moved.elapsed()
    );
}

/// Propagation on a cluster: three gateways whose event subscribers sit on different nodes (each
/// store's first seed) follow moves made by a writer, whose scripts run on whichever master owns
/// each user's slot: a PUBLISH on any node reaches subscribers on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_published_on_any_node_reach_gateways_on_every_node() {
    let c = shared_cluster();
    let all = urls(c);
    let prefix = unique_prefix();
    let cfg = StoreConfig {
        key_prefix: prefix.clone(),
        ..StoreConfig::default()
    };
    let seeds = |first: usize| -> Vec<String> {
        (0..all.len())
            .map(|i| all[(first + i) % all.len()].clone())
            .collect()
    };
    let connect = |first: usize| {
        let s = seeds(first);
        let cfg = cfg.clone();
        async move {
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            Store::redis_cluster_with(&refs, &cfg).await.unwrap()
        }
    };
    let writer = connect(0).await;
    let base = BaseConfig::default();
    let pods = [
        ServerDriver::new(
            writer.clone(),
            ServerInfo::new("default", "room", 0),
            base.clone(),
        )
        .unwrap(),
        ServerDriver::new(
            writer.clone(),
            ServerInfo::new("default", "room", 1),
            base.clone(),
        )
        .unwrap(),
    ];
    for p in &pods {
        p.start().await.unwrap();
    }
    let mut gateways = Vec::new();
    for first in [1, 2, 3] {
        let g = ClientDriver::new(
            connect(first).await,
            ServerInfo::new("default", "gw", 0),
            base.clone(),
        )
        .unwrap();
        g.init().unwrap();
        let hub = g.store().backend().events().unwrap();
        poll(Duration::from_secs(10), "event stream connected", || {
            hub.is_connected()
        });
        gateways.push(g);
    }
    let uids: Vec<String> = (0..30).map(|i| format!("mover{i}")).collect();
    let mut first_pod = Vec::new();
    for u in &uids {
        let p = gateways[0]
            .compute_linked_pod("default", u, "room")
            .await
            .unwrap();
        for g in &gateways[1..] {
            assert_eq!(g.compute_linked_pod("default", u, "room").await.unwrap(), p);
        }
        first_pod.push(p);
    }
    for (u, p) in uids.iter().zip(&first_pod) {
        pods[(1 - p) as usize]
            .set_linked_pod("default", u, "room", 1 - p)
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    for (u, p) in uids.iter().zip(&first_pod) {
        for (i, g) in gateways.iter().enumerate() {
            loop {
                if g.compute_linked_pod("default", u, "room").await.unwrap() == 1 - p {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "gateway {i} still answers {p} for {u}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    for p in &pods {
        p.stop().await.unwrap();
    }
}
