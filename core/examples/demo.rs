//! The routing demo: several pods, one gateway, thousands of users.
//!
//! Runs on the embedded store (no Redis needed), or on Redis with `--redis URL`.
//! It places users, drains one pod, shuts another down, and prints what happened.

use std::collections::BTreeMap;
use std::time::Instant;

use stateful_route::{
    BaseConfig, ClientDriver, ErrorKind, RoutingState, ServerDriver, ServerInfo, Store, StoreConfig,
};

const NS: &str = "demo";
const SVC: &str = "room-service";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn bar(n: usize, total: usize) -> String {
    "#".repeat((n * 40).div_ceil(total.max(1)))
}

fn print_spread(title: &str, spread: &BTreeMap<u32, usize>, loads: &BTreeMap<u32, u32>) {
    let total: usize = spread.values().sum();
    println!("\n{title}");
    for (pod, load) in loads {
        let n = spread.get(pod).copied().unwrap_or(0);
        println!(
            "  pod {pod} (load {load:>4}): {n:>5} users {}",
            bar(n, total)
        );
    }
}

async fn place(client: &ClientDriver, prefix: &str, count: usize) -> Res<BTreeMap<u32, usize>> {
    let mut spread = BTreeMap::new();
    for i in 0..count {
        let pod = client
            .compute_linked_pod("", &format!("{prefix}-{i}"), SVC)
            .await?;
        *spread.entry(pod).or_insert(0) += 1;
    }
    Ok(spread)
}

async fn run(store: Store) -> Res<()> {
    let config = BaseConfig {
        service_state_update_period_seconds: 1.0,
        cpu_factor: 0.0, // load only, so the spread below depends on what the pods report
        ..BaseConfig::default()
    };
    // Four pods of one StatefulSet, with different loads. Pod 3 is far above the others
    // (more than load_range = 500 over the least loaded), so it gets no new users.
    let loads = BTreeMap::from([(0, 100), (1, 300), (2, 200), (3, 900)]);
    let mut pods = BTreeMap::new();
    for (&index, &load) in &loads {
        let pod = ServerDriver::new(
            store.clone(),
            ServerInfo::new(NS, SVC, index),
            config.clone(),
        )?;
        pod.set_load_state(load)?;
        pod.start().await?;
        pods.insert(index, pod);
    }
    let gateway = ClientDriver::new(
        store.clone(),
        ServerInfo::new(NS, "gateway", 0),
        config.clone(),
    )?;
    gateway.init()?;
    println!(
        "pods 0-3 of {SVC:?} started; routable: {:?}",
        gateway.routable_pods(SVC).await?
    );

    let t = Instant::now();
    let spread = place(&gateway, "user", 5000).await?;
    let took = t.elapsed();
    print_spread(
        "5000 new users (power of two choices among pods within 500 of the lightest):",
        &spread,
        &loads,
    );
    println!("  placed in {took:.2?}; every user now has a temporary link in the store");

    // Pod 2 takes ownership of 100 of its users: persistent links.
    let mut owned = Vec::new();
    for i in 0..5000 {
        let uid = format!("user-{i}");
        if owned.len() < 100 && gateway.get_linked_in_cache("", &uid, SVC)? == Some(2) {
            pods[&2].set_linked_pod("", &uid, SVC, 2).await?;
            owned.push(uid);
        }
    }
    println!(
        "\npod 2 took ownership of {} users (persistent links)",
        owned.len()
    );

    // Drain pod 1: its users stay, new users go elsewhere.
    pods[&1]
        .set_routing_state(RoutingState::DenyNewCall)
        .await?;
    gateway.refresh_service(SVC).await?; // gateways see it within one period; don't wait here
    let stayed = (0..5000)
        .map(|i| format!("user-{i}"))
        .filter(|u| gateway.get_linked_in_cache("", u, SVC).ok().flatten() == Some(1))
        .count();
    let mut still_there = 0;
    for i in 0..5000 {
        let uid = format!("user-{i}");
        if gateway.get_linked_in_cache("", &uid, SVC)? == Some(1)
            && gateway.compute_linked_pod("", &uid, SVC).await? == 1
        {
            still_there += 1;
        }
    }
    println!("\npod 1 is draining (DENY_NEW_CALL): {still_there} of its {stayed} users still route to it");
    let spread = place(&gateway, "late", 2000).await?;
    print_spread("2000 more new users while pod 1 drains:", &spread, &loads);

    // Shut pod 2 down: temporary links move, persistent ones report POD_UNAVAILABLE.
    pods[&2].stop().await?;
    gateway.refresh_service(SVC).await?;
    let (mut moved, mut unavailable) = (BTreeMap::new(), 0);
    for i in 0..5000 {
        let uid = format!("user-{i}");
        if gateway.get_linked_pod_not_cache("", &uid, SVC).await? != Some(2) {
            continue;
        }
        match gateway.compute_linked_pod("", &uid, SVC).await {
            Ok(pod) => *moved.entry(pod).or_insert(0) += 1,
            Err(e) if e.kind() == ErrorKind::PodUnavailable => unavailable += 1,
            Err(e) => return Err(e.into()),
        }
    }
    println!("\npod 2 shut down (SHUTDOWN published):");
    println!("  its temporary users moved: {moved:?}");
    println!("  its persistent users report POD_UNAVAILABLE: {unavailable} (their state lives on pod 2; only a pod may move them)");
    println!(
        "  alive pods now: {:?}, routable: {:?}",
        gateway.alive_pods(SVC).await?,
        gateway.routable_pods(SVC).await?
    );

    for pod in pods.values() {
        pod.stop().await?;
    }
    gateway.close();
    println!(
        "\nall pods stopped; workload ready: {}",
        gateway_ready(&store).await?
    );
    Ok(())
}

async fn gateway_ready(store: &Store) -> Res<bool> {
    Ok(store.get_workload_state(NS, SVC).await?.as_deref() == Some("READY"))
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let args = &args[1..];
    let redis = match args {
        [] => None,
        [flag, url] if flag == "--redis" => Some(url.clone()),
        _ => return Err("usage: demo [--redis redis://host:port]".into()),
    };
    stateful_route::runtime::block_on(async {
        let store = match &redis {
            None => {
                println!("store: embedded (in-memory)");
                Store::memory()
            }
            Some(url) => {
                println!("store: {}", stateful_route::redact_url(url));
                // A fresh prefix per run, so reruns against one Redis start clean.
                let prefix = format!("demo{}", std::process::id());
                Store::redis_with(
                    url,
                    &StoreConfig {
                        key_prefix: prefix,
                        ..StoreConfig::default()
                    },
                )
                .await?
            }
        };
        run(store).await
    })
}
