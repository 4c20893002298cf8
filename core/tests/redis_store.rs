//! Redis-only checks: the raw key layout of SPEC §3, one round trip per new user, and script
//! reload after `SCRIPT FLUSH`. Each test that counts commands has a redis-server of its own.

mod common;

use std::collections::BTreeMap;

use common::{spawn_redis, unique_prefix};
use stateful_route::{
    BaseConfig, ClientDriver, ErrorKind, LinkTtl, RoutingState, ServerDriver, ServerInfo, Store,
    StoreConfig,
};

async fn raw(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn store(port: u16, prefix: &str) -> Store {
    let cfg = StoreConfig {
        key_prefix: prefix.to_string(),
        ..StoreConfig::default()
    };
    Store::redis_with(&format!("redis://127.0.0.1:{port}"), &cfg)
        .await
        .unwrap()
}

fn quiet_config() -> BaseConfig {
    BaseConfig {
        cpu_factor: 0.0,
        ..BaseConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_values_match_the_spec_layout() {
    let (port, _) = spawn_redis(&[]);
    let mut con = raw(port).await;
    let s = store(port, "sf").await;
    let server = ServerDriver::new(
        s.clone(),
        ServerInfo::new("prod", "room", 0),
        quiet_config(),
    )
    .unwrap();
    server.set_load_state(150).unwrap();
    server.start().await.unwrap();
    server
        .set_linked_pod("prod", "alice", "room", 0)
        .await
        .unwrap();
    s.set_link("prod", "bob", "room", 1, LinkTtl::Seconds(300))
        .await
        .unwrap();
    s.set_link("prod", "bob", "chat", 2, LinkTtl::Persistent)
        .await
        .unwrap();
    s.set_tag("prod", "lobby", "room").await.unwrap();
    server
        .set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();

    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "sf:{prod:lk:alice}",
            "sf:{prod:lk:alice}room",
            "sf:{prod:lk:bob}",
            "sf:{prod:lk:bob}chat",
            "sf:{prod:lk:bob}room",
            "sf:{prod:state:room}",
            "sf:{prod:tag:lobby}",
            "sf:{prod:workload:room}",
        ]
    );
    let base = con.clone();
    let get = |k: &'static str| {
        let mut con = base.clone();
        async move {
            redis::cmd("GET")
                .arg(k)
                .query_async::<Option<String>>(&mut con)
                .await
                .unwrap()
        }
    };
    let ttl = |k: &'static str| {
        let mut con = base.clone();
        async move {
            redis::cmd("TTL")
                .arg(k)
                .query_async::<i64>(&mut con)
                .await
                .unwrap()
        }
    };
    let hgetall = |k: &'static str| {
        let mut con = base.clone();
        async move {
            redis::cmd("HGETALL")
                .arg(k)
                .query_async::<BTreeMap<String, String>>(&mut con)
                .await
                .unwrap()
        }
    };
    assert_eq!(get("sf:{prod:lk:alice}room").await.as_deref(), Some("0"));
    assert_eq!(ttl("sf:{prod:lk:alice}room").await, -1);
    assert_eq!(
        hgetall("sf:{prod:lk:alice}").await,
        BTreeMap::from([("room".into(), "0".into())])
    );
    assert_eq!(get("sf:{prod:lk:bob}room").await.as_deref(), Some("1"));
    assert!((290..=300).contains(&ttl("sf:{prod:lk:bob}room").await));
    assert_eq!(
        hgetall("sf:{prod:lk:bob}").await,
        BTreeMap::from([("chat".into(), "2".into())])
    );
    assert_eq!(
        get("sf:{prod:workload:room}").await.as_deref(),
        Some("READY")
    );
    assert_eq!(get("sf:{prod:tag:lobby}").await.as_deref(), Some("room"));

    // Pod state: `<load>-<updateMs>-<ROUTING>`, stamped with the server's clock.
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
    let now_ms = secs * 1000 + micros / 1000;
    let states = hgetall("sf:{prod:state:room}").await;
    let value = &states["0"];
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 3, "{value}");
    assert_eq!(parts[0], "150");
    let stamp: u64 = parts[1].parse().unwrap();
    assert!(
        now_ms >= stamp && now_ms - stamp < 5_000,
        "stamp {stamp} vs redis time {now_ms}"
    );
    assert_eq!(parts[2], "DENY_NEW_CALL");

    // Readers accept the old two-part form and skip garbage with a warning.
    let _: () = redis::cmd("HSET")
        .arg("sf:{prod:state:room}")
        .arg("7")
        .arg(format!("3-{now_ms}"))
        .arg("8")
        .arg("garbage")
        .query_async(&mut con)
        .await
        .unwrap();
    let parsed = s.pod_states("prod", "room").await.unwrap();
    let pods: Vec<(u32, u32, RoutingState)> = parsed
        .pods
        .iter()
        .map(|p| (p.pod_index, p.load, p.routing_state))
        .collect();
    assert_eq!(
        pods,
        vec![
            (0, 150, RoutingState::DenyNewCall),
            (7, 3, RoutingState::Ready)
        ]
    );

    // Removing the last persistent link deletes the user's hash.
    server
        .remove_linked_pod("prod", "alice", "room", 0)
        .await
        .unwrap();
    let exists: i64 = redis::cmd("EXISTS")
        .arg("sf:{prod:lk:alice}")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    server.stop().await.unwrap();
}

async fn command_calls(con: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(con)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| name != "info" && !name.starts_with("config"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_costs_exactly_one_command() {
    let (port, _) = spawn_redis(&[]);
    let mut con = raw(port).await;
    let s = store(port, &unique_prefix()).await;
    let server = ServerDriver::new(
        s.clone(),
        ServerInfo::new("default", "room", 0),
        quiet_config(),
    )
    .unwrap();
    server.start().await.unwrap();
    let client = ClientDriver::new(s, ServerInfo::new("default", "gw", 0), quiet_config()).unwrap();
    client.init().unwrap();
    // Warm up: the service snapshot is read once, and the script is loaded once.
    assert_eq!(
        client.compute_linked_pod("", "warm", "room").await.unwrap(),
        0
    );

    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        client
            .compute_linked_pod("", "new-user", "room")
            .await
            .unwrap(),
        0
    );
    // commandstats also counts the commands a script runs inside Redis: one EVALSHA whose
    // set-if-absent script does GET, SET (with EX) and HDEL. Any extra round trip shows up
    // as a second EVALSHA or as an extra GET/HGETALL.
    let calls = command_calls(&mut con).await;
    let want: BTreeMap<String, u64> = [("evalsha", 1), ("get", 1), ("set", 1), ("hdel", 1)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(calls, want);

    // A cache hit sends nothing at all.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    for _ in 0..100 {
        assert_eq!(
            client
                .compute_linked_pod("", "new-user", "room")
                .await
                .unwrap(),
            0
        );
    }
    assert_eq!(command_calls(&mut con).await, BTreeMap::new());
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_script_flush() {
    let (port, _) = spawn_redis(&[]);
    let mut con = raw(port).await;
    let s = store(port, &unique_prefix()).await;
    s.set_link("default", "u", "room", 3, LinkTtl::Persistent)
        .await
        .unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        s.set_link("default", "u", "room", 4, LinkTtl::Persistent)
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        s.get_link("default", "u", "room")
            .await
            .unwrap()
            .unwrap()
            .pod_index,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_and_bad_urls_are_typed_errors() {
    let port = common::free_port();
    let cfg = StoreConfig {
        connect_timeout: std::time::Duration::from_millis(500),
        ..StoreConfig::default()
    };
    let e = Store::redis_with(&format!("redis://:hunter2@127.0.0.1:{port}"), &cfg)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StoreUnavailable, "{e}");
    assert!(!e.to_string().contains("hunter2"), "password leaked: {e}");
    let e = Store::redis("nonsense://x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = Store::redis_with(
        "redis://127.0.0.1:1",
        &StoreConfig {
            key_prefix: "a:b".into(),
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}
