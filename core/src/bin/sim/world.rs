//! The fleet: real `ServerDriver`s and `ClientDriver`s on one memory store, on a virtual clock,
//! with the users, the faults and the checks of the invariants.
//!
//! Everything runs on one thread (a current-thread runtime with paused time): the main loop
//! takes the next scheduled event, sleeps until its virtual time (the drivers' own timers run
//! meanwhile), and handles it; requests and pod operations run as local tasks and check their
//! outcome when they finish. Nothing reads the wall clock except the CPU-time measurements,
//! which are reported but never steer the run.

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use stateful_route::keys::{KeySpace, DEFAULT_PREFIX};
use stateful_route::sim::{FaultyBackend, Switch};
use stateful_route::store::{MemoryBackend, StoreBackend};
use stateful_route::{
    BaseConfig, ClientDriver, Clock, ErrorKind, RoutingState, ServerDriver, ServerInfo, Store,
};

use crate::presets::Scenario;

pub const NS: &str = "sim";
pub const SVC: &str = "room";
/// The propagation bound of SPEC §11 (the memory store delivers at once; this is the slack).
const PROPAGATION_MS: u64 = 50;
/// The longest slow-call delay chaos injects.
const MAX_DELAY_MS: u64 = 1500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ev {
    Arrive,
    Request(u32),
    Leave(u32),
    Move(u32),
    Sample,
    Scale(u32),
    Rolling(u32),
    PodRestart(u32),
    OutageEnd,
    PartitionEnd(u32),
    SlowEnd,
    Chaos(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Publishing `READY`.
    Up,
    /// Publishing `DENY_NEW_CALL` (draining), about to stop.
    Draining,
    /// Stopped or crashed; may restart with the same index.
    Down,
}

struct Pod {
    driver: Option<ServerDriver>,
    phase: Phase,
    /// When it last became routable.
    joined_ms: u64,
    /// When its drain was published (it takes no new users from then, within the bound).
    drained_ms: Option<u64>,
    /// When it died without `stop`.
    crashed_ms: Option<u64>,
    /// Active users whose last answer was this pod (its published load).
    users: u32,
    /// Placements on it in the first period after it joined (herd), and the fleet's total then.
    herd: Option<(u64, u64, f64)>,
    /// An operation on this pod is under way (start, drain, stop): chaos leaves it alone.
    busy: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Session,
    Visitor,
}

struct User {
    kind: Kind,
    active: bool,
    /// The pod of the last answer.
    pod: Option<u32>,
    /// The persistent link its pod made (the model of what the store must keep).
    persist: Option<u32>,
    /// A pod operation on its link is under way.
    linking: bool,
    end_ms: u64,
    home: u32,
}

struct Gateway {
    driver: Arc<ClientDriver>,
    backend: Arc<FaultyBackend>,
    switch: Arc<Switch>,
    /// In a gap since (its event stream is cut).
    gap_from: Option<u64>,
    last_gap_end: u64,
}

/// One number per measure, and the series behind the balance figures.
#[derive(Default, Debug)]
pub struct Stats {
    pub answers: u64,
    pub hits_or_misses_ns: u128,
    pub placements: u64,
    pub errors: BTreeMap<&'static str, u64>,
    pub divergent_answers: u64,
    pub divergence_ms: u64,
    pub longest_divergence_ms: u64,
    /// Answers naming another pod than the user's last answer while its link was not moved by
    /// a pod (a temporary link replaced or expired).
    pub sticky_breaks: u64,
    pub users_balance: Vec<f64>,
    pub load_balance: Vec<f64>,
    pub herd: Vec<f64>,
    pub snapshot_read_us: Vec<f64>,
    pub gateway_calls: u64,
    pub checks: u64,
    pub pod_ops_failed: u64,
    pub fleet_events: BTreeMap<&'static str, u64>,
    pub peak_rss: u64,
    pub bytes_per_cached_user: Option<f64>,
    pub virtual_ms: u64,
    pub wall: Duration,
    pub routable_min: usize,
}

/// FNV-1a over the event log: same seed, same digest.
pub struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, vals: &[u64]) {
        for v in vals {
            for b in v.to_le_bytes() {
                self.0 ^= b as u64;
                self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

pub struct World {
    pub sc: Scenario,
    pub seed: u64,
    clock: Clock,
    origin: tokio::time::Instant,
    config: BaseConfig,
    truth: Store,
    mem: Arc<dyn StoreBackend>,
    outage: Arc<Switch>,
    pod_store: Store,
    pods: Vec<Pod>,
    gateways: Vec<Gateway>,
    users: Vec<User>,
    next_user: u32,
    rng: fastrand::Rng,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    pub stats: Stats,
    pub digest: Digest,
    pub violations: Vec<String>,
    /// Virtual ms of the last change event of each user's link (from an observer).
    changed_at: Arc<Mutex<HashMap<u32, u64>>>,
    _observer: ClientDriver,
    probe: Arc<ClientDriver>,
    /// Clock steps so far (virtual ms).
    steps: Vec<u64>,
    slow_from: Option<u64>,
    last_slow_end: u64,
    outage_from: Option<u64>,
    /// Placements per virtual second (herd fair shares).
    placed_per_s: Vec<u32>,
    /// Print fleet events and failed placements to stderr (`--verbose`).
    pub verbose: bool,
}

pub type W = Rc<RefCell<World>>;

fn uid(u: u32) -> String {
    format!("u{u}")
}

impl World {
    pub fn new(sc: Scenario, seed: u64) -> World {
        let origin = tokio::time::Instant::now();
        let clock = Clock::virtual_time(tokio::runtime::Handle::current(), 1_800_000_000_000, seed);
        // The library's defaults, except CPU sampling (one process runs every pod; a pod's load
        // is its users).
        let config = BaseConfig {
            cpu_factor: 0.0,
            ..BaseConfig::default()
        };
        let mem: Arc<dyn StoreBackend> =
            Arc::new(MemoryBackend::new(KeySpace::new(DEFAULT_PREFIX)).with_clock(clock.clone()));
        let truth = Store::from_shared(mem.clone());
        let outage = Arc::new(Switch::default());
        let pod_store =
            Store::from_shared(FaultyBackend::new(mem.clone(), vec![outage.clone()], &[]))
                .with_deadline(Duration::from_secs(2));
        let changed_at = Arc::new(Mutex::new(HashMap::new()));
        // Gateways of the simulator's own, on the store without faults.
        let plain = |name: &str| {
            let c = ClientDriver::new(truth.clone(), ServerInfo::new(NS, name, 0), config.clone())
                .expect("client");
            c.init().expect("init");
            c
        };
        let observer = plain("observer");
        {
            let changed = changed_at.clone();
            let c = clock.clone();
            observer.on_link_changed(move |ch| {
                if let Some(u) = ch.uid.strip_prefix('u').and_then(|n| n.parse::<u32>().ok()) {
                    let t = c
                        .now()
                        .saturating_duration_since(origin.into_std())
                        .as_millis() as u64;
                    changed.lock().unwrap().insert(u, t);
                }
            });
        }
        let probe = plain("probe");
        let mut w = World {
            origin,
            rng: fastrand::Rng::with_seed(seed),
            seed,
            clock,
            config,
            truth,
            mem,
            outage,
            pod_store,
            pods: Vec::new(),
            gateways: Vec::new(),
            users: Vec::new(),
            next_user: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            stats: Stats::default(),
            digest: Digest::new(),
            violations: Vec::new(),
            changed_at,
            _observer: observer,
            probe: Arc::new(probe),
            steps: Vec::new(),
            slow_from: None,
            last_slow_end: 0,
            outage_from: None,
            placed_per_s: Vec::new(),
            verbose: false,
            sc,
        };
        for _ in 0..w.sc.gateways {
            w.add_gateway();
        }
        w.stats.routable_min = usize::MAX;
        w
    }

    fn add_gateway(&mut self) {
        let switch = Arc::new(Switch::default());
        let backend = FaultyBackend::new(
            self.mem.clone(),
            vec![self.outage.clone(), switch.clone()],
            &[NS],
        );
        let store = Store::from_shared(backend.clone()).with_deadline(Duration::from_secs(2));
        let g = self.gateways.len();
        let driver = ClientDriver::new(
            store,
            ServerInfo::new(NS, "gateway", g as u32),
            self.config.clone(),
        )
        .expect("gateway");
        driver.init().expect("gateway init");
        self.gateways.push(Gateway {
            driver: Arc::new(driver),
            backend,
            switch,
            gap_from: None,
            last_gap_end: 0,
        });
    }

    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn at(&mut self, t_ms: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t_ms, self.seq, ev)));
    }

    fn after(&mut self, secs: f64, ev: Ev) {
        let t = self.now_ms() + (secs * 1000.0).max(1.0) as u64;
        self.at(t, ev);
    }

    /// An exponentially distributed wait with mean `mean` seconds.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.rng.f64()).ln()
    }

    fn fleet_event(&mut self, kind: &'static str, pod: u64) {
        *self.stats.fleet_events.entry(kind).or_default() += 1;
        let t = self.now_ms();
        if self.verbose {
            eprintln!("t={t} {kind} {pod}");
        }
        self.digest
            .add(&[1, t, kind.len() as u64, kind.as_bytes()[0] as u64, pod]);
    }

    fn violation(&mut self, what: String) {
        let t = self.now_ms();
        self.digest.add(&[9, t]);
        if self.violations.len() < 20 {
            self.violations
                .push(format!("t={:.3}s: {what}", t as f64 / 1000.0));
        }
    }

    fn pop(&mut self) -> Option<(u64, Ev)> {
        self.queue.pop().map(|Reverse((t, _, ev))| (t, ev))
    }

    fn routable(&self) -> Vec<u32> {
        (0..self.pods.len() as u32)
            .filter(|p| self.pods[*p as usize].phase == Phase::Up)
            .collect()
    }

    fn had_gap(&self, g: usize, since: u64) -> bool {
        let gw = &self.gateways[g];
        gw.gap_from.is_some() || gw.last_gap_end >= since
    }

    fn had_slow(&self, since: u64) -> bool {
        self.slow_from.is_some() || self.last_slow_end >= since
    }

    fn had_step(&self, since: u64) -> bool {
        self.steps.iter().any(|t| *t >= since)
    }

    /// Until when gateway `g` may still act on something that changed at `from` (the
    /// propagation bound; a period or the end of its gap if it was in one; slow calls added).
    fn allowed_until(&self, g: usize, from: u64, in_gap: u64) -> u64 {
        let mut until = from + PROPAGATION_MS;
        if self.had_gap(g, from) {
            until = until
                .max(from + in_gap)
                .max(self.gateways[g].last_gap_end + PROPAGATION_MS);
            if self.gateways[g].gap_from.is_some() {
                until = u64::MAX;
            }
        }
        if self.had_slow(from) {
            until = until.saturating_add(3 * MAX_DELAY_MS + 2000);
        }
        until
    }
}

/// Measures the time spent polling a future (the gateway's CPU on one answer).
struct Timed<'a, F> {
    fut: Pin<Box<F>>,
    spent: &'a Cell<u128>,
}

impl<F: Future> Future for Timed<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let t = Instant::now();
        let out = self.fut.as_mut().poll(cx);
        self.spent.set(self.spent.get() + t.elapsed().as_nanos());
        out
    }
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

// ---- pods ----

fn start_pod(w: &W, p: u32) {
    let (store, config, load) = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        if p as usize >= x.pods.len() {
            x.pods.resize_with(p as usize + 1, || Pod {
                driver: None,
                phase: Phase::Down,
                joined_ms: 0,
                drained_ms: None,
                crashed_ms: None,
                users: 0,
                herd: None,
                busy: false,
            });
        }
        let pod = &mut x.pods[p as usize];
        pod.busy = true;
        (x.pod_store.clone(), x.config.clone(), pod.users)
    };
    let driver = ServerDriver::new(store, ServerInfo::new(NS, SVC, p), config).expect("pod");
    let _ = driver.set_load_state(load);
    let w = w.clone();
    tokio::task::spawn_local(async move {
        loop {
            match driver.start().await {
                Ok(()) => break,
                Err(_) => {
                    w.borrow_mut().stats.pod_ops_failed += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let now = x.now_ms();
        let pod = &mut x.pods[p as usize];
        pod.driver = Some(driver);
        pod.phase = Phase::Up;
        pod.joined_ms = now;
        pod.drained_ms = None;
        pod.crashed_ms = None;
        pod.busy = false;
        pod.herd = Some((0, now, 0.0));
        x.fleet_event("start", p as u64);
    });
}

/// Drains `p` (publishes `DENY_NEW_CALL`), hands its persistent users to other pods, and stops
/// it after `drain` seconds; restarts it `down` seconds later when `restart`.
fn drain_pod(w: &W, p: u32, drain: f64, restart: Option<f64>) {
    let driver = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let pod = &mut x.pods[p as usize];
        if pod.phase != Phase::Up || pod.busy {
            return;
        }
        pod.busy = true;
        pod.driver.clone()
    };
    let Some(driver) = driver else { return };
    let w = w.clone();
    tokio::task::spawn_local(async move {
        loop {
            match driver.set_routing_state(RoutingState::DenyNewCall).await {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::Closed => return,
                Err(_) => {
                    w.borrow_mut().stats.pod_ops_failed += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let movers: Vec<u32> = {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            let now = x.now_ms();
            x.pods[p as usize].phase = Phase::Draining;
            x.pods[p as usize].drained_ms = Some(now);
            x.fleet_event("drain", p as u64);
            (0..x.users.len() as u32)
                .filter(|u| {
                    let us = &x.users[*u as usize];
                    us.active && us.persist == Some(p)
                })
                .collect()
        };
        for u in movers {
            hand_off(&w, u);
        }
        tokio::time::sleep(Duration::from_secs_f64(drain)).await;
        let _ = driver.stop().await;
        {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            let pod = &mut x.pods[p as usize];
            pod.phase = Phase::Down;
            pod.driver = None;
            pod.busy = false;
            x.fleet_event("stop", p as u64);
            if let Some(after) = restart {
                x.after(after, Ev::PodRestart(p));
            }
        }
    });
}

fn crash_pod(w: &W, p: u32) {
    let mut xg = w.borrow_mut();
    let x = &mut *xg;
    let now = x.now_ms();
    let pod = &mut x.pods[p as usize];
    if pod.phase != Phase::Up || pod.busy {
        return;
    }
    // Dropped without `stop`: its loop ends, nothing more is published.
    pod.driver = None;
    pod.phase = Phase::Down;
    pod.crashed_ms = Some(now);
    x.fleet_event("crash", p as u64);
    let back = 30.0 + x.rng.f64() * 90.0;
    x.after(back, Ev::PodRestart(p));
}

/// The pod of `u`'s persistent link moves it to another routable pod.
fn hand_off(w: &W, u: u32) {
    let (driver, to) = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let us = &x.users[u as usize];
        let Some(from) = us.persist else { return };
        if us.linking || !us.active {
            return;
        }
        let routable: Vec<u32> = x.routable().into_iter().filter(|p| *p != from).collect();
        if routable.is_empty() {
            return;
        }
        let to = routable[x.rng.usize(..routable.len())];
        let Some(d) = x.pods[from as usize].driver.clone() else {
            return;
        };
        x.users[u as usize].linking = true;
        (d, to)
    };
    let w = w.clone();
    tokio::task::spawn_local(async move {
        let r = driver.set_linked_pod("", &uid(u), SVC, to).await;
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        x.users[u as usize].linking = false;
        match r {
            Ok(_) => {
                let t = x.now_ms();
                x.digest.add(&[3, t, u as u64, to as u64]);
                x.users[u as usize].persist = Some(to);
                x.set_user_pod(u, Some(to));
            }
            Err(_) => x.stats.pod_ops_failed += 1,
        }
    });
}

impl World {
    fn set_user_pod(&mut self, u: u32, pod: Option<u32>) {
        let old = self.users[u as usize].pod;
        if old == pod {
            return;
        }
        if self.users[u as usize].active {
            if let Some(o) = old {
                let p = &mut self.pods[o as usize];
                p.users = p.users.saturating_sub(1);
                if let Some(d) = &p.driver {
                    let _ = d.set_load_state(p.users);
                }
            }
            if let Some(n) = pod {
                let p = &mut self.pods[n as usize];
                p.users += 1;
                if let Some(d) = &p.driver {
                    let _ = d.set_load_state(p.users);
                }
            }
        }
        self.users[u as usize].pod = pod;
    }
}

// ---- users ----

fn request(w: &W, u: u32) {
    let (gw, backend, g, delayed, truth) = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let g = if x.rng.f64() < x.sc.home_share {
            x.users[u as usize].home as usize
        } else {
            x.rng.usize(..x.gateways.len())
        };
        let gate = &x.gateways[g];
        let delayed = !gate.switch.delay().is_zero() || x.slow_from.is_some();
        (
            gate.driver.clone(),
            gate.backend.clone(),
            g,
            delayed,
            x.truth.clone(),
        )
    };
    let w = w.clone();
    tokio::task::spawn_local(async move {
        let id = uid(u);
        let started = w.borrow().now_ms();
        // Under slow calls the view can change during the call: NO_AVAILABLE_POD is wrong only
        // if the view had a routable pod both when the call began and when it answered.
        let routable_before = !delayed
            || !gw
                .route_info()
                .routable_pods(SVC)
                .await
                .unwrap_or_default()
                .is_empty();
        let spent = Cell::new(0u128);
        let r = Timed {
            fut: Box::pin(gw.compute_linked_pod("", &id, SVC)),
            spent: &spent,
        }
        .await;
        let placed: Vec<_> = backend.take_placed().into_iter().collect();
        let stored = truth.get_link(NS, &id, SVC).await.ok().flatten();
        let new_placement = match &r {
            Ok(pod) => placed.iter().any(|p| p.uid == id && p.pod == *pod),
            Err(_) => false,
        };
        let routable_now = match &r {
            Ok(pod) if new_placement => gw
                .route_info()
                .is_pod_routable(SVC, *pod)
                .await
                .unwrap_or(false),
            Err(e) if e.kind() == ErrorKind::NoAvailablePod => !gw
                .route_info()
                .routable_pods(SVC)
                .await
                .unwrap_or_default()
                .is_empty(),
            _ => true,
        };
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let now = x.now_ms();
        x.stats.hits_or_misses_ns += spent.get();
        for p in &placed {
            x.check_placement(g, p.pod, p.sent_ms, &p.uid);
        }
        match r {
            Ok(pod) => {
                x.stats.answers += 1;
                x.digest.add(&[2, now, g as u64, u as u64, pod as u64]);
                if new_placement {
                    x.stats.placements += 1;
                    x.stats.checks += 1;
                    if !routable_now && !delayed && started == now {
                        x.violation(format!(
                            "gateway {g} placed new user {id} on pod {pod}, which is not routable in its view (seed {})",
                            x.seed
                        ));
                    }
                }
                x.check_answer(g, u, pod, stored.map(|l| (l.pod_index, l.is_persistent())));
                let was = x.users[u as usize].pod;
                if was.is_some() && was != Some(pod) && x.users[u as usize].persist.is_none() {
                    x.stats.sticky_breaks += 1;
                }
                x.set_user_pod(u, Some(pod));
                let us = &x.users[u as usize];
                let pin_now =
                    us.kind == Kind::Session && us.persist.is_none() && !us.linking && us.active;
                drop(xg);
                if pin_now {
                    pin(&w, u, pod);
                }
            }
            Err(e) => {
                let code = e.kind().as_str();
                *x.stats.errors.entry(code).or_default() += 1;
                x.digest
                    .add(&[4, now, g as u64, u as u64, code.len() as u64]);
                if e.kind() == ErrorKind::NoAvailablePod {
                    if x.verbose {
                        eprintln!(
                            "t={now} gateway {g} {id}: NO_AVAILABLE_POD; {} pods up, gap {:?}, outage {:?}",
                            x.routable().len(),
                            x.gateways[g].gap_from,
                            x.outage_from
                        );
                    }
                    x.stats.checks += 1;
                    // And against the store: pods publishing READY (for longer than the
                    // propagation bound) to a gateway that is connected.
                    let slack = PROPAGATION_MS
                        + if x.had_slow(now.saturating_sub(60_000)) {
                            3 * MAX_DELAY_MS + 2000
                        } else {
                            0
                        };
                    let stale = x.config.stale_after().as_millis() as u64;
                    let up: Vec<u32> = x
                        .routable()
                        .into_iter()
                        .filter(|p| x.pods[*p as usize].joined_ms + slack < started)
                        .collect();
                    let gate = &x.gateways[g];
                    // After a gap: pods retry their publish every second, and a snapshot
                    // without a routable pod is re-read once it is a second old.
                    if !up.is_empty()
                        && gate.gap_from.is_none()
                        && gate.last_gap_end + 2000 + slack < started
                        && !x.had_step(now.saturating_sub(stale))
                    {
                        x.violation(format!(
                            "gateway {g} answered NO_AVAILABLE_POD for {id} while {} pods publish READY (pod {} among them; seed {})",
                            up.len(),
                            up[0],
                            x.seed
                        ));
                    }
                    if routable_now && routable_before {
                        x.violation(format!(
                            "gateway {g} answered NO_AVAILABLE_POD for {id} while its view has a routable pod (seed {})",
                            x.seed
                        ));
                    }
                }
            }
        }
    });
}

/// The pod that serves a session user links it persistently.
fn pin(w: &W, u: u32, pod: u32) {
    let driver = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let Some(d) = x.pods[pod as usize].driver.clone() else {
            return;
        };
        if x.pods[pod as usize].phase == Phase::Down {
            return;
        }
        x.users[u as usize].linking = true;
        d
    };
    let w = w.clone();
    tokio::task::spawn_local(async move {
        let r = driver.set_linked_pod("", &uid(u), SVC, pod).await;
        let left = {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            x.users[u as usize].linking = false;
            match r {
                Ok(_) if x.users[u as usize].active => {
                    x.users[u as usize].persist = Some(pod);
                    x.set_user_pod(u, Some(pod));
                    false
                }
                Ok(_) => true,
                Err(_) => {
                    x.stats.pod_ops_failed += 1;
                    false
                }
            }
        };
        if left {
            // Left meanwhile: the pod unlinks it.
            let _ = driver
                .remove_linked_pod_with_id("", &uid(u), SVC, pod, 0)
                .await;
        }
    });
}

fn leave(w: &W, u: u32) {
    let unlink = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        x.set_user_pod(u, None);
        let us = &mut x.users[u as usize];
        us.active = false;
        match us.persist {
            Some(p) if !us.linking => {
                us.linking = true;
                let d = x.pods[p as usize].driver.clone();
                if d.is_none() {
                    x.users[u as usize].linking = false;
                }
                d.map(|d| (d, p))
            }
            _ => None,
        }
    };
    if let Some((driver, p)) = unlink {
        let w = w.clone();
        tokio::task::spawn_local(async move {
            let r = driver
                .remove_linked_pod_with_id("", &uid(u), SVC, p, 0)
                .await;
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            x.users[u as usize].linking = false;
            match r {
                Ok(_) => x.users[u as usize].persist = None,
                Err(_) => x.stats.pod_ops_failed += 1,
            }
        });
    }
}

impl World {
    /// Invariant: a draining or crashed pod gets no new user once the bound has passed.
    fn check_placement(&mut self, g: usize, pod: u32, sent: u64, id: &str) {
        let second = (sent / 1000) as usize;
        if self.placed_per_s.len() <= second {
            self.placed_per_s.resize(second + 1, 0);
        }
        self.placed_per_s[second] += 1;
        let period = self.config.period().as_millis() as u64;
        let Some(p) = self.pods.get(pod as usize) else {
            return;
        };
        let (drained, crashed, joined) = (p.drained_ms, p.crashed_ms, p.joined_ms);
        if let Some((n, _, _)) = &mut self.pods[pod as usize].herd {
            if sent < joined + period {
                *n += 1;
            }
        }
        self.stats.checks += 1;
        if let Some(d) = drained.filter(|d| *d <= sent) {
            if sent > self.allowed_until(g, d, period) {
                self.violation(format!(
                    "gateway {g} placed {id} on pod {pod} {} ms after the pod's drain was published (seed {})",
                    sent - d,
                    self.seed
                ));
            }
        }
        if let Some(c) = crashed.filter(|c| *c <= sent) {
            let stale = self.config.stale_after().as_millis() as u64;
            // Liveness counts only time in which the store could be read: after a gap (an
            // outage or a partition of this gateway) near the crash, the pod may live until
            // `stale_after` after the gap's end.
            let gw = &self.gateways[g];
            let mut until = self.allowed_until(g, c + stale, period);
            if gw.gap_from.is_some() {
                until = u64::MAX;
            } else if gw.last_gap_end + period >= c {
                until = until.max(gw.last_gap_end + stale + PROPAGATION_MS);
            }
            if !self.had_step(c.saturating_sub(stale)) && sent > until {
                self.violation(format!(
                    "gateway {g} placed {id} on pod {pod} {} ms after the pod crashed (stale_after {} ms; seed {})",
                    sent - c,
                    stale,
                    self.seed
                ));
            }
        }
    }

    /// Invariants: an answer agrees with the store or diverges within the bound; a persistent
    /// link is never moved by a gateway.
    fn check_answer(&mut self, g: usize, u: u32, pod: u32, stored: Option<(u32, bool)>) {
        let now = self.now_ms();
        let us = &self.users[u as usize];
        self.stats.checks += 1;
        if let Some(p) = us.persist.filter(|_| !us.linking) {
            if stored != Some((p, true)) {
                let msg = format!(
                    "the persistent link of u{u} to pod {p} is now {stored:?} (no pod moved it; seed {})",
                    self.seed
                );
                self.violation(msg);
            }
        }
        let Some((truth, _)) = stored else { return };
        if truth == pod {
            return;
        }
        let since = self
            .changed_at
            .lock()
            .unwrap()
            .get(&u)
            .copied()
            .unwrap_or(now);
        let lasted = now.saturating_sub(since);
        self.stats.divergent_answers += 1;
        self.stats.divergence_ms += lasted;
        self.stats.longest_divergence_ms = self.stats.longest_divergence_ms.max(lasted);
        let window = (self.config.user_link_info_cache_time_seconds as f64
            + self.config.serve_stale_window().as_secs_f64()) as u64
            * 1000;
        let mut until = self.allowed_until(g, since, window);
        if self.had_step(now.saturating_sub(window)) {
            until = until.max(since + window);
        }
        if now > until {
            self.violation(format!(
                "gateway {g} answered pod {pod} for u{u}; the store has had pod {truth} for {lasted} ms (seed {})",
                self.seed
            ));
        }
    }
}

// ---- the run ----

pub async fn run(w: W, budget: Option<Duration>) {
    let wall = Instant::now();
    {
        let pods = w.borrow().sc.pods;
        for p in 0..pods as u32 {
            start_pod(&w, p);
        }
    }
    // Let every pod publish before users come.
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let sc = x.sc.clone();
        x.after(0.0, Ev::Arrive);
        x.after(sc.sample_every, Ev::Sample);
        if let Some((t, _)) = sc.scale_to {
            x.after(t, Ev::Scale(0));
        }
        if let Some(r) = &sc.rolling {
            x.after(r.start, Ev::Rolling(0));
        }
        if let Some(c) = &sc.chaos {
            for (k, rate) in c.rates().into_iter().enumerate() {
                if rate > 0.0 {
                    let dt = x.exp(3600.0 / rate);
                    x.after(dt, Ev::Chaos(k as u8));
                }
            }
        }
    }
    let end_ms = (w.borrow().sc.seconds * 1000.0) as u64;
    let origin = w.borrow().origin;
    loop {
        let next = w.borrow_mut().pop();
        let Some((t, ev)) = next else { break };
        if t > end_ms {
            break;
        }
        tokio::time::sleep_until(origin + Duration::from_millis(t)).await;
        handle(&w, ev);
        if let Some(b) = budget {
            if wall.elapsed() > b {
                tracing_stop(&w);
                break;
            }
        }
    }
    // Let the tasks under way finish.
    tokio::time::sleep(Duration::from_secs(5)).await;
    finish(&w, wall).await;
}

fn tracing_stop(w: &W) {
    let t = w.borrow().now_ms();
    eprintln!(
        "wall-clock budget reached at {:.0} s of virtual time",
        t as f64 / 1000.0
    );
}

fn handle(w: &W, ev: Ev) {
    match ev {
        Ev::Arrive => {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            if (x.next_user as u64) >= x.sc.users {
                return;
            }
            let u = x.next_user;
            x.next_user += 1;
            let session = x.rng.f64() < x.sc.session_share;
            let (mean, every) = if session {
                (x.sc.session_mean, x.sc.session_request_every)
            } else {
                (x.sc.visitor_mean, x.sc.visitor_request_every)
            };
            let length = x.exp(mean).min(if session { 4.0 * mean } else { 240.0 });
            let now = x.now_ms();
            x.users.push(User {
                kind: if session {
                    Kind::Session
                } else {
                    Kind::Visitor
                },
                active: true,
                pod: None,
                persist: None,
                linking: false,
                end_ms: now + (length * 1000.0) as u64,
                home: x.rng.u32(..x.sc.gateways as u32),
            });
            let gap = x.sc.arrivals_for / x.sc.users as f64;
            let dt = x.exp(gap);
            x.after(dt, Ev::Arrive);
            x.after(length, Ev::Leave(u));
            if session {
                let moves = x.sc.moves_per_session;
                if x.rng.f64() < moves {
                    let at = x.rng.f64() * length;
                    x.after(at, Ev::Move(u));
                }
            }
            drop(xg);
            request(w, u);
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            let dt = x.exp(every);
            x.after(dt, Ev::Request(u));
        }
        Ev::Request(u) => {
            let (active, end, every) = {
                let x = w.borrow();
                let us = &x.users[u as usize];
                let every = if us.kind == Kind::Session {
                    x.sc.session_request_every
                } else {
                    x.sc.visitor_request_every
                };
                (us.active, us.end_ms, every)
            };
            if !active {
                return;
            }
            request(w, u);
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            let dt = x.exp(every);
            if x.now_ms() + ((dt * 1000.0) as u64) < end {
                x.after(dt, Ev::Request(u));
            }
        }
        Ev::Leave(u) => leave(w, u),
        Ev::Move(u) => hand_off(w, u),
        Ev::Sample => sample(w),
        Ev::Scale(_) => {
            let (from, to) = {
                let x = w.borrow();
                (x.pods.len(), x.sc.scale_to.map_or(0, |(_, n)| n))
            };
            w.borrow_mut().fleet_event("scale", to as u64);
            if to > from {
                for p in from..to {
                    start_pod(w, p as u32);
                }
            } else {
                for p in (to..from).rev() {
                    drain_pod(w, p as u32, 10.0, None);
                }
            }
        }
        Ev::Rolling(p) => {
            let (n, r) = {
                let x = w.borrow();
                (x.pods.len() as u32, x.sc.rolling.clone().expect("rolling"))
            };
            if p < n {
                drain_pod(w, p, r.drain, Some(r.down));
                w.borrow_mut().after(r.every, Ev::Rolling(p + 1));
            }
        }
        Ev::PodRestart(p) => start_pod(w, p),
        Ev::OutageEnd => {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            x.outage.set_down(false);
            x.outage_from = None;
            x.fleet_event("outage-end", 0);
            x.sync_streams();
        }
        Ev::PartitionEnd(g) => {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            x.gateways[g as usize].switch.set_down(false);
            x.fleet_event("partition-end", g as u64);
            x.sync_streams();
        }
        Ev::SlowEnd => {
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            for g in &x.gateways {
                g.switch.set_delay(Duration::ZERO);
            }
            x.outage.set_delay(Duration::ZERO);
            x.slow_from = None;
            x.last_slow_end = x.now_ms();
            x.fleet_event("slow-end", 0);
        }
        Ev::Chaos(k) => chaos(w, k),
    }
}

impl World {
    /// Gaps and resumes of every gateway's event stream after a switch flipped.
    fn sync_streams(&mut self) {
        let now = self.now_ms();
        for g in &mut self.gateways {
            if g.backend.sync_stream() {
                match g.gap_from {
                    None => g.gap_from = Some(now),
                    Some(_) => {
                        g.gap_from = None;
                        g.last_gap_end = now;
                    }
                }
            }
        }
    }
}

fn chaos(w: &W, k: u8) {
    let mut xg = w.borrow_mut();
    let x = &mut *xg;
    let c = x.sc.chaos.clone().expect("chaos");
    let rate = c.rates()[k as usize];
    let dt = x.exp(3600.0 / rate);
    x.after(dt, Ev::Chaos(k));
    match k {
        0 | 1 => {
            let up = x.routable();
            if up.len() <= 1 {
                return;
            }
            let p = up[x.rng.usize(..up.len())];
            if k == 0 {
                drop(xg);
                crash_pod(w, p);
            } else {
                // Half the stops drain for 10 s first; the others stop at once (`drain_seconds`
                // 0, the default: `DENY_NEW_CALL` then `SHUTDOWN` back to back).
                let drain = if x.rng.bool() { 10.0 } else { 0.0 };
                let back = 5.0 + x.rng.f64() * 25.0;
                drop(xg);
                drain_pod(w, p, drain, Some(back));
            }
        }
        2 if x.outage_from.is_none() => {
            let len = 5.0 + x.rng.f64() * 115.0;
            x.outage.set_down(true);
            x.outage_from = Some(x.now_ms());
            x.fleet_event("outage", (len * 1000.0) as u64);
            x.sync_streams();
            x.after(len, Ev::OutageEnd);
        }
        3 => {
            let g = x.rng.usize(..x.gateways.len());
            if x.gateways[g].switch.is_down() {
                return;
            }
            let len = 5.0 + x.rng.f64() * 115.0;
            x.gateways[g].switch.set_down(true);
            x.fleet_event("partition", g as u64);
            x.sync_streams();
            x.after(len, Ev::PartitionEnd(g as u32));
        }
        4 if x.slow_from.is_none() => {
            let delay = Duration::from_millis(50 + x.rng.u64(..MAX_DELAY_MS - 50));
            let len = 10.0 + x.rng.f64() * 50.0;
            x.outage.set_delay(delay);
            x.slow_from = Some(x.now_ms());
            x.fleet_event("slow", delay.as_millis() as u64);
            x.after(len, Ev::SlowEnd);
        }
        5 => {
            let secs = x.rng.i64(1..=45);
            let step = secs * 1000 * if x.rng.bool() { 1 } else { -1 };
            x.clock.step_wall(step);
            let now = x.now_ms();
            x.steps.push(now);
            x.fleet_event("clock-step", step.unsigned_abs());
        }
        _ => {}
    }
}

fn sample(w: &W) {
    let (probe, every) = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        let every = x.sc.sample_every;
        x.after(every, Ev::Sample);
        let routable = x.routable();
        x.stats.routable_min = x.stats.routable_min.min(routable.len());
        let active: u64 = routable
            .iter()
            .map(|p| x.pods[*p as usize].users as u64)
            .sum();
        if !routable.is_empty() && active > 0 {
            let mean = active as f64 / routable.len() as f64;
            let max = routable
                .iter()
                .map(|p| x.pods[*p as usize].users)
                .max()
                .unwrap_or(0) as f64;
            x.stats.users_balance.push(max / mean);
        }
        // Herd: close the first period of pods that joined more than a period ago.
        let period = x.config.period().as_millis() as u64;
        let now = x.now_ms();
        let n_routable = routable.len().max(1) as f64;
        let mut herds = Vec::new();
        for p in 0..x.pods.len() {
            if let Some((n, joined, _)) = x.pods[p].herd {
                if now >= joined + period {
                    let from = (joined / 1000) as usize;
                    let to = ((joined + period) / 1000) as usize;
                    let total: u64 = x
                        .placed_per_s
                        .get(from..to.min(x.placed_per_s.len()))
                        .map_or(0, |s| s.iter().map(|v| *v as u64).sum());
                    let fair = total as f64 / n_routable;
                    if fair >= 1.0 {
                        herds.push(n as f64 / fair);
                    }
                    x.pods[p].herd = None;
                }
            }
        }
        x.stats.herd.extend(herds);
        x.stats.peak_rss = x.stats.peak_rss.max(rss_bytes());
        (x.probe.clone(), every)
    };
    let _ = every;
    let w = w.clone();
    tokio::task::spawn_local(async move {
        // The load balance as a gateway sees it, and what one snapshot read costs it.
        let t = Instant::now();
        if probe.route_info().refresh_service(SVC).await.is_ok() {
            let us = t.elapsed().as_secs_f64() * 1e6;
            let states = probe.route_info().pod_states(SVC).await.unwrap_or_default();
            let routable: Vec<u32> = probe
                .route_info()
                .routable_pods(SVC)
                .await
                .unwrap_or_default();
            let loads: Vec<f64> = states
                .iter()
                .filter(|s| routable.binary_search(&s.pod_index).is_ok())
                .map(|s| s.load as f64)
                .collect();
            let mut xg = w.borrow_mut();
            let x = &mut *xg;
            x.stats.snapshot_read_us.push(us);
            let sum: f64 = loads.iter().sum();
            if sum > 0.0 {
                let mean = sum / loads.len() as f64;
                let max = loads.iter().cloned().fold(0.0, f64::max);
                x.stats.load_balance.push(max / mean);
            }
        }
    });
}

async fn finish(w: &W, wall: Instant) {
    let (calls, truth, config, users) = {
        let mut xg = w.borrow_mut();
        let x = &mut *xg;
        x.stats.wall = wall.elapsed();
        x.stats.virtual_ms = x.now_ms();
        x.stats.gateway_calls = x.gateways.iter().map(|g| g.backend.calls()).sum();
        x.stats.peak_rss = x.stats.peak_rss.max(rss_bytes());
        let users: Vec<u32> = (0..x.users.len() as u32)
            .filter(|u| {
                x.users[*u as usize].pod.is_some() || x.users[*u as usize].persist.is_some()
            })
            .take(100_000)
            .collect();
        (
            x.stats.gateway_calls,
            x.truth.clone(),
            x.config.clone(),
            users,
        )
    };
    let _ = calls;
    // Memory per cached user: a fresh gateway caches users that have links.
    let gw = ClientDriver::new(truth, ServerInfo::new(NS, "measure", 0), config).expect("measure");
    gw.init().expect("init");
    let before = crate::heap_bytes();
    for u in &users {
        let _ = gw.get_linked_pod("", &uid(*u), SVC).await;
    }
    let after = crate::heap_bytes();
    let entries = gw.cache_len().max(1);
    if users.len() >= 1000 {
        w.borrow_mut().stats.bytes_per_cached_user =
            Some(after.saturating_sub(before) as f64 / entries as f64);
    }
    gw.close();
}
