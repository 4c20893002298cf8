//! Concurrency, load and a memory soak with real processes (issue 5): pod processes and
//! gateway processes (`stateful-route-loadgen`) share one `redis-server`. Every user must get
//! the same pod from every gateway throughout, and that pod must be the link Redis holds.
//! Meanwhile a mover process hands 100 users from pod to pod; every gateway answer for them
//! must be the link in force, or the one it replaced at most the propagation bound before.
//! Figures are printed with `[load]` (run with `--nocapture`).
//!
//! Sizes can be raised for a longer local run: `SR_LOAD_USERS`, `SR_LOAD_ROUNDS`,
//! `SR_LOAD_GATEWAYS`, `SR_SOAK_USERS`.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{spawn_redis, unique_prefix};

const BIN: &str = env!("CARGO_BIN_EXE_stateful-route-loadgen");
const SVC: &str = "room";

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn loadgen(args: &[String]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // SAFETY: prctl is async-signal-safe; the child dies with this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn common_args(role: &str, url: &str, prefix: &str) -> Vec<String> {
    [role, "--url", url, "--prefix", prefix, "--service", SVC]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Pod processes, each running some pods; stopped when dropped (stdin closed).
struct Pods(Vec<Child>);

impl Pods {
    fn start(url: &str, prefix: &str, groups: &[&str]) -> Pods {
        let mut children = Vec::new();
        for g in groups {
            let mut args = common_args("pods", url, prefix);
            args.extend(["--pods".to_string(), g.to_string()]);
            let mut child = loadgen(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line.trim(), "ready", "pod process {g} did not start");
            children.push(child);
        }
        Pods(children)
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        for c in &mut self.0 {
            drop(c.stdin.take());
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The `key=value` figures a gateway printed.
fn figures(out: &str) -> std::collections::HashMap<String, f64> {
    out.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

/// Waits for `child` (failing after `within`) and returns its figures.
fn finish(mut child: Child, within: Duration) -> std::collections::HashMap<String, f64> {
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a gateway did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "gateway failed: {:?}", out.status);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let f = figures(&text);
    assert!(f.contains_key("computes"), "no figures in {text:?}");
    f
}

#[test]
fn gateways_agree_on_every_user_under_load() {
    let users = env_or("SR_LOAD_USERS", 100_000);
    let rounds = env_or("SR_LOAD_ROUNDS", 4);
    let gateways = env_or("SR_LOAD_GATEWAYS", 3);
    let (port, _) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let _pods = Pods::start(&url, &prefix, &["0,1", "2,3"]);
    let dir = std::env::temp_dir().join(format!("sr-load-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();

    // Users that move between the four pods (persistent hand-offs) while the gateways work.
    let mover_log = dir.join("moves.txt");
    let mut margs = common_args("mover", &url, &prefix);
    margs.extend(
        [
            "--movers",
            &MOVERS.to_string(),
            "--moves",
            &std::env::var("SR_LOAD_MOVES").unwrap_or("3000".into()),
            "--pods",
            "4",
            "--every-ms",
            &std::env::var("SR_LOAD_MOVE_EVERY_MS").unwrap_or("5".into()),
            "--out",
            mover_log.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let mut mover = loadgen(&margs).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(mover.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "the mover did not start");

    let started = Instant::now();
    let mut children = Vec::new();
    for g in 0..gateways {
        let mut args = common_args("gateway", &url, &prefix);
        let file = dir.join(format!("gw{g}.txt"));
        let watched = dir.join(format!("gw{g}-movers.txt"));
        args.extend(
            [
                "--movers",
                &MOVERS.to_string(),
                "--movers-out",
                watched.to_str().unwrap(),
            ]
            .map(String::from),
        );
        args.extend(
            [
                "--users",
                &users.to_string(),
                "--rounds",
                &rounds.to_string(),
                "--concurrency",
                "32",
                "--seed",
                &(g + 1).to_string(),
                // Smaller than the user count: later rounds mix cache hits and store calls.
                "--cache-capacity",
                &(users * 3 / 4).to_string(),
                "--out",
                file.to_str().unwrap(),
            ]
            .map(String::from),
        );
        children.push(loadgen(&args).stdout(Stdio::piped()).spawn().unwrap());
    }
    let mut total = 0.0;
    for (g, child) in children.into_iter().enumerate() {
        let f = finish(child, Duration::from_secs(600));
        eprintln!("[load] gateway {g}: {f:?}");
        assert_eq!(f["errors"], 0.0, "gateway {g} had errors");
        assert_eq!(
            f["computes"],
            (users * rounds) as f64,
            "gateway {g}: computes done, not planned"
        );
        assert_eq!(
            f["divergent"], 0.0,
            "gateway {g} changed its answer for a user"
        );
        total += f["computes"];
    }
    let wall = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while mover.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the mover did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mover.wait().unwrap().success(), "the mover failed");
    check_movers(&dir, gateways);

    // Every gateway's answer for every user, against each other and against Redis.
    let answers: Vec<Vec<String>> = (0..gateways)
        .map(|g| {
            std::fs::read_to_string(dir.join(format!("gw{g}.txt")))
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        })
        .collect();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut con = client.get_connection().unwrap();
    let mut divergent = 0u64;
    let mut per_pod = std::collections::BTreeMap::<String, u64>::new();
    for start in (0..users).step_by(1000) {
        let end = (start + 1000).min(users);
        let keys: Vec<String> = (start..end)
            .map(|u| format!("{prefix}:{{default:lk:user-{u}}}{SVC}"))
            .collect();
        let stored: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut con).unwrap();
        for (i, s) in stored.into_iter().enumerate() {
            let u = start as usize + i;
            let s = s.unwrap_or_else(|| panic!("user-{u} has no link in Redis"));
            for a in &answers {
                if a[u] != s {
                    divergent += 1;
                }
            }
            *per_pod.entry(s).or_default() += 1;
        }
    }
    eprintln!(
        "[load] {gateways} gateway processes, 2 pod processes (4 pods), {users} users, {total} computes in {wall:?}: {:.0} computes/s overall; divergence {divergent}; users per pod {per_pod:?}",
        total / wall.as_secs_f64()
    );
    assert_eq!(
        divergent, 0,
        "gateways disagree with each other or with Redis"
    );
    assert!(total >= 1_000_000.0 || std::env::var("SR_LOAD_ROUNDS").is_ok());
    assert!(users >= 100_000 || std::env::var("SR_LOAD_USERS").is_ok());
    assert_eq!(per_pod.len(), 4, "every pod got users: {per_pod:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

const MOVERS: u32 = 100;
/// How long a gateway may answer a moved user's old pod after the move's reply (SPEC §11; the
/// loopback p99 is far below, see BENCHMARKS.md; generous for a debug build on a busy machine).
const PROPAGATION_BOUND_US: u128 = 1_000_000;

/// Every answer a gateway gave for a mover is a pod the user was linked to at that moment, or
/// one it left at most the bound before (a move's exact instant lies between its send and its
/// reply, both logged by the mover).
fn check_movers(dir: &std::path::Path, gateways: u64) {
    let mut timeline: Vec<Vec<(u128, u128, u32)>> = vec![Vec::new(); MOVERS as usize];
    for l in std::fs::read_to_string(dir.join("moves.txt"))
        .unwrap()
        .lines()
    {
        let f: Vec<&str> = l.split(' ').collect();
        let (sent, reply, i, pod) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse::<usize>().unwrap(),
            f[3].parse().unwrap(),
        );
        timeline[i].push((sent, reply, pod));
    }
    let moves: usize = timeline.iter().map(|t| t.len().saturating_sub(1)).sum();
    let (mut answers, mut wrong) = (0u64, 0u64);
    let mut lateness: Vec<u128> = Vec::new();
    for g in 0..gateways {
        let text = std::fs::read_to_string(dir.join(format!("gw{g}-movers.txt"))).unwrap();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let (t, i, pod): (u128, usize, u32) = (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            );
            answers += 1;
            let tl = &timeline[i];
            // The link in force from tl[k].0 (sent) until tl[k+1].1 (the next move's reply):
            // how long after its end did the answer come (0: while in force)? The least of
            // that over every time the user held this pod.
            let late = (0..tl.len())
                .filter(|&k| tl[k].2 == pod && tl[k].0 <= t)
                .map(|k| {
                    tl.get(k + 1)
                        .map_or(0, |&(_, until, _)| t.saturating_sub(until))
                })
                .min();
            let ok = late.is_some_and(|l| l <= PROPAGATION_BOUND_US);
            if let Some(l) = late.filter(|l| *l > 0 && ok) {
                lateness.push(l);
            }
            if !ok {
                wrong += 1;
                if wrong <= 5 {
                    eprintln!(
                        "[load] gateway {g}: mover-{i} answered {pod} at {t}; timeline {tl:?}"
                    );
                }
            }
        }
    }
    lateness.sort_unstable();
    let at = |p: f64| {
        lateness
            .get(((lateness.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    eprintln!(
        "[load] movers: {moves} moves of {MOVERS} users; {answers} gateway answers for them; \
         {} gave the previous pod after the move's reply (by p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms after it); {wrong} beyond the {} ms bound",
        lateness.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        PROPAGATION_BOUND_US / 1000
    );
    assert!(moves >= 300, "the mover moved {moves} times");
    assert!(
        answers > 1000,
        "the gateways answered {answers} times for movers"
    );
    assert_eq!(
        wrong, 0,
        "answers for moved users beyond the propagation bound"
    );
}

/// A gateway computing far more users than its cache holds: resident memory after the warm-up
/// and at the end stay within a bound (no growth with the number of users).
#[test]
fn gateway_memory_stays_bounded_over_many_users() {
    let users = env_or("SR_SOAK_USERS", 150_000);
    let capacity = 5_000;
    let (port, _) = spawn_redis(&[]);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let _pods = Pods::start(&url, &prefix, &["0,1"]);
    let mut args = common_args("gateway", &url, &prefix);
    let mid = users / 3;
    args.extend(
        [
            "--users",
            &users.to_string(),
            "--rounds",
            "1",
            "--concurrency",
            "32",
            "--cache-capacity",
            &capacity.to_string(),
            "--rss-at",
            &mid.to_string(),
        ]
        .map(String::from),
    );
    let f = finish(
        loadgen(&args).stdout(Stdio::piped()).spawn().unwrap(),
        Duration::from_secs(600),
    );
    let (start, at_mid, end) = (f["rss_kb_start"], f["rss_kb_mid"], f["rss_kb_end"]);
    eprintln!(
        "[load] soak: {users} users through a cache of {capacity}: VmRSS {start} kB at start, {at_mid} kB after {mid} computes, {end} kB after {users}; cache holds {}; {:.0} computes/s",
        f["cache_len"], f["per_second"]
    );
    assert_eq!(f["errors"], 0.0);
    assert_eq!(f["computes"], users as f64, "computes done");
    assert!(at_mid > 0.0);
    assert!(
        f["cache_len"] <= capacity as f64 * 1.1,
        "cache over capacity"
    );
    // Twice as many users again (100 000 with the defaults) may cost allocator slack, not
    // memory per user: 2 MB over 100 000 users catches a leak of 21 bytes per user (measured
    // growth: about 0.1 MB).
    let more = (users - mid) as f64;
    assert!(
        (end - at_mid) * 1024.0 <= more * 21.0,
        "resident memory grew from {at_mid} kB to {end} kB over {more} more users"
    );
}
