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
const ROUNDS: usize = 3;

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
                    let (k1, k2) = (
                        format!("{p}:{{default:lk:{uid}}}room"),
                        format!("{p}:{{default:lk:{uid}}}"),
                    );
                    async move {
                        let _: (String, i64) = script
                            .key(k1)
                            .key(k2)
                            .arg("room")
                            .arg("1")
                            .arg("300")
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
    });
    if let Some(mut c) = child {
        let _ = c.kill();
    }
}
