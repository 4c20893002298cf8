//! Extension points: custom placement policies and load calculators, per-service policies,
//! the built-in rendezvous and weighted policies end to end, and the cache switched off.

use std::collections::BTreeMap;
use std::sync::Arc;

use stateful_route::{
    BaseConfig, Candidate, ClientDriver, ErrorKind, LoadCalculator, LoadInput, Placement,
    PlacementPolicy, PlacementRequest, Result, ServerDriver, ServerInfo, Store,
};

const NS: &str = "default";
const SVC: &str = "room";

fn config() -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: 0.2,
        stale_after_seconds: Some(5.0),
        cpu_factor: 0.0,
        ..BaseConfig::default()
    }
}

async fn pods(store: &Store, n: u32, cfg: &BaseConfig) -> Vec<ServerDriver> {
    let mut out = Vec::new();
    for i in 0..n {
        let s = ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, i), cfg.clone()).unwrap();
        s.start().await.unwrap();
        out.push(s);
    }
    out
}

fn gateway(store: &Store, cfg: BaseConfig) -> ClientDriver {
    let c = ClientDriver::new(store.clone(), ServerInfo::new(NS, "gw", 0), cfg).unwrap();
    c.init().unwrap();
    c
}

async fn spread(c: &ClientDriver, prefix: &str, n: usize) -> BTreeMap<u32, usize> {
    let mut out = BTreeMap::new();
    for i in 0..n {
        *out.entry(
            c.compute_linked_pod("", &format!("{prefix}{i}"), SVC)
                .await
                .unwrap(),
        )
        .or_insert(0) += 1;
    }
    out
}

/// Sends every new user to the highest pod index.
#[derive(Debug)]
struct Highest;

impl PlacementPolicy for Highest {
    fn choose(&self, c: &[Candidate], _: &PlacementRequest<'_>) -> Result<Option<usize>> {
        Ok(Some(c.len() - 1))
    }
}

#[derive(Debug)]
struct Failing;

impl PlacementPolicy for Failing {
    fn choose(&self, _: &[Candidate], _: &PlacementRequest<'_>) -> Result<Option<usize>> {
        Err(stateful_route::Error::new(
            ErrorKind::Internal,
            "policy refused",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_policy_decides_and_its_errors_reach_the_caller() {
    let store = Store::memory();
    let _pods = pods(&store, 3, &config()).await;
    let c = gateway(
        &store,
        BaseConfig {
            placement: Placement::Custom(Arc::new(Highest)),
            ..config()
        },
    );
    assert_eq!(spread(&c, "u", 50).await, BTreeMap::from([(2, 50)]));
    c.set_service_placement(SVC, Placement::Custom(Arc::new(Failing)))
        .unwrap();
    let e = c.compute_linked_pod("", "new", SVC).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.message().contains("policy refused"), "{e}");
    assert_eq!(
        store.get_link(NS, "new", SVC).await.unwrap(),
        None,
        "nothing written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_service_round_robin_is_exact() {
    let store = Store::memory();
    let _pods = pods(&store, 3, &config()).await;
    let c = gateway(&store, config());
    c.set_service_placement(SVC, Placement::RoundRobin).unwrap();
    let mut got = Vec::new();
    for i in 0..9 {
        got.push(
            c.compute_linked_pod("", &format!("rr{i}"), SVC)
                .await
                .unwrap(),
        );
    }
    assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0, 1, 2]);
    let e = c
        .set_service_placement(SVC, Placement::Rendezvous { load_factor: 0.1 })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}

/// Load = the app's "sessions" signal × 10.
#[derive(Debug)]
struct Sessions;

impl LoadCalculator for Sessions {
    fn weighted_load(&self, input: &LoadInput<'_>) -> Result<u32> {
        Ok((input.signals.get("sessions").copied().unwrap_or(0.0) * 10.0) as u32)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_load_calculator_moves_new_users() {
    let store = Store::memory();
    let cfg = config();
    let p = pods(&store, 2, &cfg).await;
    for s in &p {
        s.set_load_calculator(Arc::new(Sessions));
    }
    // Pod 0 reports 100 sessions (load 1000): outside the load range of pod 1 (load 0).
    p[0].set_load_signal("sessions", 100.0).unwrap();
    assert_eq!(p[0].weighted_load(), 1000);
    p[0].set_routing_state(stateful_route::RoutingState::Ready)
        .await
        .unwrap(); // publish now
    let c = gateway(&store, cfg);
    assert_eq!(spread(&c, "u", 30).await, BTreeMap::from([(1, 30)]));
    assert_eq!(store.pod_states(NS, SVC).await.unwrap().pods[0].load, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendezvous_gateways_agree_before_the_store_answers() {
    let store = Store::memory();
    let cfg = BaseConfig {
        placement: Placement::Rendezvous { load_factor: 1.25 },
        ..config()
    };
    let _pods = pods(&store, 4, &cfg).await;
    let (a, b) = (gateway(&store, cfg.clone()), gateway(&store, cfg));
    for i in 0..200 {
        let uid = format!("r{i}");
        let want = (0..4u32)
            .max_by_key(|p| stateful_route::placement::rendezvous_score(SVC, &uid, *p))
            .unwrap();
        // Two gateways, each placing on its own: both pick the highest-scoring pod.
        let pa = a.compute_linked_pod("", &uid, SVC).await.unwrap();
        store.remove_link(NS, &uid, SVC, 0).await.unwrap();
        let pb = b.compute_linked_pod("", &uid, SVC).await.unwrap();
        assert_eq!((pa, pb), (want, want), "{uid}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_placement_follows_published_weights() {
    let store = Store::memory();
    let cfg = BaseConfig {
        placement: Placement::Weighted,
        ..config()
    };
    let p = pods(&store, 2, &cfg).await;
    p[0].set_weight(10).await.unwrap(); // a canary
    p[1].set_weight(90).await.unwrap();
    assert_eq!(store.pod_states(NS, SVC).await.unwrap().pods[0].weight, 10);
    let c = gateway(&store, cfg);
    let s = spread(&c, "w", 2000).await;
    let canary = s.get(&0).copied().unwrap_or(0);
    assert!(
        (120..280).contains(&canary),
        "canary got {canary} of 2000: {s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_can_be_switched_off() {
    let store = Store::memory();
    let _pods = pods(&store, 1, &config()).await;
    let c = gateway(
        &store,
        BaseConfig {
            cache_capacity: 0,
            ..config()
        },
    );
    assert_eq!(c.compute_linked_pod("", "u", SVC).await.unwrap(), 0);
    assert_eq!(c.get_linked_in_cache("", "u", SVC).unwrap(), None);
    assert_eq!(c.compute_cached("", "u", SVC).unwrap(), None);
    store
        .set_link(NS, "u", SVC, 5, stateful_route::LinkTtl::Persistent)
        .await
        .unwrap();
    // Without a cache every answer comes from the store (pod 5 is not alive: the user's state is there).
    assert_eq!(
        c.compute_linked_pod("", "u", SVC).await.unwrap_err().kind(),
        ErrorKind::PodUnavailable
    );
}
