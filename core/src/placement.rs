//! Placement: which pod a new user goes to (SPEC §5).
//!
//! The driver narrows a service's pods to the good set (routable, load within `load_range`
//! of the least loaded) and hands it to a [`PlacementPolicy`]. Policies are pure functions of
//! their input plus randomness: they never touch the store and must not block.

use std::fmt;
use std::sync::Arc;

use crate::config::RoutingState;
use crate::error::{Error, ErrorKind, Result};

/// One pod a policy may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The pod's index.
    pub pod_index: u32,
    /// Its published weighted load.
    pub load: u32,
    /// New users this driver placed on it since the snapshot was read.
    pub placed: u32,
    /// Its routing state (always `READY` for candidates today).
    pub routing_state: RoutingState,
    /// How old its published state was when the snapshot was read, in ms.
    pub age_ms: u64,
    /// The placement weight the pod publishes (default 100; a canary might publish 10).
    pub weight: u32,
}

impl Candidate {
    /// Load plus this driver's placements since the snapshot: what p2c compares.
    pub fn effective_load(&self) -> u64 {
        self.load as u64 + self.placed as u64
    }
}

/// The request being placed.
#[derive(Debug, Clone, Copy)]
pub struct PlacementRequest<'a> {
    /// The driver's namespace.
    pub namespace: &'a str,
    /// The user.
    pub uid: &'a str,
    /// The service.
    pub service: &'a str,
    /// How many placements this driver has made for this service before this one.
    pub sequence: u64,
}

/// Chooses one of the candidates (never empty, sorted by pod index).
///
/// Called on the path of a new user's `compute_linked_pod`, on whatever thread runs it: it must
/// be quick and must not block. An error is returned to that caller as is.
pub trait PlacementPolicy: Send + Sync + fmt::Debug {
    /// The index into `candidates` of the chosen pod, or `None` to refuse
    /// (the caller then reports `NO_AVAILABLE_POD`).
    fn choose(
        &self,
        candidates: &[Candidate],
        request: &PlacementRequest<'_>,
    ) -> Result<Option<usize>>;
}

/// The placement setting of [`BaseConfig`](crate::BaseConfig).
#[derive(Clone, Default)]
pub enum Placement {
    /// Two random candidates, the one with the lower effective load wins (the default).
    #[default]
    PowerOfTwoChoices,
    /// A uniformly random candidate.
    Random,
    /// Candidates in turn, by this driver's placement count for the service.
    RoundRobin,
    /// Rendezvous (highest-random-weight) hashing of (service, uid, pod) with bounded load: a
    /// pod whose published load is above `load_factor` × the average is skipped. Deterministic,
    /// so every gateway picks the same pod for a new user from the same snapshot.
    Rendezvous {
        /// The bound `c` (> 1; default 1.25).
        load_factor: f64,
    },
    /// Random, in proportion to the weight each pod publishes.
    Weighted,
    /// A policy of your own.
    Custom(Arc<dyn PlacementPolicy>),
}

impl Placement {
    /// Default bound of [`Placement::Rendezvous`].
    pub const DEFAULT_LOAD_FACTOR: f64 = 1.25;

    /// The name used in configs and bindings: `"p2c"`, `"random"`, `"round_robin"`,
    /// `"rendezvous"`, `"weighted"`, `"custom"`.
    pub fn name(&self) -> &'static str {
        match self {
            Placement::PowerOfTwoChoices => "p2c",
            Placement::Random => "random",
            Placement::RoundRobin => "round_robin",
            Placement::Rendezvous { .. } => "rendezvous",
            Placement::Weighted => "weighted",
            Placement::Custom(_) => "custom",
        }
    }

    /// The built-in policy called `name` (rendezvous with the default bound).
    pub fn from_name(name: &str) -> Option<Placement> {
        match name {
            "p2c" | "power_of_two_choices" => Some(Placement::PowerOfTwoChoices),
            "random" => Some(Placement::Random),
            "round_robin" => Some(Placement::RoundRobin),
            "rendezvous" => Some(Placement::Rendezvous {
                load_factor: Self::DEFAULT_LOAD_FACTOR,
            }),
            "weighted" => Some(Placement::Weighted),
            _ => None,
        }
    }

    /// The built-in names, in the order every binding lists them.
    pub const NAMES: [&'static str; 5] = ["p2c", "random", "round_robin", "rendezvous", "weighted"];

    /// The policy a binding's setting names: a built-in `name` and rendezvous's `load_factor`,
    /// where `0` means the default bound (and is the only value other policies take).
    /// `INVALID_CONFIG` for an unknown name, a factor given to another policy, or a factor
    /// below 1. Every binding parses its placement setting here.
    pub fn from_setting(name: &str, load_factor: f64) -> Result<Placement> {
        let placement = Self::from_name(name).ok_or_else(|| {
            Error::invalid_config(
                "placement",
                format!("{name:?} is not one of {}", Self::NAMES.join(", ")),
            )
        })?;
        let placement = match placement {
            _ if load_factor == 0.0 => placement,
            Placement::Rendezvous { .. } => Placement::Rendezvous { load_factor },
            other => {
                return Err(Error::invalid_config(
                    "placement_load_factor",
                    format!(
                        "{load_factor}: only \"rendezvous\" takes a load factor, not {:?}",
                        other.name()
                    ),
                ))
            }
        };
        placement.validate()?;
        Ok(placement)
    }

    /// Rendezvous's bound, `0` for every other policy (the inverse of [`Placement::from_setting`]).
    pub fn load_factor(&self) -> f64 {
        match self {
            Placement::Rendezvous { load_factor } => *load_factor,
            _ => 0.0,
        }
    }

    /// Chooses with this policy. A custom policy's error, or an index out of range, is an error.
    pub fn choose(
        &self,
        candidates: &[Candidate],
        request: &PlacementRequest<'_>,
    ) -> Result<Option<usize>> {
        if candidates.is_empty() {
            return Ok(None);
        }
        Ok(Some(match self {
            Placement::PowerOfTwoChoices => power_of_two(candidates),
            Placement::Random => fastrand::usize(..candidates.len()),
            Placement::RoundRobin => (request.sequence % candidates.len() as u64) as usize,
            Placement::Rendezvous { load_factor } => rendezvous(candidates, request, *load_factor),
            Placement::Weighted => match weighted(candidates) {
                Some(i) => i,
                None => return Ok(None),
            },
            Placement::Custom(p) => match p.choose(candidates, request)? {
                None => return Ok(None),
                Some(i) if i < candidates.len() => i,
                Some(i) => {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!(
                            "custom placement chose index {i} of {} candidates",
                            candidates.len()
                        ),
                    ))
                }
            },
        }))
    }

    /// Checks the policy's parameters.
    pub fn validate(&self) -> Result<()> {
        if let Placement::Rendezvous { load_factor } = self {
            if !(load_factor.is_finite() && *load_factor >= 1.0) {
                return Err(Error::invalid_config(
                    "placement",
                    format!("rendezvous load_factor {load_factor} must be >= 1"),
                ));
            }
        }
        Ok(())
    }
}

fn power_of_two(c: &[Candidate]) -> usize {
    if c.len() == 1 {
        return 0;
    }
    let a = fastrand::usize(..c.len());
    let mut b = fastrand::usize(..c.len() - 1);
    if b >= a {
        b += 1;
    }
    match c[a].effective_load().cmp(&c[b].effective_load()) {
        std::cmp::Ordering::Less => a,
        std::cmp::Ordering::Greater => b,
        std::cmp::Ordering::Equal => {
            if fastrand::bool() {
                a
            } else {
                b
            }
        }
    }
}

/// Stable 64-bit hash of (service, uid, pod) for rendezvous hashing: FNV-1a with a final
/// avalanche (splitmix64). Fixed, so that every process and language computes the same score.
pub fn rendezvous_score(service: &str, uid: &str, pod: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(service.as_bytes());
    eat(&[0]);
    eat(uid.as_bytes());
    eat(&[0]);
    eat(&pod.to_le_bytes());
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uses the published load only (not this driver's own placements), so that every gateway
/// reading the same snapshot computes the same answer.
fn rendezvous(c: &[Candidate], req: &PlacementRequest<'_>, load_factor: f64) -> usize {
    let total: u64 = c.iter().map(|x| x.load as u64).sum();
    let bound = load_factor * total as f64 / c.len() as f64;
    let best = |allowed: &dyn Fn(&Candidate) -> bool| {
        c.iter()
            .enumerate()
            .filter(|(_, x)| allowed(x))
            .max_by_key(|(_, x)| {
                (
                    rendezvous_score(req.service, req.uid, x.pod_index),
                    x.pod_index,
                )
            })
            .map(|(i, _)| i)
    };
    // A pod above the bound is skipped; when the average is 0 every pod is within it. Some pod
    // is always at or below the average, so the fallback only guards against rounding.
    best(&|x| total == 0 || x.load as f64 <= bound).unwrap_or_else(|| best(&|_| true).unwrap_or(0))
}

fn weighted(c: &[Candidate]) -> Option<usize> {
    let total: u64 = c.iter().map(|x| x.weight as u64).sum();
    if total == 0 {
        return None;
    }
    let mut r = fastrand::u64(..total);
    for (i, x) in c.iter().enumerate() {
        if r < x.weight as u64 {
            return Some(i);
        }
        r -= x.weight as u64;
    }
    None
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Custom(p) => f.debug_tuple("Custom").field(p).finish(),
            other => f.write_str(other.name()),
        }
    }
}

impl PartialEq for Placement {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Placement::Custom(a), Placement::Custom(b)) => Arc::ptr_eq(a, b),
            (
                Placement::Rendezvous { load_factor: a },
                Placement::Rendezvous { load_factor: b },
            ) => a == b,
            (a, b) => a.name() == b.name(),
        }
    }
}

/// SPEC §5's good set: the candidates whose load is within `load_range` of the least loaded.
pub fn good_set(mut routable: Vec<Candidate>, load_range: u32) -> Vec<Candidate> {
    if let Some(min) = routable.iter().map(|c| c.load).min() {
        let max = min.saturating_add(load_range);
        routable.retain(|c| c.load <= max);
    }
    routable
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(loads: &[u32]) -> Vec<Candidate> {
        loads
            .iter()
            .enumerate()
            .map(|(i, l)| Candidate {
                pod_index: i as u32,
                load: *l,
                placed: 0,
                routing_state: RoutingState::Ready,
                age_ms: 0,
                weight: 100,
            })
            .collect()
    }

    #[test]
    fn settings_parse_once_for_every_binding() {
        for name in Placement::NAMES {
            let p = Placement::from_setting(name, 0.0).unwrap();
            assert_eq!(p.name(), name);
            let want = if name == "rendezvous" {
                Placement::DEFAULT_LOAD_FACTOR
            } else {
                0.0
            };
            assert_eq!(p.load_factor(), want);
        }
        let r = Placement::from_setting("rendezvous", 2.0).unwrap();
        assert_eq!(r.load_factor(), 2.0);
        let bad = |name: &str, f: f64| {
            let e = Placement::from_setting(name, f).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{name} {f}");
            e.message().to_string()
        };
        assert!(bad("fastest", 0.0).contains("\"fastest\" is not one of p2c, random"));
        assert!(bad("p2c", 1.5).contains("only \"rendezvous\" takes a load factor"));
        assert!(bad("rendezvous", 0.5).contains("must be >= 1"));
        bad("rendezvous", -1.0);
        bad("rendezvous", f64::NAN);
        bad("random", f64::NAN);
    }

    fn pick(p: &Placement, c: &[Candidate], r: &PlacementRequest<'_>) -> usize {
        p.choose(c, r).unwrap().unwrap()
    }

    fn req(seq: u64) -> PlacementRequest<'static> {
        PlacementRequest {
            namespace: "default",
            uid: "u",
            service: "s",
            sequence: seq,
        }
    }

    #[test]
    fn good_set_keeps_loads_within_range() {
        let g = good_set(cands(&[100, 550, 700, 600]), 500);
        assert_eq!(
            g.iter().map(|c| c.pod_index).collect::<Vec<_>>(),
            vec![0, 1, 3]
        );
    }

    #[test]
    fn round_robin_is_exact() {
        let c = cands(&[0, 0, 0]);
        let picks: Vec<_> = (0..6)
            .map(|s| pick(&Placement::RoundRobin, &c, &req(s)))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn p2c_never_picks_the_most_loaded_of_two() {
        let c = cands(&[10, 20]);
        for _ in 0..100 {
            assert_eq!(pick(&Placement::PowerOfTwoChoices, &c, &req(0)), 0);
        }
    }

    #[test]
    fn p2c_avoids_the_worst_pod() {
        // With three pods the most loaded one can only win a pair against itself: never.
        let c = cands(&[0, 1, 2]);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[pick(&Placement::PowerOfTwoChoices, &c, &req(0))] += 1;
        }
        assert_eq!(counts[2], 0);
        // Pod 0 wins both pairs it is in (2/3), pod 1 wins one pair (1/3).
        assert!((1800..2200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn random_spreads() {
        let c = cands(&[0, 0, 0, 0]);
        let mut counts = [0; 4];
        for _ in 0..4000 {
            counts[pick(&Placement::Random, &c, &req(0))] += 1;
        }
        assert!(counts.iter().all(|n| (800..1200).contains(n)), "{counts:?}");
    }

    #[test]
    fn rendezvous_is_the_highest_score_and_stable() {
        let c = cands(&[10, 10, 10, 10, 10]);
        let p = Placement::Rendezvous { load_factor: 1.25 };
        let mut counts = [0; 5];
        for i in 0..5000 {
            let uid = format!("user-{i}");
            let r = PlacementRequest {
                uid: &uid,
                ..req(i)
            };
            let got = pick(&p, &c, &r);
            let want = (0..5)
                .max_by_key(|pod| rendezvous_score("s", &uid, *pod as u32))
                .unwrap();
            assert_eq!(got, want, "{uid}");
            assert_eq!(pick(&p, &c, &r), got, "same answer every time");
            counts[got] += 1;
        }
        // Hashing spreads users evenly (each pod ~1000 of 5000).
        assert!(counts.iter().all(|n| (850..1150).contains(n)), "{counts:?}");
        // A removed pod only moves its own users.
        let fewer: Vec<Candidate> = c.iter().copied().filter(|x| x.pod_index != 2).collect();
        for i in 0..1000 {
            let uid = format!("user-{i}");
            let r = PlacementRequest {
                uid: &uid,
                ..req(0)
            };
            let before = c[pick(&p, &c, &r)].pod_index;
            let after = fewer[pick(&p, &fewer, &r)].pod_index;
            if before != 2 {
                assert_eq!(before, after, "{uid}");
            }
        }
    }

    #[test]
    fn rendezvous_skips_pods_above_the_bound() {
        // Average 100; bound 125: pod 1 (300) is never chosen.
        let c = cands(&[0, 300, 0]);
        let p = Placement::Rendezvous { load_factor: 1.25 };
        for i in 0..2000 {
            let uid = format!("u{i}");
            let got = pick(
                &p,
                &c,
                &PlacementRequest {
                    uid: &uid,
                    ..req(0)
                },
            );
            assert_ne!(got, 1);
        }
        assert!(Placement::Rendezvous { load_factor: 0.5 }
            .validate()
            .is_err());
        assert!(Placement::Rendezvous { load_factor: 1.25 }
            .validate()
            .is_ok());
    }

    #[test]
    fn weighted_follows_published_weights() {
        let mut c = cands(&[0, 0, 0]);
        c[0].weight = 10;
        c[1].weight = 90;
        c[2].weight = 0;
        let mut counts = [0; 3];
        for _ in 0..10_000 {
            counts[pick(&Placement::Weighted, &c, &req(0))] += 1;
        }
        assert_eq!(counts[2], 0);
        assert!((800..1200).contains(&counts[0]), "{counts:?}");
        for x in &mut c {
            x.weight = 0;
        }
        assert_eq!(Placement::Weighted.choose(&c, &req(0)).unwrap(), None);
    }

    #[derive(Debug)]
    struct Bad;
    impl PlacementPolicy for Bad {
        fn choose(&self, c: &[Candidate], _: &PlacementRequest<'_>) -> Result<Option<usize>> {
            Ok(Some(c.len()))
        }
    }

    #[test]
    fn custom_out_of_range_is_an_error() {
        let e = Placement::Custom(Arc::new(Bad))
            .choose(&cands(&[0]), &req(0))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
}
