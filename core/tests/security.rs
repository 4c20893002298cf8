//! Security against a real `redis-server` (issue 5): TLS with certificates generated here,
//! a Redis ACL user limited to the key prefix and the minimal command list (each command
//! shown necessary), passwords kept out of errors and logs, and crafted identifiers that
//! cannot escape their keys (checked with raw `KEYS *`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, spawn_redis, spawn_redis_on, unique_prefix};
use stateful_route::{
    BaseConfig, ClientDriver, Error, ErrorKind, LinkTtl, Result, ServerDriver, ServerInfo, Store,
    StoreConfig,
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

fn store_config(prefix: &str) -> StoreConfig {
    StoreConfig {
        key_prefix: prefix.to_string(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        ..StoreConfig::default()
    }
}

async fn admin(port: u16) -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Everything a deployment does with the library: a pod starts and publishes, a gateway
/// places users, the pod owns a user, links are read, moved and removed (now and delayed),
/// tags and workload states are set and read, scripts are reloaded after `SCRIPT FLUSH`, and
/// the pod stops.
async fn full_flow(store: &Store, admin_port: u16) -> Result<()> {
    let pod = ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, 0), config())?;
    pod.start().await?;
    let result = async {
        let gw = ClientDriver::new(store.clone(), ServerInfo::new(NS, "gw", 0), config())?;
        gw.init()?;
        // The event stream (SUBSCRIBE, PING) must come up.
        let hub = store.backend().events().expect("propagation on");
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while !hub.is_connected() {
            if std::time::Instant::now() > deadline {
                return Err(stateful_route::Error::new(
                    ErrorKind::StoreError,
                    format!("event stream: {}", hub.last_error().unwrap_or_default()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(gw.compute_linked_pod("", "alice", SVC).await?, 0);
        assert_eq!(pod.set_linked_pod("", "bob", SVC, 0).await?, None);
        assert!(pod.try_set_linked_pod("", "bob", SVC, 0).await?.accepted);
        assert_eq!(gw.get_linked_pod_not_cache("", "bob", SVC).await?, Some(0));
        assert_eq!(gw.get_link_service("", "bob").await?.get(SVC), Some(&0));
        let batch = gw
            .batch_get_linked_pod("", &["alice", "bob", "carol"], SVC)
            .await?;
        assert_eq!(batch.get(&0).map(Vec::len), Some(2));
        assert!(pod.remove_linked_pod_with_id("", "bob", SVC, 0, 30).await?);
        assert!(pod.remove_linked_pod("", "bob", SVC, 0).await?);
        gw.route_info()
            .set_global_service_name_tag("lobby", SVC)
            .await?;
        assert_eq!(
            gw.route_info()
                .get_service_name_by_tag("lobby")
                .await?
                .as_deref(),
            Some(SVC)
        );
        assert!(gw.route_info().is_workload_ready(SVC).await?);
        // Scripts are sent by SHA; after a flush they must be loaded again.
        let mut con = admin(admin_port).await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(gw.compute_linked_pod("", "dave", SVC).await?, 0);
        gw.route_info().refresh_service(SVC).await?;
        gw.close();
        Ok(())
    }
    .await;
    let stopped = pod.stop().await;
    result.and(stopped)
}

// ---------------------------------------------------------------- TLS

struct Tls {
    ca_pem: String,
    dir: std::path::PathBuf,
}

/// A CA and a server certificate for 127.0.0.1 signed by it, written to a fresh directory.
fn certificates() -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "stateful-route test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sr-tls-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Tls {
        ca_pem: ca_cert.pem(),
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_generated_ca_runs_the_full_flow() {
    let tls = certificates();
    let d = |f: &str| tls.dir.join(f).to_str().unwrap().to_string();
    let tls_port = free_port();
    let (cert, key, ca) = (d("server.pem"), d("server.key"), d("ca.pem"));
    let tls_port_s = tls_port.to_string();
    // The plain port is for the harness (readiness, SCRIPT FLUSH); the library uses TLS.
    let plain = free_port();
    let args = [
        "--tls-port",
        &tls_port_s,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ];
    spawn_redis_on(plain, &args);
    let prefix = unique_prefix();
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let cfg = StoreConfig {
        tls_ca_cert_pem: Some(tls.ca_pem.clone().into_bytes()),
        ..store_config(&prefix)
    };
    let store = Store::redis_with(&url, &cfg).await.unwrap();
    full_flow(&store, plain).await.unwrap();
    // The keys really went through the TLS port into this server.
    let mut con = admin(plain).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        keys.contains(&format!("{prefix}:{{{NS}:lk:alice}}{SVC}")),
        "{keys:?}"
    );

    // Without our CA the server's certificate is not trusted: a typed error, no panic.
    let err = Store::redis_with(&url, &store_config(&prefix))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::StoreUnavailable | ErrorKind::StoreError
        ),
        "{err}"
    );
    // Plain text to the TLS port fails too (and within the deadline).
    let plain_to_tls = tokio::time::timeout(
        Duration::from_secs(10),
        Store::redis_with(
            &format!("redis://127.0.0.1:{tls_port}"),
            &store_config(&prefix),
        ),
    )
    .await
    .expect("hung");
    assert!(plain_to_tls.is_err());
    let _ = std::fs::remove_dir_all(&tls.dir);
}

// ---------------------------------------------------------------- ACL

/// The commands the library needs (README "Operating it": minimal ACL). Inside its Lua
/// scripts it runs GET, SET, HSET, HDEL, PTTL, EXPIRE, DEL, TIME and HGETALL; directly it
/// runs EVALSHA (and SCRIPT LOAD after a `NOSCRIPT`), HGETALL, MGET, SET and GET.
const MINIMAL_ACL: &[&str] = &[
    "+evalsha",
    "+script|load",
    "+get",
    "+set",
    "+mget",
    "+hgetall",
    "+hget",
    "+hset",
    "+hdel",
    "+pttl",
    "+expire",
    "+del",
    "+time",
    "+publish",
    "+subscribe",
    "&{prefix}:events:*",
];

async fn set_user(port: u16, user: &str, password: &str, prefix: &str, commands: &[&str]) {
    let mut con = admin(port).await;
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(format!("~{prefix}:*"))
        .arg("resetchannels")
        .arg("-@all");
    for c in commands {
        cmd.arg(c.replace("{prefix}", prefix));
    }
    let _: () = cmd.query_async(&mut con).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_user_with_the_minimal_command_list_runs_the_full_flow() {
    let (port, _) = spawn_redis(&[]);
    let prefix = unique_prefix();
    set_user(port, "router", "router-pw", &prefix, MINIMAL_ACL).await;
    let url = format!("redis://router:router-pw@127.0.0.1:{port}");
    let store = Store::redis_with(&url, &store_config(&prefix))
        .await
        .unwrap();
    full_flow(&store, port).await.unwrap();

    // Keys outside the prefix are refused to this user (the library never needs them).
    let other = unique_prefix();
    let outside = Store::redis_with(&url, &store_config(&other))
        .await
        .unwrap();
    let e = outside
        .set_link(NS, "eve", SVC, 0, LinkTtl::Persistent)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::StoreError, "{e}");
    assert!(e.message().to_uppercase().contains("NOPERM"), "{e}");

    // Every command of the list is needed: without it the flow fails with a typed error.
    for (i, missing) in MINIMAL_ACL.iter().enumerate() {
        let prefix = unique_prefix();
        let user = format!("without{i}");
        let rest: Vec<&str> = MINIMAL_ACL
            .iter()
            .copied()
            .filter(|c| c != missing)
            .collect();
        set_user(port, &user, "pw", &prefix, &rest).await;
        let url = format!("redis://{user}:pw@127.0.0.1:{port}");
        let r = match Store::redis_with(&url, &store_config(&prefix)).await {
            Ok(store) => full_flow(&store, port).await,
            Err(e) => Err(e),
        };
        let e = r.expect_err(&format!("the flow worked without {missing}"));
        assert_eq!(e.kind(), ErrorKind::StoreError, "without {missing}: {e}");
        // Refused directly (NOPERM) or inside a script ("can't run this command", "can't
        // publish to the channel").
        let m = e.message();
        assert!(
            m.to_uppercase().contains("NOPERM")
                || m.contains("can't run this command")
                || m.contains("can't publish to the channel"),
            "without {missing}: {e}"
        );
        eprintln!("[security] without {missing}: {e}");
    }
}

// ---------------------------------------------------------------- passwords

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_errors_or_logs() {
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = logs.clone();
    assert!(stateful_route::log::set_log_sink(
        tracing::Level::TRACE,
        move |r| {
            sink.lock()
                .unwrap()
                .push(format!("{} {} {}", r.level, r.target, r.message));
        }
    ));
    const SECRET: &str = "Sup3r-S3cret-pw";
    let (port, pid) = spawn_redis(&[]);
    let prefix = unique_prefix();
    set_user(
        port,
        "app",
        SECRET,
        &prefix,
        &["+@all", "&{prefix}:events:*"],
    )
    .await;
    let cfg = StoreConfig {
        connect_timeout: Duration::from_millis(300),
        command_timeout: Duration::from_millis(300),
        ..store_config(&prefix)
    };
    let mut errors: Vec<Error> = Vec::new();
    let dead = free_port();
    for url in [
        format!("redis://app:{SECRET}-wrong@127.0.0.1:{port}"),
        format!("redis://:{SECRET}-wrong@127.0.0.1:{port}"),
        format!("redis://nobody:{SECRET}@127.0.0.1:{port}"),
        format!("redis://app:{SECRET}@127.0.0.1:{dead}"),
        format!("rediss://app:{SECRET}@127.0.0.1:{port}"),
        format!("redis://app:{SECRET}@127.0.0.1:{port}/notadb"),
        format!("redis://app:{SECRET}@[::1:{port}"),
        format!("http://app:{SECRET}@127.0.0.1:{port}"),
    ] {
        let r = tokio::time::timeout(Duration::from_secs(10), Store::redis_with(&url, &cfg))
            .await
            .expect("connect hung");
        errors.push(r.expect_err(&stateful_route::redact_url(&url)));
    }
    // A good connection whose server then goes away: command errors and reconnect logs.
    let good = Store::redis_with(&format!("redis://app:{SECRET}@127.0.0.1:{port}"), &cfg)
        .await
        .unwrap();
    assert!(!format!("{good:?}").contains(SECRET), "{good:?}");
    let pod = ServerDriver::new(good.clone(), ServerInfo::new(NS, SVC, 0), config()).unwrap();
    pod.start().await.unwrap();
    let gw = ClientDriver::new(good.clone(), ServerInfo::new(NS, "gw", 0), config()).unwrap();
    gw.init().unwrap();
    gw.compute_linked_pod("", "u", SVC).await.unwrap();
    // SAFETY: a pid this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Err(e) = gw.compute_linked_pod("", "new-user", SVC).await {
            errors.push(e);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no error after the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the periodic publish and refresh fail and log.
    common::eventually(Duration::from_secs(5), "failure logged", || async {
        logs.lock().unwrap().iter().any(|l| l.starts_with("WARN"))
    })
    .await;
    let _ = pod.stop().await;
    assert!(errors.len() >= 9);
    for e in &errors {
        for shown in [e.to_string(), format!("{e:?}"), e.message().to_string()] {
            assert!(!shown.contains(SECRET), "password in an error: {shown}");
        }
    }
    let logs = logs.lock().unwrap();
    assert!(!logs.is_empty());
    for l in logs.iter() {
        assert!(!l.contains(SECRET), "password in a log line: {l}");
    }
    eprintln!(
        "[security] {} errors and {} log lines checked; e.g. {}",
        errors.len(),
        logs.len(),
        errors[0]
    );
    stateful_route::log::clear_log_sink();
}

// ---------------------------------------------------------------- key escape

/// Whether `key` is one of SPEC §3's keys under `prefix`.
fn spec_key(prefix: &str, key: &str) -> bool {
    let Some(rest) = key.strip_prefix(&format!("{prefix}:{{")) else {
        return false;
    };
    let Some((tag, after)) = rest.split_once('}') else {
        return false;
    };
    if tag.contains('{') || after.contains('{') || after.contains('}') {
        return false;
    }
    let Some((ns, kind_and_id)) = tag.split_once(':') else {
        return false;
    };
    let ns_ok = !ns.is_empty()
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let Some((kind, id)) = kind_and_id.split_once(':') else {
        return false;
    };
    ns_ok
        && match kind {
            "lk" => {
                !id.is_empty()
                    && !id.chars().any(char::is_control)
                    && (after.is_empty() || name_ok(after))
            }
            "state" | "workload" | "tag" => name_ok(id) && after.is_empty(),
            _ => false,
        }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_identifiers_are_refused_and_keys_keep_the_layout() {
    let (port, _) = spawn_redis(&[]);
    let prefix = unique_prefix();
    let store = Store::redis_with(&format!("redis://127.0.0.1:{port}"), &store_config(&prefix))
        .await
        .unwrap();
    let pod = ServerDriver::new(store.clone(), ServerInfo::new(NS, SVC, 0), config()).unwrap();
    pod.start().await.unwrap();
    let gw = ClientDriver::new(store.clone(), ServerInfo::new(NS, "gw", 0), config()).unwrap();
    gw.init().unwrap();
    // Legitimate but colon-heavy uids stay inside their tag.
    for uid in ["a:lk:b", "x:state:room", "用户:1", "a b", "\u{a0}"] {
        gw.compute_linked_pod("", uid, SVC).await.unwrap();
    }
    let long = "u".repeat(513);
    let bad_uids = [
        "a}room",
        "}",
        "{",
        "a{b}c",
        "a\u{0}b",
        "a\nb",
        "a\rb",
        "\u{1b}[31m",
        "a\u{7f}",
        "a\u{85}",
        "",
        long.as_str(),
    ];
    let bad_names = [
        "room}x",
        "ro{om",
        "ro:om",
        "room\n",
        "",
        "r m",
        "room*",
        "ROOM\u{0}",
    ];
    let bad_ns = ["other:lk", "a}b", "A", "a\nb", "x{", &"n".repeat(64)];
    let invalid = |r: Result<()>, what: String| match r {
        Err(e) if e.kind() == ErrorKind::InvalidArgument => {}
        other => panic!("{what}: expected INVALID_ARGUMENT, got {other:?}"),
    };
    for uid in bad_uids {
        invalid(
            gw.compute_linked_pod("", uid, SVC).await.map(drop),
            format!("compute {uid:?}"),
        );
        invalid(
            pod.set_linked_pod("", uid, SVC, 0).await.map(drop),
            format!("set {uid:?}"),
        );
        invalid(
            store
                .set_link(NS, uid, SVC, 0, LinkTtl::Seconds(60))
                .await
                .map(drop),
            format!("store set {uid:?}"),
        );
        invalid(
            gw.get_link_service("", uid).await.map(drop),
            format!("services {uid:?}"),
        );
        invalid(
            gw.batch_get_linked_pod("", &["ok", uid], SVC)
                .await
                .map(drop),
            format!("batch {uid:?}"),
        );
    }
    for name in bad_names {
        invalid(
            gw.compute_linked_pod("", "u1", name).await.map(drop),
            format!("svc {name:?}"),
        );
        invalid(
            store
                .set_link(NS, "u1", name, 0, LinkTtl::Persistent)
                .await
                .map(drop),
            format!("store svc {name:?}"),
        );
        invalid(
            gw.route_info().set_global_service_name_tag(name, SVC).await,
            format!("tag {name:?}"),
        );
        invalid(
            gw.route_info().set_global_service_name_tag("t", name).await,
            format!("tag target {name:?}"),
        );
        invalid(
            store.set_workload_state(NS, name, "READY").await,
            format!("workload {name:?}"),
        );
        invalid(
            store
                .publish_pod_state(NS, name, 0, 0, stateful_route::RoutingState::Ready)
                .await
                .map(drop),
            format!("publish {name:?}"),
        );
        assert!(ServerDriver::new(store.clone(), ServerInfo::new(NS, name, 0), config()).is_err());
    }
    for ns in bad_ns {
        let e = gw.compute_linked_pod(ns, "u1", SVC).await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::InvalidArgument | ErrorKind::NamespaceNotLocal
            ),
            "{ns:?}: {e}"
        );
        invalid(
            store
                .set_link(ns, "u1", SVC, 0, LinkTtl::Persistent)
                .await
                .map(drop),
            format!("store ns {ns:?}"),
        );
        assert!(ClientDriver::new(store.clone(), ServerInfo::new(ns, "gw", 0), config()).is_err());
    }
    // Workload words cannot smuggle anything either.
    invalid(
        store.set_workload_state(NS, SVC, "READY}x").await,
        "workload word".to_string(),
    );
    pod.stop().await.unwrap();

    let mut con = admin(port).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(spec_key(&prefix, k), "a key outside SPEC's layout: {k:?}");
    }
    eprintln!(
        "[security] {} keys, all in SPEC's layout: {keys:?}",
        keys.len()
    );
}
