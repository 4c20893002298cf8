//! New-user throughput against a real Redis: `compute_linked_pod` from 64 concurrent tasks,
//! next to raw `EVALSHA` calls of the same set-if-absent script from 64 tasks over an
//! identically configured redis-rs connection, in the same run, alternating rounds.
//!
//! `cargo bench -p stateful-route --bench redis_throughput` (uses `STATEFUL_ROUTE_TEST_REDIS`
//! or starts a `redis-server` on a free port). Prints medians and the ratio; goal ≥ 0.8.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use stateful_route::store::scripts::SET_LINK_IF_ABSENT;
use stateful_route::{
    runtime, BaseConfig, ClientDriver, ServerDriver, ServerInfo, Store, StoreConfig,
};

const TASKS: usize = 64;
const ROUND: Duration = Duration::from_secs(3);
const ROUNDS: usize = 5;

fn redis_url() -> (String, Option<std::process::Child>) {
    if let Ok(url) = std::env::var("STATEFUL_ROUTE_TEST_REDIS") {
        return (url, None);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    let url = format!("redis://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .is_err()
    {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (url, Some(child))
}

/// Runs `op(task, i)` from 64 tasks on the shared runtime for one round; returns ops/s.
async fn round<F, Fut>(op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (op, done) = (op.clone(), done.clone());
        handles.push(runtime::handle().spawn(async move {
            let mut i = 0;
            while start.elapsed() < ROUND {
                op(t, i).await;
                i += 1;
            }
            done.fetch_add(i, Ordering::Relaxed);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Starts a 3-master cluster (no replicas) on loopback; returns the seed URLs and the children.
fn start_cluster() -> (Vec<String>, Vec<std::process::Child>) {
    let mut ports = Vec::new();
    while ports.len() < 3 {
        let p = 20000 + fastrand::u16(..25000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(p) && free(p + 10000) && !ports.contains(&p) {
            ports.push(p);
        }
    }
    let dir = std::env::temp_dir().join(format!("sr-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let children: Vec<_> = ports
        .iter()
        .map(|p| {
            Command::new("redis-server")
                .args([
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                ])
                .args(["--dir", dir.to_str().unwrap()])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server")
        })
        .collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for u in &urls {
        while redis::Client::open(u.as_str())
            .unwrap()
            .get_connection()
            .is_err()
        {
            assert!(Instant::now() < deadline, "cluster node did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for p in &ports {
        create.arg(format!("127.0.0.1:{p}"));
    }
    let out = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli");
    assert!(out.status.success(), "cluster create failed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = urls.iter().all(|u| {
            let mut con = redis::Client::open(u.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("CLUSTER")
                .arg("INFO")
                .query::<String>(&mut con)
                .unwrap()
                .contains("cluster_state:ok")
        });
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "cluster did not become ok");
        std::thread::sleep(Duration::from_millis(50));
    }
    (urls, children)
}

/// New-user computes from 64 tasks: a 3-master cluster next to one node, alternating rounds.
async fn cluster_vs_single(single_url: &str) {
    let (urls, mut children) = start_cluster();
    let seeds: Vec<&str> = urls.iter().map(String::as_str).collect();
    let prefix = format!("benchc{}", std::process::id());
    let cfg = StoreConfig {
        key_prefix: prefix,
        ..StoreConfig::default()
    };
    let stores = [
        (
            "one node",
            Store::redis_with(single_url, &cfg).await.unwrap(),
        ),
        (
            "3-master cluster",
            Store::redis_cluster_with(&seeds, &cfg).await.unwrap(),
        ),
    ];
    let config = BaseConfig {
        cpu_factor: 0.0,
        ..BaseConfig::default()
    };
    let mut results: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut keep = Vec::new();
    let mut clients = Vec::new();
    for (_, store) in &stores {
        for i in 0..4 {
            let p = ServerDriver::new(
                store.clone(),
                ServerInfo::new("default", "room", i),
                config.clone(),
            )
            .unwrap();
            p.start().await.unwrap();
            keep.push(p);
        }
        let c = Arc::new(
            ClientDriver::new(
                store.clone(),
                ServerInfo::new("default", "gw", 0),
                config.clone(),
            )
            .unwrap(),
        );
        c.init().unwrap();
        c.compute_linked_pod("", "warm-up", "room").await.unwrap();
        clients.push(c);
    }
    for r in 0..ROUNDS {
        for (k, c) in clients.iter().enumerate() {
            let c = c.clone();
            let tps = round(move |t, i| {
                let c = c.clone();
                async move {
                    c.compute_linked_pod("", &format!("c{k}-{r}-{t}-{i}"), "room")
                        .await
                        .unwrap();
                }
            })
            .await;
            println!("round {r}: {:<17} {tps:>8.0} new users/s", stores[k].0);
            results[k].push(tps);
        }
    }
    let (one, cluster) = (median(results[0].clone()), median(results[1].clone()));
    println!(
        "median: one node {one:.0}/s, 3-master cluster {cluster:.0}/s, ratio cluster/one {:.2}",
        cluster / one
    );
    for p in keep {
        p.stop().await.unwrap();
    }
    for c in &mut children {
        let _ = c.kill();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (url, child) = redis_url();
    runtime::block_on(async {
        let prefix = format!("bench{}", std::process::id());
        let store = Store::redis_with(
            &url,
            &StoreConfig {
                key_prefix: prefix.clone(),
                ..StoreConfig::default()
            },
        )
        .await
        .unwrap();
        let config = BaseConfig {
            cpu_factor: 0.0,
            ..BaseConfig::default()
        };
        let mut pods = Vec::new();
        for i in 0..4 {
            let p = ServerDriver::new(
                store.clone(),
                ServerInfo::new("default", "room", i),
                config.clone(),
            )
            .unwrap();
            p.start().await.unwrap();
            pods.push(p);
        }
        let client = Arc::new(
            ClientDriver::new(store, ServerInfo::new("default", "gw", 0), config).unwrap(),
        );
        client.init().unwrap();
        client
            .compute_linked_pod("", "warm-up", "room")
            .await
            .unwrap();

        let cfg = ConnectionManagerConfig::new();
        let client_raw = redis::Client::open(url.as_str()).unwrap();
        let con = runtime::handle()
            .spawn(ConnectionManager::new_with_config(client_raw, cfg))
            .await
            .unwrap()
            .unwrap();
        let script = Arc::new(redis::Script::new(SET_LINK_IF_ABSENT));

        let (mut raw, mut ours) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            let (script, con, p) = (script.clone(), con.clone(), prefix.clone());
            raw.push(
                round(move |t, i| {
                    let (script, mut con) = (script.clone(), con.clone());
                    let uid = format!("raw{r}-{t}-{i}");
                    let channel = format!("{p}:events:default");
                    let (k1, k2) = (
                        format!("{p}:{{default:lk:{uid}}}room"),
                        format!("{p}:{{default:lk:{uid}}}"),
                    );
                    async move {
                        // The driver's arguments, its events channel last; the reply is
                        // (pod, pttl, created).
                        let _: (String, i64, i64) = script
                            .key(k1)
                            .key(k2)
                            .arg("room")
                            .arg("1")
                            .arg("300")
                            .arg(&channel)
                            .invoke_async(&mut con)
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
            let c = client.clone();
            ours.push(
                round(move |t, i| {
                    let c = c.clone();
                    async move {
                        c.compute_linked_pod("", &format!("new{r}-{t}-{i}"), "room")
                            .await
                            .unwrap();
                    }
                })
                .await,
            );
            println!(
                "round {r}: raw EVALSHA {:>8.0}/s   compute_linked_pod (new users) {:>8.0}/s",
                raw[r], ours[r]
            );
        }
        let (raw, ours) = (median(raw), median(ours));
        println!("median: raw EVALSHA {raw:.0}/s, compute_linked_pod {ours:.0}/s, ratio {:.2} (goal >= 0.80)", ours / raw);
        for p in pods {
            p.stop().await.unwrap();
        }
        if std::env::var("STATEFUL_ROUTE_BENCH_CLUSTER").is_ok_and(|v| v == "1") {
            cluster_vs_single(&url).await;
        }
    });
    if let Some(mut c) = child {
        let _ = c.kill();
    }
}
