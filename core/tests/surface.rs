//! `tests/vectors/surface.json` against the core: every binding's suite checks its own names
//! and defaults against that file, and this test checks the file against the core, so a core
//! change that the file does not follow fails here first.

use stateful_route::{BaseConfig, ErrorKind, Placement, RoutingState, StoreConfig};

fn surface() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/surface.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn defaults(s: &serde_json::Value, name: &str) -> Vec<(String, serde_json::Value)> {
    s["config"][name]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["default"].clone(),
            )
        })
        .collect()
}

#[test]
fn error_codes_routing_states_and_placements_are_the_cores() {
    let s = surface();
    let codes: Vec<String> = ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    assert_eq!(strings(&s["error_codes"]), codes);
    let states: Vec<String> = [
        RoutingState::Ready,
        RoutingState::DenyNewCall,
        RoutingState::Shutdown,
    ]
    .iter()
    .map(|r| r.as_str().to_string())
    .collect();
    assert_eq!(strings(&s["routing_states"]), states);
    assert_eq!(
        strings(&s["placements"]),
        Placement::NAMES.map(String::from).to_vec()
    );
}

#[test]
fn config_defaults_are_the_cores() {
    let s = surface();
    let c = BaseConfig::default();
    let want: Vec<(&str, serde_json::Value)> = vec![
        (
            "service_state_update_period_seconds",
            c.service_state_update_period_seconds.into(),
        ),
        ("cpu_factor", c.cpu_factor.into()),
        (
            "temp_link_info_cache_time_seconds",
            c.temp_link_info_cache_time_seconds.into(),
        ),
        (
            "user_link_info_cache_time_seconds",
            c.user_link_info_cache_time_seconds.into(),
        ),
        ("stale_after_seconds", c.stale_after_seconds.into()),
        ("load_range", c.load_range.into()),
        ("placement", c.placement.name().into()),
        ("placement_load_factor", serde_json::Value::Null),
        ("cache_capacity", c.cache_capacity.into()),
        ("drain_seconds", c.drain_seconds.into()),
        ("serve_stale_seconds", c.serve_stale_seconds.into()),
        ("slow_start_seconds", c.slow_start_seconds.into()),
        ("metrics", c.metrics.into()),
    ];
    let want: Vec<(String, serde_json::Value)> =
        want.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(defaults(&s, "BaseConfig"), want);
    assert_eq!(
        c.placement.load_factor(),
        0.0,
        "p2c takes no factor: the default is null"
    );

    let c = StoreConfig::default();
    let want: Vec<(String, serde_json::Value)> = vec![
        ("key_prefix".to_string(), c.key_prefix.clone().into()),
        (
            "connect_timeout".to_string(),
            c.connect_timeout.as_secs_f64().into(),
        ),
        (
            "command_timeout".to_string(),
            c.command_timeout.as_secs_f64().into(),
        ),
        ("tls_ca_cert_pem".to_string(), serde_json::Value::Null),
        ("propagation".to_string(), c.propagation.into()),
    ];
    assert_eq!(defaults(&s, "StoreConfig"), want);
    assert!(c.tls_ca_cert_pem.is_none());
}

#[test]
fn link_change_fields_are_the_cores() {
    let stateful_route::LinkChange {
        namespace: _,
        service: _,
        uid: _,
        pod: _,
        persistent: _,
    } = stateful_route::LinkChange {
        namespace: String::new(),
        service: String::new(),
        uid: String::new(),
        pod: None,
        persistent: false,
    };
    assert_eq!(
        strings(&surface()["types"]["LinkChange"]),
        ["namespace", "service", "uid", "pod", "persistent"]
    );
}

#[test]
fn pod_state_fields_are_the_cores() {
    // Destructuring fails to compile when a field is added or renamed.
    let stateful_route::PodState {
        pod_index: _,
        load: _,
        update_ms: _,
        routing_state: _,
        weight: _,
    } = stateful_route::PodState {
        pod_index: 0,
        load: 0,
        update_ms: 0,
        routing_state: RoutingState::Ready,
        weight: 100,
    };
    assert_eq!(
        strings(&surface()["types"]["PodState"]),
        ["pod_index", "load", "update_ms", "routing_state", "weight"]
    );
}

#[test]
fn metrics_and_explain_fields_are_the_cores() {
    use stateful_route::explain::{ExplainedLink, ExplainedPod, Explanation};
    use stateful_route::metrics::{
        MetricsSnapshot, PodMetrics, PropagationMetrics, Sample, ServiceMetrics, StoreCallMetrics,
    };
    // Each closure destructures every field: adding or renaming one fails to compile.
    let _ = |m: MetricsSnapshot| {
        let MetricsSnapshot {
            namespace: _,
            enabled: _,
            cache_entries: _,
            services: _,
            errors: _,
            store_calls: _,
            propagation: _,
        } = m;
    };
    let _ = |m: ServiceMetrics| {
        let ServiceMetrics {
            service: _,
            hits: _,
            misses: _,
            stale: _,
            errors: _,
            placements: _,
            snapshot_reads: _,
            snapshot_read_errors: _,
            snapshot_age_seconds: _,
            pods: _,
        } = m;
    };
    let _ = |m: PodMetrics| {
        let PodMetrics {
            pod_index: _,
            state: _,
            routing_state: _,
            load: _,
            weight: _,
            age_seconds: _,
        } = m;
    };
    let _ = |m: StoreCallMetrics| {
        let StoreCallMetrics {
            op: _,
            calls: _,
            errors: _,
            seconds_sum: _,
            buckets: _,
        } = m;
    };
    let _ = |m: PropagationMetrics| {
        let PropagationMetrics {
            enabled: _,
            connected: _,
            link_events: _,
            pod_events: _,
            gaps: _,
            invalidations: _,
        } = m;
    };
    let _ = |m: Sample| {
        let Sample {
            name: _,
            labels: _,
            value: _,
        } = m;
    };
    let _ = |m: Explanation| {
        let Explanation {
            namespace: _,
            uid: _,
            service: _,
            link: _,
            cached_pod: _,
            policy: _,
            load_factor: _,
            load_range: _,
            pods: _,
            would_place_on: _,
            answer: _,
            summary: _,
            snapshot_age_seconds: _,
        } = m;
    };
    let _ = |m: ExplainedLink| {
        let ExplainedLink {
            pod_index: _,
            persistent: _,
            ttl_seconds: _,
            pod_alive: _,
        } = m;
    };
    let _ = |m: ExplainedPod| {
        let ExplainedPod {
            pod_index: _,
            load: _,
            placed: _,
            routing_state: _,
            alive: _,
            age_seconds: _,
            weight: _,
            verdict: _,
            reason: _,
        } = m;
    };
    let s = surface();
    let count = |t: &str| strings(&s["types"][t]).len();
    assert_eq!(count("MetricsSnapshot"), 7);
    assert_eq!(count("ServiceMetrics"), 10);
    assert_eq!(count("PodMetrics"), 6);
    assert_eq!(count("StoreCallMetrics"), 5);
    assert_eq!(count("PropagationMetrics"), 6);
    assert_eq!(count("Sample"), 3);
    assert_eq!(count("Explanation"), 13);
    assert_eq!(count("ExplainedLink"), 4);
    assert_eq!(count("ExplainedPod"), 9);
}
