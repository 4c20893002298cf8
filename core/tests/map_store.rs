//! A store written here, on plain maps, passes the exported test kit: the proof that
//! `StoreBackend` + `testkit::run_store_suite` is enough for a third-party backend.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use stateful_route::pod_state::format_value;
use stateful_route::store::{LinkClaim, LinkRef, RawPodStates, StoreBackend};
use stateful_route::{Link, LinkTtl, Result, RoutingState, Store, TrySetOutcome};

type LinkId = (String, String, String); // (namespace, uid, service)

#[derive(Debug, Default)]
struct Maps {
    /// link → (pod, expiry; None = persistent)
    links: HashMap<LinkId, (u32, Option<Instant>)>,
    /// (namespace, service) → pod → value
    states: HashMap<(String, String), BTreeMap<String, String>>,
    words: HashMap<String, String>,
}

#[derive(Debug, Default)]
struct MapStore(Mutex<Maps>);

fn id(l: LinkRef<'_>) -> LinkId {
    (l.namespace.into(), l.uid.into(), l.service.into())
}

fn expiry(ttl: LinkTtl) -> Option<Instant> {
    match ttl {
        LinkTtl::Persistent => None,
        LinkTtl::Seconds(s) => Some(Instant::now() + Duration::from_secs(s as u64)),
    }
}

impl Maps {
    fn get(&mut self, k: &LinkId) -> Option<Link> {
        let now = Instant::now();
        match self.links.get(k) {
            Some((_, Some(t))) if *t <= now => {
                self.links.remove(k);
                None
            }
            Some((pod, t)) => Some(Link {
                pod_index: *pod,
                ttl: t.map(|t| t - now),
            }),
            None => None,
        }
    }
}

#[async_trait]
impl StoreBackend for MapStore {
    async fn set_link(&self, link: LinkRef<'_>, pod: u32, ttl: LinkTtl) -> Result<Option<u32>> {
        let mut m = self.0.lock().unwrap();
        let prev = m.get(&id(link)).map(|l| l.pod_index);
        m.links.insert(id(link), (pod, expiry(ttl)));
        Ok(prev)
    }

    async fn set_link_if_absent(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let mut m = self.0.lock().unwrap();
        if let Some(l) = m.get(&id(link)) {
            return Ok(LinkClaim {
                link: l,
                created: false,
            });
        }
        m.links.insert(id(link), (pod, expiry(ttl)));
        Ok(LinkClaim {
            link: m.get(&id(link)).unwrap(),
            created: true,
        })
    }

    async fn try_set_link(
        &self,
        link: LinkRef<'_>,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<TrySetOutcome> {
        let mut m = self.0.lock().unwrap();
        let cur = m.get(&id(link));
        if let Some(c) = cur.filter(|c| c.is_persistent() && c.pod_index != pod) {
            return Ok(TrySetOutcome {
                accepted: false,
                owner: c.pod_index,
                previous: Some(c.pod_index),
            });
        }
        m.links.insert(id(link), (pod, expiry(ttl)));
        Ok(TrySetOutcome {
            accepted: true,
            owner: pod,
            previous: cur.map(|c| c.pod_index),
        })
    }

    async fn replace_temporary_link(
        &self,
        link: LinkRef<'_>,
        expected: u32,
        pod: u32,
        ttl: LinkTtl,
    ) -> Result<LinkClaim> {
        let mut m = self.0.lock().unwrap();
        match m.get(&id(link)) {
            Some(c) if c.is_persistent() || c.pod_index != expected => Ok(LinkClaim {
                link: c,
                created: false,
            }),
            _ => {
                m.links.insert(id(link), (pod, expiry(ttl)));
                Ok(LinkClaim {
                    link: m.get(&id(link)).unwrap(),
                    created: true,
                })
            }
        }
    }

    async fn remove_link(
        &self,
        link: LinkRef<'_>,
        only_if: Option<u32>,
        delay_secs: u32,
    ) -> Result<bool> {
        let mut m = self.0.lock().unwrap();
        let Some(cur) = m.get(&id(link)) else {
            return Ok(false);
        };
        if only_if.is_some_and(|p| p != cur.pod_index) {
            return Ok(false);
        }
        if delay_secs == 0 {
            m.links.remove(&id(link));
        } else {
            // A delayed remove never lengthens a link (SPEC §4).
            let at = expiry(LinkTtl::Seconds(delay_secs));
            let old = m.links.get(&id(link)).and_then(|(_, t)| *t);
            let at = match (old, at) {
                (Some(o), Some(a)) => Some(o.min(a)),
                (_, a) => a,
            };
            m.links.insert(id(link), (cur.pod_index, at));
        }
        Ok(true)
    }

    async fn get_link(&self, link: LinkRef<'_>) -> Result<Option<Link>> {
        Ok(self.0.lock().unwrap().get(&id(link)))
    }

    async fn get_link_services(&self, namespace: &str, uid: &str) -> Result<BTreeMap<String, u32>> {
        let mut m = self.0.lock().unwrap();
        let keys: Vec<LinkId> = m
            .links
            .keys()
            .filter(|(n, u, _)| n == namespace && u == uid)
            .cloned()
            .collect();
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(l) = m.get(&k).filter(Link::is_persistent) {
                out.insert(k.2.clone(), l.pod_index);
            }
        }
        Ok(out)
    }

    async fn batch_get_links(
        &self,
        namespace: &str,
        uids: &[&str],
        service: &str,
    ) -> Result<Vec<Option<u32>>> {
        let mut m = self.0.lock().unwrap();
        Ok(uids
            .iter()
            .map(|u| {
                m.get(&(namespace.into(), (*u).into(), service.into()))
                    .map(|l| l.pod_index)
            })
            .collect())
    }

    async fn publish_pod_state(
        &self,
        ns: &str,
        svc: &str,
        pod: u32,
        load: u32,
        routing: RoutingState,
        weight: u32,
    ) -> Result<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut m = self.0.lock().unwrap();
        m.states
            .entry((ns.into(), svc.into()))
            .or_default()
            .insert(pod.to_string(), format_value(load, now, routing, weight));
        Ok(now)
    }

    async fn pod_states(&self, ns: &str, svc: &str) -> Result<RawPodStates> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let m = self.0.lock().unwrap();
        let fields = m
            .states
            .get(&(ns.into(), svc.into()))
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Ok(RawPodStates { now_ms, fields })
    }

    async fn set_workload_state(&self, ns: &str, svc: &str, state: &str) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .words
            .insert(format!("w/{ns}/{svc}"), state.into());
        Ok(())
    }

    async fn workload_states(&self, ns: &str, services: &[&str]) -> Result<Vec<Option<String>>> {
        let m = self.0.lock().unwrap();
        Ok(services
            .iter()
            .map(|s| m.words.get(&format!("w/{ns}/{s}")).cloned())
            .collect())
    }

    async fn set_tag(&self, ns: &str, tag: &str, service: &str) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .words
            .insert(format!("t/{ns}/{tag}"), service.into());
        Ok(())
    }

    async fn get_tag(&self, ns: &str, tag: &str) -> Result<Option<String>> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .words
            .get(&format!("t/{ns}/{tag}"))
            .cloned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_map_store_passes_the_test_kit() {
    stateful_route::testkit::run_store_suite(|| async { Store::from_backend(MapStore::default()) })
        .await;
}
