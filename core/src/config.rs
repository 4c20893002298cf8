//! Configuration and the plain data types shared by both drivers (SPEC §1, §9).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ident;
use crate::placement::Placement;

/// The shortest period or staleness window a config accepts (1 ms): shorter ones round to zero
/// inside timers.
pub const MIN_SECONDS: f64 = 0.001;
/// The longest period, staleness window, drain or stale-serving time a config accepts (one day).
pub const MAX_SECONDS: f64 = 86_400.0;

/// Settings of both drivers. The first four fields are the original interface's, with its
/// defaults; the rest are new, each with a default (see the README's configuration table).
#[derive(Debug, Clone, PartialEq)]
pub struct BaseConfig {
    /// How often a pod publishes its state and a gateway refreshes its snapshot (seconds, > 0).
    /// Fractions are allowed (tests use short periods). Default 30.
    pub service_state_update_period_seconds: f64,
    /// Weight of CPU in the weighted load, in `[0, 1]`; 0 switches CPU sampling off. Default 0.7.
    pub cpu_factor: f64,
    /// TTL of a temporary link (seconds, > 0). Default 300.
    pub temp_link_info_cache_time_seconds: u64,
    /// How long a gateway caches a link (seconds, > 0, shorter than the temporary link TTL).
    /// Default 240.
    pub user_link_info_cache_time_seconds: u64,
    /// A pod whose state is older than this is not alive (seconds, > 0).
    /// `None` = 3 × the update period.
    pub stale_after_seconds: Option<f64>,
    /// Pods whose load is within this of the least loaded pod are all good candidates. Default 500.
    pub load_range: u32,
    /// How a new user's pod is chosen among the good candidates. Default power of two choices.
    pub placement: Placement,
    /// Most links a client driver keeps in its local cache; 0 turns the cache off. Default 100 000.
    pub cache_capacity: u64,
    /// How long `stop` keeps a pod in `DENY_NEW_CALL` before `SHUTDOWN` (seconds, ≥ 0). Default 0.
    pub drain_seconds: f64,
    /// While the store cannot be reached, a cached link that expired at most this long ago is
    /// still served (stale-if-error; seconds, ≥ 0; 0 turns it off). Default 60.
    pub serve_stale_seconds: f64,
    /// Slow start: for this long after a gateway first sees a pod become routable (started,
    /// restarted, un-drained), the pod is a candidate for a new user only with a probability
    /// that ramps from 0 to 1, so gateways do not all send it every new user until their next
    /// refresh (seconds, 0 to one day; 0 turns it off). `None` = one update period.
    pub slow_start_seconds: Option<f64>,
    /// Whether a client driver counts its routing calls, placements and errors (README
    /// "Metrics"); gauges, snapshot reads, store calls and event counts are reported either
    /// way. Default on.
    pub metrics: bool,
}

impl Default for BaseConfig {
    fn default() -> Self {
        BaseConfig {
            service_state_update_period_seconds: 30.0,
            cpu_factor: 0.7,
            temp_link_info_cache_time_seconds: 300,
            user_link_info_cache_time_seconds: 240,
            stale_after_seconds: None,
            load_range: 500,
            placement: Placement::default(),
            cache_capacity: 100_000,
            drain_seconds: 0.0,
            serve_stale_seconds: 60.0,
            slow_start_seconds: None,
            metrics: true,
        }
    }
}

impl BaseConfig {
    /// Checks every field; the error names the field and its rule (`INVALID_CONFIG`).
    pub fn validate(&self) -> Result<()> {
        let p = self.service_state_update_period_seconds;
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&p) {
            return Err(Error::invalid_config(
                "service_state_update_period_seconds",
                format!("{p} must be in [{MIN_SECONDS}, {MAX_SECONDS}]"),
            ));
        }
        let c = self.cpu_factor;
        if !(0.0..=1.0).contains(&c) {
            return Err(Error::invalid_config(
                "cpu_factor",
                format!("{c} must be in [0, 1]"),
            ));
        }
        let temp = self.temp_link_info_cache_time_seconds;
        if temp == 0 || temp > i32::MAX as u64 {
            return Err(Error::invalid_config(
                "temp_link_info_cache_time_seconds",
                format!("{temp} must be > 0"),
            ));
        }
        let user = self.user_link_info_cache_time_seconds;
        if user == 0 || user >= temp {
            return Err(Error::invalid_config(
                "user_link_info_cache_time_seconds",
                format!("{user} must be > 0 and shorter than temp_link_info_cache_time_seconds ({temp})"),
            ));
        }
        if let Some(s) = self.stale_after_seconds {
            if !(MIN_SECONDS..=MAX_SECONDS).contains(&s) {
                return Err(Error::invalid_config(
                    "stale_after_seconds",
                    format!("{s} must be in [{MIN_SECONDS}, {MAX_SECONDS}]"),
                ));
            }
        }
        self.placement.validate()?;
        for (name, v) in [
            ("drain_seconds", self.drain_seconds),
            ("serve_stale_seconds", self.serve_stale_seconds),
            ("slow_start_seconds", self.slow_start_seconds.unwrap_or(0.0)),
        ] {
            if !(0.0..=MAX_SECONDS).contains(&v) {
                return Err(Error::invalid_config(
                    name,
                    format!("{v} must be in [0, {MAX_SECONDS}]"),
                ));
            }
        }
        Ok(())
    }

    /// The update period as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_secs_f64(self.service_state_update_period_seconds)
    }

    /// The staleness window: `stale_after_seconds`, or 3 periods.
    pub fn stale_after(&self) -> Duration {
        match self.stale_after_seconds {
            Some(s) => Duration::from_secs_f64(s),
            None => self.period() * 3,
        }
    }

    /// The slow-start window: `slow_start_seconds`, or one period.
    pub fn slow_start(&self) -> Duration {
        match self.slow_start_seconds {
            Some(s) => Duration::from_secs_f64(s),
            None => self.period(),
        }
    }

    /// How long past its expiry a cached link may be served while the store is unreachable:
    /// `serve_stale_seconds`, but never more than [`BaseConfig::cache_margin`], since a cached
    /// temporary link expires that long before the store forgets it and serving it longer could
    /// route on a link the store no longer has.
    pub fn serve_stale_window(&self) -> Duration {
        Duration::from_secs_f64(self.serve_stale_seconds).min(self.cache_margin())
    }

    /// The margin by which a cached temporary link expires before the store forgets it:
    /// `temp_link_info_cache_time_seconds - user_link_info_cache_time_seconds` (60 s by default).
    pub fn cache_margin(&self) -> Duration {
        Duration::from_secs(
            self.temp_link_info_cache_time_seconds
                .saturating_sub(self.user_link_info_cache_time_seconds),
        )
    }
}

/// Who a driver is: its (local) namespace, its service and its pod index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerInfo {
    /// The driver's local namespace (a DNS label).
    pub namespace: String,
    /// The service this pod belongs to.
    pub service_name: String,
    /// The StatefulSet ordinal of this pod. Pod 0 is a real pod.
    pub pod_index: u32,
}

impl ServerInfo {
    /// A server info; see [`ServerInfo::validate`].
    pub fn new(
        namespace: impl Into<String>,
        service_name: impl Into<String>,
        pod_index: u32,
    ) -> Self {
        ServerInfo {
            namespace: namespace.into(),
            service_name: service_name.into(),
            pod_index,
        }
    }

    /// Where Kubernetes mounts the pod's namespace (the service-account token volume).
    pub const NAMESPACE_FILE: &'static str =
        "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

    /// Who this pod is, from its Kubernetes environment (README "Kubernetes"):
    /// - namespace: `POD_NAMESPACE` (the downward API), else [`ServerInfo::NAMESPACE_FILE`];
    /// - service: `service` if given, else `STATEFUL_ROUTE_SERVICE`, else the StatefulSet's
    ///   name (the pod name without its ordinal);
    /// - pod index: the ordinal ending the StatefulSet pod name, from `POD_NAME`, else
    ///   `HOSTNAME` (`room-12` → 12).
    ///
    /// `INVALID_CONFIG`, naming the variable, when one cannot be derived or is not valid.
    pub fn from_env(service: Option<&str>) -> Result<ServerInfo> {
        ServerInfo::from_env_with(
            service,
            |k| std::env::var(k).ok(),
            |path| std::fs::read_to_string(path).ok(),
        )
    }

    /// [`ServerInfo::from_env`] over given lookups (for tests and other sources).
    pub fn from_env_with(
        service: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
        read_file: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerInfo> {
        let set = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let namespace = match set("POD_NAMESPACE") {
            Some(ns) => ns,
            None => read_file(Self::NAMESPACE_FILE)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    Error::invalid_config(
                        "POD_NAMESPACE",
                        format!(
                            "is not set and {} cannot be read: set it from the downward API \
                             (fieldRef: metadata.namespace)",
                            Self::NAMESPACE_FILE
                        ),
                    )
                })?,
        };
        let (var, pod_name) = match set("POD_NAME") {
            Some(n) => ("POD_NAME", n),
            None => (
                "HOSTNAME",
                set("HOSTNAME").ok_or_else(|| {
                    Error::invalid_config(
                        "POD_NAME",
                        "neither POD_NAME nor HOSTNAME is set: set POD_NAME from the downward \
                         API (fieldRef: metadata.name)",
                    )
                })?,
            ),
        };
        let parsed = pod_name.rsplit_once('-').and_then(|(set, ordinal)| {
            let digits = !ordinal.is_empty() && ordinal.bytes().all(|b| b.is_ascii_digit());
            (digits && !set.is_empty() && (ordinal == "0" || !ordinal.starts_with('0')))
                .then(|| ordinal.parse::<u32>().ok().map(|i| (set, i)))
                .flatten()
        });
        let Some((statefulset, pod_index)) = parsed else {
            return Err(Error::invalid_config(
                var,
                format!(
                    "{pod_name:?} is not a StatefulSet pod name <set>-<ordinal> (e.g. room-12)"
                ),
            ));
        };
        let service = match service
            .map(str::to_string)
            .or_else(|| set("STATEFUL_ROUTE_SERVICE"))
        {
            Some(s) => s,
            None => statefulset.to_string(),
        };
        let info = ServerInfo::new(namespace, service, pod_index);
        info.validate().map_err(|e| {
            let field = match e.message() {
                m if m.contains("namespace") => "POD_NAMESPACE",
                m if m.contains("service_name") => "STATEFUL_ROUTE_SERVICE",
                _ => var,
            };
            Error::invalid_config(field, e.message().to_string())
        })?;
        Ok(info)
    }

    /// Checks the three fields against SPEC §2 (the namespace must be named).
    pub fn validate(&self) -> Result<()> {
        ident::check_namespace_label("namespace", &self.namespace)?;
        ident::check_service("service_name", &self.service_name)?;
        ident::check_pod(self.pod_index)?;
        Ok(())
    }
}

/// Whether a pod takes new users (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoutingState {
    /// Takes new users.
    #[default]
    Ready,
    /// Keeps its linked users, takes no new ones (draining).
    DenyNewCall,
    /// Gone on purpose.
    Shutdown,
}

impl RoutingState {
    /// The word stored in the pod state and used by every binding.
    pub const fn as_str(self) -> &'static str {
        match self {
            RoutingState::Ready => "READY",
            RoutingState::DenyNewCall => "DENY_NEW_CALL",
            RoutingState::Shutdown => "SHUTDOWN",
        }
    }
}

impl fmt::Display for RoutingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RoutingState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "READY" => Ok(RoutingState::Ready),
            "DENY_NEW_CALL" => Ok(RoutingState::DenyNewCall),
            "SHUTDOWN" => Ok(RoutingState::Shutdown),
            _ => Err(Error::invalid_argument(
                "routing_state",
                format!("{s:?} is not one of READY, DENY_NEW_CALL, SHUTDOWN"),
            )),
        }
    }
}

/// The lifetime of a link (SPEC §4): persistent, or temporary with a TTL in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkTtl {
    /// No TTL: the pod owns the user's state.
    Persistent,
    /// Expires after this many seconds (> 0).
    Seconds(u32),
}

impl LinkTtl {
    /// From the wire form every binding uses: `-1` = persistent, `> 0` = seconds.
    /// `0` and other negatives are `INVALID_ARGUMENT`.
    pub fn from_secs(ttl: i64) -> Result<LinkTtl> {
        match ttl {
            -1 => Ok(LinkTtl::Persistent),
            1..=0x7fff_ffff => Ok(LinkTtl::Seconds(ttl as u32)),
            _ => Err(Error::invalid_argument(
                "ttl",
                format!("{ttl} must be -1 (persistent) or a number of seconds > 0"),
            )),
        }
    }

    /// The wire form: `-1` or seconds.
    pub fn as_secs(self) -> i64 {
        match self {
            LinkTtl::Persistent => -1,
            LinkTtl::Seconds(s) => s as i64,
        }
    }
}

/// A link as the store holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Link {
    /// The pod the user is linked to.
    pub pod_index: u32,
    /// Remaining lifetime of a temporary link; `None` for a persistent link.
    pub ttl: Option<Duration>,
}

impl Link {
    /// Whether the link has no TTL.
    pub fn is_persistent(&self) -> bool {
        self.ttl.is_none()
    }
}

/// The outcome of a try-set (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrySetOutcome {
    /// Whether the link now points to the requested pod.
    pub accepted: bool,
    /// The pod the link points to after the call.
    pub owner: u32,
    /// The pod the link pointed to before the call, if any.
    pub previous: Option<u32>,
}
