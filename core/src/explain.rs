//! "Why does user U land on pod P?": a dry run of a placement (README "Metrics").

/// The link a user has now, as the store and this gateway's cache hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedLink {
    /// The pod it points to.
    pub pod_index: u32,
    /// Whether it is persistent (no TTL).
    pub persistent: bool,
    /// Remaining lifetime of a temporary link, in seconds.
    pub ttl_seconds: Option<f64>,
    /// Whether that pod is alive in this gateway's snapshot.
    pub pod_alive: bool,
}

/// One pod of the service as a placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainedPod {
    /// The pod.
    pub pod_index: u32,
    /// Its published load.
    pub load: u32,
    /// Placements this gateway made on it since the snapshot was read.
    pub placed: u32,
    /// The routing state it published.
    pub routing_state: String,
    /// Whether it is alive (published recently, not shut down).
    pub alive: bool,
    /// Seconds since it published.
    pub age_seconds: f64,
    /// Its published weight.
    pub weight: u32,
    /// `kept` (a candidate), `warming` (a candidate with the probability `reason` gives: slow
    /// start), `dead`, `not_routable` (alive, takes no new users) or `over_load_range`.
    pub verdict: String,
    /// The verdict in words, with the numbers behind it.
    pub reason: String,
}

/// What a placement for (uid, service) would do now, and why. Writes nothing, counts nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The namespace.
    pub namespace: String,
    /// The user.
    pub uid: String,
    /// The service.
    pub service: String,
    /// The user's link in the store, if any.
    pub link: Option<ExplainedLink>,
    /// The pod this gateway's cache holds for the user, if any.
    pub cached_pod: Option<u32>,
    /// The placement policy in force for the service.
    pub policy: String,
    /// Its load factor (rendezvous; 0 for the others).
    pub load_factor: f64,
    /// The good set's load range (`load_range`).
    pub load_range: u32,
    /// Every pod of the snapshot, by index.
    pub pods: Vec<ExplainedPod>,
    /// The pod a new user would be placed on now (for random policies, one draw).
    pub would_place_on: Option<u32>,
    /// The pod `compute_linked_pod` would answer now (`None`: it would fail, see `summary`).
    pub answer: Option<u32>,
    /// The answer in words.
    pub summary: String,
    /// Seconds since the snapshot was read.
    pub snapshot_age_seconds: Option<f64>,
}
