//! Propagation figures for BENCHMARKS.md (`tests/bench.sh`, or
//! `cargo run --release --example propagation -- redis://127.0.0.1:6379`):
//!
//! 1. latency: 8 gateways (one store, i.e. one connection pair, each) watch 2 000 moves of
//!    persistent links; for each move, the time from the writer's reply to the last gateway's
//!    listener, p50/p99/max;
//! 2. Redis cost: `usec_per_call` of the moving script with propagation on and off, and of a
//!    new user's script (which publishes nothing), from `INFO commandstats`;
//! 3. a gap on a gateway holding 100 000 cached users: the store calls and time its users'
//!    next computes take after the stream is cut (`CLIENT KILL TYPE pubsub`) and back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stateful_route::{
    BaseConfig, ClientDriver, LinkTtl, ServerDriver, ServerInfo, Store, StoreConfig,
};

const NS: &str = "default";
const SVC: &str = "room";

fn stat(info: &str, cmd: &str, field: &str) -> f64 {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{cmd}:")))
        .and_then(|r| {
            r.split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
        })
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn commandstats(con: &mut redis::aio::MultiplexedConnection) -> String {
    redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap()
}

async fn reset(con: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(con)
        .await
        .unwrap();
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let prefix = format!("bench-prop-{}", std::process::id());
    let config = StoreConfig {
        key_prefix: prefix.clone(),
        ..StoreConfig::default()
    };
    let raw = redis::Client::open(url.as_str()).unwrap();
    let mut con = raw.get_multiplexed_async_connection().await.unwrap();
    let writer = Store::redis_with(&url, &config).await.unwrap();
    let cfg = BaseConfig::default();
    let mut pods = Vec::new();
    for i in 0..2 {
        let p =
            ServerDriver::new(writer.clone(), ServerInfo::new(NS, SVC, i), cfg.clone()).unwrap();
        p.start().await.unwrap();
        pods.push(p);
    }

    // 1. Latency.
    const GATEWAYS: usize = 8;
    const MOVES: usize = 2_000;
    let seen: Arc<Mutex<Vec<Vec<Option<Instant>>>>> =
        Arc::new(Mutex::new(vec![vec![None; MOVES]; GATEWAYS]));
    let mut gateways = Vec::new();
    for g in 0..GATEWAYS {
        let c = ClientDriver::new(
            Store::redis_with(&url, &config).await.unwrap(),
            ServerInfo::new(NS, "gw", 0),
            cfg.clone(),
        )
        .unwrap();
        c.init().unwrap();
        let s = seen.clone();
        c.on_link_changed(move |ch| {
            if let Some(i) = ch
                .uid
                .strip_prefix("m")
                .and_then(|n| n.parse::<usize>().ok())
            {
                s.lock().unwrap()[g][i].get_or_insert(Instant::now());
            }
        });
        let hub = c.store().backend().events().unwrap();
        while !hub.is_connected() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gateways.push(c);
    }
    for i in 0..MOVES {
        writer
            .set_link(NS, &format!("m{i}"), SVC, 0, LinkTtl::Persistent)
            .await
            .unwrap();
    }
    let mut replies = Vec::with_capacity(MOVES);
    for i in 0..MOVES {
        writer
            .set_link(NS, &format!("m{i}"), SVC, 1, LinkTtl::Persistent)
            .await
            .unwrap();
        replies.push(Instant::now());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let lat: Vec<Duration> = loop {
        let all: Option<Vec<Duration>> = {
            let s = seen.lock().unwrap();
            (0..MOVES)
                .map(|i| {
                    (0..GATEWAYS)
                        .map(|g| s[g][i])
                        .collect::<Option<Vec<Instant>>>()
                        .map(|t| {
                            t.into_iter()
                                .max()
                                .unwrap()
                                .saturating_duration_since(replies[i])
                        })
                })
                .collect()
        };
        if let Some(all) = all {
            break all;
        }
        assert!(Instant::now() < deadline, "events missing after 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut sorted = lat.clone();
    sorted.sort();
    println!(
        "propagation latency, reply -> last of {GATEWAYS} gateways, {MOVES} moves: p50 {:?} p99 {:?} max {:?}",
        pct(&sorted, 0.5),
        pct(&sorted, 0.99),
        sorted.last().unwrap()
    );

    // 2. Redis cost per moved user (on, then off) and per new user.
    for on in [true, false] {
        let store = Store::redis_with(
            &url,
            &StoreConfig {
                propagation: on,
                ..config.clone()
            },
        )
        .await
        .unwrap();
        store
            .set_link(NS, "warm", SVC, 0, LinkTtl::Persistent)
            .await
            .unwrap();
        reset(&mut con).await;
        for i in 0..MOVES {
            let pod = if on { 0 } else { 1 };
            store
                .set_link(NS, &format!("m{i}"), SVC, pod, LinkTtl::Persistent)
                .await
                .unwrap();
        }
        let info = commandstats(&mut con).await;
        println!(
            "moved user, propagation {}: script {:.2} us/call, PUBLISH {} calls {:.2} us/call (to {} subscribers)",
            if on { "on " } else { "off" },
            stat(&info, "evalsha", "usec_per_call"),
            stat(&info, "publish", "calls"),
            stat(&info, "publish", "usec_per_call"),
            if on { GATEWAYS } else { 0 }
        );
    }
    let gw = &gateways[0];
    gw.compute_linked_pod(NS, "new-warm", SVC).await.unwrap();
    reset(&mut con).await;
    for i in 0..MOVES {
        gw.compute_linked_pod(NS, &format!("n{i}"), SVC)
            .await
            .unwrap();
    }
    let info = commandstats(&mut con).await;
    println!(
        "new user: {} scripts for {MOVES} users, {:.2} us/call, PUBLISH {} calls",
        stat(&info, "evalsha", "calls"),
        stat(&info, "evalsha", "usec_per_call"),
        stat(&info, "publish", "calls")
    );

    // 3. A gap on a gateway holding 100 000 users.
    const USERS: usize = 100_000;
    let big = Arc::new(
        ClientDriver::new(
            Store::redis_with(&url, &config).await.unwrap(),
            ServerInfo::new(NS, "gw", 0),
            cfg.clone(),
        )
        .unwrap(),
    );
    big.init().unwrap();
    let hub = big.store().backend().events().unwrap();
    while !hub.is_connected() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run = |prefix: &'static str| {
        let big = big.clone();
        async move {
            let t = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..64 {
                let big = big.clone();
                tasks.push(tokio::spawn(async move {
                    for i in (w..USERS).step_by(64) {
                        big.compute_linked_pod(NS, &format!("{prefix}{i}"), SVC)
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            t.elapsed()
        }
    };
    let fill = run("g").await;
    println!(
        "gap: {USERS} users placed in {fill:?}; cache holds {}",
        big.cache_len()
    );
    let gaps = hub.gaps();
    let _: () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut con)
        .await
        .unwrap();
    while hub.gaps() == gaps || !hub.is_connected() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    reset(&mut con).await;
    let again = run("g").await;
    let info = commandstats(&mut con).await;
    println!(
        "gap: after the stream was cut and back, cache holds {}; the {USERS} users' next computes took {again:?} and {} store calls",
        big.cache_len(),
        stat(&info, "evalsha", "calls")
    );
    for p in &pods {
        p.stop().await.unwrap();
    }
    // Leave nothing behind.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut con)
            .await
            .unwrap();
    }
}
