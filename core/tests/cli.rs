//! The operator CLI as the built binary (`--features cli`), against a real Redis (and a Redis
//! Cluster for `status`): status, link, links, explain, cordon/uncordon (honoured by pods
//! across restarts, at once with propagation), watch, exit codes, `--help`, passwords kept out
//! of every output, and the dashboard in Debian's headless chromium (screenshot under target/).
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{lease_port, redis_url, spawn_redis, spawn_redis_with, unique_prefix};
use serde_json::Value;
use stateful_route::{
    BaseConfig, ClientDriver, LinkTtl, RoutingState, ServerDriver, ServerInfo, Store, StoreConfig,
};

const BIN: &str = env!("CARGO_BIN_EXE_stateful-route");
const NS: &str = "default";

fn config() -> BaseConfig {
    BaseConfig {
        service_state_update_period_seconds: 0.2,
        cpu_factor: 0.0,
        slow_start_seconds: Some(0.0),
        ..BaseConfig::default()
    }
}

async fn store(url: &str, prefix: &str) -> Store {
    Store::redis_with(
        url,
        &StoreConfig {
            key_prefix: prefix.to_string(),
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap()
}

async fn pod(store: &Store, service: &str, index: u32, load: u32) -> ServerDriver {
    let s =
        ServerDriver::new(store.clone(), ServerInfo::new(NS, service, index), config()).unwrap();
    s.set_load_state(load).unwrap();
    s.start().await.unwrap();
    s
}

/// Runs the binary with `--url url --prefix prefix` and `args`.
fn cli(url: &str, prefix: &str, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(["--url", url, "--prefix", prefix])
        .args(args)
        .env_remove("STATEFUL_ROUTE_URL")
        .env("NO_COLOR", "1")
        .output()
        .expect("run the CLI");
    out
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    text(&o)
}

fn json(o: Output) -> Value {
    serde_json::from_str(&ok(o)).expect("JSON")
}

async fn until(within: Duration, what: &str, mut f: impl AsyncFnMut() -> bool) {
    let end = Instant::now() + within;
    while !f().await {
        assert!(Instant::now() < end, "timed out after {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pod_json<'a>(status: &'a Value, service: &str, pod: u64) -> &'a Value {
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {status:#}"))["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"] == pod)
        .unwrap_or_else(|| panic!("no pod {pod} in {status:#}"))
}

#[tokio::test]
async fn status_shows_every_service_and_its_pods() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let a0 = pod(&s, "room", 0, 10).await;
    let a1 = pod(&s, "room", 1, 30).await;
    let b0 = pod(&s, "chat", 0, 5).await;
    a1.set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();
    let st = json(cli(url, &prefix, &["status", "--json"]));
    let names: Vec<&str> = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chat", "room"]);
    let p0 = pod_json(&st, "room", 0);
    assert_eq!(
        (
            p0["load"].as_u64(),
            p0["state"].as_str(),
            p0["alive"].as_bool()
        ),
        (Some(10), Some("routable"), Some(true))
    );
    assert_eq!(pod_json(&st, "room", 1)["state"], "draining");
    assert_eq!(pod_json(&st, "room", 1)["routing_state"], "DENY_NEW_CALL");
    assert!(pod_json(&st, "room", 0)["age_seconds"].as_f64().unwrap() < 5.0);
    let room = &st["services"][1]["totals"];
    assert_eq!(
        (
            room["pods"].as_u64(),
            room["routable"].as_u64(),
            room["draining"].as_u64(),
            room["load"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(40))
    );

    // The table: a header and aligned columns; one service only.
    let t = ok(cli(url, &prefix, &["status", "room"]));
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0], "room: 2 pods, 1 routable, 1 draining, 0 dead; load 40",
        "{t}"
    );
    assert!(lines[1].starts_with("POD  LOAD  WEIGHT  ROUTING"), "{t}");
    let col = lines[1].find("STATE").unwrap();
    assert_eq!(&lines[2][col..col + 8], "routable", "{t}");
    assert_eq!(&lines[3][col..col + 8], "draining", "{t}");
    assert!(!t.contains("\x1b["), "no colour off a terminal");

    // A stopped pod shows SHUTDOWN and dead.
    b0.stop().await.unwrap();
    let st = json(cli(url, &prefix, &["status", "chat", "--json"]));
    assert_eq!(pod_json(&st, "chat", 0)["state"], "dead");
    // No such service: exit 3.
    assert_eq!(
        cli(url, &prefix, &["status", "nosuch"]).status.code(),
        Some(3)
    );
    a0.stop().await.unwrap();
    a1.stop().await.unwrap();
}

#[tokio::test]
async fn link_commands_use_the_atomic_operations() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let get = cli(url, &prefix, &["link", "get", "u1", "room"]);
    assert_eq!(get.status.code(), Some(3), "no link: not found");
    assert!(ok(cli(url, &prefix, &["link", "set", "u1", "room", "3"]))
        .contains("u1 room -> pod 3 (persistent); was no link"));
    assert_eq!(
        s.get_link(NS, "u1", "room")
            .await
            .unwrap()
            .unwrap()
            .pod_index,
        3
    );
    let l = json(cli(url, &prefix, &["link", "get", "u1", "room", "--json"]));
    assert_eq!(
        (l["link"]["pod"].as_u64(), l["link"]["persistent"].as_bool()),
        (Some(3), Some(true))
    );
    ok(cli(
        url,
        &prefix,
        &["link", "set", "u1", "lobby", "1", "--ttl", "60"],
    ));
    let l = s.get_link(NS, "u1", "lobby").await.unwrap().unwrap();
    assert!(!l.is_persistent() && l.ttl.unwrap() <= Duration::from_secs(60));
    let links = json(cli(url, &prefix, &["links", "u1", "--json"]));
    assert_eq!(
        links["links"],
        serde_json::json!({"room": 3}),
        "persistent links only"
    );
    // rm --if-pod with the wrong pod changes nothing and exits 3.
    assert_eq!(
        cli(url, &prefix, &["link", "rm", "u1", "room", "--if-pod", "2"])
            .status
            .code(),
        Some(3)
    );
    assert!(s.get_link(NS, "u1", "room").await.unwrap().is_some());
    ok(cli(
        url,
        &prefix,
        &["link", "rm", "u1", "room", "--if-pod", "3"],
    ));
    assert!(s.get_link(NS, "u1", "room").await.unwrap().is_none());
    // A delayed remove of a persistent link.
    ok(cli(url, &prefix, &["link", "set", "u2", "room", "4"]));
    ok(cli(
        url,
        &prefix,
        &["link", "rm", "u2", "room", "--delay", "30"],
    ));
    let l = s.get_link(NS, "u2", "room").await.unwrap().unwrap();
    assert!(l.ttl.is_some_and(|t| t <= Duration::from_secs(30)));
    // Bad input: exit 2, nothing written.
    let bad = cli(url, &prefix, &["link", "set", "bad{uid", "room", "1"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("INVALID_ARGUMENT"));
    assert_eq!(
        cli(
            url,
            &prefix,
            &["link", "set", "u3", "room", "1", "--ttl", "0"]
        )
        .status
        .code(),
        Some(2)
    );
    assert!(s.get_link(NS, "u3", "room").await.unwrap().is_none());
}

#[tokio::test]
async fn explain_names_every_pods_verdict() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let p0 = pod(&s, "room", 0, 10).await;
    let p1 = pod(&s, "room", 1, 900).await;
    let e = json(cli(url, &prefix, &["explain", "newbie", "room", "--json"]));
    let verdicts: Vec<(u64, &str)> = e["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["pod"].as_u64().unwrap(), p["verdict"].as_str().unwrap()))
        .collect();
    assert_eq!(verdicts, [(0, "kept"), (1, "over_load_range")]);
    assert_eq!(e["answer"], 0);
    assert_eq!(e["policy"], "p2c");
    assert!(
        s.get_link(NS, "newbie", "room").await.unwrap().is_none(),
        "a dry run"
    );
    s.set_link(NS, "old", "room", 1, LinkTtl::Persistent)
        .await
        .unwrap();
    let t = ok(cli(url, &prefix, &["explain", "old", "room"]));
    assert!(
        t.starts_with("old room: linked (persistent) to pod 1, which is alive\n"),
        "{t}"
    );
    assert!(t.contains("over_load_range"), "{t}");
    p0.stop().await.unwrap();
    p1.stop().await.unwrap();
}

#[tokio::test]
async fn a_cordon_is_honoured_by_pods_across_restarts() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let p0 = pod(&s, "room", 0, 10).await;
    let p1 = pod(&s, "room", 1, 10).await;
    let gw = ClientDriver::new(
        store(url, &prefix).await,
        ServerInfo::new(NS, "gw", 0),
        BaseConfig::default(),
    )
    .unwrap();
    gw.init().unwrap();
    assert_eq!(gw.routable_pods("room").await.unwrap(), [0, 1]);
    let out = json(cli(url, &prefix, &["cordon", "room", "1", "--json"]));
    assert_eq!(out["cordoned"], serde_json::json!([1]));
    assert_eq!(out["changed_now"], serde_json::json!([1]));
    // At once in the store, and at once (propagation) at a gateway with a 30 s refresh.
    let state =
        |s: Store| async move { s.pod_states(NS, "room").await.unwrap().pods[1].routing_state };
    assert_eq!(state(s.clone()).await, RoutingState::DenyNewCall);
    until(
        Duration::from_secs(2),
        "the gateway sees the cordon",
        async || gw.routable_pods("room").await.unwrap() == [0],
    )
    .await;
    // The pod keeps publishing READY; the store keeps DENY_NEW_CALL (several periods).
    let stamp = s.pod_states(NS, "room").await.unwrap().pods[1].update_ms;
    until(Duration::from_secs(5), "pod 1 republished", async || {
        let p = s.pod_states(NS, "room").await.unwrap().pods[1];
        p.update_ms > stamp + 400
    })
    .await;
    assert_eq!(state(s.clone()).await, RoutingState::DenyNewCall);
    // A restart with the same index stays cordoned.
    p1.stop().await.unwrap();
    let p1 = pod(&s, "room", 1, 10).await;
    assert_eq!(state(s.clone()).await, RoutingState::DenyNewCall);
    let st = json(cli(url, &prefix, &["status", "room", "--json"]));
    assert_eq!(pod_json(&st, "room", 1)["cordoned"], true);
    assert_eq!(pod_json(&st, "room", 1)["state"], "draining");
    // Its users stay: a link to it still answers.
    s.set_link(NS, "kept", "room", 1, LinkTtl::Persistent)
        .await
        .unwrap();
    assert_eq!(gw.compute_linked_pod("", "kept", "room").await.unwrap(), 1);
    // Uncordon: READY again from its next publish, seen by the gateway at once.
    ok(cli(url, &prefix, &["uncordon", "room", "1"]));
    until(Duration::from_secs(3), "pod 1 READY again", async || {
        state(s.clone()).await == RoutingState::Ready
    })
    .await;
    until(Duration::from_secs(2), "the gateway sees it", async || {
        gw.routable_pods("room").await.unwrap() == [0, 1]
    })
    .await;
    // A pod's own drain is not undone by a cordon: SHUTDOWN stays SHUTDOWN.
    ok(cli(url, &prefix, &["cordon", "room", "0"]));
    p0.stop().await.unwrap();
    assert_eq!(
        s.pod_states(NS, "room").await.unwrap().pods[0].routing_state,
        RoutingState::Shutdown
    );
    // Bad input: exit 2.
    assert_eq!(
        cli(url, &prefix, &["cordon", "room"]).status.code(),
        Some(2)
    );
    assert_eq!(
        cli(url, &prefix, &["cordon", "room", "-3"]).status.code(),
        Some(2)
    );
    p1.stop().await.unwrap();
    gw.close();
}

/// Reads `child`'s stdout lines on a thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

fn next_matching(
    rx: &mpsc::Receiver<String>,
    within: Duration,
    what: &str,
    f: impl Fn(&str) -> bool,
) -> String {
    let end = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if f(&l) => return l,
            Ok(l) => seen.push(l),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

#[tokio::test]
async fn watch_streams_routing_changes_and_link_moves() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let p0 = pod(&s, "room", 0, 10).await;
    // A link that exists (creating one from nothing publishes nothing: no gateway holds it).
    s.set_link(NS, "mover", "room", 2, LinkTtl::Persistent)
        .await
        .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--url",
            url,
            "--prefix",
            &prefix,
            "watch",
            "--json",
            "--interval",
            "0.2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    next_matching(&rx, Duration::from_secs(10), "watching", |l| {
        l.contains("\"watching\"")
    });
    p0.set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();
    let l = next_matching(&rx, Duration::from_secs(5), "the drain", |l| {
        l.contains("\"pod\"")
    });
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(
        (
            v["service"].as_str(),
            v["pod"].as_u64(),
            v["old"].as_str(),
            v["new"].as_str()
        ),
        (Some("room"), Some(0), Some("READY"), Some("DENY_NEW_CALL")),
        "{l}"
    );
    s.set_link(NS, "mover", "room", 4, LinkTtl::Persistent)
        .await
        .unwrap();
    let l = next_matching(&rx, Duration::from_secs(5), "the move", |l| {
        l.contains("\"link\"")
    });
    let v: Value = serde_json::from_str(&l).unwrap();
    assert_eq!(
        (
            v["uid"].as_str(),
            v["pod"].as_u64(),
            v["persistent"].as_bool()
        ),
        (Some("mover"), Some(4), Some(true))
    );
    // A new pod appears; a stopped pod goes SHUTDOWN.
    let p1 = pod(&s, "room", 1, 10).await;
    let l = next_matching(&rx, Duration::from_secs(5), "the new pod", |l| {
        l.contains("\"pod\":1")
    });
    assert!(l.contains("\"new\":\"READY\""), "{l}");
    p1.stop().await.unwrap();
    next_matching(&rx, Duration::from_secs(5), "the stop", |l| {
        l.contains("\"pod\":1") && l.contains("SHUTDOWN")
    });
    // SIGINT ends it with 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    p0.stop().await.unwrap();
}

#[test]
fn exit_codes_help_and_passwords() {
    let prefix = unique_prefix();
    // Every subcommand has --help.
    for sub in [
        vec!["status"],
        vec!["link"],
        vec!["link", "get"],
        vec!["link", "set"],
        vec!["link", "rm"],
        vec!["links"],
        vec!["explain"],
        vec!["cordon"],
        vec!["uncordon"],
        vec!["watch"],
        vec!["dashboard"],
    ] {
        let o = Command::new(BIN).args(&sub).arg("--help").output().unwrap();
        assert!(o.status.success(), "{sub:?} --help");
        assert!(
            text(&o).contains("Usage: stateful-route"),
            "{sub:?}: {}",
            text(&o)
        );
    }
    // Usage errors: 2. Unreachable store: 4.
    assert_eq!(
        Command::new(BIN)
            .arg("nosuch")
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );
    let closed = format!("redis://127.0.0.1:{}", lease_port());
    let o = cli(&closed, &prefix, &["status"]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A password from the environment works and is never printed, not even in errors.
    let (port, _pid) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let mut con = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cr3t-pw")
        .query(&mut con)
        .unwrap();
    let run = |args: &[&str], pw: &str| {
        Command::new(BIN)
            .args([
                "--url",
                &url,
                "--prefix",
                &prefix,
                "--password-env",
                "SR_TEST_PW",
            ])
            .args(args)
            .env("SR_TEST_PW", pw)
            .output()
            .unwrap()
    };
    let o = run(&["status", "--json"], "s3cr3t-pw");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["status"], "wrong-pw-42");
    assert_ne!(o.status.code(), Some(0));
    let all = format!("{}{}", text(&o), String::from_utf8_lossy(&o.stderr));
    assert!(!all.contains("wrong-pw-42"), "{all}");
    let o = Command::new(BIN)
        .args(["--help"])
        .env("STATEFUL_ROUTE_URL", "redis://:hidden-pw@h:1")
        .output()
        .unwrap();
    assert!(!text(&o).contains("hidden-pw"), "{}", text(&o));
    // Without the variable: a usage error naming it.
    let o = Command::new(BIN)
        .args(["--url", &url, "--password-env", "SR_UNSET_VAR", "status"])
        .env_remove("SR_UNSET_VAR")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SR_UNSET_VAR"));
}

#[tokio::test]
async fn status_on_a_cluster_lists_services_of_every_node() {
    // Three primaries, no replicas; each node's bus on a leased port.
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            spawn_redis_with(|p| {
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{p}.conf"),
                    "--cluster-port",
                    &lease_port().to_string(),
                ]
                .map(String::from)
                .to_vec()
            })
            .0
        })
        .collect();
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for p in &ports {
        create.arg(format!("127.0.0.1:{p}"));
    }
    let o = create
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let seeds: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let refs: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let prefix = unique_prefix();
    let cfg = StoreConfig {
        key_prefix: prefix.clone(),
        ..StoreConfig::default()
    };
    let s = {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match Store::redis_cluster_with(&refs, &cfg).await {
                Ok(s) if s.pod_states(NS, "probe").await.is_ok() => break s,
                _ if Instant::now() < end => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(e) => panic!("cluster: {e}"),
                Ok(_) => panic!("cluster never answered"),
            }
        }
    };
    // Enough services that they land on every node's slots.
    let services: Vec<String> = (0..12).map(|i| format!("svc{i:02}")).collect();
    let mut pods = Vec::new();
    for svc in &services {
        pods.push(pod(&s, svc, 0, 7).await);
    }
    let st = json(cli(
        &seeds.join(","),
        &prefix,
        &["--cluster", "status", "--json"],
    ));
    let names: Vec<String> = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, services);
    assert!(st["services"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["pods"][0]["state"] == "routable"));
    // Cordon across the cluster too.
    ok(cli(
        &seeds.join(","),
        &prefix,
        &["--cluster", "cordon", "svc03", "0"],
    ));
    assert_eq!(
        s.pod_states(NS, "svc03").await.unwrap().pods[0].routing_state,
        RoutingState::DenyNewCall
    );
    for p in pods {
        p.stop().await.unwrap();
    }
}

/// `GET base+path` over HTTP/1.1 (the body; panics on a status other than 200).
fn http_get(base: &str, path: &str) -> String {
    use std::io::Read;
    let host = base.trim_start_matches("http://");
    let mut c = std::net::TcpStream::connect(host).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    c.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    body.to_string()
}

/// The browser driver (tests/dashboard/browser.mjs) over stdin/stdout.
struct Browser {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Browser {
    fn say(&mut self, line: &str) {
        writeln!(self.child.stdin.as_mut().unwrap(), "{line}").unwrap();
    }

    fn hear(&self, within: Duration, what: &str) -> String {
        let l = next_matching(&self.rx, within, what, |_| true);
        assert!(!l.starts_with("error"), "browser: {l}");
        l
    }
}

#[tokio::test]
async fn the_dashboard_shows_pods_and_follows_a_drain_in_a_real_browser() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let s = store(url, &prefix).await;
    let p0 = pod(&s, "room", 0, 10).await;
    let p1 = pod(&s, "room", 1, 40).await;
    let mut dash = Command::new(BIN)
        .args([
            "--url",
            url,
            "--prefix",
            &prefix,
            "dashboard",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "0.5",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(&mut dash);
    let l = next_matching(
        &out,
        Duration::from_secs(10),
        "the dashboard's address",
        |l| l.contains("http://"),
    );
    let base = l[l.find("http://").unwrap()..]
        .trim_end_matches('/')
        .to_string();

    // The JSON API and /metrics on the same port.
    let get = |path: &str| http_get(&base, path);
    let st: Value = serde_json::from_str(&get("/api/state")).unwrap();
    assert_eq!(pod_json(&st, "room", 1)["load"], 40);
    let m = get("/metrics");
    assert!(
        m.contains("stateful_route_pods{service=\"room\",state=\"routable\"} 2"),
        "{m}"
    );
    assert!(get("/").contains("<title>stateful-route</title>"));
    // Placements a gateway makes show as placements per minute (reported once a period).
    let gw = ClientDriver::new(
        store(url, &prefix).await,
        ServerInfo::new(NS, "gw", 0),
        config(),
    )
    .unwrap();
    gw.init().unwrap();
    for i in 0..20 {
        gw.compute_linked_pod("", &format!("new{i}"), "room")
            .await
            .unwrap();
    }
    until(
        Duration::from_secs(10),
        "placements per minute",
        async || {
            let st: Value = serde_json::from_str(&get("/api/state")).unwrap();
            let rate = |pod| {
                pod_json(&st, "room", pod)["placements_per_minute"]
                    .as_f64()
                    .unwrap_or(0.0)
            };
            rate(0) + rate(1) > 0.0
        },
    )
    .await;
    gw.close();
    let page = get("/");
    assert!(
        !page.contains(" src=") && !page.contains(" href="),
        "no external assets"
    );

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(root.join("target"));
    std::fs::create_dir_all(&target).unwrap();
    let png = target.join("dashboard.png");
    let mut child = Command::new("node")
        .args(["--experimental-websocket", "--no-warnings"])
        .arg(root.join("tests/dashboard/browser.mjs"))
        .arg(format!("{base}/"))
        .arg(&png)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let rx = lines(&mut child);
    let mut b = Browser { child, rx };
    let shown = b.hear(Duration::from_secs(60), "the page with its pods");
    assert_eq!(shown, "shown room 0=routable,room 1=routable");
    // Drain pod 1: the page turns it to draining without a reload.
    p1.set_routing_state(RoutingState::DenyNewCall)
        .await
        .unwrap();
    b.say("expect room 1 draining");
    assert_eq!(
        b.hear(Duration::from_secs(20), "pod 1 draining"),
        "seen room 1 draining"
    );
    // A pod that stops turns dead.
    p0.stop().await.unwrap();
    b.say("expect room 0 dead");
    assert_eq!(
        b.hear(Duration::from_secs(20), "pod 0 dead"),
        "seen room 0 dead"
    );
    b.say("screenshot");
    assert!(b
        .hear(Duration::from_secs(20), "the screenshot")
        .starts_with("saved "));
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 5000,
        "{} bytes",
        bytes.len()
    );
    b.say("quit");
    assert!(b.child.wait().unwrap().success());
    unsafe { libc::kill(dash.id() as i32, libc::SIGTERM) };
    assert_eq!(
        dash.wait().unwrap().code(),
        Some(0),
        "the dashboard stops on SIGTERM"
    );
    p1.stop().await.unwrap();
}

#[tokio::test]
async fn tls_with_a_ca_file_and_sentinels() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    // A CA and a server certificate for 127.0.0.1, and a Redis that speaks TLS with them.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "stateful-route CLI test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let dir = std::env::temp_dir().join(format!("sr-cli-tls-{}", unique_prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(path("server.pem"), cert.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    let tls_port = lease_port();
    let (plain, _) = spawn_redis(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &path("server.pem"),
        "--tls-key-file",
        &path("server.key"),
        "--tls-ca-cert-file",
        &path("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]);
    let prefix = unique_prefix();
    let s = store(&format!("redis://127.0.0.1:{plain}"), &prefix).await;
    let p0 = pod(&s, "room", 0, 10).await;
    let tls_url = format!("rediss://127.0.0.1:{tls_port}");
    let st = json(cli(
        &tls_url,
        &prefix,
        &["--tls-ca", &path("ca.pem"), "status", "--json"],
    ));
    assert_eq!(pod_json(&st, "room", 0)["state"], "routable");
    // Without the CA the certificate is not trusted: a failure, not a hang or a panic.
    let o = cli(&tls_url, &prefix, &["status"]);
    assert!(matches!(o.status.code(), Some(1) | Some(4)), "{o:?}");
    // A CA file that does not exist: a usage error naming it.
    let o = cli(
        &tls_url,
        &prefix,
        &["--tls-ca", "/nonexistent/ca.pem", "status"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/ca.pem"));

    // Sentinels: the CLI finds the master they name.
    let monitor = format!("sentinel monitor main 127.0.0.1 {plain} 1");
    let (sentinel, _) = spawn_redis(&[
        "--sentinel",
        &monitor,
        "sentinel down-after-milliseconds main 60000",
    ]);
    let o = Command::new(BIN)
        .args([
            "--url",
            &format!("redis://127.0.0.1:{sentinel}"),
            "--sentinel",
            "main",
            "--prefix",
            &prefix,
            "status",
            "--json",
        ])
        .output()
        .unwrap();
    let st: Value = serde_json::from_str(&ok(o)).unwrap();
    assert_eq!(pod_json(&st, "room", 0)["load"], 10);
    p0.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
