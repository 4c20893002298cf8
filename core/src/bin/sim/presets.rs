//! The named scenarios (README "Simulation").

/// What a run simulates. Times are virtual seconds.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub gateways: usize,
    /// Pods at the start.
    pub pods: usize,
    /// Distinct users over the run; they arrive uniformly over `arrivals_for`.
    pub users: u64,
    pub seconds: f64,
    pub arrivals_for: f64,
    /// Users who connect: their pod links them persistently (and unlinks them when they leave);
    /// the rest are visitors whose temporary link simply expires.
    pub session_share: f64,
    pub session_mean: f64,
    pub visitor_mean: f64,
    /// Mean time between a user's requests (each through a gateway chosen at random).
    pub session_request_every: f64,
    pub visitor_request_every: f64,
    /// Share of a user's requests that reach its home gateway (a kept-alive connection); the
    /// others reach a gateway chosen at random.
    pub home_share: f64,
    /// Expected hand-offs (a pod moving its user to another pod) per session.
    pub moves_per_session: f64,
    /// At `.0`, the fleet grows (or shrinks) to `.1` pods at once.
    pub scale_to: Option<(f64, usize)>,
    pub rolling: Option<Rolling>,
    pub chaos: Option<Chaos>,
    /// How often balance is sampled.
    pub sample_every: f64,
}

/// Every pod in turn: drained (its persistent users handed off), stopped, restarted.
#[derive(Debug, Clone)]
pub struct Rolling {
    pub start: f64,
    /// Between one pod's drain and the next's.
    pub every: f64,
    /// From drain to stop.
    pub drain: f64,
    /// From stop to restart with the same index.
    pub down: f64,
}

/// Random faults, each a Poisson process (events per virtual hour).
#[derive(Debug, Clone)]
pub struct Chaos {
    /// A pod dies without `stop`, and restarts with its index after 30–120 s.
    pub crashes: f64,
    /// A pod drains, stops and restarts (a deploy of one pod).
    pub drains: f64,
    /// The store cannot be reached by anyone for 5–120 s.
    pub outages: f64,
    /// One gateway cannot reach the store for 5–120 s.
    pub partitions: f64,
    /// Every store call takes 50–1500 ms more for 10–60 s.
    pub slow: f64,
    /// The store's clock steps by ±1–45 s.
    pub clock_steps: f64,
}

impl Chaos {
    /// The rates (events per hour) by kind: crashes, drains, outages, partitions, slow calls,
    /// clock steps (the kinds `Ev::Chaos` numbers).
    pub fn rates(&self) -> [f64; 6] {
        [
            self.crashes,
            self.drains,
            self.outages,
            self.partitions,
            self.slow,
            self.clock_steps,
        ]
    }
}

pub const NAMES: &[&str] = &["steady", "scale-up", "rolling-restart", "chaos", "big"];

fn base(name: &'static str) -> Scenario {
    Scenario {
        name,
        gateways: 100,
        pods: 1000,
        users: 1_000_000,
        seconds: 3600.0,
        arrivals_for: 3000.0,
        session_share: 0.7,
        session_mean: 600.0,
        visitor_mean: 90.0,
        session_request_every: 90.0,
        visitor_request_every: 30.0,
        home_share: 0.8,
        moves_per_session: 0.2,
        scale_to: None,
        rolling: None,
        chaos: None,
        sample_every: 60.0,
    }
}

pub fn preset(name: &str) -> Option<Scenario> {
    Some(match name {
        "steady" => base("steady"),
        "scale-up" => Scenario {
            pods: 500,
            users: 400_000,
            seconds: 1800.0,
            arrivals_for: 1500.0,
            scale_to: Some((600.0, 1000)),
            ..base("scale-up")
        },
        "rolling-restart" => Scenario {
            gateways: 50,
            pods: 200,
            users: 200_000,
            seconds: 1500.0,
            arrivals_for: 1400.0,
            rolling: Some(Rolling {
                start: 120.0,
                every: 6.0,
                drain: 10.0,
                down: 5.0,
            }),
            ..base("rolling-restart")
        },
        "chaos" => Scenario {
            gateways: 12,
            pods: 40,
            users: 12_000,
            seconds: 1800.0,
            arrivals_for: 1500.0,
            moves_per_session: 0.5,
            chaos: Some(Chaos {
                crashes: 12.0,
                drains: 8.0,
                outages: 4.0,
                partitions: 10.0,
                slow: 6.0,
                clock_steps: 6.0,
            }),
            sample_every: 30.0,
            ..base("chaos")
        },
        "big" => Scenario {
            gateways: 1000,
            pods: 10_000,
            users: 10_000_000,
            seconds: 600.0,
            arrivals_for: 600.0,
            ..base("big")
        },
        _ => return None,
    })
}

impl Scenario {
    /// The same scenario with `k` times the gateways, pods and users (at least one of each).
    pub fn scaled(mut self, k: f64) -> Scenario {
        let s = |n: usize| ((n as f64 * k).round() as usize).max(1);
        self.gateways = s(self.gateways);
        self.pods = s(self.pods);
        self.users = ((self.users as f64 * k).round() as u64).max(1);
        self.scale_to = self.scale_to.map(|(t, n)| (t, s(n)));
        self
    }

    pub fn with_seconds(mut self, seconds: f64) -> Scenario {
        let k = seconds / self.seconds;
        self.seconds = seconds;
        self.arrivals_for *= k;
        self
    }
}
