//! Change propagation (SPEC §11): link changes and routing-state changes reach every client
//! driver sharing a store, atomically with the change.
//!
//! On Redis, the scripts that change an existing link or a pod's routing state `PUBLISH` an
//! event on the namespace's channel `<prefix>:events:<ns>` in the same script (the event exists
//! if and only if the change does), and one subscriber connection per store delivers them to
//! the drivers of this process. The memory store delivers the same events before the writing
//! call returns. Messages are text, one event each:
//!
//! - `link <service> <pod> <kind> <uid>`: the link of (uid, service) now points to `<pod>`
//!   (`<kind>` `p` persistent, `t` temporary) or, with `- -`, was removed. The uid comes last
//!   because it may contain spaces.
//! - `pod <service> <pod> <ROUTING>`: a pod published a routing state other than its last one.
//!
//! A stream that is not connected (before the first subscription, after a disconnect, a
//! restart, a failover, or an overloaded subscriber being cut off by Redis) is a *gap*: while
//! it lasts a driver's cache follows the TTL rule alone (as without propagation, so hits and
//! stale-if-error keep serving through a store outage); when the stream is back the driver
//! drops its whole cache (its entries may have missed events) and re-reads its snapshots.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use crate::config::RoutingState;

/// A link that changed, as every client driver sharing the store sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkChange {
    /// The namespace.
    pub namespace: String,
    /// The service.
    pub service: String,
    /// The user.
    pub uid: String,
    /// The pod the link points to now; `None`: removed.
    pub pod: Option<u32>,
    /// Whether the link is persistent now (`false` when removed).
    pub persistent: bool,
}

/// What the stream delivers to a driver (or to [`Store::watch_events`](crate::Store::watch_events)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A link changed.
    Link(LinkChange),
    /// A pod of `service` published routing state `routing` (a change).
    Pod {
        /// The service.
        service: String,
        /// The pod.
        pod: u32,
        /// The state it published.
        routing: RoutingState,
    },
    /// The stream is not connected: events may be missed from now on.
    Gap,
    /// The stream is connected (again): events are delivered from now on.
    Resumed,
}

/// The channel of `namespace`'s events under `prefix`.
pub(crate) fn channel(prefix: &str, namespace: &str) -> String {
    format!("{prefix}:events:{namespace}")
}

/// Parses one message of `namespace`'s channel; `None` for a message this version does not know
/// (a newer writer's), which is skipped.
pub(crate) fn parse(namespace: &str, msg: &str) -> Option<Event> {
    let mut parts = msg.splitn(5, ' ');
    match parts.next()? {
        "link" => {
            let service = parts.next()?.to_string();
            let pod = parts.next()?;
            let kind = parts.next()?;
            let uid = parts.next()?.to_string();
            let (pod, persistent) = match (pod, kind) {
                ("-", "-") => (None, false),
                (p, "p") => (Some(p.parse().ok()?), true),
                (p, "t") => (Some(p.parse().ok()?), false),
                _ => return None,
            };
            Some(Event::Link(LinkChange {
                namespace: namespace.to_string(),
                service,
                uid,
                pod,
                persistent,
            }))
        }
        "pod" => {
            let service = parts.next()?.to_string();
            let pod = parts.next()?.parse().ok()?;
            let routing = parts.next()?.parse().ok()?;
            Some(Event::Pod {
                service,
                pod,
                routing,
            })
        }
        _ => None,
    }
}

/// The message of a link change (the scripts build the same text in Lua).
#[cfg(test)]
pub(crate) fn link_message(service: &str, uid: &str, pod: Option<u32>, persistent: bool) -> String {
    match pod {
        None => format!("link {service} - - {uid}"),
        Some(p) => format!(
            "link {service} {p} {} {uid}",
            if persistent { "p" } else { "t" }
        ),
    }
}

pub(crate) type Sink = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Clone)]
struct Registered {
    id: u64,
    namespace: String,
    sink: Sink,
}

/// The drivers of this process that listen to one store's events, and whether the stream is
/// connected. A backend with propagation owns one and feeds it.
pub struct EventHub {
    /// Copied on write (drivers come and go rarely), so a delivery clones one `Arc` instead of
    /// allocating a list per event.
    sinks: Mutex<Arc<Vec<Registered>>>,
    next: AtomicU64,
    /// Namespaces whose channel the stream is subscribed to.
    subscribed: Mutex<BTreeSet<String>>,
    /// Woken when a namespace is added (the subscriber subscribes to its channel).
    pub(crate) changed: tokio::sync::Notify,
    /// Gaps seen so far (for tests and diagnostics).
    gaps: AtomicU64,
    always_connected: bool,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
    /// How long a driver's `init` waits for its namespace to be subscribed.
    pub(crate) ready_within: std::time::Duration,
}

impl fmt::Debug for EventHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHub")
            .field("connected", &self.connected.load(Ordering::Relaxed))
            .field("gaps", &self.gaps.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A registration for a namespace's events; dropping it unregisters.
pub struct Subscription {
    hub: Weak<EventHub>,
    id: u64,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            Arc::make_mut(&mut hub.lock()).retain(|r| r.id != self.id);
        }
    }
}

impl EventHub {
    /// A hub whose stream is connected from the start and never breaks (in-process stores).
    pub(crate) fn in_process() -> Arc<EventHub> {
        Arc::new(Self::new(true, std::time::Duration::ZERO))
    }

    /// A hub fed by a subscriber that reports its connection state; a driver's `init` waits up
    /// to `ready_within` for the stream.
    pub(crate) fn remote(ready_within: std::time::Duration) -> Arc<EventHub> {
        Arc::new(Self::new(false, ready_within))
    }

    fn new(always_connected: bool, ready_within: std::time::Duration) -> EventHub {
        EventHub {
            sinks: Mutex::new(Arc::new(Vec::new())),
            next: AtomicU64::new(1),
            subscribed: Mutex::new(BTreeSet::new()),
            changed: tokio::sync::Notify::new(),
            gaps: AtomicU64::new(0),
            always_connected,
            connected: AtomicBool::new(always_connected),
            last_error: Mutex::new(None),
            ready_within,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Arc<Vec<Registered>>> {
        self.sinks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registered drivers now.
    fn registered(&self) -> Arc<Vec<Registered>> {
        self.lock().clone()
    }

    /// Registers `sink` for `namespace`'s events. An in-process hub tells it `Resumed` at once;
    /// a remote one when its channel is subscribed (until then the driver is in a gap).
    pub(crate) fn subscribe(self: &Arc<Self>, namespace: &str, sink: Sink) -> Subscription {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        Arc::make_mut(&mut self.lock()).push(Registered {
            id,
            namespace: namespace.to_string(),
            sink: sink.clone(),
        });
        let known = self
            .subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(namespace);
        if self.always_connected || (known && self.connected.load(Ordering::Acquire)) {
            sink(&Event::Resumed);
        } else {
            self.changed.notify_one();
        }
        Subscription {
            hub: Arc::downgrade(self),
            id,
        }
    }

    /// Namespaces with at least one registered driver.
    pub(crate) fn namespaces(&self) -> BTreeSet<String> {
        self.lock().iter().map(|r| r.namespace.clone()).collect()
    }

    /// Whether any driver listens.
    pub(crate) fn has_sinks(&self) -> bool {
        !self.lock().is_empty()
    }

    fn sinks_of(&self, namespace: Option<&str>) -> Vec<Sink> {
        self.registered()
            .iter()
            .filter(|r| namespace.is_none_or(|n| n == r.namespace))
            .map(|r| r.sink.clone())
            .collect()
    }

    /// Delivers `event` to `namespace`'s drivers (the list is not locked while they run: a
    /// driver may subscribe or go away meanwhile).
    pub(crate) fn deliver(&self, namespace: &str, event: &Event) {
        for r in self
            .registered()
            .iter()
            .filter(|r| r.namespace == namespace)
        {
            (r.sink)(event);
        }
    }

    /// The stream is subscribed to the channels of `namespaces`: their drivers resume.
    pub(crate) fn resumed(&self, namespaces: &BTreeSet<String>) {
        self.connected.store(true, Ordering::Release);
        let mut subscribed = self.subscribed.lock().unwrap_or_else(|p| p.into_inner());
        for ns in namespaces {
            if subscribed.insert(ns.clone()) {
                for sink in self.sinks_of(Some(ns)) {
                    sink(&Event::Resumed);
                }
            }
        }
    }

    /// The stream broke: every driver is in a gap until [`EventHub::resumed`].
    pub(crate) fn gap(&self) {
        self.connected.store(false, Ordering::Release);
        self.subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.gaps.fetch_add(1, Ordering::Relaxed);
        for sink in self.sinks_of(None) {
            sink(&Event::Gap);
        }
    }

    /// Whether events are being delivered.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Why the stream last failed to connect, subscribe or answer (e.g. an ACL refusal).
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn failed(&self, why: String) {
        tracing::warn!(error = %why, "event stream failed; caches follow their TTL until it is back");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
    }

    /// Gaps since the store was made (disconnects of the event stream).
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for (pod, persistent) in [(Some(3), true), (Some(0), false), (None, false)] {
            let m = link_message("chat", "u 1:x", pod, persistent);
            assert_eq!(
                parse("ns", &m),
                Some(Event::Link(LinkChange {
                    namespace: "ns".into(),
                    service: "chat".into(),
                    uid: "u 1:x".into(),
                    pod,
                    persistent
                }))
            );
        }
        assert_eq!(
            parse("ns", "pod chat 7 DENY_NEW_CALL"),
            Some(Event::Pod {
                service: "chat".into(),
                pod: 7,
                routing: RoutingState::DenyNewCall
            })
        );
        for bad in [
            "",
            "link",
            "link chat x p u",
            "link chat 1 q u",
            "pod chat 1 NAP",
            "v9 x",
        ] {
            assert_eq!(parse("ns", bad), None, "{bad:?}");
        }
    }
}

pub(crate) type LinkListener = Arc<dyn Fn(&LinkChange) + Send + Sync>;

const STRIPES: usize = 1024;

/// What a client driver needs to keep its cache coherent with the event stream: a sequence
/// number per stripe of keys, bumped by every link event before its entry is dropped, and a
/// generation bumped by every gap and resume. A store read takes a [`Ticket`] before it is
/// sent; its answer is cached only if the ticket is still current after the insert, so an
/// event that arrives while the read is in flight (in either order with the reply, on another
/// connection) can never leave the stale answer cached.
pub(crate) struct Coherence {
    stripes: Box<[AtomicU64]>,
    generation: AtomicU64,
    hasher: foldhash::fast::SeedableRandomState,
    listeners: Mutex<Vec<(u64, LinkListener)>>,
    next_listener: AtomicU64,
}

/// The state of a stripe and of the stream when a store read was sent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket {
    stripe: usize,
    seq: u64,
    generation: u64,
}

impl Coherence {
    pub fn new(clock: &crate::clock::Clock) -> Coherence {
        Coherence {
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            generation: AtomicU64::new(0),
            hasher: clock.hasher(),
            listeners: Mutex::new(Vec::new()),
            next_listener: AtomicU64::new(1),
        }
    }

    fn stripe(&self, service: &str, uid: &str) -> usize {
        use std::hash::BuildHasher;
        (self.hasher.hash_one((service, uid)) as usize) % STRIPES
    }

    /// Taken before a store read whose answer may be cached.
    pub fn ticket(&self, service: &str, uid: &str) -> Ticket {
        let stripe = self.stripe(service, uid);
        Ticket {
            stripe,
            seq: self.stripes[stripe].load(Ordering::SeqCst),
            generation: self.generation.load(Ordering::SeqCst),
        }
    }

    /// Whether no event for the ticket's stripe and no gap came since it was taken.
    pub fn is_current(&self, t: Ticket) -> bool {
        self.stripes[t.stripe].load(Ordering::SeqCst) == t.seq
            && self.generation.load(Ordering::SeqCst) == t.generation
    }

    /// Marks (service, uid) changed; call before dropping its entry.
    pub fn bump(&self, service: &str, uid: &str) {
        self.stripes[self.stripe(service, uid)].fetch_add(1, Ordering::SeqCst);
    }

    /// Marks every key changed (a gap or a resume); call before clearing the cache.
    pub fn bump_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn add_listener(&self, f: LinkListener) -> u64 {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, f));
        id
    }

    pub fn remove_listener(&self, id: u64) -> bool {
        let mut l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        let before = l.len();
        l.retain(|(i, _)| *i != id);
        l.len() != before
    }

    /// Calls every link listener; one that panics does not stop the others or the stream.
    pub fn notify(&self, change: &LinkChange) {
        let listeners: Vec<LinkListener> = {
            let l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            if l.is_empty() {
                return; // the usual case: no allocation per event
            }
            l.iter().map(|(_, l)| l.clone()).collect()
        };
        for l in listeners {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| l(change))).is_err() {
                tracing::error!("a link listener panicked");
            }
        }
    }
}
