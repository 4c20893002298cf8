//! Metrics and explain (README "Metrics"): the snapshot and the text count what a test did, on
//! both stores; explain is a dry run that names every pod's verdict.

mod common;

use common::{Fixture, Kind};
use stateful_route::testkit::{client, eventually, pod};
use stateful_route::{BaseConfig, ErrorKind, Placement, ServerInfo};

const SVC: &str = "room";

fn config() -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: 0.2,
        slow_start_seconds: Some(0.0),
        cpu_factor: 0.0,
        placement: Placement::RoundRobin,
        ..BaseConfig::default()
    }
}

fn series(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(line_start)
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

async fn counts_what_a_test_did(kind: Kind) {
    let f = Fixture::new(kind).await;
    let config = config();
    let p0 = pod(&f.store, 0, 10, &config).await;
    let p1 = pod(&f.store, 1, 10, &config).await;
    let gw = client(&f.store, &config);
    // 4 new users (round robin: 0, 1, 0, 1), then 6 hits on them.
    for i in 0..4 {
        gw.compute_linked_pod("", &format!("u{i}"), SVC)
            .await
            .unwrap();
    }
    for i in 0..6 {
        gw.compute_linked_pod("", &format!("u{}", i % 4), SVC)
            .await
            .unwrap();
    }
    // One error of a known kind: a service nobody serves.
    let e = gw.compute_linked_pod("", "u0", "empty").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoAvailablePod);
    // A hit through the synchronous probe counts too.
    assert!(gw.compute_cached("", "u0", SVC).unwrap().is_some());

    let m = gw.metrics();
    let s = m.service(SVC).unwrap();
    assert_eq!((s.hits, s.misses, s.stale, s.errors), (7, 4, 0, 0), "{s:?}");
    assert_eq!(s.placements.get(&0), Some(&2));
    assert_eq!(s.placements.get(&1), Some(&2));
    assert_eq!(s.pods_in("routable"), 2);
    assert_eq!(m.service("empty").unwrap().errors, 1);
    assert_eq!(m.errors.get("NO_AVAILABLE_POD"), Some(&1));
    assert_eq!(m.cache_entries, 4);
    let sla = m
        .store_calls
        .iter()
        .find(|c| c.op == "set_link_if_absent")
        .unwrap();
    assert_eq!(sla.calls, 4);
    assert!(
        m.propagation.enabled && m.propagation.connected,
        "{:?}",
        m.propagation
    );

    let t = gw.metrics_text();
    assert_eq!(
        series(
            &t,
            "stateful_route_computes_total{service=\"room\",result=\"hit\"}"
        ),
        7.0
    );
    assert_eq!(
        series(
            &t,
            "stateful_route_computes_total{service=\"room\",result=\"miss\"}"
        ),
        4.0
    );
    assert_eq!(
        series(
            &t,
            "stateful_route_placements_total{service=\"room\",pod=\"1\"}"
        ),
        2.0
    );
    assert_eq!(
        series(&t, "stateful_route_errors_total{kind=\"NO_AVAILABLE_POD\"}"),
        1.0
    );
    assert_eq!(
        series(
            &t,
            "stateful_route_pods{service=\"room\",state=\"routable\"}"
        ),
        2.0
    );
    assert_eq!(
        series(
            &t,
            "stateful_route_store_call_seconds_count{op=\"set_link_if_absent\"}"
        ),
        4.0
    );
    assert_eq!(series(&t, "stateful_route_event_stream_up"), 1.0);
    assert!(t.contains("# TYPE stateful_route_store_call_seconds histogram\n"));
    assert!(!t.contains("u0"), "no uid in any label");

    // The gateway reports its placements to the store once a period (for the dashboard).
    eventually(
        std::time::Duration::from_secs(5),
        "placements reported",
        || async {
            f.store.placements("default", SVC).await.unwrap()
                == std::collections::BTreeMap::from([(0, 2), (1, 2)])
        },
    )
    .await;
    // A drain shows as a draining pod once the gateway sees it.
    p1.set_routing_state(stateful_route::RoutingState::DenyNewCall)
        .await
        .unwrap();
    eventually(
        std::time::Duration::from_secs(5),
        "pod 1 draining in the metrics",
        || async { gw.metrics().service(SVC).unwrap().pods_in("draining") == 1 },
    )
    .await;
    // A link moved elsewhere counts as a link event and drops the entry.
    f.store
        .set_link("default", "u0", SVC, 1, stateful_route::LinkTtl::Persistent)
        .await
        .unwrap();
    eventually(
        std::time::Duration::from_secs(5),
        "the move counted",
        || async {
            let p = gw.metrics().propagation;
            p.link_events >= 1 && p.invalidations >= 1
        },
    )
    .await;
    p0.stop().await.unwrap();
    p1.stop().await.unwrap();
}

#[tokio::test]
async fn counts_what_a_test_did_memory() {
    counts_what_a_test_did(Kind::Memory).await;
}

#[tokio::test]
async fn counts_what_a_test_did_redis() {
    counts_what_a_test_did(Kind::Redis).await;
}

#[tokio::test]
async fn counting_off_counts_nothing_but_reports_gauges() {
    let f = Fixture::new(Kind::Memory).await;
    let config = BaseConfig {
        metrics: false,
        ..config()
    };
    let p0 = pod(&f.store, 0, 10, &config).await;
    let gw = client(&f.store, &config);
    gw.compute_linked_pod("", "u", SVC).await.unwrap();
    gw.compute_linked_pod("", "u", SVC).await.unwrap();
    let m = gw.metrics();
    assert!(!m.enabled);
    let s = m.service(SVC).unwrap();
    assert_eq!((s.hits, s.misses), (0, 0));
    assert!(s.placements.is_empty());
    assert_eq!(s.pods_in("routable"), 1);
    assert_eq!(m.cache_entries, 1);
    // Nothing counted, nothing reported: two periodic refreshes later (each one reports right
    // after its read) the store still has no placement of this gateway.
    let reads = m.service(SVC).unwrap().snapshot_reads;
    eventually(
        std::time::Duration::from_secs(5),
        "two periodic refreshes",
        || async { gw.metrics().service(SVC).unwrap().snapshot_reads >= reads + 2 },
    )
    .await;
    assert!(f.store.placements("default", SVC).await.unwrap().is_empty());
    p0.stop().await.unwrap();
}

async fn explains(kind: Kind) {
    let f = Fixture::new(kind).await;
    let config = BaseConfig {
        load_range: 100,
        ..config()
    };
    let p0 = pod(&f.store, 0, 10, &config).await;
    let p1 = pod(&f.store, 1, 500, &config).await;
    let p2 = pod(&f.store, 2, 20, &config).await;
    p2.set_routing_state(stateful_route::RoutingState::DenyNewCall)
        .await
        .unwrap();
    let gw = client(&f.store, &config);
    let before = f.keys().await;
    let e = gw.explain_placement("", "newcomer", SVC).await.unwrap();
    assert_eq!(f.keys().await, before, "explain writes nothing");
    assert!(e.link.is_none());
    assert_eq!(e.policy, "round_robin");
    assert_eq!(e.load_range, 100);
    let verdicts: Vec<(u32, &str)> = e
        .pods
        .iter()
        .map(|p| (p.pod_index, p.verdict.as_str()))
        .collect();
    assert_eq!(
        verdicts,
        [(0, "kept"), (1, "over_load_range"), (2, "not_routable")]
    );
    assert!(
        e.pods[1].reason.contains("load 500"),
        "{}",
        e.pods[1].reason
    );
    assert_eq!(e.would_place_on, Some(0));
    assert_eq!(e.answer, Some(0));
    assert_eq!(
        gw.metrics().service(SVC).unwrap().placements.len(),
        0,
        "no placement counted"
    );

    // With a link: explain shows it and answers with it.
    f.store
        .set_link(
            "default",
            "linked",
            SVC,
            2,
            stateful_route::LinkTtl::Persistent,
        )
        .await
        .unwrap();
    let e = gw.explain_placement("", "linked", SVC).await.unwrap();
    let l = e.link.unwrap();
    assert!(l.persistent && l.pod_alive && l.pod_index == 2);
    assert_eq!(e.answer, Some(2));
    assert!(e.summary.contains("persistent"), "{}", e.summary);

    // Bad input: typed error.
    let err = gw.explain_placement("", "", SVC).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    for p in [p0, p1, p2] {
        p.stop().await.unwrap();
    }
}

#[tokio::test]
async fn explains_memory() {
    explains(Kind::Memory).await;
}

#[tokio::test]
async fn explains_redis() {
    explains(Kind::Redis).await;
}

#[test]
fn server_info_from_env() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    let no_file = |_: &str| None;
    let i = ServerInfo::from_env_with(
        None,
        env(&[("POD_NAMESPACE", "games"), ("POD_NAME", "room-12")]),
        no_file,
    )
    .unwrap();
    assert_eq!(i, ServerInfo::new("games", "room", 12));
    let i = ServerInfo::from_env_with(Some("chat"), env(&[("HOSTNAME", "room-0")]), |_| {
        Some("prod\n".into())
    })
    .unwrap();
    assert_eq!(i, ServerInfo::new("prod", "chat", 0));
    let i = ServerInfo::from_env_with(
        None,
        env(&[
            ("POD_NAMESPACE", "a"),
            ("HOSTNAME", "my-room-3"),
            ("STATEFUL_ROUTE_SERVICE", "lobby"),
        ]),
        no_file,
    )
    .unwrap();
    assert_eq!(i, ServerInfo::new("a", "lobby", 3));
    for (vars, field) in [
        (&[("POD_NAME", "room-1")][..], "POD_NAMESPACE"),
        (&[("POD_NAMESPACE", "a")][..], "POD_NAME"),
        (
            &[("POD_NAMESPACE", "a"), ("POD_NAME", "room")][..],
            "POD_NAME",
        ),
        (
            &[("POD_NAMESPACE", "a"), ("HOSTNAME", "room-x")][..],
            "HOSTNAME",
        ),
        (
            &[("POD_NAMESPACE", "a"), ("POD_NAME", "room-007")][..],
            "POD_NAME",
        ),
        (
            &[("POD_NAMESPACE", "Bad_NS"), ("POD_NAME", "room-1")][..],
            "POD_NAMESPACE",
        ),
    ] {
        let vars: &'static [(&'static str, &'static str)] =
            Box::leak(vars.to_vec().into_boxed_slice());
        let e = ServerInfo::from_env_with(None, env(vars), no_file).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{vars:?}");
        assert!(e.message().contains(field), "{vars:?}: {}", e.message());
    }
}

#[test]
fn the_readme_lists_every_family_with_its_type_and_labels() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("\n## Metrics\n").nth(1).unwrap();
    let section = section.split("\n## ").next().unwrap();
    let rows: Vec<(String, String, Vec<String>)> = section
        .lines()
        .filter(|l| l.starts_with("| `stateful_route_"))
        .map(|l| {
            let cells: Vec<&str> = l.split(" | ").collect();
            let name = cells[0]
                .trim_start_matches("| ")
                .trim_matches('`')
                .to_string();
            let labels = cells[2]
                .split(',')
                .map(|s| s.trim().trim_matches('`').to_string())
                .filter(|s| !s.is_empty() && s != "—")
                .collect();
            (name, cells[1].to_string(), labels)
        })
        .collect();
    let want: Vec<(String, String, Vec<String>)> = stateful_route::metrics::FAMILIES
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                f.kind.as_str().to_string(),
                f.labels.iter().map(|l| l.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(rows, want);
}
