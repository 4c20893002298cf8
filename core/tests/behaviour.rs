//! The behaviour suite (`stateful_route::testkit`) against both stores — memory and a real
//! `redis-server` on loopback — plus the checks that need to read the raw keys.

mod common;

use std::sync::Arc;

use common::{Fixture, Kind};
use stateful_route::testkit::{client, fast_config, pod, run_scenario};
use stateful_route::{
    BaseConfig, ClientDriver, ErrorKind, Placement, ServerDriver, ServerInfo, Store,
};

const NS: &str = "default";
const SVC: &str = "room";

/// Bad identifiers write no key at all (read raw, not through the API).
async fn bad_identifiers_write_no_keys(fx: Fixture) {
    let cfg = fast_config();
    let _p0 = pod(&fx.store, 0, 0, &cfg).await;
    let c = client(&fx.store, &cfg);
    let srv = pod(&fx.store, 1, 0, &cfg).await;
    let before = fx.keys().await;
    for (ns, uid, svc) in [
        (NS, "a}b", SVC),
        (NS, "a{b", SVC),
        ("a:b", "u", SVC),
        (NS, "u", "ro:om"),
        ("other", "u", SVC),
    ] {
        assert!(c.compute_linked_pod(ns, uid, svc).await.is_err());
        assert!(srv.set_linked_pod(ns, uid, svc, 1).await.is_err());
        assert!(c
            .set_linked_pod_if_absent(ns, uid, svc, 1, 60)
            .await
            .is_err());
    }
    assert_eq!(before, fx.keys().await);
    assert!(
        !before.is_empty(),
        "the pods' state is there to compare against"
    );
}

/// Many gateways computing one new user at once leave exactly one link key.
async fn one_link_key_per_user(fx: Fixture) {
    let cfg = BaseConfig {
        placement: Placement::Random,
        ..fast_config()
    };
    let mut pods = Vec::new();
    for i in 0..4 {
        pods.push(pod(&fx.store, i, 0, &cfg).await);
    }
    let gateways: Vec<Arc<ClientDriver>> =
        (0..4).map(|_| Arc::new(client(&fx.store, &cfg))).collect();
    let mut tasks = Vec::new();
    for t in 0..64 {
        let g = gateways[t % 4].clone();
        tasks.push(tokio::spawn(async move {
            g.compute_linked_pod(NS, "hot", SVC).await.unwrap()
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    assert!(got.iter().all(|p| *p == got[0]), "{got:?}");
    let links: Vec<String> = fx
        .keys()
        .await
        .into_iter()
        .filter(|k| k.contains(":lk:"))
        .collect();
    assert_eq!(links.len(), 1, "{links:?}");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(stringify!($name), super::Kind::Memory).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::run(stringify!($name), super::Kind::Redis).await
                }
            )*
        }
    };
}

async fn run(name: &str, kind: Kind) {
    let fx = Fixture::new(kind).await;
    match name {
        "bad_identifiers_write_no_keys" => bad_identifiers_write_no_keys(fx).await,
        "one_link_key_per_user" => one_link_key_per_user(fx).await,
        scenario => run_scenario(scenario, fx.store).await,
    }
}

suite!(
    run_vectors,
    pod_zero_is_routable_and_links_are_sticky,
    placement_spreads_and_prefers_light_pods,
    concurrent_computes_of_one_new_user_agree,
    draining_keeps_users_and_takes_no_new_ones,
    shutdown_moves_temporary_links_and_reports_persistent_ones,
    no_routable_pod_is_an_error_but_linked_users_keep_their_pod,
    a_pod_that_stops_publishing_goes_stale,
    bad_identifiers_are_rejected_and_write_nothing,
    server_lifecycle_and_workload_state,
    server_link_operations,
    cache_never_outlives_a_temporary_link,
    closed_and_uninitialised_clients,
    bad_identifiers_write_no_keys,
    one_link_key_per_user,
);

#[test]
fn every_testkit_scenario_runs_here() {
    let here = include_str!("behaviour.rs");
    for name in stateful_route::testkit::SCENARIOS {
        assert!(
            here.contains(&format!("    {name},\n")),
            "scenario {name} is not in suite!()"
        );
    }
}

#[test]
fn config_is_validated() {
    let ok = BaseConfig::default();
    ok.validate().unwrap();
    assert_eq!(
        (
            ok.service_state_update_period_seconds,
            ok.cpu_factor,
            ok.temp_link_info_cache_time_seconds,
            ok.user_link_info_cache_time_seconds
        ),
        (30.0, 0.7, 300, 240)
    );
    let bad = [
        (
            "service_state_update_period_seconds",
            BaseConfig {
                service_state_update_period_seconds: 0.0,
                ..ok.clone()
            },
        ),
        (
            "service_state_update_period_seconds",
            BaseConfig {
                service_state_update_period_seconds: f64::NAN,
                ..ok.clone()
            },
        ),
        (
            "cpu_factor",
            BaseConfig {
                cpu_factor: 1.5,
                ..ok.clone()
            },
        ),
        (
            "cpu_factor",
            BaseConfig {
                cpu_factor: -0.1,
                ..ok.clone()
            },
        ),
        (
            "temp_link_info_cache_time_seconds",
            BaseConfig {
                temp_link_info_cache_time_seconds: 0,
                ..ok.clone()
            },
        ),
        (
            "user_link_info_cache_time_seconds",
            BaseConfig {
                user_link_info_cache_time_seconds: 0,
                ..ok.clone()
            },
        ),
        (
            "user_link_info_cache_time_seconds",
            BaseConfig {
                user_link_info_cache_time_seconds: 300,
                ..ok.clone()
            },
        ),
        (
            "stale_after_seconds",
            BaseConfig {
                stale_after_seconds: Some(0.0),
                ..ok.clone()
            },
        ),
        (
            "drain_seconds",
            BaseConfig {
                drain_seconds: -1.0,
                ..ok.clone()
            },
        ),
        (
            "serve_stale_seconds",
            BaseConfig {
                serve_stale_seconds: -1.0,
                ..ok.clone()
            },
        ),
        (
            "serve_stale_seconds",
            BaseConfig {
                serve_stale_seconds: f64::INFINITY,
                ..ok.clone()
            },
        ),
    ];
    for (field, cfg) in bad {
        let e = cfg.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.message().contains(field), "{e}");
        let store = Store::memory();
        let e =
            ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, 0), cfg.clone()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert_eq!(
            ClientDriver::new(store, ServerInfo::new(NS, SVC, 0), cfg)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidConfig
        );
    }
    let e =
        ServerDriver::new(Store::memory(), ServerInfo::new("a:b", SVC, 0), ok.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = ServerDriver::new(Store::memory(), ServerInfo::new(NS, SVC, u32::MAX), ok).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}
