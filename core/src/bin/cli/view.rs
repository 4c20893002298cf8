//! What the CLI reads and how it shows it: status rows, explanations, the watch loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use stateful_route::events::Event;
use stateful_route::{Explanation, Link, RoutingState, Store};

use crate::{Failure, Outcome};

/// ANSI colour, only on a terminal.
pub struct Colour(bool);

impl Colour {
    pub fn for_stdout(json: bool) -> Colour {
        Colour(crate::colour_wanted(json))
    }

    fn paint(&self, s: &str, state: &str) -> String {
        if !self.0 {
            return s.to_string();
        }
        let code = match state {
            "routable" | "kept" => "32",
            "draining" | "not_routable" | "warming" => "33",
            "dead" | "over_load_range" => "31",
            _ => return s.to_string(),
        };
        format!("\x1b[{code}m{s}\x1b[0m")
    }

    /// [`table`] with column `col` of row `r` painted by the word `words[r]`.
    pub fn table(&self, head: &[&str], rows: &[Vec<String>], col: usize, words: &[&str]) -> String {
        table_painted(head, rows, |r, c, s| {
            if c == col {
                self.paint(s, words[r])
            } else {
                s.to_string()
            }
        })
    }
}

/// Aligned columns (left-aligned, two spaces apart).
pub fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    table_painted(head, rows, |_, _, s| s.to_string())
}

fn table_painted(
    head: &[&str],
    rows: &[Vec<String>],
    paint: impl Fn(usize, usize, &str) -> String,
) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>, raw: Vec<usize>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, (c, len)) in cells.into_iter().zip(raw).enumerate() {
            s.push_str(&c);
            if i + 1 < n {
                s.push_str(&" ".repeat(width[i] - len + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(
        head.iter().map(|h| h.to_string()).collect(),
        head.iter().map(|h| h.len()).collect(),
    );
    for (ri, r) in rows.iter().enumerate() {
        out.push_str(&line(
            r.iter()
                .enumerate()
                .map(|(ci, c)| paint(ri, ci, c))
                .collect(),
            r.iter().map(|c| c.chars().count()).collect(),
        ));
    }
    out
}

pub fn list(pods: &[u32]) -> String {
    pods.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One pod as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRow {
    pub pod: u32,
    pub load: u32,
    pub weight: u32,
    pub routing_state: RoutingState,
    pub age_seconds: f64,
    pub cordoned: bool,
}

impl PodRow {
    pub fn alive(&self, stale_after: f64) -> bool {
        self.routing_state != RoutingState::Shutdown && self.age_seconds < stale_after
    }

    /// `routable`, `draining` or `dead`.
    pub fn state(&self, stale_after: f64) -> &'static str {
        match (self.alive(stale_after), self.routing_state) {
            (false, _) => "dead",
            (true, RoutingState::Ready) => "routable",
            (true, _) => "draining",
        }
    }
}

/// One service's pods as the store holds them now.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub service: String,
    pub pods: Vec<PodRow>,
    pub stale_after: f64,
}

impl ServiceStatus {
    pub async fn read(
        store: &Store,
        ns: &str,
        service: &str,
        stale_after: f64,
    ) -> std::result::Result<ServiceStatus, Failure> {
        let states = store.pod_states(ns, service).await?;
        let cordoned = store.cordoned(ns, service).await?;
        let pods = states
            .pods
            .iter()
            .map(|p| PodRow {
                pod: p.pod_index,
                load: p.load,
                weight: p.weight,
                routing_state: p.routing_state,
                age_seconds: states.now_ms.saturating_sub(p.update_ms) as f64 / 1000.0,
                cordoned: cordoned.contains(&p.pod_index),
            })
            .collect();
        Ok(ServiceStatus {
            service: service.to_string(),
            pods,
            stale_after,
        })
    }

    pub fn count(&self, state: &str) -> usize {
        self.pods
            .iter()
            .filter(|p| p.state(self.stale_after) == state)
            .count()
    }

    fn totals(&self) -> Value {
        json!({
            "pods": self.pods.len(),
            "routable": self.count("routable"),
            "draining": self.count("draining"),
            "dead": self.count("dead"),
            "load": self.pods.iter().map(|p| p.load as u64).sum::<u64>(),
        })
    }

    pub fn pod_json(&self, p: &PodRow) -> Value {
        json!({
            "pod": p.pod,
            "load": p.load,
            "weight": p.weight,
            "routing_state": p.routing_state.as_str(),
            "age_seconds": (p.age_seconds * 1000.0).round() / 1000.0,
            "alive": p.alive(self.stale_after),
            "routable": p.state(self.stale_after) == "routable",
            "state": p.state(self.stale_after),
            "cordoned": p.cordoned,
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "service": self.service,
            "pods": self.pods.iter().map(|p| self.pod_json(p)).collect::<Vec<_>>(),
            "totals": self.totals(),
        })
    }

    pub fn table(&self, colour: &Colour) -> String {
        let load: u64 = self.pods.iter().map(|p| p.load as u64).sum();
        let mut out = format!(
            "{}: {} pod{}, {} routable, {} draining, {} dead; load {load}\n",
            self.service,
            self.pods.len(),
            if self.pods.len() == 1 { "" } else { "s" },
            self.count("routable"),
            self.count("draining"),
            self.count("dead"),
        );
        let rows: Vec<Vec<String>> = self
            .pods
            .iter()
            .map(|p| {
                vec![
                    p.pod.to_string(),
                    p.load.to_string(),
                    p.weight.to_string(),
                    p.routing_state.as_str().to_string(),
                    format!("{:.1}s", p.age_seconds),
                    p.state(self.stale_after).to_string(),
                    if p.cordoned { "cordoned" } else { "" }.to_string(),
                ]
            })
            .collect();
        let states: Vec<&str> = self
            .pods
            .iter()
            .map(|p| p.state(self.stale_after))
            .collect();
        out.push_str(&colour.table(
            &["POD", "LOAD", "WEIGHT", "ROUTING", "AGE", "STATE", "CORDON"],
            &rows,
            5,
            &states,
        ));
        out
    }
}

pub fn kind(l: &Link) -> String {
    match l.ttl {
        None => "persistent".into(),
        Some(t) => format!("temporary, {:.0} s left", t.as_secs_f64()),
    }
}

pub fn link_json(uid: &str, service: &str, l: &Link) -> Value {
    json!({
        "uid": uid,
        "service": service,
        "link": {
            "pod": l.pod_index,
            "persistent": l.is_persistent(),
            "ttl_seconds": l.ttl.map(|t| t.as_secs_f64()),
        }
    })
}

pub fn explanation_json(e: &Explanation) -> Value {
    json!({
        "namespace": e.namespace,
        "uid": e.uid,
        "service": e.service,
        "link": e.link.as_ref().map(|l| json!({
            "pod": l.pod_index,
            "persistent": l.persistent,
            "ttl_seconds": l.ttl_seconds,
            "pod_alive": l.pod_alive,
        })),
        "policy": e.policy,
        "load_factor": e.load_factor,
        "load_range": e.load_range,
        "pods": e.pods.iter().map(|p| json!({
            "pod": p.pod_index,
            "load": p.load,
            "placed": p.placed,
            "routing_state": p.routing_state,
            "alive": p.alive,
            "age_seconds": p.age_seconds,
            "weight": p.weight,
            "verdict": p.verdict,
            "reason": p.reason,
        })).collect::<Vec<_>>(),
        "would_place_on": e.would_place_on,
        "answer": e.answer,
        "summary": e.summary,
    })
}

pub fn explanation_text(e: &Explanation, colour: &Colour) -> String {
    let mut out = format!("{} {}: {}\n", e.uid, e.service, e.summary);
    out.push_str(&format!(
        "policy {}{}, load range {}\n",
        e.policy,
        if e.load_factor > 0.0 {
            format!(" (load factor {})", e.load_factor)
        } else {
            String::new()
        },
        e.load_range
    ));
    let rows: Vec<Vec<String>> = e
        .pods
        .iter()
        .map(|p| {
            vec![
                p.pod_index.to_string(),
                p.load.to_string(),
                p.placed.to_string(),
                p.weight.to_string(),
                p.routing_state.clone(),
                format!("{:.1}s", p.age_seconds),
                p.verdict.clone(),
                p.reason.clone(),
            ]
        })
        .collect();
    let verdicts: Vec<&str> = e.pods.iter().map(|p| p.verdict.as_str()).collect();
    out.push_str(&colour.table(
        &[
            "POD", "LOAD", "PLACED", "WEIGHT", "ROUTING", "AGE", "VERDICT", "WHY",
        ],
        &rows,
        6,
        &verdicts,
    ));
    out
}

pub fn now_string() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// One change the watch and the dashboard report.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Pod {
        service: String,
        pod: u32,
        old: Option<String>,
        new: String,
    },
    Link {
        service: String,
        uid: String,
        pod: Option<u32>,
        persistent: bool,
    },
    Stream(&'static str),
}

impl Change {
    pub fn to_json(&self, at: &str) -> Value {
        match self {
            Change::Pod {
                service,
                pod,
                old,
                new,
            } => json!({
                "at": at, "type": "pod", "service": service, "pod": pod, "old": old, "new": new,
            }),
            Change::Link {
                service,
                uid,
                pod,
                persistent,
            } => json!({
                "at": at, "type": "link", "service": service, "uid": uid, "pod": pod,
                "persistent": persistent,
            }),
            Change::Stream(what) => json!({ "at": at, "type": "stream", "state": what }),
        }
    }

    pub fn line(&self, at: &str) -> String {
        match self {
            Change::Pod {
                service,
                pod,
                old,
                new,
            } => format!(
                "{at} pod {service} {pod} {} -> {new}",
                old.as_deref().unwrap_or("(new)")
            ),
            Change::Link {
                service,
                uid,
                pod,
                persistent,
            } => match pod {
                Some(p) => format!(
                    "{at} link {service} {uid} -> {p} ({})",
                    if *persistent {
                        "persistent"
                    } else {
                        "temporary"
                    }
                ),
                None => format!("{at} link {service} {uid} removed"),
            },
            Change::Stream(what) => format!("{at} events {what}"),
        }
    }

    pub fn service(&self) -> Option<&str> {
        match self {
            Change::Pod { service, .. } | Change::Link { service, .. } => Some(service),
            Change::Stream(_) => None,
        }
    }
}

/// What each pod last showed (`READY`, `DENY_NEW_CALL`, `SHUTDOWN` or `DEAD`), to report
/// changes once whether they come from an event or from a re-read.
#[derive(Default)]
pub struct Tracker {
    known: BTreeMap<(String, u32), String>,
}

impl Tracker {
    /// Records `word` for the pod; the change to report, if it is one. The first sight of a
    /// pod reports nothing when `baseline` (the first read).
    pub fn saw(&mut self, service: &str, pod: u32, word: &str, baseline: bool) -> Option<Change> {
        let old = self
            .known
            .insert((service.to_string(), pod), word.to_string());
        match old {
            Some(o) if o == word => None,
            None if baseline => None,
            old => Some(Change::Pod {
                service: service.to_string(),
                pod,
                old,
                new: word.to_string(),
            }),
        }
    }

    /// Reads every pod of `services` and returns what changed.
    pub fn poll(&mut self, rows: &[ServiceStatus], baseline: bool) -> Vec<Change> {
        let mut out = Vec::new();
        for s in rows {
            for p in &s.pods {
                let word = if p.alive(s.stale_after) {
                    p.routing_state.as_str()
                } else if p.routing_state == RoutingState::Shutdown {
                    "SHUTDOWN"
                } else {
                    "DEAD"
                };
                out.extend(self.saw(&s.service, p.pod, word, baseline));
            }
        }
        out
    }
}

/// Maps a store event to a change (pod events carry the routing word).
pub fn change_of(event: &Event, tracker: &Mutex<Tracker>) -> Option<Change> {
    match event {
        Event::Link(c) => Some(Change::Link {
            service: c.service.clone(),
            uid: c.uid.clone(),
            pod: c.pod,
            persistent: c.persistent,
        }),
        Event::Pod {
            service,
            pod,
            routing,
        } => tracker.lock().unwrap_or_else(|p| p.into_inner()).saw(
            service,
            *pod,
            routing.as_str(),
            false,
        ),
        Event::Gap => Some(Change::Stream("disconnected")),
        Event::Resumed => Some(Change::Stream("connected")),
    }
}

/// Reads the given service, or every service of `ns`.
pub async fn read_all(
    store: &Store,
    ns: &str,
    only: Option<&str>,
    stale_after: f64,
) -> std::result::Result<Vec<ServiceStatus>, Failure> {
    let services = match only {
        Some(s) => vec![s.to_string()],
        None => store.services(ns).await?,
    };
    let mut out = Vec::new();
    for s in services {
        out.push(ServiceStatus::read(store, ns, &s, stale_after).await?);
    }
    Ok(out)
}

/// `watch`: a line (or JSON object) per change until SIGINT/SIGTERM.
pub async fn watch(
    store: &Store,
    ns: &str,
    only: Option<&str>,
    interval: Duration,
    stale_after: f64,
    json: bool,
) -> Outcome {
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let first = read_all(store, ns, only, stale_after).await?;
    tracker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .poll(&first, true);
    let print = move |c: &Change| {
        if only.is_some_and(|s| c.service().is_some_and(|cs| cs != s)) {
            return;
        }
        let at = now_string();
        if json {
            println!("{}", c.to_json(&at));
        } else {
            println!("{}", c.line(&at));
        }
    };
    let only_owned = only.map(str::to_string);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Change>();
    let events_tracker = tracker.clone();
    let _sub = store.watch_events(ns, move |e| {
        if let Some(c) = change_of(e, &events_tracker) {
            if only_owned
                .as_deref()
                .is_none_or(|s| c.service().is_none_or(|cs| cs == s))
            {
                let _ = tx.send(c);
            }
        }
    })?;
    // Ready once the event stream is subscribed (at most 3 s; after that the re-reads still
    // report routing changes and the stream's own line says when it is up).
    if _sub.is_some() {
        let up = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(c) = rx.recv().await {
                if c == Change::Stream("connected") {
                    return;
                }
                print(&c);
            }
        });
        if up.await.is_err() {
            eprintln!(
                "stateful-route: event stream not subscribed yet; link moves show once it is"
            );
        }
    }
    // Ready: the baseline is read and the event stream registered.
    if json {
        println!(
            "{}",
            json!({ "at": now_string(), "type": "watching", "namespace": ns })
        );
    } else {
        println!("{} watching namespace {ns} (Ctrl-C to stop)", now_string());
    }
    let mut tick = tokio::time::interval(interval);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot listen for SIGTERM: {e}"),
        })?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = term.recv() => return Ok(()),
            Some(c) = rx.recv() => print(&c),
            _ = tick.tick() => {
                match read_all(store, ns, only, stale_after).await {
                    Ok(rows) => {
                        let changes = tracker.lock().unwrap_or_else(|p| p.into_inner()).poll(&rows, false);
                        changes.iter().for_each(&print);
                    }
                    Err(f) => eprintln!("stateful-route: {}", f.message),
                }
            }
        }
    }
}
