//! Placement: which pod a new user goes to (SPEC §5).
//!
//! The driver narrows a service's pods to the good set (routable, load within `load_range`
//! of the least loaded) and hands it to a [`PlacementPolicy`]. Policies are pure functions of
//! their input plus randomness: they never touch the store and must not block.

use std::fmt;
use std::sync::Arc;

use crate::config::RoutingState;

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
    pub routing: RoutingState,
    /// How old its published state was when the snapshot was read, in ms.
    pub age_ms: u64,
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
pub trait PlacementPolicy: Send + Sync + fmt::Debug {
    /// The index into `candidates` of the chosen pod, or `None` to refuse
    /// (the caller then reports `NO_AVAILABLE_POD`).
    fn choose(&self, candidates: &[Candidate], request: &PlacementRequest<'_>) -> Option<usize>;
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
    /// A policy of your own.
    Custom(Arc<dyn PlacementPolicy>),
}

impl Placement {
    /// The name used in configs and bindings: `"p2c"`, `"random"`, `"round_robin"`, `"custom"`.
    pub fn name(&self) -> &'static str {
        match self {
            Placement::PowerOfTwoChoices => "p2c",
            Placement::Random => "random",
            Placement::RoundRobin => "round_robin",
            Placement::Custom(_) => "custom",
        }
    }

    /// The built-in policy called `name`.
    pub fn from_name(name: &str) -> Option<Placement> {
        match name {
            "p2c" | "power_of_two_choices" => Some(Placement::PowerOfTwoChoices),
            "random" => Some(Placement::Random),
            "round_robin" => Some(Placement::RoundRobin),
            _ => None,
        }
    }

    /// Chooses with this policy.
    pub fn choose(
        &self,
        candidates: &[Candidate],
        request: &PlacementRequest<'_>,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        match self {
            Placement::PowerOfTwoChoices => Some(power_of_two(candidates)),
            Placement::Random => Some(fastrand::usize(..candidates.len())),
            Placement::RoundRobin => Some((request.sequence % candidates.len() as u64) as usize),
            Placement::Custom(p) => p
                .choose(candidates, request)
                .filter(|i| *i < candidates.len()),
        }
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
                routing: RoutingState::Ready,
                age_ms: 0,
            })
            .collect()
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
            .map(|s| Placement::RoundRobin.choose(&c, &req(s)).unwrap())
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn p2c_never_picks_the_most_loaded_of_two() {
        let c = cands(&[10, 20]);
        for _ in 0..100 {
            assert_eq!(Placement::PowerOfTwoChoices.choose(&c, &req(0)), Some(0));
        }
    }

    #[test]
    fn p2c_avoids_the_worst_pod() {
        // With three pods the most loaded one can only win a pair against itself: never.
        let c = cands(&[0, 1, 2]);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[Placement::PowerOfTwoChoices.choose(&c, &req(0)).unwrap()] += 1;
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
            counts[Placement::Random.choose(&c, &req(0)).unwrap()] += 1;
        }
        assert!(counts.iter().all(|n| (800..1200).contains(n)), "{counts:?}");
    }
}
